"""Celery tasks of the payment methods' and accounts' life cycle (DEL-5, LINK-2, LINK-5, LINK-6):
one service call each (``payments.services.lifecycle``), safe to run twice, retried only on
transient database errors (``billing_backoffice.task_retries``).
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.task_retries import RETRY_OPTIONS
from payments.services.lifecycle import accounts_close_silent, cards_expire, verifications_fail_abandoned


@shared_task(name="payments.expire_cards", **RETRY_OPTIONS)
def expire_cards() -> int:
    """DEL-5: cards pass to expired after the last day of their expiry month."""
    return cards_expire(now=timezone.now())


@shared_task(name="payments.fail_abandoned_verifications", **RETRY_OPTIONS)
def fail_abandoned_verifications() -> int:
    """LINK-5 / LINK-6: fail abandoned 3DS challenges and unapproved PayPal agreements."""
    return verifications_fail_abandoned(now=timezone.now())


@shared_task(name="payments.close_silent_accounts", **RETRY_OPTIONS)
def close_silent_accounts() -> int:
    """LINK-2: close accounts whose 15-day silent period is over, releasing their methods."""
    return accounts_close_silent(now=timezone.now())
