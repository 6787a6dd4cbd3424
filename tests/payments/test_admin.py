"""The payments admin through the test client, as each real role (STYLE.md: admin tests).

Smoke (every changelist, change page, search and filter), each action with its refusals, the
query budget of the big changelists, masked card display (SEC-1) and escaping of names.
"""

from __future__ import annotations

import importlib.util
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from billing_backoffice import admin_site
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from tests.helpers.admin import messages_of
from tests.factories import (
    AccountFactory,
    CardMethodFactory,
    ChallengeFactory,
    HoldFactory,
    LinkAttemptFactory,
    PayPalMethodFactory,
)
from tests.helpers.roles import action_post, changelist

pytestmark = pytest.mark.django_db

ROLES = ["superuser", "manager", "finance"]
FULL_NUMBER = "4242424242424242"
Status = PaymentMethod.Status


def result_pks(response) -> set[int]:
    assert response.status_code == 200, response.status_code  # an invalid filter redirects (?e=1)
    return {obj.pk for obj in response.context["cl"].result_list}


def change_url(obj) -> str:
    return reverse(f"admin:payments_{obj._meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def world():
    """One object of each kind, spread over regions, states and filters."""
    now = timezone.now()
    us = AccountFactory(name="Acme Corp", country="US", email="billing@acme.example")
    eu = AccountFactory(
        name="Euro GmbH", country="DE", kind=Account.Kind.ENTERPRISE, status=Account.Status.DEACTIVATED,
        deactivated_at=now - timedelta(days=2), kyc_status=Account.KycStatus.VERIFIED,
    )
    gb = AccountFactory(name="Brit Ltd", country="GB")
    card = CardMethodFactory(account=us, number=FULL_NUMBER, is_default=True)
    mastercard = CardMethodFactory(account=us, number="5555555555554444", network="mastercard")
    eu_card = CardMethodFactory(account=eu, number="4000056655665556", is_default=True)
    paypal = PayPalMethodFactory(
        account=gb, status=Status.PENDING, agreement_state=PaymentMethod.AgreementState.NOT_APPROVED,
        paypal_email="pay@brit.example", paypal_payer_id="PAYERBRIT01",
    )
    placed = HoldFactory(payment_method=card, authorization_id="auth_approve_placed")
    overdue = HoldFactory(
        payment_method=mastercard, currency="EUR", placed_at=now - timedelta(hours=25),
        authorization_id="auth_approve_overdue",
    )
    released = HoldFactory(
        payment_method=eu_card, status=VerificationHold.Status.RELEASED, released_at=now,
        placed_at=now - timedelta(hours=30),
    )
    declined = LinkAttemptFactory(account=us, last4="0002")
    linked = LinkAttemptFactory(
        account=gb, kind="paypal", outcome=LinkAttempt.Outcome.LINKED, reason="", payment_method=paypal
    )
    wallet = LinkAttemptFactory(
        account=eu, kind="alipay", reason=LinkAttempt.Reason.WALLET_NOT_SUPPORTED, rule="ELIG-6",
        created_at=now - timedelta(days=40),
    )
    pending_3ds = ChallengeFactory(payment_method__account=eu)
    risk_3ds = ChallengeFactory(
        payment_method=eu_card, trigger=ThreeDSChallenge.Trigger.RISK,
        status=ThreeDSChallenge.Status.SUCCEEDED, completed_at=now,
    )
    return {k: v for k, v in locals().items() if k != "now"}


# --- smoke: every changelist and change page, as every role -------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "key", ["us", "eu", "card", "paypal", "placed", "released", "declined", "wallet", "pending_3ds"]
)
def test_change_page_renders_for_every_role(as_role, world, role, key):
    response = as_role(role).get(change_url(world[key]))
    assert response.status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_account_changelist_lists_every_account_with_masked_default(as_role, world, role):
    response = as_role(role).get(changelist("account"))
    assert result_pks(response) == {world["us"].pk, world["eu"].pk, world["gb"].pk}
    assert "•••• 4242" in response.content.decode()


# --- search, routed to indexed lookups ------------------------------------------------------


@pytest.mark.parametrize(
    "model, term, expected",
    [
        ("account", "{us.uid}", ["us"]),
        ("account", "{eu.pk}", ["eu"]),
        ("account", "BILLING@acme.example", ["us"]),
        ("account", "gmbh", ["eu"]),
        ("account", "99999999999999999999999", []),
        ("paymentmethod", "4242", ["card"]),
        ("paymentmethod", "{us.uid}", ["card", "mastercard"]),
        ("paymentmethod", "pay@brit.example", ["paypal"]),
        ("paymentmethod", "payerbrit01", ["paypal"]),
        ("verificationhold", "{us.uid}", ["placed", "overdue"]),
        ("verificationhold", "auth_approve_overdue", ["overdue"]),
        ("linkattempt", "{gb.uid}", ["linked"]),
        ("linkattempt", "acme", []),
        ("threedschallenge", "{eu.uid}", ["pending_3ds", "risk_3ds"]),
    ],
)
def test_search_finds_by_indexed_columns(as_role, world, model, term, expected):
    q = term.format(**world)
    response = as_role("manager").get(changelist(model), {"q": q})
    assert result_pks(response) == {world[k].pk for k in expected}


# --- every filter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, params, expected",
    [
        ("account", {"region__exact": "EU"}, ["eu"]),
        ("account", {"kind__exact": "enterprise"}, ["eu"]),
        ("account", {"status__exact": "deactivated"}, ["eu"]),
        ("account", {"kyc_status__exact": "verified"}, ["eu"]),
        ("paymentmethod", {"kind__exact": "paypal"}, ["paypal"]),
        ("paymentmethod", {"network__exact": "mastercard"}, ["mastercard"]),
        ("paymentmethod", {"status__exact": "pending"}, ["paypal", "pending_3ds_method"]),
        ("paymentmethod", {"account__region__exact": "US"}, ["card", "mastercard"]),
        ("paymentmethod", {"is_default__exact": "1"}, ["card", "eu_card"]),
        ("verificationhold", {"status__exact": "released"}, ["released"]),
        ("verificationhold", {"currency": "EUR"}, ["overdue"]),
        ("verificationhold", {"due": "due"}, ["placed", "overdue"]),
        ("verificationhold", {"due": "overdue"}, ["overdue"]),
        ("linkattempt", {"outcome__exact": "linked"}, ["linked"]),
        ("linkattempt", {"reason__exact": "issuer_declined"}, ["declined"]),
        ("linkattempt", {"kind": "wallet"}, ["wallet"]),
        ("linkattempt", {"kind": "card"}, ["declined"]),
        ("linkattempt", {"created_at__gte": "{week_ago}"}, ["declined", "linked"]),
        ("threedschallenge", {"status__exact": "pending"}, ["pending_3ds"]),
        ("threedschallenge", {"trigger__exact": "risk"}, ["risk_3ds"]),
    ],
)
@pytest.mark.parametrize("role", ROLES)
def test_each_filter_narrows_the_changelist(as_role, world, role, model, params, expected):
    world["pending_3ds_method"] = world["pending_3ds"].payment_method
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()
    params = {k: v.format(week_ago=week_ago) for k, v in params.items()}
    response = as_role(role).get(changelist(model), params)
    assert result_pks(response) == {world[k].pk for k in expected}


# --- accounts: deactivate / reactivate --------------------------------------------------------


def test_manager_deactivates_and_reactivates_an_account(as_role, world):
    client = as_role("manager")
    account = world["gb"]
    response = action_post(client, "account", "deactivate_selected", [account.pk])
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.status == Account.Status.DEACTIVATED and account.deactivated_at is not None
    assert "Deactivated 1 account(s)." in messages_of(response)

    page = client.get(change_url(account)).content.decode()
    assert "silent period ends" in page.lower()
    assert date_format(account.deactivated_at + timedelta(days=15), "DATETIME_FORMAT") in page

    response = action_post(client, "account", "reactivate_selected", [account.pk])
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE and account.deactivated_at is None


def test_link_2_closed_account_reactivation_refused_with_rule(as_role, world):
    closed = AccountFactory(status=Account.Status.CLOSED, closed_at=timezone.now())
    response = action_post(as_role("manager"), "account", "reactivate_selected", [closed.pk])
    closed.refresh_from_db()
    assert closed.status == Account.Status.CLOSED
    assert any("LINK-2: A closed account cannot be reactivated." in m for m in messages_of(response))


def test_account_changelist_shows_silent_period_end_of_deactivated(as_role, world):
    response = as_role("finance").get(changelist("account"), {"status__exact": "deactivated"})
    ends = world["eu"].deactivated_at + timedelta(days=15)
    assert date_format(ends, "DATETIME_FORMAT") in response.content.decode()


def test_superuser_edits_contact_fields_but_never_status(as_role, world):
    account = AccountFactory(name="Old name")
    data = {"name": "New name", "email": "new@example.com", "account_manager": "", "status": "closed"}
    for prefix in ("payment_methods", "holds", "link_attempts"):
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    response = as_role("superuser").post(change_url(account), data)
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.name, account.email, account.status) == ("New name", "new@example.com", "active")


def test_link_7_account_page_shows_only_the_20_most_recent_attempts(as_role):
    account = AccountFactory()
    start = timezone.now() - timedelta(days=1)
    for i in range(25):
        LinkAttemptFactory(account=account, created_at=start + timedelta(minutes=i), detail=f"attempt-{i:02d}")
    page = as_role("manager").get(change_url(account)).content.decode()
    shown = [i for i in range(25) if f"attempt-{i:02d}" in page]
    assert shown == list(range(5, 25))


# --- payment methods: make default / remove -------------------------------------------------


def test_def_2_make_default_switches_to_another_active_method(as_role, world):
    response = action_post(as_role("manager"), "paymentmethod", "make_default_selected", [world["mastercard"].pk])
    world["card"].refresh_from_db(), world["mastercard"].refresh_from_db()
    assert world["mastercard"].is_default and not world["card"].is_default
    assert "1 method(s) made the default of their account." in messages_of(response)


def test_def_2_make_default_of_a_pending_method_refused_and_changes_nothing(as_role, world):
    pending = CardMethodFactory(account=world["us"], status=Status.PENDING)
    response = action_post(as_role("manager"), "paymentmethod", "make_default_selected", [pending.pk])
    pending.refresh_from_db(), world["card"].refresh_from_db()
    assert not pending.is_default and world["card"].is_default
    assert any("DEF-2: Only an active method can become the default" in m for m in messages_of(response))


def test_del_2_removing_the_default_refused_with_rule_and_reason(as_role, world):
    response = action_post(as_role("manager"), "paymentmethod", "remove_selected", [world["card"].pk])
    world["card"].refresh_from_db()
    assert world["card"].status == Status.ACTIVE and world["card"].is_default
    assert any(
        m.startswith("Card •••• 4242: DEL-2: This is the default payment method") for m in messages_of(response)
    )


def test_del_3_only_active_method_kept_while_resources_run(as_role, world):
    account = AccountFactory(has_running_resources=True)
    only = CardMethodFactory(account=account, is_default=True)
    response = action_post(as_role("superuser"), "paymentmethod", "remove_selected", [only.pk])
    only.refresh_from_db()
    assert only.status == Status.ACTIVE
    assert any("DEL-3: This is the only active payment method" in m for m in messages_of(response))


def test_del_1_remove_loops_per_id_refusing_one_removing_the_other(as_role, world):
    card, mastercard = world["card"], world["mastercard"]
    response = action_post(as_role("manager"), "paymentmethod", "remove_selected", [card.pk, mastercard.pk])
    card.refresh_from_db(), mastercard.refresh_from_db()
    assert card.status == Status.ACTIVE  # DEL-2 refused this one
    assert mastercard.status == Status.REMOVED and mastercard.removed_at is not None
    msgs = messages_of(response)
    assert "Removed 1 payment method(s)." in msgs and any("DEL-2" in m for m in msgs)


def test_sec_3_action_on_more_than_the_limit_does_nothing(as_role, world, monkeypatch):
    monkeypatch.setattr(admin_site, "ACTION_OBJECT_LIMIT", 1)
    ids = [world["mastercard"].pk, world["paypal"].pk]
    response = action_post(as_role("manager"), "paymentmethod", "remove_selected", ids)
    assert not PaymentMethod.objects.filter(pk__in=ids, status=Status.REMOVED).exists()
    assert any("at most 1" in m for m in messages_of(response))


# --- holds: release now ---------------------------------------------------------------------

needs_holds_service = pytest.mark.skipif(
    importlib.util.find_spec("payments.services.holds") is None,
    reason="payments/services/holds.py (hold_release) is not written yet",
)


@needs_holds_service
def test_hold_2_release_now_voids_once(as_role, world):
    hold = world["placed"]
    client = as_role("manager")
    response = action_post(client, "verificationhold", "release_selected", [hold.pk])
    hold.refresh_from_db()
    assert hold.status == VerificationHold.Status.RELEASED and hold.released_at is not None
    assert "Released 1 hold(s)." in messages_of(response)
    released_at = hold.released_at
    action_post(client, "verificationhold", "release_selected", [hold.pk])  # replay
    hold.refresh_from_db()
    assert hold.released_at == released_at


@needs_holds_service
def test_hold_2_release_now_refused_while_a_job_holds_the_lease(as_role, world):
    hold = world["overdue"]
    VerificationHold.objects.filter(pk=hold.pk).update(
        lease_token=uuid.uuid4(), lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    response = action_post(as_role("superuser"), "verificationhold", "release_selected", [hold.pk])
    hold.refresh_from_db()
    assert hold.status == VerificationHold.Status.PLACED
    assert any(": HOLD-2: " in m for m in messages_of(response))


@needs_holds_service
def test_hold_2_release_now_reports_a_gateway_failure(as_role):
    hold = HoldFactory(authorization_id="auth_voidfailsonce_x1")
    response = action_post(as_role("manager"), "verificationhold", "release_selected", [hold.pk])
    hold.refresh_from_db()
    assert hold.status == VerificationHold.Status.RELEASE_FAILED
    assert any("not released" in m for m in messages_of(response))
    assert not any(m.startswith("Released") for m in messages_of(response))


# --- what the pages show -----------------------------------------------------------------------


def test_sec_1_pages_show_only_the_masked_card(as_role, world):
    client = as_role("superuser")
    card = world["card"]
    pages = {
        "account list": client.get(changelist("account")),
        "account page": client.get(change_url(world["us"])),
        "method list": client.get(changelist("paymentmethod")),
        "method page": client.get(change_url(card)),
        "hold list": client.get(changelist("verificationhold")),
        "hold page": client.get(change_url(world["placed"])),
        "3ds list": client.get(changelist("threedschallenge")),
        "method search": client.get(changelist("paymentmethod"), {"q": "4242"}),
    }
    for name, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200, name
        assert FULL_NUMBER not in html, name
        assert card.fingerprint not in html and card.gateway_token not in html, name
    for name in ("account list", "account page", "method list", "method page", "hold list"):
        assert "•••• 4242" in pages[name].content.decode(), name


def test_link_6_paypal_agreement_not_approved_shown_to_the_manager(as_role, world):
    client = as_role("manager")
    listing = client.get(changelist("paymentmethod"), {"kind__exact": "paypal"}).content.decode()
    assert "Agreement not approved" in listing
    page = client.get(change_url(world["paypal"])).content.decode()
    assert "Agreement not approved" in page
    account_page = client.get(change_url(world["gb"])).content.decode()
    assert "Agreement not approved" in account_page


def test_link_6_approved_paypal_not_flagged(as_role):
    approved = PayPalMethodFactory()
    page = as_role("manager").get(change_url(approved)).content.decode()
    assert "Agreement not approved" not in page


@pytest.mark.parametrize("role", ["superuser", "finance"])
def test_sec_3_xss_in_account_name_is_escaped(as_role, role):
    account = AccountFactory(name="<script>alert(1)</script>")
    CardMethodFactory(account=account, is_default=True)
    client = as_role(role)
    for response in (client.get(changelist("account")), client.get(change_url(account))):
        html = response.content.decode()
        assert response.status_code == 200
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- performance budget: fixed queries, no count of the whole table ---------------------------


def _queries_for(client, url) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def _accounts_with_methods(n: int) -> None:
    for _ in range(n):
        account = AccountFactory()
        CardMethodFactory(account=account, is_default=True)
        HoldFactory(payment_method__account=account)
        ChallengeFactory(payment_method__account=account)
        LinkAttemptFactory(account=account)


@pytest.mark.parametrize("role", ["superuser", "manager"])
@pytest.mark.parametrize("model", ["account", "paymentmethod", "verificationhold", "linkattempt", "threedschallenge"])
def test_changelist_query_count_does_not_grow_with_rows(as_role, role, model):
    client = as_role(role)
    _accounts_with_methods(5)
    few = _queries_for(client, changelist(model))
    _accounts_with_methods(45)
    many = _queries_for(client, changelist(model))
    assert len(many) == len(few), "\n".join(many)
    if role == "superuser":  # no permission lookups: the bare budget of QUALITY.md
        assert len(many) <= 6, "\n".join(many)


@pytest.mark.parametrize("model, table", [("account", "payments_account"), ("paymentmethod", "payments_paymentmethod")])
def test_unfiltered_changelist_uses_the_table_estimate_not_count(as_role, monkeypatch, model, table):
    _accounts_with_methods(30)
    _analyze(table)
    monkeypatch.setattr(admin_site.EstimatedCountPaginator, "exact_count_limit", 10)
    client = as_role("superuser")
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(changelist(model))
    assert response.context["cl"].result_count == response.context["cl"].model.objects.count()
    assert not [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]


def _analyze(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")  # what autovacuum keeps current on a real table


def test_filtered_changelist_matching_many_rows_uses_the_planner_estimate(as_role, monkeypatch):
    _accounts_with_methods(15)  # 30 active methods (and 15 pending ones behind 3DS challenges)
    _analyze("payments_paymentmethod")
    monkeypatch.setattr(admin_site.EstimatedCountPaginator, "exact_count_limit", 10)
    with CaptureQueriesContext(connection) as ctx:
        response = as_role("superuser").get(changelist("paymentmethod"), {"status__exact": "active"})
    assert not [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert response.context["cl"].result_count > 10
    assert len(response.context["cl"].result_list) == 30  # every row still reachable on one page


def test_filtered_changelist_matching_few_rows_counts_exactly_within_the_bound(as_role, monkeypatch):
    _accounts_with_methods(15)
    PayPalMethodFactory.create_batch(2)
    _analyze("payments_paymentmethod")
    monkeypatch.setattr(admin_site.EstimatedCountPaginator, "exact_count_limit", 10)
    with CaptureQueriesContext(connection) as ctx:
        response = as_role("superuser").get(changelist("paymentmethod"), {"kind__exact": "paypal"})
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 11" in sql for sql in counts)
    assert response.context["cl"].result_count == 2


def test_filtered_changelist_small_result_is_exact(as_role, world):
    response = as_role("superuser").get(changelist("paymentmethod"), {"kind__exact": "card"})
    assert response.context["cl"].result_count == 4
