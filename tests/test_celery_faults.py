"""The Celery matrix of QUALITY.md (issue 5, "Faults and races"), the cases the per-app task tests
do not already cover:

- duplicate delivery: every task of the project, delivered twice as the same message (same
  task id), changes nothing anywhere the second time (a whole-database snapshot and the
  processor's own records), and a new task cannot be added without a case here;
- crash after the gateway answered and before the outcome committed (card charge, PayPal
  pre-authorization) and in the middle of a month-end chunk: the redelivered task moves money once;
- nothing enqueued from a rolled-back transaction, and a source check that every enqueue outside
  a task body waits for the commit;
- retries bounded, and each message's delay plus run time shorter than the broker's visibility
  timeout as deployed; a transient error runs 1 + max_retries times, then fails;
- a gateway timeout retried with the same saved key (PayPal pre-authorization);
- two beat firings in one window, at once, give one run (failed-charge retries, thresholds);
- a poison message runs once, is not retried, and ends in one ERROR line with ids only.

Tasks are delivered with ``task.apply(...)``: the worker's code path (signals, autoretry, the
audit context) without a broker. The real worker, Redis and SIGKILL are in test_worker_kill.py.
"""

from __future__ import annotations

import ast
import logging
import os
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from celery.app.task import Task
from celery.signals import task_prerun
from django.db import OperationalError, transaction
from django.utils import timezone

from billing_backoffice.celery import app as celery_app
from billing_backoffice.celery_failures import safe_arguments
from billing_backoffice import task_retries
from payments.tasks import billing as billing_tasks, charging as charging_tasks, holds as hold_tasks
from payments.gateways.simulated import PROCESSOR
from payments.models import CreditHold, Notification, Reminder
from payments.services.notifications import notify
from payments.models import (
    Account,
    Bill,
    Charge,
    LedgerEntry,
    LinkAttempt,
    PaymentMethod,
    ThreeDSChallenge,
    UsageRecord,
    VerificationHold,
)
from payments.services import billing, charge_execution, scheduled_charging
from payments.services.billing import AccountChunk, monthly_bills_generate_chunk
from payments.services.scheduled_charging import charges_retry_failed
from remittances.models import BankStatement, BankTransaction, ReconciliationDay, RefundRequest, RemittanceAccount
from tests.celery_helpers import LostAnswerPayPalGateway, deployed_celery_settings
from tests.concurrency import run_in_threads
from tests.factories import AccountFactory, CardMethodFactory, ChallengeFactory, HoldFactory
from tests.payments.invariants import assert_billing_invariants, credit, make_bill
from tests.helpers.charging import card_account, paypal_account, place, report_usage
from tests.remittances.samples import build
from tests.helpers.statements import make_receiving_account

D = Decimal
ROOT = Path(__file__).resolve().parent.parent
PROJECT_TASK_PREFIXES = ("payments.", "remittances.")


def project_tasks() -> dict[str, Task]:
    """Every task a worker registers for the project (autodiscovered modules and CELERY_IMPORTS)."""
    celery_app.loader.import_default_modules()
    return {name: task for name, task in celery_app.tasks.items() if name.startswith(PROJECT_TASK_PREFIXES)}


class Enqueued(list):
    """Messages that would have reached the broker, as (task name, kwargs)."""


@pytest.fixture
def enqueued(monkeypatch) -> Enqueued:
    """Every ``delay``/``apply_async`` (and so ``delay_on_commit`` once it fires) is recorded here
    instead of being sent; thread-safe for the race tests."""
    calls, lock = Enqueued(), threading.Lock()

    def record(self, args=None, kwargs=None, **options):
        with lock:
            calls.append((self.name, dict(kwargs or {})))

    monkeypatch.setattr(Task, "apply_async", record)
    return calls


@pytest.fixture
def failures(caplog):
    """The ERROR lines of ``billing_backoffice.celery_failures`` (logger ``billing.tasks``)."""
    caplog.set_level(logging.INFO)

    def records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "billing.tasks"]

    return records


@pytest.fixture
def runs():
    """How many times each task id started (``task_prerun``), i.e. how often a message ran."""
    started: list[str] = []

    def count(sender=None, task_id=None, **_):
        started.append(task_id)

    task_prerun.connect(count, weak=False)
    yield started
    task_prerun.disconnect(count)


def deliver(task: Task, *, task_id: str, **kwargs):
    """One delivery of a message to a worker, with the on-commit callbacks of its transactions."""
    return task.apply(kwargs=kwargs, task_id=task_id)


# --- duplicate delivery: every task, the whole database ----------------------------------------


def world_state() -> dict:
    """Everything a task could change, and what the sandbox processor really did."""
    return {
        "ledger": sorted(LedgerEntry.objects.values_list("account_id", "kind", "reference", "amount")),
        "bills": sorted(Bill.objects.values_list("id", "status", "amount_paid", "paid_at")),
        "charges": sorted(Charge.objects.values_list("id", "status", "attempts", "idempotency_key", "failure_reason")),
        "holds": sorted(VerificationHold.objects.values_list("id", "status", "released_at", "release_attempts")),
        "usage": sorted(UsageRecord.objects.values_list("id", "status", "bill_id", "charge_id")),
        "methods": sorted(PaymentMethod.objects.values_list("id", "status", "is_default")),
        "accounts": sorted(Account.objects.values_list("id", "status", "has_outstanding_bills")),
        "challenges": sorted(ThreeDSChallenge.objects.values_list("id", "status")),
        "link_attempts": LinkAttempt.objects.count(),
        "bank": sorted(BankTransaction.objects.values_list("id", "status")),
        "statements": BankStatement.objects.count(),
        # Credit control and the outbox (CC-1, CC-2, NOTIFY-2).
        "reminders": sorted(Reminder.objects.values_list("bill_id", "level")),
        "credit_holds": sorted(CreditHold.objects.values_list("account_id", "lifted_at")),
        "notifications": sorted(Notification.objects.values_list("event_key", "channel", "status", "attempts")),
        # The daily reconciliation proof (RCN-1..3).
        "reconciliation": sorted(ReconciliationDay.objects.values_list("receiving_account_id", "day", "verdict")),
        # Outgoing payment files of approved refunds (RFD-1).
        "refunds": sorted(RefundRequest.objects.values_list("id", "status", "payment_file_id")),
        "processor": (len(PROCESSOR.charges), sum(PROCESSOR.void_calls.values()), len(PROCESSOR.results)),
    }


@pytest.fixture
def world(settings, tmp_path) -> dict:
    """One of everything each task works on, built an hour ago (the tasks read the real clock)."""
    now = timezone.now()
    earlier = now - timedelta(hours=1)
    ids: dict = {}
    ids["hold"] = HoldFactory().pk  # due an hour after being placed
    CardMethodFactory(exp_month=12, exp_year=now.year - 1)  # expired (DEL-5)
    ChallengeFactory(created_at=earlier)  # abandoned 3DS (LINK-5)
    AccountFactory(status=Account.Status.DEACTIVATED, deactivated_at=now - timedelta(days=16))  # LINK-2
    threshold, _ = card_account()
    report_usage(threshold, "1000.00", reference="threshold-1", now=earlier, period=f"{now:%Y-%m}")
    paypal, _ = paypal_account()
    ids["paypal"] = paypal.pk
    report_usage(paypal, "12.00", reference="paypal-1", now=earlier, period=f"{now:%Y-%m}")
    period = billing_tasks.previous_period(now)
    ids["period"] = period
    to_bill, _ = card_account()
    ids["to_bill"] = to_bill.pk
    report_usage(to_bill, "40.00", reference="month-1", now=earlier, period=period)
    billed, _ = card_account()
    report_usage(billed, "25.00", reference="month-2", now=earlier, period=period)
    monthly_bills_generate_chunk(period=period, now=earlier, chunk=AccountChunk(billed.pk, billed.pk))
    lost_answer, _ = card_account("timeoutonce")
    ids["pending_charge"] = place(lost_answer, "15.00", reference="order-lost", now=earlier).charge.pk
    declined, _ = card_account("chargenofunds")
    place(declined, "20.00", reference="order-declined", now=now - timedelta(days=2))
    settle = [AccountFactory(), AccountFactory()]
    for account in settle:
        credit(account, "100.00", now=earlier)
        make_bill(account, "60.00", issued_at=earlier)
    ids["settle"] = [a.pk for a in settle]
    overdue = AccountFactory()
    make_bill(overdue, "10.00", issued_at=now - timedelta(days=40))  # past due (CRED-3, CC-1)
    ids["overdue"] = overdue.pk
    CardMethodFactory(exp_month=now.month, exp_year=now.year)  # expires this month (NOTIFY-1)
    notify(account_id=overdue.pk, kind="transfer_credited", event_key="dup-email", params={}, now=earlier)
    ids["email"] = Notification.objects.get(event_key="dup-email", channel="email").pk  # its task was lost
    customer = AccountFactory(kind="enterprise")
    make_receiving_account(
        number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=customer, now=earlier
    )
    settings.STATEMENT_INBOX_DIR = tmp_path / "inbox"
    settings.STATEMENT_INBOX_DIR.mkdir()
    entries = [build.Entry("10.00", ref="DUP-1", txs=[build.Tx("10.00", "Payer")])]
    (settings.STATEMENT_INBOX_DIR / "day.xml").write_text(
        build.camt(statement_id="DUP-1", entries=entries, closing=build.STANDARD_OPENING + 10)
    )
    # RFD-1: an approved refund waiting for the next payment file.
    from remittances.services import refunds as refund_services
    from tests.remittances.refund_helpers import credited_txn, finance, requested

    refunded = AccountFactory()
    source = credited_txn(refunded, now=earlier, amount="50.00")
    refund = requested(refunded, source, by=finance(), now=earlier, amount="20.00")
    refund_services.refund_approve(refund_id=refund.pk, actor=finance(), now=earlier)
    # A staff job (issue 10): a statement upload waiting for its import.
    from django.core.files.uploadedfile import SimpleUploadedFile

    from remittances.services.statement_uploads import statement_upload_start
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    upload_entries = [build.Entry("15.00", ref="UPL-1", txs=[build.Tx("15.00", "Payer")])]
    upload = SimpleUploadedFile(
        "upload.xml", build.camt(statement_id="UPL-1", entries=upload_entries, closing=build.STANDARD_OPENING + 15).encode()
    )
    ids["upload_job"] = statement_upload_start(upload=upload, actor=staff, now=earlier).pk
    return ids


# name -> kwargs of its message in the world above. Every project task must be listed.
DUPLICATE_CASES = {
    "payments.release_due_holds": lambda w: {},
    "payments.release_hold": lambda w: {"hold_id": w["hold"]},
    "payments.expire_cards": lambda w: {},
    "payments.fail_abandoned_verifications": lambda w: {},
    "payments.close_silent_accounts": lambda w: {},
    "payments.execute_charge": lambda w: {"charge_id": w["pending_charge"]},
    "payments.place_paypal_preauth": lambda w: {"account_id": w["paypal"]},
    "payments.charge_usage_thresholds": lambda w: {},
    "payments.generate_monthly_bills": lambda w: {"period": w["period"]},
    "payments.generate_monthly_bills_chunk": lambda w: {
        "period": w["period"], "first_account_id": w["to_bill"], "last_account_id": w["to_bill"],
    },
    "payments.month_end_deduction": lambda w: {"period": w["period"]},
    "payments.retry_failed_charges": lambda w: {},
    "payments.settle_account": lambda w: {"account_id": w["settle"][0]},
    "payments.settle_chunk": lambda w: {"account_ids": w["settle"]},
    "payments.settlement_sweep": lambda w: {},
    "payments.mark_overdue_bills": lambda w: {},
    "remittances.import_statement_inbox": lambda w: {},
    "payments.run_reminders": lambda w: {},
    "payments.send_reminders_chunk": lambda w: {"account_ids": [w["overdue"]]},
    "payments.deliver_notifications": lambda w: {"notification_ids": [w["email"]]},
    "payments.sweep_notifications": lambda w: {},
    "payments.notify_expiring_cards": lambda w: {},
    "remittances.reconcile_day": lambda w: {"day": (timezone.now().date() - timedelta(days=1)).isoformat()},
    "remittances.generate_payment_files": lambda w: {},
    "remittances.import_uploaded_statement": lambda w: {"job_id": w["upload_job"]},
}


def test_duplicate_delivery_i2_every_project_task_has_a_case():
    """A task added without a duplicate-delivery case fails here."""
    assert set(project_tasks()) == set(DUPLICATE_CASES)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(DUPLICATE_CASES))
def test_duplicate_delivery_i2_second_delivery_of_the_same_message_changes_nothing(
    name, world, enqueued, django_capture_on_commit_callbacks
):
    task = project_tasks()[name]
    kwargs = DUPLICATE_CASES[name](world)
    message_id = str(uuid.uuid4())
    before = world_state()

    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(task, task_id=message_id, **kwargs)
    assert first.successful(), first.traceback
    after_first = world_state()
    sent_first = list(enqueued)
    # The case is meaningful: the first delivery did the work (or sent the work out).
    assert after_first != before or sent_first, f"{name}: the first delivery did nothing"

    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        second = deliver(task, task_id=message_id, **kwargs)
    assert second.successful(), second.traceback
    assert world_state() == after_first
    # A fan-out task may send its (idempotent) chunks again, never a message the first did not.
    assert all(message in sent_first for message in enqueued)
    assert_billing_invariants()


# --- crash before and after commit --------------------------------------------------------------


class WorkerDied(Exception):
    """Stands for the worker's death at this point: its transaction is rolled back."""


def crash_once(monkeypatch, module, name: str) -> None:
    """The first call of ``module.name`` dies; later calls (the redelivery) run normally."""
    original = getattr(module, name)
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise WorkerDied(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, dying)


@pytest.mark.django_db
def test_crash_after_gateway_charge_before_commit_pay_1_i2_redelivery_charges_and_posts_once(
    monkeypatch, enqueued, django_capture_on_commit_callbacks
):
    """The processor charged; the worker died inside the outcome transaction (ledger posted,
    bill not yet paid). Rolled back whole; the redelivered message charges nothing more."""
    account, method = card_account()
    report_usage(account, "1000.00", reference="u-1", now=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        scheduled_charging.threshold_charges_run(now=timezone.now())
    [(name, kwargs)] = enqueued
    crash_once(monkeypatch, charge_execution, "_bill_pay_from_charge")

    first = deliver(charging_tasks.execute_charge, task_id="charge-msg", **kwargs)
    assert first.failed() and isinstance(first.result, WorkerDied)
    charge = Charge.objects.get(pk=kwargs["charge_id"])
    assert (charge.status, charge.attempts) == (Charge.Status.PENDING, 1)
    assert not LedgerEntry.objects.exists()  # the charge entry was rolled back with the rest
    assert PROCESSOR.charge_count(method.gateway_token) == 1  # the money did move at the processor

    assert deliver(charging_tasks.execute_charge, task_id="charge-msg", **kwargs).result == Charge.Status.SUCCEEDED
    assert PROCESSOR.charge_count(method.gateway_token) == 1  # the saved key found the first charge
    assert sorted(LedgerEntry.objects.values_list("kind", flat=True)) == ["bill_payment", "charge"]
    assert Bill.objects.get().status == Bill.Status.PAID
    assert_billing_invariants()


@pytest.mark.django_db
def test_crash_after_paypal_authorization_before_the_hold_is_recorded_hold_4_i2_one_hold(monkeypatch):
    """HOLD-4: PayPal authorized the pre-authorization, the worker died before the hold row
    committed. The redelivery records the same authorization: one hold, which HOLD-2 releases."""
    account, _ = paypal_account()
    crash_once(monkeypatch, charge_execution, "hold_record")

    first = deliver(charging_tasks.place_paypal_preauth, task_id="preauth-msg", account_id=account.pk)
    assert first.failed() and isinstance(first.result, WorkerDied)
    charge = Charge.objects.get(kind=Charge.Kind.PAYPAL_PREAUTH)
    assert charge.status == Charge.Status.PENDING and not VerificationHold.objects.exists()
    authorized = PROCESSOR.results[charge.idempotency_key][1].authorization_id

    assert deliver(charging_tasks.place_paypal_preauth, task_id="preauth-msg", account_id=account.pk).successful()
    hold = VerificationHold.objects.get()
    assert hold.authorization_id == authorized
    assert Charge.objects.get().status == Charge.Status.SUCCEEDED


@pytest.mark.django_db
def test_crash_mid_month_end_chunk_before_commit_pay_3_i2_redelivery_bills_each_account_once(monkeypatch):
    """The chunk died after inserting its bills and marking the usage billed, before the commit:
    nothing of it remains, and the redelivered chunk bills every account once."""
    now = timezone.now()
    period = billing_tasks.previous_period(now)
    accounts = [card_account()[0] for _ in range(3)]
    for index, account in enumerate(accounts):
        report_usage(account, "30.00", reference=f"m-{index}-a", now=now, period=period)
        report_usage(account, "12.50", reference=f"m-{index}-b", now=now, period=period)
    original = billing._flag_accounts_sql
    calls = []

    def failing_statement() -> str:  # the worker dies before the chunk's third statement, the first time
        calls.append(1)
        if len(calls) == 1:
            # Not a database refusal (that is a poison account, isolated and recorded): a crash.
            raise RuntimeError("worker killed mid-chunk")
        return original()

    monkeypatch.setattr(billing, "_flag_accounts_sql", failing_statement)
    kwargs = {"period": period, "first_account_id": accounts[0].pk, "last_account_id": accounts[-1].pk}

    first = deliver(billing_tasks.generate_monthly_bills_chunk, task_id="chunk-msg", **kwargs)
    assert first.failed()
    assert not Bill.objects.exists()
    assert set(UsageRecord.objects.values_list("status", "bill_id")) == {(UsageRecord.Status.UNBILLED, None)}

    assert deliver(billing_tasks.generate_monthly_bills_chunk, task_id="chunk-msg", **kwargs).result == 3
    for account in accounts:
        bill = Bill.objects.get(account=account)
        assert bill.total == D("42.50")
        assert set(UsageRecord.objects.filter(account=account).values_list("status", "bill_id")) == {
            (UsageRecord.Status.BILLED, bill.pk)
        }
        assert Account.objects.get(pk=account.pk).has_outstanding_bills


# --- nothing enqueued from a rolled-back transaction --------------------------------------------


@pytest.mark.django_db
def test_rolled_back_usage_report_enqueues_no_preauthorization_hold_4(enqueued, django_capture_on_commit_callbacks):
    account, _ = paypal_account()

    class RequestFailed(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RequestFailed), transaction.atomic():
            report_usage(account, "5.00", reference="u-1", now=timezone.now())
            raise RequestFailed
    assert callbacks == [] and enqueued == [] and not UsageRecord.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        report_usage(account, "5.00", reference="u-1", now=timezone.now())
    assert enqueued == [("payments.place_paypal_preauth", {"account_id": account.pk})]


SEND_METHODS = {"delay", "apply_async", "send_task"}


def enqueues_not_waiting_for_commit(source: str, filename: str = "<source>") -> list[str]:
    """Calls that send a task message at once instead of after the commit.

    Allowed: inside a callable given to ``transaction.on_commit`` (or ``delay_on_commit``, which
    is not a send method), and in a task body outside any ``transaction.atomic()`` block (a
    fan-out task runs in no transaction). Anything else may send a message for work that is
    then rolled back.
    """
    tree = ast.parse(source, filename)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def is_call_to(node: ast.AST, name: str) -> bool:
        return isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == name)
            or (isinstance(node.func, ast.Name) and node.func.id == name)
        )

    def is_task(function: ast.AST) -> bool:
        for decorator in getattr(function, "decorator_list", []):
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if (isinstance(target, ast.Name) and target.id == "shared_task") or (
                isinstance(target, ast.Attribute) and target.attr in {"task", "shared_task"}
            ):
                return True
        return False

    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SEND_METHODS):
            continue
        verdict, current = None, node
        while current in parents and verdict is None:
            parent = parents[current]
            if isinstance(parent, ast.Call) and is_call_to(parent, "on_commit") and current in parent.args:
                verdict = "ok"
            elif isinstance(parent, ast.With) and any(is_call_to(item.context_expr, "atomic") for item in parent.items):
                verdict = "inside transaction.atomic()"
            elif isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
                verdict = "ok" if is_task(parent) else "in a function that is not a task"
            current = parent
        if verdict != "ok":
            problems.append(f"{filename}:{node.lineno} .{node.func.attr}() {verdict or 'at module level'}")
    return problems


def test_every_enqueue_waits_for_the_commit_or_runs_in_a_task_body():
    """Nothing enqueued from a rolled-back transaction, for every sender in the code base."""
    # The check itself catches the mistakes it is for.
    assert enqueues_not_waiting_for_commit("def f():\n    with transaction.atomic():\n        t.delay(x=1)\n")
    assert enqueues_not_waiting_for_commit("def service():\n    t.delay(x=1)\n")
    assert not enqueues_not_waiting_for_commit("def f():\n    transaction.on_commit(lambda: t.delay(x=1))\n")
    assert not enqueues_not_waiting_for_commit("@shared_task\ndef fan_out():\n    for c in cs:\n        t.delay(c=c)\n")

    problems, scanned = [], 0
    for package in ("payments", "remittances", "billing_backoffice"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            scanned += 1
            problems += enqueues_not_waiting_for_commit(path.read_text(), str(path.relative_to(ROOT)))
    assert scanned > 20
    assert problems == []


# --- retries: bounded, within the visibility timeout --------------------------------------------


@pytest.fixture(scope="module")
def deployed() -> dict:
    return deployed_celery_settings(
        database_url=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused")
    )


@pytest.mark.parametrize("name", sorted(DUPLICATE_CASES))
def test_retries_bounded_and_every_message_runs_within_the_visibility_timeout(name, deployed):
    """A message Redis does not see acknowledged within the visibility timeout is delivered to a
    second worker while the first still holds it. Every message of a task must therefore
    finish (its countdown plus its hard time limit) well inside it, retries included."""
    task = project_tasks()[name]
    visibility = deployed["visibility_timeout"]
    assert visibility and deployed["acks_late"]
    assert set(task.autoretry_for) <= set(task_retries.TRANSIENT_ERRORS)  # never business errors
    assert 0 < task.max_retries <= 5
    longest_countdown = max(
        task.retry_backoff_max if task.retry_backoff else 0,
        task.default_retry_delay,  # self.retry() without a countdown, and a retry after a lost worker
        hold_tasks.RELEASE_HOLD_RETRY_COUNTDOWN,
    )
    assert longest_countdown + deployed["time_limit"] < visibility / 2
    assert deployed["soft_time_limit"] < deployed["time_limit"]


def test_hold_2_release_lease_outlives_a_running_task(deployed):
    """HOLD-2: a live release run always owns its batch (the lease is longer than any run may
    last), and a dead run's batch is free again long before the 24-hour deadline."""
    assert deployed["time_limit"] < deployed["hold_release_lease"] < 3600


@pytest.mark.django_db
def test_transient_error_retried_max_retries_times_then_fails_visibly(monkeypatch, runs, failures):
    """Bounded retries: a database that stays unavailable gives 1 + max_retries runs, then FAILURE
    and an ERROR line saying how many retries it had; never an endless retry loop."""
    calls = []

    def unavailable(**kwargs):
        calls.append(kwargs)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(hold_tasks, "holds_release_due", unavailable)
    result = hold_tasks.release_due_holds.apply(task_id="flaky-msg")

    assert result.failed() and isinstance(result.result, OperationalError)
    assert len(calls) == len(runs) == 1 + task_retries.MAX_RETRIES
    [final] = failures()  # one line for the message, not one per attempt
    assert final.levelno == logging.ERROR
    assert final.celery_failure["retries"] == task_retries.MAX_RETRIES
    assert final.celery_failure["error"] == "OperationalError"
    assert final.celery_failure["task_id"] == "flaky-msg"


# --- gateway timeout, retried with the same saved key -------------------------------------------


@pytest.mark.django_db
def test_gateway_timeout_on_paypal_preauthorization_retried_with_the_same_saved_key_hold_4_i2(settings):
    """PayPal authorized, the answer timed out: the pre-authorization stays pending; the retry
    job sends the same saved key and gets the first authorization back (one hold, one
    authorization at the processor)."""
    settings.PAYPAL_GATEWAY = "tests.celery_helpers.LostAnswerPayPalGateway"
    LostAnswerPayPalGateway.reset()
    account, _ = paypal_account()

    first = deliver(charging_tasks.place_paypal_preauth, task_id="p1", account_id=account.pk)
    assert first.result == Charge.Status.PENDING
    charge = Charge.objects.get()
    assert "same key" in charge.failure_detail and not VerificationHold.objects.exists()

    later = timezone.now() + scheduled_charging.PENDING_GRACE + timedelta(minutes=1)
    assert charges_retry_failed(now=later).succeeded == 1
    charge.refresh_from_db()
    assert (charge.status, charge.attempts) == (Charge.Status.SUCCEEDED, 2)
    [(key, authorization_id)] = LostAnswerPayPalGateway.authorizations
    assert key == charge.idempotency_key
    assert VerificationHold.objects.get().authorization_id == authorization_id
    assert charges_retry_failed(now=later + timedelta(days=2)).succeeded == 0  # nothing left to do


@pytest.mark.django_db
def test_lost_paypal_preauthorization_is_recorded_even_if_the_method_went_meanwhile_hold_4_i4(settings):
    """The authorization was placed but its answer lost, then the customer unlinked PayPal: the
    retry still replays the saved key and records the hold, so the release job voids it (I4)."""
    settings.PAYPAL_GATEWAY = "tests.celery_helpers.LostAnswerPayPalGateway"
    LostAnswerPayPalGateway.reset()
    account, method = paypal_account()
    deliver(charging_tasks.place_paypal_preauth, task_id="p2", account_id=account.pk)
    PaymentMethod.objects.filter(pk=method.pk).update(status=PaymentMethod.Status.REMOVED, is_default=False)

    later = timezone.now() + scheduled_charging.PENDING_GRACE + timedelta(minutes=1)
    charges_retry_failed(now=later)
    [(_, authorization_id)] = LostAnswerPayPalGateway.authorizations
    assert VerificationHold.objects.get().authorization_id == authorization_id


# --- two beat firings in one window -> one run ---------------------------------------------------


def at_once(count: int, target) -> list:
    """``count`` threads released together, each on its own connection; fails on any error."""
    return run_in_threads(count, lambda _: target())


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_two_beat_firings_of_retry_failed_charges_at_once_make_one_new_attempt_pay_5_i2():
    """PAY-5: a declined charge is retried a day later, once per window, on the current default:
    two runs of the retry job at once create one new attempt and charge the card once."""
    account, old = card_account("chargedecline")
    bill = place(account, "80.00", reference="order-1", now=timezone.now() - timedelta(days=2)).bill
    PaymentMethod.objects.filter(pk=old.pk).update(is_default=False)
    working = CardMethodFactory(account=account, is_default=True)

    reports = at_once(2, charging_tasks.retry_failed_charges)

    assert sum(report["failed_retried"] for report in reports) == 1
    assert list(Charge.objects.order_by("pk").values_list("idempotency_key", "status")) == [
        (f"charge-{bill.pk}-1", Charge.Status.FAILED), (f"charge-{bill.pk}-2", Charge.Status.SUCCEEDED),
    ]
    assert PROCESSOR.charge_count(working.gateway_token) == 1
    assert Bill.objects.get().status == Bill.Status.PAID
    assert_billing_invariants()


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_two_beat_firings_of_the_threshold_scan_at_once_charge_once_pay_2_i2(enqueued):
    """PAY-2: two threshold scans at once (beat fired twice, or a slow run overlapping the next)
    make one bill and one charge, and send one execute_charge message."""
    account, _ = card_account()
    report_usage(account, "600.00", reference="u-1", now=timezone.now())
    report_usage(account, "400.00", reference="u-2", now=timezone.now())

    created = at_once(2, charging_tasks.charge_usage_thresholds)

    assert sorted(created) == [0, 1]
    charge = Charge.objects.get()
    assert Bill.objects.get().total == D("1000.00")
    assert set(UsageRecord.objects.values_list("status", "charge_id")) == {(UsageRecord.Status.CHARGED, charge.pk)}
    assert enqueued == [("payments.execute_charge", {"charge_id": charge.pk})]


# --- poison messages ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_poison_message_runs_once_is_not_retried_and_ends_in_one_error_line(runs, failures):
    """A message with the arguments of an older version (``charge`` since renamed ``charge_id``)
    fails for good at its first run: no retry, one ERROR line with the task, its id and its ids."""
    result = charging_tasks.execute_charge.apply(kwargs={"charge": 12}, task_id="poison-msg")

    assert result.failed() and isinstance(result.result, TypeError)
    assert runs == ["poison-msg"]
    [line] = failures()
    assert line.levelno == logging.ERROR
    assert line.celery_failure == {
        "task_name": "payments.execute_charge", "task_id": "poison-msg", "task_args": {"charge": 12},
        "retries": 0, "max_retries": charging_tasks.execute_charge.max_retries, "error": "TypeError",
    }
    assert "payments.execute_charge" in line.getMessage() and "poison-msg" in line.getMessage()


@pytest.mark.django_db
def test_poison_message_failure_line_shows_ids_only_never_card_data_sec_1(runs, failures, caplog):
    """SEC-1: a faulty producer put a card number where an id belongs; the failure is logged
    with the argument's type only, and the number appears in no log line."""
    pan = "4242424242424242"
    result = charging_tasks.place_paypal_preauth.apply(kwargs={"account_id": pan}, task_id="pan-msg")

    assert result.failed() and runs == ["pan-msg"]
    [line] = failures()
    assert line.celery_failure["task_args"] == {"account_id": "<str>"}
    assert line.celery_failure["error"] == "DoesNotExist"
    assert pan not in caplog.text
    # Lists of ids are summarised when long; any other value is shown as its type.
    assert safe_arguments((), {"account_ids": list(range(1, 40))}) == {"account_ids": "<39 ids 1..39>"}
    assert safe_arguments((7, "x"), {"flag": True}) == {"arg0": 7, "arg1": "<str>", "flag": True}
