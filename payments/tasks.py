"""Celery tasks of the payments app: thin wrappers, one service call each.

Every task is safe to run twice (the services re-check state under a lease, a row lock or a
conditional update) and retries only on transient database errors, a bounded number of times,
with countdowns far below the broker's visibility timeout (3600 s), so Redis never redelivers a
task that is merely waiting for its retry. ``acks_late`` is set globally in the settings.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from payments.services.holds import HoldNotFound, HoldReleaseInProgress, hold_release, holds_release_due
from payments.services.lifecycle import accounts_close_silent, cards_expire, verifications_fail_abandoned

TRANSIENT_ERRORS = (OperationalError, InterfaceError)
MAX_RETRIES = 3
# Exponential backoff 30 s, 60 s, 120 s (plus jitter), never more than RETRY_BACKOFF_MAX.
RETRY_BACKOFF = 30
RETRY_BACKOFF_MAX = 300
RETRY_OPTIONS = dict(
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=MAX_RETRIES,
    retry_backoff=RETRY_BACKOFF,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=True,
)
# The admin's "release now" retries a transient gateway failure a little later.
RELEASE_HOLD_RETRY_COUNTDOWN = 60


@shared_task(name="payments.release_due_holds", **RETRY_OPTIONS)
def release_due_holds() -> int:
    """HOLD-2: void every due verification hold (leased batches, exactly once)."""
    return holds_release_due(now=timezone.now())


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


@shared_task(bind=True, name="payments.release_hold", **RETRY_OPTIONS)
def release_hold(self, *, hold_id: int) -> str:
    """HOLD-2: release one hold now (the admin's action); the periodic job remains the backstop."""
    try:
        hold = hold_release(hold_id=hold_id, now=timezone.now())
    except HoldNotFound:
        return "not_found"
    except HoldReleaseInProgress:
        return "in_progress"  # a release run holds the lease and is voiding it right now
    if hold.status == hold.Status.RELEASE_FAILED:
        # Transient gateway failure, recorded on the hold; retried with the same void key.
        raise self.retry(countdown=RELEASE_HOLD_RETRY_COUNTDOWN, max_retries=MAX_RETRIES)
    return hold.status
