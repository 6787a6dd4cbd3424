"""Console API: ``POST /api/v1/accounts/{id}/credit-applications/`` (CRED-1, I6).

Through ``APIClient`` with the ``Authorization: Token`` header the console sends; the answers
come from the real service. Error bodies are ``{"code", "rule", "detail"}``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from payments.models import Account
from remittances.models import CreditLimitRequest
from tests.factories import AccountFactory, UserFactory
from tests.helpers.credit import credit_of, submit

pytestmark = pytest.mark.django_db

Status = CreditLimitRequest.Status


@pytest.fixture
def api() -> APIClient:
    console = get_user_model().objects.create_user(username="api-console-test")
    console.set_unusable_password()
    console.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=console).key}")
    return client


def url(account_id: int) -> str:
    return f"/api/v1/accounts/{account_id}/credit-applications/"


def body(**overrides) -> dict:
    return {"requested_limit": "5000.00", "currency": "USD", "justification": "Monthly invoicing", **overrides}


def apply(api, account_id: int, **overrides):
    return api.post(url(account_id), body(**overrides), format="json")


def assert_error(response, status: int, rule: str | None, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    data = response.json()
    assert data["rule"] == rule and data["detail"]
    if code:
        assert data["code"] == code
    return data


def test_cred_1_console_application_is_filed_not_applied(api, now):
    account = AccountFactory(kind=Account.Kind.ENTERPRISE)
    response = apply(api, account.pk, currency="eur", requested_limit="1234.5")
    assert response.status_code == 201, response.content
    application = CreditLimitRequest.objects.get()
    assert response.json() == {
        "id": application.pk, "status": "submitted", "requested_limit": "1234.50", "currency": "EUR",
    }
    assert (application.source, application.recorded_by, application.justification) == (
        CreditLimitRequest.Source.CONSOLE, None, "Monthly invoicing"
    )
    # CRED-1: nothing changes on the account until an account manager approves it.
    assert credit_of(account) == (False, Decimal("0.00"), "USD")


@pytest.mark.parametrize(
    "field, value",
    [
        ("requested_limit", 5000),  # I6: JSON numbers are refused, never rounded
        ("requested_limit", 12.5),
        ("requested_limit", "12.345"),
        ("requested_limit", "-1.00"),
        ("requested_limit", "1e3"),
        ("requested_limit", " 12.00"),
        ("requested_limit", "1000000000000.00"),
        ("requested_limit", None),
        ("requested_limit", True),
        ("currency", "US"),
        ("currency", "ZZZ"),
        ("currency", 840),
        ("justification", ""),
        ("justification", "x" * 2001),
    ],
)
def test_i6_malformed_application_answers_400_and_files_nothing(api, field, value):
    account = AccountFactory()
    data = assert_error(apply(api, account.pk, **{field: value}), 400, None, "invalid")
    assert list(data["fields"]) == [field]
    assert not CreditLimitRequest.objects.exists()


@pytest.mark.parametrize("missing", ["requested_limit", "currency", "justification"])
def test_missing_field_answers_400(api, missing):
    account = AccountFactory()
    data = body()
    del data[missing]
    response = api.post(url(account.pk), data, format="json")
    assert list(assert_error(response, 400, None)["fields"]) == [missing]


def test_unknown_account_answers_404(api):
    assert_error(apply(api, 999_999), 404, None)


def test_cred_1_inactive_account_answers_422(api, now):
    account = AccountFactory(status=Account.Status.DEACTIVATED, deactivated_at=now)
    assert_error(apply(api, account.pk), 422, "CRED-1", "credit_request_refused")
    assert not CreditLimitRequest.objects.exists()


def test_cred_1_revoking_without_credit_answers_422(api):
    assert_error(apply(api, AccountFactory().pk, requested_limit="0"), 422, "CRED-1")


def test_cred_1_second_open_application_answers_409(api, now):
    account = AccountFactory()
    recorder = UserFactory(username="am_rec", is_superuser=True)
    first = submit(account, now, recorded_by=recorder)
    data = assert_error(apply(api, account.pk), 409, "CRED-1", "credit_request_open")
    assert f"#{first.pk}" in data["detail"]
    assert CreditLimitRequest.objects.count() == 1


def test_token_is_required(api, client):
    account = AccountFactory()
    assert APIClient().post(url(account.pk), body(), format="json").status_code == 401
    # A staff session is not a console token.
    client.force_login(UserFactory(username="staffer", is_superuser=True))
    assert client.post(url(account.pk), body(), content_type="application/json").status_code == 401
    assert not CreditLimitRequest.objects.exists()


def test_schema_documents_the_credit_application_path():
    response = APIClient().get("/api/v1/schema/", {"format": "json"})
    operation = response.json()["paths"]["/api/v1/accounts/{account_id}/credit-applications/"]["post"]
    assert set(operation["responses"]) == {"201", "400", "401", "404", "409", "413", "415", "422"}
