"""Console API for usage (PAY-2) and orders (PAY-1, PAY-5, PAY-6, CRED-3): status codes, error
shapes, I6 at the edge (no floats, at most 2 places) and I2 (a reference is one event)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from payments.api.clients import api_client_token_issue
from payments.gateways.simulated import PROCESSOR
from payments.models import Bill, Charge, UsageRecord
from tests.factories import AccountFactory
from tests.helpers.charging import card_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='console-billing').key}")
    return client


def assert_error(response, status: int, rule: str | None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= {"code", "rule", "detail"} and body["rule"] == rule and body["code"] and body["detail"]
    return body


def this_month() -> str:
    """The API reads the real clock, and a usage period must be within its window (PAY-2)."""
    return timezone.now().strftime("%Y-%m")


def usage(api, account_id, **overrides):
    body = {"amount": "12.50", "currency": "USD", "period": this_month(), "reference": "use-1", **overrides}
    return api.post(f"/api/v1/accounts/{account_id}/usage/", body, format="json")


def order(api, account_id, **overrides):
    body = {"kind": "purchase", "amount": "99.00", "currency": "USD", "reference": "ord-1", **overrides}
    return api.post(f"/api/v1/accounts/{account_id}/orders/", body, format="json")


# --- usage -----------------------------------------------------------------------------------------------


def test_pay_2_usage_is_recorded_201_and_a_replay_answers_200_with_the_same_record(api):
    account, _ = card_account()
    period = this_month()  # once: the replay must send the same figures even across a month end
    first = usage(api, account.pk, period=period)
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["amount"], body["currency"], body["period"], body["status"]) == ("12.50", "USD", period, "unbilled")
    again = usage(api, account.pk, period=period)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert UsageRecord.objects.count() == 1


def test_i2_usage_reference_reused_with_other_figures_is_409(api):
    account, _ = card_account()
    usage(api, account.pk)
    body = assert_error(usage(api, account.pk, amount="12.51"), 409, "I2")
    assert body["code"] == "usage_reference_reused"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 12.5),  # a JSON number: a float once parsed (I6)
        ("amount", 12),
        ("amount", "12.505"),  # more than 2 places (I6)
        ("amount", "0"),
        ("amount", "-1.00"),
        ("amount", "1e3"),
        ("currency", "XYZ"),
        ("period", "2026-13"),
        ("period", "11/2026"),
        ("reference", ""),
    ],
)
def test_i6_malformed_usage_is_400_naming_the_field(api, field, value):
    account, _ = card_account()
    body = assert_error(usage(api, account.pk, **{field: value}), 400, None)
    assert list(body["fields"]) == [field]
    assert not UsageRecord.objects.exists()


def test_usage_for_an_unknown_account_is_404(api):
    assert_error(usage(api, 999999), 404, None)


def test_billing_endpoints_need_a_token():
    account = AccountFactory()
    assert APIClient().post(f"/api/v1/accounts/{account.pk}/usage/", {}, format="json").status_code == 401
    assert APIClient().post(f"/api/v1/accounts/{account.pk}/orders/", {}, format="json").status_code == 401


# --- orders ----------------------------------------------------------------------------------------------


def test_pay_1_order_is_201_with_the_paid_bill_and_the_succeeded_charge(api):
    account, method = card_account()
    response = order(api, account.pk, kind="renewal", amount="99.00")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["bill"]["kind"] == "order" and body["bill"]["order_kind"] == "renewal"
    assert (body["bill"]["total"], body["bill"]["amount_paid"], body["bill"]["status"]) == ("99.00", "99.00", "paid")
    assert (body["charge"]["status"], body["charge"]["amount"], body["charge"]["payment_method"]) == (
        "succeeded", "99.00", method.pk,
    )
    assert [c.amount for c in PROCESSOR.charges] == [Decimal("99.00")]  # PAY-4: no fee


def test_pay_5_declined_order_is_201_with_the_open_bill_and_the_failed_charge(api):
    """The order stands (an open bill); the charge says why it failed."""
    account, _ = card_account("chargedecline")
    body = order(api, account.pk).json()
    assert body["bill"]["status"] == "open"
    assert (body["charge"]["status"], body["charge"]["failure_reason"], body["charge"]["failure_rule"]) == (
        "failed", "issuer_declined", "PAY-5",
    )


def test_pay_1_order_on_a_card_linked_through_the_api_that_needs_3ds_fails_pay_5(api):
    account_id = api.post("/api/v1/accounts/", {"name": "Risky", "kind": "individual", "country": "US"}, format="json").json()["id"]
    card = {
        "number": "4000000000003204", "exp_month": 12, "exp_year": 2029, "cvv": "123", "cardholder_name": "Ada",
        "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
    }
    linked = api.post(f"/api/v1/accounts/{account_id}/cards/", card, format="json").json()
    completed = api.post(f"/api/v1/three-ds/{linked['three_ds']['id']}/complete/", {"outcome": "success"}, format="json")
    assert completed.json()["status"] == "active" and completed.json()["is_default"]

    placed = order(api, account_id)
    assert placed.status_code == 201, placed.content
    body = placed.json()
    assert (body["charge"]["status"], body["charge"]["failure_reason"]) == ("failed", "three_ds_not_completed")
    assert body["three_ds"]["required"] and body["three_ds"]["status"] == "pending" and body["three_ds"]["expires_at"]
    assert PROCESSOR.charges == []
    # The card's own 3DS is done: the method list does not show the order's challenge as the card's.
    [card_row] = api.get(f"/api/v1/accounts/{account_id}/payment-methods/").json()["results"]
    assert card_row["three_ds"] == {"required": False}

    # PAY-1: the console completes the order's challenge at the same endpoint; the bill is charged.
    answer = api.post(f"/api/v1/three-ds/{body['three_ds']['id']}/complete/", {"outcome": "success"}, format="json")
    assert answer.status_code == 200, answer.content
    paid = answer.json()
    assert (paid["bill"]["id"], paid["bill"]["status"], paid["bill"]["amount_paid"]) == (body["bill"]["id"], "paid", "99.00")
    assert paid["charge"]["status"] == "succeeded" and paid["charge"]["id"] != body["charge"]["id"]
    assert paid["three_ds"] is None  # the latest charge needed no challenge
    assert [c.amount for c in PROCESSOR.charges] == [Decimal("99.00")]

    # A second answer is refused (409, PAY-1) and charges nothing; the console's order replay
    # shows the paid bill.
    again = api.post(f"/api/v1/three-ds/{body['three_ds']['id']}/complete/", {"outcome": "success"}, format="json")
    assert assert_error(again, 409, "PAY-1")["code"] == "verification_not_pending"
    assert len(PROCESSOR.charges) == 1
    assert order(api, account_id).json()["bill"]["status"] == "paid"


def test_pay_5_order_challenge_failed_through_the_api_is_200_with_the_open_bill(api):
    account, _ = card_account("risk3ds")
    body = order(api, account.pk).json()
    answer = api.post(f"/api/v1/three-ds/{body['three_ds']['id']}/complete/", {"outcome": "failure"}, format="json")
    assert answer.status_code == 200, answer.content
    failed = answer.json()
    assert failed["bill"]["status"] == "open" and failed["charge"]["id"] == body["charge"]["id"]
    assert (failed["charge"]["failure_reason"], failed["charge"]["failure_rule"]) == ("three_ds_not_completed", "PAY-5")
    assert (failed["three_ds"]["status"], failed["three_ds"]["required"]) == ("failed", False)
    assert PROCESSOR.charges == []


def test_pay_1_unknown_challenge_is_404(api):
    assert assert_error(api.post("/api/v1/three-ds/999999/complete/", {"outcome": "success"}, format="json"), 404, None)


def test_pay_5_order_of_an_account_whose_kyc_is_required_is_422_and_creates_nothing(api):
    account, _ = card_account(kyc_status="required")
    body = assert_error(order(api, account.pk), 422, "PAY-5")
    assert body["code"] == "kyc_required"
    assert not Bill.objects.exists() and not Charge.objects.exists()


def test_hold_3_order_without_an_active_default_method_is_422(api):
    account = AccountFactory()
    assert assert_error(order(api, account.pk), 422, "HOLD-3")["code"] == "no_usable_method"


def test_pay_6_credit_account_order_is_201_with_no_charge(api):
    account, _ = card_account(credit_approved=True, credit_limit=Decimal("500.00"))
    body = order(api, account.pk, amount="500.00").json()
    assert body["charge"] is None and body["bill"]["status"] == "open"
    assert PROCESSOR.charges == []


def test_cred_3_order_past_the_credit_limit_is_422_and_creates_nothing(api):
    account, _ = card_account(credit_approved=True, credit_limit=Decimal("500.00"))
    body = assert_error(order(api, account.pk, amount="500.01"), 422, "CRED-3")
    assert body["code"] == "credit_limit_exceeded"
    assert not Bill.objects.exists()


def test_i2_same_order_twice_is_one_bill_one_charge_and_the_replay_answers_200(api):
    account, _ = card_account()
    first = order(api, account.pk)
    again = order(api, account.pk)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Bill.objects.count() == 1 and Charge.objects.count() == 1 and len(PROCESSOR.charges) == 1


def test_i2_order_reference_reused_with_other_figures_is_409(api):
    account, _ = card_account()
    order(api, account.pk)
    assert assert_error(order(api, account.pk, kind="upgrade"), 409, "I2")["code"] == "order_reference_reused"


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", 99.0), ("amount", "99.999"), ("kind", "rental"), ("currency", "US"), ("reference", "x" * 101)],
)
def test_i6_malformed_order_is_400_naming_the_field(api, field, value):
    account, _ = card_account()
    body = assert_error(order(api, account.pk, **{field: value}), 400, None)
    assert list(body["fields"]) == [field]
    assert not Bill.objects.exists()


# --- OpenAPI ---------------------------------------------------------------------------------------------


def test_schema_still_generates_without_warnings_with_the_billing_endpoints():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_schema_documents_usage_and_orders():
    schema = json.loads(APIClient().get("/api/v1/schema/", {"format": "json"}).content)
    assert {"/api/v1/accounts/{account_id}/usage/", "/api/v1/accounts/{account_id}/orders/"} <= set(schema["paths"])
    orders = schema["paths"]["/api/v1/accounts/{account_id}/orders/"]["post"]["responses"]
    assert {"201", "200", "400", "409", "422"} <= set(orders)
    assert schema["components"]["schemas"]["OrderKindEnum"]["enum"] == ["purchase", "upgrade", "renewal"]
