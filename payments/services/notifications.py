"""The notification outbox (NOTIFY-1, NOTIFY-2): write in the event's transaction, deliver after.

- ``notify`` / ``notify_many``: the services of the events call one of these inside the
  transaction of the event. Each event gives one console message (delivered by being stored: the
  console reads it through the API) and one e-mail (``pending``, or ``skipped`` when the account
  has no address). ``(event_key, channel)`` is unique and the rows are inserted with
  ``ON CONFLICT DO NOTHING``: an event replayed, or a job run twice, notifies nobody again.
  The e-mails are handed to a task once the transaction commits (``transaction.on_commit``),
  so a rolled-back event sends nothing.
- ``notification_deliver``: one e-mail, claimed by a conditional UPDATE (``pending`` ->
  ``sending`` with a lease) so two workers never both send it; sent through Django's e-mail
  framework outside any lock; the outcome recorded. A failure leaves it ``pending`` for a retry,
  ``failed`` once ``MAX_ATTEMPTS`` are used up (staff may retry it from the admin).
- ``notifications_sweep``: e-mails that a crash left behind (committed, task lost; or a worker
  that died while ``sending``) are claimed in batches with ``FOR UPDATE SKIP LOCKED`` and sent.

Card data: texts and params are passed through the log redaction (SEC-1) before they are
stored, so even a careless caller cannot put a card number into a message; callers pass last4.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import F, Q
from django.template.loader import select_template

from billing_backoffice.enqueue import enqueue_on_commit
from billing_backoffice.logging import redact_card_numbers, redact_value
from billing_backoffice.permissions import staff_require
from payments.models import Account, Notification
from payments.notification_texts import language_for_country, message_text, text_language
from payments.errors import (  # noqa: F401 (raised here, importable from here)
    NotificationNotFailed,
    NotificationNotFound,
)

logger = logging.getLogger(__name__)

Channel, Status = Notification.Channel, Notification.Status
MAX_ATTEMPTS = 5
# A delivery's claim; far longer than an SMTP call's timeout, so a live sender always owns it.
SEND_LEASE = timedelta(minutes=5)
# The sweep leaves younger rows to the task that commit started.
SWEEP_GRACE = timedelta(minutes=2)
SWEEP_BATCH = 200
RETRY_PERMISSION = "payments.retry_notification"


@dataclass(frozen=True)
class Event:
    account_id: int
    kind: str
    event_key: str
    params: dict = field(default_factory=dict)
    link: str = ""


def notify(*, account_id: int, kind: str, event_key: str, params: dict, now: datetime, link: str = "") -> None:
    """NOTIFY-1/2: one event's console message and e-mail, in the caller's transaction."""
    notify_many(events=[Event(account_id, kind, event_key, params, link)], now=now)


def notify_many(*, events: list[Event], now: datetime) -> int:
    """Several events at once (a reminder chunk): one INSERT; returns the rows written.

    One ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING``: column arrays
    instead of one parameter per value (a chunk writes thousands of rows), and the e-mails that
    were really inserted come back to be enqueued; a replayed event inserts and enqueues nothing.
    """
    if not events:
        return 0
    accounts = Account.objects.only("pk", "country", "email").in_bulk({event.account_id for event in events})
    rows = []
    for event in events:
        account = accounts.get(event.account_id)
        if account is not None:
            rows.extend(_rows(event, account, now=now))
    if not rows:
        return 0
    columns = list(zip(*rows))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [list(column) for column in columns])
        written = cursor.fetchall()
    pending = sorted(pk for pk, channel, status in written if channel == Channel.EMAIL and status == Status.PENDING)
    if pending:
        enqueue_on_commit(DELIVER_TASK, notification_ids=pending)
    return len(written)


_COLUMNS = (
    ("account_id", "bigint"), ("kind", "text"), ("channel", "text"), ("event_key", "text"), ("language", "text"),
    ("title", "text"), ("body", "text"), ("link", "text"), ("params", "text"), ("recipient", "text"),
    ("status", "text"), ("created_at", "timestamptz"), ("delivered_at", "timestamptz"),
)
_INSERT_SQL = f"""
    INSERT INTO {Notification._meta.db_table} ({", ".join(name for name, _ in _COLUMNS)}, attempts, last_error)
    SELECT {", ".join(f"u.{name}::jsonb" if name == "params" else f"u.{name}" for name, _ in _COLUMNS)}, 0, ''
    FROM unnest({", ".join(f"%s::{kind}[]" for _, kind in _COLUMNS)}) AS u({", ".join(name for name, _ in _COLUMNS)})
    ON CONFLICT (event_key, channel) DO NOTHING
    RETURNING id, channel, status
"""


def _rows(event: Event, account: Account, *, now: datetime) -> list[tuple]:
    """The console message (delivered by being stored) and the e-mail of one event, as rows."""
    language = text_language(kind=event.kind, language=language_for_country(account.country))
    params = redact_value({key: str(value) for key, value in event.params.items()})
    title, body = (redact_card_numbers(text) for text in message_text(kind=event.kind, language=language, params=params))
    common = (event.kind,)
    text = (event.event_key[:160], language, title[:200], body, event.link, json.dumps(params))
    email_status = Status.PENDING if account.email else Status.SKIPPED
    return [
        (account.pk, *common, Channel.CONSOLE, *text, "", Status.DELIVERED, now, now),
        (account.pk, *common, Channel.EMAIL, *text, account.email, email_status, now, None),
    ]


DELIVER_TASK = "payments.deliver_notifications"


# -- delivery ------------------------------------------------------------------------------------


def notification_deliver(*, notification_id: int, now: datetime) -> str:
    """Send one e-mail if it is still to be sent; returns its status afterwards."""
    claimed = (
        Notification.objects.filter(pk=notification_id, channel=Channel.EMAIL)
        .filter(Q(status=Status.PENDING) | Q(status=Status.SENDING, lease_until__lte=now))
        .update(status=Status.SENDING, lease_until=now + SEND_LEASE, attempts=F("attempts") + 1)
    )
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return "not_found"
    if not claimed:
        return notification.status  # delivered, failed, or another worker is sending it now
    return _send_claimed(notification, now=now)


def notifications_sweep(*, now: datetime, batch_size: int = SWEEP_BATCH) -> int:
    """E-mails committed but never sent (a lost task, a dead worker): claim a batch, send each.

    Returns how many were delivered. Concurrent sweeps skip each other's rows (SKIP LOCKED) and
    the claim is a status change in the same statement, so each row is sent by one sweep."""
    with transaction.atomic():
        stale = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(channel=Channel.EMAIL)
            .filter(
                Q(status=Status.PENDING, created_at__lte=now - SWEEP_GRACE)
                & (Q(lease_until__isnull=True) | Q(lease_until__lte=now))
                | Q(status=Status.SENDING, lease_until__lte=now)
            )
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        ids = list(stale)
        Notification.objects.filter(pk__in=ids).update(
            status=Status.SENDING, lease_until=now + SEND_LEASE, attempts=F("attempts") + 1
        )
    delivered = 0
    for notification in Notification.objects.filter(pk__in=ids).order_by("pk"):
        delivered += _send_claimed(notification, now=now) == Status.DELIVERED
    return delivered


def _send_claimed(notification: Notification, *, now: datetime) -> str:
    try:
        _send_email(notification)
    except Exception as error:  # noqa: BLE001  (any failure of the mail server is recorded, bounded)
        gave_up = notification.attempts >= MAX_ATTEMPTS
        status = Status.FAILED if gave_up else Status.PENDING
        Notification.objects.filter(pk=notification.pk, status=Status.SENDING).update(
            status=status, lease_until=None if gave_up else now + _backoff(notification.attempts),
            last_error=redact_card_numbers(f"{type(error).__name__}: {error}")[:300],
        )
        logger.warning("NOTIFY-2: e-mail %s failed (attempt %s): %s", notification.pk, notification.attempts,
                       type(error).__name__)
        return status
    Notification.objects.filter(pk=notification.pk, status=Status.SENDING).update(
        status=Status.DELIVERED, delivered_at=now, lease_until=None, last_error=""
    )
    return Status.DELIVERED


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 1800))


def _send_email(notification: Notification) -> None:
    names = [f"notifications/email.{notification.language}", "notifications/email"]
    context = {"notification": notification, "title": notification.title, "body": notification.body,
               "link": notification.link}
    text = select_template([f"{name}.txt" for name in names]).render(context)
    html = select_template([f"{name}.html" for name in names]).render(context)
    message = EmailMultiAlternatives(
        subject=notification.title, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[notification.recipient]
    )
    message.attach_alternative(html, "text/html")
    message.send()


@transaction.atomic
def notification_retry(*, notification_id: int, actor, now: datetime) -> Notification:
    """Staff send a failed e-mail again (fresh attempts); delivered after commit."""
    staff_require(actor, permission=RETRY_PERMISSION, action="retry notifications")
    try:
        notification = Notification.objects.select_for_update().get(pk=notification_id)
    except Notification.DoesNotExist:
        raise NotificationNotFound() from None
    if notification.status != Status.FAILED:
        raise NotificationNotFailed()
    notification.status, notification.attempts, notification.lease_until = Status.PENDING, 0, None
    notification.save(update_fields=["status", "attempts", "lease_until"])
    enqueue_on_commit(DELIVER_TASK, notification_ids=[notification.pk])
    return notification


@transaction.atomic
def message_mark_read(*, message_id: int, now: datetime) -> Notification:
    """The console read one of its messages; reading it again keeps the first time."""
    Notification.objects.filter(pk=message_id, channel=Channel.CONSOLE, read_at__isnull=True).update(read_at=now)
    try:
        return Notification.objects.get(pk=message_id, channel=Channel.CONSOLE)
    except Notification.DoesNotExist:
        raise NotificationNotFound("No such message.") from None
