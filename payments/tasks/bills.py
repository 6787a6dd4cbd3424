"""Celery task of overdue marking (CRED-3): one service call (``payments.services.bills``), a
conditional UPDATE that is safe to run twice or concurrently, retried only on transient
database errors (``billing_backoffice.task_retries``).
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.task_retries import RETRY_OPTIONS
from payments.services.bills import bills_mark_overdue


@shared_task(name="payments.mark_overdue_bills", **RETRY_OPTIONS)
def mark_overdue_bills() -> int:
    """CRED-3: unpaid bills past their due date become overdue."""
    return bills_mark_overdue(now=timezone.now())
