"""Scheduled life-cycle jobs: DEL-5 card expiry, LINK-5/LINK-6 abandoned verifications and
recovery of crashed ones, LINK-2 closing accounts after the silent period."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.conf import settings

from payments.errors import AlreadyLinked, VerificationNotPending
from payments.gateways import card_gateway
from payments.gateways.simulated import PROCESSOR
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services import (
    account_create,
    account_deactivate,
    account_reactivate,
    card_link,
    paypal_agreement_complete,
    paypal_link,
    three_ds_complete,
)
from payments.services.holds import hold_amount_for
from payments.services.verification import GatewayUnavailable
from payments.services.lifecycle import accounts_close_silent, cards_expire, verifications_fail_abandoned
from tests.helpers.cards import card_input
from tests.factories import AccountFactory, CardMethodFactory, ChallengeFactory, HoldFactory, PayPalMethodFactory

pytestmark = pytest.mark.django_db
Status = PaymentMethod.Status
Reason = LinkAttempt.Reason
UTC = timezone.utc


def status_of(method) -> str:
    return PaymentMethod.objects.get(pk=method.pk).status


def attempts(method, reason):
    return LinkAttempt.objects.filter(payment_method=method, reason=reason)


# --- DEL-5 ------------------------------------------------------------------------------------


def test_del_5_card_expires_after_last_day_of_its_month():
    nov_2026 = CardMethodFactory(exp_month=11, exp_year=2026, is_default=True)
    oct_2026 = CardMethodFactory(exp_month=10, exp_year=2026)
    dec_2025 = CardMethodFactory(exp_month=12, exp_year=2025)
    jan_2027 = CardMethodFactory(exp_month=1, exp_year=2027)

    assert cards_expire(now=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)) == 2
    assert status_of(nov_2026) == Status.ACTIVE
    assert (status_of(oct_2026), status_of(dec_2025)) == (Status.EXPIRED, Status.EXPIRED)

    first_of_december = datetime(2026, 12, 1, tzinfo=UTC)
    assert cards_expire(now=first_of_december) == 1
    nov_2026.refresh_from_db()
    assert nov_2026.status == Status.EXPIRED
    assert nov_2026.is_default  # DEL-5 keeps the default; the customer switches it (DEL-2)
    assert nov_2026.status_changed_at == first_of_december
    assert status_of(jan_2027) == Status.ACTIVE
    assert cards_expire(now=first_of_december) == 0  # a second run changes nothing


def test_del_5_only_active_cards_expire():
    pending = CardMethodFactory(exp_month=1, exp_year=2020, status=Status.PENDING)
    removed = CardMethodFactory(exp_month=1, exp_year=2020, status=Status.REMOVED)
    paypal = PayPalMethodFactory()
    assert cards_expire(now=datetime(2026, 12, 1, tzinfo=UTC)) == 0
    assert (status_of(pending), status_of(removed), status_of(paypal)) == (
        Status.PENDING, Status.REMOVED, Status.ACTIVE,
    )


# --- LINK-5 -----------------------------------------------------------------------------------


def test_link_5_abandoned_3ds_fails_method_after_timeout_not_before(now):
    account = account_create(name="Berlin GmbH", kind="enterprise", country="DE")
    result = card_link(account_id=account.pk, card=card_input(billing_country="DE"), now=now)
    method, challenge = result.method, result.challenge
    assert method.status == Status.PENDING and challenge is not None

    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT - timedelta(seconds=1)) == 0
    assert status_of(method) == Status.PENDING

    timeout = now + settings.VERIFICATION_TIMEOUT
    assert verifications_fail_abandoned(now=timeout) == 1
    method.refresh_from_db()
    challenge.refresh_from_db()
    assert challenge.status == ThreeDSChallenge.Status.EXPIRED
    assert (method.status, method.failure_reason) == (Status.FAILED, Reason.THREE_DS_NOT_COMPLETED)
    attempt = attempts(method, Reason.THREE_DS_NOT_COMPLETED).get()
    assert (attempt.outcome, attempt.rule) == (LinkAttempt.Outcome.REJECTED, "LINK-5")
    assert not VerificationHold.objects.filter(payment_method=method).exists()

    # A second run changes nothing and records nothing; the late cardholder is refused.
    assert verifications_fail_abandoned(now=timeout + timedelta(minutes=5)) == 0
    assert attempts(method, Reason.THREE_DS_NOT_COMPLETED).count() == 1
    with pytest.raises(VerificationNotPending):
        three_ds_complete(challenge_id=challenge.pk, outcome="success", now=timeout)


def test_link_5_fingerprint_of_failed_method_is_free_to_link_again(now):
    account = account_create(name="Kuala Lumpur Sdn Bhd", kind="enterprise", country="MY")
    card = card_input(billing_country="MY")
    card_link(account_id=account.pk, card=card, now=now)
    verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT)
    retry = card_link(account_id=account.pk, card=card, now=now + timedelta(hours=1))
    assert retry.challenge is not None and retry.method.status == Status.PENDING


def test_link_5_orphan_card_in_3ds_region_without_challenge_fails_and_is_never_authorized(now):
    """A crash between creating the method and its challenge: no 3DS, so no hold, never active."""
    method = CardMethodFactory(
        account=AccountFactory(country="FR"), status=Status.PENDING, status_changed_at=now
    )
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1
    method.refresh_from_db()
    assert (method.status, method.failure_reason) == (Status.FAILED, Reason.THREE_DS_NOT_COMPLETED)
    assert f"hold-auth-{method.pk}" not in PROCESSOR.results
    assert not VerificationHold.objects.filter(payment_method=method).exists()


def test_link_5_orphan_card_after_3ds_success_is_verified_by_replay(now):
    """3DS succeeded, then the process died before placing the hold: the job places it."""
    challenge = ChallengeFactory(
        payment_method__account=AccountFactory(country="DE"),
        payment_method__status_changed_at=now,
        created_at=now,
        status=ThreeDSChallenge.Status.SUCCEEDED,
    )
    method = challenge.payment_method
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1
    method.refresh_from_db()
    assert method.status == Status.ACTIVE
    assert VerificationHold.objects.filter(payment_method=method).count() == 1


# --- orphans: crash between gateway authorization and our write ---------------------------------


def test_link_5_orphan_after_gateway_authorization_replays_same_key_one_hold(now):
    method = CardMethodFactory(status=Status.PENDING, status_changed_at=now)
    amount, currency = hold_amount_for(method.account)
    # The crashed request had authorized the hold at the processor, then died.
    first = card_gateway().authorize_hold(
        token=method.gateway_token, amount=amount, currency=currency,
        descriptor=VerificationHold.DESCRIPTOR, idempotency_key=f"hold-auth-{method.pk}",
    )
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT - timedelta(seconds=1)) == 0
    assert status_of(method) == Status.PENDING

    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1
    method.refresh_from_db()
    assert method.status == Status.ACTIVE and method.is_default
    hold = VerificationHold.objects.get(payment_method=method)
    assert hold.authorization_id == first.authorization_id  # the first authorization, not a second
    assert verifications_fail_abandoned(now=now + timedelta(hours=2)) == 0


def test_link_5_orphan_with_hold_recorded_but_not_activated_is_activated(now):
    method = CardMethodFactory(status=Status.PENDING, status_changed_at=now)
    amount, currency = hold_amount_for(method.account)
    auth = card_gateway().authorize_hold(
        token=method.gateway_token, amount=amount, currency=currency,
        descriptor=VerificationHold.DESCRIPTOR, idempotency_key=f"hold-auth-{method.pk}",
    )
    HoldFactory(payment_method=method, authorization_id=auth.authorization_id, placed_at=now)
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1
    assert status_of(method) == Status.ACTIVE
    assert VerificationHold.objects.filter(payment_method=method).count() == 1


def test_link_5_orphan_gateway_still_down_does_not_stop_the_batch(now):
    account = account_create(name="Flaky Co", kind="individual", country="US")
    with pytest.raises(GatewayUnavailable):
        card_link(account_id=account.pk, card=card_input("4000000000001190"), now=now)
    down = PaymentMethod.objects.get(account=account)
    assert down.status == Status.PENDING
    recoverable = CardMethodFactory(status=Status.PENDING, status_changed_at=now)
    assert down.pk < recoverable.pk  # the failing one comes first in the batch

    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1
    assert status_of(down) == Status.PENDING  # retried on the next run
    assert status_of(recoverable) == Status.ACTIVE


def test_link_4_orphan_declined_on_replay_fails_with_reason(now):
    method = CardMethodFactory(status=Status.PENDING, status_changed_at=now, gateway_token="tok_decline_0001")
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1
    method.refresh_from_db()
    assert (method.status, method.failure_reason) == (Status.FAILED, Reason.ISSUER_DECLINED)


# --- LINK-6 -----------------------------------------------------------------------------------


def test_link_6_agreement_never_approved_fails_with_agreement_not_approved(now):
    account = account_create(name="Austin LLC", kind="enterprise", country="US")
    method = paypal_link(account_id=account.pk, email="a@example.com", payer_id="PAYERL6A", country="US", now=now).method
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT - timedelta(seconds=1)) == 0
    assert status_of(method) == Status.PENDING

    timeout = now + settings.VERIFICATION_TIMEOUT
    assert verifications_fail_abandoned(now=timeout) == 1
    method.refresh_from_db()
    assert (method.status, method.failure_reason) == (Status.FAILED, Reason.AGREEMENT_NOT_APPROVED)
    assert method.agreement_state == PaymentMethod.AgreementState.NOT_APPROVED
    attempt = attempts(method, Reason.AGREEMENT_NOT_APPROVED).get()
    assert (attempt.outcome, attempt.rule) == (LinkAttempt.Outcome.REJECTED, "LINK-6")
    assert f"hold-auth-{method.pk}" not in PROCESSOR.results  # never authorized

    assert verifications_fail_abandoned(now=timeout + timedelta(minutes=5)) == 0
    assert attempts(method, Reason.AGREEMENT_NOT_APPROVED).count() == 1
    with pytest.raises(VerificationNotPending):
        paypal_agreement_complete(method_id=method.pk, approved=True, has_funding_source=True, now=timeout)


def test_link_6_approved_agreement_whose_hold_never_recorded_is_recovered(now):
    method = PayPalMethodFactory(status=Status.PENDING, status_changed_at=now)
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1
    assert status_of(method) == Status.ACTIVE
    assert VerificationHold.objects.get(payment_method=method).authorization_id.startswith("ppauth_")


# --- LINK-2 -----------------------------------------------------------------------------------


def test_link_2_account_closes_after_15_days_not_before_and_card_links_elsewhere(now):
    old = account_create(name="Leaving Ltd", kind="enterprise", country="US")
    method = card_link(account_id=old.pk, card=card_input(), now=now).method
    account_deactivate(account_id=old.pk, now=now)
    other = account_create(name="Arriving Ltd", kind="enterprise", country="US")

    # During the silent period the card still counts as linked (409 AlreadyLinked).
    almost = now + settings.ACCOUNT_SILENT_PERIOD - timedelta(seconds=1)
    assert accounts_close_silent(now=almost) == 0
    with pytest.raises(AlreadyLinked) as caught:
        card_link(account_id=other.pk, card=card_input(), now=almost)
    assert (caught.value.http_status, caught.value.rule) == (409, "LINK-1")
    assert Account.objects.get(pk=old.pk).status == Account.Status.DEACTIVATED

    ends = now + settings.ACCOUNT_SILENT_PERIOD
    assert accounts_close_silent(now=ends) == 1
    old.refresh_from_db()
    method.refresh_from_db()
    assert (old.status, old.closed_at) == (Account.Status.CLOSED, ends)
    assert (method.status, method.is_default) == (Status.REMOVED, False)
    assert accounts_close_silent(now=ends + timedelta(hours=1)) == 0

    relinked = card_link(account_id=other.pk, card=card_input(), now=ends).method
    assert relinked.status == Status.ACTIVE
    assert relinked.fingerprint == method.fingerprint


def test_link_2_active_and_reactivated_accounts_stay_open(now):
    active = AccountFactory()
    reactivated = AccountFactory()
    account_deactivate(account_id=reactivated.pk, now=now - timedelta(days=20))
    account_reactivate(account_id=reactivated.pk, now=now - timedelta(days=19))
    long_ago = AccountFactory(status=Account.Status.DEACTIVATED, deactivated_at=now - timedelta(days=40))
    assert accounts_close_silent(now=now) == 1
    assert Account.objects.get(pk=active.pk).status == Account.Status.ACTIVE
    assert Account.objects.get(pk=reactivated.pk).status == Account.Status.ACTIVE
    assert Account.objects.get(pk=long_ago.pk).status == Account.Status.CLOSED
