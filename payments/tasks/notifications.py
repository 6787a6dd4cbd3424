"""Celery tasks of customer notifications (NOTIFY-1, NOTIFY-2): ids in, one service call each.

``deliver_notifications`` sends e-mails after the commit of their event (the services enqueue it
by name, ``billing_backoffice.enqueue``); an e-mail whose attempt failed is retried by this task
a bounded number of times, and ``sweep_notifications`` (beat) sends what a crash left behind.
``notify_expiring_cards`` (beat, daily) tells of cards expiring within 30 days.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.task_retries import MAX_RETRIES, RETRY_OPTIONS
from payments.models import Notification
from payments.services import customer_events, notifications

DELIVERY_RETRY_COUNTDOWN = 60


@shared_task(bind=True, name="payments.deliver_notifications", **RETRY_OPTIONS)
def deliver_notifications(self, *, notification_ids: list[int]) -> dict:
    """NOTIFY-2: send these e-mails; those whose attempt failed are retried, bounded."""
    outcomes = {
        pk: notifications.notification_deliver(notification_id=pk, now=timezone.now()) for pk in notification_ids
    }
    again = [pk for pk, status in outcomes.items() if status == Notification.Status.PENDING]
    if again and self.request.retries < MAX_RETRIES and self.request.id:
        raise self.retry(kwargs={"notification_ids": again}, countdown=DELIVERY_RETRY_COUNTDOWN, max_retries=MAX_RETRIES)
    return {str(pk): status for pk, status in outcomes.items()}


@shared_task(name="payments.sweep_notifications", **RETRY_OPTIONS)
def sweep_notifications() -> int:
    """NOTIFY-2 (beat): e-mails committed but never sent (a crash) are sent, once."""
    return notifications.notifications_sweep(now=timezone.now())


@shared_task(name="payments.notify_expiring_cards", **RETRY_OPTIONS)
def notify_expiring_cards() -> int:
    """NOTIFY-1 (beat, daily): cards expiring within 30 days, once per card and expiry."""
    return customer_events.cards_expiring_notify(now=timezone.now())
