"""Operations: /healthz, /readyz (with beat's heartbeat), /metrics, Celery queue routing.

Every test here reads the real clock (the probes and collectors run at the edge and call
``timezone.now()``); nothing is frozen.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from billing_backoffice import health
from billing_backoffice.celery import app as celery_app
from billing_backoffice.models import ScheduledJob
from payments.models import Account, Bill, Charge, PaymentMethod
from tests.factories import AccountFactory, CardMethodFactory, HoldFactory
from tests.payments.invariants import make_bill

pytestmark = pytest.mark.django_db


def heartbeat(*, age: timedelta | None, enabled: bool = True) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)
    last_run_at = None if age is None else timezone.now() - age
    return PeriodicTask.objects.update_or_create(
        name=health.HEARTBEAT_ENTRY,
        defaults={"task": health.HEARTBEAT_TASK, "interval": interval, "enabled": enabled, "last_run_at": last_run_at},
    )[0]


def readyz(client, **headers):
    response = client.get("/readyz", **headers)
    return response.status_code, json.loads(response.content)


# --- /healthz ----------------------------------------------------------------------------------


def test_healthz_answers_any_host_without_credentials_or_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz", HTTP_HOST="10.1.2.3")  # a load balancer's probe, not in ALLOWED_HOSTS
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store" and response["X-Request-ID"]


def test_probes_refuse_other_methods(client):
    for path in ("/healthz", "/readyz"):
        response = client.post(path)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


# --- /readyz -----------------------------------------------------------------------------------


def test_readyz_ready_when_database_migrations_broker_and_beat_hold(client, django_assert_max_num_queries):
    heartbeat(age=timedelta(seconds=5))
    with django_assert_max_num_queries(3):  # SELECT 1, applied migrations, heartbeat
        status, body = readyz(client, HTTP_HOST="10.1.2.3")
    assert status == 200 and body["status"] == "ready", body
    assert set(body["checks"]) == {"database", "migrations", "broker", "beat"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["beat"]["age_seconds"] <= 10


@pytest.mark.parametrize(
    ("age", "enabled", "expected"),
    [
        (timedelta(minutes=5), True, "age_seconds"),  # beat stopped a few minutes ago
        (None, True, "reason"),  # installed, never sent
        (timedelta(seconds=1), False, "reason"),  # an operator disabled the heartbeat
    ],
)
def test_readyz_not_ready_when_beat_is_not_heard_from(client, age, enabled, expected):
    heartbeat(age=age, enabled=enabled)
    status, body = readyz(client)
    assert status == 503 and body["status"] == "not_ready"
    assert body["checks"]["beat"]["ok"] is False and expected in body["checks"]["beat"]
    assert body["checks"]["database"]["ok"] is True


def test_readyz_not_ready_without_the_heartbeat_entry(client):
    PeriodicTask.objects.filter(name=health.HEARTBEAT_ENTRY).delete()
    status, body = readyz(client)
    assert status == 503 and body["checks"]["beat"]["ok"] is False


def test_readyz_not_ready_when_a_migration_is_not_applied(client, monkeypatch):
    heartbeat(age=timedelta(seconds=1))
    expected = health.expected_migrations() | {("payments", "9999_shipped_but_not_applied")}
    monkeypatch.setattr(health, "expected_migrations", lambda: expected)
    status, body = readyz(client)
    assert status == 503 and body["checks"]["migrations"] == {
        "ok": False, "unapplied": ["payments.9999_shipped_but_not_applied"], "ms": body["checks"]["migrations"]["ms"]
    }


def test_readyz_every_shipped_migration_is_expected():
    """The check compares against the migrations on disk: the test database has them all."""
    apps = {app for app, _ in health.expected_migrations()}
    assert {"payments", "remittances", "billing_backoffice", "django_celery_beat"} <= apps
    assert health.check_migrations(now=timezone.now()) == {}


def test_readyz_database_down_is_503_with_no_error_text(client, monkeypatch):
    def unreachable(*, now):
        raise OperationalError('connection to server at "db.internal" failed: password=hunter2')

    monkeypatch.setattr(health, "READINESS_CHECKS", {**health.READINESS_CHECKS, "database": unreachable})
    status, body = readyz(client)
    assert status == 503 and body["checks"]["database"]["error"] == "OperationalError"
    assert body["checks"]["migrations"]["reason"] == "database unavailable"
    assert "hunter2" not in json.dumps(body) and "db.internal" not in json.dumps(body)


def test_readyz_broker_unreachable_is_503_without_its_url(client, monkeypatch, settings):
    heartbeat(age=timedelta(seconds=1))
    settings.CELERY_BROKER_URL = "redis://:s3cret@127.0.0.1:1/0"
    status, body = readyz(client)
    assert status == 503 and body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]
    assert "s3cret" not in json.dumps(body) and "127.0.0.1:1" not in json.dumps(body)
    assert body["checks"]["beat"]["ok"] is True  # the other checks still report


@pytest.mark.django_db(transaction=True)  # the scheduler closes stale connections as beat does
def test_readyz_beat_heard_from_after_the_real_scheduler_sends_the_heartbeat(client, monkeypatch):
    """django-celery-beat's DatabaseScheduler, as the beat process runs it: a due heartbeat is
    sent on a tick and, with CELERY_BEAT_SYNC_EVERY = 1, its last_run_at is written at once."""
    from django_celery_beat.schedulers import DatabaseScheduler

    assert celery_app.conf.beat_sync_every == 1
    heartbeat(age=timedelta(minutes=10))  # stale: beat was down
    assert readyz(client)[0] == 503
    sent = []
    monkeypatch.setattr(health.beat_heartbeat, "apply_async", lambda *a, **k: sent.append(k) or None)
    scheduler = DatabaseScheduler(app=celery_app, lazy=False)
    scheduler.tick()
    assert len(sent) == 1
    status, body = readyz(client)
    assert status == 200, body
    assert body["checks"]["beat"]["age_seconds"] <= 5


def test_sync_beat_schedule_installs_the_heartbeat(capsys):
    from django.core.management import call_command

    call_command("sync_beat_schedule")
    entry = PeriodicTask.objects.get(name=health.HEARTBEAT_ENTRY)
    assert entry.task == health.HEARTBEAT_TASK and entry.enabled
    assert timedelta(**{entry.interval.period: entry.interval.every}) == settings.BEAT_HEARTBEAT_INTERVAL
    assert settings.READYZ_BEAT_MAX_AGE > settings.BEAT_HEARTBEAT_INTERVAL


# --- /metrics ----------------------------------------------------------------------------------


def test_metrics_off_by_default(client, settings):
    settings.METRICS_ENABLED = False
    assert client.get("/metrics").status_code == 404


def sample(text: str, name: str, **labels) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return item.value
    return None


def test_hold_2_metrics_business_gauges(client, settings):
    settings.METRICS_ENABLED = True
    now = timezone.now()
    HoldFactory(placed_at=now - timedelta(hours=25))  # past its 24-hour deadline (HOLD-2)
    HoldFactory(placed_at=now - timedelta(hours=1))  # not yet
    account = AccountFactory()
    make_bill(account, "10.00", issued_at=now - timedelta(days=40), status=Bill.Status.OVERDUE)
    make_bill(account, "10.00", issued_at=now, status=Bill.Status.OPEN)
    stale = CardMethodFactory(status=PaymentMethod.Status.PENDING)
    PaymentMethod.objects.filter(pk=stale.pk).update(created_at=now - settings.VERIFICATION_TIMEOUT - timedelta(minutes=1))
    CardMethodFactory(status=PaymentMethod.Status.PENDING)  # pending, still within the timeout
    for n, reason in enumerate(["insufficient_funds", "insufficient_funds", "issuer_declined"]):
        Charge.objects.create(
            account=account, kind="threshold", amount=Decimal("5.00"), currency="USD", idempotency_key=f"m-{n}",
            status=Charge.Status.FAILED, failure_reason=reason, created_at=now - timedelta(hours=1),
        )
    response = client.get("/metrics", HTTP_HOST="10.1.2.3")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert sample(text, "billing_holds_past_deadline") == 1
    assert sample(text, "billing_overdue_bills") == 1
    assert sample(text, "billing_verifications_past_timeout") == 1
    assert sample(text, "billing_failed_charges_24h", reason="insufficient_funds") == 2
    assert sample(text, "billing_failed_charges_24h", reason="issuer_declined") == 1
    assert sample(text, "billing_unmatched_transfers_old") == 0


def test_metrics_count_requests_by_route_and_status(client, settings):
    settings.METRICS_ENABLED = True
    before = sample(client.get("/metrics").content.decode(), "billing_http_requests_total",
                    route="/admin/login/", status="200") or 0
    client.get("/admin/login/")
    client.get(f"/admin/login/?q={Account.objects.count()}")  # the query string is not a label
    text = client.get("/metrics").content.decode()
    assert sample(text, "billing_http_requests_total", method="GET", route="/admin/login/", status="200") == before + 2
    assert sample(text, "billing_http_request_duration_seconds_count", method="GET", route="/admin/login/")


def test_metrics_count_task_outcomes_and_stamp_scheduled_jobs(client, settings):
    from celery.signals import task_postrun, task_prerun, task_success

    from billing_backoffice import metrics

    settings.METRICS_ENABLED = True
    celery_app.loader.import_default_modules()
    task = celery_app.tasks["payments.release_due_holds"]
    before = sample(client.get("/metrics").content.decode(), "billing_celery_tasks_total",
                    task=task.name, state="SUCCESS") or 0
    task_prerun.send(sender=task, task_id="m-1", task=task, args=(), kwargs={})
    task_success.send(sender=task, result=0)
    task_postrun.send(sender=task, task_id="m-1", task=task, args=(), kwargs={}, retval=0, state="SUCCESS")
    text = client.get("/metrics").content.decode()
    assert sample(text, "billing_celery_tasks_total", task=task.name, state="SUCCESS") == before + 1
    assert sample(text, "billing_celery_task_duration_seconds_count", task=task.name)
    # The stamp is the job's ScheduledJob row, the one finance's "late" queue reads too.
    age = sample(text, "billing_job_last_success_age_seconds", job=task.name)
    assert age is not None and age < 30
    assert ScheduledJob.objects.get(job=task.name).last_success_at is not None
    if metrics._redis() is None:
        pytest.skip("queue depth needs a Redis broker (CELERY_BROKER_URL)")
    assert sample(text, "billing_celery_queue_depth", queue="money") is not None


# --- queues ------------------------------------------------------------------------------------


def queue_of(name: str) -> str:
    route = celery_app.amqp.router.route({}, name)
    return route["queue"].name


def test_money_tasks_are_routed_apart_from_bulk_and_maintenance():
    for name in ("payments.release_due_holds", "payments.release_hold", "payments.execute_charge",
                 "payments.settle_account", "remittances.import_statement_inbox"):
        assert queue_of(name) == "money", name
    for name in ("payments.generate_monthly_bills_chunk", "payments.month_end_deduction", "payments.settle_chunk",
                 "payments.settlement_sweep"):
        assert queue_of(name) == "bulk", name
    assert queue_of("billing_backoffice.prune_scheduled_runs") == "maintenance"
    assert queue_of("some.new_task") == "celery"  # not listed: the default queue


def test_every_scheduled_and_registered_task_has_a_known_queue():
    celery_app.loader.import_default_modules()
    queues = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    names = {entry["task"] for entry in settings.BILLING_BEAT_SCHEDULE.values()}
    for name in names:
        assert queue_of(name) in queues - {"celery"}, name
    for name in settings.CELERY_TASK_ROUTES:
        assert name in celery_app.tasks, f"route for a task that does not exist: {name}"
    # A worker started without -Q (make run, the tests) consumes every queue.
    assert set(celery_app.amqp.queues) >= queues


def test_broker_figures_and_unacked_read_each_queue_and_kombus_unacked_hash(monkeypatch):
    """What the deploy check waits on before counting tasks: messages waiting per queue and taken
    but not acknowledged (kombu's Redis transport keeps those in the ``unacked`` hash)."""
    from billing_backoffice import metrics

    class FakeRedis:
        lengths = {"money": 2, "bulk": 0, "maintenance": 1, "celery": 0}

        def pipeline(self):
            calls = []

            class Pipe:
                def llen(self, name):
                    calls.append(name)

                def execute(self):
                    return [FakeRedis.lengths[name] for name in calls]

            return Pipe()

        def hlen(self, name):
            return 3 if name == "unacked" else 0

    monkeypatch.setattr(metrics, "_redis", FakeRedis)
    assert metrics.broker_figures() == {"money": 2, "bulk": 0, "maintenance": 1, "celery": 0}
    assert metrics.broker_unacked() == 3
    monkeypatch.setattr(metrics, "_redis", lambda: None)  # another broker: nothing to read
    assert metrics.broker_figures() == {} and metrics.broker_unacked() == 0
