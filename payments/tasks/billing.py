"""Celery tasks of monthly bill generation (PAY-3, CRED-3): thin wrappers, one service call each
(``payments.services.billing``), retried only on transient database errors
(``billing_backoffice.task_retries``).

Month end (PAY-3): ``generate_monthly_bills`` splits the accounts with unbilled usage into chunks
and enqueues one ``generate_monthly_bills_chunk`` per chunk, so the workers share the run;
``month_end_deduction`` (``payments.tasks.charging``) creates one charge per unpaid monthly
bill. Beat fires both every hour (late usage, late chunks and bills made after the last deduction are picked up by the next
hour), and each firing is one run per window (``billing_backoffice/scheduled_runs.py``):

- the window of a beat firing is the billing period and the beat interval it fell in
  (``2026-10@2026-11-01T03:00:00Z``): a second firing in that hour is skipped, returns 0 and
  enqueues nothing. Not the period alone: the deduction must run again after the chunks have
  made their bills, and late usage must still be billed;
- a message delivered again after its worker died (same task id) runs the job again, and so
  does a later firing once the dead run's lease expired; the chunks and the deduction are
  idempotent, so what the first attempt did is not done twice;
- an explicit ``period`` is an operator's run (``generate_monthly_bills.delay(period="2026-10")``):
  its window is its own message (``2026-10@manual:<task id>``), so it always runs, once per
  message, whatever beat did in the same hour.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from billing_backoffice.scheduled_runs import beat_window, firing_task_id, window_claim, window_finish
from billing_backoffice.task_retries import RETRY_OPTIONS
from payments.services import billing


def previous_period(now: datetime) -> str:
    """The billing month that ended before ``now`` (``YYYY-MM``)."""
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def monthly_window(*, task_name: str, period: str | None, task_id: str, now: datetime) -> tuple[str, str]:
    """The billing period of a monthly job's firing and its window (see the module docstring)."""
    if period:
        period = billing.billing_period(period)
        return period, f"{period}@manual:{task_id}"
    period = previous_period(now)
    return period, f"{period}@{beat_window(task_name=task_name, now=now)}"


@shared_task(bind=True, name="payments.generate_monthly_bills", **RETRY_OPTIONS)
def generate_monthly_bills(self, *, period: str | None = None) -> int:
    """PAY-3: fan out the month's bill generation, one task per chunk of accounts, once per window.

    ``period`` defaults to the month that just ended (a beat firing); given, it is an operator's
    run. Returns how many chunks were enqueued (0 when the window's run belongs to another firing).
    """
    now, task_id = timezone.now(), firing_task_id(self.request)
    period, window = monthly_window(task_name=self.name, period=period, task_id=task_id, now=now)
    run = window_claim(job=self.name, window=window, task_id=task_id, now=now)
    if run is None:
        return 0
    chunks = billing.monthly_bill_chunks(period=period)
    for chunk in chunks:
        generate_monthly_bills_chunk.delay(
            period=period, first_account_id=chunk.first_account_id, last_account_id=chunk.last_account_id
        )
    window_finish(run=run, now=timezone.now())  # after the chunks are sent: a crash before resends them
    return len(chunks)


@shared_task(name="payments.generate_monthly_bills_chunk", **RETRY_OPTIONS)
def generate_monthly_bills_chunk(*, period: str, first_account_id: int, last_account_id: int | None) -> int:
    """PAY-3 / CRED-3: the monthly bills of one chunk of accounts; returns how many were created."""
    chunk = billing.AccountChunk(first_account_id, last_account_id)
    return len(billing.monthly_bills_generate_chunk(period=period, now=timezone.now(), chunk=chunk))
