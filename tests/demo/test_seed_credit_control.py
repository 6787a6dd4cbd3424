"""seed_demo's credit control and mailbox (CC-1..3, NOTIFY-1): every level, a hold, a pause and
console messages; a second seed writes nothing; the same at any hour (midnight included)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from billing_backoffice.demo import seed as demo
from billing_backoffice.demo.seed_credit_control import credit_control_counts
from payments.models import CreditHold, Notification, Reminder, ReminderPause
from payments.services import credit_control as cc

pytestmark = pytest.mark.django_db


def state() -> tuple:
    return (
        sorted(Reminder.objects.values_list("bill_id", "level", "sent_at")),
        sorted(CreditHold.objects.values_list("account_id", "started_at", "lifted_at")),
        sorted(ReminderPause.objects.values_list("account_id", "started_at", "ends_at", "ended_at")),
        sorted(Notification.objects.values_list("event_key", "channel")),
    )


def assert_shows_everything(counts: dict) -> None:
    assert all(counts[f"reminders at level {level}"] > 0 for level in (1, 2, 3)), counts
    assert counts["credit holds in force"] > 0 and counts["reminder pauses"] == 1, counts
    assert counts["console messages"] > 0 and counts["e-mails"] == counts["console messages"], counts


def test_cc_1_cc_2_cc_3_notify_1_seed_demo_shows_every_level_a_hold_a_pause_and_a_mailbox(now):
    demo.seed_demo(now=now, password="pw")
    assert_shows_everything(credit_control_counts())
    assert set(Notification.objects.filter(channel="console").values_list("kind", flat=True)) >= {
        "bill_overdue", "credit_hold_started"
    }
    # What the job would find at ``now``: nothing more to send, no hold to lift (CC-2: each hold
    # is of an account still overdue and at its final level).
    assert all(cc.reminders_send_chunk(account_ids=chunk, now=now).reminders == 0
               for chunk in cc.reminder_due_chunks(now=now))
    assert cc.credit_holds_lift_settled(now=now) == 0
    for hold in CreditHold.objects.filter(lifted_at__isnull=True):
        assert Reminder.objects.filter(account_id=hold.account_id, level=3, bill__status__in=cc.UNPAID).exists()

    before = state()
    demo.seed_demo(now=now, password="pw")  # idempotent
    assert state() == before


@pytest.mark.parametrize("hour, minute", [(0, 0), (23, 59)])
def test_cc_1_seed_demo_credit_control_is_midnight_safe(hour, minute, settings):
    at = datetime(2026, 11, 26, hour, minute, tzinfo=timezone.utc)
    demo.seed_demo(now=at, password="pw")
    assert_shows_everything(credit_control_counts())
    before = state()
    demo.seed_demo(now=at, password="pw")
    assert state() == before
