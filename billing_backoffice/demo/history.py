"""The demo's billing and remittance history: which accounts get one this run, and playing it.

Idempotent like the accounts: an account's history is made once, when it has no money trail yet
(``MONEY_TRAIL``: every story reports usage, so a told story always has one). A second run finds
every story told and calls no service at all. Accounts whose profile is ``none``, or that cannot tell their story
(``effective_profile``), are left without billing.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime

from django.db.models import Exists, OuterRef

from payments.models import Account, Bill, Charge, LedgerEntry, PaymentMethod, UsageRecord
from remittances.models import CreditLimitRequest, RemittanceAccount, RemittanceClaim

from .bank import Bank
from .billing import Staff, Story
from .clock import Clock
from .profiles import Profile, billing_profile, effective_profile
from .tables import UID_PREFIX, demo_uid
from .timeline import Timeline


# An account with any of these has a history already (the seed's or someone's trying the demo):
# its story is not told, so nothing is told twice and no service refuses a step halfway.
MONEY_TRAIL = (UsageRecord, Bill, Charge, LedgerEntry, CreditLimitRequest, RemittanceClaim, RemittanceAccount)


def demo_index(uid: str) -> int:
    return int(uid[len(UID_PREFIX):-1])


def stories_to_tell(*, clock: Clock, timeline: Timeline, staff: Staff, count: int) -> list[Story]:
    """The demo accounts (of the first ``count``) whose billing history is not made yet."""
    uids = [demo_uid(i) for i in range(count)]
    untouched = [~Exists(model.objects.filter(account_id=OuterRef("pk"))) for model in MONEY_TRAIL]
    accounts = list(Account.objects.filter(*untouched, uid__in=uids, status=Account.Status.ACTIVE).order_by("uid"))
    defaults = {
        m.account_id: m
        for m in PaymentMethod.objects.filter(account__in=accounts, is_default=True)
    }
    stories = []
    for account in accounts:
        index = demo_index(account.uid)
        default = defaults.get(account.pk)
        profile = effective_profile(billing_profile(index), account, default, start=clock.history_start)
        if profile != Profile.NONE:
            stories.append(Story(index=index, account=account, default=default, profile=profile, clock=clock,
                                 timeline=timeline, staff=staff))
    return stories


@contextmanager
def quiet_services():
    """The services log each event at INFO for operators; a seed would print thousands of them."""
    loggers = [logging.getLogger(name) for name in ("payments", "remittances")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def seed_history(*, now: datetime, staff: Staff, count: int) -> int:
    """Play the history of every account that has none yet; returns how many stories were told."""
    clock = Clock(now)
    timeline = Timeline(clock.now)
    stories = stories_to_tell(clock=clock, timeline=timeline, staff=staff, count=count)
    if not stories:
        return 0
    for story in stories:
        story.schedule()
    Bank(clock=clock, timeline=timeline, staff=staff, stories=stories, run_tag=str(stories[0].index)).schedule()
    with quiet_services():
        timeline.play()
    return len(stories)
