"""Celery tasks of verification holds (HOLD-2): thin wrappers, one service call each.

Every task is safe to run twice (the services re-check state under a lease, a row lock or a
conditional update) and retries only on transient database errors, a bounded number of times
(``billing_backoffice.task_retries``).
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.task_retries import MAX_RETRIES, RETRY_OPTIONS
from payments.services.holds import HoldNotFound, HoldReleaseInProgress, hold_release, holds_release_due

# The admin's "release now" retries a transient gateway failure a little later.
RELEASE_HOLD_RETRY_COUNTDOWN = 60


@shared_task(name="payments.release_due_holds", **RETRY_OPTIONS)
def release_due_holds() -> int:
    """HOLD-2: void every due verification hold (leased batches, exactly once)."""
    return holds_release_due(now=timezone.now())


@shared_task(bind=True, name="payments.release_hold", **RETRY_OPTIONS)
def release_hold(self, *, hold_id: int) -> str:
    """HOLD-2: release one hold now, as ``SYSTEM``; the periodic job remains the backstop.

    Nothing in the code enqueues it: the admin's "release now" calls ``hold_release`` in the
    request, as the staff member (SEC-3), and shows the outcome at once. This task is for an
    operator who releases a hold by id from outside the admin (``celery call``, a script).
    A release that met a transient gateway failure is recorded on the hold (``release_failed``)
    and retried here with the same void key, a bounded number of times.
    """
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
