"""The console API through a token client: every endpoint, every error shape, the rules it surfaces.

Requests go through ``APIClient`` with the ``Authorization: Token`` header the console sends;
outcomes come from the real services and the simulated gateway's test cards.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from payments.models import LinkAttempt, PaymentMethod, ThreeDSChallenge
from tests.factories import (
    AccountFactory,
    CardMethodFactory,
    ChallengeFactory,
    PayPalMethodFactory,
    UserFactory,
)
from tests.helpers.api import VISA, card_body, link_card, new_account

pytestmark = pytest.mark.django_db

MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


def assert_error(response, status: int, rule: str | None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= {"code", "rule", "detail"}
    assert body["rule"] == rule
    assert body["code"] and body["detail"]
    return body


# --- accounts ---------------------------------------------------------------------------------------


def test_elig_1_create_account_answers_id_uid_and_region(api):
    response = api.post(
        "/api/v1/accounts/",
        {"name": "Acme GmbH", "kind": "enterprise", "country": "de", "email": "ops@acme.example"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["region"] == "EU"
    assert body["country"] == "DE"
    assert body["kind"] == "enterprise"
    assert body["uid"] and body["id"]


def test_elig_1_account_detail_shows_region_kyc_credit_and_balance(api):
    account_id = new_account(api, country="MY")
    body = api.get(f"/api/v1/accounts/{account_id}/").json()
    assert body["region"] == "MY"
    assert body["kyc_status"] == "not_required"
    assert body["credit"] == {"approved": False, "limit": "0.00", "currency": "USD"}
    assert body["balance"] == {"amount": "0.00", "currency": "USD"}  # no ledger entry yet
    assert body["balances"] == [{"amount": "0.00", "currency": "USD"}]


def test_sec_4_account_detail_answers_the_ledger_balance_per_currency_in_one_query(api):
    """SEC-4: ``balance`` (the main, credit currency) and ``balances`` are sums of the ledger."""
    from payments.models import LedgerEntry
    from payments.services import ledger_post

    account = AccountFactory(credit_currency="EUR")
    now = timezone.now()
    Kind = LedgerEntry.Kind
    for amount, currency, kind in [
        ("100.00", "USD", Kind.REMITTANCE_CREDIT), ("-30.25", "USD", Kind.BILL_PAYMENT),
        ("250.10", "EUR", Kind.CLAIM_CREDIT), ("5.00", "GBP", Kind.ADJUSTMENT), ("-5.00", "GBP", Kind.BILL_PAYMENT),
    ]:
        ledger_post(account_id=account.pk, amount=amount, currency=currency, kind=kind,
                    reference=f"api-balance:{account.pk}:{currency}:{amount}", now=now)
    AccountFactory()  # another account's money is not this one's
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"/api/v1/accounts/{account.pk}/").json()
    assert body["balance"] == {"amount": "250.10", "currency": "EUR"}
    assert body["balances"] == [
        {"amount": "250.10", "currency": "EUR"}, {"amount": "0.00", "currency": "GBP"},
        {"amount": "69.75", "currency": "USD"},
    ]
    assert sum('FROM "payments_ledgerentry"' in q["sql"] for q in queries.captured_queries) == 1


def test_account_create_malformed_input_is_400_with_fields(api):
    response = api.post("/api/v1/accounts/", {"kind": "reseller", "country": "Germany"}, format="json")
    body = assert_error(response, 400, None)
    assert set(body["fields"]) == {"name", "kind", "country"}


def test_account_create_unknown_country_code_is_400(api):
    response = api.post("/api/v1/accounts/", {"name": "X", "kind": "individual", "country": "XX"}, format="json")
    assert "country" in assert_error(response, 400, None)["fields"]


def test_unknown_account_is_404_everywhere(api):
    assert assert_error(api.get("/api/v1/accounts/999999/"), 404, None)["code"] == "account_not_found"
    assert_error(link_card(api, 999999), 404, None)
    assert_error(api.get("/api/v1/accounts/999999/payment-methods/"), 404, None)
    assert_error(
        api.post("/api/v1/accounts/999999/paypal/", {"email": "a@b.example", "payer_id": "P1", "country": "US"}, format="json"),
        404,
        None,
    )
    assert_error(api.post("/api/v1/accounts/999999/wallets/", {"wallet": "alipay"}, format="json"), 404, None)


def test_malformed_json_is_400_with_error_shape(api):
    response = api.generic("POST", "/api/v1/accounts/", "{not json", content_type="application/json")
    assert_error(response, 400, None)


# --- cards --------------------------------------------------------------------------------------------


def test_hold_3_card_link_answers_active_default_masked_method(api):
    account_id = new_account(api)
    response = link_card(api, account_id, "4242 4242 4242 4242")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "active"
    assert body["is_default"] is True
    assert (body["network"], body["last4"], body["expiry"]) == ("visa", "4242", "12/29")
    assert body["masked"] == "•••• 4242"
    assert body["three_ds"] == {"required": False}
    assert body["paypal_email"] is None


def test_link_3_two_digit_expiry_year_accepted(api):
    account_id = new_account(api)
    body = link_card(api, account_id, MASTERCARD, exp_month=3, exp_year=31).json()
    assert (body["status"], body["expiry"]) == ("active", "03/31")


def test_card_link_malformed_input_is_400_with_fields(api):
    account_id = new_account(api)
    body = card_body(number="4242-4242-abcd", cvv="12x", exp_month=13)
    body["billing_address"] = {"line1": "1 Main St", "city": "Springfield"}
    response = api.post(f"/api/v1/accounts/{account_id}/cards/", body, format="json")
    fields = assert_error(response, 400, None)["fields"]
    assert set(fields) == {"number", "cvv", "exp_month", "billing_address"}
    assert set(fields["billing_address"]) == {"postal_code", "country"}
    assert not LinkAttempt.objects.exists()  # a malformed request never reaches the service


def test_link_1_card_linked_to_another_account_is_409(api):
    first, second = new_account(api), new_account(api)
    assert link_card(api, first).status_code == 201
    body = assert_error(link_card(api, second, "4242 4242 4242 4242"), 409, "LINK-1")
    assert body["code"] == "already_linked"
    assert LinkAttempt.objects.filter(account_id=second, reason="already_linked").exists()


def test_elig_2_amex_refused_for_malaysian_account(api):
    account_id = new_account(api, country="MY")
    body = assert_error(link_card(api, account_id, AMEX), 422, "ELIG-2")
    assert body["code"] == "unsupported_region"
    assert LinkAttempt.objects.get(account_id=account_id).rule == "ELIG-2"


def test_elig_3_unionpay_refused(api):
    account_id = new_account(api)
    assert_error(link_card(api, account_id, "6200000000000005"), 422, "ELIG-3")


def test_elig_4_prepaid_card_refused(api):
    account_id = new_account(api)
    assert_error(link_card(api, account_id, "4000000000002206"), 422, "ELIG-4")
    assert not PaymentMethod.objects.filter(account_id=account_id).exists()


def test_elig_5_card_issued_in_chinese_mainland_refused(api):
    account_id = new_account(api)
    assert_error(link_card(api, account_id, "4000000000005506"), 422, "ELIG-5")


def test_elig_5_paypal_registered_in_chinese_mainland_refused(api):
    account_id = new_account(api)
    response = api.post(
        f"/api/v1/accounts/{account_id}/paypal/",
        {"email": "buyer@example.com", "payer_id": "PAYERCN01", "country": "CN"},
        format="json",
    )
    assert_error(response, 422, "ELIG-5")


@pytest.mark.parametrize("wallet", ["alipay", "wechat_pay", "Alipay"])
def test_elig_6_wallet_link_always_refused_with_clear_error(api, wallet):
    account_id = new_account(api)
    response = api.post(f"/api/v1/accounts/{account_id}/wallets/", {"wallet": wallet}, format="json")
    body = assert_error(response, 422, "ELIG-6")
    assert "not a payment method" in body["detail"]
    assert LinkAttempt.objects.get(account_id=account_id).reason == "wallet_not_supported"


def test_elig_6_wallet_name_must_be_a_name(api):
    account_id = new_account(api)
    response = api.post(f"/api/v1/accounts/{account_id}/wallets/", {"wallet": "42 pay!"}, format="json")
    assert "wallet" in assert_error(response, 400, None)["fields"]


def test_link_3_card_number_failing_luhn_refused(api):
    account_id = new_account(api)
    body = assert_error(link_card(api, account_id, "4242424242424241"), 422, "LINK-3")
    assert body["code"] == "invalid_card_details"


@pytest.mark.parametrize("expiry", ["earlier", "this_month"])
def test_link_3_expired_card_refused(api, expiry):
    account_id = new_account(api)
    today = timezone.now()
    month, year = (1, 2020) if expiry == "earlier" else (today.month, today.year)
    body = assert_error(link_card(api, account_id, exp_month=month, exp_year=year), 422, "LINK-3")
    assert body["code"] == "expires_too_soon"


def test_link_3_amex_needs_four_digit_cvv(api):
    account_id = new_account(api)
    assert_error(link_card(api, account_id, AMEX, cvv="123"), 422, "LINK-3")


def test_link_4_issuer_decline_refused_and_method_failed(api):
    account_id = new_account(api)
    body = assert_error(link_card(api, account_id, "4000000000000002"), 422, "LINK-4")
    assert body["code"] == "issuer_declined"
    listed = api.get(f"/api/v1/accounts/{account_id}/payment-methods/").json()["results"]
    assert [(m["status"], m["failure_reason"]) for m in listed] == [("failed", "issuer_declined")]


def test_gateway_unavailable_is_503_with_error_shape(api):
    account_id = new_account(api)
    body = assert_error(link_card(api, account_id, "4000000000001190"), 503, None)
    assert body["code"] == "gateway_unavailable"


# --- 3-D Secure ----------------------------------------------------------------------------------------


def test_link_5_eu_card_pending_until_3ds_succeeds(api):
    account_id = new_account(api, country="DE")
    response = link_card(api, account_id)
    assert response.status_code == 201
    pending = response.json()
    assert pending["status"] == "pending"
    assert pending["is_default"] is False
    assert pending["three_ds"]["required"] is True
    challenge_id = pending["three_ds"]["id"]
    assert ThreeDSChallenge.objects.get(pk=challenge_id).payment_method_id == pending["id"]
    listed = api.get(f"/api/v1/accounts/{account_id}/payment-methods/").json()["results"]
    assert listed[0]["three_ds"] == {"id": challenge_id, "required": True}

    response = api.post(f"/api/v1/three-ds/{challenge_id}/complete/", {"outcome": "success"}, format="json")
    assert response.status_code == 200, response.json()
    active = response.json()
    assert (active["id"], active["status"], active["is_default"]) == (pending["id"], "active", True)
    assert active["three_ds"] == {"required": False}


def test_link_5_failed_3ds_refuses_and_fails_method(api):
    account_id = new_account(api, country="MY")
    pending = link_card(api, account_id).json()
    response = api.post(f"/api/v1/three-ds/{pending['three_ds']['id']}/complete/", {"outcome": "failure"}, format="json")
    assert_error(response, 422, "LINK-5")
    assert PaymentMethod.objects.get(pk=pending["id"]).status == "failed"


def test_link_5_completing_a_finished_challenge_is_409(api):
    account_id = new_account(api, country="DE")
    challenge_id = link_card(api, account_id).json()["three_ds"]["id"]
    url = f"/api/v1/three-ds/{challenge_id}/complete/"
    assert api.post(url, {"outcome": "success"}, format="json").status_code == 200
    assert_error(api.post(url, {"outcome": "success"}, format="json"), 409, "LINK-5")


def test_three_ds_unknown_challenge_is_404_and_bad_outcome_400(api):
    assert_error(api.post("/api/v1/three-ds/999999/complete/", {"outcome": "success"}, format="json"), 404, None)
    response = api.post("/api/v1/three-ds/999999/complete/", {"outcome": "maybe"}, format="json")
    assert "outcome" in assert_error(response, 400, None)["fields"]


# --- PayPal -------------------------------------------------------------------------------------------


def start_paypal(api, account_id: int, payer_id: str = "PAYERUS01"):
    return api.post(
        f"/api/v1/accounts/{account_id}/paypal/",
        {"email": "buyer@example.com", "payer_id": payer_id, "country": "US"},
        format="json",
    )


def test_link_6_paypal_links_after_approved_agreement_with_funding(api):
    account_id = new_account(api)
    response = start_paypal(api, account_id)
    assert response.status_code == 201
    pending = response.json()
    assert pending["status"] == "pending"
    assert pending["approval_url"].startswith("https://")
    assert (pending["paypal_email"], pending["network"], pending["three_ds"]) == ("buyer@example.com", None, None)
    response = api.post(
        f"/api/v1/paypal/{pending['id']}/agreement/", {"outcome": "approved", "has_funding_source": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["is_default"]) == ("active", True)


def test_link_6_cancelled_agreement_refused_and_method_failed(api):
    account_id = new_account(api)
    method_id = start_paypal(api, account_id).json()["id"]
    response = api.post(f"/api/v1/paypal/{method_id}/agreement/", {"outcome": "cancelled"}, format="json")
    assert_error(response, 422, "LINK-6")
    failed = api.get(f"/api/v1/accounts/{account_id}/payment-methods/?status=failed").json()["results"]
    assert [(m["id"], m["agreement_state"], m["failure_reason"]) for m in failed] == [
        (method_id, "cancelled", "agreement_not_approved")
    ]


def test_link_6_approved_agreement_without_funding_source_refused(api):
    account_id = new_account(api)
    method_id = start_paypal(api, account_id).json()["id"]
    response = api.post(
        f"/api/v1/paypal/{method_id}/agreement/", {"outcome": "approved", "has_funding_source": False}, format="json"
    )
    assert assert_error(response, 422, "LINK-6")["code"] == "no_funding_source"


def test_link_6_approved_agreement_must_say_whether_it_has_funding(api):
    account_id = new_account(api)
    method_id = start_paypal(api, account_id).json()["id"]
    response = api.post(f"/api/v1/paypal/{method_id}/agreement/", {"outcome": "approved"}, format="json")
    assert "has_funding_source" in assert_error(response, 400, None)["fields"]
    assert PaymentMethod.objects.get(pk=method_id).status == "pending"


def test_link_6_agreement_of_a_card_is_404(api):
    account_id = new_account(api)
    card_id = link_card(api, account_id).json()["id"]
    response = api.post(f"/api/v1/paypal/{card_id}/agreement/", {"outcome": "cancelled"}, format="json")
    assert_error(response, 404, None)


def test_elig_2_paypal_refused_for_eu_account(api):
    account_id = new_account(api, country="FR")
    assert_error(start_paypal(api, account_id), 422, "ELIG-2")


def test_link_1_paypal_linked_to_another_account_is_409(api):
    first, second = new_account(api), new_account(api)
    assert start_paypal(api, first, "SAMEPAYER").status_code == 201
    assert_error(start_paypal(api, second, "SAMEPAYER"), 409, "LINK-1")


# --- listing ------------------------------------------------------------------------------------------


def test_payment_methods_list_filters_and_hides_removed(api):
    account = AccountFactory()
    card = CardMethodFactory(account=account, is_default=True)
    paypal = PayPalMethodFactory(account=account)
    removed = CardMethodFactory(account=account, status=PaymentMethod.Status.REMOVED)
    url = f"/api/v1/accounts/{account.pk}/payment-methods/"

    body = api.get(url).json()
    assert body["count"] == 2
    assert [m["id"] for m in body["results"]] == [card.pk, paypal.pk]  # the default first
    assert [m["id"] for m in api.get(url, {"kind": "paypal"}).json()["results"]] == [paypal.pk]
    assert [m["id"] for m in api.get(url, {"status": "removed"}).json()["results"]] == [removed.pk]
    assert api.get(url, {"status": "active", "kind": "card"}).json()["results"][0]["masked"] == f"•••• {card.last4}"
    assert "status" in assert_error(api.get(url, {"status": "lost"}), 400, None)["fields"]


def test_payment_methods_list_query_count_does_not_grow_with_methods(api):
    """The page is rendered with a fixed number of queries (prefetched 3DS challenges)."""

    def queries_for(account) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(f"/api/v1/accounts/{account.pk}/payment-methods/").status_code == 200
        return len(ctx.captured_queries)

    small, large = AccountFactory(), AccountFactory()
    CardMethodFactory(account=small, status=PaymentMethod.Status.PENDING)
    for _ in range(6):
        pending = CardMethodFactory(account=large, status=PaymentMethod.Status.PENDING)
        ChallengeFactory(payment_method=pending)
    PayPalMethodFactory(account=large)
    assert queries_for(small) == queries_for(large)


def test_payment_method_detail_is_masked_and_404_when_unknown(api):
    card = CardMethodFactory()
    body = api.get(f"/api/v1/payment-methods/{card.pk}/").json()
    assert (body["masked"], body["account"]) == (f"•••• {card.last4}", card.account_id)
    assert_error(api.get("/api/v1/payment-methods/999999/"), 404, None)


# --- default and removal ------------------------------------------------------------------------------


def test_def_2_default_switches_to_another_active_method(api):
    account_id = new_account(api)
    first = link_card(api, account_id).json()
    second = link_card(api, account_id, MASTERCARD).json()
    assert (first["is_default"], second["is_default"]) == (True, False)
    response = api.post(f"/api/v1/payment-methods/{second['id']}/default/")
    assert response.status_code == 200
    assert response.json()["is_default"] is True
    assert PaymentMethod.objects.get(pk=first["id"]).is_default is False


def test_def_2_pending_method_cannot_become_default(api):
    account_id = new_account(api, country="DE")
    pending = link_card(api, account_id).json()
    body = assert_error(api.post(f"/api/v1/payment-methods/{pending['id']}/default/"), 422, "DEF-2")
    assert body["code"] == "default_switch_refused"


def test_def_2_unknown_method_is_404(api):
    assert_error(api.post("/api/v1/payment-methods/999999/default/"), 404, None)


def test_del_1_non_default_method_unlinked_with_204_then_hidden(api):
    account_id = new_account(api)
    link_card(api, account_id)
    second = link_card(api, account_id, MASTERCARD).json()
    response = api.delete(f"/api/v1/payment-methods/{second['id']}/")
    assert response.status_code == 204
    assert response.content == b""
    url = f"/api/v1/accounts/{account_id}/payment-methods/"
    assert second["id"] not in [m["id"] for m in api.get(url).json()["results"]]
    assert [m["id"] for m in api.get(url, {"status": "removed"}).json()["results"]] == [second["id"]]


def test_del_2_default_method_with_others_cannot_be_deleted(api):
    account_id = new_account(api)
    default = link_card(api, account_id).json()
    link_card(api, account_id, MASTERCARD)
    body = assert_error(api.delete(f"/api/v1/payment-methods/{default['id']}/"), 422, "DEL-2")
    assert body["code"] == "default_method_in_use"
    assert PaymentMethod.objects.get(pk=default["id"]).status == "active"


def test_del_3_only_active_method_kept_while_resources_run(api):
    account = AccountFactory(has_running_resources=True)
    card = CardMethodFactory(account=account, is_default=True)
    assert_error(api.delete(f"/api/v1/payment-methods/{card.pk}/"), 422, "DEL-3")


def test_del_4_unlinked_card_can_be_linked_to_another_account(api):
    first, second = new_account(api), new_account(api)
    card = link_card(api, first).json()
    assert api.delete(f"/api/v1/payment-methods/{card['id']}/").status_code == 204
    assert link_card(api, second).status_code == 201


def test_delete_unknown_method_is_404(api):
    assert_error(api.delete("/api/v1/payment-methods/999999/"), 404, None)


# --- authentication -----------------------------------------------------------------------------------


ENDPOINTS = [
    ("post", "/api/v1/accounts/"),
    ("get", "/api/v1/accounts/1/"),
    ("post", "/api/v1/accounts/1/cards/"),
    ("post", "/api/v1/accounts/1/paypal/"),
    ("post", "/api/v1/accounts/1/wallets/"),
    ("get", "/api/v1/accounts/1/payment-methods/"),
    ("post", "/api/v1/paypal/1/agreement/"),
    ("post", "/api/v1/three-ds/1/complete/"),
    ("get", "/api/v1/payment-methods/1/"),
    ("delete", "/api/v1/payment-methods/1/"),
    ("post", "/api/v1/payment-methods/1/default/"),
]


@pytest.mark.parametrize("method,url", ENDPOINTS)
def test_every_endpoint_refuses_a_request_without_token(method, url):
    response = getattr(APIClient(), method)(url, {}, format="json")
    body = assert_error(response, 401, None)
    assert body["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


def test_wrong_token_is_refused():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")
    assert assert_error(client.get("/api/v1/accounts/1/"), 401, None)["code"] == "authentication_failed"


@pytest.mark.parametrize("method,url", ENDPOINTS)
def test_staff_session_cookie_is_not_accepted(method, url):
    account = AccountFactory()
    UserFactory(username="boss", is_superuser=True)
    client = APIClient()
    assert client.login(username="boss", password="pw")  # a real admin session cookie
    response = getattr(client, method)(url.replace("/1/", f"/{account.pk}/"), {}, format="json")
    assert_error(response, 401, None)


def test_deactivated_api_client_is_refused(api):
    get_user_model().objects.filter(username="api-console-test").update(is_active=False)
    assert_error(api.get("/api/v1/accounts/1/"), 401, None)


# --- SEC-1 ---------------------------------------------------------------------------------------------


def _keys_and_strings(value, keys=None, strings=None):
    """Every key and every string value of a JSON document."""
    keys, strings = (set() if keys is None else keys), ([] if strings is None else strings)
    if isinstance(value, dict):
        keys.update(value)
        for item in value.values():
            _keys_and_strings(item, keys, strings)
    elif isinstance(value, list):
        for item in value:
            _keys_and_strings(item, keys, strings)
    elif isinstance(value, str):
        strings.append(value)
    return keys, strings


def test_sec_1_no_response_contains_a_card_number_or_cvv(api):
    us, de, my = new_account(api), new_account(api, country="DE"), new_account(api, country="MY")
    sent = [
        (us, VISA, "987"),
        (us, "5555 5555 5555 4444", "876"),
        (us, AMEX, "7654"),
        (us, "4000000000000002", "765"),  # declined
        (us, "4000000000002206", "654"),  # prepaid, refused
        (us, "4242424242424241", "543"),  # bad Luhn
        (de, "2223003122003222", "432"),  # 3DS pending
        (my, AMEX, "3210"),  # ELIG-2
        (us, VISA, "321"),  # LINK-1 conflict
        (us, VISA + "00000", "210"),  # too long
        (us, "4242 4242 4242 424x", "12x4"),  # malformed: 400
        (us, VISA, "98a"),  # malformed cvv: 400
    ]
    statuses = set()
    for account_id, number, cvv in sent:
        response = link_card(api, account_id, number, cvv=cvv)
        statuses.add(response.status_code)
    # A PAN sent in the wrong field, where DRF would quote it back ("... is not a valid choice").
    api.post("/api/v1/accounts/", {"name": "X", "kind": VISA, "country": "US"}, format="json")
    api.get(f"/api/v1/accounts/{us}/payment-methods/", {"kind": VISA})
    for account_id in (us, de, my):
        api.get(f"/api/v1/accounts/{account_id}/payment-methods/", {"status": "removed"})
        api.get(f"/api/v1/accounts/{account_id}/payment-methods/")
    assert statuses >= {201, 400, 409, 422}

    numbers = {number.replace(" ", "") for _, number, _ in sent} | {number for _, number, _ in sent}
    cvvs = {cvv for _, _, cvv in sent}
    assert len(api.bodies) == 3 + len(sent) + 2 + 6  # every answer, accounts included
    for raw in api.bodies:
        text = raw.decode()
        for number in numbers:
            assert number not in text
        document = json.loads(text)
        keys, strings = _keys_and_strings(document)
        if "fields" not in document:  # a 400 names the fields at fault, nothing else may
            assert "cvv" not in keys and "number" not in keys
        for cvv in cvvs:
            assert f'"{cvv}"' not in text
            assert not any(cvv in value.split() for value in strings), cvv


def test_sec_1_card_number_quoted_by_a_stock_message_is_redacted(api):
    """DRF quotes an invalid choice back; a PAN sent there comes back redacted."""
    response = api.post("/api/v1/accounts/", {"name": "X", "kind": f"{VISA}", "country": "US"}, format="json")
    message = assert_error(response, 400, None)["fields"]["kind"][0]
    assert VISA not in message
    assert "[REDACTED PAN]" in message


# --- OpenAPI -------------------------------------------------------------------------------------------


def test_schema_generates_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_schema_endpoint_lists_the_console_paths():
    response = APIClient().get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for path in (
        "/api/v1/accounts/",
        "/api/v1/accounts/{account_id}/",
        "/api/v1/accounts/{account_id}/cards/",
        "/api/v1/accounts/{account_id}/paypal/",
        "/api/v1/accounts/{account_id}/wallets/",
        "/api/v1/accounts/{account_id}/payment-methods/",
        "/api/v1/paypal/{method_id}/agreement/",
        "/api/v1/three-ds/{challenge_id}/complete/",
        "/api/v1/payment-methods/{method_id}/",
        "/api/v1/payment-methods/{method_id}/default/",
    ):
        assert path in paths, path


def test_docs_page_answers():
    response = APIClient().get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
