"""Staff and scheduled writes on bills: overdue marking (CRED-3), manual payment (SET-3) and the
automatic-settlement switch (SET-1). Automatic settlement itself is ``settlement.py``.

Lock order everywhere: the account row first (as ``ledger_post`` and the settlement do), then
the bill row, so the manual path, the settlement and a credit never deadlock each other.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing_backoffice.errors import BillingError
from billing_backoffice.permissions import staff_require
from billing_backoffice.item_failures import NOT_ISOLATED, JobItems, resolved_ids_sql, skipped_ids_sql
from payments.errors import AccountNotFound
from payments.models import Account, Bill, LedgerEntry
from payments.services.ledger import account_balance, ledger_post
from payments.services.outstanding import UNPAID, accounts_sync_outstanding
from payments.services.settlement import payment_reference, settlement_request
from payments.errors import (  # noqa: F401 (raised here, importable from here)
    BalanceTooLow,
    BillAlreadyPaid,
    BillNotFound,
    OlderBillUnpaid,
    SettlementIsOn,
)

logger = logging.getLogger(__name__)

# SEC-3: who may pay a bill by hand (SET-3) and switch an account's settlement (SET-1).
PAY_BILL_PERMISSION = "payments.pay_bill"
SWITCH_SETTLEMENT_PERMISSIONS = ("payments.pay_bill", "payments.change_account")


# -- CRED-3: overdue -----------------------------------------------------------------------------

# One statement. Bills are claimed with SKIP LOCKED and the flag is set only on account rows
# nobody holds, so marking never waits for (or deadlocks with) a settlement, which locks the
# account first and the bills second; a bill being settled right now is marked by the next run.
# The flag can only be false here if whoever issued the bill forgot it (both statuses count
# as outstanding), and a settlement that skipped it re-syncs the flag itself.
#
# Bills whose marking failed and waits for its retry are left out (``only`` narrows the statement
# to given bills when a failed run is redone bill by bill); the failures of bills marked now are
# resolved in the same statement (billing_backoffice/item_failures.py).
OVERDUE_JOB = "payments.mark_overdue_bills"
_SKIPPED_SQL, _ = skipped_ids_sql(job=OVERDUE_JOB, item_kind="payments.bill", now=None)
_RESOLVED_SQL, _ = resolved_ids_sql(job=OVERDUE_JOB, item_kind="payments.bill", now=None, ids="IN (SELECT id FROM due)")
_DUE_WHERE = f"""
    status IN ('open', 'partially_paid') AND due_date < %(today)s AND id NOT IN ({_SKIPPED_SQL})
    AND (%(only)s::bigint[] IS NULL OR id = ANY(%(only)s::bigint[]))
"""
_MARK_OVERDUE_SQL = f"""
    WITH due AS (
        SELECT id FROM {Bill._meta.db_table}
        WHERE {_DUE_WHERE}
        ORDER BY id
        FOR UPDATE SKIP LOCKED
    ),
    resolved AS ({_RESOLVED_SQL}),
    marked AS (
        UPDATE {Bill._meta.db_table} b SET status = 'overdue'
        FROM due WHERE b.id = due.id
        RETURNING b.account_id
    ),
    flagged AS (
        UPDATE {Account._meta.db_table} a SET has_outstanding_bills = TRUE
        FROM (
            SELECT id FROM {Account._meta.db_table}
            WHERE id IN (SELECT account_id FROM marked) AND NOT has_outstanding_bills
            ORDER BY id
            FOR UPDATE SKIP LOCKED
        ) f
        WHERE a.id = f.id
        RETURNING a.id
    )
    SELECT (SELECT COUNT(*) FROM marked), (SELECT COUNT(*) FROM flagged)
"""


OVERDUE_BATCH_SIZE = 500


def bills_mark_overdue(*, now: datetime) -> int:
    """CRED-3: an unpaid bill after its due date is overdue (one UPDATE); returns bills marked.

    "After the due date": on the due date itself (UTC calendar day of ``now``) the bill is still
    just due; from the next day on it is overdue. Paid bills are never touched.

    If the statement fails (a bill the database refuses to update), the due bills are marked
    again in batches, and a failing batch bill by bill: the poison bill is recorded and retried
    by later runs, bounded, and the others are marked (billing_backoffice/item_failures.py).
    """
    params = {
        "today": timezone.localdate(now), "only": None,
        **skipped_ids_sql(job=OVERDUE_JOB, item_kind="payments.bill", now=now)[1],
        **resolved_ids_sql(job=OVERDUE_JOB, item_kind="payments.bill", now=now)[1],
    }
    try:
        marked, flagged = _mark_overdue(params)
    except NOT_ISOLATED:
        raise
    except Exception as error:  # noqa: BLE001  (a poison bill: found batch by batch below)
        logger.warning("CRED-3: overdue marking failed (%s); marking bill by bill", type(error).__name__)
        marked, flagged = _mark_overdue_in_batches(params, now=now)
    if marked:
        logger.info("overdue: %s bill(s) marked overdue, %s account flag(s) set (CRED-3)", marked, flagged)
    return marked


def _mark_overdue(params: dict) -> tuple[int, int]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_MARK_OVERDUE_SQL, params)
        return cursor.fetchone()


def _mark_overdue_in_batches(params: dict, *, now: datetime) -> tuple[int, int]:
    items = JobItems(job=OVERDUE_JOB, item_kind="payments.bill", now=now)
    marked = flagged = 0

    def mark(bill_ids: list) -> tuple[int, int]:
        return _mark_overdue({**params, "only": [int(i) for i in bill_ids]})

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {Bill._meta.db_table} WHERE {_DUE_WHERE} ORDER BY id", params)
        due = [row[0] for row in cursor.fetchall()]
    for start in range(0, len(due), OVERDUE_BATCH_SIZE):
        batch_marked, batch_flagged = items.run_chunk(due[start : start + OVERDUE_BATCH_SIZE], mark, combine=_summed)
        marked += batch_marked
        flagged += batch_flagged
    return marked, flagged


def _summed(results: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(r[0] for r in results), sum(r[1] for r in results)


# -- SET-3: manual payment -----------------------------------------------------------------------


@transaction.atomic
def bill_pay_manual(*, bill_id: int, actor, now: datetime) -> Bill:
    """SET-3: finance pays one bill from the account's balance (settlement switched off).

    Refused when settlement is on (the job pays), when an older bill in the same currency is
    still unpaid (SET-2), or when the balance does not cover the whole outstanding amount.
    Decision: no partial manual payment. The action means "pay this bill"; paying part of it
    would leave a bill that looks handled but is not, and partial payments are what the
    automatic settlement does. A bill partially paid earlier is paid up to its total.

    The ledger entry uses the settlement's reference (``settle:<bill>:<paid before>``), so the
    two paths can never both pay the same allocation (SET-4); the entry records who paid it.
    SEC-3: ``actor`` needs ``payments.pay_bill`` (``SYSTEM`` for a job or the demo seed).
    """
    staff_require(actor, permission=PAY_BILL_PERMISSION, action="pay bills from the balance")
    account_id = Bill.objects.filter(pk=bill_id).values_list("account_id", flat=True).first()
    if account_id is None:
        raise BillNotFound()
    account = Account.objects.select_for_update().get(pk=account_id)
    bill = Bill.objects.select_for_update().get(pk=bill_id)
    refusal = manual_payment_refusal(
        bill, account=account, balance=account_balance(account_id=account_id, currency=bill.currency)
    )
    if refusal is not None:
        raise refusal
    outstanding = bill.outstanding
    before = bill.amount_paid
    posting = ledger_post(
        account_id=account_id, amount=-outstanding, currency=bill.currency,
        kind=LedgerEntry.Kind.BILL_PAYMENT,
        reference=payment_reference(bill_id=bill.pk, amount_paid_before=before), now=now, actor=actor,
        memo=f"Manual payment of bill {bill.pk} (SET-3): paid {before} -> {bill.total} of {bill.total}",
    )
    if not posting.created:  # the row says unpaid, the ledger says paid: never pay again
        raise BillAlreadyPaid("This allocation of the bill was already posted to the ledger.")
    bill.amount_paid = bill.total
    bill.status = Bill.Status.PAID
    bill.paid_at = now
    bill.save(update_fields=["amount_paid", "status", "paid_at"])
    with connection.cursor() as cursor:
        accounts_sync_outstanding(cursor, account_ids=[account_id])
    logger.info("bill %s paid manually by user %s (SET-3)", bill.pk, getattr(actor, "pk", None))
    return bill


def manual_payment_refusal(bill: Bill, *, account: Account, balance, paid_first=()) -> BillingError | None:
    """SET-3/SET-2: why ``bill_pay_manual`` refuses ``bill`` given the account's ``balance`` in
    the bill's currency, or None. The one place these rules are decided: the service raises it
    (under its locks), the admin's confirmation page shows it. ``paid_first``: ids of older bills
    the same confirmation pays before this one (they no longer block it)."""
    if bill.status == Bill.Status.PAID:
        return BillAlreadyPaid()
    if account.auto_settlement_enabled:
        return SettlementIsOn()
    older = _older_unpaid(bill, excluding=paid_first)
    if older is not None:
        return OlderBillUnpaid(
            f"Bill {older.reference} (issued {older.issued_at:%Y-%m-%d}) is older and still unpaid; "
            "pay it first."
        )
    available = max(balance, 0)
    if available < bill.outstanding:
        return BalanceTooLow(
            f"The balance of {available} {bill.currency} does not cover the {bill.outstanding} "
            f"{bill.currency} outstanding on this bill."
        )
    return None


def _older_unpaid(bill: Bill, *, excluding=()) -> Bill | None:
    """The oldest unpaid bill of the same account and currency issued before this one (SET-2)."""
    return (
        Bill.objects.filter(account_id=bill.account_id, currency=bill.currency, status__in=UNPAID)
        .exclude(pk__in=list(excluding))
        .filter(Q(issued_at__lt=bill.issued_at) | Q(issued_at=bill.issued_at, pk__lt=bill.pk))
        .order_by("issued_at", "pk")
        .first()
    )


# -- SET-1: the switch ---------------------------------------------------------------------------


@transaction.atomic
def settlement_switch(*, account_id: int, enabled: bool, actor, now: datetime) -> Account:
    """SET-1: switch automatic settlement on or off for one account, recording who and when.

    The record is an admin ``LogEntry`` on the account (user, time, message), shown in the
    account's history, plus a log line. Switching it on asks for a settlement at once (the
    account may hold money and unpaid bills). Setting the current value changes nothing and
    records nothing. SEC-3: ``actor`` needs ``payments.pay_bill`` or ``payments.change_account``
    (the admin's ``can_switch_settlement``), or is ``SYSTEM``.
    """
    staff_require(actor, permission=SWITCH_SETTLEMENT_PERMISSIONS, action="switch automatic settlement")
    try:
        account = Account.objects.select_for_update().get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None
    if account.auto_settlement_enabled == enabled:
        return account
    account.auto_settlement_enabled = enabled
    account.save(update_fields=["auto_settlement_enabled"])
    state = "on" if enabled else "off"
    message = f"Automatic settlement switched {state} (SET-1)."
    if actor is not None:
        LogEntry.objects.create(
            user_id=actor.pk, content_type=ContentType.objects.get_for_model(Account),
            object_id=str(account.pk), object_repr=str(account)[:200], action_flag=CHANGE,
            change_message=message, action_time=now,
        )
    logger.info("account %s: automatic settlement switched %s by user %s", account.pk, state,
                getattr(actor, "pk", None))
    if enabled:
        settlement_request(account_id=account.pk)
    return account

