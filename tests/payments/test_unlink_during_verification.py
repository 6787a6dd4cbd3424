"""A pending card unlinked while its verification is under way: LINK-5 and HOLD-2.

- LINK-5: a 3-D Secure success that arrives after the card was unlinked places no hold.
- HOLD-2: an authorization the gateway granted but whose hold row was never written (the
  process died right after the answer) is found by its saved key and voided exactly once, even
  though the card was unlinked since.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings

from payments.errors import VerificationNotPending
from payments.gateways.simulated import PROCESSOR
from payments.models import PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services import account_create, card_link, holds_release_due, payment_method_remove, three_ds_complete
from payments.services import verification
from payments.services.lifecycle import verifications_fail_abandoned
from tests.helpers.cards import card_input

pytestmark = pytest.mark.django_db
Status = PaymentMethod.Status


class Crash(Exception):
    """The process dying right after the gateway answered."""


def hold_key(method) -> str:
    return f"hold-auth-{method.pk}"


# --- LINK-5 -----------------------------------------------------------------------------------


def test_link_5_three_ds_success_after_the_card_was_unlinked_places_no_hold(now):
    account = account_create(name="Berlin GmbH", kind="enterprise", country="DE")
    result = card_link(account_id=account.pk, card=card_input(), now=now)
    payment_method_remove(method_id=result.method.pk, now=now + timedelta(minutes=1))
    with pytest.raises(VerificationNotPending) as refused:
        three_ds_complete(challenge_id=result.challenge.pk, outcome="success", now=now + timedelta(minutes=2))
    assert (refused.value.rule, refused.value.http_status) == ("LINK-5", 409)
    assert hold_key(result.method) not in PROCESSOR.results  # nothing was ever authorized
    assert not VerificationHold.objects.exists()
    method = PaymentMethod.objects.get(pk=result.method.pk)
    assert (method.status, method.is_default, method.hold_auth_key) == (Status.REMOVED, False, "")
    assert ThreeDSChallenge.objects.get(pk=result.challenge.pk).status == ThreeDSChallenge.Status.PENDING


def test_link_5_hold_never_sent_for_a_method_unlinked_after_its_challenge_closed(now):
    """The unlink lands between the 3DS commit and the gateway call: the call is not made."""
    account = account_create(name="Lyon SARL", kind="enterprise", country="FR")
    result = card_link(account_id=account.pk, card=card_input(), now=now)
    PaymentMethod.objects.filter(pk=result.method.pk).update(status=Status.REMOVED, removed_at=now)
    with pytest.raises(VerificationNotPending):
        verification.payment_method_verify_with_hold(method_id=result.method.pk, now=now)
    assert hold_key(result.method) not in PROCESSOR.results
    assert PaymentMethod.objects.get(pk=result.method.pk).hold_auth_key == ""


# --- HOLD-2 -----------------------------------------------------------------------------------


def test_hold_2_authorization_of_a_crashed_link_is_voided_once_after_the_card_is_unlinked(now, monkeypatch):
    account = account_create(name="Austin LLC", kind="enterprise", country="US")

    def crash_after_the_gateway_answered(**kwargs):
        raise Crash()

    monkeypatch.setattr(verification, "hold_record", crash_after_the_gateway_answered)
    with pytest.raises(Crash):
        card_link(account_id=account.pk, card=card_input(), now=now)
    monkeypatch.undo()
    method = PaymentMethod.objects.get(account=account)
    authorization = PROCESSOR.results[hold_key(method)][1]
    assert authorization.approved and method.status == Status.PENDING
    assert method.hold_auth_key == hold_key(method)  # the key was saved before the call
    assert not VerificationHold.objects.exists()

    payment_method_remove(method_id=method.pk, now=now + timedelta(minutes=5))
    later = now + settings.VERIFICATION_TIMEOUT + timedelta(minutes=1)
    assert verifications_fail_abandoned(now=later) == 1
    hold = VerificationHold.objects.get(authorization_id=authorization.authorization_id)
    assert (hold.payment_method_id, hold.placed_at) == (method.pk, now)
    assert hold.release_after <= later  # sent long ago: due at once
    assert PaymentMethod.objects.get(pk=method.pk).hold_auth_key == ""

    assert holds_release_due(now=later) == 1
    # Both jobs again: nothing recovered twice, nothing voided twice.
    assert verifications_fail_abandoned(now=later + timedelta(hours=1)) == 0
    assert holds_release_due(now=later + timedelta(hours=1)) == 0
    assert PROCESSOR.void_calls[authorization.authorization_id] == 1
    hold.refresh_from_db()
    assert hold.status == VerificationHold.Status.RELEASED
    assert PaymentMethod.objects.get(pk=method.pk).status == Status.REMOVED  # never resurrected


def test_hold_2_recovery_leaves_an_authorization_still_in_flight_alone(now, monkeypatch):
    """A key sent less than VERIFICATION_TIMEOUT ago may still be answered by its request."""
    account = account_create(name="Reno Inc", kind="individual", country="US")
    monkeypatch.setattr(verification, "hold_record", lambda **kwargs: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        card_link(account_id=account.pk, card=card_input(), now=now)
    monkeypatch.undo()
    method = PaymentMethod.objects.get(account=account)
    PaymentMethod.objects.filter(pk=method.pk).update(status=Status.REMOVED)
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT - timedelta(seconds=1)) == 0
    assert not VerificationHold.objects.exists()
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 1


def test_hold_2_declined_authorization_of_a_removed_method_is_just_forgotten(now):
    account = account_create(name="Decline Co", kind="individual", country="US")
    method = PaymentMethod.objects.create(
        account=account, kind=PaymentMethod.Kind.CARD, status=Status.REMOVED, gateway_token="tok_decline_0001",
        fingerprint="f" * 64, last4="0002", exp_month=1, exp_year=2030,
        hold_auth_key="hold-auth-x", hold_auth_sent_at=now,
    )
    assert verifications_fail_abandoned(now=now + settings.VERIFICATION_TIMEOUT) == 0
    assert PaymentMethod.objects.get(pk=method.pk).hold_auth_key == ""
    assert not VerificationHold.objects.exists()
