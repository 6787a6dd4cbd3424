"""Work queues of the scheduled jobs (``work_queues``): finance's "jobs that failed or are late".

Core models only (``models.ScheduledRun``, ``ScheduledJob``, ``JobItemFailure``) and
django-celery-beat's periodic tasks; no app is imported.

A job is late in two ways, each a queue of its own list:
- ``runs_late``: a run (``ScheduledRun``) still marked running after its lease: its worker died.
- ``jobs_late``: a job (``ScheduledJob``, one row per job of the beat schedule, there before it
  ever ran) whose last success is older than its interval plus ``LATE_GRACE``: its windows did not
  fire (beat down) or their messages were lost. A job that never succeeded counts from when it was
  installed. The interval is the one beat really uses (``scheduled_runs.beat_interval``: the
  shortest enabled interval entry of the job in django-celery-beat's tables). A job on a crontab
  only is late once the first firing due after its last success is older than the grace
  (``crontab_jobs_late``). A job with no enabled entry (disabled by an operator) is not judged.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Case, DateTimeField, DurationField, F, Func, IntegerField, Min, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan
from django_celery_beat.models import PeriodicTask

from billing_backoffice.models import JobItemFailure, ScheduledJob, ScheduledRun
from billing_backoffice.scheduled_runs import INTERVAL_UNITS
from billing_backoffice.work_queues import WorkQueue

# Time a firing may take to reach a worker and finish after its interval is up: the task time
# limit (300 s) and a queue busy with a month-end fan-out, with room to spare.
LATE_GRACE = timedelta(minutes=15)


def runs_late(*, user, now: datetime) -> Q:
    """A run still marked running after its lease: its owner died or hangs (another firing may
    take it over; until then the job is late)."""
    return Q(status=ScheduledRun.Status.RUNNING, lease_until__lt=now)


def interval_seconds() -> Subquery:
    """Per ``ScheduledJob`` row: seconds between its beat firings, NULL when beat has no enabled
    interval entry for it (the SQL of ``scheduled_runs.beat_interval``)."""
    seconds = F("interval__every") * Case(
        *(When(interval__period=period, then=Value(size)) for period, size in INTERVAL_UNITS),
        output_field=IntegerField(),
    )
    entries = (
        PeriodicTask.objects.filter(task=OuterRef("job"), enabled=True, interval__isnull=False)
        .order_by().values("task").annotate(seconds=Min(seconds)).values("seconds")
    )
    return Subquery(entries[:1], output_field=IntegerField())


def late_after(*, now: datetime):
    """The time before which a job's last success makes it late: ``now`` less the grace and its
    interval (an expression per row)."""
    interval = Func(interval_seconds(), template="make_interval(secs => %(expressions)s)", output_field=DurationField())
    return Value(now - LATE_GRACE, output_field=DateTimeField()) - interval


def jobs_late(*, user, now: datetime) -> Q:
    """A scheduled job whose last success (else its installation) is older than its interval plus
    ``LATE_GRACE``, or, on a crontab, whose first firing due since then is older than the grace:
    no firing of it has succeeded when one should have."""
    on_interval = Q(LessThan(Coalesce("last_success_at", "created_at"), late_after(now=now)))
    return on_interval | Q(job__in=crontab_jobs_late(now=now))


def crontab_jobs_late(*, now: datetime) -> list[str]:
    """The jobs beat fires on a crontab only (no enabled interval entry) whose next firing after
    their last success (else their installation) was due more than ``LATE_GRACE`` ago. A crontab's
    firings are not evenly spaced, so this is worked out with Celery's own crontab arithmetic, per
    entry (an operator adds a few; the default schedule has none)."""
    entries = list(PeriodicTask.objects.filter(enabled=True, crontab__isnull=False).select_related("crontab"))
    if not entries:
        return []
    on_interval = set(PeriodicTask.objects.filter(enabled=True, interval__isnull=False).values_list("task", flat=True))
    since = {job: last or created for job, last, created in ScheduledJob.objects.filter(
        job__in={entry.task for entry in entries}).values_list("job", "last_success_at", "created_at")}
    late = set()
    for entry in entries:
        if entry.task in on_interval or entry.task not in since:
            continue
        start, delta, _ = entry.crontab.schedule.remaining_delta(since[entry.task])
        if start + delta + LATE_GRACE < now:
            late.add(entry.task)
    return sorted(late)


def items_failing(*, user, now: datetime) -> Q:
    """Items of a batch job that failed and have not succeeded since (retrying or given up)."""
    return Q(resolved_at__isnull=True)


RUN_QUEUES = (WorkQueue("late", "Runs past their lease", ScheduledRun, runs_late),)
JOB_QUEUES = (WorkQueue("late", "Jobs late (no success within their interval)", ScheduledJob, jobs_late),)
FAILURE_QUEUES = (WorkQueue("failing", "Failed, not resolved", JobItemFailure, items_failing),)
