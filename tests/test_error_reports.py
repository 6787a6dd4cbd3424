"""SEC-1: error pages and error reports never show a card number, a CVV, a secret or the raw body.

Django's technical 500 page (DEBUG on, ``make run``) and the report mailed to ADMINS (DEBUG
off) are rendered by the reporter and filter configured in settings; these tests render them
for real crashes, in both modes, and look for the card data in the output.
"""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest
from django.test import RequestFactory, override_settings
from django.views.debug import get_exception_reporter_class, technical_500_response
from rest_framework.test import APIClient

from payments.api.clients import api_client_token_issue
from tests.factories import AccountFactory

PAN = "378282246310005"  # Amex test number: a 4-digit CVV
PAN_SPACED = "3782 822463 10005"
CVV = "8614"
TOKEN_SECRET = "sk_live_h2_not_for_pages"
MARKER = "Zebra-Marker-Only-In-The-Body"

# The CVV as a value, not as part of a longer number or a hex address.
_CVV_VALUE = re.compile(rf"(?<![0-9a-fA-Fx]){CVV}(?![0-9a-fA-F])")


def card_body() -> dict:
    return {
        "number": PAN,
        "exp_month": 12,
        "exp_year": 2031,
        "cvv": CVV,
        "cardholder_name": "Ada Lovelace",
        "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
    }


def assert_no_card_data(text: str) -> None:
    assert PAN not in text
    assert PAN_SPACED not in text
    assert not _CVV_VALUE.search(text), _CVV_VALUE.search(text)
    assert TOKEN_SECRET not in text


def crash_holding_card_data(request):
    """A crash whose frame holds the parsed card, the raw body and a secret, like a view's would."""
    raw = request.body
    text = raw.decode()
    card = {key: json.loads(text)[key] for key in ("number", "cvv")}  # noqa: F841 - locals are reported
    api_secret = TOKEN_SECRET  # noqa: F841
    raise RuntimeError(f"gateway refused card {PAN_SPACED}")


def render_crash(request, *, html: bool) -> str:
    try:
        crash_holding_card_data(request)
    except RuntimeError:
        exc_info = sys.exc_info()
    if html:
        return technical_500_response(request, *exc_info).content.decode()
    reporter = get_exception_reporter_class(request)(request, *exc_info, is_email=True)
    return reporter.get_traceback_text()


def card_request():
    body = dict(card_body(), cardholder_name=MARKER)
    return RequestFactory().post(
        f"/admin/payments/?q={PAN}", json.dumps(body), content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {TOKEN_SECRET}",
    )


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("html", [True, False])
def test_sec_1_technical_500_and_report_hide_card_number_cvv_secrets_and_raw_body(debug, html):
    with override_settings(DEBUG=debug):
        output = render_crash(card_request(), html=html)
    assert "crash_holding_card_data" in output  # the report is there, with its frames
    assert_no_card_data(output)
    assert MARKER not in output  # only the raw body held it: the body is never echoed
    assert "RuntimeError" in output and "[REDACTED PAN]" in output


@pytest.mark.parametrize("debug", [True, False])
def test_sec_1_technical_500_hides_every_posted_form_value(debug):
    request = RequestFactory().post("/admin/payments/", {"number": PAN, "cvv": CVV, "note": MARKER})
    request.POST  # noqa: B018 - parsed, as a form view would
    try:
        raise RuntimeError("form view crashed")
    except RuntimeError:
        with override_settings(DEBUG=debug):
            html = technical_500_response(request, *sys.exc_info()).content.decode()
    assert_no_card_data(html)
    assert MARKER not in html
    assert "note" in html  # the field names stay, for whoever reads the report


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records: list[tuple[object, tuple | None]] = []

    def emit(self, record):
        # Taken now: the console handler's filters rewrite the shared record after this handler.
        self.records.append((getattr(record, "request", None), record.exc_info))


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
def test_sec_1_crashing_card_request_answers_json_500_and_its_report_shows_no_card_data(monkeypatch, debug):
    """The issue's case: a card request that crashes, with DEBUG on and off."""
    from payments import services

    def crash(*, account_id, card, now):
        raise RuntimeError(f"adapter crashed on {card.number}")

    monkeypatch.setattr(services, "card_link", crash)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='report-test').key}")
    account = AccountFactory()
    records = _Records()
    request_logger = logging.getLogger("django.request")
    request_logger.addHandler(records)
    try:
        with override_settings(DEBUG=debug):
            response = client.post(f"/api/v1/accounts/{account.pk}/cards/", card_body(), format="json")
    finally:
        request_logger.removeHandler(records)

    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert_no_card_data(response.content.decode())
    assert b"Traceback" not in response.content

    # The report of the logged error, built like Django's AdminEmailHandler builds it.
    ((request, exc_info),) = [(request, exc_info) for request, exc_info in records.records if exc_info]
    reporter_class = get_exception_reporter_class(request)
    for is_html in (False, True):
        reporter = reporter_class(request, *exc_info, is_email=True)
        report = reporter.get_traceback_html() if is_html else reporter.get_traceback_text()
        assert "adapter crashed on" in report
        assert_no_card_data(report)
