"""Scheduled charging: threshold charges (PAY-2), the month-end deduction (PAY-3) and the bounded
retries of pending and failed charges. Each creates charges that ``charge_execution`` runs (from
tasks, after the commit); each scan isolates a failing item (``billing_backoffice/item_failures.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef

from billing_backoffice.item_failures import NOT_ISOLATED, JobItems, skipped_ids_sql
from payments.models import Account, Bill, Charge, PaymentMethod, UsageRecord
from payments.services.billing import MONTHLY_CHUNK_SIZE, bill_create, period_bounds
from payments.services.charge_execution import (
    Reason,
    active_default_method,
    bill_locked_for_new_charge,
    charge_create,
    charge_enqueue,
    charge_execute,
)

logger = logging.getLogger(__name__)
Status = Charge.Status

# PAY-2: thresholds are in USD before tax; usage in another currency is compared after this
# indicative conversion (units per USD). Currencies not listed are never charged at a threshold
# and go on the monthly bill (PAY-3). Override with settings.BILLING_THRESHOLD_USD_RATES.
CARD_THRESHOLD_USD = Decimal("1000.00")
THRESHOLD_USD_RATES = {"USD": "1", "EUR": "0.90", "GBP": "0.78", "JPY": "150", "MYR": "4.40"}

# charges_retry_failed: a pending charge younger than this may still be running in its task.
PENDING_GRACE = timedelta(minutes=10)
MAX_GATEWAY_ATTEMPTS = 10  # then the pending charge waits for staff (it may have been made)
FAILED_RETRY_AFTER = timedelta(days=1)
MAX_CHARGE_ATTEMPTS = 3  # charges per bill, the first one included
RETRY_BATCH_SIZE = 200

# Failures that may pass later without the customer doing anything we could wait for; never
# KYC (PAY-5), credit accounts (PAY-6) or 3DS (the customer must act).
RETRYABLE_REASONS = (Reason.INSUFFICIENT_FUNDS, Reason.ISSUER_DECLINED, Reason.NO_USABLE_METHOD)


# --- threshold charges (PAY-2) -----------------------------------------------------------------


def _threshold_rates() -> dict[str, Decimal]:
    rates = getattr(settings, "BILLING_THRESHOLD_USD_RATES", THRESHOLD_USD_RATES)
    return {code: Decimal(str(rate)) for code, rate in rates.items()}


def usage_threshold(*, account: Account, method: PaymentMethod, currency: str) -> Decimal | None:
    """PAY-2: USD 1,000 for a card default, the account's own USD 8..500 for PayPal."""
    rate = _threshold_rates().get(currency)
    if rate is None:
        return None
    usd = CARD_THRESHOLD_USD if method.kind == PaymentMethod.Kind.CARD else account.paypal_charge_threshold
    return usd * rate


def _threshold_candidates() -> list[tuple[int, str]]:
    """One query: (account, currency) whose unbilled usage reached the threshold of its active
    default method, for accounts that are not credit-approved (PAY-6)."""
    usage, account, method = UsageRecord._meta.db_table, Account._meta.db_table, PaymentMethod._meta.db_table
    rates = _threshold_rates()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT u.account_id, u.currency
            FROM {usage} AS u
            JOIN {account} AS a ON a.id = u.account_id AND NOT a.credit_approved
            JOIN {method} AS pm ON pm.account_id = u.account_id AND pm.is_default AND pm.status = %(active)s
            JOIN unnest(%(codes)s::text[], %(rates)s::numeric[]) AS r(currency, rate) ON r.currency = u.currency
            WHERE u.status = %(unbilled)s
            GROUP BY u.account_id, u.currency, pm.kind, a.paypal_charge_threshold, r.rate
            HAVING SUM(u.amount) >= r.rate * CASE WHEN pm.kind = %(card)s THEN %(card_usd)s
                                                  ELSE a.paypal_charge_threshold END
            ORDER BY u.account_id, u.currency
            """,
            {
                "active": PaymentMethod.Status.ACTIVE, "unbilled": UsageRecord.Status.UNBILLED,
                "card": PaymentMethod.Kind.CARD, "card_usd": CARD_THRESHOLD_USD,
                "codes": list(rates), "rates": list(rates.values()),
            },
        )
        return [(row[0], row[1]) for row in cursor.fetchall()]


def usage_threshold_charge(*, account_id: int, currency: str, now: datetime) -> Charge | None:
    """PAY-2: charge the account's accumulated unbilled usage in ``currency`` if it reached the
    threshold: a ``usage_threshold`` bill, a pending ``threshold`` charge executed by a task after
    the commit, and the usage rows marked charged. None when nothing is due (or no active
    default method: the usage stays unbilled; or a credit account: never charged, PAY-6).

    The usage rows are locked in id order, like the month-end generation locks them, so the two
    never charge or bill a row twice and never deadlock.
    """
    with transaction.atomic():
        account = Account.objects.get(pk=account_id)
        method = active_default_method(account_id)
        if account.credit_approved or method is None:
            return None
        threshold = usage_threshold(account=account, method=method, currency=currency)
        rows = list(
            UsageRecord.objects.select_for_update()
            .filter(account_id=account_id, currency=currency, status=UsageRecord.Status.UNBILLED)
            .order_by("pk")
            .values_list("pk", "amount")
        )
        total = sum((amount for _, amount in rows), Decimal("0.00"))
        if threshold is None or not rows or total < threshold:
            return None
        bill = bill_create(
            account=account, kind=Bill.Kind.USAGE_THRESHOLD, amount_before_tax=total, currency=currency,
            reference=f"usage-threshold:{account_id}:{currency}:{rows[0][0]}", now=now,
        )
        charge = charge_create(bill=bill, method=method, kind=Charge.Kind.THRESHOLD, attempt=1, now=now)
        UsageRecord.objects.filter(pk__in=[pk for pk, _ in rows], status=UsageRecord.Status.UNBILLED).update(
            status=UsageRecord.Status.CHARGED, charge=charge, bill=bill
        )
        charge_enqueue(charge.pk)
    return charge


THRESHOLD_JOB = "payments.charge_usage_thresholds"


def threshold_charges_run(*, now: datetime) -> int:
    """PAY-2: the scheduled scan. One query finds the accounts due, then one service call each.
    Returns how many threshold charges were created.

    Each (account, currency) runs in its own savepoint: one that fails (usage whose total does not
    fit a bill) is recorded and retried by later runs, bounded, and the accounts after it are
    still charged (``billing_backoffice/item_failures.py``)."""
    candidates = _threshold_candidates()
    if not candidates:
        return 0
    items = JobItems(job=THRESHOLD_JOB, item_kind="payments.account", now=now)
    created = 0
    for account_id, currency in candidates:
        key = f"{account_id}:{currency}"
        if items.skips(key):
            continue
        outcome = items.run(
            key, lambda: usage_threshold_charge(account_id=account_id, currency=currency, now=now),
            object_id=account_id,
        )
        created += outcome.ok and outcome.value is not None
    return created


# --- month-end deduction (PAY-3) ---------------------------------------------------------------


DEDUCTION_JOB = "payments.month_end_deduction"


def _deduction_batch_sql(skipped_sql: str) -> str:
    # The month's unpaid monthly bills of accounts that are not credit-approved, in id order, but
    # bills whose deduction failed and waits for its retry (billing_backoffice/item_failures.py);
    # ``only`` narrows it to one bill (a failed batch is redone bill by bill).
    bill, account = Bill._meta.db_table, Account._meta.db_table
    return f"""
        SELECT b.id, b.account_id, b.total - b.amount_paid AS amount, b.currency
        FROM {bill} AS b JOIN {account} AS a ON a.id = b.account_id AND NOT a.credit_approved
        WHERE b.kind = %(monthly)s AND b.period_start = %(start)s AND b.status = ANY(%(unpaid)s)
          AND b.id > %(after)s AND (%(only)s::bigint IS NULL OR b.id = %(only)s::bigint)
          AND b.id NOT IN ({skipped_sql})
        ORDER BY b.id LIMIT %(size)s
    """


def _deduction_sql(skipped_sql: str) -> str:
    method, charge = PaymentMethod._meta.db_table, Charge._meta.db_table
    # A batch of bills, one first-attempt charge each (its key makes a rerun insert nothing). A
    # default that is not active gives a charge that fails at once (HOLD-3), so the admin shows
    # why nothing was taken.
    return f"""
        WITH batch AS ({_deduction_batch_sql(skipped_sql)}), inserted AS (
            INSERT INTO {charge} (
                account_id, bill_id, payment_method_id, kind, amount, currency, idempotency_key,
                gateway_reference, status, failure_reason, failure_rule, failure_detail, attempts,
                created_at, completed_at
            )
            SELECT batch.account_id, batch.id, pm.id, %(kind)s, batch.amount, batch.currency,
                   'charge-' || batch.id || '-1', '',
                   CASE WHEN pm.status = %(active)s THEN %(pending)s ELSE %(failed)s END,
                   CASE WHEN pm.status = %(active)s THEN '' ELSE %(no_method)s END,
                   CASE WHEN pm.status = %(active)s THEN '' ELSE 'HOLD-3' END,
                   CASE WHEN pm.status = %(active)s THEN '' ELSE %(no_method_detail)s END,
                   0, %(now)s,
                   CASE WHEN pm.status = %(active)s THEN NULL ELSE %(now)s END
            FROM batch LEFT JOIN {method} AS pm ON pm.account_id = batch.account_id AND pm.is_default
            ORDER BY batch.id
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id, status
        )
        SELECT (SELECT MAX(id) FROM batch),
               COALESCE((SELECT array_agg(id ORDER BY id) FROM inserted WHERE status = %(pending)s), '{{}}'),
               (SELECT COUNT(*) FROM inserted),
               COALESCE((SELECT array_agg(id) FROM batch), '{{}}')
    """


def month_end_deduction_run(*, period: str, now: datetime, batch_size: int = MONTHLY_CHUNK_SIZE) -> int:
    """PAY-3: after the monthly bills are generated, one charge per unpaid monthly bill of every
    account that is not credit-approved (PAY-6), to its default method, executed by tasks.

    Set-based: one statement per batch of bills. A rerun (or beat firing twice) creates nothing.
    A batch whose statement fails (a poison bill) is redone bill by bill: the poison one is
    recorded and retried by later runs, bounded (billing_backoffice/item_failures.py), the
    others are charged. Returns how many charges were created.
    """
    start, _ = period_bounds(period)
    items = JobItems(job=DEDUCTION_JOB, item_kind="payments.bill", now=now)
    skipped_sql, skipped_params = skipped_ids_sql(job=DEDUCTION_JOB, item_kind="payments.bill", now=now)
    params = {
        "monthly": Bill.Kind.MONTHLY, "start": start, "unpaid": list(Bill.UNPAID_STATUSES), "size": batch_size,
        "kind": Charge.Kind.MONTH_END, "active": PaymentMethod.Status.ACTIVE, "pending": Status.PENDING,
        "failed": Status.FAILED, "no_method": Reason.NO_USABLE_METHOD, "now": now, "only": None,
        "no_method_detail": "Only an active, verified method is charged; the account has no active default.",
        **skipped_params,
    }
    sql = _deduction_sql(skipped_sql)

    def deduct(batch_params) -> tuple[int | None, int, list[int]]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, batch_params)
            last, pending_ids, inserted, bill_ids = cursor.fetchone()
            for charge_id in pending_ids:
                charge_enqueue(charge_id)
        return last, inserted, bill_ids

    after, created = 0, 0
    while True:
        try:
            last, inserted, bill_ids = deduct({**params, "after": after})
        except NOT_ISOLATED:
            raise
        except Exception as error:  # noqa: BLE001  (a poison bill: found bill by bill below)
            logger.warning("PAY-3: a deduction batch after bill %s failed (%s); bill by bill", after,
                           type(error).__name__)
            last, inserted = _deduct_bill_by_bill(items, deduct, params, after=after, sql=skipped_sql)
        else:
            items.resolve(bill_ids)
        created += inserted
        if last is None:
            return created
        after = last


def _deduct_bill_by_bill(items: JobItems, deduct, params: dict, *, after: int, sql: str) -> tuple[int | None, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM ({_deduction_batch_sql(sql)}) AS batch", {**params, "after": after})
        bill_ids = [row[0] for row in cursor.fetchall()]
    inserted = 0
    for bill_id in bill_ids:
        outcome = items.run(bill_id, lambda: deduct({**params, "after": 0, "only": bill_id}))
        inserted += outcome.value[1] if outcome.ok else 0
    return (max(bill_ids) if bill_ids else None), inserted


# --- retries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryReport:
    pending_retried: int
    failed_retried: int
    succeeded: int


def charge_retry(*, charge_id: int, now: datetime) -> Charge | None:
    """A new attempt for the bill of a failed charge, to the account's current active default
    (a new key: the failed attempt charged nothing). None when the bill needs no more attempts."""
    with transaction.atomic():
        failed = Charge.objects.select_related("bill").get(pk=charge_id)
        bill = bill_locked_for_new_charge(failed)
        attempts = bill.charges.count()
        if bill.status == Bill.Status.PAID or attempts >= MAX_CHARGE_ATTEMPTS or bill.charges.filter(pk__gt=failed.pk).exists():
            return None
        charge = charge_create(
            bill=bill, method=active_default_method(bill.account_id), kind=failed.kind, attempt=attempts + 1, now=now
        )
    return charge_execute(charge_id=charge.pk, now=now)


def charges_retry_failed(*, now: datetime, batch_size: int = RETRY_BATCH_SIZE) -> RetryReport:
    """Bounded retries, run on a schedule.

    1. Pending charges left by a gateway timeout or a lost task are run again with their SAME
       saved key, so the processor never charges twice (at most MAX_GATEWAY_ATTEMPTS times; a
       charge still pending after that waits for staff, since it may have been made).
    2. Bills whose last charge failed for a reason that may pass (insufficient funds, a decline,
       no usable method) get a new attempt a day later, at most MAX_CHARGE_ATTEMPTS per bill.
       KYC (PAY-5), credit accounts (PAY-6) and 3DS are never retried automatically.
    """
    pending = list(
        Charge.objects.filter(status=Status.PENDING, created_at__lte=now - PENDING_GRACE, attempts__lt=MAX_GATEWAY_ATTEMPTS)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    succeeded = 0
    for charge_id in pending:
        succeeded += charge_execute(charge_id=charge_id, now=now).status == Status.SUCCEEDED
    newer = Charge.objects.filter(bill_id=OuterRef("bill_id"), pk__gt=OuterRef("pk"))
    retryable = list(
        Charge.objects.filter(
            status=Status.FAILED, failure_reason__in=RETRYABLE_REASONS, completed_at__lte=now - FAILED_RETRY_AFTER,
            bill__status__in=Bill.UNPAID_STATUSES, account__credit_approved=False,
        )
        .exclude(kind=Charge.Kind.PAYPAL_PREAUTH)
        .filter(~Exists(newer))
        .annotate(bill_attempts=Count("bill__charges"))
        .filter(bill_attempts__lt=MAX_CHARGE_ATTEMPTS)
        .order_by("completed_at", "pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    retried = 0
    for charge_id in retryable:
        charge = charge_retry(charge_id=charge_id, now=now)
        retried += charge is not None
        succeeded += charge is not None and charge.status == Status.SUCCEEDED
    return RetryReport(pending_retried=len(pending), failed_retried=retried, succeeded=succeeded)
