"""HOLD-2 / I4 races on PostgreSQL with real threads: one void per hold, no lock during the void."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction

from payments.gateways.simulated import PROCESSOR, SimulatedCardGateway
from payments.models import VerificationHold
from payments.services.holds import DEFAULT_LEASE, HoldReleaseInProgress, hold_release, holds_release_due
from tests.concurrency import run_in_threads
from tests.factories import HoldFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]
Status = VerificationHold.Status


class SlowCountingCardGateway(SimulatedCardGateway):
    """Counts every void request (replays too) and takes a little time, like a network call,
    so that concurrent runs really overlap."""

    lock = threading.Lock()
    calls: Counter[str] = Counter()

    def void(self, *, authorization_id: str, idempotency_key: str):
        with self.lock:
            self.calls[authorization_id] += 1
        time.sleep(0.002)
        return super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)


class BlockingCardGateway(SimulatedCardGateway):
    """Stops inside ``void`` until the test lets it go, so the test can look at the database
    while a release is in the middle of its gateway call."""

    entered = threading.Event()
    proceed = threading.Event()
    calls: Counter[str] = Counter()

    def void(self, *, authorization_id: str, idempotency_key: str):
        self.calls[authorization_id] += 1
        self.entered.set()
        assert self.proceed.wait(timeout=10), "test never let the void proceed"
        return super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)


@pytest.fixture
def slow_gateway(settings):
    settings.CARD_GATEWAY = "tests.payments.test_hold_races.SlowCountingCardGateway"
    SlowCountingCardGateway.calls.clear()
    return SlowCountingCardGateway.calls


@pytest.fixture
def blocking_gateway(settings):
    settings.CARD_GATEWAY = "tests.payments.test_hold_races.BlockingCardGateway"
    BlockingCardGateway.entered.clear()
    BlockingCardGateway.proceed.clear()
    BlockingCardGateway.calls.clear()
    yield BlockingCardGateway
    BlockingCardGateway.proceed.set()  # never leave a thread waiting


def test_hold_2_race_concurrent_release_runs_void_each_hold_exactly_once(now, slow_gateway):
    holds = [HoldFactory(placed_at=now - timedelta(hours=1)) for _ in range(50)]
    counts = run_in_threads(4, lambda _: holds_release_due(now=now, batch_size=5))

    assert sum(counts) == 50  # each hold counted by exactly one run
    assert VerificationHold.objects.filter(status=Status.RELEASED).count() == 50
    auths = [h.authorization_id for h in holds]
    # Exclusive claiming: no hold was even sent to the gateway twice ...
    assert sum(slow_gateway.values()) == 50
    assert all(slow_gateway[a] == 1 for a in auths)
    # ... and the processor voided each exactly once.
    assert all(PROCESSOR.void_calls[a] == 1 for a in auths)


def test_hold_2_race_release_now_clicked_many_times_voids_once(now, slow_gateway):
    hold = HoldFactory(placed_at=now - timedelta(hours=1))

    def click(_):
        try:
            return hold_release(hold_id=hold.pk, now=now).status
        except HoldReleaseInProgress:
            return "in_progress"

    outcomes = run_in_threads(8, click)
    hold.refresh_from_db()
    assert hold.status == Status.RELEASED
    assert Status.RELEASED in outcomes
    assert slow_gateway[hold.authorization_id] == 1
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_no_row_lock_held_during_gateway_call(now, blocking_gateway):
    hold = HoldFactory(placed_at=now - timedelta(hours=1))
    runner = threading.Thread(target=lambda: (holds_release_due(now=now), connection.close()))
    runner.start()
    try:
        assert blocking_gateway.entered.wait(timeout=10)
        # The release is inside the gateway call right now; the row must not be locked.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM payments_verificationhold WHERE id = %s FOR UPDATE NOWAIT", [hold.pk]
            )
            assert cursor.fetchone() == (hold.pk,)
        # Meanwhile the admin's "release now" is refused politely: the run holds the lease.
        with pytest.raises(HoldReleaseInProgress):
            hold_release(hold_id=hold.pk, now=now + timedelta(minutes=1))
        assert blocking_gateway.calls[hold.authorization_id] == 1
    finally:
        blocking_gateway.proceed.set()
        runner.join(timeout=10)
    hold.refresh_from_db()
    assert hold.status == Status.RELEASED
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_race_run_after_lease_expiry_and_slow_run_void_once(now, blocking_gateway):
    """A run stuck in the gateway past its lease, and a later run taking the hold over: the
    saved void key makes the processor void once, and the hold changes state once."""
    hold = HoldFactory(placed_at=now - timedelta(hours=1))
    slow = threading.Thread(target=lambda: (holds_release_due(now=now), connection.close()))
    slow.start()
    try:
        assert blocking_gateway.entered.wait(timeout=10)
        later = threading.Thread(
            target=lambda: (holds_release_due(now=now + DEFAULT_LEASE + timedelta(seconds=1)), connection.close())
        )
        later.start()
        deadline = time.monotonic() + 10
        while blocking_gateway.calls[hold.authorization_id] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # wait until the later run is inside the gateway call as well
    finally:
        blocking_gateway.proceed.set()
        slow.join(timeout=10)
        later.join(timeout=10)
    hold.refresh_from_db()
    assert hold.status == Status.RELEASED
    assert blocking_gateway.calls[hold.authorization_id] == 2
    assert PROCESSOR.void_calls[hold.authorization_id] == 1
