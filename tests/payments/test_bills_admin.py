"""The billing admin through the test client as the real roles: bills (filters, search, the
"pay from balance" action, SET-3), the settlement switch view (SET-1), charges, usage, the ledger
with an account's running balance, query budgets and escaping.

Finance staff and account managers get the billing permissions this issue asks for (see
``grant_billing``: the staff-groups migration does not grant them yet).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from payments.models import Account, Bill, Charge, LedgerEntry, ThreeDSChallenge, UsageRecord
from payments.services.ledger import account_balance
from payments.services.order_three_ds import order_three_ds_complete
from tests.helpers.admin import messages_of
from tests.factories import AccountFactory, ChargeFactory, UsageRecordFactory, UserFactory
from tests.payments.invariants import assert_billing_invariants, credit, make_bill
from tests.helpers.charging import card_account, place
from tests.helpers.roles import action_post, changelist

pytestmark = pytest.mark.django_db
D = Decimal
Status = Bill.Status
BILLING_VIEW = ["view_bill", "view_charge", "view_usagerecord", "view_ledgerentry"]


def grant_billing(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="payments", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def finance_staff(finance):
    return grant_billing(finance, *BILLING_VIEW, "pay_bill")


@pytest.fixture
def account_manager(manager):
    return grant_billing(manager, *BILLING_VIEW)


@pytest.fixture
def login(client, superuser, finance_staff, account_manager):
    users = {"superuser": superuser, "finance": finance_staff, "manager": account_manager}

    def as_role(role: str):
        client.force_login(users[role])
        return client

    return as_role


def result_pks(response) -> set[int]:
    assert response.status_code == 200, response.status_code  # an invalid filter redirects (?e=1)
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.fixture
def world():
    now = timezone.now()
    today = timezone.localdate()
    us = AccountFactory(name="Acme Corp", country="US")
    eu = AccountFactory(name="Euro GmbH", country="DE", auto_settlement_enabled=False)
    bills = {
        "overdue": make_bill(us, "50.00", issued_at=now - timedelta(days=40), due_date=today - timedelta(days=10),
                             status=Status.OVERDUE),
        "past_due": make_bill(us, "150.00", issued_at=now - timedelta(days=35), due_date=today - timedelta(days=1)),
        "due_week": make_bill(eu, "2500.00", issued_at=now - timedelta(days=20), due_date=today + timedelta(days=3),
                              kind=Bill.Kind.ORDER),
        "later": make_bill(eu, "20000.00", issued_at=now - timedelta(days=1), due_date=today + timedelta(days=30)),
    }
    charge = ChargeFactory(
        account=us, bill=bills["past_due"], payment_method=None, amount=D("150.00"), idempotency_key="charge-key-1",
        status=Charge.Status.FAILED, failure_reason="issuer_declined", failure_rule="PAY-5",
        created_at=now - timedelta(hours=2),
    )
    ok_charge = ChargeFactory(
        account=eu, payment_method=None, kind=Charge.Kind.THRESHOLD, amount=D("10.00"), idempotency_key="charge-key-2",
        status=Charge.Status.SUCCEEDED, created_at=now - timedelta(hours=1),
    )
    usage = UsageRecordFactory(account=us, amount=D("3.20"), period="2026-11", reference="console-usage-1", reported_at=now)
    return {"us": us, "eu": eu, "charge": charge, "ok_charge": ok_charge, "usage": usage, **bills}


# --- every page, every role ---------------------------------------------------------------------

MODELS = ["bill", "charge", "usagerecord", "ledgerentry"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("role", ["superuser", "finance", "manager"])
def test_sec_3_billing_changelists_and_change_pages_for_every_role(login, world, role, model):
    client = login(role)
    credit(world["us"], "5.00", now=timezone.now())
    response = client.get(changelist(model))
    assert response.status_code == 200
    obj = response.context["cl"].result_list[0]
    page = client.get(reverse(f"admin:payments_{model}_change", args=[obj.pk]))
    assert page.status_code == 200
    assert b'name="total"' not in page.content and b'name="amount"' not in page.content  # read-only
    assert b"Save" not in page.content


def test_sec_3_staff_without_billing_permissions_sees_no_bills(client):
    client.force_login(UserFactory(username="nobody"))
    assert client.get(changelist("bill")).status_code == 403


@pytest.mark.parametrize("model", MODELS)
def test_money_records_cannot_be_added_changed_or_deleted(login, world, model):
    client = login("superuser")
    credit(world["us"], "5.00", now=timezone.now())
    obj = client.get(changelist(model)).context["cl"].result_list[0]
    assert client.get(reverse(f"admin:payments_{model}_add")).status_code == 403
    assert client.post(reverse(f"admin:payments_{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


# --- bills: filters and search ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status__exact=overdue", {"overdue"}),
        ("due=overdue", {"overdue"}),
        ("due=past_due", {"past_due"}),
        ("due=week", {"due_week"}),
        ("total=lt100", {"overdue"}),
        ("total=100-1k", {"past_due"}),
        ("total=1k-10k", {"due_week"}),
        ("total=10k%2B", {"later"}),
        ("account__region__exact=EU", {"due_week", "later"}),
        ("kind__exact=order", {"due_week"}),
        ("account__auto_settlement_enabled__exact=0", {"due_week", "later"}),
    ],
)
def test_cred_3_bill_filters(login, world, query, expected):
    response = login("finance").get(changelist("bill") + "?" + query)
    assert result_pks(response) == {world[name].pk for name in expected}


def test_bill_due_date_filter(login, world):
    today = timezone.localdate()
    query = f"due_date__gte={today}&due_date__lt={today + timedelta(days=7)}"
    assert result_pks(login("finance").get(changelist("bill") + "?" + query)) == {world["due_week"].pk}


def test_bill_search_by_account_uid_bill_id_and_reference(login, world):
    client = login("finance")
    by_uid = client.get(changelist("bill"), {"q": world["eu"].uid})
    assert result_pks(by_uid) == {world["due_week"].pk, world["later"].pk}
    assert result_pks(client.get(changelist("bill"), {"q": str(world["overdue"].pk)})) >= {world["overdue"].pk}
    assert result_pks(client.get(changelist("bill"), {"q": world["later"].reference})) == {world["later"].pk}
    assert result_pks(client.get(changelist("bill"), {"q": "no-such-reference"})) == set()


def _changelist_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", MODELS)
def test_changelist_query_count_does_not_grow_with_rows(login, model):
    client = login("finance")
    now = timezone.now()

    def add_rows(count):
        for i in range(count):
            account = AccountFactory()
            bill = make_bill(account, "10.00", issued_at=now - timedelta(days=1))
            credit(account, "10.00", now=now)
            ChargeFactory(account=account, bill=bill, payment_method=None, amount=D("10.00"), failed=True,
                          failure_reason="issuer_declined", created_at=now)
            UsageRecordFactory(account=account, amount=D("1.00"), period="2026-11", reported_at=now)

    add_rows(2)
    few = _changelist_queries(client, changelist(model))
    add_rows(25)
    many = _changelist_queries(client, changelist(model))
    assert few == many


# --- SET-3: pay from balance --------------------------------------------------------------------


def test_set_3_finance_pays_a_bill_from_the_balance_with_the_admin_action(login, world):
    eu = world["eu"]
    credit(eu, "3000.00", now=timezone.now())
    response = action_post(login("finance"), "bill", "pay_from_balance", [world["due_week"].pk])
    assert response.status_code == 302
    assert messages_of(response) == ["Paid 1 bill(s) from the balance."]
    bill = Bill.objects.get(pk=world["due_week"].pk)
    assert (bill.status, bill.amount_paid) == (Status.PAID, D("2500.00"))
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.BILL_PAYMENT)
    assert entry.created_by.username == "finance"
    assert account_balance(account_id=eu.pk, currency="USD") == D("500.00")
    assert_billing_invariants()


def test_set_3_pay_action_reports_each_refusal_with_its_rule(login, world):
    credit(world["us"], "1000.00", now=timezone.now())  # settlement on for us
    credit(world["eu"], "100.00", now=timezone.now())  # too little for eu's bills
    response = action_post(
        login("finance"), "bill", "pay_from_balance",
        [world["overdue"].pk, world["due_week"].pk, world["later"].pk],
    )
    texts = messages_of(response)
    assert len(texts) == 3 and not any(t.startswith("Paid") for t in texts)
    assert any(str(world["overdue"]) in t and ": SET-3: Automatic settlement is on" in t for t in texts)
    assert any(str(world["due_week"]) in t and ": SET-3: The balance of 100.00 USD does not cover" in t for t in texts)
    assert any(str(world["later"]) in t and ": SET-2: " in t and world["due_week"].reference in t for t in texts)
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).exists()


def test_set_3_account_manager_cannot_pay_bills(login, world):
    credit(world["eu"], "3000.00", now=timezone.now())
    client = login("manager")
    form = client.get(changelist("bill")).context["action_form"]
    assert form is None or "pay_from_balance" not in dict(form.fields["action"].choices)
    action_post(client, "bill", "pay_from_balance", [world["due_week"].pk])  # crafted POST
    assert Bill.objects.get(pk=world["due_week"].pk).status == Status.OPEN
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).exists()


def test_set_3_finance_sees_the_pay_action(login, world):
    page = login("finance").get(changelist("bill"))
    choices = {name for name, _ in page.context["action_form"].fields["action"].choices if name}
    assert "pay_from_balance" in choices


# --- SET-1: the switch --------------------------------------------------------------------------


def settlement_url(account) -> str:
    return reverse("admin:payments_bill_settlement", args=[account.pk])


def test_set_1_finance_switches_settlement_off_and_it_is_recorded(login, world, finance_staff):
    client = login("finance")
    us = world["us"]
    page = client.get(settlement_url(us))
    assert page.status_code == 200 and b"Switch automatic settlement off" in page.content
    response = client.post(settlement_url(us), {"enabled": "0"})
    assert response.status_code == 302
    assert messages_of(response) == [f"Automatic settlement is off for {Account.objects.get(pk=us.pk)}."]
    assert Account.objects.get(pk=us.pk).auto_settlement_enabled is False
    entry = LogEntry.objects.get(object_id=str(us.pk))
    assert entry.user_id == finance_staff.pk and "switched off (SET-1)" in entry.change_message
    page = client.get(settlement_url(us))
    assert b"Switch automatic settlement on" in page.content and b"switched off (SET-1)" in page.content


def test_set_1_account_manager_sees_the_switch_but_cannot_use_it(login, world):
    client = login("manager")
    page = client.get(settlement_url(world["us"]))
    assert page.status_code == 200 and b"Switch automatic settlement" not in page.content
    assert client.post(settlement_url(world["us"]), {"enabled": "0"}).status_code == 403
    assert Account.objects.get(pk=world["us"].pk).auto_settlement_enabled is True


def test_set_1_bill_list_links_each_account_to_its_switch(login, world):
    page = login("finance").get(changelist("bill"))
    assert settlement_url(world["eu"]).encode() in page.content


def test_set_1_switch_view_escapes_names(login):
    evil = AccountFactory(name='<script>alert("x")</script>')
    content = login("finance").get(settlement_url(evil)).content
    assert b"<script>alert" not in content and b"&lt;script&gt;" in content


# --- charges and usage --------------------------------------------------------------------------


def test_pay_5_failed_charges_with_their_reason(login, world):
    client = login("finance")
    response = client.get(changelist("charge"), {"status__exact": "failed"})
    assert result_pks(response) == {world["charge"].pk}
    assert b"issuer_declined" in response.content and b"PAY-5" in response.content
    by_reason = client.get(changelist("charge"), {"failure_reason": "issuer_declined"})
    assert result_pks(by_reason) == {world["charge"].pk}
    assert result_pks(client.get(changelist("charge"), {"kind__exact": "threshold"})) == {world["ok_charge"].pk}
    assert result_pks(client.get(changelist("charge"), {"q": "charge-key-2"})) == {world["ok_charge"].pk}


def test_usage_records_listed_and_searchable(login, world):
    client = login("finance")
    assert result_pks(client.get(changelist("usagerecord"), {"q": "console-usage-1"})) == {world["usage"].pk}
    assert result_pks(client.get(changelist("usagerecord"), {"status__exact": "unbilled"})) == {world["usage"].pk}


# --- the ledger of an account -------------------------------------------------------------------


def ledger_url(account) -> str:
    return reverse("admin:payments_ledgerentry_account", args=[account.pk])


def test_sec_4_account_ledger_shows_entries_newest_first_with_running_balance(login):
    account = AccountFactory()
    other = AccountFactory()
    start = timezone.now() - timedelta(hours=5)
    credit(account, "100.00", now=start)
    credit(account, "20.00", now=start + timedelta(hours=1), currency="EUR")
    credit(other, "999.00", now=start)
    bill = make_bill(account, "70.00", issued_at=start)
    from payments.services.settlement import settle_accounts

    settle_accounts(account_ids=[account.pk], now=start + timedelta(hours=2))
    credit(account, "5.50", now=start + timedelta(hours=3))
    response = login("finance").get(ledger_url(account))
    assert response.status_code == 200
    rows = [(e.amount, e.currency, e.running_balance) for e in response.context["page"].object_list]
    assert rows == [
        (D("5.50"), "USD", D("35.50")),
        (D("-70.00"), "USD", D("30.00")),
        (D("20.00"), "EUR", D("20.00")),
        (D("100.00"), "USD", D("100.00")),
    ]
    assert [(b["currency"], b["balance"]) for b in response.context["balances"]] == [("EUR", D("20.00")), ("USD", D("35.50"))]
    assert f"settle:{bill.pk}:0.00".encode() in response.content


def test_sec_4_account_ledger_pages_keep_the_running_balance(login):
    from payments.admin import ledger as ledger_admin

    account = AccountFactory()
    start = timezone.now() - timedelta(days=1)
    for i in range(ledger_admin.LEDGER_PAGE_SIZE + 5):
        credit(account, "1.00", now=start + timedelta(seconds=i))
    client = login("finance")
    first = client.get(ledger_url(account)).context["page"].object_list
    second = client.get(ledger_url(account), {"p": 2}).context["page"].object_list
    assert first[0].running_balance == D("105.00")
    assert [e.running_balance for e in second] == [D(n) for n in range(5, 0, -1)]


def test_ledger_list_links_to_the_account_ledger(login):
    account = AccountFactory()
    credit(account, "1.00", now=timezone.now())
    page = login("finance").get(changelist("ledgerentry"))
    assert ledger_url(account).encode() in page.content


def test_sec_3_account_ledger_needs_the_ledger_view_permission(client):
    account = AccountFactory()
    client.force_login(UserFactory(username="no-ledger", is_staff=True))  # staff without view_ledgerentry
    assert client.get(ledger_url(account)).status_code == 403


def test_set_1_account_page_links_to_its_settlement_switch_and_ledger(client):
    account = AccountFactory(auto_settlement_enabled=False)
    client.force_login(UserFactory(username="su-links", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/payments/account/{account.pk}/change/").content.decode()
    assert f"/admin/payments/bill/settlement/{account.pk}/" in page and "automatic settlement: off" in page
    assert f"/admin/payments/ledgerentry/account/{account.pk}/" in page


def test_pay_1_order_3ds_is_traceable_from_the_charge_and_the_challenge_pages(login):
    """The charge that asked for 3DS links its challenge; the challenge lists as an order's and
    links the charge sent after it (PAY-1, PAY-5)."""
    now = timezone.now()
    account, _ = card_account("risk3ds")
    asked = place(account, "30.00", now=now).charge
    challenge = ThreeDSChallenge.objects.get(charge=asked)
    link_challenge = ThreeDSChallenge.objects.create(
        payment_method=account.payment_methods.get(), trigger=ThreeDSChallenge.Trigger.REGION,
        status=ThreeDSChallenge.Status.SUCCEEDED, created_at=now, expires_at=now,
    )
    replay = order_three_ds_complete(challenge_id=challenge.pk, outcome="success", now=now).charge

    client = login("finance")
    asked_page = client.get(reverse("admin:payments_charge_change", args=[asked.pk])).content.decode()
    assert "three_ds_not_completed" in asked_page and "asked for" in asked_page
    assert reverse("admin:payments_threedschallenge_change", args=[challenge.pk]) in asked_page
    replay_page = client.get(reverse("admin:payments_charge_change", args=[replay.pk])).content.decode()
    assert "sent after" in replay_page

    admin = login("superuser")
    orders = result_pks(admin.get(changelist("threedschallenge"), {"purpose": "order"}))
    assert orders == {challenge.pk}
    assert result_pks(admin.get(changelist("threedschallenge"), {"purpose": "link"})) == {link_challenge.pk}
    detail = admin.get(reverse("admin:payments_threedschallenge_change", args=[challenge.pk])).content.decode()
    assert reverse("admin:payments_charge_change", args=[replay.pk]) in detail and "Succeeded" in detail
