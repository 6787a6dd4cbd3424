"""Celery tasks of the remittances app.

``remittances.import_statement_inbox`` imports every statement file dropped into
``settings.STATEMENT_INBOX_DIR`` (REM-4) and retries the refused ones, boundedly: see
``remittances/services/inbox.py`` for how files are claimed, filed away and retried.
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
