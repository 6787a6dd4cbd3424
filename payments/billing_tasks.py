"""Celery tasks of charging (PAY-1..6, HOLD-4): thin wrappers, one service call each.

Every task takes ids, is safe to run twice (the services create each bill and charge once, by
unique references and saved idempotency keys, and record outcomes by conditional updates) and
retries only transient database errors, with the bounded backoff of ``payments.tasks``.

Month end: ``generate_monthly_bills`` splits the accounts with unbilled usage into chunks and
enqueues one ``generate_monthly_bills_chunk`` per chunk, so the workers share the run. If beat
fires twice in one window, the second run finds no unbilled usage left and creates nothing.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from payments.services import billing, charging
from payments.tasks import RETRY_OPTIONS


def previous_period(now: datetime) -> str:
    """The billing month that ended before ``now`` (``YYYY-MM``)."""
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@shared_task(name="payments.execute_charge", **RETRY_OPTIONS)
def execute_charge(*, charge_id: int) -> str:
    """Run one pending charge at the gateway with its saved key; a replay changes nothing."""
    try:
        return charging.charge_execute(charge_id=charge_id, now=timezone.now()).status
    except charging.ChargeNotFound:
        return "not_found"


@shared_task(name="payments.place_paypal_preauth", **RETRY_OPTIONS)
def place_paypal_preauth(*, account_id: int) -> str:
    """HOLD-4: the PayPal pre-authorization when an account's pay-as-you-go charges start."""
    charge = charging.paypal_preauth_place(account_id=account_id, now=timezone.now())
    return charge.status if charge else "not_needed"


@shared_task(name="payments.charge_usage_thresholds", **RETRY_OPTIONS)
def charge_usage_thresholds() -> int:
    """PAY-2: charge every account whose unbilled usage reached its threshold."""
    return charging.threshold_charges_run(now=timezone.now())


@shared_task(name="payments.generate_monthly_bills", **RETRY_OPTIONS)
def generate_monthly_bills(*, period: str | None = None) -> int:
    """PAY-3: fan out the month's bill generation, one task per chunk of accounts.

    ``period`` defaults to the month that just ended. Returns how many chunks were enqueued.
    """
    period = billing.billing_period(period or previous_period(timezone.now()))
    chunks = billing.monthly_bill_chunks(period=period)
    for chunk in chunks:
        generate_monthly_bills_chunk.delay(
            period=period, first_account_id=chunk.first_account_id, last_account_id=chunk.last_account_id
        )
    return len(chunks)


@shared_task(name="payments.generate_monthly_bills_chunk", **RETRY_OPTIONS)
def generate_monthly_bills_chunk(*, period: str, first_account_id: int, last_account_id: int | None) -> int:
    """PAY-3 / CRED-3: the monthly bills of one chunk of accounts; returns how many were created."""
    chunk = billing.AccountChunk(first_account_id, last_account_id)
    return len(billing.monthly_bills_generate_chunk(period=period, now=timezone.now(), chunk=chunk))


@shared_task(name="payments.month_end_deduction", **RETRY_OPTIONS)
def month_end_deduction(*, period: str | None = None) -> int:
    """PAY-3: one charge per unpaid monthly bill of the period (not credit accounts, PAY-6)."""
    period = billing.billing_period(period or previous_period(timezone.now()))
    return charging.month_end_deduction_run(period=period, now=timezone.now())


@shared_task(name="payments.retry_failed_charges", **RETRY_OPTIONS)
def retry_failed_charges() -> dict:
    """Pending charges again with their saved keys; transient failures again, within bounds."""
    report = charging.charges_retry_failed(now=timezone.now())
    return {"pending_retried": report.pending_retried, "failed_retried": report.failed_retried, "succeeded": report.succeeded}
