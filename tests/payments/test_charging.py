"""Charging: orders (PAY-1), thresholds (PAY-2), no fee (PAY-4), failures (PAY-5), credit accounts
(PAY-6, CRED-3), PayPal pre-authorization (HOLD-4), only active methods (HOLD-3), idempotency (I2)
and the Celery tasks around them.

Charges run against the simulated processor; ``PROCESSOR.charges`` lists the charges it really
made (replays excluded), which is what a customer's statement would show.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from billing_backoffice.task_retries import TRANSIENT_ERRORS
from payments.tasks import billing as billing_tasks, charging as charging_tasks
from payments.gateways.simulated import PROCESSOR
from payments.models import Account, Bill, Charge, LedgerEntry, PaymentMethod, UsageRecord, VerificationHold
from payments.services import scheduled_charging
from payments.services.billing import InvalidCurrency, InvalidPeriod
from payments.services.charge_execution import charge_execute
from payments.services.orders import CreditLimitExceeded, OrderReferenceReused, OrderRefused, order_place
from payments.services.scheduled_charging import charges_retry_failed, threshold_charges_run
from payments.services.usage import UsageReferenceReused, paypal_preauth_place, usage_record
from payments.services.holds import holds_release_due
from payments.services.ledger import InvalidAmount, account_balance
from payments.services.removal import payment_method_remove
from payments.errors import RemovalRefused
from tests.factories import AccountFactory, CardMethodFactory, PayPalMethodFactory
from tests.helpers.charging import card_account, ledger, paypal_account, place, report_usage, run_enqueued_charges
from tests.payments.invariants import assert_billing_invariants

pytestmark = pytest.mark.django_db
D = Decimal


# --- orders (PAY-1, PAY-4) --------------------------------------------------------------------------


def test_pay_1_order_is_charged_to_the_default_method_at_once(now):
    account, method = card_account()
    result = place(account, "49.90", now=now, kind="upgrade")

    assert result.created
    bill, charge = result.bill, result.charge
    assert (bill.kind, bill.order_kind, bill.reference) == (Bill.Kind.ORDER, "upgrade", "order:ord-1")
    assert (bill.status, bill.amount_paid, bill.paid_at) == (Bill.Status.PAID, D("49.90"), now)
    assert (charge.status, charge.kind, charge.payment_method_id) == (Charge.Status.SUCCEEDED, Charge.Kind.ORDER, method.pk)
    assert charge.idempotency_key == f"charge-{bill.pk}-1" and charge.gateway_reference.startswith("ch_")
    assert PROCESSOR.charge_count(method.gateway_token) == 1


def test_pay_4_no_fee_the_amount_charged_equals_the_bill_total(now):
    account, method = card_account()
    bill = place(account, "123.45", now=now).bill

    [made] = PROCESSOR.charges
    assert made.amount == bill.total == D("123.45") and made.currency == "USD"
    assert made.payer == method.gateway_token
    # The charge credits the balance and the bill payment takes exactly that back out.
    assert ledger(account) == sorted([
        (LedgerEntry.Kind.CHARGE, D("123.45"), f"charge:{bill.charges.get().pk}"),
        (LedgerEntry.Kind.BILL_PAYMENT, D("-123.45"), f"bill-payment:{bill.pk}:charge:{bill.charges.get().pk}"),
    ])
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")
    assert_billing_invariants()


def test_del_3_outstanding_flag_follows_the_bills_charging_issues_and_pays(now):
    account, _ = card_account("chargedecline")
    place(account, now=now)
    account.refresh_from_db()
    assert account.has_outstanding_bills  # the failed charge left the bill open
    paid, _ = card_account()
    place(paid, now=now, reference="ord-2")
    paid.refresh_from_db()
    assert not paid.has_outstanding_bills  # issued and paid by its own charge


def test_pay_4_no_fee_on_paypal_either(now):
    account, method = paypal_account()
    bill = place(account, "20.00", now=now).bill
    [made] = PROCESSOR.charges
    assert (made.payer, made.amount) == (method.agreement_id, bill.total)
    assert bill.status == Bill.Status.PAID


def test_pay_1_risk_check_requires_3ds_for_the_order_fails_it_with_pay_5(now):
    account, _ = card_account("risk3ds")
    result = place(account, now=now)

    charge = result.charge
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (
        Charge.Status.FAILED, "three_ds_not_completed", "PAY-5",
    )
    assert "3-D Secure" in charge.failure_detail
    assert result.bill.status == Bill.Status.OPEN and result.bill.amount_paid == 0
    assert PROCESSOR.charges == [] and ledger(account) == []


def test_pay_1_merchant_initiated_threshold_charge_is_not_asked_for_3ds(now, enqueued):
    account, _ = card_account("risk3ds")
    report_usage(account, "1000.00", reference="u-1", now=now)
    enqueued.commit(threshold_charges_run, now=now)
    [charge] = run_enqueued_charges(enqueued, now)
    assert charge.status == Charge.Status.SUCCEEDED


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("chargedecline", "issuer_declined"), ("chargenofunds", "insufficient_funds")],
)
def test_pay_5_issuer_decline_fails_the_charge_with_its_reason_and_leaves_the_bill_open(now, scenario, reason):
    account, _ = card_account(scenario)
    result = place(account, "10.00", now=now)

    charge = result.charge
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (Charge.Status.FAILED, reason, "PAY-5")
    assert charge.failure_detail and charge.completed_at == now
    assert result.bill.status == Bill.Status.OPEN
    assert ledger(account) == [] and PROCESSOR.charges == []


def test_pay_5_paypal_decline_is_recorded_too(now):
    account, _ = paypal_account("chargedecline")
    charge = place(account, now=now).charge
    assert (charge.status, charge.failure_reason) == (Charge.Status.FAILED, "issuer_declined")


@pytest.mark.parametrize("kyc", [Account.KycStatus.REQUIRED, Account.KycStatus.PENDING])
def test_pay_5_order_refused_while_kyc_is_required_and_nothing_is_created(now, kyc):
    account, _ = card_account(kyc_status=kyc)
    with pytest.raises(OrderRefused) as caught:
        place(account, now=now)
    assert (caught.value.rule, caught.value.code, caught.value.http_status) == ("PAY-5", "kyc_required", 422)
    assert not Bill.objects.exists() and not Charge.objects.exists() and PROCESSOR.charges == []


def test_pay_5_kyc_required_charge_fails_without_reaching_the_gateway(now, enqueued):
    account, _ = card_account()
    report_usage(account, "1000.00", reference="u-1", now=now)
    enqueued.commit(threshold_charges_run, now=now)
    Account.objects.filter(pk=account.pk).update(kyc_status=Account.KycStatus.REQUIRED)

    [charge] = run_enqueued_charges(enqueued, now)
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (Charge.Status.FAILED, "kyc_required", "PAY-5")
    assert charge.attempts == 0 and PROCESSOR.charges == []
    assert charge.bill.status == Bill.Status.OPEN


def test_hold_3_order_refused_without_an_active_default_method(now):
    account = AccountFactory()
    CardMethodFactory(account=account, status=PaymentMethod.Status.PENDING)
    with pytest.raises(OrderRefused) as caught:
        place(account, now=now)
    assert (caught.value.rule, caught.value.code) == ("HOLD-3", "no_usable_method")
    assert not Bill.objects.exists()


@pytest.mark.parametrize("status", [PaymentMethod.Status.EXPIRED, PaymentMethod.Status.REMOVED])
def test_hold_3_a_charge_whose_method_stopped_being_active_is_never_sent(now, enqueued, status):
    account, method = card_account()
    report_usage(account, "1000.00", reference="u-1", now=now)
    enqueued.commit(threshold_charges_run, now=now)
    PaymentMethod.objects.filter(pk=method.pk).update(status=status, is_default=status == PaymentMethod.Status.EXPIRED)

    [charge] = run_enqueued_charges(enqueued, now)
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (
        Charge.Status.FAILED, "no_usable_method", "HOLD-3",
    )
    assert PROCESSOR.charges == []


# --- credit accounts (PAY-6, CRED-3) -----------------------------------------------------------------


def credit_account(limit="1000.00", **fields):
    account, method = card_account(credit_approved=True, credit_limit=D(limit), credit_currency="USD", **fields)
    return account, method


def test_pay_6_credit_account_order_is_not_charged_and_waits_for_a_transfer(now):
    account, _ = credit_account()
    result = place(account, "300.00", now=now)

    assert result.charge is None and not Charge.objects.exists() and PROCESSOR.charges == []
    assert result.bill.status == Bill.Status.OPEN
    assert result.bill.due_date == now.date() + timedelta(days=30)  # CRED-3: paid by transfer by then


def test_cred_3_order_may_reach_the_credit_limit_exactly(now):
    account, _ = credit_account("500.00")
    place(account, "200.00", reference="a", now=now)
    place(account, "300.00", reference="b", now=now)
    assert Bill.objects.filter(account=account).count() == 2


def test_cred_3_order_past_the_credit_limit_is_refused_and_nothing_is_created(now):
    account, _ = credit_account("500.00")
    place(account, "400.00", reference="a", now=now)
    with pytest.raises(CreditLimitExceeded) as caught:
        place(account, "100.01", reference="b", now=now)
    assert (caught.value.rule, caught.value.http_status) == ("CRED-3", 422)
    assert list(Bill.objects.values_list("reference", flat=True)) == ["order:a"]


def test_cred_3_paid_bills_no_longer_count_against_the_limit(now):
    account, _ = credit_account("500.00")
    bill = place(account, "400.00", reference="a", now=now).bill
    Bill.objects.filter(pk=bill.pk).update(amount_paid=bill.total, status=Bill.Status.PAID, paid_at=now)
    place(account, "500.00", reference="b", now=now)


def test_cred_3_order_in_another_currency_than_the_credit_is_refused(now):
    account, _ = credit_account()
    with pytest.raises(CreditLimitExceeded) as caught:
        place(account, "10.00", currency="EUR", now=now)
    assert caught.value.code == "credit_currency_mismatch" and caught.value.rule == "CRED-3"


def test_pay_6_threshold_scan_never_charges_a_credit_account(now, enqueued):
    account, _ = credit_account()
    report_usage(account, "5000.00", reference="u-1", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 0
    assert UsageRecord.objects.get().status == UsageRecord.Status.UNBILLED
    assert enqueued == [] and not Charge.objects.exists()


def test_pay_6_charge_of_an_account_that_became_credit_approved_is_not_sent(now, enqueued):
    account, _ = card_account()
    report_usage(account, "1000.00", reference="u-1", now=now)
    enqueued.commit(threshold_charges_run, now=now)
    Account.objects.filter(pk=account.pk).update(credit_approved=True, credit_limit=D("5000"))
    [charge] = run_enqueued_charges(enqueued, now)
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (Charge.Status.FAILED, "credit_account", "PAY-6")
    assert PROCESSOR.charges == []


# --- idempotency of the console's events (I2) --------------------------------------------------------


def test_i2_same_order_reference_twice_one_bill_one_charge(now):
    account, _ = card_account()
    first = place(account, "10.00", now=now)
    again = place(account, "10.00", now=now)
    assert not again.created and again.bill.pk == first.bill.pk and again.charge.pk == first.charge.pk
    assert Bill.objects.count() == 1 and Charge.objects.count() == 1 and len(PROCESSOR.charges) == 1


def test_i2_order_reference_reused_with_other_figures_is_refused(now):
    account, _ = card_account()
    place(account, "10.00", now=now)
    with pytest.raises(OrderReferenceReused) as caught:
        place(account, "11.00", now=now)
    assert caught.value.http_status == 409
    other, _ = card_account()
    with pytest.raises(OrderReferenceReused):
        place(other, "10.00", now=now)
    assert Bill.objects.count() == 1


def test_i2_same_usage_reference_twice_is_recorded_once(now):
    account, _ = card_account()
    first = report_usage(account, "1.25", reference="u-1", now=now)
    again = report_usage(account, "1.25", reference="u-1", now=now + timedelta(minutes=1))
    assert first.created and not again.created and again.record.pk == first.record.pk
    assert UsageRecord.objects.count() == 1


def test_i2_usage_reference_reused_with_other_figures_is_refused(now):
    account, _ = card_account()
    report_usage(account, "1.25", reference="u-1", now=now)
    for change in ({"amount": "1.26"}, {"period": "2026-10"}, {"currency": "EUR"}):
        with pytest.raises(UsageReferenceReused) as caught:
            usage_record(**{
                "account_id": account.pk, "amount": "1.25", "currency": "USD", "period": "2026-11",
                "reference": "u-1", "now": now, **change,
            })
        assert caught.value.http_status == 409


@pytest.mark.parametrize("amount", [1.5, "1.255", "0", "-3", "abc", "NaN"])
def test_i6_usage_amounts_that_are_floats_too_precise_or_not_positive_are_refused(now, amount):
    account, _ = card_account()
    with pytest.raises(InvalidAmount):
        report_usage(account, amount, reference="u-1", now=now)


def test_i6_usage_currency_and_period_are_checked(now):
    account, _ = card_account()
    with pytest.raises(InvalidCurrency):
        report_usage(account, "1.00", reference="u-1", now=now, currency="XXX")
    with pytest.raises(InvalidPeriod):
        report_usage(account, "1.00", reference="u-1", now=now, period="2026-13")


# --- thresholds (PAY-2) ------------------------------------------------------------------------------


def test_pay_2_card_usage_is_charged_when_it_reaches_usd_1000_before_tax(now, enqueued):
    account, method = card_account()
    report_usage(account, "600.00", reference="u-1", now=now)
    report_usage(account, "399.99", reference="u-2", now=now, period="2026-10")
    assert enqueued.commit(threshold_charges_run, now=now) == 0  # 999.99: under the threshold

    report_usage(account, "0.01", reference="u-3", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 1
    bill = Bill.objects.get(kind=Bill.Kind.USAGE_THRESHOLD)
    charge = Charge.objects.get()
    assert (bill.total, bill.tax, charge.amount, charge.kind) == (D("1000.00"), D("0.00"), D("1000.00"), Charge.Kind.THRESHOLD)
    assert set(UsageRecord.objects.values_list("status", "charge_id", "bill_id")) == {
        (UsageRecord.Status.CHARGED, charge.pk, bill.pk)
    }
    # The gateway call happens in a worker, after the commit.
    assert enqueued == [("payments.execute_charge", {"charge_id": charge.pk})]
    [charge] = run_enqueued_charges(enqueued, now)
    bill.refresh_from_db()
    assert charge.status == Charge.Status.SUCCEEDED and bill.status == Bill.Status.PAID
    assert PROCESSOR.charge_count(method.gateway_token) == 1


def test_pay_2_paypal_usage_is_charged_at_the_accounts_own_threshold(now, enqueued):
    account, method = paypal_account(paypal_charge_threshold=D("8.00"))
    report_usage(account, "7.99", reference="u-1", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 0
    report_usage(account, "0.01", reference="u-2", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 1
    [charge] = run_enqueued_charges(enqueued, now)
    assert (charge.status, charge.amount) == (Charge.Status.SUCCEEDED, D("8.00"))
    assert PROCESSOR.charge_count(method.agreement_id) == 1


def test_pay_2_paypal_threshold_up_to_500(now, enqueued):
    account, _ = paypal_account(paypal_charge_threshold=D("500.00"))
    report_usage(account, "499.99", reference="u-1", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 0
    report_usage(account, "0.01", reference="u-2", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 1


def test_pay_2_threshold_applies_per_currency(now, enqueued):
    account, _ = card_account()
    report_usage(account, "600.00", reference="u-1", now=now)
    report_usage(account, "600.00", reference="u-2", now=now, currency="EUR")
    assert enqueued.commit(threshold_charges_run, now=now) == 0  # neither currency alone reached it
    report_usage(account, "400.00", reference="u-3", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 1
    assert Charge.objects.get().currency == "USD"
    assert UsageRecord.objects.get(reference="u-2").status == UsageRecord.Status.UNBILLED


def test_pay_2_without_an_active_default_method_nothing_is_charged_and_usage_stays_unbilled(now, enqueued):
    account = AccountFactory()
    CardMethodFactory(account=account, is_default=True, status=PaymentMethod.Status.EXPIRED)
    report_usage(account, "2000.00", reference="u-1", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 0
    assert UsageRecord.objects.get().status == UsageRecord.Status.UNBILLED and not Bill.objects.exists()


def test_pay_2_threshold_run_twice_charges_once(now, enqueued):
    account, _ = card_account()
    report_usage(account, "1500.00", reference="u-1", now=now)
    assert enqueued.commit(threshold_charges_run, now=now) == 1
    assert enqueued.commit(threshold_charges_run, now=now) == 0
    assert Charge.objects.count() == 1 and Bill.objects.count() == 1


def test_pay_2_threshold_scan_is_one_query_whatever_the_number_of_accounts(now, enqueued, django_assert_num_queries):
    for index in range(30):
        account, _ = card_account()
        report_usage(account, "999.99", reference=f"u-{index}", now=now)
    with django_assert_num_queries(1):
        assert enqueued.commit(threshold_charges_run, now=now) == 0


# --- HOLD-4: PayPal pre-authorization when pay-as-you-go starts --------------------------------------


def test_hold_4_first_usage_with_a_paypal_default_places_a_preauthorization_once(now, enqueued, django_capture_on_commit_callbacks):
    account, method = paypal_account()
    with django_capture_on_commit_callbacks(execute=True):
        report_usage(account, "1.00", reference="u-1", now=now)
    assert enqueued == [("payments.place_paypal_preauth", {"account_id": account.pk})]

    charge = paypal_preauth_place(account_id=account.pk, now=now)
    assert (charge.kind, charge.status, charge.idempotency_key) == (
        Charge.Kind.PAYPAL_PREAUTH, Charge.Status.SUCCEEDED, f"paypal-payg-preauth-{account.pk}",
    )
    hold = VerificationHold.objects.get()
    assert (hold.payment_method_id, hold.account_id, hold.authorization_id) == (method.pk, account.pk, charge.gateway_reference)
    assert hold.release_deadline == now + timedelta(hours=24)

    # Later usage, or the task delivered again, places nothing more; it moves no money.
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        report_usage(account, "1.00", reference="u-2", now=now)
    assert enqueued == []
    paypal_preauth_place(account_id=account.pk, now=now)
    assert VerificationHold.objects.count() == 1 and Charge.objects.count() == 1
    assert ledger(account) == [] and PROCESSOR.charges == []


def test_hold_4_the_preauthorization_is_released_by_the_release_job(now):
    account, _ = paypal_account()
    paypal_preauth_place(account_id=account.pk, now=now)
    assert holds_release_due(now=now + timedelta(hours=1)) == 1
    assert VerificationHold.objects.get().status == VerificationHold.Status.RELEASED


def test_hold_4_no_preauthorization_for_a_card_default_or_a_credit_account(now, enqueued, django_capture_on_commit_callbacks):
    card, _ = card_account()
    credit, _ = paypal_account(credit_approved=True, credit_limit=D("100"))
    with django_capture_on_commit_callbacks(execute=True):
        report_usage(card, "1.00", reference="u-1", now=now)
        report_usage(credit, "1.00", reference="u-2", now=now)
    assert enqueued == []
    assert paypal_preauth_place(account_id=card.pk, now=now) is None
    assert paypal_preauth_place(account_id=credit.pk, now=now) is None
    assert not VerificationHold.objects.exists()


def test_hold_4_declined_preauthorization_is_recorded(now):
    account, _ = paypal_account("decline")
    charge = paypal_preauth_place(account_id=account.pk, now=now)
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (Charge.Status.FAILED, "issuer_declined", "HOLD-4")
    assert not VerificationHold.objects.exists()


# --- retries: timeouts with the saved key, bounded retries of failures --------------------------------


def test_i2_gateway_timeout_retried_with_the_same_saved_key_charges_once(now):
    account, method = card_account("timeoutonce")
    charge = place(account, "25.00", now=now).charge
    # The processor charged, but its answer was lost: the charge stays pending, the bill open.
    assert charge.status == Charge.Status.PENDING and "retried" in charge.failure_detail
    assert PROCESSOR.charge_count(method.gateway_token) == 1
    assert Bill.objects.get().status == Bill.Status.OPEN

    report = charges_retry_failed(now=now + timedelta(minutes=15))
    charge.refresh_from_db()
    assert (report.pending_retried, report.succeeded) == (1, 1)
    assert charge.status == Charge.Status.SUCCEEDED and charge.attempts == 2
    assert PROCESSOR.charge_count(method.gateway_token) == 1  # the same key found the first charge
    assert Bill.objects.get().status == Bill.Status.PAID
    assert len(ledger(account)) == 2
    assert_billing_invariants()


def test_gateway_unavailable_leaves_the_charge_pending_and_retries_are_bounded(now):
    account, _ = card_account("unavailable")
    charge = place(account, now=now).charge
    assert charge.status == Charge.Status.PENDING and charge.attempts == 1
    later = now + timedelta(minutes=15)
    for _ in range(scheduled_charging.MAX_GATEWAY_ATTEMPTS + 3):
        charges_retry_failed(now=later)
    charge.refresh_from_db()
    assert charge.status == Charge.Status.PENDING and charge.attempts == scheduled_charging.MAX_GATEWAY_ATTEMPTS
    assert Charge.objects.count() == 1  # a pending charge is never replaced by one with a new key


def test_pay_5_retry_of_a_transient_failure_is_a_new_attempt_within_bounds(now):
    account, method = card_account("chargenofunds")
    charge = place(account, now=now).charge
    assert charge.failure_reason == "insufficient_funds"

    assert charges_retry_failed(now=now + timedelta(hours=1)).failed_retried == 0  # not before a day
    for day in range(1, 6):
        charges_retry_failed(now=now + timedelta(days=day))
    keys = list(Charge.objects.order_by("pk").values_list("idempotency_key", "status"))
    bill = Bill.objects.get()
    assert keys == [(f"charge-{bill.pk}-{n}", Charge.Status.FAILED) for n in (1, 2, 3)]  # MAX_CHARGE_ATTEMPTS


def test_retry_succeeds_once_the_customer_links_a_working_default(now):
    account, old = card_account("chargedecline")
    place(account, now=now)
    PaymentMethod.objects.filter(pk=old.pk).update(is_default=False)
    new = CardMethodFactory(account=account, is_default=True)
    report = charges_retry_failed(now=now + timedelta(days=1))
    assert (report.failed_retried, report.succeeded) == (1, 1)
    assert Charge.objects.order_by("-pk").first().payment_method_id == new.pk
    assert Bill.objects.get().status == Bill.Status.PAID


@pytest.mark.parametrize("setup", ["kyc", "credit", "three_ds"])
def test_pay_5_pay_6_kyc_credit_and_3ds_failures_are_never_retried_automatically(now, enqueued, setup):
    if setup == "three_ds":
        account, _ = card_account("risk3ds")
        place(account, now=now)
    else:
        account, _ = card_account()
        report_usage(account, "1000.00", reference="u-1", now=now)
        enqueued.commit(threshold_charges_run, now=now)
        if setup == "kyc":
            Account.objects.filter(pk=account.pk).update(kyc_status=Account.KycStatus.PENDING)
        else:
            Account.objects.filter(pk=account.pk).update(credit_approved=True, credit_limit=D("5000"))
        run_enqueued_charges(enqueued, now)
    for day in range(1, 4):
        charges_retry_failed(now=now + timedelta(days=day))
    assert Charge.objects.count() == 1 and PROCESSOR.charges == []


def test_charge_for_a_bill_paid_meanwhile_is_not_sent(now, enqueued):
    account, _ = card_account()
    report_usage(account, "1000.00", reference="u-1", now=now)
    enqueued.commit(threshold_charges_run, now=now)
    bill = Bill.objects.get()
    Bill.objects.filter(pk=bill.pk).update(amount_paid=bill.total, status=Bill.Status.PAID, paid_at=now)
    [charge] = run_enqueued_charges(enqueued, now)
    assert (charge.status, charge.failure_reason) == (Charge.Status.FAILED, "bill_already_paid")
    assert PROCESSOR.charges == []


def test_i5_charge_pays_only_what_is_still_owed_the_rest_stays_on_the_balance(now, enqueued):
    account, _ = card_account()
    report_usage(account, "1000.00", reference="u-1", now=now)
    enqueued.commit(threshold_charges_run, now=now)
    bill = Bill.objects.get()
    # Settlement paid part of the bill from the balance while the charge was queued.
    Bill.objects.filter(pk=bill.pk).update(amount_paid=D("400.00"), status=Bill.Status.PARTIALLY_PAID)
    [charge] = run_enqueued_charges(enqueued, now)
    bill.refresh_from_db()
    assert charge.status == Charge.Status.SUCCEEDED
    assert (bill.status, bill.amount_paid) == (Bill.Status.PAID, D("1000.00"))
    assert account_balance(account_id=account.pk, currency="USD") == D("400.00")
    assert bill.charges.get().amount == D("1000.00")


# --- tasks (I2, Celery matrix) ------------------------------------------------------------------------


def test_i2_execute_charge_task_delivered_twice_charges_once(now, enqueued):
    account, method = card_account()
    report_usage(account, "1000.00", reference="u-1", now=now)
    enqueued.commit(threshold_charges_run, now=now)
    [(_, kwargs)] = enqueued
    assert charging_tasks.execute_charge(**kwargs) == Charge.Status.SUCCEEDED
    assert charging_tasks.execute_charge(**kwargs) == Charge.Status.SUCCEEDED
    assert PROCESSOR.charge_count(method.gateway_token) == 1
    assert len(ledger(account)) == 2


def test_nothing_is_enqueued_from_a_rolled_back_transaction(now, enqueued, django_capture_on_commit_callbacks):
    account, _ = card_account()
    report_usage(account, "1000.00", reference="u-1", now=now)

    class Crash(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Crash), transaction.atomic():
            scheduled_charging.usage_threshold_charge(account_id=account.pk, currency="USD", now=now)
            raise Crash
    assert callbacks == [] and enqueued == []
    assert not Charge.objects.exists() and UsageRecord.objects.get().status == UsageRecord.Status.UNBILLED

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        scheduled_charging.usage_threshold_charge(account_id=account.pk, currency="USD", now=now)
    assert len(callbacks) == 1 and [name for name, _ in enqueued] == ["payments.execute_charge"]


def test_execute_charge_task_for_an_unknown_charge_is_a_no_op():
    assert charging_tasks.execute_charge(charge_id=987654) == "not_found"


def test_retry_failed_charges_task_reports_what_it_did():
    from django.utils import timezone

    account, _ = card_account("timeoutonce")
    place(account, now=timezone.now() - timedelta(hours=1))
    assert charging_tasks.retry_failed_charges() == {"pending_retried": 1, "failed_retried": 0, "succeeded": 1}


@pytest.mark.parametrize(
    "task",
    [
        charging_tasks.execute_charge, charging_tasks.place_paypal_preauth, charging_tasks.charge_usage_thresholds,
        billing_tasks.generate_monthly_bills, billing_tasks.generate_monthly_bills_chunk,
        charging_tasks.month_end_deduction, charging_tasks.retry_failed_charges,
    ],
    ids=lambda t: t.name,
)
def test_billing_task_retries_are_bounded_and_below_the_visibility_timeout(task):
    assert task.name.startswith("payments.")
    assert 0 < task.max_retries <= 5
    assert task.max_retries * task.retry_backoff_max < 3600
    assert set(task.autoretry_for) == set(TRANSIENT_ERRORS)


def test_charge_usage_thresholds_task_runs_the_scan(enqueued):
    from django.utils import timezone

    account, _ = card_account()
    report_usage(account, "1000.00", reference="u-1", now=timezone.now())
    assert charging_tasks.charge_usage_thresholds() == 1
    assert charging_tasks.charge_usage_thresholds() == 0


# --- DEL-3 with real bills -----------------------------------------------------------------------------


def test_del_3_only_active_method_kept_while_the_account_has_an_unpaid_bill(now):
    account, method = card_account("chargedecline")
    place(account, "100.00", now=now)  # the charge fails: the bill stays open
    # The bills themselves count, even where the flag was not (yet) set.
    Account.objects.filter(pk=account.pk).update(has_outstanding_bills=False)
    with pytest.raises(RemovalRefused) as caught:
        payment_method_remove(method_id=method.pk, now=now)
    assert caught.value.rule == "DEL-3"

    # Once the customer's transfer has paid the bill, the method can go.
    from payments.services.settlement import settle_accounts
    from tests.payments.invariants import credit

    credit(account, "100.00", now=now)
    settle_accounts(account_ids=[account.pk], now=now)
    assert Bill.objects.get().status == Bill.Status.PAID
    assert payment_method_remove(method_id=method.pk, now=now).status == PaymentMethod.Status.REMOVED
