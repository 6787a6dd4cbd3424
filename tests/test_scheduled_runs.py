"""One run per window for the scheduled fan-out jobs (QUALITY.md Celery matrix: "two beat firings
in one window -> one run"; PAY-3 month end, SET-4 settlement sweep).

``billing_backoffice/scheduled_runs.py`` claims a (job, window) row before a job runs: a second
firing in the window is skipped and sends nothing; the same message delivered again (its worker
died, acks late) runs again; a run whose lease expired unfinished is taken over by a later
firing; the next window runs again. The work underneath stays idempotent, so whatever runs
twice still bills once and moves money once.

Tasks are delivered with ``task.apply(..., task_id=...)`` (the worker's code path, a message id
of our choosing, no broker), as in test_celery_faults.py. The tasks' clock is pinned (the
``clock`` fixture) so that a test never straddles a window boundary.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from celery.app.task import Task
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from billing_backoffice.models import ScheduledRun
from billing_backoffice.scheduled_runs import RUN_LEASE, beat_window, window_claim, window_finish
from payments.tasks import billing as billing_tasks, charging as charging_tasks, settlement as settlement_tasks
from payments.gateways.simulated import PROCESSOR
from payments.models import Bill, Charge, LedgerEntry
from payments.services.billing import InvalidPeriod
from payments.services.ledger import account_balance
from tests.concurrency import run_at_once, run_in_threads
from tests.factories import AccountFactory, UserFactory
from tests.payments.invariants import assert_billing_invariants, credit, make_bill
from tests.helpers.charging import card_account, report_usage

D = Decimal
SWEEP, BILLS, DEDUCTION = "payments.settlement_sweep", "payments.generate_monthly_bills", "payments.month_end_deduction"
CHUNK, SETTLE_CHUNK, EXECUTE = (
    "payments.generate_monthly_bills_chunk", "payments.settle_chunk", "payments.execute_charge",
)


class WorkerDied(Exception):
    """Stands for the worker's death at this point (SIGKILL, OOM): the message is not acked."""


class Sent(list):
    """Messages that would have reached the broker, as (task name, kwargs); thread-safe.
    ``die_at``: the nth message (1-based, counted from now) kills the worker before it is sent."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.die_at: int | None = None

    def of(self, name: str) -> list[dict]:
        return [kwargs for task, kwargs in self if task == name]


@pytest.fixture
def sent(monkeypatch) -> Sent:
    messages = Sent()

    def record(task, args=None, kwargs=None, **options):
        with messages.lock:
            if messages.die_at is not None:
                messages.die_at -= 1
                if messages.die_at == 0:
                    messages.die_at = None
                    raise WorkerDied(task.name)
            messages.append((task.name, dict(kwargs or {})))

    monkeypatch.setattr(Task, "apply_async", record)
    return messages


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock(monkeypatch, now) -> Clock:
    """The tasks' clock: 12:02 UTC, inside the sweep's 12:00 window (15 min) and the monthly
    jobs' 12:00 window (1 hour), for the billing period 2026-10."""
    pinned = Clock(now + timedelta(minutes=2))
    fake = SimpleNamespace(now=lambda: pinned.now)
    for module in (billing_tasks, charging_tasks, settlement_tasks):
        monkeypatch.setattr(module, "timezone", fake)
    return pinned


def deliver(task: Task, task_id: str, **kwargs):
    """One delivery of a message to a worker. Fails the test on any error but a ``WorkerDied``."""
    result = task.apply(kwargs=kwargs, task_id=task_id)
    if result.failed() and not isinstance(result.result, WorkerDied):
        raise AssertionError(result.traceback)
    return result


def dies(name: str):
    def dying(**kwargs):
        raise WorkerDied(name)

    return dying


def runs(job: str) -> list[tuple]:
    return list(
        ScheduledRun.objects.filter(job=job).order_by("pk").values_list("window", "task_id", "status", "attempts")
    )


# --- the window ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_beat_window_is_the_firing_time_floored_to_the_beat_interval(now):
    """The defaults of BILLING_BEAT_SCHEDULE: the sweep every 15 minutes, the monthly jobs hourly."""
    at = now.replace(hour=12, minute=29, second=59)
    assert beat_window(task_name=SWEEP, now=at) == "2026-11-26T12:15:00Z"
    assert beat_window(task_name=SWEEP, now=at + timedelta(seconds=1)) == "2026-11-26T12:30:00Z"
    assert beat_window(task_name=BILLS, now=at) == "2026-11-26T12:00:00Z"
    assert beat_window(task_name=DEDUCTION, now=at.replace(minute=59)) == "2026-11-26T12:00:00Z"


@pytest.mark.django_db
def test_beat_window_follows_the_interval_an_operator_set_in_the_admin(now):
    """django-celery-beat's table is what beat fires from: a sweep every 5 minutes gets 5-minute
    windows (each of its firings runs); a disabled entry does not count."""
    PeriodicTask.objects.create(
        name="settlement-sweep", task=SWEEP,
        interval=IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES),
    )
    PeriodicTask.objects.create(
        name="old sweep", task=SWEEP, enabled=False,
        interval=IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES),
    )
    assert beat_window(task_name=SWEEP, now=now.replace(minute=7)) == "2026-11-26T12:05:00Z"


def test_run_lease_outlives_a_live_run_and_expires_within_an_hourly_window():
    """A live run always owns its window (Celery kills a run at the task time limit), and a dead
    one is taken over within the hour of a monthly job's window."""
    assert timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) < RUN_LEASE < timedelta(hours=1)


# --- claiming, the service -------------------------------------------------------------------------


@pytest.mark.django_db
def test_claim_one_run_per_window_redelivery_takeover_and_finish(now):
    claim = lambda task_id, at: window_claim(job="job", window="w1", task_id=task_id, now=at)  # noqa: E731

    first = claim("msg-a", now)
    assert (first.task_id, first.status, first.attempts, first.lease_until) == ("msg-a", "running", 1, now + RUN_LEASE)
    assert claim("msg-b", now + timedelta(minutes=1)) is None  # another firing, run live: skipped
    again = claim("msg-a", now + timedelta(minutes=2))  # the same message redelivered: proceeds
    assert (again.pk, again.attempts, again.lease_until) == (first.pk, 2, now + timedelta(minutes=2) + RUN_LEASE)
    assert claim("msg-b", now + timedelta(minutes=11)) is None  # the renewed lease still holds

    expired = now + timedelta(minutes=2) + RUN_LEASE
    taken = claim("msg-b", expired)  # lease expired unfinished: taken over
    assert (taken.pk, taken.task_id, taken.attempts, taken.started_at) == (first.pk, "msg-b", 3, expired)
    assert window_finish(run=again, now=expired) is False  # the dead owner no longer owns it
    assert window_finish(run=taken, now=expired) is True

    for task_id in ("msg-a", "msg-b", "msg-c"):  # finished: nobody runs it again, not even its owner
        assert claim(task_id, expired + timedelta(hours=2)) is None
    assert window_claim(job="job", window="w2", task_id="msg-c", now=now) is not None  # a new window
    assert window_claim(job="other", window="w1", task_id="msg-c", now=now) is not None  # another job
    assert ScheduledRun.objects.get(job="job", window="w1").status == ScheduledRun.Status.FINISHED


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_eight_firings_claim_one_window_at_once_one_proceeds(now):
    claims = run_in_threads(8, lambda i: window_claim(job="job", window="w", task_id=f"msg-{i}", now=now))
    assert len([claim for claim in claims if claim is not None]) == 1
    assert ScheduledRun.objects.count() == 1


# --- the settlement sweep (SET-4) ------------------------------------------------------------------


def due_accounts(count: int, now: datetime) -> list:
    """Accounts with two unpaid bills and 15.00 to pay them with (one and a half bills)."""
    accounts = [AccountFactory() for _ in range(count)]
    for account in accounts:
        make_bill(account, "10.00", issued_at=now - timedelta(days=2))
        make_bill(account, "10.00", issued_at=now - timedelta(days=1))
        credit(account, "15.00", now=now - timedelta(days=1))
    return accounts


def assert_each_account_paid_once(accounts) -> None:
    """SET-4 / I5: the older bill paid, 5.00 on the newer one, the balance at zero."""
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).count() == 2 * len(accounts)
    for account in accounts:
        assert account_balance(account_id=account.pk, currency="USD") == D("0.00")
    assert_billing_invariants()


@pytest.mark.django_db
def test_set_4_two_beat_firings_in_one_window_sweep_once(clock, sent, django_capture_on_commit_callbacks):
    """SET-4: the second firing in the window is skipped: it sends no chunk. The chunks, run
    twice anyway (a redelivery), still pay each bill once."""
    accounts = due_accounts(3, clock.now)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(settlement_tasks.settlement_sweep, "beat-1").result == 1
    clock.advance(timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(settlement_tasks.settlement_sweep, "beat-2").result == 0
    assert sent.of(SETTLE_CHUNK) == [{"account_ids": [a.pk for a in accounts]}]
    assert runs(SWEEP) == [("2026-11-26T12:00:00Z", "beat-1", "finished", 1)]

    (chunk,) = sent.of(SETTLE_CHUNK)
    assert [settlement_tasks.settle_chunk(**chunk) for _ in range(2)] == [6, 0]
    assert_each_account_paid_once(accounts)


@pytest.mark.django_db
def test_set_4_next_window_sweeps_again(clock, sent, django_capture_on_commit_callbacks):
    """SET-2: nothing settled the accounts in the 12:00 window (its chunk was lost): the 12:15
    firing sends the chunk again."""
    accounts = due_accounts(2, clock.now)
    with django_capture_on_commit_callbacks(execute=True):
        deliver(settlement_tasks.settlement_sweep, "beat-1")
        clock.advance(timedelta(minutes=15))
        assert deliver(settlement_tasks.settlement_sweep, "beat-2").result == 1
    assert sent.of(SETTLE_CHUNK) == [{"account_ids": [a.pk for a in accounts]}] * 2
    assert [w for w, *_ in runs(SWEEP)] == ["2026-11-26T12:00:00Z", "2026-11-26T12:15:00Z"]


@pytest.mark.django_db
def test_set_4_sweep_killed_before_it_finished_is_rerun_by_its_redelivered_message(
    clock, sent, django_capture_on_commit_callbacks, monkeypatch
):
    """SET-4: the worker died after sending the chunk, before the run was marked finished. Its
    message comes back (same task id) and sweeps again; another firing meanwhile is skipped. The
    chunk sent twice pays each bill once."""
    accounts = due_accounts(2, clock.now)
    finish = settlement_tasks.window_finish
    monkeypatch.setattr(settlement_tasks, "window_finish", dies("before marking the run finished"))
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(settlement_tasks.settlement_sweep, "beat-1").failed()
    monkeypatch.setattr(settlement_tasks, "window_finish", finish)
    assert runs(SWEEP) == [("2026-11-26T12:00:00Z", "beat-1", "running", 1)]

    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(settlement_tasks.settlement_sweep, "beat-2").result == 0  # live run: skipped
        assert deliver(settlement_tasks.settlement_sweep, "beat-1").result == 1  # the redelivery
        assert deliver(settlement_tasks.settlement_sweep, "beat-1").result == 0  # finished: once
    assert runs(SWEEP) == [("2026-11-26T12:00:00Z", "beat-1", "finished", 2)]

    chunks = sent.of(SETTLE_CHUNK)
    assert len(chunks) == 2
    assert [settlement_tasks.settle_chunk(**chunk) for chunk in chunks] == [4, 0]
    assert_each_account_paid_once(accounts)


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_set_4_four_beat_firings_of_the_sweep_at_once_send_the_chunks_once(sent, clock):
    """SET-4: four firings in one window at once, each on its own connection: one sweeps."""
    accounts = due_accounts(4, clock.now)
    results = run_at_once(
        [lambda i=i: settlement_tasks.settlement_sweep.apply(task_id=f"beat-{i}").get() for i in range(4)]
    )
    assert sorted(results) == [0, 0, 0, 1]
    assert sent.of(SETTLE_CHUNK) == [{"account_ids": [a.pk for a in accounts]}]
    assert len(runs(SWEEP)) == 1
    (chunk,) = sent.of(SETTLE_CHUNK)
    assert settlement_tasks.settle_chunk(**chunk) == 8
    assert_each_account_paid_once(accounts)


# --- month end (PAY-3) ------------------------------------------------------------------------------

PERIOD = "2026-10"


def accounts_with_usage(count: int, now: datetime) -> list:
    accounts = []
    for index in range(count):
        account, _ = card_account()
        report_usage(account, "12.00", reference=f"u-{index}", now=now - timedelta(days=30), period=PERIOD)
        accounts.append(account)
    return accounts


def run_chunks(sent: Sent) -> int:
    """What the workers would do with the chunk messages sent so far (each of them, once)."""
    created = sum(billing_tasks.generate_monthly_bills_chunk(**kwargs) for kwargs in sent.of(CHUNK))
    sent.clear()
    return created


@pytest.mark.django_db
def test_pay_3_two_beat_firings_in_one_window_generate_the_chunks_once(clock, sent, settings):
    """PAY-3: the window is the billing period and the hour: the second firing sends no chunk."""
    settings.BILLING_MONTHLY_CHUNK_SIZE = 2
    accounts = accounts_with_usage(5, clock.now)
    assert deliver(billing_tasks.generate_monthly_bills, "beat-1").result == 3
    clock.advance(timedelta(minutes=30))
    assert deliver(billing_tasks.generate_monthly_bills, "beat-2").result == 0
    assert len(sent.of(CHUNK)) == 3
    assert runs(BILLS) == [(f"{PERIOD}@2026-11-26T12:00:00Z", "beat-1", "finished", 1)]
    assert run_chunks(sent) == 5
    assert sorted(Bill.objects.values_list("account_id", flat=True)) == [a.pk for a in accounts]


@pytest.mark.django_db
def test_pay_3_month_end_killed_mid_fan_out_is_rerun_by_its_message_bills_each_account_once(
    clock, sent, settings
):
    """PAY-3: killed after sending the first of three chunks; the redelivered message (same task
    id) sends all three again; the chunk that ran twice creates nothing the second time."""
    settings.BILLING_MONTHLY_CHUNK_SIZE = 2
    accounts = accounts_with_usage(5, clock.now)
    sent.die_at = 2
    assert deliver(billing_tasks.generate_monthly_bills, "beat-1").failed()
    assert len(sent.of(CHUNK)) == 1
    assert deliver(billing_tasks.generate_monthly_bills, "beat-1").result == 3
    assert runs(BILLS) == [(f"{PERIOD}@2026-11-26T12:00:00Z", "beat-1", "finished", 2)]

    assert run_chunks(sent) == 5  # four chunk messages: the first one twice
    assert Bill.objects.count() == 5
    assert sorted(Bill.objects.values_list("account_id", flat=True)) == [a.pk for a in accounts]


@pytest.mark.django_db
def test_pay_3_month_end_whose_worker_died_for_good_is_taken_over_after_its_lease(clock, sent):
    """PAY-3: the run died and its message was lost. Within the lease another firing is skipped;
    once the lease expired, a firing in the same window takes the run over and finishes it."""
    accounts_with_usage(2, clock.now)
    sent.die_at = 1
    assert deliver(billing_tasks.generate_monthly_bills, "beat-1").failed()
    clock.advance(RUN_LEASE - timedelta(seconds=1))
    assert deliver(billing_tasks.generate_monthly_bills, "beat-2").result == 0
    clock.advance(timedelta(seconds=1))  # 12:12: still the 12:00 window
    assert deliver(billing_tasks.generate_monthly_bills, "beat-3").result == 1
    assert runs(BILLS) == [(f"{PERIOD}@2026-11-26T12:00:00Z", "beat-3", "finished", 2)]
    assert run_chunks(sent) == 2


@pytest.mark.django_db
def test_pay_3_deduction_runs_once_per_hour_and_charges_each_bill_once(
    clock, sent, django_capture_on_commit_callbacks
):
    """PAY-3: beat fires the bills and the deduction in the same hour; the deduction finds no bill
    yet (the chunks have not run). A second firing that hour is skipped; the next hour's run
    charges the bills, once: the window is the hour, not the period alone."""
    accounts = accounts_with_usage(2, clock.now)
    deliver(billing_tasks.generate_monthly_bills, "bills-1")
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(charging_tasks.month_end_deduction, "deduct-1").result == 0
        assert run_chunks(sent) == 2
        clock.advance(timedelta(minutes=20))
        assert deliver(charging_tasks.month_end_deduction, "deduct-2").result == 0  # same hour: skipped
        clock.advance(timedelta(hours=1))
        assert deliver(charging_tasks.month_end_deduction, "deduct-3").result == 2
        assert deliver(charging_tasks.month_end_deduction, "deduct-3").result == 0  # duplicate delivery
        clock.advance(timedelta(hours=1))
        assert deliver(charging_tasks.month_end_deduction, "deduct-4").result == 0  # nothing left to charge
    assert [(w, t) for w, t, *_ in runs(DEDUCTION)] == [
        (f"{PERIOD}@2026-11-26T12:00:00Z", "deduct-1"),
        (f"{PERIOD}@2026-11-26T13:00:00Z", "deduct-3"),
        (f"{PERIOD}@2026-11-26T14:00:00Z", "deduct-4"),
    ]

    executions = sent.of(EXECUTE)
    assert len(executions) == 2
    for kwargs in executions * 2:  # each execute_charge message delivered twice
        charging_tasks.execute_charge(**kwargs)
    assert sorted(Charge.objects.values_list("account_id", "status")) == [
        (a.pk, Charge.Status.SUCCEEDED) for a in accounts
    ]
    assert len(PROCESSOR.charges) == 2  # money moved once per bill
    assert set(Bill.objects.values_list("status", flat=True)) == {Bill.Status.PAID}
    assert_billing_invariants()


@pytest.mark.django_db
def test_pay_3_an_operators_run_with_a_period_runs_once_per_message(clock, sent):
    """PAY-3: an explicit period is an operator's request: it runs even after beat's run in the
    same hour, its own message delivered twice runs once, and a bad period is refused (PAY-3)
    before any run is recorded."""
    accounts_with_usage(1, clock.now)
    assert deliver(billing_tasks.generate_monthly_bills, "beat-1").result == 1
    assert deliver(billing_tasks.generate_monthly_bills, "op-1", period=PERIOD).result == 1
    assert deliver(billing_tasks.generate_monthly_bills, "op-1", period=PERIOD).result == 0
    assert [w for w, *_ in runs(BILLS)] == [f"{PERIOD}@2026-11-26T12:00:00Z", f"{PERIOD}@manual:op-1"]

    refused = billing_tasks.generate_monthly_bills.apply(kwargs={"period": "2026-13"}, task_id="op-2")
    assert isinstance(refused.result, InvalidPeriod) and refused.result.rule == "PAY-3"
    assert len(runs(BILLS)) == 2
    assert run_chunks(sent) == 1  # the same chunk twice: one bill
    assert Bill.objects.count() == 1


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_pay_3_two_beat_firings_of_the_month_end_at_once_send_the_chunks_once(sent, clock):
    """PAY-3: two firings of the bill generation at once: one sends the chunks, the other none."""
    accounts = accounts_with_usage(3, clock.now)
    results = run_at_once(
        [lambda i=i: billing_tasks.generate_monthly_bills.apply(task_id=f"beat-{i}").get() for i in range(2)]
    )
    assert sorted(results) == [0, 1]
    assert run_chunks(sent) == 3
    assert sorted(Bill.objects.values_list("account_id", flat=True)) == [a.pk for a in accounts]
    assert len(runs(BILLS)) == 1


# --- the admin -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_operators_see_the_runs_read_only_with_dead_runs_marked(client, now):
    """Superusers see each window's run; one left unfinished past its lease reads "lease
    expired". Nobody adds, edits or deletes runs (the role matrix covers the staff groups)."""
    from django.urls import reverse

    from tests.factories import UserFactory

    live = window_claim(job=SWEEP, window="2026-11-26T12:00:00Z", task_id="beat-1", now=timezone.now())
    window_claim(job=SWEEP, window="2026-11-26T11:45:00Z", task_id="beat-0", now=now - timedelta(days=1))
    window_finish(run=live, now=timezone.now())
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))

    page = client.get(reverse("admin:billing_backoffice_scheduledrun_changelist")).content.decode()
    assert "beat-1" in page and "finished" in page
    assert "beat-0" in page and "lease expired" in page
    assert client.get(reverse("admin:billing_backoffice_scheduledrun_add")).status_code == 403
    change = client.post(reverse("admin:billing_backoffice_scheduledrun_change", args=[live.pk]), {"status": "running"})
    assert change.status_code == 403
    assert ScheduledRun.objects.get(pk=live.pk).status == ScheduledRun.Status.FINISHED


@pytest.mark.django_db
def test_sec_3_finance_staff_see_scheduled_runs_read_only_and_managers_do_not(client):
    """Finance reconciles the month end, so it sees whether each run happened; nobody edits runs."""
    from django.contrib.auth.models import Group
    from django.urls import reverse

    run = ScheduledRun.objects.create(
        job="payments.settlement_sweep", window="2026-11-26T12:15:00Z", task_id="t-1",
        status=ScheduledRun.Status.FINISHED, started_at=timezone.now(), finished_at=timezone.now(),
        lease_until=timezone.now(),
    )
    changelist = reverse("admin:billing_backoffice_scheduledrun_changelist")
    for group, visible in (("Finance staff", True), ("Account managers", False)):
        user = UserFactory(username=f"runs-{group.split()[0].lower()}")
        user.groups.add(Group.objects.get(name=group))
        client.force_login(user)
        response = client.get(changelist)
        assert response.status_code == (200 if visible else 403), group
        if visible:
            assert run.window.encode() in response.content
            change = client.post(reverse("admin:billing_backoffice_scheduledrun_change", args=[run.pk]), {"status": "running"})
            assert change.status_code == 403
    run.refresh_from_db()
    assert run.status == ScheduledRun.Status.FINISHED


@pytest.mark.django_db
def test_prune_deletes_only_finished_runs_past_their_retention():
    """Old finished runs go; recent ones and runs that never finished (a dead worker) stay."""
    from billing_backoffice.scheduled_runs import RUN_RETENTION, scheduled_runs_prune
    from billing_backoffice.tasks import prune_scheduled_runs

    now = timezone.now()

    def run(window: str, *, finished_days_ago: int | None):
        finished = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
        return ScheduledRun.objects.create(
            job="payments.settlement_sweep", window=window, task_id=f"t-{window}",
            status=ScheduledRun.Status.RUNNING if finished is None else ScheduledRun.Status.FINISHED,
            started_at=finished or now - timedelta(days=200), finished_at=finished, lease_until=now,
        )

    old = run("old", finished_days_ago=RUN_RETENTION.days + 1)
    recent = run("recent", finished_days_ago=RUN_RETENTION.days - 1)
    dead = run("dead", finished_days_ago=None)

    assert scheduled_runs_prune(now=now) == 1
    assert set(ScheduledRun.objects.values_list("pk", flat=True)) == {recent.pk, dead.pk}
    assert not ScheduledRun.objects.filter(pk=old.pk).exists()
    assert prune_scheduled_runs.run() == 0  # the task calls the same service; nothing left to do
