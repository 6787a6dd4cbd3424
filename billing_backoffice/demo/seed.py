"""Demo data for ``manage.py seed_demo``: a few hundred accounts in every region and every state.

Built straight with the ORM in bulk rather than through the services, on purpose: the services
call the gateway and place holds one method at a time, while the demo needs, in a couple of
seconds, states that only time produces (holds due, silent periods over, cards expired, 3DS
abandoned). Every row still obeys the model constraints and the rules the services enforce:
ELIG-2 per region, DEF-1/DEF-2 (one default, only active or expired), LINK-1 (fingerprints unique
among live methods), HOLD-2 (deadline = placed + 24 h), LINK-7 (an attempt for every link).
Card numbers are generated, fingerprinted and dropped; only last4 + fingerprint are kept (SEC-1).

Idempotent: accounts are keyed by their uid (``demo_uid(index)``, 16 digits starting ``99990``); a
run creates only the missing accounts
(with their methods, holds, challenges and attempts) and leaves existing rows alone. Each account
draws from its own generator seeded by its index, so the data is the same on every run and every
machine; times are relative to the ``now`` the caller passes.

Modules: ``tables`` (what the data is drawn from), ``builder`` (one account, its life cycle and
its live methods), ``failures`` (failed verifications and refused attempts), ``plans``.

Billing and remittances are not built in bulk: money moves only through the services, the
ledger's only writers, so every bill, charge, ledger entry, statement and claim is what the
running system would have written. ``profiles`` gives every ninth account a billing story (and
shapes its account and methods for it); ``history`` plays the stories in time order on one
``timeline`` over the months before ``now`` (``clock``): ``billing`` (usage, bills, charges,
orders), ``credit`` (applications, dedicated accounts, settlement switch, transfers), ``bank``
and ``claims`` (statement days, imported as ``camt`` files, and the claims on the shared
account). The history ends where the jobs would have left it: the settlement, threshold,
month-end, overdue and retry jobs, and the tasks the seed enqueues on commit, find nothing to do.
A second manager, ``manager2``, decides the credit applications ``manager`` records (CRED-2).
Then ``seed_credit_control`` (reminders, holds, a pause) and ``seed_money_back`` (a refund
``finance`` records and ``finance2`` approves, a transfer, bank reversals, a payer return, the
daily reconciliation proof: RFD-1, RFD-2, RVS-1, RCN-1) run the services once more, idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.models import Q

from payments.models import (
    Account, Bill, Charge, LedgerEntry, LinkAttempt, PaymentMethod, ThreeDSChallenge, UsageRecord, VerificationHold,
)
from remittances.models import BankStatement, BankTransaction, CreditLimitRequest, RemittanceAccount, RemittanceClaim

from .bank import shared_numbers
from .billing import Staff
from .builder import AccountBuilder
from .clock import Clock
from .history import seed_history
from .seed_credit_control import seed_credit_control
from .seed_money_back import seed_money_back
from .plans import AccountPlan
from .tables import ACCOUNT_COUNT, UID_PREFIX, demo_uid

# pg_advisory_xact_lock key: two seed runs at once queue instead of racing on the same uids.
_LOCK_KEY = 7_316_202_601

ACCOUNT_MANAGERS_GROUP = "Account managers"
FINANCE_GROUP = "Finance staff"
# username -> (group or None, superuser, description shown in the summary)
DEMO_USERS = {
    "admin": (None, True, "superuser"),
    "manager": (ACCOUNT_MANAGERS_GROUP, False, 'account manager (group "Account managers")'),
    "finance": (FINANCE_GROUP, False, 'finance staff (group "Finance staff")'),
    # CRED-2: whoever records a credit application never decides it; "manager" records, this
    # second account manager decides (claims need no second person: finance decides those).
    "manager2": (ACCOUNT_MANAGERS_GROUP, False, 'account manager (decides applications "manager" recorded)'),
    # RFD-1: a refund is approved by another finance staff member than the one who recorded it.
    "finance2": (FINANCE_GROUP, False, 'finance staff (approves refunds "finance" records)'),
}

__all__ = ["ACCOUNT_COUNT", "DEMO_USERS", "UID_PREFIX", "SeedResult", "demo_counts", "demo_uid",
           "ensure_demo_users", "seed_demo"]


@dataclass
class SeedResult:
    created_accounts: int
    existing_accounts: int
    counts: dict[str, int]
    users: dict[str, str]
    billing_histories: int = 0  # accounts whose billing history this run made


def ensure_demo_users(*, password: str) -> dict:
    """The staff logins; (re)sets the password only when it does not match ``password``."""
    User = get_user_model()
    users = {}
    for username, (group_name, superuser, _) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@backoffice.example", "is_staff": True, "is_superuser": superuser},
        )
        changed = [name for name, want in (("is_staff", True), ("is_active", True), ("is_superuser", superuser))
                   if want and not getattr(user, name)]
        for name in changed:
            setattr(user, name, True)
        if created or not user.check_password(password):
            user.set_password(password)
            changed.append("password")
        if changed:
            user.save(update_fields=changed)
        if group_name:
            # The group's permissions come from a migration; get_or_create works with or without it.
            group, _ = Group.objects.get_or_create(name=group_name)
            user.groups.add(group)
        users[username] = user
    return users


def _save(plans: list[AccountPlan]) -> None:
    """Insert parents before children; bulk_create fills the primary keys the children point to."""
    accounts = [p.account for p in plans]
    Account.objects.bulk_create(accounts, batch_size=1000)
    for p in plans:
        p.account.created_at = p.created_at
    Account.objects.bulk_update(accounts, ["created_at"], batch_size=1000)
    method_plans = [mp for p in plans for mp in p.methods]
    methods = [mp.method for mp in method_plans]
    PaymentMethod.objects.bulk_create(methods, batch_size=1000)
    for mp in method_plans:
        mp.method.created_at = mp.created_at
    PaymentMethod.objects.bulk_update(methods, ["created_at"], batch_size=1000)
    VerificationHold.objects.bulk_create([mp.hold for mp in method_plans if mp.hold], batch_size=1000)
    ThreeDSChallenge.objects.bulk_create([mp.challenge for mp in method_plans if mp.challenge], batch_size=1000)
    attempts = [a for p in plans for a in p.attempts] + [a for mp in method_plans for a in mp.attempts]
    LinkAttempt.objects.bulk_create(sorted(attempts, key=lambda a: a.created_at), batch_size=1000)


def demo_receiving_accounts():
    """The demo's shared receiving accounts and the dedicated ones of demo accounts."""
    return RemittanceAccount.objects.filter(
        Q(account__uid__startswith=UID_PREFIX) | Q(account__isnull=True, number__in=shared_numbers())
    )


def demo_counts() -> dict[str, int]:
    demo = {"account__uid__startswith": UID_PREFIX}
    receiving = demo_receiving_accounts()
    return {
        "accounts": Account.objects.filter(uid__startswith=UID_PREFIX).count(),
        "payment methods": PaymentMethod.objects.filter(**demo).count(),
        "verification holds": VerificationHold.objects.filter(**demo).count(),
        "3-D Secure challenges": ThreeDSChallenge.objects.filter(
            payment_method__account__uid__startswith=UID_PREFIX
        ).count(),
        "link attempts": LinkAttempt.objects.filter(**demo).count(),
        "usage records": UsageRecord.objects.filter(**demo).count(),
        "bills": Bill.objects.filter(**demo).count(),
        "charges": Charge.objects.filter(**demo).count(),
        "ledger entries": LedgerEntry.objects.filter(**demo).count(),
        "credit applications": CreditLimitRequest.objects.filter(**demo).count(),
        "remittance accounts": receiving.count(),
        "bank statements": BankStatement.objects.filter(receiving_account__in=receiving).count(),
        "bank transactions": BankTransaction.objects.filter(receiving_account__in=receiving).count(),
        "remittance claims": RemittanceClaim.objects.filter(**demo).count(),
        "staff users": get_user_model().objects.filter(username__in=DEMO_USERS).count(),
    }


def seed_demo(*, now: datetime, password: str, count: int = ACCOUNT_COUNT) -> SeedResult:
    """Create the demo accounts that are missing and the billing history of those that have
    none, and the demo staff users; idempotent."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        users = ensure_demo_users(password=password)
        wanted = {demo_uid(i): i for i in range(count)}
        existing = set(Account.objects.filter(uid__in=wanted).values_list("uid", flat=True))
        history_start = Clock(now).history_start
        plans = [
            AccountBuilder(i, now=now, manager=users["manager"], history_start=history_start).build()
            for uid, i in wanted.items()
            if uid not in existing
        ]
        _save(plans)
        staff = Staff(manager=users["manager"], manager2=users["manager2"], finance=users["finance"])
        stories = seed_history(now=now, staff=staff, count=count)
        seed_credit_control(now=now, manager=users["manager"])  # CC-1..3, NOTIFY-1: levels, a hold, a pause, a mailbox
        seed_money_back(now=now, users=users)  # RFD-1, RFD-2, RVS-1, RCN-1: refunds, transfers, reversals, proof
    return SeedResult(
        created_accounts=len(plans),
        existing_accounts=len(existing),
        counts=demo_counts(),
        users={name: description for name, (_, _, description) in DEMO_USERS.items()},
        billing_histories=stories,
    )
