"""Factories of credit control (CC-1..3) and the notification outbox (NOTIFY-1, NOTIFY-2).

Rows as the reminder job and the notification services would leave them, built directly: for
tests that need them to exist. Tests of the rules go through ``payments.services``.
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from payments.models import CreditHold, Notification, Reminder, ReminderPause

from .accounts import AccountFactory, UserFactory
from .billing import BillFactory


class ReminderFactory(factory.django.DjangoModelFactory):
    """The first reminder of an open bill, a day past its due date."""

    class Meta:
        model = Reminder

    bill = factory.SubFactory(BillFactory)
    account = factory.SelfAttribute("bill.account")
    level = Reminder.Level.FIRST
    days_past_due = 1
    sent_at = factory.LazyFunction(timezone.now)


class CreditHoldFactory(factory.django.DjangoModelFactory):
    """A credit hold in force (CC-2), not tied to a final notice."""

    class Meta:
        model = CreditHold

    account = factory.SubFactory(AccountFactory)
    reminder = None
    started_at = factory.LazyFunction(timezone.now)


class ReminderPauseFactory(factory.django.DjangoModelFactory):
    """A week's pause of an account's reminders (CC-3), started by a staff user."""

    class Meta:
        model = ReminderPause

    account = factory.SubFactory(AccountFactory)
    reason = "Customer disputes the bill"
    started_at = factory.LazyFunction(timezone.now)
    ends_at = factory.LazyAttribute(lambda o: o.started_at + timedelta(days=7))
    created_by = factory.SubFactory(UserFactory)


class NotificationFactory(factory.django.DjangoModelFactory):
    """A console message waiting to be read (NOTIFY-1)."""

    class Meta:
        model = Notification

    account = factory.SubFactory(AccountFactory)
    kind = Notification.Kind.BILL_OVERDUE
    channel = Notification.Channel.CONSOLE
    event_key = factory.Sequence(lambda n: f"event-factory:{n}")
    title = "A bill is overdue"
    body = "Your bill is overdue."
    created_at = factory.LazyFunction(timezone.now)
