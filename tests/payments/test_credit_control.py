"""Credit control (CC-1 reminders, CC-2 credit hold, CC-3 pauses) through the services and the job.

The services take the clock; these tests pass ``now`` (the frozen ``FROZEN_NOW``) and later
days explicitly and never read the wall clock. Races on PostgreSQL with threads are at the end.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing_backoffice import audit
from billing_backoffice.models import ScheduledRun
from billing_backoffice.permissions import StaffPermissionDenied
from payments.tasks import credit_control as notify_tasks
from payments.api.clients import api_client_token_issue
from payments.models import CreditHold, Notification, Reminder, ReminderPause
from payments.services import credit_control as cc
from payments.services.settlement import settle_accounts
from tests.factories import AccountFactory, UserFactory
from tests.payments.invariants import credit, make_bill
from tests.helpers.roles import FINANCE, MANAGERS, role_group

pytestmark = pytest.mark.django_db


def staff(name: str, group: str):
    user = UserFactory(username=name)
    user.groups.add(role_group(group))
    return user


@pytest.fixture
def manager():
    return staff("cc-manager", MANAGERS)


@pytest.fixture
def finance():
    return staff("cc-finance", FINANCE)


def overdue_bill(account, now, *, days_late: int, total="100.00"):
    """A bill whose due date was ``days_late`` days before ``now``'s day."""
    due = now.date() - timedelta(days=days_late)
    return make_bill(account, total, issued_at=now - timedelta(days=days_late + 30), due_date=due)


def levels(bill) -> list[int]:
    return list(Reminder.objects.filter(bill=bill).order_by("level").values_list("level", flat=True))


def run(account, when):
    return cc.reminders_send_chunk(account_ids=[account.pk], now=when)


def run_to_final(account, now):
    """Three daily runs: a bill 14+ days late gets levels 1, 2 and 3 (one a day)."""
    for day in range(3):
        run(account, now + timedelta(days=day))
    return now + timedelta(days=2)


def kinds(account, channel=Notification.Channel.CONSOLE) -> list[str]:
    return list(Notification.objects.filter(account=account, channel=channel).order_by("pk").values_list("kind", flat=True))


# --- CC-1 ----------------------------------------------------------------------------------------


def test_cc_1_levels_come_1_7_and_14_days_after_the_due_date_once_each(now):
    account = AccountFactory()
    bill = overdue_bill(account, now, days_late=0)
    assert run(account, now).reminders == 0 and levels(bill) == []  # due today: not past due yet
    assert run(account, now + timedelta(days=1)).reminders == 1 and levels(bill) == [1]
    assert run(account, now + timedelta(days=1)).reminders == 0  # a second run the same day: nothing
    assert run(account, now + timedelta(days=6)).reminders == 0 and levels(bill) == [1]
    assert run(account, now + timedelta(days=7)).reminders == 1 and levels(bill) == [1, 2]
    assert run(account, now + timedelta(days=13)).reminders == 0
    assert run(account, now + timedelta(days=14)).reminders == 1 and levels(bill) == [1, 2, 3]
    assert run(account, now + timedelta(days=40)).reminders == 0 and levels(bill) == [1, 2, 3]
    assert list(Reminder.objects.filter(bill=bill).order_by("level").values_list("days_past_due", flat=True)) == [1, 7, 14]


def test_cc_1_a_late_job_catches_up_in_order_one_level_a_day(now):
    account = AccountFactory()
    bill = overdue_bill(account, now, days_late=20)
    run(account, now)
    assert levels(bill) == [1]
    run(account, now + timedelta(hours=1))  # the same day (a redelivered chunk): nothing
    assert levels(bill) == [1]
    run(account, now + timedelta(days=1))
    run(account, now + timedelta(days=2))
    assert levels(bill) == [1, 2, 3]


def test_cc_1_levels_are_configurable(now, settings):
    settings.CC_REMINDER_DAYS = (3, 10, 20)
    account = AccountFactory()
    bill = overdue_bill(account, now, days_late=2)
    run(account, now)
    assert levels(bill) == []
    run(account, now + timedelta(days=1))
    assert levels(bill) == [1]


def test_cc_1_a_paid_bill_leaves_the_schedule(now):
    account = AccountFactory()
    bill = overdue_bill(account, now, days_late=8)
    run(account, now)
    credit(account, "100.00", now=now)
    settle_accounts(account_ids=[account.pk], now=now)
    bill.refresh_from_db()
    assert bill.status == "paid"
    run(account, now + timedelta(days=1))
    assert levels(bill) == [1]
    assert cc.reminder_due_chunks(now=now + timedelta(days=1)) == []


def test_cc_1_each_reminder_is_notified_once_by_email_and_console_notify_1(now):
    account = AccountFactory()
    bill = overdue_bill(account, now, days_late=1)
    run(account, now)
    run(account, now)
    rows = Notification.objects.filter(account=account, kind="bill_overdue")
    assert sorted(rows.values_list("channel", flat=True)) == ["console", "email"]
    console = rows.get(channel="console")
    assert bill.reference in console.title and "overdue" in console.body and "100.00 USD" in console.body


def test_cc_1_reminders_are_recorded_in_the_audit_trail_sec_2(now):
    account = AccountFactory()
    overdue_bill(account, now, days_late=1)
    run(account, now)
    reminder = Reminder.objects.get(account=account)
    events = audit.event_model_for(Reminder).objects.filter(pgh_obj_id=reminder.pk)
    assert events.count() == 1 and events.get().level == 1


def test_cc_1_due_chunks_leave_out_paused_accounts_and_split_by_size(now, manager):
    accounts = [AccountFactory() for _ in range(5)]
    for account in accounts:
        overdue_bill(account, now, days_late=3)
    AccountFactory()  # nothing overdue
    cc.reminder_pause(account_id=accounts[0].pk, reason="Disputed invoice", ends_at=now + timedelta(days=5),
                      actor=manager, now=now)
    chunks = cc.reminder_due_chunks(now=now, size=2)
    assert [len(c) for c in chunks] == [2, 2] and sorted(sum(chunks, [])) == sorted(a.pk for a in accounts[1:])


def test_cc_1_job_runs_once_per_window_and_fans_out_chunks(now, django_capture_on_commit_callbacks, settings):
    settings.CC_REMINDER_CHUNK_SIZE = 1
    accounts = [AccountFactory() for _ in range(2)]
    for account in accounts:
        overdue_bill(account, now, days_late=1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert notify_tasks.run_reminders.apply().get() == 2
        assert notify_tasks.run_reminders.apply().get() == 0  # a second firing in the window
    assert len(callbacks) == 2
    assert ScheduledRun.objects.filter(job="payments.run_reminders", status="finished").count() == 1
    for account in accounts:
        assert notify_tasks.send_reminders_chunk(account_ids=[account.pk]) == 1
        assert notify_tasks.send_reminders_chunk(account_ids=[account.pk]) == 0


def test_cc_1_beat_schedule_has_the_jobs(settings):
    tasks = {entry["task"] for entry in settings.BILLING_BEAT_SCHEDULE.values()}
    assert {"payments.run_reminders", "payments.sweep_notifications", "payments.notify_expiring_cards"} <= tasks
    assert settings.CELERY_TASK_ROUTES["payments.send_reminders_chunk"] == {"queue": "bulk"}


# --- CC-2 ----------------------------------------------------------------------------------------


def hold_of(account):
    return CreditHold.objects.filter(account=account, lifted_at__isnull=True).first()


def test_cc_2_the_final_level_puts_the_account_on_hold_once(now):
    account = AccountFactory()
    overdue_bill(account, now, days_late=14)
    run(account, now)
    run(account, now + timedelta(days=1))
    assert hold_of(account) is None  # levels 1 and 2 only
    result = run(account, now + timedelta(days=2))
    assert result.holds == 1 and hold_of(account).reminder.level == 3
    second = overdue_bill(account, now, days_late=30)
    run_to_final(account, now + timedelta(days=3))
    assert levels(second) == [1, 2, 3] and CreditHold.objects.filter(account=account).count() == 1
    assert kinds(account).count("credit_hold_started") == 1


@pytest.fixture
def api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='console-cc').key}")
    return client


def test_cc_2_orders_are_refused_422_naming_cc_2_while_usage_is_accepted(now, api):
    from django.utils import timezone

    account = AccountFactory()
    overdue_bill(account, now, days_late=20)
    run_to_final(account, now)
    bills_before = account.bills.count()
    response = api.post(f"/api/v1/accounts/{account.pk}/orders/",
                        {"kind": "purchase", "amount": "10.00", "currency": "USD", "reference": "o-cc2"}, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["rule"] == "CC-2" and response.json()["code"] == "credit_hold"
    assert account.bills.count() == bills_before
    usage = api.post(f"/api/v1/accounts/{account.pk}/usage/", {
        "amount": "1.00", "currency": "USD", "period": timezone.now().strftime("%Y-%m"), "reference": "u-cc2",
    }, format="json")
    assert usage.status_code == 201, usage.content


def test_cc_2_the_hold_lifts_by_itself_once_nothing_is_overdue(now):
    account = AccountFactory()
    overdue_bill(account, now, days_late=20)
    run_to_final(account, now)
    assert cc.credit_holds_lift_settled(now=now) == 0  # still overdue
    credit(account, "100.00", now=now)
    settle_accounts(account_ids=[account.pk], now=now)
    assert cc.credit_holds_lift_settled(now=now) == 1
    assert hold_of(account) is None and cc.credit_hold_refusal(account_id=account.pk) is None
    assert cc.credit_holds_lift_settled(now=now) == 0
    assert kinds(account).count("credit_hold_ended") == 1


def test_cc_2_finance_lifts_early_with_a_reason_and_the_job_does_not_put_it_back(now, finance, manager):
    account = AccountFactory()
    overdue_bill(account, now, days_late=20)
    run_to_final(account, now)
    with pytest.raises(StaffPermissionDenied):
        cc.credit_hold_lift(account_id=account.pk, reason="Promised payment", actor=manager, now=now)
    with pytest.raises(cc.PauseInvalid):
        cc.credit_hold_lift(account_id=account.pk, reason="  ", actor=finance, now=now)
    assert hold_of(account) is not None
    hold = cc.credit_hold_lift(account_id=account.pk, reason="Promised payment by Friday", actor=finance, now=now)
    assert (hold.lifted_by, hold.lift_reason) == (finance, "Promised payment by Friday")
    run(account, now + timedelta(days=1))
    assert hold_of(account) is None
    with pytest.raises(cc.CreditHoldNotFound):
        cc.credit_hold_lift(account_id=account.pk, reason="again", actor=finance, now=now)
    events = audit.event_model_for(CreditHold).objects.filter(pgh_obj_id=hold.pk).order_by("pgh_id")
    assert [e.lift_reason for e in events] == ["", "Promised payment by Friday"]


# --- CC-3 ----------------------------------------------------------------------------------------


def test_cc_3_a_paused_account_gets_no_reminders_until_the_pause_ends(now, manager):
    account = AccountFactory()
    bill = overdue_bill(account, now, days_late=2)
    pause = cc.reminder_pause(account_id=account.pk, reason="Customer disputes the bill",
                              ends_at=now + timedelta(days=10), actor=manager, now=now)
    run(account, now)
    run(account, now + timedelta(days=9))
    assert levels(bill) == []
    later = now + timedelta(days=10)
    assert cc.reminder_pauses_end_expired(now=later) == 1  # it ends by itself
    pause.refresh_from_db()
    assert pause.ended_at == pause.ends_at
    run(account, later)
    assert levels(bill) == [1]


def test_cc_3_pause_at_most_30_days_with_a_reason_by_an_account_manager(now, manager, finance):
    account = AccountFactory()
    with pytest.raises(cc.PauseInvalid):
        cc.reminder_pause(account_id=account.pk, reason="x", ends_at=now + timedelta(days=30, seconds=1),
                          actor=manager, now=now)
    with pytest.raises(cc.PauseInvalid):
        cc.reminder_pause(account_id=account.pk, reason="", ends_at=now + timedelta(days=3), actor=manager, now=now)
    with pytest.raises(cc.PauseInvalid):
        cc.reminder_pause(account_id=account.pk, reason="x", ends_at=now - timedelta(days=1), actor=manager, now=now)
    with pytest.raises(StaffPermissionDenied):
        cc.reminder_pause(account_id=account.pk, reason="x", ends_at=now + timedelta(days=3), actor=finance, now=now)
    assert not ReminderPause.objects.exists()
    cc.reminder_pause(account_id=account.pk, reason="Holiday", ends_at=now + timedelta(days=30), actor=manager, now=now)
    with pytest.raises(cc.PauseAlreadyInForce):
        cc.reminder_pause(account_id=account.pk, reason="again", ends_at=now + timedelta(days=3), actor=manager, now=now)


def test_cc_3_resuming_early_is_recorded_with_who_sec_2(now, manager):
    account = AccountFactory()
    pause = cc.reminder_pause(account_id=account.pk, reason="Holiday", ends_at=now + timedelta(days=5),
                              actor=manager, now=now)
    cc.reminder_pause_end(account_id=account.pk, actor=manager, now=now + timedelta(days=1))
    events = audit.event_model_for(ReminderPause).objects.filter(pgh_obj_id=pause.pk).order_by("pgh_id")
    assert [(e.reason, e.ended_by_id) for e in events] == [("Holiday", None), ("Holiday", manager.pk)]
    with pytest.raises(cc.PauseNotFound):
        cc.reminder_pause_end(account_id=account.pk, actor=manager, now=now + timedelta(days=1))


def test_cc_3_database_refuses_a_pause_longer_than_30_days(now, manager):
    from django.db import IntegrityError, transaction

    account = AccountFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReminderPause.objects.create(account=account, reason="x", started_at=now, ends_at=now + timedelta(days=31),
                                     created_by=manager)


# --- races ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cc_1_cc_2_two_runs_at_once_send_each_level_once_and_one_hold(now):
    account = AccountFactory()
    bills = [overdue_bill(account, now, days_late=20, total="10.00") for _ in range(3)]
    Reminder.objects.bulk_create(
        Reminder(bill=b, account=account, level=level, days_past_due=20, sent_at=now - timedelta(days=1))
        for b in bills for level in (1, 2)
    )
    barrier = threading.Barrier(4)
    errors = []

    def worker():
        try:
            barrier.wait()
            cc.reminders_send_chunk(account_ids=[account.pk], now=now)
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Reminder.objects.filter(account=account, level=3).count() == 3
    assert CreditHold.objects.filter(account=account).count() == 1
    assert Notification.objects.filter(account=account, kind="bill_overdue", channel="email").count() == 3
    assert Notification.objects.filter(account=account, kind="credit_hold_started").count() == 2


def test_cc_1_a_chunk_costs_the_same_statements_whatever_its_size(now):
    """Set-based (QUALITY.md budget): 2 accounts or 20, the chunk's query count is the same."""
    from django.test.utils import CaptureQueriesContext

    def cost(n: int) -> int:
        accounts = [AccountFactory() for _ in range(n)]
        for account in accounts:
            overdue_bill(account, now, days_late=20)
            overdue_bill(account, now, days_late=3)
        with CaptureQueriesContext(connection) as queries:
            cc.reminders_send_chunk(account_ids=[a.pk for a in accounts], now=now)
        return len(queries)

    assert cost(2) == cost(20)
