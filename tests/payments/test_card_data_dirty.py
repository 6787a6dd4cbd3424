"""SEC-1 with dirty input: card numbers typed where they do not belong, then a scan of everything.

The clean scan (test_card_data.py) links cards the way a careful console would. Here the console
sends what customers really type: a PAN as the cardholder name, the street, a PayPal payer id, a
claim's bank reference, a credit justification, a usage reference, with or without spaces and
dashes. Each must be refused (400 naming the field) and change nothing. Then cards are linked
through every outcome (declined, no funds, prepaid, issued in China, 3-D Secure passed and
failed, gateway down, already linked, bad Luhn, unsupported network) and PayPal through
approval and decline; finally every text column of every table, the pghistory audit tables
included, every API answer and every log record is scanned for a card number.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone

import pytest
from django.db import connection

from billing_backoffice.logging import card_numbers_in
from tests.helpers.api import RecordingClient
from payments.api.clients import api_client_token_issue

pytestmark = pytest.mark.django_db

# Typed into free text: never linked, so any trace of them is a leak.
TYPED = ["4111111111111111", "4111 1111 1111 1111", "5105-1051-0510-5100", "371449635398431"]
# Linked (or tried) as card numbers, one per outcome of the simulated gateway.
VISA, MASTERCARD, AMEX = "4242424242424242", "5555555555554444", "378282246310005"
DECLINED, NO_FUNDS, PREPAID, ISSUED_IN_CN = "4000000000000002", "4000000000009953", "4000000000002206", "4000000000005506"
RISK_3DS, GATEWAY_DOWN, NOT_ONLINE = "4000000000003204", "4000000000001190", "4000000000000127"
UNIONPAY = "6200000000000005"
LINKED = [VISA, MASTERCARD, AMEX, DECLINED, NO_FUNDS, PREPAID, ISSUED_IN_CN, RISK_3DS, GATEWAY_DOWN, NOT_ONLINE, UNIONPAY]
REFUSAL = "looks like a card number"


def digits(pan: str) -> str:
    return re.sub(r"\D", "", pan)


def embedded(pan: str) -> str:
    return f"see {pan} thanks"


@pytest.fixture
def api() -> RecordingClient:
    client = RecordingClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='console-dirty').key}")
    return client


def exp_year() -> int:
    # The API reads the real clock; three years ahead is valid whatever today is.
    return datetime.now(timezone.utc).year + 3


def card_body(number: str = VISA, **overrides) -> dict:
    body = {
        "number": number, "exp_month": 12, "exp_year": exp_year(),
        "cvv": "1234" if number.startswith(("34", "37")) else "123",
        "cardholder_name": "Ada Lovelace", "company_name": "",
        "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
    }
    body.update(overrides)
    return body


def new_account(api, country: str = "US", name: str = "Dirty", kind: str = "enterprise") -> int:
    response = api.post("/api/v1/accounts/", {"name": name, "kind": kind, "country": country}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def row_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in user_tables(cursor):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


def user_tables(cursor) -> list[str]:
    """Every table outside PostgreSQL's own schemas: the app tables and the pghistory event tables."""
    cursor.execute(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
    )
    return [table for (table,) in cursor.fetchall()]


def database_as_text() -> tuple[str, list[str]]:
    chunks = []
    with connection.cursor() as cursor:
        tables = user_tables(cursor)
        for table in tables:
            cursor.execute(f"SELECT t::text FROM {table} t")
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks), tables


def free_text_requests(account_id: int) -> list[tuple[str, str, dict]]:
    """(what, url, body) for every free-text field of the console API, holding ``pan``."""

    def requests_for(pan: str) -> list[tuple[str, str, dict]]:
        address = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
        return [
            ("account name", "/api/v1/accounts/", {"name": embedded(pan), "kind": "individual", "country": "US"}),
            ("account e-mail", "/api/v1/accounts/",
             {"name": "Ok", "kind": "individual", "country": "US", "email": f"{digits(pan)}@example.com"}),
            ("cardholder name", f"/api/v1/accounts/{account_id}/cards/", card_body(MASTERCARD, cardholder_name=pan)),
            ("company name", f"/api/v1/accounts/{account_id}/cards/", card_body(MASTERCARD, company_name=embedded(pan))),
            ("billing street", f"/api/v1/accounts/{account_id}/cards/",
             card_body(MASTERCARD, billing_address={**address, "line1": embedded(pan)})),
            ("billing city", f"/api/v1/accounts/{account_id}/cards/",
             card_body(MASTERCARD, billing_address={**address, "city": pan})),
            ("billing postal code", f"/api/v1/accounts/{account_id}/cards/",
             card_body(MASTERCARD, billing_address={**address, "postal_code": digits(pan)})),
            ("PayPal e-mail", f"/api/v1/accounts/{account_id}/paypal/",
             {"email": f"{digits(pan)}@example.com", "payer_id": "PAYERDIRTY1", "country": "US"}),
            ("PayPal payer id", f"/api/v1/accounts/{account_id}/paypal/",
             {"email": "buyer@example.com", "payer_id": digits(pan), "country": "US"}),
            ("wallet name", f"/api/v1/accounts/{account_id}/wallets/", {"wallet": "w" + digits(pan)}),
            ("usage reference", f"/api/v1/accounts/{account_id}/usage/",
             {"amount": "10.00", "currency": "USD", "period": datetime.now(timezone.utc).strftime("%Y-%m"),
              "reference": digits(pan)}),
            ("order reference", f"/api/v1/accounts/{account_id}/orders/",
             {"kind": "purchase", "amount": "10.00", "currency": "USD", "reference": "ord-" + digits(pan)}),
            ("credit justification", f"/api/v1/accounts/{account_id}/credit-applications/",
             {"requested_limit": "5000.00", "currency": "USD", "justification": embedded(pan)}),
            ("claim payer name", f"/api/v1/accounts/{account_id}/claims/",
             {"amount": "12.00", "currency": "USD", "payer_name": pan, "bank_reference": "INV-1"}),
            ("claim bank reference", f"/api/v1/accounts/{account_id}/claims/",
             {"amount": "12.00", "currency": "USD", "payer_name": "Acme", "bank_reference": embedded(pan)}),
        ]

    return [request for pan in TYPED for request in requests_for(pan)]


def link_every_outcome(api, account_id: int, eu_account_id: int) -> None:
    """Cards and PayPal through every outcome; what each answers is checked, not only stored."""

    def post_card(account, number, **overrides):
        return api.post(f"/api/v1/accounts/{account}/cards/", card_body(number, **overrides), format="json")

    assert post_card(account_id, VISA).status_code == 201
    assert post_card(account_id, AMEX).status_code == 201
    for number in (DECLINED, NO_FUNDS, PREPAID, ISSUED_IN_CN, NOT_ONLINE, UNIONPAY):
        assert post_card(account_id, number).status_code in (201, 402, 409, 422), number
    assert post_card(account_id, GATEWAY_DOWN).status_code == 503
    assert post_card(account_id, VISA[:-1] + "3").status_code == 422  # fails Luhn
    assert post_card(account_id, MASTERCARD, exp_year=2020).status_code in (400, 422)  # long expired
    assert post_card(account_id, MASTERCARD, cvv="12345").status_code == 400
    assert post_card(eu_account_id, VISA).status_code == 409  # LINK-1: linked to the first account
    # 3-D Secure: the risk check's challenge passed, the EU's mandatory one passed and one failed.
    for account, number, outcome in ((account_id, RISK_3DS, "success"), (eu_account_id, MASTERCARD, "success"),
                                     (eu_account_id, "2223003122003222", "failure")):
        response = post_card(account, number)
        assert response.status_code == 201, response.content
        challenge = response.json()["three_ds"]
        assert challenge and challenge["required"], response.content
        api.post(f"/api/v1/three-ds/{challenge['id']}/complete/", {"outcome": outcome}, format="json")
    # PayPal: approved with funding, and a payer the sandbox declines.
    pending = api.post(f"/api/v1/accounts/{account_id}/paypal/",
                       {"email": "buyer@example.com", "payer_id": "PAYERDIRTY1", "country": "US"}, format="json")
    assert pending.status_code == 201, pending.content
    api.post(f"/api/v1/paypal/{pending.json()['id']}/agreement/", {"outcome": "approved", "has_funding_source": True},
             format="json")
    api.post(f"/api/v1/accounts/{account_id}/paypal/",
             {"email": "declined@example.com", "payer_id": "DECLINEPAYER", "country": "US"}, format="json")


def test_sec_1_card_numbers_in_every_free_text_field_refused_and_nothing_changes(api):
    account_id = new_account(api)
    before = row_counts()
    leaks = []
    for what, url, body in free_text_requests(account_id):
        response = api.post(url, body, format="json")
        fields = json.dumps(response.json().get("fields", {})) if response.status_code == 422 else ""
        if response.status_code != 422 or response.json().get("rule") != "SEC-1" or REFUSAL not in fields:
            leaks.append(f"{what} at {url}: {response.status_code} {response.content[:200]!r}")
    assert leaks == []
    assert row_counts() == before
    answers = b"\n".join(api.bodies).decode()
    assert not [pan for pan in TYPED if pan in answers or digits(pan) in answers]


def test_sec_1_no_card_number_anywhere_after_dirty_input_and_every_link_outcome(api, caplog):
    caplog.set_level(logging.DEBUG)
    account_id = new_account(api)
    eu_account_id = new_account(api, country="FR", kind="individual", name="Dirty EU")
    for _what, url, body in free_text_requests(account_id):
        api.post(url, body, format="json")
    link_every_outcome(api, account_id, eu_account_id)

    dump, tables = database_as_text()
    assert any(table.endswith("event") or "event" in table for table in tables)  # pghistory tables scanned
    assert "4242" in dump and "4444" in dump  # last four are kept: the scan sees the method rows
    assert card_numbers_in(dump, grouped=False) == []
    assert not [pan for pan in LINKED + TYPED if pan in dump]
    assert not re.search(r"cvv|cvc|security_code|card_number|\bpan\b", dump, re.I)

    answers = b"\n".join(api.bodies).decode()
    assert card_numbers_in(answers) == []
    assert not [pan for pan in LINKED + TYPED if pan in answers]

    logged = "\n".join(
        record.getMessage() + (record.exc_text or "") + repr(getattr(record, "args", ""))
        for record in caplog.records
    )
    assert caplog.records  # requests were logged, so the scan reads something
    assert card_numbers_in(logged) == []
    assert not [pan for pan in LINKED + TYPED if pan in logged]
