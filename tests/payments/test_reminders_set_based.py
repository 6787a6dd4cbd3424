"""The reminder job's one statement per chunk (CC-1, CC-2, NOTIFY-2) and its poison isolation.

The chunk writes its reminders, holds and their notifications in one SQL statement, the texts
rendered by the database (payments/services/notification_sql.py). These tests hold that path to
the Python outbox (``notify_many``) row for row, send anything like a card number through the
Python path's redaction, and check that one account the database refuses never stops a chunk.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from billing_backoffice.item_failures import MAX_ATTEMPTS, job_item_failure_retry, retry_delay
from billing_backoffice.models import JobItemFailure
from payments.models import Bill, CreditHold, Notification, Reminder
from payments.services import credit_control as cc
from payments.services.notifications import Event, notify_many
from payments.services.reminders import REMINDER_JOB
from tests.factories import AccountFactory
from tests.payments.invariants import make_bill

pytestmark = pytest.mark.django_db
FIELDS = ("kind", "channel", "language", "title", "body", "link", "params", "recipient", "status", "delivered_at")


def overdue_bill(account, now, *, days_late: int, total="100.00"):
    return make_bill(account, total, issued_at=now - timedelta(days=days_late + 30), due_date=now.date() - timedelta(days=days_late))


def rows(account) -> dict:
    return {
        (n.event_key, n.channel): tuple(getattr(n, name) for name in FIELDS)
        for n in Notification.objects.filter(account=account)
    }


def test_notify_2_cc_1_the_sql_outbox_writes_what_notify_many_writes(now):
    """NOTIFY-2 / CC-1 / CC-2: every level and the hold, in English and German, with and without
    an address: the statement's rows equal the Python outbox's for the same events."""
    english, german, silent = AccountFactory(country="US"), AccountFactory(country="DE"), AccountFactory(email="")
    for account in (english, german, silent):
        overdue_bill(account, now, days_late=20, total="123.45")
    for day in range(3):  # levels 1, 2, 3 and the hold, a day apart
        cc.reminders_send_chunk(account_ids=[english.pk, german.pk, silent.pk], now=now + timedelta(days=day))
    for account in (english, german, silent):
        written = rows(account)
        assert {key[0].split(":")[-1] for key in written if key[0].startswith("cc1:")} == {"1", "2", "3"}
        assert any(key[0].startswith("cc2:hold:") for key in written)
        replayed = [
            Event(account.pk, n.kind, f"python:{n.event_key}", n.params, n.link)
            for n in Notification.objects.filter(account=account, channel="console")
        ]
        notify_many(events=replayed, now=now + timedelta(days=2))
        python = {(key[len("python:"):], channel): row for (key, channel), row in rows(account).items()
                  if key.startswith("python:")}
        sql_rows = {key: row for key, row in written.items()}
        for key, row in sql_rows.items():  # created_at differs by day; delivered_at of console too
            assert python[key][:-1] == row[:-1], key
    german_title = Notification.objects.filter(account=german, kind="bill_overdue", channel="email").first().title
    assert "überfällig" in german_title
    assert set(Notification.objects.filter(account=silent, channel="email").values_list("status", flat=True)) == {"skipped"}
    assert set(Notification.objects.filter(account=english, channel="email").values_list("status", flat=True)) == {"pending"}


def test_notify_2_a_card_like_reference_goes_through_the_redaction(now):
    """NOTIFY-2 / SEC-1: a bill reference holding a card number is never shown; the event still
    gets its two notifications, once."""
    account = AccountFactory()
    bill = overdue_bill(account, now, days_late=2)
    Bill.objects.filter(pk=bill.pk).update(reference="ord-4111 1111 1111 1111")
    cc.reminders_send_chunk(account_ids=[account.pk], now=now)
    cc.reminders_send_chunk(account_ids=[account.pk], now=now)
    notes = Notification.objects.filter(account=account, kind="bill_overdue")
    assert notes.count() == 2
    for note in notes:
        assert "4111" not in note.title + note.body + str(note.params) and "[REDACTED PAN]" in note.title


def test_cc_1_a_chunk_statement_notifies_each_event_once_when_replayed(now):
    """NOTIFY-2: the chunk run again (a redelivered task) writes no reminder and no notification."""
    accounts = [AccountFactory() for _ in range(3)]
    for account in accounts:
        overdue_bill(account, now, days_late=15)
    ids = [a.pk for a in accounts]
    assert cc.reminders_send_chunk(account_ids=ids, now=now).reminders == 3
    count = Notification.objects.count()
    assert cc.reminders_send_chunk(account_ids=ids, now=now + timedelta(minutes=5)).reminders == 0
    assert Notification.objects.count() == count == 6


# --- poison isolation ------------------------------------------------------------------------


def poison_reminders_of(account_id: int) -> None:
    """The database refuses reminders of this account (a trigger, rolled back with the test)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION poison_reminder() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.account_id = {int(account_id)} THEN RAISE EXCEPTION 'poison row: reminder refused'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER poison_reminder BEFORE INSERT ON {Reminder._meta.db_table}
                FOR EACH ROW EXECUTE FUNCTION poison_reminder();
            """
        )


def cure() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER poison_reminder ON {Reminder._meta.db_table}; DROP FUNCTION poison_reminder();")


def test_cc_1_a_poison_account_mid_chunk_never_stops_the_others(now):
    """CC-1 / CC-2: the chunk the database refuses is rerun account by account: the accounts
    before and after the poison one get their reminders, holds and notifications; the poison one
    is recorded, retried boundedly, given up, and sent once staff retry it after the cure."""
    before, poison, after = (AccountFactory() for _ in range(3))
    for account in (before, poison, after):
        overdue_bill(account, now, days_late=20)
        Reminder.objects.bulk_create(
            Reminder(bill=account.bills.get(), account=account, level=level, days_past_due=10, sent_at=now - timedelta(days=3))
            for level in (1, 2)
        )
    poison_reminders_of(poison.pk)
    ids = [before.pk, poison.pk, after.pk]

    result = cc.reminders_send_chunk(account_ids=ids, now=now)  # does not raise
    assert (result.reminders, result.holds) == (2, 2)
    assert set(CreditHold.objects.values_list("account_id", flat=True)) == {before.pk, after.pk}
    assert not Reminder.objects.filter(account=poison, level=3).exists()
    assert not Notification.objects.filter(account=poison).exists()
    assert Notification.objects.filter(account=after, kind="bill_overdue").count() == 2
    failure = JobItemFailure.objects.get(job=REMINDER_JOB, item_key=str(poison.pk))
    assert (failure.item_kind, failure.object_id, failure.attempts) == ("payments.account", poison.pk, 1)
    assert "poison row" in failure.message

    clock = now
    assert cc.reminders_send_chunk(account_ids=ids, now=clock + timedelta(minutes=1)).reminders == 0  # waits
    assert JobItemFailure.objects.get(pk=failure.pk).attempts == 1
    for attempts in range(1, MAX_ATTEMPTS):
        clock += retry_delay(attempts)
        cc.reminders_send_chunk(account_ids=ids, now=clock)
    failure.refresh_from_db()
    assert failure.attempts == MAX_ATTEMPTS and failure.given_up_at == clock

    cure()
    assert cc.reminders_send_chunk(account_ids=ids, now=clock + timedelta(minutes=1)).reminders == 0  # given up
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=clock + timedelta(minutes=2))
    result = cc.reminders_send_chunk(account_ids=ids, now=clock + timedelta(minutes=2))
    assert (result.reminders, result.holds) == (1, 1)
    failure.refresh_from_db()
    assert failure.resolved_at == clock + timedelta(minutes=2)
    assert Notification.objects.filter(account=poison, kind="bill_overdue").count() == 2
