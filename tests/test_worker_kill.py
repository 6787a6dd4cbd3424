"""A real Celery worker against Redis, killed with SIGKILL in the middle of its work (QUALITY.md
Celery matrix, issue 5 "Faults and races"; SET-4, HOLD-2, I2..I5).

Each test starts ``celery -A billing_backoffice worker`` (prefork, one child) as a subprocess on
its own Redis database and on this test's PostgreSQL database (``transaction=True``: the worker
sees committed rows only), kills the whole worker (main process and child) with SIGKILL at a
known point, restarts it and checks the invariants.

How the message comes back: ``acks_late`` leaves the killed task's message unacknowledged in
Redis, and Redis hands it to a worker again once the visibility timeout (3600 s) has passed. The
tests fast-forward that clock (``Broker.expire_visibility``) rather than wait an hour; the
restarted worker's own restore sweep (run as it starts polling) then redelivers the message.
The jobs are also periodic, so the next beat firing is the other recovery, and the tests send
it too. Hold leases (10 min) are fast-forwarded the same way, in the database.

The last test needs ``CELERY_TASK_RETRY_ON_WORKER_LOST = True`` in the settings and is an
expected failure (strict) until it is there.

Exactly once is checked through the database (one ledger entry per reference, each hold
released, balances) and, for the gateway, through ``FileProcessor``: a processor whose memory
(idempotency keys, voids) is kept on disk, so the restarted worker (another process) talks to
the same processor and every real void is one line in its log.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from payments.models import Bill, LedgerEntry, VerificationHold
from payments.services.ledger import account_balance
from tests.celery_helpers import (
    KILL_TASK_MAX_RETRIES,
    PROCESSOR_DIR_ENV,
    Broker,
    FileProcessor,
    Worker,
    deployed_celery_settings,
    wait_for,
    worker_environment,
)
from tests.helpers.database import current_database_url
from tests.factories import AccountFactory, HoldFactory
from tests.payments.invariants import assert_billing_invariants, credit, make_bill

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal
HOLD_BATCH = 10


@pytest.fixture(scope="module")
def deployed() -> dict:
    """Celery settings as a worker against Redis sees them (acks_late, visibility timeout...)."""
    import os

    figures = deployed_celery_settings(
        database_url=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused")
    )
    # The tests below rely on these: a killed task's message stays in Redis for another worker.
    assert figures["acks_late"] and figures["reject_on_worker_lost"] and figures["prefetch_multiplier"] == 1
    assert figures["visibility_timeout"]
    return figures


@pytest.fixture
def broker():
    broker = Broker()
    if not broker.available():
        pytest.skip(f"Redis is not reachable at {broker.url}: the worker fault tests need a real broker")
    broker.flush()
    yield broker
    broker.flush()
    broker.close()


@pytest.fixture
def processor(tmp_path) -> FileProcessor:
    return FileProcessor(tmp_path / "processor")


@pytest.fixture
def workers(tmp_path, processor):
    """Starts workers on this test's database; every one is stopped at the end."""
    started: list[Worker] = []
    env = worker_environment(
        database_url=current_database_url(),
        CARD_GATEWAY="tests.celery_helpers.FileProcessorCardGateway",
        HOLD_RELEASE_BATCH_SIZE=str(HOLD_BATCH),
        **{PROCESSOR_DIR_ENV: str(processor.root)},
    )

    def start(name: str) -> Worker:
        worker = Worker(env=env, log_path=tmp_path / f"{name}.log", name=name)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def wait_succeeded(worker: Worker, task_id: str, *, timeout: float) -> str:
    """Wait for the task's "succeeded" log line (complete, with its newline); what it returned."""
    # Any run time: the SEC-1 filter turns one whose digits happen to pass Luhn into
    # "[REDACTED PAN]".
    pattern = re.compile(rf"\[{re.escape(task_id)}\] succeeded in [^:\n]*: (.*)\n")

    def returned():
        worker.assert_alive()
        match = pattern.search(worker.log())
        return match and match.group(1).strip()

    try:
        return wait_for(returned, timeout=timeout, what=f"task {task_id} to succeed")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{worker.log()[-3000:]}") from None


def backends_waiting_on(table: str) -> list[int]:
    """Server pids of this database's sessions blocked on a lock in an UPDATE of ``table``."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND wait_event_type = 'Lock' AND query ILIKE %s
            """,
            [f"%UPDATE {table} %"],
        )
        return [row[0] for row in cursor.fetchall()]


def backend_gone(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 0


def hold_ids(**filters) -> set[int]:
    return set(VerificationHold.objects.filter(**filters).values_list("pk", flat=True))


def settled_account_ids() -> set[int]:
    return set(
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT, reference__startswith="settle:")
        .values_list("account_id", flat=True)
    )


# --- settlement ------------------------------------------------------------------------------


def test_worker_kill_mid_settlement_chunk_set_4_i2_i3_i5_redelivered_chunk_pays_each_bill_once(
    broker, workers, deployed
):
    """SET-4 / I2 / I3 / I5: crash after commit (chunk 1) and before commit (chunk 2, killed
    between its ledger INSERT and its bills UPDATE); the redelivered chunk and the next sweep
    pay every bill exactly once and every balance is the sum of its entries."""
    now = timezone.now()
    chunk_size = 20
    accounts = [AccountFactory() for _ in range(2 * chunk_size)]
    for account in accounts:
        credit(account, "100.00", now=now - timedelta(days=1))
        for age, total in ((3, "30.00"), (2, "50.00"), (1, "40.00")):
            make_bill(account, total, issued_at=now - timedelta(days=age))
    first, second = [a.pk for a in accounts[:chunk_size]], [a.pk for a in accounts[chunk_size:]]
    # The test holds one bill of the second chunk: that chunk's worker blocks in its UPDATE of
    # the bills, after its ledger INSERT, inside its transaction: the middle of the chunk.
    held_bill = Bill.objects.filter(account_id=second[-1]).order_by("issued_at").first()

    with psycopg.connect(current_database_url()) as blocker:
        blocker.execute("SELECT id FROM payments_bill WHERE id = %s FOR UPDATE", [held_bill.pk])
        first_task = broker.send("payments.settle_chunk", account_ids=first)
        second_task = broker.send("payments.settle_chunk", account_ids=second)
        worker = workers("settle1")
        assert wait_succeeded(worker, first_task, timeout=30) == str(3 * chunk_size)
        [orphan] = wait_for(lambda: backends_waiting_on("payments_bill"), timeout=30, what="chunk 2 blocked")
        assert settled_account_ids() == set(first)  # chunk 1 committed; chunk 2 not yet

        worker.kill()
        # acks_late: the killed task's message is still in Redis; chunk 1's was acknowledged.
        assert broker.unacked_task_ids() == [second_task]
        blocker.rollback()
    # The dead worker's session ends when it next talks to its client: its transaction rolls back.
    wait_for(lambda: backend_gone(orphan), timeout=15, what="the dead worker's session to end")
    assert settled_account_ids() == set(first)  # crash before commit: nothing of chunk 2 remains

    broker.expire_visibility(deployed["visibility_timeout"])
    worker = workers("settle2")
    assert wait_succeeded(worker, second_task, timeout=45) == str(3 * chunk_size)
    # The next beat firing of the sweep finds nothing left to pay.
    sweep = broker.send("payments.settlement_sweep")
    assert wait_succeeded(worker, sweep, timeout=20) == "0"
    worker.stop()

    assert broker.queued() == 0 and broker.unacked_task_ids() == []
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).count() == 3 * len(accounts)
    for account in accounts:
        bills = list(Bill.objects.filter(account=account).order_by("issued_at").values_list("status", "amount_paid"))
        assert bills == [
            (Bill.Status.PAID, D("30.00")), (Bill.Status.PAID, D("50.00")), (Bill.Status.PARTIALLY_PAID, D("20.00"))
        ]
        assert account_balance(account_id=account.pk, currency="USD") == D("0.00")  # 100 - 30 - 50 - 20
    assert_billing_invariants()


# --- hold release ----------------------------------------------------------------------------


def test_worker_kill_mid_hold_release_batch_hold_2_i4_each_hold_voided_once_with_its_saved_key(
    broker, workers, processor, deployed
):
    """HOLD-2 / I4: killed in the middle of the second batch, after the processor voided a hold
    whose answer never came back. The redelivered run releases the holds nobody leased; once the
    dead run's lease expires, the next run voids its batch again with the same saved keys, which
    the processor answers from memory: every hold released, one real void per authorization."""
    holds = [HoldFactory() for _ in range(2 * HOLD_BATCH + 5)]  # placed an hour ago: all due
    processor.arm_stall(after_real_voids=HOLD_BATCH + 4)

    run = broker.send("payments.release_due_holds")
    worker = workers("holds1")
    wait_for(processor.stalled, timeout=30, what="the worker inside the second batch")
    released = dict(
        VerificationHold.objects.filter(status=VerificationHold.Status.RELEASED).values_list("pk", "released_at")
    )
    leased = hold_ids(lease_token__isnull=False)
    assert (len(released), len(leased)) == (HOLD_BATCH, HOLD_BATCH)  # batch 1 committed, batch 2 leased
    voided_before_kill = {auth for auth, _, _ in processor.real_voids()}
    assert len(voided_before_kill) == HOLD_BATCH + 4

    worker.kill()
    assert broker.unacked_task_ids() == [run]

    broker.expire_visibility(deployed["visibility_timeout"])
    worker = workers("holds2")
    # The redelivered run takes the holds nobody leased; the dead run's batch waits for its lease.
    assert wait_succeeded(worker, run, timeout=45) == "5"
    assert VerificationHold.objects.filter(status=VerificationHold.Status.RELEASED).count() == HOLD_BATCH + 5
    assert hold_ids() - hold_ids(status=VerificationHold.Status.RELEASED) == leased

    # Ten minutes later (fast-forwarded): the lease has expired; the next beat firing runs.
    VerificationHold.objects.filter(pk__in=leased).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    next_run = broker.send("payments.release_due_holds")
    assert wait_succeeded(worker, next_run, timeout=20) == str(HOLD_BATCH)
    worker.stop()

    assert broker.queued() == 0 and broker.unacked_task_ids() == []
    assert not VerificationHold.objects.exclude(status=VerificationHold.Status.RELEASED).exists()
    assert not VerificationHold.objects.filter(lease_token__isnull=False).exists()
    keys = {hold.authorization_id: hold.void_idempotency_key for hold in holds}
    real = processor.real_voids()
    # I4: one real void per authorization, across both worker processes, each with the hold's key.
    assert sorted(auth for auth, _, _ in real) == sorted(keys)
    assert all(key == keys[auth] for auth, key, _ in real)
    # The voids the dead run had made (its second batch) were replayed with the same saved keys.
    redone = {h.authorization_id for h in holds if h.pk in leased} & voided_before_kill
    assert len(redone) == 4
    assert {(auth, key) for auth, key, _ in processor.replays()} == {(auth, keys[auth]) for auth in redone}
    assert processor.stalled_pid() not in {pid for _, _, pid in processor.replays()}  # by another process
    # I4: the holds released before the kill were resolved once; nothing touched them again.
    assert dict(VerificationHold.objects.filter(pk__in=released).values_list("pk", "released_at")) == released


# --- poison messages -------------------------------------------------------------------------


def test_worker_poison_messages_fail_once_visibly_and_are_not_redelivered(broker, workers):
    """Celery matrix: a message the code cannot run (arguments of an older version) and one for
    a task nobody registers each end in one ERROR line and leave the broker; the worker goes on."""
    bad_arguments = broker.send("payments.execute_charge", charge=12)  # renamed to charge_id since
    # A producer bug put a card number into a message (SEC-1): the worker must not log it.
    unknown = broker.send("payments.renamed_long_ago", account_id=7, number="4242424242424242")
    sentinel = broker.send("payments.mark_overdue_bills")
    worker = workers("poison")
    wait_succeeded(worker, sentinel, timeout=30)
    time.sleep(1.5)  # long enough for a requeued message to come round again

    log = worker.log()
    assert log.count(f"payments.execute_charge[{bad_arguments}] received") == 1
    failed_line = f"TASK_FAILED task=payments.execute_charge id={bad_arguments} args={{'charge': 12}} error=TypeError"
    assert log.count(failed_line) == 1
    assert log.count(f"TASK_REJECTED task=payments.renamed_long_ago id={unknown}") == 1
    assert "4242424242424242" not in log
    assert broker.queued() == 0 and broker.unacked_task_ids() == []


def test_worker_poison_message_that_kills_its_worker_process_is_retried_boundedly_then_fails(
    broker, workers, deployed, tmp_path, request
):
    """Celery matrix: a message whose task kills the worker process (out of memory, a crash) is
    run 1 + max_retries times, then ends FAILED in one ERROR line, instead of being requeued
    for ever by ``reject_on_worker_lost``."""
    assert deployed["retry_on_worker_lost"], "CELERY_TASK_RETRY_ON_WORKER_LOST must be on"
    runs_file = tmp_path / "runs"
    task = broker.send("tests.kill_own_worker_process", runs_file=str(runs_file))
    worker = workers("killer")
    allowed = KILL_TASK_MAX_RETRIES + 1

    def outcome() -> str | None:
        runs = len(runs_file.read_text().splitlines()) if runs_file.exists() else 0
        if runs > allowed:
            return "looping"
        if f"TASK_FAILED task=tests.kill_own_worker_process id={task}" in worker.log():
            return "failed"
        return None

    result = wait_for(outcome, timeout=45, what="the poison message to fail or loop")
    assert result == "failed", f"the message ran more than {allowed} times"
    # Acknowledged: it leaves the broker and never runs again.
    wait_for(lambda: broker.queued() == 0 and not broker.unacked_task_ids(), timeout=10, what="an empty broker")
    time.sleep(1)
    worker.kill()
    assert len(runs_file.read_text().splitlines()) == allowed
