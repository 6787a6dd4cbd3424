"""``GET /healthz`` and ``GET /readyz`` for load balancers and orchestrators (DESIGN.md).

- ``/healthz``: the process is up and answering. No database, no broker: a liveness probe that
  fails only when the process itself is stuck.
- ``/readyz``: this process can do its work: the database answers, every migration this code
  ships is applied, the broker answers, and beat was heard from within its interval. 200 when
  all hold, 503 naming the one that does not.

Both are answered by ``HealthCheckMiddleware`` (second in MIDDLEWARE, after the request id)
before sessions, authentication, CSRF and host validation: a probe comes from the load
balancer with its own Host header and no credentials, every few seconds, and must stay cheap
(a readiness call is three small queries and one broker ping). The answers hold no secret:
checks report ok / not ok, a duration and, on failure, the error's class name only (a broker
or database error's text can hold its URL with the password).

Beat's heartbeat: beat sends ``billing_backoffice.beat_heartbeat`` (a no-op task) every
``BEAT_HEARTBEAT_INTERVAL`` (the ``beat-heartbeat`` entry of ``BILLING_BEAT_SCHEDULE``), and
django-celery-beat records each send in the entry's ``last_run_at`` (``CELERY_BEAT_SYNC_EVERY =
1`` writes it right away). Beat is heard from when that is younger than
``READYZ_BEAT_MAX_AGE``. The stamp is beat's own, not a worker's: a stopped worker does not
make beat look dead.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Callable

from celery import shared_task
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

HEARTBEAT_ENTRY = "beat-heartbeat"
HEARTBEAT_TASK = "billing_backoffice.beat_heartbeat"

_expected_migrations: set[tuple[str, str]] | None = None


@shared_task(name=HEARTBEAT_TASK, ignore_result=True)
def beat_heartbeat() -> None:
    """Nothing to do: beat sending it is the heartbeat (``last_run_at`` of its entry)."""


def expected_migrations() -> set[tuple[str, str]]:
    """The leaf migrations of the code on disk, read once per process (it never changes while
    the process runs; reading the files on every probe would be the costly part)."""
    global _expected_migrations
    if _expected_migrations is None:
        loader = MigrationLoader(None, ignore_no_migrations=True)
        _expected_migrations = set(loader.graph.leaf_nodes())
    return _expected_migrations


def check_database(*, now) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_migrations(*, now) -> dict[str, Any]:
    # One plain query (MigrationRecorder would first look the table up in the catalogue).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {MigrationRecorder.Migration._meta.db_table}")
        applied = set(cursor.fetchall())
    missing = sorted(f"{app}.{name}" for app, name in expected_migrations() - applied)
    if missing:
        return {"ok": False, "unapplied": missing[:20]}
    return {}


def check_broker(*, now) -> dict[str, Any]:
    from kombu import Connection

    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "socket_connect_timeout": 2, "socket_timeout": 2}
    with Connection(settings.CELERY_BROKER_URL, transport_options=options, connect_timeout=2) as broker:
        broker.ensure_connection(max_retries=1)
    return {}


def check_beat(*, now) -> dict[str, Any]:
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.filter(name=HEARTBEAT_ENTRY).values("enabled", "last_run_at").first()
    if entry is None or not entry["enabled"]:
        return {"ok": False, "reason": "the beat-heartbeat entry is missing or disabled (sync_beat_schedule)"}
    if entry["last_run_at"] is None:
        return {"ok": False, "reason": "beat has not sent its heartbeat yet"}
    age = (now - entry["last_run_at"]).total_seconds()
    max_age: timedelta = settings.READYZ_BEAT_MAX_AGE
    if age > max_age.total_seconds():
        return {"ok": False, "age_seconds": round(age), "max_age_seconds": int(max_age.total_seconds())}
    return {"age_seconds": round(max(age, 0))}


READINESS_CHECKS: dict[str, Callable[..., dict[str, Any]]] = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
    "beat": check_beat,
}
# Checks that read the database are skipped once the database itself failed.
_NEEDS_DATABASE = {"migrations", "beat"}


def readiness(*, now) -> tuple[bool, dict[str, Any]]:
    results: dict[str, Any] = {}
    for name, check in READINESS_CHECKS.items():
        if name in _NEEDS_DATABASE and not results["database"]["ok"]:
            results[name] = {"ok": False, "reason": "database unavailable"}
            continue
        started = time.perf_counter()
        try:
            result = {"ok": True, **check(now=now)}
        except Exception as error:  # any failure is "not ready", never a 500
            result = {"ok": False, "error": type(error).__name__}
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        results[name] = result
    return all(result["ok"] for result in results.values()), results


def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    ready, checks = readiness(now=timezone.now())
    return JsonResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)


class HealthCheckMiddleware:
    """Answers the probe paths (and ``/metrics`` when enabled) before the rest of the stack."""

    def __init__(self, get_response):
        self.get_response = get_response

    def _view(self, path: str):
        if path == "/healthz":
            return healthz
        if path == "/readyz":
            return readyz
        if settings.METRICS_ENABLED and path == settings.METRICS_PATH:
            from billing_backoffice.metrics import metrics_view

            return metrics_view
        return None

    def __call__(self, request):
        view = self._view(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse(status=405)
            response["Allow"] = "GET, HEAD"
            return response
        response = view(request)
        response["Cache-Control"] = "no-store"
        return response
