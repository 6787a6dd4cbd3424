"""Admin of credit control (CC-2 lift, CC-3 pause, CC-4 ageing report, NOTIFY-2 failed deliveries),
through the test client as the real roles. The admin reads the wall clock; the ``now`` fixture
freezes every clock there, so the bills are dated from it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from payments.models import CreditHold, Notification, ReminderPause
from payments.receivables import receivables_ageing
from payments.services import credit_control as cc
from payments.services.notifications import MAX_ATTEMPTS, notify
from tests.factories import AccountFactory, UserFactory
from tests.helpers.roles import FINANCE, MANAGERS, role_group
from tests.payments.invariants import make_bill

pytestmark = pytest.mark.django_db


def user(name, group):
    staff = UserFactory(username=name)
    staff.groups.add(role_group(group))
    return staff


@pytest.fixture
def manager():
    return user("cca-manager", MANAGERS)


@pytest.fixture
def finance():
    return user("cca-finance", FINANCE)


def bill_due(account, now, days_late, total, **extra):
    return make_bill(account, total, issued_at=now - timedelta(days=days_late + 30),
                     due_date=now.date() - timedelta(days=days_late), **extra)


def on_hold(account, now):
    bill_due(account, now, 20, "50.00")
    for day in (2, 1, 0):  # one level a day, the last today
        cc.reminders_send_chunk(account_ids=[account.pk], now=now - timedelta(days=day))
    return CreditHold.objects.get(account=account, lifted_at__isnull=True)


def test_cc_2_finance_lifts_a_hold_in_the_admin_with_a_reason_and_a_confirmation(client, now, finance, manager):
    account = AccountFactory()
    hold = on_hold(account, now)
    url = reverse("admin:payments_credithold_lift", args=[hold.pk])
    client.force_login(manager)
    assert client.post(url, {"reason": "x", "confirm": "on"}).status_code == 403
    client.force_login(finance)
    assert client.get(url).status_code == 200
    response = client.post(url, {"reason": "Paid by phone"})  # not confirmed
    assert response.status_code == 200 and CreditHold.objects.get(pk=hold.pk).lifted_at is None
    response = client.post(url, {"reason": "Paid by phone", "confirm": "on"})
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.lifted_by == finance and hold.lift_reason == "Paid by phone"


def test_cc_3_account_manager_pauses_reminders_in_the_admin(client, now, manager, finance):
    account = AccountFactory()
    url = reverse("admin:payments_reminderpause_pause")
    data = {"account": account.pk, "reason": "Dispute", "ends_at": (now + timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S")}
    client.force_login(finance)
    assert client.post(url, data).status_code == 403
    client.force_login(manager)
    assert client.post(url, {**data, "ends_at": (now + timedelta(days=40)).strftime("%Y-%m-%d %H:%M:%S")}).status_code == 200
    assert not ReminderPause.objects.exists()
    assert client.post(url, data).status_code == 302
    pause = ReminderPause.objects.get()
    assert (pause.account_id, pause.created_by) == (account.pk, manager)
    changelist = reverse("admin:payments_reminderpause_changelist")
    client.post(changelist, {"action": "end_pauses", "_selected_action": [pause.pk], "index": "0"})
    pause.refresh_from_db()
    assert pause.ended_by == manager


def test_notify_2_failed_deliveries_listed_and_retried_from_the_admin(client, now, manager):
    account = AccountFactory()
    notify(account_id=account.pk, kind="transfer_credited", event_key="adm-1", params={"amount": "1", "currency": "USD"},
           now=now)
    email = Notification.objects.get(channel="email")
    Notification.objects.filter(pk=email.pk).update(status="failed", attempts=MAX_ATTEMPTS, last_error="smtp down")
    client.force_login(manager)
    changelist = reverse("admin:payments_notification_changelist")
    listing = client.get(changelist, {"status__exact": "failed"})
    assert listing.status_code == 200 and "smtp down" in listing.content.decode()
    client.post(changelist, {"action": "retry", "_selected_action": [email.pk], "index": "0"})
    assert Notification.objects.get(pk=email.pk).status == "pending"


# --- CC-4 ----------------------------------------------------------------------------------------


def test_cc_4_ageing_figures_equal_the_bills_behind_them(now):
    a, b = AccountFactory(country="US"), AccountFactory(country="DE")
    bills = [
        bill_due(a, now, -5, "10.00"),  # not due
        bill_due(a, now, 1, "20.00"), bill_due(a, now, 30, "30.00"),  # 1-30
        bill_due(a, now, 31, "40.00", amount_paid="15.00", status="partially_paid"),  # 31-60: 25 outstanding
        bill_due(b, now, 75, "50.00"),  # 61-90
        bill_due(b, now, 91, "60.00"),  # over 90
        bill_due(b, now, 10, "70.00", currency="EUR"),
        bill_due(a, now, 10, "80.00", status="paid", amount_paid="80.00"),  # paid: not a receivable
    ]
    rows = {row.currency: row for row in receivables_ageing(now=now)}
    usd = rows["USD"]
    assert (usd.not_due, usd.days_1_30, usd.days_31_60, usd.days_61_90, usd.over_90) == tuple(
        Decimal(v) for v in ("10.00", "50.00", "25.00", "50.00", "60.00")
    )
    unpaid_usd = [x for x in bills if x.currency == "USD" and x.status != "paid"]
    assert usd.total == sum(x.total - x.amount_paid for x in unpaid_usd) and usd.bills == len(unpaid_usd)
    assert rows["EUR"].days_1_30 == Decimal("70.00") and rows["EUR"].total == Decimal("70.00")
    by_region = {(r.currency, r.group): r.total for r in receivables_ageing(now=now, group_by="region")}
    assert by_region[("USD", a.region)] == Decimal("85.00") and by_region[("USD", b.region)] == Decimal("110.00")
    assert receivables_ageing(now=now, currency="EUR")[0].currency == "EUR"


def test_cc_4_each_bucket_ends_on_its_day_past_due(now):
    """CC-4: 0 days past due is not due; 1 and 30 are 1-30; 31 and 60 are 31-60; 61 and 90 are
    61-90; 91 is over 90. Each bill has its own amount, so a bill in a neighbouring bucket shows."""
    account = AccountFactory()
    for days_late, total in ((0, "1.00"), (1, "2.00"), (30, "4.00"), (31, "8.00"), (60, "16.00"), (61, "32.00"),
                             (90, "64.00"), (91, "128.00")):
        bill_due(account, now, days_late, total)
    row = receivables_ageing(now=now)[0]
    assert (row.not_due, row.days_1_30, row.days_31_60, row.days_61_90, row.over_90) == tuple(
        Decimal(v) for v in ("1.00", "6.00", "24.00", "96.00", "128.00")
    )
    assert row.total == Decimal("255.00") and row.bills == 8


def test_cc_4_grouped_by_account_manager_one_row_each_and_none_last(now):
    first, second = UserFactory(username="am-alice"), UserFactory(username="am-bob")
    for manager, amounts in ((first, ("10.00", "5.00")), (second, ("7.00",)), (None, ("3.00",))):
        account = AccountFactory(account_manager=manager)
        for n, total in enumerate(amounts):
            bill_due(account, now, 10 + 40 * n, total)
    rows = receivables_ageing(now=now, group_by="account_manager")
    assert [(r.group, r.total, r.bills) for r in rows] == [
        ("am-alice", Decimal("15.00"), 2), ("am-bob", Decimal("7.00"), 1), ("(none)", Decimal("3.00"), 1),
    ]
    assert rows[0].days_1_30 == Decimal("10.00") and rows[0].days_31_60 == Decimal("5.00")
    only_bob = receivables_ageing(now=now, group_by="account_manager", account_manager_id=second.pk)
    assert [(r.group, r.total) for r in only_bob] == [("am-bob", Decimal("7.00"))]


def test_cc_4_dso_is_receivables_over_90_days_sales_times_90(now):
    account = AccountFactory()
    make_bill(account, "300.00", issued_at=now - timedelta(days=10), due_date=now.date() + timedelta(days=20))
    make_bill(account, "600.00", issued_at=now - timedelta(days=20), due_date=now.date() - timedelta(days=1),
              status="paid", amount_paid="600.00")
    row = receivables_ageing(now=now)[0]
    assert row.sales == Decimal("900.00") and row.dso == Decimal("30.0")  # 300 / 900 x 90


def test_cc_4_ageing_report_page_and_csv_export_by_account_manager(client, now, finance, manager):
    account = AccountFactory(account_manager=manager)
    bill_due(account, now, 40, "12.34")
    client.force_login(finance)
    url = reverse("admin:payments_reminder_ageing")
    page = client.get(url)
    assert page.status_code == 200 and "12.34" in page.content.decode()
    export = client.get(url, {"group_by": "account_manager", "export": "csv"})
    assert export["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert rows[0][:3] == ["currency", "group", "not_due"]
    assert rows[1][:2] == ["USD", manager.username] and rows[1][4] == "12.34"
    client.force_login(UserFactory(username="no-perms"))
    assert client.get(url).status_code in (302, 403)


def test_cc_2_cc_3_cc_4_the_admin_pages_link_to_lift_pause_and_ageing(client, now, finance, manager):
    account = AccountFactory()
    hold = on_hold(account, now)
    client.force_login(finance)
    change = client.get(reverse("admin:payments_credithold_change", args=[hold.pk])).content.decode()
    assert reverse("admin:payments_credithold_lift", args=[hold.pk]) in change
    assert reverse("admin:payments_reminder_ageing") in client.get(reverse("admin:payments_reminder_changelist")).content.decode()
    client.force_login(manager)
    pauses = client.get(reverse("admin:payments_reminderpause_changelist")).content.decode()
    assert reverse("admin:payments_reminderpause_pause") in pauses
    change = client.get(reverse("admin:payments_credithold_change", args=[hold.pk])).content.decode()
    assert reverse("admin:payments_credithold_lift", args=[hold.pk]) not in change


def test_cc_1_cc_2_cc_3_the_account_page_shows_dunning_level_pause_and_hold(client, now, manager):
    account = AccountFactory()
    on_hold(account, now)
    cc.reminder_pause(account_id=account.pk, reason="Talking to them", ends_at=now + timedelta(days=3),
                      actor=manager, now=now)
    client.force_login(manager)
    page = client.get(reverse("admin:payments_account_change", args=[account.pk])).content.decode()
    assert "level 3" in page and "paused until" in page and "on credit hold since" in page
    assert f"{reverse('admin:payments_notification_changelist')}?account__id__exact={account.pk}" in page


def test_cc_4_ageing_xlsx_export_has_the_same_figures(client, now, finance):
    from openpyxl import load_workbook

    bill_due(AccountFactory(), now, 70, "99.50")
    client.force_login(finance)
    export = client.get(reverse("admin:payments_reminder_ageing"), {"export": "xlsx"})
    sheet = load_workbook(io.BytesIO(export.content)).active
    header, row = [c.value for c in sheet[1]], [c.value for c in sheet[2]]
    assert header[5] == "days_61_90" and row[0] == "USD" and row[5] == 99.5 and row[7] == 99.5
