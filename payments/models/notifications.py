"""The customer notification outbox (NOTIFY-1, NOTIFY-2).

One row per event and channel, written in the same transaction as the event: the unique
``(event_key, channel)`` makes a replayed event notify nobody twice. The console channel is
delivered by being stored (the console reads it through the API); the e-mail channel is sent
after commit by a task, with bounded attempts, and its outcome recorded here.

Nothing here ever holds more of a card than its last four digits: the services put ``last4``
into ``params``, never a number, and the text is checked for card numbers before it is stored.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .accounts import Account


class Notification(models.Model):
    class Kind(models.TextChoices):
        CARD_LINK_FAILED = "card_link_failed", "A card link failed"
        THREE_DS_WAITING = "three_ds_waiting", "A 3-D Secure challenge waits"
        CHARGE_FAILED = "charge_failed", "A charge failed"
        CARD_EXPIRING = "card_expiring", "A card expires soon"
        BILL_OVERDUE = "bill_overdue", "A bill is overdue (reminder)"
        CREDIT_HOLD_STARTED = "credit_hold_started", "Credit hold started"
        CREDIT_HOLD_ENDED = "credit_hold_ended", "Credit hold ended"
        CREDIT_APPLICATION_DECIDED = "credit_application_decided", "Credit application decided"
        CLAIM_DECIDED = "claim_decided", "Remittance claim decided"
        TRANSFER_CREDITED = "transfer_credited", "Transfer credited"

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        CONSOLE = "console", "Console message"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for delivery"
        SENDING = "sending", "Being delivered"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (attempts used up)"
        SKIPPED = "skipped", "Not sent (no address)"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    event_key = models.CharField(max_length=160, help_text="The event that caused it (unique per channel).")
    language = models.CharField(max_length=8, default="en")
    title = models.CharField(max_length=200)
    body = models.TextField()
    link = models.URLField(max_length=500, blank=True)
    params = models.JSONField(default=dict, blank=True)
    recipient = models.EmailField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("retry_notification", "Can send a failed notification again (NOTIFY-2)")]
        indexes = [
            # The console's messages, newest first (cursor on id).
            models.Index(fields=["account", "channel", "-id"], name="notification_account_channel"),
            # The sweep and the failed-deliveries list.
            models.Index(fields=["status", "created_at"], name="notification_undelivered",
                         condition=Q(status__in=["pending", "sending", "failed"])),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event_key", "channel"], name="notification_once_per_event_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_channel_display()}, {self.get_status_display().lower()})"
