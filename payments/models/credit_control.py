"""Credit control (CC-1..3): reminders per bill and level, credit holds, reminder pauses.

Every row is audited (SEC-2, ``billing_backoffice.audit.track``): a reminder sent, a hold placed
or lifted, a pause started or ended is an audit event with its actor, in the same transaction.
The "at most one" rules live in the database: one reminder per bill and level, one hold and one
pause in force per account.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from billing_backoffice import audit

from .accounts import Account
from .billing import Bill

# CC-3: a pause lasts at most this long.
MAX_PAUSE = timedelta(days=30)


@audit.track("rem")
class Reminder(models.Model):
    """CC-1: one reminder of one bill at one level (1 = a day late, 3 = final notice)."""

    class Level(models.IntegerChoices):
        FIRST = 1, "First reminder"
        SECOND = 2, "Second reminder"
        FINAL = 3, "Final notice"

    bill = models.ForeignKey(Bill, on_delete=models.PROTECT, related_name="reminders")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="reminders")
    level = models.PositiveSmallIntegerField(choices=Level.choices)
    days_past_due = models.PositiveIntegerField()
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-sent_at", "-id"]
        indexes = [models.Index(fields=["account", "-level"], name="reminder_account_level")]
        constraints = [
            models.UniqueConstraint(fields=["bill", "level"], name="reminder_once_per_bill_level"),
            models.CheckConstraint(name="reminder_level_range", condition=Q(level__gte=1) & Q(level__lte=3)),
        ]

    def __str__(self) -> str:
        return f"{self.get_level_display()} of bill {self.bill.reference}"


@audit.track("chold")
class CreditHold(models.Model):
    """CC-2: new orders refused while ``lifted_at`` is empty; at most one in force per account."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credit_holds")
    reminder = models.ForeignKey(
        Reminder, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The final notice that put the account on hold.",
    )
    started_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Empty when the hold lifted by itself (nothing overdue any more).",
    )
    lift_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [("lift_credithold", "Can lift a credit hold early, with a reason (CC-2)")]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(lifted_at__isnull=True), name="credit_hold_one_in_force"
            ),
            models.CheckConstraint(
                name="credit_hold_staff_lift_has_reason",
                condition=Q(lifted_by__isnull=True) | ~Q(lift_reason=""),
            ),
        ]

    def __str__(self) -> str:
        state = "in force" if self.lifted_at is None else f"lifted {self.lifted_at:%Y-%m-%d}"
        return f"Credit hold of account {self.account.uid} ({state})"


@audit.track("rpause")
class ReminderPause(models.Model):
    """CC-3: no reminders for the account from ``started_at`` until ``ends_at`` (<= 30 days) or an
    earlier end. A pause past ``ends_at`` is over whether or not ``ended_at`` was filled in yet
    (the reminder job fills it in, recording the end)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="reminder_pauses")
    reason = models.CharField(max_length=500)
    started_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [("pause_reminderpause", "Can pause and resume an account's reminders (CC-3)")]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(ended_at__isnull=True), name="reminder_pause_one_in_force"
            ),
            models.CheckConstraint(
                name="reminder_pause_at_most_30_days",
                condition=Q(ends_at__gt=F("started_at")) & Q(ends_at__lte=F("started_at") + MAX_PAUSE),
            ),
            models.CheckConstraint(name="reminder_pause_has_reason", condition=~Q(reason="")),
        ]

    def __str__(self) -> str:
        return f"Reminders of account {self.account.uid} paused until {self.ends_at:%Y-%m-%d}"
