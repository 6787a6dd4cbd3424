"""Scheduled jobs and their last success (``billing_backoffice.job_queues.jobs_late``): a job is
late when no firing of it succeeded within its interval plus ``LATE_GRACE``, whether its window
never fired (no ``ScheduledRun`` at all) or its runs died. Every clock is frozen (``now``)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from celery.signals import task_success
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from billing_backoffice.celery import app as celery_app
from billing_backoffice.job_queues import LATE_GRACE, jobs_late
from billing_backoffice.models import ScheduledJob
from billing_backoffice.scheduled_runs import scheduled_job_succeeded, scheduled_jobs_install

pytestmark = pytest.mark.django_db

HOLDS = "payments.release_due_holds"  # every 5 minutes by default


def late(now) -> set[str]:
    return set(ScheduledJob.objects.filter(jobs_late(user=None, now=now)).values_list("job", flat=True))


def install(now) -> None:
    call_command("sync_beat_schedule", stdout=StringIO())
    ScheduledJob.objects.update(created_at=now, last_success_at=now)


def test_sync_beat_schedule_installs_one_job_row_per_task_and_keeps_its_stamp(now):
    call_command("sync_beat_schedule", stdout=StringIO())
    tasks = {entry["task"] for entry in settings.BILLING_BEAT_SCHEDULE.values()}
    assert set(ScheduledJob.objects.values_list("job", flat=True)) == tasks
    assert not ScheduledJob.objects.filter(last_success_at__isnull=False).exists()
    scheduled_job_succeeded(job=HOLDS, now=now)
    out = StringIO()
    call_command("sync_beat_schedule", stdout=out)
    assert "installed" not in out.getvalue()
    assert ScheduledJob.objects.get(job=HOLDS).last_success_at == now
    assert scheduled_jobs_install(jobs=[HOLDS, "some.new_job"], now=now) == 1


def test_a_job_is_late_past_its_interval_and_the_grace_not_before(now):
    install(now)
    due = now + timedelta(minutes=5) + LATE_GRACE
    assert HOLDS not in late(due)
    assert HOLDS in late(due + timedelta(seconds=1))
    assert late(now + timedelta(minutes=1)) == set()


def test_a_job_that_never_succeeded_is_late_from_its_installation(now):
    install(now)
    ScheduledJob.objects.filter(job=HOLDS).update(last_success_at=None)
    assert HOLDS not in late(now + timedelta(minutes=20))
    assert HOLDS in late(now + timedelta(minutes=20, seconds=1))


def test_the_interval_is_the_one_beat_uses_operator_edits_and_disabling_included(now):
    install(now)
    periodic = PeriodicTask.objects.get(task=HOLDS)
    periodic.interval = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.MINUTES)
    periodic.save()
    assert HOLDS in late(now + timedelta(minutes=18))  # 2 + 15 minutes; at the default 5 it would not be
    PeriodicTask.objects.filter(task=HOLDS).update(enabled=False)
    assert HOLDS not in late(now + timedelta(days=30))  # no enabled entry: beat does not run it


def test_a_job_added_by_hand_in_the_beat_admin_has_its_row_at_once_and_a_crontab_job_is_late_after_its_due_firing():
    """Issue 10, finance's late jobs: an operator's entry on a crontab (03:00 UTC daily) is judged
    from its next firing after the last success, plus the grace."""
    from datetime import datetime, timezone

    nightly = CrontabSchedule.objects.create(minute="0", hour="3", timezone="UTC")
    PeriodicTask.objects.create(name="ops nightly", task="ops.nightly_export", crontab=nightly)
    job = ScheduledJob.objects.get(job="ops.nightly_export")  # installed by the save, before any success
    succeeded = datetime(2026, 12, 1, 3, 0, 10, tzinfo=timezone.utc)
    ScheduledJob.objects.filter(pk=job.pk).update(last_success_at=succeeded)
    next_due = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
    assert "ops.nightly_export" not in late(next_due + LATE_GRACE)
    assert "ops.nightly_export" in late(next_due + LATE_GRACE + timedelta(seconds=1))
    scheduled_job_succeeded(job="ops.nightly_export", now=next_due + timedelta(minutes=1))
    assert "ops.nightly_export" not in late(next_due + timedelta(hours=23))  # the next one is due at 03:00 tomorrow
    PeriodicTask.objects.filter(task="ops.nightly_export").update(enabled=False)
    assert "ops.nightly_export" not in late(next_due + timedelta(days=30))


def test_a_succeeding_scheduled_task_stamps_its_job_and_the_stamp_never_goes_back(now):
    celery_app.loader.import_default_modules()
    task = celery_app.tasks[HOLDS]
    task_success.send(sender=task, result=0)
    stamp = ScheduledJob.objects.get(job=HOLDS).last_success_at
    assert now <= stamp < now + timedelta(seconds=30)
    scheduled_job_succeeded(job=HOLDS, now=now - timedelta(hours=1))  # a worker finishing out of order
    assert ScheduledJob.objects.get(job=HOLDS).last_success_at == stamp
    task_success.send(sender=celery_app.tasks["payments.execute_charge"], result="succeeded")  # not scheduled
    assert not ScheduledJob.objects.filter(job="payments.execute_charge").exists()


def test_jobs_late_counts_in_the_one_query_of_the_index(now, django_assert_num_queries):
    from billing_backoffice.job_queues import JOB_QUEUES
    from billing_backoffice.work_queues import count_queues, key

    install(now - timedelta(hours=2))
    with django_assert_num_queries(2):  # the counts, and the crontab entries (none here)
        counts = count_queues(JOB_QUEUES, user=None, now=now)
    slow = {entry["task"] for entry in settings.BILLING_BEAT_SCHEDULE.values() if entry["every"] >= timedelta(hours=2)}
    assert counts[key(ScheduledJob, "late")] == len(late(now)) == ScheduledJob.objects.count() - len(slow)


def test_interval_units_are_django_celery_beats_periods():
    """The one table of interval units (job lateness in SQL, sync_beat_schedule) names beat's periods."""
    from django_celery_beat.models import IntervalSchedule

    from billing_backoffice.scheduled_runs import INTERVAL_UNITS

    assert INTERVAL_UNITS == ((IntervalSchedule.DAYS, 86400), (IntervalSchedule.HOURS, 3600),
                              (IntervalSchedule.MINUTES, 60), (IntervalSchedule.SECONDS, 1))
