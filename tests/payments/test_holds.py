"""Releasing verification holds: HOLD-2 (within 24 h, exactly once) and I4."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings

from payments.gateways import card_gateway
from payments.gateways.simulated import PROCESSOR, SimulatedCardGateway
from payments.models import VerificationHold
from payments.services import account_create, card_link, paypal_agreement_complete, paypal_link
from payments.services.holds import (
    DEFAULT_LEASE,
    HoldReleaseInProgress,
    hold_release,
    holds_claim_due,
    holds_release_due,
)
from tests.helpers.cards import card_input
from tests.factories import HoldFactory

pytestmark = pytest.mark.django_db
Status = VerificationHold.Status
COUNTING_GATEWAY = "tests.payments.test_holds.CountingCardGateway"


class CountingCardGateway(SimulatedCardGateway):
    """The simulated processor, also counting every void request it receives (replays too)."""

    lock = threading.Lock()
    calls: Counter[str] = Counter()

    def void(self, *, authorization_id: str, idempotency_key: str):
        with self.lock:
            self.calls[authorization_id] += 1
        return super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)


@pytest.fixture
def counting_gateway(settings):
    settings.CARD_GATEWAY = COUNTING_GATEWAY
    CountingCardGateway.calls.clear()
    yield CountingCardGateway.calls
    CountingCardGateway.calls.clear()


def linked_hold(now, number: str = "4242424242424242") -> VerificationHold:
    account = account_create(name="Hold Co", kind="individual", country="US")
    method = card_link(account_id=account.pk, card=card_input(number), now=now).method
    return VerificationHold.objects.get(payment_method=method)


def test_hold_2_hold_released_within_24h_exactly_once(now, counting_gateway):
    hold = linked_hold(now)
    assert hold.release_deadline == now + timedelta(hours=24)
    assert holds_release_due(now=now + timedelta(minutes=1)) == 0  # not due yet
    assert counting_gateway[hold.authorization_id] == 0

    run_at = now + settings.HOLD_RELEASE_AFTER
    assert holds_release_due(now=run_at) == 1
    hold.refresh_from_db()
    assert hold.status == Status.RELEASED
    assert hold.released_at == run_at <= hold.release_deadline
    assert (hold.lease_token, hold.lease_expires_at) == (None, None)
    assert PROCESSOR.void_calls[hold.authorization_id] == 1

    # The job runs again (next beat, or delivered twice): nothing more happens.
    assert holds_release_due(now=run_at + timedelta(minutes=5)) == 0
    assert counting_gateway[hold.authorization_id] == 1
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_void_fails_once_then_released_by_next_run_with_one_real_void(now):
    hold = linked_hold(now, "4000000000007700")
    assert "_voidfailsonce_" in hold.authorization_id
    run_at = now + settings.HOLD_RELEASE_AFTER

    assert holds_release_due(now=run_at) == 0
    hold.refresh_from_db()
    assert hold.status == Status.RELEASE_FAILED
    assert hold.release_attempts == 1
    assert "timeout" in hold.last_error
    assert hold.lease_token is None  # free for the next run
    assert PROCESSOR.void_calls[hold.authorization_id] == 0

    assert holds_release_due(now=run_at + timedelta(minutes=5)) == 1
    hold.refresh_from_db()
    assert hold.status == Status.RELEASED
    assert hold.last_error == ""
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_crash_after_gateway_void_before_db_update_releases_once_after_lease_expiry(now, counting_gateway):
    hold = linked_hold(now)
    run_at = now + settings.HOLD_RELEASE_AFTER
    # The crashed run: it claimed the hold, voided it at the gateway, and died before its update.
    token, ids = holds_claim_due(now=run_at, batch_size=10, lease=DEFAULT_LEASE)
    assert ids == [hold.pk]
    card_gateway().void(authorization_id=hold.authorization_id, idempotency_key=hold.void_idempotency_key)
    assert PROCESSOR.void_calls[hold.authorization_id] == 1

    # While the dead run's lease is live, another run leaves the hold alone.
    assert holds_release_due(now=run_at + timedelta(minutes=5)) == 0
    assert counting_gateway[hold.authorization_id] == 1
    hold.refresh_from_db()
    assert hold.status == Status.PLACED

    # After the lease expired the next run re-does the void with the same key: no second void.
    assert holds_release_due(now=run_at + DEFAULT_LEASE + timedelta(seconds=1)) == 1
    hold.refresh_from_db()
    assert hold.status == Status.RELEASED
    assert counting_gateway[hold.authorization_id] == 2  # the replay reached the gateway ...
    assert PROCESSOR.void_calls[hold.authorization_id] == 1  # ... and the processor voided once


def test_hold_2_i4_already_voided_at_gateway_counts_as_released(now):
    hold = linked_hold(now)
    # Voided out of band (e.g. by the processor's dashboard) under another key.
    card_gateway().void(authorization_id=hold.authorization_id, idempotency_key="dashboard-void")
    released = hold_release(hold_id=hold.pk, now=now + timedelta(hours=1))
    assert released.status == Status.RELEASED
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_already_released_hold_calls_no_gateway(now, counting_gateway):
    hold = linked_hold(now)
    hold_release(hold_id=hold.pk, now=now + timedelta(hours=1))
    released_at = VerificationHold.objects.get(pk=hold.pk).released_at
    again = hold_release(hold_id=hold.pk, now=now + timedelta(hours=2))
    assert again.status == Status.RELEASED
    assert again.released_at == released_at
    assert counting_gateway[hold.authorization_id] == 1


def test_hold_2_release_now_refused_while_a_run_holds_the_lease(now, counting_gateway):
    hold = linked_hold(now)
    run_at = now + settings.HOLD_RELEASE_AFTER
    holds_claim_due(now=run_at, batch_size=10, lease=DEFAULT_LEASE)
    with pytest.raises(HoldReleaseInProgress) as caught:
        hold_release(hold_id=hold.pk, now=run_at + timedelta(minutes=1))
    assert caught.value.rule == "HOLD-2"
    assert counting_gateway[hold.authorization_id] == 0
    # Once the lease expired (the run died), "release now" takes it over.
    released = hold_release(hold_id=hold.pk, now=run_at + DEFAULT_LEASE)
    assert released.status == Status.RELEASED
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_release_now_before_release_after_voids_early(now):
    hold = linked_hold(now)
    released = hold_release(hold_id=hold.pk, now=now + timedelta(minutes=1))
    assert released.status == Status.RELEASED
    assert holds_release_due(now=now + timedelta(hours=1)) == 0
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_stale_lease_token_does_not_call_gateway(now, counting_gateway):
    hold = linked_hold(now)
    run_at = now + settings.HOLD_RELEASE_AFTER
    old_token, _ = holds_claim_due(now=run_at, batch_size=10, lease=DEFAULT_LEASE)
    later = run_at + DEFAULT_LEASE + timedelta(seconds=1)
    new_token, ids = holds_claim_due(now=later, batch_size=10, lease=DEFAULT_LEASE)
    assert ids == [hold.pk] and new_token != old_token
    # The slow first run wakes up: the hold is no longer its own.
    assert hold_release(hold_id=hold.pk, now=later, lease_token=old_token).status == Status.PLACED
    assert counting_gateway[hold.authorization_id] == 0
    assert hold_release(hold_id=hold.pk, now=later, lease_token=new_token).status == Status.RELEASED


def test_hold_2_paypal_hold_voided_through_paypal_gateway(now):
    account = account_create(name="PayPal Co", kind="individual", country="US")
    method = paypal_link(account_id=account.pk, email="p@example.com", payer_id="PAYERHOLD1", country="US", now=now).method
    paypal_agreement_complete(method_id=method.pk, approved=True, has_funding_source=True, now=now)
    hold = VerificationHold.objects.get(payment_method=method)
    assert hold.authorization_id.startswith("ppauth_")
    assert holds_release_due(now=now + settings.HOLD_RELEASE_AFTER) == 1
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_holds_past_deadline_released_first_and_logged(now, caplog):
    recent = HoldFactory(placed_at=now - timedelta(hours=1))
    overdue = HoldFactory(placed_at=now - timedelta(hours=25))  # created later: higher id
    assert overdue.pk > recent.pk
    _, ids = holds_claim_due(now=now, batch_size=1, lease=DEFAULT_LEASE)
    assert ids == [overdue.pk]

    with caplog.at_level(logging.WARNING, logger="payments.services.holds"):
        assert holds_release_due(now=now + DEFAULT_LEASE, batch_size=1) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"hold {overdue.pk} is past its release deadline" in w for w in warnings)
    assert not any(f"hold {recent.pk} " in w for w in warnings)


def test_hold_2_release_due_drains_several_batches(now):
    holds = [HoldFactory(placed_at=now - timedelta(hours=2)) for _ in range(7)]
    HoldFactory(placed_at=now)  # not due yet
    assert holds_release_due(now=now, batch_size=3) == 7
    assert VerificationHold.objects.filter(status=Status.RELEASED).count() == 7
    assert all(PROCESSOR.void_calls[h.authorization_id] == 1 for h in holds)


def test_hold_2_failing_batch_stops_the_run_and_is_retried_later(now):
    ok = HoldFactory(placed_at=now - timedelta(hours=2), authorization_id="auth_approve_ok1")
    flaky = HoldFactory(placed_at=now - timedelta(hours=3), authorization_id="auth_voidfailsonce_x1")
    # Batch 1 (oldest first) holds only the flaky one and fails: the run stops, bounded.
    assert holds_release_due(now=now, batch_size=1) == 0
    assert VerificationHold.objects.get(pk=ok.pk).status == Status.PLACED
    assert holds_release_due(now=now + timedelta(minutes=5), batch_size=1) == 2
    assert PROCESSOR.void_calls[flaky.authorization_id] == 1
    assert PROCESSOR.void_calls[ok.authorization_id] == 1


def test_hold_2_release_cost_grows_with_batches_not_holds(now, django_assert_max_num_queries):
    """QUALITY.md: a backlog is drained in O(holds / batch) queries (one claim, one read and
    one update per batch), so 100k holds fit the time budget."""
    holds = [HoldFactory(placed_at=now - timedelta(hours=2)) for _ in range(60)]
    # count + 2 x (claim with its savepoint, read, update) + the empty final claim
    with django_assert_max_num_queries(16):
        assert holds_release_due(now=now, batch_size=30) == 60
    assert all(PROCESSOR.void_calls[h.authorization_id] == 1 for h in holds)
