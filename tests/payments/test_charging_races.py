"""Charging races on PostgreSQL with real threads (I2, I5, PAY-1..3, CRED-3, HOLD-4).

Each thread uses its own connection and closes it. The slow gateway takes a little time per
charge, like a network call, so that concurrent executions really overlap at the processor.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from payments.tasks import charging as charging_tasks
from payments.api.clients import api_client_token_issue
from payments.gateways.simulated import PROCESSOR, SimulatedCardGateway
from payments.models import Bill, Charge, LedgerEntry, UsageRecord, VerificationHold
from payments.services.billing import monthly_bills_generate
from payments.services.charge_execution import charge_execute
from payments.services.orders import CreditLimitExceeded, order_place
from payments.services.scheduled_charging import month_end_deduction_run, threshold_charges_run
from payments.services.usage import paypal_preauth_place, usage_record
from payments.services.ledger import account_balance
from tests.concurrency import errors_of, run_at_once
from tests.payments.invariants import assert_billing_invariants
from tests.helpers.charging import card_account, paypal_account

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]
D = Decimal


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[dict]:
    """Real commits run their on-commit callbacks here: record the execute_charge messages
    instead of sending them to the broker (the tests execute charges themselves)."""
    calls: list[dict] = []
    lock = threading.Lock()

    def record(**kwargs):
        with lock:
            calls.append(kwargs)

    for task in (charging_tasks.execute_charge, charging_tasks.place_paypal_preauth):
        monkeypatch.setattr(task, "delay", record)
    return calls


class SlowCardGateway(SimulatedCardGateway):
    """Counts every charge request (replays too) and takes a little time doing it."""

    lock = threading.Lock()
    requests: Counter[str] = Counter()

    def charge(self, **kwargs):
        with self.lock:
            self.requests[kwargs["idempotency_key"]] += 1
        time.sleep(0.01)
        return super().charge(**kwargs)


@pytest.fixture
def slow_gateway(settings):
    settings.CARD_GATEWAY = "tests.payments.test_charging_races.SlowCardGateway"
    SlowCardGateway.requests.clear()
    return SlowCardGateway.requests


def run_in_threads(count: int, target) -> tuple[list, list]:
    """``target(i)`` in ``count`` threads at once: (results, errors); a failed call's result is None."""
    outcomes = run_at_once([lambda i=i: target(i) for i in range(count)])
    return [None if isinstance(o, BaseException) else o for o in outcomes], errors_of(outcomes)


def test_pay_1_same_order_posted_8_times_at_once_is_one_bill_one_charge(now, slow_gateway):
    account, method = card_account()
    token = api_client_token_issue(name="console-race").key
    body = {"kind": "purchase", "amount": "75.00", "currency": "USD", "reference": "race-order"}

    def post(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = client.post(f"/api/v1/accounts/{account.pk}/orders/", body, format="json")
        return response.status_code, response.json()

    results, errors = run_in_threads(8, post)
    assert not errors, errors
    codes = sorted(code for code, _ in results)
    assert codes == [200] * 7 + [201]
    assert len({answer["bill"]["id"] for _, answer in results}) == 1
    assert Bill.objects.count() == 1 and Charge.objects.count() == 1
    assert PROCESSOR.charge_count(method.gateway_token) == 1
    bill = Bill.objects.get()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == D("75.00")
    assert LedgerEntry.objects.filter(account=account).count() == 2
    assert_billing_invariants()


def test_i2_same_charge_executed_by_8_workers_at_once_charges_and_posts_once(now, slow_gateway, enqueued):
    account, method = card_account()
    usage_record(account_id=account.pk, amount="1000.00", currency="USD", period="2026-11", reference="u", now=now)
    threshold_charges_run(now=now)
    charge = Charge.objects.get()
    assert enqueued == [{"charge_id": charge.pk}]  # sent once the charge was committed

    results, errors = run_in_threads(8, lambda _: charge_execute(charge_id=charge.pk, now=now).status)
    assert not errors, errors
    assert set(results) == {Charge.Status.SUCCEEDED}
    assert PROCESSOR.charge_count(method.gateway_token) == 1
    assert sum(slow_gateway.values()) >= 1  # several may ask; the saved key makes it one charge
    assert sorted(LedgerEntry.objects.values_list("kind", flat=True)) == ["bill_payment", "charge"]
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")
    assert Bill.objects.get().status == Bill.Status.PAID
    assert_billing_invariants()


def test_cred_3_concurrent_orders_never_take_a_credit_account_past_its_limit(now):
    account, _ = card_account(credit_approved=True, credit_limit=D("500.00"))

    def place(index):
        try:
            return order_place(
                account_id=account.pk, kind="purchase", amount="200.00", currency="USD",
                reference=f"credit-{index}", now=now,
            ).bill.pk
        except CreditLimitExceeded:
            return None

    results, errors = run_in_threads(8, place)
    assert not errors, errors
    assert sum(1 for r in results if r) == 2
    assert Bill.objects.aggregate(owed=Sum("total"))["owed"] == D("400.00")
    assert_billing_invariants()


def test_i2_same_usage_posted_8_times_at_once_is_recorded_once(now):
    account, _ = card_account()

    def report(_):
        return usage_record(
            account_id=account.pk, amount="3.00", currency="USD", period="2026-11", reference="dup", now=now
        ).created

    results, errors = run_in_threads(8, report)
    assert not errors, errors
    assert sorted(results) == [False] * 7 + [True]
    assert UsageRecord.objects.count() == 1
    assert_billing_invariants()


def test_hold_4_preauthorization_placed_by_8_workers_at_once_is_one_hold(now):
    account, method = paypal_account()
    results, errors = run_in_threads(8, lambda _: paypal_preauth_place(account_id=account.pk, now=now).pk)
    assert not errors, errors
    assert len(set(results)) == 1
    assert VerificationHold.objects.count() == 1 and Charge.objects.count() == 1
    assert VerificationHold.objects.get().payment_method_id == method.pk
    assert_billing_invariants()


def test_pay_2_pay_3_threshold_charges_racing_the_monthly_bills_take_each_usage_once(now, slow_gateway):
    accounts = [card_account()[0] for _ in range(12)]
    for account in accounts:
        for n in range(5):
            usage_record(
                account_id=account.pk, amount="250.00", currency="USD", period="2026-10",
                reference=f"r-{account.pk}-{n}", now=now,
            )
    month_end = now.replace(month=11, day=1)

    def work(index):
        if index % 2:
            return threshold_charges_run(now=now)
        return monthly_bills_generate(period="2026-10", now=month_end, chunk_size=3)

    _, errors = run_in_threads(4, work)
    assert not errors, errors
    records = UsageRecord.objects.all()
    assert not records.filter(status=UsageRecord.Status.UNBILLED).exists()
    assert not records.filter(bill__isnull=True).exists()
    assert not records.filter(status=UsageRecord.Status.CHARGED, charge__isnull=True).exists()
    # Every bill is exactly the sum of the usage pointing at it; nothing was counted twice.
    for bill in Bill.objects.all():
        assert bill.total == bill.usage_records.aggregate(s=Sum("amount"))["s"]
    assert Bill.objects.aggregate(s=Sum("total"))["s"] == D("250.00") * 5 * 12
    assert_billing_invariants()


def test_pay_3_concurrent_month_end_runs_bill_and_charge_each_account_once(now, enqueued):
    accounts = [card_account()[0] for _ in range(20)]
    for account in accounts:
        usage_record(
            account_id=account.pk, amount="9.99", currency="USD", period="2026-10",
            reference=f"m-{account.pk}", now=now,
        )
    month_end = now.replace(month=11, day=1)
    _, errors = run_in_threads(4, lambda _: monthly_bills_generate(period="2026-10", now=month_end, chunk_size=7))
    assert not errors, errors
    assert Bill.objects.count() == 20
    _, errors = run_in_threads(4, lambda _: month_end_deduction_run(period="2026-10", now=month_end, batch_size=6))
    assert not errors, errors
    assert Charge.objects.count() == 20
    assert sorted(call["charge_id"] for call in enqueued) == sorted(Charge.objects.values_list("pk", flat=True))
    assert sorted(Charge.objects.values_list("bill_id", flat=True)) == sorted(Bill.objects.values_list("pk", flat=True))
    assert_billing_invariants()
