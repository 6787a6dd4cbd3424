"""Creating bills: order and threshold bills, and the month-end bills (PAY-3, CRED-3).

A bill is made once per business event, guarded by its unique ``reference``:

- ``order:{console reference}`` for a subscription order (PAY-1),
- ``usage-threshold:{account}:{currency}:{first usage id}`` for a threshold charge (PAY-2),
- ``monthly:{account}:{period}:{currency}`` for the month (PAY-3). The currency is part of it
  because a bill has one currency and an account may report usage in several; usage reported
  for a month whose bill already exists goes on a supplementary bill
  ``monthly:{account}:{period}:{currency}:{first usage id}``.

Tax is zero for now (``bill_tax``): the rules name no tax rates, and ``Bill.total`` is checked by
a constraint to be ``amount_before_tax + tax``, so adding a rate table later changes one function.

The month-end generation is set-based: a chunk of accounts costs the same few statements
whatever its size (claim the usage rows and insert the bills in one statement, link the rows to
their bills in a second, flag the accounts as owing in a third), so a run over N accounts costs
O(N / chunk) queries.
"""

from __future__ import annotations

import calendar
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Sum

from billing_backoffice import money
from billing_backoffice.item_failures import NOT_ISOLATED, JobItems, resolved_ids_sql, skipped_ids_sql
from billing_backoffice.money import InvalidCurrency  # noqa: F401 - re-exported, raised by currency_code
from payments.models import Account, Bill, UsageRecord
from payments.errors import InvalidPeriod, InvalidReference  # noqa: F401 (raised here)

logger = logging.getLogger(__name__)

# CRED-3: a credit-approved account pays its bills by bank transfer within these terms.
CREDIT_PAYMENT_TERMS = timedelta(days=30)
MONTHLY_CHUNK_SIZE = 500  # accounts per month-end task; settings.BILLING_MONTHLY_CHUNK_SIZE overrides
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
# PAY-2 / PAY-3: the months usage may be reported for, relative to the clock: the last two years
# (late reports, corrections) up to the next month (a console whose local month is already the
# next one). 1900-01 or 9999-12 is a mistake, never usage.
USAGE_PERIOD_MONTHS_BACK = 24
USAGE_PERIOD_MONTHS_AHEAD = 1


# --- input helpers (the API runs them too, answering 400) ------------------------------------


def currency_code(value) -> str:
    """I6: an accepted ISO 4217 code, upper-cased (``usd`` -> ``USD``); see ``billing_backoffice.money``."""
    return money.currency_validate(value)


def positive_amount(value, currency: str | None = None) -> Decimal:
    """I6: a Decimal > 0, at most ``money.MAX_AMOUNT``, with no more decimals than ``currency`` has."""
    return money.amount_validate(value, currency)


def billing_period(value) -> str:
    """A billing month, ``YYYY-MM``."""
    if not isinstance(value, str) or not _PERIOD.fullmatch(value):
        raise InvalidPeriod(f"{value!r} is not a billing month (YYYY-MM).")
    return value


def usage_period(value, *, now: datetime) -> str:
    """PAY-2: a billing month within the usage window around ``now`` (see USAGE_PERIOD_MONTHS_*)."""
    period = billing_period(value)
    year, month = (int(part) for part in period.split("-"))
    offset = (year * 12 + month - 1) - (now.year * 12 + now.month - 1)
    if not -USAGE_PERIOD_MONTHS_BACK <= offset <= USAGE_PERIOD_MONTHS_AHEAD:
        raise InvalidPeriod(
            f"Usage can be reported for the last {USAGE_PERIOD_MONTHS_BACK} months up to next month, "
            f"not for {period}.",
            code="period_out_of_window", rule="PAY-2",
        )
    return period


def console_reference(value) -> str:
    """I2: the console's reference for one event: 1..100 characters, no surrounding blanks."""
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > 100:
        raise InvalidReference("A reference is 1 to 100 characters with no surrounding blanks.")
    return value


def period_bounds(period: str) -> tuple[date, date]:
    year, month = (int(part) for part in billing_period(period).split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def bill_tax(*, account: Account, amount_before_tax: Decimal, currency: str) -> Decimal:
    """Tax on a bill: zero until a per-region rate table is agreed (see the module docstring)."""
    return Decimal("0.00")


def bill_due_date(*, account: Account, now: datetime) -> date:
    """CRED-3: credit accounts pay by transfer within the terms; others are charged at issue."""
    return now.date() + CREDIT_PAYMENT_TERMS if account.credit_approved else now.date()


# --- single bills ------------------------------------------------------------------------------


def bill_create(
    *,
    account: Account,
    kind: str,
    reference: str,
    amount_before_tax: Decimal,
    currency: str,
    now: datetime,
    order_kind: str = "",
) -> Bill:
    """Insert one bill (inside the caller's transaction). A reused reference raises IntegrityError
    from a savepoint, so the caller can look up the first bill and compare it."""
    tax = bill_tax(account=account, amount_before_tax=amount_before_tax, currency=currency)
    with transaction.atomic():
        bill = Bill.objects.create(
            account=account, kind=kind, order_kind=order_kind, reference=reference,
            issued_at=now, due_date=bill_due_date(account=account, now=now),
            amount_before_tax=amount_before_tax, tax=tax, total=amount_before_tax + tax,
            currency=currency,
        )
    # DEL-3: the account now has an outstanding bill (the settlement clears the flag again).
    Account.objects.filter(pk=account.pk, has_outstanding_bills=False).update(has_outstanding_bills=True)
    return bill


def account_unpaid_total(*, account_id: int, currency: str) -> Decimal:
    """CRED-3: what the account still owes on its bills in ``currency``."""
    owed = Bill.objects.filter(
        account_id=account_id, currency=currency, status__in=Bill.UNPAID_STATUSES
    ).aggregate(owed=Sum(F("total") - F("amount_paid")))["owed"]
    return owed or Decimal("0.00")


# --- month end (PAY-3, CRED-3) -----------------------------------------------------------------


@dataclass(frozen=True)
class AccountChunk:
    """Accounts ``first_account_id`` .. ``last_account_id`` (inclusive; None: no upper bound)."""

    first_account_id: int
    last_account_id: int | None


def monthly_chunk_size() -> int:
    return getattr(settings, "BILLING_MONTHLY_CHUNK_SIZE", MONTHLY_CHUNK_SIZE)


def monthly_bill_chunks(*, period: str, chunk_size: int | None = None) -> list[AccountChunk]:
    """Split the accounts with unbilled usage in ``period`` into chunks of ``chunk_size`` accounts.

    One query returns only every ``chunk_size``-th account id (the chunk boundaries), so the
    fan-out never loads the account list itself.
    """
    period = billing_period(period)
    chunk_size = chunk_size or monthly_chunk_size()
    usage = UsageRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT account_id FROM (
                SELECT account_id, row_number() OVER (ORDER BY account_id) AS n
                FROM (SELECT DISTINCT account_id FROM {usage} WHERE status = %s AND period = %s) AS a
            ) AS numbered
            WHERE (n - 1) %% %s = 0 ORDER BY account_id
            """,
            [UsageRecord.Status.UNBILLED, period, chunk_size],
        )
        starts = [row[0] for row in cursor.fetchall()]
    return [
        AccountChunk(start, starts[i + 1] - 1 if i + 1 < len(starts) else None) for i, start in enumerate(starts)
    ]


def _skipped_sql() -> str:
    return skipped_ids_sql(job=MONTHLY_BILLS_JOB, item_kind="payments.account", now=None)[0]


def _failure_params(now: datetime) -> dict:
    return {
        **skipped_ids_sql(job=MONTHLY_BILLS_JOB, item_kind="payments.account", now=now)[1],
        **resolved_ids_sql(job=MONTHLY_BILLS_JOB, item_kind="payments.account", now=now)[1],
    }


def _claim_and_insert_bills_sql() -> str:
    usage, bill, account = UsageRecord._meta.db_table, Bill._meta.db_table, Account._meta.db_table
    skipped_sql = _skipped_sql()
    # 1. lock the chunk's unbilled rows of the month in id order (the threshold charge locks the
    #    same rows in the same order, so the two never deadlock; rows it took meanwhile are
    #    re-checked after the wait and skipped), but those of accounts whose billing failed and
    #    waits for its retry (``skipped_sql``, billing_backoffice/item_failures.py),
    # 2. mark them billed, 3. one bill per account and currency from their sums.
    return f"""
        WITH locked AS (
            SELECT id FROM {usage}
            WHERE status = %(unbilled)s AND period = %(period)s
              AND account_id >= %(first)s AND (%(last)s::bigint IS NULL OR account_id <= %(last)s::bigint)
              AND account_id NOT IN ({skipped_sql})
            ORDER BY id FOR UPDATE
        ), claimed AS (
            UPDATE {usage} AS u SET status = %(billed)s FROM locked
            WHERE u.id = locked.id AND u.status = %(unbilled)s
            RETURNING u.id, u.account_id, u.currency, u.amount
        ), totals AS (
            SELECT account_id, currency, SUM(amount) AS amount, MIN(id) AS first_id,
                   'monthly:' || account_id || ':' || %(period)s || ':' || currency AS canonical
            FROM claimed GROUP BY account_id, currency
        )
        INSERT INTO {bill} (
            account_id, kind, order_kind, reference, period_start, period_end, issued_at, due_date,
            amount_before_tax, tax, total, currency, amount_paid, status, paid_at
        )
        SELECT t.account_id, %(kind)s, '',
               CASE WHEN EXISTS (SELECT 1 FROM {bill} AS b WHERE b.reference = t.canonical)
                    THEN t.canonical || ':' || t.first_id ELSE t.canonical END,
               %(start)s, %(end)s, %(now)s,
               CASE WHEN a.credit_approved THEN %(credit_due)s::date ELSE %(due)s::date END,
               t.amount, 0, t.amount, t.currency, 0, %(open)s, NULL
        FROM totals AS t JOIN {account} AS a ON a.id = t.account_id
        ORDER BY t.account_id, t.currency
        RETURNING id, account_id
    """


def _flag_accounts_sql() -> str:
    # DEL-3: every billed account now has an outstanding bill (the settlement clears it again).
    # The same statement resolves the failures of billed accounts that had failed before.
    account, bill = Account._meta.db_table, Bill._meta.db_table
    resolved_sql = resolved_ids_sql(job=MONTHLY_BILLS_JOB, item_kind="payments.account", now=None)[0]
    return f"""
        WITH resolved AS ({resolved_sql})
        UPDATE {account} SET has_outstanding_bills = TRUE
        WHERE id IN (SELECT account_id FROM {bill} WHERE id = ANY(%(bill_ids)s)) AND NOT has_outstanding_bills
    """


def _link_usage_sql() -> str:
    usage, bill = UsageRecord._meta.db_table, Bill._meta.db_table
    # Only this transaction's rows are billed without a bill: the claim and this link commit
    # together, and other transactions' claims are invisible (still unbilled) to this statement.
    return f"""
        UPDATE {usage} AS u SET bill_id = b.id
        FROM {bill} AS b
        WHERE b.id = ANY(%(bill_ids)s) AND u.account_id = b.account_id AND u.currency = b.currency
          AND u.period = %(period)s AND u.status = %(billed)s AND u.bill_id IS NULL
    """


MONTHLY_BILLS_JOB = "payments.generate_monthly_bills"


def monthly_bills_generate_chunk(*, period: str, now: datetime, chunk: AccountChunk) -> list[int]:
    """PAY-3 / CRED-3: bill the unbilled usage of ``period`` for one chunk of accounts.

    One monthly bill per account and currency (due at issue; +30 days for credit accounts),
    the usage rows marked billed and pointing at it, the accounts flagged as owing (DEL-3).
    Three statements whatever the chunk's size.
    Idempotent: a second run finds no unbilled usage and creates nothing. Returns the new bill ids.

    A poison account (usage whose total no bill can hold) fails the chunk's statement: the chunk
    is then billed account by account, the poison one is recorded and retried by later runs,
    bounded, and left out of the chunk statement meanwhile (billing_backoffice/item_failures.py).
    """
    first, end = period_bounds(period)
    params = {
        "period": period, "first": chunk.first_account_id, "last": chunk.last_account_id,
        "unbilled": UsageRecord.Status.UNBILLED, "billed": UsageRecord.Status.BILLED,
        "kind": Bill.Kind.MONTHLY, "open": Bill.Status.OPEN, "start": first, "end": end, "now": now,
        "due": now.date(), "credit_due": now.date() + CREDIT_PAYMENT_TERMS, **_failure_params(now),
    }
    try:
        return _bill_accounts(params)
    except NOT_ISOLATED:
        raise
    except DatabaseError as error:  # one account's usage the database refuses; found below
        # Only database refusals are isolated: a bug or a crash would fail every account alike.
        logger.warning("PAY-3: chunk %s of %s failed (%s); billing it account by account", chunk, period,
                       type(error).__name__)
    items = JobItems(job=MONTHLY_BILLS_JOB, item_kind="payments.account", now=now)
    bill_ids: list[int] = []
    for account_id in _unbilled_account_ids(params):
        outcome = items.run(
            account_id, lambda: _bill_accounts({**params, "first": account_id, "last": account_id}),
            isolate=(DatabaseError,),
        )
        bill_ids += outcome.value if outcome.ok else []
    return bill_ids


def _bill_accounts(params: dict) -> list[int]:
    for attempt in range(2):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_claim_and_insert_bills_sql(), params)
                rows = cursor.fetchall()
                bill_ids = [row[0] for row in rows]
                if bill_ids:
                    cursor.execute(_link_usage_sql(), {**params, "bill_ids": bill_ids})
                    cursor.execute(
                        _flag_accounts_sql(), {**params, "bill_ids": bill_ids, "resolve_ids": [row[1] for row in rows]}
                    )
                return bill_ids
        except IntegrityError:
            # A concurrent run billed late usage of the same account and month under the same
            # reference at the same moment; retrying picks the supplementary reference.
            if attempt:
                raise
    return []  # pragma: no cover


def _unbilled_account_ids(params: dict) -> list[int]:
    """The chunk's accounts with unbilled usage in the period, but those skipped (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT DISTINCT account_id FROM {UsageRecord._meta.db_table}
            WHERE status = %(unbilled)s AND period = %(period)s
              AND account_id >= %(first)s AND (%(last)s::bigint IS NULL OR account_id <= %(last)s::bigint)
              AND account_id NOT IN ({_skipped_sql()})
            ORDER BY account_id
            """,
            params,
        )
        return [row[0] for row in cursor.fetchall()]


def monthly_bills_generate(*, period: str, now: datetime, chunk_size: int | None = None) -> int:
    """PAY-3: every account's monthly bill for ``period``, chunk after chunk (the Celery task fans
    the chunks out to workers instead). Returns how many bills were created."""
    return sum(
        len(monthly_bills_generate_chunk(period=period, now=now, chunk=chunk))
        for chunk in monthly_bill_chunks(period=period, chunk_size=chunk_size)
    )
