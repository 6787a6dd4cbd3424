"""Automatic bill settlement (SET-1, SET-2, SET-4; invariants I2, I3, I5).

When money is credited (dedicated transfer, approved claim) and on a schedule, the unpaid bills
(``open``, ``partially_paid``, ``overdue``) of every account with automatic settlement on (SET-1)
are paid from its ledger balance in the bill's currency, oldest first (``issued_at``, ``id``);
what is left after the oldest bill goes to the next one, and a bill is never paid while an older
one in the same currency is unpaid (SET-2): if the money does not cover the oldest bill, that
bill is partially paid and nothing younger is touched.

Only money the account sent is spent: the available amount is the positive part of the ledger
balance, so a credit-approved account's credit line never pays its own bills.

Set-based per chunk of accounts (SET-4, QUALITY.md settlement budget), one transaction each:

1. ``SELECT ... FOR UPDATE ORDER BY id`` of the chunk's account rows (those with settlement on).
   ``ledger_post`` locks the same row, so a settlement and a concurrent credit or debit of one
   account serialise, and two settlements of one account run one after the other.
2. One ``INSERT ... SELECT`` computes every allocation of the chunk in SQL (a running sum of
   the outstanding amounts per account and currency, ordered by issued_at and id, against the
   available balance) and posts one ``bill_payment`` entry per allocation. The reference is
   ``settle:<bill id>:<amount paid before>``: deterministic, so a re-run, a concurrent run or
   the manual path (``bills.bill_pay_manual`` uses the same scheme) cannot post the same
   allocation twice (``ON CONFLICT (reference) DO NOTHING``, I2).
3. One ``UPDATE ... FROM unnest(...)`` moves ``amount_paid``/``status``/``paid_at`` of exactly
   the bills whose entry was inserted, guarded by the amount paid the allocation was computed
   from; any mismatch rolls the whole chunk back (SettlementConflict) instead of paying twice.
4. One ``UPDATE`` keeps ``Account.has_outstanding_bills`` (DEL-3) in step for those accounts.

So a chunk costs a fixed number of queries whatever its number of accounts and bills, a run
over N accounts costs O(N / chunk) queries, and a crash anywhere before the commit leaves
nothing behind: the re-run computes the same allocations and pays each once. A second run
finds nothing to pay and changes nothing.

The append-only trigger on the ledger forbids UPDATE and DELETE only; the raw INSERT here fills
every column ``LedgerEntry`` requires (kind ``bill_payment``, a negative amount, the bill's
currency, ``created_at``). It is one of the ledger's three writers, with ``ledger_post`` and
``ledger_credit_many``; ``services/ledger.py`` says which invariants each keeps.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from billing_backoffice.enqueue import enqueue_on_commit
from billing_backoffice.item_failures import NOT_ISOLATED, JobItems, resolved_ids_sql, skipped_ids_sql
from payments.models import Account, Bill, LedgerEntry
from payments.services.outstanding import UNPAID, accounts_sync_outstanding
from payments.errors import SettlementConflict  # noqa: F401 (raised here)

logger = logging.getLogger(__name__)

# Accounts per transaction: big enough that the fixed query cost per chunk is amortised, small
# enough that row locks are held for well under a second and a task stays far below its limit.
DEFAULT_CHUNK_SIZE = 500
REFERENCE_PREFIX = "settle"


def chunk_size() -> int:
    return getattr(settings, "SETTLEMENT_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)


def payment_reference(*, bill_id: int, amount_paid_before: Decimal) -> str:
    """``settle:<bill>:<paid before>``: one allocation of one bill, shared by both paths (SET-4)."""
    return f"{REFERENCE_PREFIX}:{bill_id}:{Decimal(amount_paid_before).quantize(Decimal('0.01'))}"


@dataclass
class SettlementResult:
    accounts: int = 0  # accounts locked with settlement on
    payments: int = 0  # ledger entries posted
    bills_paid: int = 0
    bills_partially_paid: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)  # paid per currency

    def add(self, other: SettlementResult) -> None:
        self.accounts += other.accounts
        self.payments += other.payments
        self.bills_paid += other.bills_paid
        self.bills_partially_paid += other.bills_partially_paid
        for currency, amount in other.totals.items():
            self.totals[currency] = self.totals.get(currency, Decimal("0.00")) + amount


SETTLEMENT_JOB = "payments.settlement"


def settle_accounts(*, account_ids: list[int], now: datetime, chunk: int | None = None) -> SettlementResult:
    """SET-2 / SET-4: settle these accounts' unpaid bills from their balances, chunk by chunk.

    Each chunk is its own transaction (a failure rolls back that chunk only; a re-run redoes it).
    Accounts with automatic settlement off (SET-1) are left untouched.

    A chunk the database refuses (one poison account: a value no column holds, a constraint) is
    settled again account by account, so only that account is recorded and retried by later
    runs, bounded, and left out of chunks meanwhile (billing_backoffice/item_failures.py). A
    ``SettlementConflict`` or a crash still rolls the chunk back and reaches the caller, whose
    task retries it.
    """
    size = chunk or chunk_size()
    ids = sorted({int(i) for i in account_ids})
    result = SettlementResult()
    for start in range(0, len(ids), size):
        chunk_ids = ids[start : start + size]
        try:
            result.add(_settle_chunk(chunk_ids, now=now))
        except NOT_ISOLATED:
            raise
        except DatabaseError as error:
            logger.warning("SET-4: a chunk of %s account(s) failed (%s); settling it account by account",
                           len(chunk_ids), type(error).__name__)
            result.add(_settle_one_by_one(chunk_ids, now=now))
    return result


def _settle_one_by_one(account_ids: list[int], *, now: datetime) -> SettlementResult:
    items = JobItems(job=SETTLEMENT_JOB, item_kind="payments.account", now=now)
    result = SettlementResult()
    for account_id in account_ids:
        if items.skips(account_id):
            continue
        outcome = items.run(account_id, lambda: _settle_chunk([account_id], now=now), isolate=(DatabaseError,))
        if outcome.ok:
            result.add(outcome.value)
    return result


# -- one chunk ---------------------------------------------------------------------------------

# Accounts whose settlement failed and waits for its retry are left out; the failures of those
# settled now are resolved in the same statement (billing_backoffice/item_failures.py).
_SKIPPED_SQL, _ = skipped_ids_sql(job=SETTLEMENT_JOB, item_kind="payments.account", now=None)
_RESOLVED_SQL, _ = resolved_ids_sql(
    job=SETTLEMENT_JOB, item_kind="payments.account", now=None, ids="IN (SELECT id FROM locked)"
)
_LOCK_SQL = f"""
    WITH locked AS (
        SELECT id FROM {Account._meta.db_table}
        WHERE id = ANY(%(ids)s::bigint[]) AND auto_settlement_enabled AND id NOT IN ({_SKIPPED_SQL})
        ORDER BY id
        FOR UPDATE
    ), resolved AS ({_RESOLVED_SQL})
    SELECT id FROM locked ORDER BY id
"""

# Allocations of the whole chunk, posted in one statement. ``older`` is the outstanding total of
# the bills older than this one (same account and currency): a bill gets what is left after
# them, capped at its own outstanding amount, and nothing once the money has run out.
_INSERT_SQL = f"""
    WITH balance AS (
        SELECT account_id, currency, SUM(amount) AS available
        FROM {LedgerEntry._meta.db_table}
        WHERE account_id = ANY(%(ids)s::bigint[])
        GROUP BY account_id, currency
        HAVING SUM(amount) > 0
    ),
    unpaid AS (
        SELECT b.id, b.account_id, b.currency, b.issued_at, b.amount_paid,
               b.total - b.amount_paid AS outstanding,
               COALESCE(SUM(b.total - b.amount_paid) OVER (
                   PARTITION BY b.account_id, b.currency ORDER BY b.issued_at, b.id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
               ), 0) AS older
        FROM {Bill._meta.db_table} b
        WHERE b.account_id = ANY(%(ids)s::bigint[]) AND b.status = ANY(%(unpaid)s::varchar[])
    ),
    allocation AS (
        SELECT u.id AS bill_id, u.account_id, u.currency, u.issued_at, u.amount_paid,
               LEAST(u.outstanding, bal.available - u.older) AS pay
        FROM unpaid u
        JOIN balance bal ON bal.account_id = u.account_id AND bal.currency = u.currency
        WHERE bal.available > u.older
    )
    INSERT INTO {LedgerEntry._meta.db_table}
        (account_id, amount, currency, kind, reference, memo, created_at, created_by_id, reverses_id)
    SELECT account_id, -pay, currency, %(kind)s,
           %(prefix)s || ':' || bill_id || ':' || amount_paid::text,
           'Automatic settlement of bill ' || bill_id || ' (SET-2)',
           %(now)s, NULL, NULL
    FROM allocation
    ORDER BY account_id, currency, issued_at, bill_id
    ON CONFLICT (reference) DO NOTHING
    RETURNING account_id, currency, split_part(reference, ':', 2)::bigint,
              split_part(reference, ':', 3)::numeric, -amount
"""

# Exactly the bills whose entry was inserted, and only if they still show the amount paid the
# allocation was computed from. An overdue bill that is not fully paid stays overdue.
_UPDATE_BILLS_SQL = f"""
    UPDATE {Bill._meta.db_table} b
    SET amount_paid = b.amount_paid + p.paid,
        status = CASE WHEN b.amount_paid + p.paid = b.total THEN 'paid'
                      WHEN b.status = 'overdue' THEN 'overdue'
                      ELSE 'partially_paid' END,
        paid_at = CASE WHEN b.amount_paid + p.paid = b.total THEN %(now)s ELSE b.paid_at END
    FROM unnest(%(bill_ids)s::bigint[], %(before)s::numeric[], %(paid)s::numeric[]) AS p(bill_id, before, paid)
    WHERE b.id = p.bill_id AND b.amount_paid = p.before
    RETURNING b.status
"""

def _after_insert(cursor, payments: list[tuple]) -> None:
    """Hook between the ledger INSERT and the bills UPDATE; the crash tests raise here."""


def _failure_params(now: datetime) -> dict:
    return {
        **skipped_ids_sql(job=SETTLEMENT_JOB, item_kind="payments.account", now=now)[1],
        **resolved_ids_sql(job=SETTLEMENT_JOB, item_kind="payments.account", now=now)[1],
    }


def _settle_chunk(account_ids: list[int], *, now: datetime) -> SettlementResult:
    result = SettlementResult()
    if not account_ids:
        return result
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, {"ids": account_ids, **_failure_params(now)})
        locked = [row[0] for row in cursor.fetchall()]
        result.accounts = len(locked)
        if not locked:
            return result
        cursor.execute(
            _INSERT_SQL,
            {
                "ids": locked, "unpaid": list(UNPAID), "kind": LedgerEntry.Kind.BILL_PAYMENT.value,
                "prefix": REFERENCE_PREFIX, "now": now,
            },
        )
        payments = cursor.fetchall()  # (account_id, currency, bill_id, paid_before, paid)
        if not payments:
            return result
        _after_insert(cursor, payments)
        cursor.execute(
            _UPDATE_BILLS_SQL,
            {
                "now": now,
                "bill_ids": [p[2] for p in payments],
                "before": [p[3] for p in payments],
                "paid": [p[4] for p in payments],
            },
        )
        statuses = [row[0] for row in cursor.fetchall()]
        if len(statuses) != len(payments):
            # Someone changed a bill's amount paid without the account lock: pay nothing.
            raise SettlementConflict(
                f"{len(payments) - len(statuses)} bill(s) changed during settlement; nothing was paid."
            )
        accounts_sync_outstanding(cursor, account_ids=sorted({p[0] for p in payments}))
    totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for _account_id, currency, _bill_id, _before, paid in payments:
        totals[currency] += paid
    result.payments = len(payments)
    result.bills_paid = statuses.count(Bill.Status.PAID)
    result.bills_partially_paid = len(statuses) - result.bills_paid
    result.totals = dict(totals)
    logger.info(
        "settlement: %s account(s) locked, %s payment(s), %s bill(s) paid, %s partially",
        result.accounts, result.payments, result.bills_paid, result.bills_partially_paid,
    )
    return result


# -- what the jobs settle ----------------------------------------------------------------------

# One query: accounts with settlement on that have an unpaid bill in a currency in which their
# balance is positive (nothing to do for the others).
_DUE_SQL = f"""
    WITH unpaid AS (
        SELECT DISTINCT account_id, currency FROM {Bill._meta.db_table}
        WHERE status = ANY(%(unpaid)s::varchar[])
    )
    SELECT DISTINCT u.account_id
    FROM unpaid u
    JOIN {Account._meta.db_table} a ON a.id = u.account_id AND a.auto_settlement_enabled
    WHERE (
        SELECT SUM(e.amount) FROM {LedgerEntry._meta.db_table} e
        WHERE e.account_id = u.account_id AND e.currency = u.currency
    ) > 0
    ORDER BY u.account_id
"""


def settlement_due_account_ids() -> list[int]:
    """Accounts the sweep should settle: unpaid bills and money to pay them with (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(_DUE_SQL, {"unpaid": list(UNPAID)})
        return [row[0] for row in cursor.fetchall()]


def settlement_due_chunks(*, size: int | None = None) -> list[list[int]]:
    size = size or chunk_size()
    ids = settlement_due_account_ids()
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def settlement_request(*, account_id: int) -> None:
    """SET-2: settle this account once the current transaction commits (after a credit).

    Enqueues the ``payments.settle_account`` task on commit: nothing is enqueued if the credit
    rolls back, and the task sees the committed credit. Safe to call any number of times: the
    settlement is idempotent (SET-4).
    """
    enqueue_on_commit("payments.settle_account", account_id=account_id)


def settlement_request_many(*, account_ids) -> None:
    """SET-2: like ``settlement_request`` for many accounts (a statement import), in chunk tasks."""
    ids = sorted(set(account_ids))
    size = chunk_size()
    for start in range(0, len(ids), size):
        enqueue_on_commit("payments.settle_chunk", account_ids=ids[start:start + size])
