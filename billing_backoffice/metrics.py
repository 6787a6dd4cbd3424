"""Prometheus metrics (``METRICS_ENABLED``, served on ``METRICS_PATH`` by ``health.py``).

Three kinds, each where it is cheapest to know:

- Requests (web) and task runs (worker) are counted in the process that does them. With
  several processes (gunicorn's workers, Celery's prefork pool) set ``PROMETHEUS_MULTIPROC_DIR``
  to a folder shared by the web and worker processes of one machine, emptied at deploy:
  prometheus-client's multi-process mode then adds them up at each scrape.
- Business gauges, queue depth and the age of each scheduled job's last success are read at
  scrape time (``BusinessCollector``): a handful of indexed counts, one Redis round trip and the
  scheduled jobs' rows, so the figures are current whatever process answers.
- A scheduled job's last success is stamped by the worker (``task_success``) on its
  ``ScheduledJob`` row (``scheduled_runs.scheduled_job_succeeded``), metrics on or off: the same
  stamp tells finance's work queue which jobs are late (``job_queues.jobs_late``) and the
  scheduled jobs' admin list its age.

Labels are bounded: the URL pattern (never the raw path), the task name, a failure reason
code. Alerts to set on them are in the README ("Alerts").
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from typing import Any, Iterator

from celery.signals import task_postrun, task_prerun, task_success
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

UNMATCHED_TRANSFER_AGE = timedelta(days=2)
FAILED_CHARGES_WINDOW = timedelta(hours=24)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("billing_http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "billing_http_request_duration_seconds", "Time to answer a request", ["method", "route"], buckets=LATENCY_BUCKETS
)
TASKS = Counter("billing_celery_tasks", "Celery task runs by outcome", ["task", "state"])
TASK_SECONDS = Histogram(
    "billing_celery_task_duration_seconds", "Celery task run time", ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 240),
)
_task_started: dict[str, float] = {}


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return "/" + match.route
    return request.path_info if request.path_info in ("/healthz", "/readyz") else "unmatched"


def observe_request(request, response, seconds: float) -> None:
    route = route_of(request)
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    REQUEST_SECONDS.labels(request.method, route).observe(seconds)


def _redis():
    """The broker's Redis (None with another broker: the stamps and queue depths are Redis-only)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def scheduled_task_names() -> set[str]:
    return {entry["task"] for entry in settings.BILLING_BEAT_SCHEDULE.values()}


@task_prerun.connect(dispatch_uid="billing_backoffice.metrics.task_started")
def _task_started_handler(task_id=None, **_: Any) -> None:
    _task_started[task_id] = time.perf_counter()


@task_postrun.connect(dispatch_uid="billing_backoffice.metrics.task_finished")
def _task_finished_handler(task_id=None, task=None, state=None, **_: Any) -> None:
    started = _task_started.pop(task_id, None)
    if not settings.METRICS_ENABLED:
        return
    name = getattr(task, "name", "unknown")
    TASKS.labels(name, state or "UNKNOWN").inc()
    if started is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)


@task_success.connect(dispatch_uid="billing_backoffice.metrics.job_succeeded")
def _job_succeeded(sender=None, **_: Any) -> None:
    name = getattr(sender, "name", None)
    if name not in scheduled_task_names():
        return
    from billing_backoffice.scheduled_runs import scheduled_job_succeeded

    try:
        scheduled_job_succeeded(job=name, now=timezone.now())
    except Exception:  # the stamp never fails the task it describes
        logger.warning("could not stamp the last success of %s", name, exc_info=True)


def business_figures(*, now) -> dict[str, Any]:
    """What an on-call person alerts on, counted in the database (indexed filters)."""
    from django.db.models import Count

    from payments.models import Bill, Charge, PaymentMethod, VerificationHold
    from remittances.models import BankTransaction

    held = (VerificationHold.Status.PLACED, VerificationHold.Status.RELEASE_FAILED)
    failed = (
        Charge.objects.filter(status=Charge.Status.FAILED, created_at__gte=now - FAILED_CHARGES_WINDOW)
        .values("failure_reason").annotate(n=Count("id")).order_by()
    )
    return {
        "holds_past_deadline": VerificationHold.objects.filter(
            status__in=held, placed_at__lt=now - settings.HOLD_RELEASE_DEADLINE
        ).count(),
        "verifications_past_timeout": PaymentMethod.objects.filter(
            status=PaymentMethod.Status.PENDING, created_at__lt=now - settings.VERIFICATION_TIMEOUT
        ).count(),
        "unmatched_transfers_old": BankTransaction.objects.filter(
            status=BankTransaction.Status.UNMATCHED, received_at__lt=now - UNMATCHED_TRANSFER_AGE
        ).count(),
        "overdue_bills": Bill.objects.filter(status=Bill.Status.OVERDUE).count(),
        "failed_charges": {row["failure_reason"] or "unknown": row["n"] for row in failed},
    }


def broker_figures() -> dict[str, int]:
    """Messages waiting per queue (Redis only)."""
    client = _redis()
    if client is None:
        return {}
    queues = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    pipe = client.pipeline()
    for name in queues:
        pipe.llen(name)
    return dict(zip(queues, pipe.execute()))


def broker_unacked() -> int:
    """Messages a worker has taken and not yet acknowledged (kombu's ``unacked`` hash; Redis only)."""
    client = _redis()
    return client.hlen("unacked") if client is not None else 0


def last_success_ages(*, now) -> dict[str, float]:
    """Per scheduled job that ever succeeded, seconds since (its ``ScheduledJob`` stamp)."""
    from billing_backoffice.scheduled_runs import last_successes

    return {job: max((now - at).total_seconds(), 0.0) for job, at in last_successes().items()}


class BusinessCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        try:
            figures = business_figures(now=now)
        except Exception as error:
            logger.warning("metrics: business figures unavailable (%s)", type(error).__name__)
        else:
            for name, help_text in (
                ("holds_past_deadline", "Verification holds still held past their 24-hour deadline (HOLD-2)"),
                ("verifications_past_timeout", "Payment methods pending verification past the timeout"),
                ("unmatched_transfers_old", "Bank transfers unmatched for more than 2 days"),
                ("overdue_bills", "Bills overdue"),
            ):
                yield GaugeMetricFamily(f"billing_{name}", help_text, value=figures[name])
            failed = GaugeMetricFamily(
                "billing_failed_charges_24h", "Charges failed in the last 24 hours by reason", labels=["reason"]
            )
            for reason, count in sorted(figures["failed_charges"].items()):
                failed.add_metric([reason], count)
            yield failed
        try:
            ages = last_success_ages(now=now)
        except Exception as error:
            logger.warning("metrics: last successes unavailable (%s)", type(error).__name__)
            ages = None
        try:
            depths = broker_figures()
        except Exception as error:
            logger.warning("metrics: broker figures unavailable (%s)", type(error).__name__)
        else:
            depth = GaugeMetricFamily("billing_celery_queue_depth", "Messages waiting per queue", labels=["queue"])
            for queue, count in depths.items():
                depth.add_metric([queue], count)
            yield depth
        if ages is None:
            return
        age = GaugeMetricFamily(
            "billing_job_last_success_age_seconds", "Seconds since each scheduled job last succeeded", labels=["job"]
        )
        for job in sorted(scheduled_task_names()):
            if job in ages:
                age.add_metric([job], ages[job])
        yield age


def registry() -> CollectorRegistry:
    result = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(result)
    else:  # one process: its own counters
        for collector in (REQUESTS, REQUEST_SECONDS, TASKS, TASK_SECONDS):
            result.register(collector)
    result.register(BusinessCollector())
    return result


def metrics_view(request) -> HttpResponse:
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
