"""Celery tasks of the remittances app.

``remittances.import_statement_inbox`` imports every statement file dropped into
``settings.STATEMENT_INBOX_DIR`` (REM-4) and retries the refused ones, boundedly: see
``remittances/services/inbox.py`` for how files are claimed, filed away and retried.
``remittances.generate_payment_files`` (beat) puts every approved refund into the next outgoing
pain.001 file (RFD-1); ``remittances.reconcile_day`` (beat) is the daily proof (RCN-1..3).
``remittances.import_uploaded_statement`` imports a file finance uploaded in the admin, as a staff
job with a progress page (``remittances/services/statement_uploads.py``).
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from remittances.services.inbox import TRANSIENT_ERRORS, statement_inbox_import


@shared_task(
    name="remittances.import_statement_inbox",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=3,
    retry_backoff=30,
    retry_backoff_max=300,
    retry_jitter=True,
)
def import_statement_inbox() -> dict:
    """REM-4: import each file of the statement inbox once; returns what happened to each."""
    return statement_inbox_import(now=timezone.now())


@shared_task(
    bind=True,
    name="remittances.import_uploaded_statement",
    autoretry_for=TRANSIENT_ERRORS,  # a database blip: the job is taken over and the file imported again
    max_retries=3,
    retry_backoff=30,
    retry_backoff_max=300,
    retry_jitter=True,
)
def import_uploaded_statement(self, *, job_id: int) -> int:
    """A statement finance uploaded in the admin (a staff job, ``statement_uploads.py``)."""
    from remittances.services.statement_uploads import statement_upload_run

    statement_upload_run(job_id=job_id, now=timezone.now(), run_id=self.request.id or "")
    return job_id


@shared_task(
    bind=True,
    name="remittances.reconcile_day",
    autoretry_for=TRANSIENT_ERRORS,  # a database blip: the same day again (idempotent per day)
    max_retries=3,
    retry_backoff=30,
    retry_backoff_max=300,
    retry_jitter=True,
)
def reconcile_day(self, *, day: str | None = None) -> int:
    """RCN-1..3 (beat, daily): the proof of ``day`` (default yesterday, UTC) once per window,
    for every receiving account without one (``reconciliation_run`` is idempotent per day)."""
    from datetime import date, timedelta

    from billing_backoffice.scheduled_runs import firing_task_id, window_claim, window_finish
    from remittances.services.reconciliation import reconciliation_run

    now = timezone.now()
    target = date.fromisoformat(day) if day else now.date() - timedelta(days=1)
    run = window_claim(job=self.name, window=target.isoformat(), task_id=firing_task_id(self.request), now=now)
    if run is None:
        return 0
    recorded = reconciliation_run(day=target, now=now)
    window_finish(run=run, now=timezone.now())
    return recorded


@shared_task(
    name="remittances.generate_payment_files",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=3,
    retry_backoff=30,
    retry_backoff_max=300,
    retry_jitter=True,
)
def generate_payment_files() -> int:
    """RFD-1 (beat): every approved refund not in a file yet goes into the next pain.001 file, one
    per debtor account and currency; returns how many files. Each refund lands in exactly one file
    (``payment_files_generate`` locks with SKIP LOCKED and moves refunds conditionally), so a
    second delivery, or a finance member generating at the same moment, writes nothing twice."""
    from billing_backoffice.permissions import SYSTEM
    from remittances.services.payment_files import payment_files_generate

    return len(payment_files_generate(actor=SYSTEM, now=timezone.now()))
