"""I6 bounds at the edge and in the services, the PAY-2 usage window, the CLM-1 value-date window,
LINK-6 strict booleans, and answers that match the schema (an account without e-mail)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from billing_backoffice import money
from billing_backoffice.errors import BillingError
from payments.api.clients import api_client_token_issue
from payments.models import Bill, LinkAttempt, PaymentMethod, UsageRecord
from payments.services import orders, scheduled_charging, usage
from remittances.models import RemittanceClaim
from tests.concurrency import LockRendezvous, run_at_once
from tests.factories import AccountFactory, PayPalMethodFactory
from tests.helpers.charging import card_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='console-bounds').key}")
    return client


def this_month() -> str:
    return timezone.now().strftime("%Y-%m")


def post_usage(api, account_id, **overrides):
    body = {"amount": "12.50", "currency": "USD", "period": this_month(), "reference": "u-1", **overrides}
    return api.post(f"/api/v1/accounts/{account_id}/usage/", body, format="json")


def seed_unbilled(account, total: Decimal, *, currency="USD", period: str, now) -> None:
    """Unbilled usage adding up to ``total``, in rows no larger than one amount may be."""
    rows, left, n = [], total, 0
    while left > 0:
        part = min(left, money.MAX_AMOUNT)
        rows.append(UsageRecord(account=account, amount=part, currency=currency, period=period,
                                reference=f"seed-{account.pk}-{n}", reported_at=now))
        left, n = left - part, n + 1
    UsageRecord.objects.bulk_create(rows)


# --- I6: the poison record -------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["999999999999.99", "10000000000", "10000000000.00", "0", "0.00", "-1.00"])
def test_i6_pay_2_poison_usage_amount_refused_400_and_nothing_stored(api, amount):
    account, _ = card_account()
    response = post_usage(api, account.pk, amount=amount)
    assert response.status_code == 400 and "amount" in response.json()["fields"]
    assert not UsageRecord.objects.exists()


def test_i6_largest_single_amount_is_accepted(api):
    account, _ = card_account()
    assert post_usage(api, account.pk, amount=str(money.MAX_AMOUNT)).status_code == 201


def test_i6_pay_2_unbilled_usage_per_account_never_exceeds_what_one_bill_holds(now):
    """Two posts of the largest amount used to overflow the threshold bill forever; now the sum of
    an account's unbilled usage stops at the column's maximum, and the bill made of it fits."""
    account, _ = card_account()
    period = now.strftime("%Y-%m")
    seed_unbilled(account, money.COLUMN_MAX - Decimal("1.00"), period=period, now=now)
    usage.usage_record(account_id=account.pk, amount="1.00", currency="USD", period=period, reference="last", now=now)
    with pytest.raises(money.AmountTooLarge) as refused:
        usage.usage_record(account_id=account.pk, amount="0.01", currency="USD", period=period, reference="over", now=now)
    assert refused.value.rule == "I6" and refused.value.http_status == 422
    assert not UsageRecord.objects.filter(reference="over").exists()
    # Another currency is another bill: its own bound.
    usage.usage_record(account_id=account.pk, amount="5.00", currency="EUR", period=period, reference="eur", now=now)
    charge = scheduled_charging.usage_threshold_charge(account_id=account.pk, currency="USD", now=now)
    assert charge is not None and charge.bill.total == money.COLUMN_MAX


def test_i6_pay_2_usage_over_the_bound_answers_422_naming_i6(api):
    account, _ = card_account()
    seed_unbilled(account, money.COLUMN_MAX, period=this_month(), now=timezone.now())
    response = post_usage(api, account.pk, amount="0.01")
    assert response.status_code == 422 and response.json()["rule"] == "I6"


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_i6_pay_2_two_reports_at_once_cannot_both_pass_the_unbilled_bound():
    """Both reports read the unbilled sum before either inserts, every run (LockRendezvous right
    after the SUM); only the account lock makes the second wait and see the first."""
    now = timezone.now()
    account, _ = card_account()
    period = now.strftime("%Y-%m")
    seed_unbilled(account, money.COLUMN_MAX - Decimal("10.00"), period=period, now=now)
    rendezvous = LockRendezvous(2)
    usage_table = UsageRecord._meta.db_table

    def report(reference):
        with connection.execute_wrapper(rendezvous.after_query(lambda sql: "SUM(" in sql and usage_table in sql)):
            return usage.usage_record(
                account_id=account.pk, amount="6.00", currency="USD", period=period, reference=reference, now=now
            )

    results = run_at_once([lambda: report("a"), lambda: report("b")])
    refused = [r for r in results if isinstance(r, money.AmountTooLarge)]
    assert len(refused) == 1, results
    assert UsageRecord.objects.filter(reference__in=["a", "b"]).count() == 1


# --- I6: currencies and their minor units ------------------------------------------------------------


def test_i6_jpy_order_of_one_cent_is_refused_422_and_nothing_charged(api):
    account, _ = card_account()
    body = {"kind": "purchase", "amount": "0.01", "currency": "JPY", "reference": "jpy-cent"}
    response = api.post(f"/api/v1/accounts/{account.pk}/orders/", body, format="json")
    assert response.status_code == 422 and response.json()["rule"] == "I6"
    assert not Bill.objects.exists()
    whole = api.post(f"/api/v1/accounts/{account.pk}/orders/", {**body, "amount": "150", "reference": "jpy-150"}, format="json")
    assert whole.status_code == 201, whole.content
    assert Bill.objects.get().total == Decimal("150.00")


@pytest.mark.parametrize("currency", ["ZZZ", "XAU", "XXX", "KWD", "US", "usdx", 840])
def test_i6_clm_1_claim_currency_must_be_accepted_iso_4217_money(api, currency):
    account = AccountFactory()
    body = {"amount": "10.00", "currency": currency, "bank_reference": "E2E-9"}
    response = api.post(f"/api/v1/accounts/{account.pk}/claims/", body, format="json")
    assert response.status_code == 400 and "currency" in response.json()["fields"]
    assert not RemittanceClaim.objects.exists()


def test_i6_claim_in_jpy_with_cents_is_refused_422(api):
    account = AccountFactory()
    body = {"amount": "1200.50", "currency": "JPY", "bank_reference": "E2E-10"}
    response = api.post(f"/api/v1/accounts/{account.pk}/claims/", body, format="json")
    assert response.status_code == 422 and response.json()["rule"] == "I6"
    assert not RemittanceClaim.objects.exists()


# --- date windows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("months", [-25, 2, -12 * 2026])
def test_pay_2_usage_period_outside_its_window_is_refused_422(api, months):
    today = timezone.now()
    index = today.year * 12 + today.month - 1 + months
    period = f"{index // 12:04d}-{index % 12 + 1:02d}"
    account, _ = card_account()
    response = post_usage(api, account.pk, period=period)
    assert response.status_code == 422 and response.json()["rule"] == "PAY-2", (period, response.content)
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize("period", ["1900-01", "9999-12"])
def test_pay_2_usage_periods_1900_and_9999_are_refused(now, period):
    account, _ = card_account()
    with pytest.raises(BillingError) as refused:
        usage.usage_record(account_id=account.pk, amount="1.00", currency="USD", period=period, reference="p", now=now)
    assert refused.value.rule == "PAY-2"


@pytest.mark.parametrize("months", [-24, 0, 1])
def test_pay_2_usage_period_inside_its_window_is_accepted(now, months):
    index = now.year * 12 + now.month - 1 + months
    period = f"{index // 12:04d}-{index % 12 + 1:02d}"
    account, _ = card_account()
    result = usage.usage_record(account_id=account.pk, amount="1.00", currency="USD", period=period, reference="w", now=now)
    assert result.created


@pytest.mark.parametrize("value_date", ["0001-01-01", "1999-12-31", "+30 days"])
def test_clm_1_implausible_value_date_is_refused_422(api, value_date):
    if value_date == "+30 days":
        value_date = (timezone.now().date() + timedelta(days=30)).isoformat()
    account = AccountFactory()
    body = {"amount": "10.00", "currency": "USD", "value_date": value_date, "bank_reference": "E2E-11"}
    response = api.post(f"/api/v1/accounts/{account.pk}/claims/", body, format="json")
    assert response.status_code == 422 and response.json()["rule"] == "CLM-1", response.content
    assert not RemittanceClaim.objects.exists()


def test_clm_1_value_date_of_today_is_accepted(api):
    account = AccountFactory()
    body = {"amount": "10.00", "currency": "USD", "value_date": timezone.now().date().isoformat(), "bank_reference": "E2E-12"}
    assert api.post(f"/api/v1/accounts/{account.pk}/claims/", body, format="json").status_code == 201


# --- strict booleans -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "true", "True", 1, "1", "on", None])
def test_link_6_has_funding_source_must_be_a_json_boolean(api, value):
    account = AccountFactory(country="US", region="US")
    method = PayPalMethodFactory(account=account, status=PaymentMethod.Status.PENDING,
                                 agreement_state=PaymentMethod.AgreementState.NOT_APPROVED)
    attempts = LinkAttempt.objects.count()
    body = {"outcome": "approved", "has_funding_source": value}
    response = api.post(f"/api/v1/paypal/{method.pk}/agreement/", body, format="json")
    assert response.status_code == 400 and "has_funding_source" in response.json()["fields"]
    method.refresh_from_db()
    assert (method.status, method.agreement_state) == ("pending", "not_approved")
    assert LinkAttempt.objects.count() == attempts


# --- answers that match the schema ---------------------------------------------------------------------------


def test_account_without_email_answers_null_not_a_blank_email(api):
    created = api.post("/api/v1/accounts/", {"name": "No Mail", "kind": "individual", "country": "US"}, format="json")
    assert created.status_code == 201 and created.json()["email"] is None
    assert api.get(f"/api/v1/accounts/{created.json()['id']}/").json()["email"] is None
    with_mail = api.post(
        "/api/v1/accounts/", {"name": "Mail", "kind": "individual", "country": "US", "email": "a@b.example"}, format="json"
    )
    assert with_mail.json()["email"] == "a@b.example"
