"""The payments app's work queues (``billing_backoffice.work_queues``): each a named condition on
one model, counted on the admin index and selected by ``?queue=<name>`` on the model's list.

Windows read ``now`` (the caller's ``timezone.now()`` at request time); days are local days.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing_backoffice.work_queues import WorkQueue
from payments.models import (
    Account,
    Bill,
    Charge,
    CreditHold,
    LinkAttempt,
    PaymentMethod,
    Reminder,
    ReminderPause,
    ThreeDSChallenge,
)

WEEK = timedelta(days=7)
THREE_DS_WAIT = timedelta(hours=1)
EXPIRY_HORIZON = timedelta(days=30)  # NOTIFY-1's "expires within 30 days"


# --- account managers ----------------------------------------------------------------------------


def my_failed_links(*, user, now: datetime) -> Q:
    """LINK-7: refused card/PayPal links of the last 7 days on the accounts ``user`` manages."""
    return Q(outcome=LinkAttempt.Outcome.REJECTED, created_at__gte=now - WEEK, account__account_manager=user)


def failed_links(*, user, now: datetime) -> Q:
    """LINK-7: every refused link of the last 7 days (the failures chart)."""
    return Q(outcome=LinkAttempt.Outcome.REJECTED, created_at__gte=now - WEEK)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def cards_expiring(*, user, now: datetime) -> Q:
    """NOTIFY-1: active cards whose expiry month ends within 30 days (a card is valid to the end of
    its expiry month), as ``cards_expiring_notify`` tells the customer."""
    today = timezone.localdate(now)
    horizon = today + EXPIRY_HORIZON
    months = {(today.year, today.month), (horizon.year, horizon.month)}
    wanted = Q(pk__in=[])
    for year, month in sorted(months):
        if today <= _month_end(year, month) <= horizon:
            wanted |= Q(exp_year=year, exp_month=month)
    return Q(kind=PaymentMethod.Kind.CARD, status=PaymentMethod.Status.ACTIVE) & wanted


def three_ds_waiting(*, user, now: datetime) -> Q:
    """LINK-5 / PAY-1: challenges still pending more than an hour after they were sent."""
    return Q(status=ThreeDSChallenge.Status.PENDING, created_at__lte=now - THREE_DS_WAIT)


# --- finance --------------------------------------------------------------------------------------


def failed_charges_week(*, user, now: datetime) -> Q:
    """PAY-5: charges that failed in the last 7 days (the index splits them by reason)."""
    return Q(status=Charge.Status.FAILED, created_at__gte=now - WEEK)


def _past_due(first_day: int, last_day: int | None):
    def condition(*, user, now: datetime) -> Q:
        today = timezone.localdate(now)
        q = Q(status__in=Bill.UNPAID_STATUSES, due_date__lte=today - timedelta(days=first_day))
        if last_day is not None:
            q &= Q(due_date__gte=today - timedelta(days=last_day))
        return q

    condition.__doc__ = f"CC-4: unpaid bills {first_day}-{last_day or 'more'} days past their due date."
    return condition


def dunning_level(level: int):
    """CC-1: unpaid bills whose latest reminder is at ``level`` (a higher one moves them on)."""

    def condition(*, user, now: datetime) -> Q:
        higher = Reminder.objects.filter(bill=OuterRef("bill"), level__gt=level)
        return Q(level=level, bill__status__in=Bill.UNPAID_STATUSES) & ~Q(Exists(higher))

    return condition


def accounts_at_dunning_level(level: int):
    """CC-1: accounts to chase at ``level``: the highest reminder level among their unpaid bills
    is ``level`` (an account with three bills at the second reminder is one account; one with a
    bill at the final notice is chased at the final notice only)."""

    def condition(*, user, now: datetime) -> Q:
        unpaid = Reminder.objects.filter(account=OuterRef("pk"), bill__status__in=Bill.UNPAID_STATUSES)
        return Q(Exists(unpaid.filter(level=level))) & ~Q(Exists(unpaid.filter(level__gt=level)))

    condition.__doc__ = f"CC-1: accounts whose unpaid bills have reached reminder level {level} at most."
    return condition


def on_credit_hold(*, user, now: datetime) -> Q:
    """CC-2: holds not lifted yet."""
    return Q(lifted_at__isnull=True)


def reminders_paused(*, user, now: datetime) -> Q:
    """CC-3: pauses in force (not ended, end date still ahead)."""
    return Q(ended_at__isnull=True, ends_at__gt=now)


LINK_QUEUES = (
    WorkQueue("my_failed_7d", "Failed links of my accounts (7 days)", LinkAttempt, my_failed_links, "LINK-7"),
    WorkQueue("failed_7d", "Failed links (7 days)", LinkAttempt, failed_links, "LINK-7"),
)
METHOD_QUEUES = (WorkQueue("expiring_30d", "Cards expiring within 30 days", PaymentMethod, cards_expiring, "NOTIFY-1"),)
THREE_DS_QUEUES = (WorkQueue("waiting_1h", "Waiting over an hour", ThreeDSChallenge, three_ds_waiting, "LINK-5"),)
CHARGE_QUEUES = (WorkQueue("failed_7d", "Failed (7 days)", Charge, failed_charges_week, "PAY-5"),)
BILL_QUEUES = (
    WorkQueue("past_due_1_30", "1-30 days past due", Bill, _past_due(1, 30), "CC-4"),
    WorkQueue("past_due_31_60", "31-60 days past due", Bill, _past_due(31, 60), "CC-4"),
    WorkQueue("past_due_61_90", "61-90 days past due", Bill, _past_due(61, 90), "CC-4"),
    WorkQueue("past_due_over_90", "Over 90 days past due", Bill, _past_due(91, None), "CC-4"),
)
REMINDER_QUEUES = tuple(
    WorkQueue(f"level_{level.value}", f"At {level.label.lower()}", Reminder, dunning_level(level.value), "CC-1")
    for level in Reminder.Level
)
ACCOUNT_QUEUES = tuple(
    WorkQueue(
        f"reminder_level_{level.value}", f"Accounts at {level.label.lower()}", Account,
        accounts_at_dunning_level(level.value), "CC-1",
    )
    for level in Reminder.Level
)
HOLD_QUEUES = (WorkQueue("on_hold", "On credit hold", CreditHold, on_credit_hold, "CC-2"),)
PAUSE_QUEUES = (WorkQueue("paused", "Reminders paused", ReminderPause, reminders_paused, "CC-3"),)
