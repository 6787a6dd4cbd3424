"""3-D Secure for subscription orders (PAY-1, PAY-5): the risk check asks for it, the console
completes the challenge, the bill is charged once with the processor's authentication.

Cards with the sandbox token scenario ``risk3ds`` ask for 3DS on every customer-initiated
charge sent without a completed authentication; ``PROCESSOR.charges`` lists the charges the
simulated processor really made.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from payments.tasks import charging as charging_tasks
from payments.errors import ChallengeNotFound, VerificationNotPending
from payments.gateways.simulated import PROCESSOR
from payments.models import Bill, Charge, PaymentMethod, ThreeDSChallenge
from payments.services import order_three_ds
from payments.services.scheduled_charging import charges_retry_failed
from payments.services.ledger import account_balance
from payments.services.lifecycle import verifications_fail_abandoned
from payments.services.cards import three_ds_complete
from payments.services.settlement import settle_accounts
from tests.concurrency import errors_of, run_at_once
from tests.payments.invariants import assert_all_invariants, credit
from tests.helpers.charging import card_account, ledger, place

pytestmark = pytest.mark.django_db
D = Decimal
THREE_DS = "three_ds_not_completed"


def complete(challenge, outcome="success", *, now):
    return order_three_ds.order_three_ds_complete(challenge_id=challenge.pk, outcome=outcome, now=now)


def risky_order(amount="100.00", *, now, reference="ord-1", account=None):
    """An order on a card whose risk check asks for 3DS: (account, method, result, challenge)."""
    if account is None:
        account, method = card_account("risk3ds")
    else:
        method = account.payment_methods.get(is_default=True)
    result = place(account, amount, reference=reference, now=now)
    return account, method, result, ThreeDSChallenge.objects.get(charge=result.charge)


# --- the challenge is opened with the failed charge -------------------------------------------


def test_pay_1_pay_5_risk_check_fails_the_charge_and_opens_a_challenge_tied_to_it(now, settings):
    account, method, result, challenge = risky_order(now=now)

    charge = result.charge
    assert (charge.status, charge.failure_reason, charge.failure_rule) == (Charge.Status.FAILED, THREE_DS, "PAY-5")
    assert (challenge.status, challenge.trigger, challenge.payment_method_id) == (
        ThreeDSChallenge.Status.PENDING, ThreeDSChallenge.Trigger.RISK, method.pk,
    )
    assert challenge.expires_at == now + settings.VERIFICATION_TIMEOUT
    assert challenge.gateway_reference.startswith("3ds_")  # the processor's authentication session
    assert "completes the challenge" in charge.failure_detail
    assert result.bill.status == Bill.Status.OPEN and PROCESSOR.charges == [] and ledger(account) == []
    method.refresh_from_db()
    assert method.status == PaymentMethod.Status.ACTIVE  # the card itself is fine


def test_pay_1_two_orders_on_one_card_each_get_their_own_challenge(now):
    account, method, first, first_challenge = risky_order("10.00", now=now, reference="ord-1")
    _, _, second, second_challenge = risky_order("20.00", now=now, reference="ord-2", account=account)
    assert first_challenge.pk != second_challenge.pk
    assert ThreeDSChallenge.objects.filter(payment_method=method, status="pending").count() == 2

    complete(second_challenge, now=now)
    assert [c.amount for c in PROCESSOR.charges] == [D("20.00")]
    first.bill.refresh_from_db()
    assert first.bill.status == Bill.Status.OPEN


def test_pay_1_order_replayed_by_the_console_opens_no_second_challenge(now):
    account, _, _, challenge = risky_order(now=now)
    again = place(account, "100.00", now=now)
    assert not again.created and again.charge.pk == challenge.charge_id
    assert ThreeDSChallenge.objects.count() == 1


# --- completing it ------------------------------------------------------------------------------


def test_pay_1_completed_challenge_charges_the_bill_once_with_a_new_key_and_the_authentication(now):
    account, method, result, challenge = risky_order("75.50", now=now)
    later = now + timedelta(minutes=3)

    order = complete(challenge, now=later)

    replay = order.charge
    assert replay.pk != result.charge.pk
    assert (replay.status, replay.kind, replay.payment_method_id, replay.amount) == (
        Charge.Status.SUCCEEDED, Charge.Kind.ORDER, method.pk, D("75.50"),
    )
    assert replay.idempotency_key == f"charge-{order.bill.pk}-3ds-{challenge.pk}"
    assert replay.authenticated_by_id == challenge.pk
    assert (order.bill.status, order.bill.amount_paid, order.bill.paid_at) == (Bill.Status.PAID, D("75.50"), later)
    [made] = PROCESSOR.charges
    assert (made.payer, made.amount, made.idempotency_key) == (method.gateway_token, D("75.50"), replay.idempotency_key)
    challenge.refresh_from_db()
    assert (challenge.status, challenge.completed_at) == (ThreeDSChallenge.Status.SUCCEEDED, later)
    # The charge's money paid its own bill: the balance nets to zero (PAY-4: no fee either).
    assert account_balance(account_id=account.pk, currency="USD") == 0
    assert_all_invariants(processor=PROCESSOR)


def test_pay_5_failed_challenge_charges_nothing_and_leaves_the_bill_open(now):
    account, _, result, challenge = risky_order(now=now)

    order = complete(challenge, "failure", now=now)

    assert order.charge.pk == result.charge.pk
    assert (order.charge.status, order.charge.failure_reason) == (Charge.Status.FAILED, THREE_DS)
    assert "did not pass" in order.charge.failure_detail
    assert order.bill.status == Bill.Status.OPEN and PROCESSOR.charges == [] and ledger(account) == []
    challenge.refresh_from_db()
    assert challenge.status == ThreeDSChallenge.Status.FAILED


@pytest.mark.parametrize("first", ["success", "failure"])
def test_pay_1_a_challenge_is_completed_once_the_second_answer_is_refused_and_changes_nothing(now, first):
    _, _, _, challenge = risky_order(now=now)
    complete(challenge, first, now=now)
    charges_before = list(Charge.objects.values_list("pk", "status"))

    with pytest.raises(VerificationNotPending) as refused:
        complete(challenge, "success", now=now)

    assert refused.value.rule == "PAY-1" and refused.value.http_status == 409
    assert list(Charge.objects.values_list("pk", "status")) == charges_before
    assert len(PROCESSOR.charges) == (1 if first == "success" else 0)


def test_pay_1_link_and_order_challenges_are_not_interchangeable(now):
    """The card-link service never completes an order's challenge (it would place a hold)."""
    _, _, _, challenge = risky_order(now=now)
    with pytest.raises(ChallengeNotFound):
        three_ds_complete(challenge_id=challenge.pk, outcome="success", now=now)
    challenge.refresh_from_db()
    assert challenge.status == ThreeDSChallenge.Status.PENDING


def test_pay_1_replay_pays_only_what_settlement_left_owing(now):
    """Money arrived while the cardholder was away: the replay charges the rest, not the total."""
    account, method, result, challenge = risky_order("100.00", now=now)
    credit(account, "30.00", now=now)
    settle_accounts(account_ids=[account.pk], now=now)

    order = complete(challenge, now=now)

    assert order.charge.amount == D("70.00") and [c.amount for c in PROCESSOR.charges] == [D("70.00")]
    assert (order.bill.status, order.bill.amount_paid) == (Bill.Status.PAID, D("100.00"))
    assert_all_invariants(processor=PROCESSOR)


def test_pay_1_bill_already_paid_from_the_balance_gets_no_charge(now):
    account, _, result, challenge = risky_order("100.00", now=now)
    credit(account, "100.00", now=now)
    settle_accounts(account_ids=[account.pk], now=now)

    order = complete(challenge, now=now)

    assert order.bill.status == Bill.Status.PAID
    assert order.charge.pk == result.charge.pk  # nothing new
    assert Charge.objects.count() == 1 and PROCESSOR.charges == []
    challenge.refresh_from_db()
    assert challenge.status == ThreeDSChallenge.Status.SUCCEEDED


def test_hold_3_replay_to_a_card_removed_meanwhile_fails_and_charges_nothing(now):
    account, method, _, challenge = risky_order(now=now)
    PaymentMethod.objects.filter(pk=method.pk).update(status=PaymentMethod.Status.REMOVED, is_default=False)

    order = complete(challenge, now=now)

    assert (order.charge.status, order.charge.failure_rule) == (Charge.Status.FAILED, "HOLD-3")
    assert order.bill.status == Bill.Status.OPEN and PROCESSOR.charges == []


# --- abandoned challenges ---------------------------------------------------------------------


def test_pay_5_abandoned_challenge_expires_the_card_stays_active_and_completing_later_is_refused(now, settings):
    account, method, result, challenge = risky_order(now=now)
    later = now + settings.VERIFICATION_TIMEOUT + timedelta(seconds=1)

    verifications_fail_abandoned(now=later)

    challenge.refresh_from_db()
    method.refresh_from_db()
    charge = Charge.objects.get(pk=result.charge.pk)
    assert challenge.status == ThreeDSChallenge.Status.EXPIRED
    assert method.status == PaymentMethod.Status.ACTIVE
    assert charge.failure_reason == THREE_DS and "timed out" in charge.failure_detail
    with pytest.raises(VerificationNotPending):
        complete(challenge, now=later)
    assert PROCESSOR.charges == [] and Bill.objects.get().status == Bill.Status.OPEN


def test_pay_1_completing_after_the_deadline_is_refused_even_before_the_job_ran(now, settings):
    _, _, _, challenge = risky_order(now=now)
    with pytest.raises(VerificationNotPending) as refused:
        complete(challenge, now=now + settings.VERIFICATION_TIMEOUT)
    assert "timed out" in refused.value.detail
    challenge.refresh_from_db()
    assert challenge.status == ThreeDSChallenge.Status.PENDING and PROCESSOR.charges == []


def test_pay_5_3ds_failures_are_not_retried_by_the_retry_job(now):
    _, _, _, challenge = risky_order(now=now)
    report = charges_retry_failed(now=now + timedelta(days=3))
    assert report.failed_retried == 0 and Charge.objects.count() == 1


# --- crashes --------------------------------------------------------------------------------------


def test_i2_crash_before_the_replay_reached_the_gateway_is_finished_by_the_retry_job(now, monkeypatch):
    """The replay is committed before the gateway call; if the process dies there, the retry job
    sends the same key with the same authentication (without it the risk check would ask again)."""
    _, method, _, challenge = risky_order("40.00", now=now)

    def crash(**_kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(order_three_ds, "charge_execute", crash)
    with pytest.raises(SystemExit):
        complete(challenge, now=now)
    monkeypatch.undo()
    replay = Charge.objects.get(authenticated_by=challenge)
    assert replay.status == Charge.Status.PENDING and PROCESSOR.charges == []

    report = charges_retry_failed(now=now + timedelta(minutes=15))

    replay.refresh_from_db()
    assert report.pending_retried == 1 and replay.status == Charge.Status.SUCCEEDED
    assert [c.idempotency_key for c in PROCESSOR.charges] == [replay.idempotency_key]
    assert Bill.objects.get().status == Bill.Status.PAID
    assert_all_invariants(processor=PROCESSOR)


def test_i2_replay_whose_answer_was_lost_is_charged_once(now, monkeypatch):
    """The replay's gateway answer is lost after the money was taken: the execute task (same key)
    records the first answer; the processor made one charge."""
    _, _, _, challenge = risky_order("40.00", now=now)
    from payments.gateways import GatewayError
    from payments.gateways.simulated import SimulatedCardGateway

    real_charge = SimulatedCardGateway.charge
    lost = []

    def charge_then_lose_answer(self, **kwargs):
        result = real_charge(self, **kwargs)
        if kwargs.get("three_ds_authentication") and not lost:
            lost.append(kwargs["idempotency_key"])
            raise GatewayError("timeout after charging")
        return result

    monkeypatch.setattr(SimulatedCardGateway, "charge", charge_then_lose_answer)
    order = complete(challenge, now=now)
    assert order.charge.status == Charge.Status.PENDING

    assert charging_tasks.execute_charge.run(charge_id=order.charge.pk) == Charge.Status.SUCCEEDED
    assert len(PROCESSOR.charges) == 1 and Bill.objects.get().status == Bill.Status.PAID
    assert_all_invariants(processor=PROCESSOR)


# --- races (PostgreSQL, real threads) ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_i2_challenge_completed_by_8_requests_at_once_charges_the_bill_once(now):
    _, _, _, challenge = risky_order("60.00", now=now)

    outcomes = run_at_once([lambda: complete(challenge, now=now) for _ in range(8)])

    refused = errors_of(outcomes)
    assert len(refused) == 7 and all(isinstance(e, VerificationNotPending) for e in refused), refused
    assert Charge.objects.filter(authenticated_by=challenge).count() == 1
    assert len(PROCESSOR.charges) == 1 and Bill.objects.get().status == Bill.Status.PAID
    assert_all_invariants(processor=PROCESSOR)


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_pay_1_completion_racing_the_expiry_job_either_charges_or_expires_never_both(now, settings):
    _, _, _, challenge = risky_order("60.00", now=now)
    # The completion arrives just inside the deadline; the job runs just after it.
    deadline = challenge.expires_at
    outcomes = run_at_once([
        lambda: complete(challenge, now=deadline - timedelta(seconds=1)),
        lambda: verifications_fail_abandoned(now=deadline),
    ])

    challenge.refresh_from_db()
    if challenge.status == ThreeDSChallenge.Status.SUCCEEDED:
        assert not errors_of(outcomes) and len(PROCESSOR.charges) == 1
    else:
        assert challenge.status == ThreeDSChallenge.Status.EXPIRED
        assert isinstance(outcomes[0], VerificationNotPending) and PROCESSOR.charges == []
    assert_all_invariants(processor=PROCESSOR)


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_set_2_completion_racing_a_settlement_of_the_same_bill_pays_it_once_without_deadlock(now):
    """Money arrives and is settled while the cardholder completes 3DS: both lock the account and
    then the bill, so neither waits on the other in a cycle; the replay charges only what the
    settlement left, and the bill is paid exactly once (SET-2, SET-4, I2)."""
    rounds = []
    for index in range(6):
        account, _, _, challenge = risky_order("100.00", now=now, reference=f"ord-{index}")
        credit(account, "40.00", now=now)
        rounds.append((account, challenge))

    calls = []
    for account, challenge in rounds:
        calls.append(lambda challenge=challenge: complete(challenge, now=now))
        calls.append(lambda account=account: settle_accounts(account_ids=[account.pk], now=now))
    outcomes = run_at_once(calls)

    assert not errors_of(outcomes), errors_of(outcomes)
    for account, _ in rounds:
        bill = Bill.objects.get(account=account)
        assert (bill.status, bill.amount_paid) == (Bill.Status.PAID, D("100.00"))
        replay = Charge.objects.get(account=account, authenticated_by__isnull=False)
        # Settled first: the replay charged the 60.00 left; charged first: 100.00 and the 40.00
        # credit stays on the balance. Either way nothing is paid twice and nothing is lost.
        assert replay.amount in (D("60.00"), D("100.00"))
        assert account_balance(account_id=account.pk, currency="USD") == replay.amount - D("60.00")
    assert_all_invariants(processor=PROCESSOR)
