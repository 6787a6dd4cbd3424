"""SEC-1: a card number typed into any free-text input is refused before anything is stored,
audited or logged: 422 naming SEC-1 and the field in the console API, a form error in the admin, and
``CardNumberInText`` from every service that creates such rows (so no path bypasses the edge).
The answer never repeats the number."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from billing_backoffice.free_text import CardNumberInText, card_number_free, contains_card_number
from payments import services as payment_services
from payments.api.clients import api_client_token_issue
from payments.services import orders, usage
from remittances.admin.claims import RejectForm, ReviewForm
from remittances.admin.credit import DecisionForm
from remittances.models import RemittanceClaim
from remittances.services import claims as claim_services
from remittances.services import credit as credit_services
from tests.helpers.cards import card_input
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db

PAN = "4111111111111111"
# The same number as people type it: alone, grouped with spaces or dashes, inside other text.
TYPED = [PAN, "4111 1111 1111 1111", "4111-1111-1111-1111", "card 4111111111111111 exp 12/29", "INV.4111111111111111"]
DIGITS_SEEN = ("4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111")


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='console-sec1').key}")
    return client


def table_counts() -> dict[str, int]:
    """Rows per table, audit (event) tables included: a refusal must leave every count as it was."""
    counts = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def put(body: dict, dotted: str, value: str) -> dict:
    target = body
    *parents, leaf = dotted.split(".")
    for name in parents:
        target = target[name]
    target[leaf] = value
    return body


def card_body() -> dict:
    return {
        "number": "4242424242424242", "exp_month": 12, "exp_year": timezone.now().year + 3, "cvv": "123",
        "cardholder_name": "Ada Lovelace", "company_name": "Acme",
        "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
    }


def this_month() -> str:
    return timezone.now().strftime("%Y-%m")


# endpoint (path under /api/v1/ with {account}), a valid body, the free-text fields in it
ENDPOINTS = {
    "account": ("accounts/", lambda: {"name": "Acme", "kind": "enterprise", "country": "US", "email": "a@acme.example"},
                ["name", "email"]),
    "card": ("accounts/{account}/cards/", card_body,
             ["cardholder_name", "company_name", "billing_address.line1", "billing_address.city",
              "billing_address.postal_code"]),
    "paypal": ("accounts/{account}/paypal/", lambda: {"email": "buyer@example.com", "payer_id": "PAYER1", "country": "US"},
               ["email", "payer_id"]),
    "wallet": ("accounts/{account}/wallets/", lambda: {"wallet": "alipay"}, ["wallet"]),
    "usage": ("accounts/{account}/usage/",
              lambda: {"amount": "1.00", "currency": "USD", "period": this_month(), "reference": "u-1"}, ["reference"]),
    "order": ("accounts/{account}/orders/",
              lambda: {"kind": "purchase", "amount": "1.00", "currency": "USD", "reference": "o-1"}, ["reference"]),
    "credit": ("accounts/{account}/credit-applications/",
               lambda: {"requested_limit": "100.00", "currency": "USD", "justification": "Growing"}, ["justification"]),
    "claim": ("accounts/{account}/claims/",
              lambda: {"amount": "10.00", "currency": "USD", "payer_name": "Acme", "bank_reference": "E2E-1"},
              ["payer_name", "bank_reference"]),
}
CASES = [
    (endpoint, field, typed)
    for endpoint, (_, _, fields) in ENDPOINTS.items()
    for field in fields
    for typed in (TYPED if field in ("name", "cardholder_name", "bank_reference") else TYPED[:1])
]


def pan_in(field: str, typed: str) -> str:
    if field.endswith("email"):
        return f"{typed.replace(' ', '').replace('.', '')}@example.com" if typed == PAN else typed
    return typed


@pytest.mark.parametrize(("endpoint", "field", "typed"), CASES)
def test_sec_1_card_number_in_free_text_refused_422_nothing_stored_nothing_echoed(api, endpoint, field, typed):
    account = AccountFactory(country="US", region="US")
    path, body, _ = ENDPOINTS[endpoint]
    value = pan_in(field, typed)
    request = put(body(), field, value)
    before = table_counts()
    response = api.post(f"/api/v1/{path.format(account=account.pk)}", request, format="json")
    assert response.status_code == 422, response.content  # a rule's refusal, never "malformed"
    error = response.json()
    assert error["rule"] == "SEC-1" and error["code"] == "card_number_in_text"
    leaf = field.split(".")[-1]
    messages = str(error["fields"])
    assert leaf in messages and "card number" in messages.lower()
    text = response.content.decode()
    assert not any(seen in text for seen in DIGITS_SEEN)
    assert table_counts() == before


def test_sec_1_the_same_bodies_without_a_card_number_pass_the_edge(api):
    """The SEC-1 test above must fail for the right reason: each body is valid without the PAN."""
    for endpoint, (path, body, _) in ENDPOINTS.items():
        account = AccountFactory(country="US", region="US")
        response = api.post(f"/api/v1/{path.format(account=account.pk)}", body(), format="json")
        assert response.status_code != 400, (endpoint, response.content)


def test_sec_1_detection_is_luhn_and_length_not_any_digits():
    assert contains_card_number("Ref 4111 1111 1111 1111") and contains_card_number("x4111-1111-1111-1111")
    assert not contains_card_number("4111111111111112")  # fails Luhn
    assert not contains_card_number("411111111111")  # 12 digits
    assert not contains_card_number("Invoice 2026-12-03 order 12345")
    card_number_free("Acme Ltd, 12 Main St")  # no error


# --- services: no path bypasses the edge -----------------------------------------------------------


def service_calls(now):
    account = AccountFactory(country="US", region="US")
    return {
        "account_create": lambda: payment_services.account_create(name=f"Jane {PAN}", kind="individual", country="US"),
        "account_create_email": lambda: payment_services.account_create(
            name="Jane", kind="individual", country="US", email=f"{PAN}@example.com"
        ),
        "card_link": lambda: payment_services.card_link(
            account_id=account.pk, card=card_input(billing_line1=f"{PAN} Main St"), now=now
        ),
        "paypal_link": lambda: payment_services.paypal_link(
            account_id=account.pk, email="b@example.com", payer_id=PAN, country="US", now=now
        ),
        "wallet_link": lambda: payment_services.wallet_link(account_id=account.pk, wallet=f"w{PAN}", now=now),
        "usage_record": lambda: usage.usage_record(
            account_id=account.pk, amount="1.00", currency="USD", period=now.strftime("%Y-%m"), reference=PAN, now=now
        ),
        "order_place": lambda: orders.order_place(
            account_id=account.pk, kind="purchase", amount="1.00", currency="USD", reference=f"o-{PAN}", now=now
        ),
        "credit_request_submit": lambda: credit_services.credit_request_submit(
            account_id=account.pk, requested_limit="10.00", currency="USD", justification=f"pay with {PAN}",
            source="console", now=now,
        ),
        "claim_submit": lambda: claim_services.claim_submit(
            account_id=account.pk, amount=Decimal("5.00"), currency="USD", payer_name=PAN, source="console", now=now
        ),
    }


@pytest.mark.parametrize("name", [
    "account_create", "account_create_email", "card_link", "paypal_link", "wallet_link", "usage_record",
    "order_place", "credit_request_submit", "claim_submit",
])
def test_sec_1_services_refuse_a_card_number_before_writing_anything(now, name):
    call = service_calls(now)[name]
    before = table_counts()
    with pytest.raises(CardNumberInText) as raised:
        call()
    assert raised.value.rule == "SEC-1" and PAN not in str(raised.value)
    assert table_counts() == before


def test_sec_1_claim_review_and_reject_notes_refused(now):
    account = AccountFactory()
    claim = RemittanceClaim.objects.create(
        account=account, amount=Decimal("5.00"), currency="USD", source="console", status="submitted", submitted_at=now
    )
    staff = UserFactory(is_superuser=True)
    with pytest.raises(CardNumberInText):
        claim_services.claim_review(claim_id=claim.pk, actor=staff, note=f"paid by card {PAN}", now=now)
    with pytest.raises(CardNumberInText):
        claim_services.claim_reject(claim_id=claim.pk, actor=staff, reason=f"card {PAN}", now=now)
    claim.refresh_from_db()
    assert (claim.status, claim.note) == ("submitted", "")


def test_sec_1_credit_decision_notes_refused(now):
    with pytest.raises(CardNumberInText):
        credit_services.credit_request_reject(request_id=1, actor=UserFactory(), note=PAN, now=now)
    with pytest.raises(CardNumberInText):
        credit_services.credit_request_approve(request_id=1, actor=UserFactory(), note=PAN, now=now)


# --- admin forms -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (lambda data: ReviewForm(data=data), "note"),
        (lambda data: RejectForm(data=data), "reason"),
        (lambda data: DecisionForm(data=data, note_required=True), "note"),
    ],
)
def test_sec_1_admin_note_forms_refuse_a_card_number(form, field):
    bad = form({field: f"customer said {PAN}"})
    assert not bad.is_valid() and "card number" in str(bad.errors[field]).lower()
    assert PAN not in str(bad.errors) and PAN not in str(bad[field])  # nor shown back in the field
    assert form({field: "Checked the bank statement"}).is_valid()


def test_sec_1_account_admin_refuses_a_card_number_as_name(client):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    account = AccountFactory(name="Acme", email="ops@acme.example")
    url = f"/admin/payments/account/{account.pk}/change/"
    response = client.post(url, {"name": f"Acme {PAN}", "email": "ops@acme.example"})
    account.refresh_from_db()
    assert account.name == "Acme"
    assert response.status_code == 200 and b"card number" in response.content.lower()
    assert PAN.encode() not in response.content  # the refused value is not shown back either


def test_sec_1_i6_receiving_account_bank_name_and_currency(now):
    from remittances.services.accounts import InvalidBankDetails, bank_details_clean

    details = dict(number="DE89370400440532013000", bic="COBADEFFXXX")
    with pytest.raises(InvalidBankDetails) as refused:
        bank_details_clean(bank_name=f"Bank {PAN}", currency="USD", **details)
    assert "card number" in refused.value.detail and PAN not in refused.value.detail
    for currency in ("XAU", "ZZZ", "KWD"):
        with pytest.raises(InvalidBankDetails):
            bank_details_clean(bank_name="Shared Bank", currency=currency, **details)
    assert bank_details_clean(bank_name="Shared Bank", currency="eur", **details).currency == "EUR"
