"""Month end: monthly bills (PAY-3, CRED-3), the deduction that pays them (PAY-3, PAY-6), the
fan-out task and its idempotency (one run per window), and the query budget per chunk."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments.tasks import billing as billing_tasks, charging as charging_tasks
from payments.gateways.simulated import PROCESSOR
from payments.models import Bill, Charge, PaymentMethod, UsageRecord
from payments.services.billing import (
    AccountChunk,
    monthly_bill_chunks,
    monthly_bills_generate,
    monthly_bills_generate_chunk,
)
from payments.services.scheduled_charging import month_end_deduction_run
from tests.factories import AccountFactory, CardMethodFactory
from tests.helpers.charging import card_account, paypal_account, report_usage, run_enqueued_charges

pytestmark = pytest.mark.django_db
D = Decimal
PERIOD = "2026-10"


@pytest.fixture
def month_end(now):
    """The run's clock: the first day of the month after PERIOD."""
    return now.replace(month=11, day=1, hour=1)


def test_pay_3_one_monthly_bill_per_account_for_the_usage_under_the_threshold(now, month_end):
    first, _ = card_account()
    second, _ = card_account()
    report_usage(first, "10.00", reference="a-1", now=now, period=PERIOD)
    report_usage(first, "2.50", reference="a-2", now=now, period=PERIOD)
    report_usage(second, "7.00", reference="b-1", now=now, period=PERIOD)
    report_usage(first, "99.00", reference="a-3", now=now, period="2026-11")  # another month

    assert monthly_bills_generate(period=PERIOD, now=month_end) == 2

    bill = Bill.objects.get(account=first)
    assert (bill.kind, bill.reference, bill.status) == (Bill.Kind.MONTHLY, f"monthly:{first.pk}:{PERIOD}:USD", Bill.Status.OPEN)
    assert (bill.amount_before_tax, bill.tax, bill.total, bill.currency) == (D("12.50"), D("0.00"), D("12.50"), "USD")
    assert (bill.period_start, bill.period_end) == (date(2026, 10, 1), date(2026, 10, 31))
    assert bill.issued_at == month_end and bill.due_date == month_end.date()  # charged at issue
    assert set(UsageRecord.objects.filter(period=PERIOD, account=first).values_list("status", "bill_id")) == {
        (UsageRecord.Status.BILLED, bill.pk)
    }
    assert UsageRecord.objects.get(reference="a-3").status == UsageRecord.Status.UNBILLED
    assert Bill.objects.get(account=second).total == D("7.00")


def test_cred_3_monthly_bill_of_a_credit_account_is_due_in_30_days(now, month_end):
    account, _ = card_account(credit_approved=True, credit_limit=D("1000"))
    report_usage(account, "40.00", reference="c-1", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)
    assert Bill.objects.get().due_date == month_end.date() + timedelta(days=30)


def test_pay_3_usage_already_charged_at_the_threshold_is_not_billed_again(now, month_end, enqueued):
    from payments.services.scheduled_charging import threshold_charges_run

    account, _ = card_account()
    report_usage(account, "1000.00", reference="t-1", now=now, period=PERIOD)
    enqueued.commit(threshold_charges_run, now=now)
    report_usage(account, "3.00", reference="t-2", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)
    monthly = Bill.objects.get(kind=Bill.Kind.MONTHLY)
    assert monthly.total == D("3.00")
    assert UsageRecord.objects.get(reference="t-1").status == UsageRecord.Status.CHARGED


def test_pay_3_one_bill_per_currency(now, month_end):
    account, _ = card_account()
    report_usage(account, "5.00", reference="x-1", now=now, period=PERIOD)
    report_usage(account, "6.00", reference="x-2", now=now, period=PERIOD, currency="EUR")
    monthly_bills_generate(period=PERIOD, now=month_end)
    assert sorted(Bill.objects.values_list("currency", "total")) == [("EUR", D("6.00")), ("USD", D("5.00"))]


def test_pay_3_generation_twice_creates_nothing_the_second_time(now, month_end):
    account, _ = card_account()
    report_usage(account, "5.00", reference="x-1", now=now, period=PERIOD)
    assert monthly_bills_generate(period=PERIOD, now=month_end) == 1
    assert monthly_bills_generate(period=PERIOD, now=month_end + timedelta(minutes=5)) == 0
    assert Bill.objects.count() == 1


def test_pay_3_late_usage_goes_on_a_supplementary_bill(now, month_end):
    account, _ = card_account()
    report_usage(account, "5.00", reference="x-1", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)
    late = report_usage(account, "1.00", reference="x-2", now=month_end, period=PERIOD).record
    assert monthly_bills_generate(period=PERIOD, now=month_end + timedelta(hours=1)) == 1
    supplement = Bill.objects.get(reference=f"monthly:{account.pk}:{PERIOD}:USD:{late.pk}")
    assert supplement.total == D("1.00")
    late.refresh_from_db()
    assert late.bill_id == supplement.pk


def test_monthly_chunks_cover_every_account_once(now):
    accounts = [card_account()[0] for _ in range(7)]
    for account in accounts:
        report_usage(account, "1.00", reference=f"r-{account.pk}", now=now, period=PERIOD)
    chunks = monthly_bill_chunks(period=PERIOD, chunk_size=3)
    ids = [a.pk for a in accounts]
    assert chunks == [
        AccountChunk(ids[0], ids[3] - 1), AccountChunk(ids[3], ids[6] - 1), AccountChunk(ids[6], None),
    ]
    assert monthly_bill_chunks(period="2026-09", chunk_size=3) == []


def _chunk_queries(count: int, now, month_end) -> int:
    accounts = []
    for index in range(count):
        account = AccountFactory(credit_approved=index % 3 == 0, credit_limit=D("100"))
        accounts.append(account)
        for n in range(2):
            report_usage(account, "1.10", reference=f"q-{account.pk}-{n}", now=now, period=PERIOD)
    chunk = AccountChunk(accounts[0].pk, accounts[-1].pk)
    with CaptureQueriesContext(connection) as queries:
        bill_ids = monthly_bills_generate_chunk(period=PERIOD, now=month_end, chunk=chunk)
    assert len(bill_ids) == count
    assert Bill.objects.filter(pk__in=bill_ids, total=D("2.20")).count() == count
    assert not UsageRecord.objects.filter(account__in=accounts, bill__isnull=True).exists()
    return len(queries)


def test_pay_3_chunk_query_count_does_not_grow_with_the_number_of_accounts(now, month_end):
    small = _chunk_queries(10, now, month_end)
    large = _chunk_queries(100, now, month_end)
    assert small == large
    assert large <= 5  # savepoint, claim + insert, link, flag accounts, release


# --- the fan-out task ----------------------------------------------------------------------------------


def run_chunk_tasks(enqueued) -> int:
    """What the workers would do with the enqueued chunk messages."""
    created = 0
    for name, kwargs in list(enqueued):
        if name == "payments.generate_monthly_bills_chunk":
            created += billing_tasks.generate_monthly_bills_chunk(**kwargs)
    enqueued.clear()
    return created


def test_pay_3_generate_monthly_bills_fans_out_one_task_per_chunk(now, enqueued, settings):
    settings.BILLING_MONTHLY_CHUNK_SIZE = 4
    for index in range(10):
        account, _ = card_account()
        report_usage(account, "1.00", reference=f"f-{index}", now=now, period=PERIOD)
    assert billing_tasks.generate_monthly_bills(period=PERIOD) == 3
    assert [name for name, _ in enqueued] == ["payments.generate_monthly_bills_chunk"] * 3
    assert run_chunk_tasks(enqueued) == 10
    assert Bill.objects.filter(kind=Bill.Kind.MONTHLY).count() == 10


def test_pay_3_beat_firing_twice_in_one_window_runs_once(now, enqueued):
    account, _ = card_account()
    report_usage(account, "1.00", reference="w-1", now=now, period=PERIOD)
    # Both firings are enqueued before any worker runs them ...
    billing_tasks.generate_monthly_bills(period=PERIOD)
    billing_tasks.generate_monthly_bills(period=PERIOD)
    assert run_chunk_tasks(enqueued) == 1  # ... and the second chunk task finds nothing left.
    # A firing after the run enqueues nothing at all.
    assert billing_tasks.generate_monthly_bills(period=PERIOD) == 0
    assert Bill.objects.count() == 1


def test_previous_period_is_the_month_that_ended(now):
    assert billing_tasks.previous_period(now) == "2026-10"
    assert billing_tasks.previous_period(now.replace(month=1)) == "2025-12"


# --- month-end deduction (PAY-3, PAY-6, HOLD-3) ---------------------------------------------------------


def test_pay_3_month_end_deduction_charges_each_monthly_bill_once(now, month_end, enqueued):
    card, card_method = card_account()
    paypal, paypal_method = paypal_account()
    for account in (card, paypal):
        report_usage(account, "12.34", reference=f"d-{account.pk}", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)

    assert enqueued.commit(month_end_deduction_run, period=PERIOD, now=month_end) == 2
    assert enqueued.commit(month_end_deduction_run, period=PERIOD, now=month_end) == 0  # rerun: nothing
    charges = run_enqueued_charges(enqueued, month_end)
    assert [c.status for c in charges] == [Charge.Status.SUCCEEDED] * 2
    assert {c.kind for c in charges} == {Charge.Kind.MONTH_END}
    assert set(Bill.objects.values_list("status", flat=True)) == {Bill.Status.PAID}
    assert PROCESSOR.charge_count(card_method.gateway_token) == 1
    assert PROCESSOR.charge_count(paypal_method.agreement_id) == 1
    assert [c.amount for c in PROCESSOR.charges] == [D("12.34")] * 2  # PAY-4: no fee


def test_pay_6_month_end_deduction_skips_credit_accounts(now, month_end, enqueued):
    account, _ = card_account(credit_approved=True, credit_limit=D("1000"))
    report_usage(account, "12.00", reference="c-1", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)
    assert enqueued.commit(month_end_deduction_run, period=PERIOD, now=month_end) == 0
    assert not Charge.objects.exists() and Bill.objects.get().status == Bill.Status.OPEN


def test_hold_3_month_end_without_an_active_default_records_why_nothing_was_charged(now, month_end, enqueued):
    account = AccountFactory()
    CardMethodFactory(account=account, is_default=True, status=PaymentMethod.Status.EXPIRED)
    report_usage(account, "12.00", reference="e-1", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)
    assert enqueued.commit(month_end_deduction_run, period=PERIOD, now=month_end) == 1
    charge = Charge.objects.get()
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (Charge.Status.FAILED, "no_usable_method", "HOLD-3")
    assert enqueued == [] and PROCESSOR.charges == []


def test_pay_3_month_end_deduction_charges_what_is_still_owed(now, month_end, enqueued):
    account, _ = card_account()
    report_usage(account, "50.00", reference="p-1", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)
    Bill.objects.update(amount_paid=D("20.00"), status=Bill.Status.PARTIALLY_PAID)  # settled in part
    enqueued.commit(month_end_deduction_run, period=PERIOD, now=month_end)
    assert Charge.objects.get().amount == D("30.00")


def test_month_end_deduction_batches_cover_every_bill(now, month_end, enqueued):
    for index in range(7):
        account, _ = card_account()
        report_usage(account, "1.00", reference=f"b-{index}", now=now, period=PERIOD)
    monthly_bills_generate(period=PERIOD, now=month_end)
    assert enqueued.commit(month_end_deduction_run, period=PERIOD, now=month_end, batch_size=3) == 7
    assert len(enqueued) == 7


def test_month_end_deduction_task_and_chunk_task(now, enqueued):
    from django.utils import timezone

    period = billing_tasks.previous_period(timezone.now())
    account, _ = card_account()
    report_usage(account, "3.00", reference="k-1", now=timezone.now(), period=period)
    billing_tasks.generate_monthly_bills()
    assert run_chunk_tasks(enqueued) == 1
    assert charging_tasks.month_end_deduction() == 1
    assert charging_tasks.month_end_deduction() == 0
