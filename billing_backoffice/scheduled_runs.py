"""One run per window for the scheduled fan-out jobs (PAY-3 month end, SET-2 / SET-4 sweep).

Beat may fire a job twice in one window (two beat processes by mistake, a restarted beat that
replays a firing, a run slow enough to meet the next), and a worker killed mid-run leaves its
message to be delivered again (``acks_late``). The work is idempotent already (unique references,
conditional updates); this module makes the *run* itself happen once per window, so a second
firing does not scan and fan out again.

Claiming (``window_claim``): one ``INSERT ... ON CONFLICT`` on the unique (job, window) of
``ScheduledRun``. Of two firings at once exactly one inserts; the other waits for that insert
to commit, then meets the row in the same statement and may take it only if:
- it is the same task (the Celery message id) and the run is unfinished: a redelivery after the
  worker died, or a Celery retry (retries keep the id). The lease is renewed;
- the run is unfinished and its lease expired: its worker died and its message was lost (or
  will come back too late). The newcomer takes the run over and becomes its owner.
Anyone else is skipped: another firing while the run is live, and any firing (the same message
included) once the run finished. ``window_finish`` marks the run finished, only while the caller
still owns it. The jobs finish *after* sending their fan-out: a crash in between leaves the run
unfinished, so the fan-out is sent again (the chunks are idempotent), never lost.

The window of a beat firing (``beat_window``): the firing's time floored to the job's beat
interval, counted from midnight UTC (``2026-11-26T12:15:00Z`` for a 15-minute sweep). The
interval is the one beat really uses: the job's enabled periodic tasks in django-celery-beat's
tables (operators edit them in the admin; the shortest if several), else the default of
``settings.BILLING_BEAT_SCHEDULE``. A firing is timed when a worker starts it: one that the queue
delays past a boundary can share a window with the next firing, which is then skipped; the work
waits one more interval, and is never done twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from billing_backoffice.models import ScheduledJob, ScheduledRun

logger = logging.getLogger(__name__)

# How long a run's owner is presumed alive. Longer than the task time limit (300 s), after which
# Celery kills a run, so a live run always owns its window; shorter than the hour of the monthly
# jobs' windows, so a dead run is taken over within its window.
RUN_LEASE = timedelta(minutes=10)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# django-celery-beat's interval periods (``IntervalSchedule.period``: the names ``timedelta``
# takes) and their seconds, largest first, so 5 minutes reads "every 5 minutes", not 300 seconds.
INTERVAL_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))

_CLAIM_SQL = """
    INSERT INTO {table} AS run (job, "window", task_id, status, attempts, started_at, finished_at, lease_until)
    VALUES (%(job)s, %(window)s, %(task_id)s, %(running)s, 1, %(now)s, NULL, %(lease_until)s)
    ON CONFLICT (job, "window") DO UPDATE
        SET task_id = EXCLUDED.task_id, attempts = run.attempts + 1,
            started_at = EXCLUDED.started_at, lease_until = EXCLUDED.lease_until
        WHERE run.status = %(running)s
          AND (run.task_id = EXCLUDED.task_id OR run.lease_until <= EXCLUDED.started_at)
    RETURNING {columns}
"""


def window_claim(
    *, job: str, window: str, task_id: str, now: datetime, lease: timedelta = RUN_LEASE
) -> ScheduledRun | None:
    """The run of ``job`` in ``window`` for this task, or None when the run belongs to another
    firing (live, or finished): the caller then skips the job. See the module docstring."""
    fields = ScheduledRun._meta.concrete_fields
    sql = _CLAIM_SQL.format(
        table=connection.ops.quote_name(ScheduledRun._meta.db_table),
        columns=", ".join(f"run.{connection.ops.quote_name(field.column)}" for field in fields),
    )
    params = {
        "job": job, "window": window, "task_id": task_id, "now": now, "lease_until": now + lease,
        "running": ScheduledRun.Status.RUNNING,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        logger.info("%s: window %s already has its run; task %s skipped", job, window, task_id)
        return None
    run = ScheduledRun.from_db(connection.alias, [field.attname for field in fields], row)
    if run.attempts > 1:
        logger.warning("%s: window %s run again by task %s (attempt %s)", job, window, task_id, run.attempts)
    return run


def window_finish(*, run: ScheduledRun, now: datetime) -> bool:
    """Mark the run finished; False when another firing took it over meanwhile (it finishes it)."""
    return bool(
        ScheduledRun.objects.filter(pk=run.pk, task_id=run.task_id, status=ScheduledRun.Status.RUNNING).update(
            status=ScheduledRun.Status.FINISHED, finished_at=now
        )
    )


def firing_task_id(request) -> str:
    """The Celery message id of a bound task's run; a fresh one when the task is called as a
    plain function (a shell, a test), which is then a firing of its own."""
    return request.id or f"direct-{uuid.uuid4()}"


# --- the window of a beat firing ---------------------------------------------------------------


def beat_interval(task_name: str) -> timedelta:
    """How often beat fires ``task_name``: its shortest enabled interval in django-celery-beat's
    tables, else its default in ``settings.BILLING_BEAT_SCHEDULE``."""
    from django_celery_beat.models import PeriodicTask

    periodic_tasks = PeriodicTask.objects.filter(task=task_name, enabled=True, interval__isnull=False)
    scheduled = [
        timedelta(**{periodic.interval.period: periodic.interval.every})
        for periodic in periodic_tasks.select_related("interval")
    ]
    defaults = [entry["every"] for entry in settings.BILLING_BEAT_SCHEDULE.values() if entry["task"] == task_name]
    intervals = scheduled or defaults
    if not intervals:
        raise ImproperlyConfigured(f"{task_name} has no beat interval (BILLING_BEAT_SCHEDULE or django-celery-beat).")
    return min(intervals)


def beat_window(*, task_name: str, now: datetime) -> str:
    """``now`` floored to the task's beat interval, as ``2026-11-26T12:15:00Z``."""
    interval = beat_interval(task_name)
    start = _EPOCH + ((now - _EPOCH) // interval) * interval
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- each job's last success (finance's "late" jobs, the last-success metric) -------------------


def scheduled_jobs_install(*, jobs: Iterable[str], now: datetime) -> int:
    """A ``ScheduledJob`` row for each job that has none yet, its first interval starting ``now``
    (``sync_beat_schedule``); returns how many were new."""
    wanted = set(jobs)
    missing = sorted(wanted - set(ScheduledJob.objects.filter(job__in=wanted).values_list("job", flat=True)))
    ScheduledJob.objects.bulk_create([ScheduledJob(job=job, created_at=now) for job in missing], ignore_conflicts=True)
    return len(missing)


# Beat's own writes after each send; a save of only these is not a job added or changed.
_BEAT_BOOKKEEPING = frozenset({"last_run_at", "total_run_count", "date_changed"})


def scheduled_job_for_saved_entry(sender, instance, update_fields=None, **_) -> None:
    """``post_save`` of django-celery-beat's ``PeriodicTask`` (connected in ``apps.py``): a job an
    operator adds in the beat admin gets its ``ScheduledJob`` row at once, so it is judged late
    from then on, like the jobs ``sync_beat_schedule`` installs, and not only after a success."""
    if update_fields and set(update_fields) <= _BEAT_BOOKKEEPING:
        return
    if instance.task and instance.enabled:
        scheduled_jobs_install(jobs=[instance.task], now=timezone.now())


_SUCCESS_SQL = """
    INSERT INTO {table} AS job (job, created_at, last_success_at) VALUES (%(job)s, %(now)s, %(now)s)
    ON CONFLICT (job) DO UPDATE
        SET last_success_at = GREATEST(job.last_success_at, EXCLUDED.last_success_at)
"""


def scheduled_job_succeeded(*, job: str, now: datetime) -> None:
    """Stamp ``job``'s last success (a task of the beat schedule returned): one upsert, never
    moving the stamp back when two workers finish out of order."""
    table = connection.ops.quote_name(ScheduledJob._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(_SUCCESS_SQL.format(table=table), {"job": job, "now": now})


def last_successes() -> dict[str, datetime]:
    """``{job: last success}`` of the jobs that ever succeeded (one query)."""
    rows = ScheduledJob.objects.filter(last_success_at__isnull=False).values_list("job", "last_success_at")
    return dict(rows)


# --- housekeeping ------------------------------------------------------------------------------

# Finished runs kept this long: their windows never come round again, and they answer "did the
# month end run?" for the last quarter. Unfinished runs are kept whatever their age: each is a
# worker that died mid-run, for an operator to look at.
RUN_RETENTION = timedelta(days=90)


def scheduled_runs_prune(*, now: datetime, keep: timedelta = RUN_RETENTION) -> int:
    """Delete the finished runs older than ``keep``; returns how many went."""
    old = ScheduledRun.objects.filter(status=ScheduledRun.Status.FINISHED, finished_at__lt=now - keep)
    return old.delete()[0]
