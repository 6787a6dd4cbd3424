"""Install ``settings.BILLING_BEAT_SCHEDULE`` into django-celery-beat's tables.

Idempotent: a missing periodic task is created; an existing one keeps the interval and the
enabled flag an operator set in the admin, unless ``--reset`` puts the defaults back. Only the
task path is corrected when the code renamed it. Prints one line per entry saying what it did.
Each job also gets its ``ScheduledJob`` row (its last success), so a job that never fires is
still seen as late on finance's work queue (``billing_backoffice.job_queues.jobs_late``).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from billing_backoffice.scheduled_runs import INTERVAL_UNITS, scheduled_jobs_install


def interval_for(every: timedelta) -> IntervalSchedule:
    seconds = int(every.total_seconds())
    if seconds < 1:
        raise CommandError(f"Interval {every} is shorter than one second.")
    period, size = next((period, size) for period, size in INTERVAL_UNITS if seconds % size == 0)
    # IntervalSchedule has no unique constraint: reuse the first matching row.
    existing = IntervalSchedule.objects.filter(every=seconds // size, period=period).order_by("pk").first()
    return existing or IntervalSchedule.objects.create(every=seconds // size, period=period)


def same_interval(interval: IntervalSchedule | None, every: timedelta) -> bool:
    return interval is not None and timedelta(**{interval.period: interval.every}) == every


class Command(BaseCommand):
    help = "Create or update the periodic tasks of BILLING_BEAT_SCHEDULE (django-celery-beat)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Put back the default interval (and enable) even where an operator changed it.",
        )

    @transaction.atomic
    def handle(self, *args, reset: bool = False, **options):
        for name, entry in settings.BILLING_BEAT_SCHEDULE.items():
            task, every = entry["task"], entry["every"]
            # A message older than one interval is dropped: the next firing does the same work.
            expire_seconds = int(every.total_seconds())
            periodic = PeriodicTask.objects.select_for_update().filter(name=name).first()
            if periodic is None:
                PeriodicTask.objects.create(
                    name=name, task=task, interval=interval_for(every), expire_seconds=expire_seconds,
                    description="Installed by sync_beat_schedule from BILLING_BEAT_SCHEDULE.",
                )
                self.stdout.write(f"created {name}: {task} every {every}")
                continue
            changes, kept = [], ""
            if periodic.task != task:
                periodic.task = task
                changes.append(f"task -> {task}")
            if not same_interval(periodic.interval, every):
                has_schedule = any((periodic.interval, periodic.crontab, periodic.solar, periodic.clocked))
                if reset or not has_schedule:
                    periodic.interval = interval_for(every)
                    periodic.crontab = periodic.solar = periodic.clocked = None
                    changes.append(f"interval -> every {every}")
                else:
                    schedule = periodic.interval or periodic.crontab or periodic.solar or periodic.clocked
                    kept = f"; kept operator schedule {schedule} (default every {every}, --reset restores it)"
            if reset and not periodic.enabled:
                periodic.enabled = True
                changes.append("enabled")
            if changes:
                periodic.save()
                self.stdout.write(f"updated {name}: {', '.join(changes)}{kept}")
            else:
                self.stdout.write(f"unchanged {name}: {periodic.task}{kept}")
        tasks = [entry["task"] for entry in settings.BILLING_BEAT_SCHEDULE.values()]
        installed = scheduled_jobs_install(jobs=tasks, now=timezone.now())
        if installed:
            self.stdout.write(f"installed {installed} scheduled job(s) to watch for lateness")
