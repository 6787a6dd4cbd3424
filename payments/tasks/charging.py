"""Celery tasks of charging (PAY-1..6, HOLD-4): thin wrappers, one service call each (``charge_execution``,
``usage``, ``scheduled_charging``).

Every task takes ids, is safe to run twice (the services create each charge once, by unique
references and saved idempotency keys, and record outcomes by conditional updates) and retries
only transient database errors, with the bounded backoff of ``billing_backoffice.task_retries``.

``month_end_deduction`` (PAY-3) runs once per window like ``payments.tasks.billing``'s monthly
bill generation (the module docstring there says how a window is chosen), after the bills are made.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.scheduled_runs import firing_task_id, window_claim, window_finish
from billing_backoffice.task_retries import RETRY_OPTIONS
from payments.services import charge_execution, scheduled_charging, usage
from payments.tasks.billing import monthly_window


@shared_task(name="payments.execute_charge", **RETRY_OPTIONS)
def execute_charge(*, charge_id: int) -> str:
    """Run one pending charge at the gateway with its saved key; a replay changes nothing."""
    try:
        return charge_execution.charge_execute(charge_id=charge_id, now=timezone.now()).status
    except charge_execution.ChargeNotFound:
        return "not_found"


@shared_task(name="payments.place_paypal_preauth", **RETRY_OPTIONS)
def place_paypal_preauth(*, account_id: int) -> str:
    """HOLD-4: the PayPal pre-authorization when an account's pay-as-you-go charges start."""
    charge = usage.paypal_preauth_place(account_id=account_id, now=timezone.now())
    return charge.status if charge else "not_needed"


@shared_task(name="payments.charge_usage_thresholds", **RETRY_OPTIONS)
def charge_usage_thresholds() -> int:
    """PAY-2: charge every account whose unbilled usage reached its threshold."""
    return scheduled_charging.threshold_charges_run(now=timezone.now())


@shared_task(bind=True, name="payments.month_end_deduction", **RETRY_OPTIONS)
def month_end_deduction(self, *, period: str | None = None) -> int:
    """PAY-3: one charge per unpaid monthly bill of the period (not credit accounts, PAY-6), once
    per window; ``period`` as in ``generate_monthly_bills``. Returns how many charges were created."""
    now, task_id = timezone.now(), firing_task_id(self.request)
    period, window = monthly_window(task_name=self.name, period=period, task_id=task_id, now=now)
    run = window_claim(job=self.name, window=window, task_id=task_id, now=now)
    if run is None:
        return 0
    created = scheduled_charging.month_end_deduction_run(period=period, now=now)
    window_finish(run=run, now=timezone.now())
    return created


@shared_task(name="payments.retry_failed_charges", **RETRY_OPTIONS)
def retry_failed_charges() -> dict:
    """Pending charges again with their saved keys; transient failures again, within bounds."""
    report = scheduled_charging.charges_retry_failed(now=timezone.now())
    return {"pending_retried": report.pending_retried, "failed_retried": report.failed_retried, "succeeded": report.succeeded}
