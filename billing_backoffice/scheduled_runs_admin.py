"""The scheduled runs in the admin: which firing ran each window of the month-end jobs and the
settlement sweep, whether it finished, and how often it was started (redeliveries, takeovers).
Beside them the scheduled jobs: every job of the beat schedule, its interval, when it last
succeeded (the age the ``billing_job_last_success_age_seconds`` metric gives) and whether it is
late (``job_queues.jobs_late``, the index's "Jobs late" figure, ``?queue=late``).

Read-only for everybody (``ReadOnlyAdminMixin``): the rows are written by
``billing_backoffice/scheduled_runs.py`` alone. Viewing needs
``billing_backoffice.view_scheduledrun`` / ``view_scheduledjob`` (finance staff, superusers). Registered
through ``billing_backoffice/admin.py``, which Django's admin autodiscovery imports.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import BooleanField, ExpressionWrapper
from django.utils import timezone
from django.utils.timesince import timesince

from billing_backoffice.admin_site import BigTableAdminMixin, ReadOnlyAdminMixin
from billing_backoffice.models import ScheduledJob, ScheduledRun
from billing_backoffice.job_queues import JOB_QUEUES, RUN_QUEUES, interval_seconds, jobs_late
from billing_backoffice.work_queues import queue_filter

FIELDS = ("job", "window", "state", "task_id", "attempts", "started_at", "finished_at", "lease_until")


@admin.register(ScheduledRun)
class ScheduledRunAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = FIELDS
    list_filter = (queue_filter(RUN_QUEUES), "job", "status")
    ordering = ("-id",)
    # Starts with: "2026-10" finds a month's runs. A few thousand rows a month (one per job and
    # beat interval), so a scan is cheap.
    search_fields = ("^window",)
    search_help_text = "The start of the window: 2026-10 (month-end runs of October), 2026-11-26T12 ..."
    fields = readonly_fields = FIELDS

    @admin.display(description="state", ordering="status")
    def state(self, obj: ScheduledRun) -> str:
        # A run left unfinished past its lease: its worker died; a later firing may take it over.
        if obj.status == ScheduledRun.Status.RUNNING and obj.lease_until <= timezone.now():
            return "lease expired"
        return obj.get_status_display()


JOB_FIELDS = ("job", "interval", "last_success_at", "last_success_age", "state", "created_at")


@admin.register(ScheduledJob)
class ScheduledJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """One row per job of the beat schedule (a few dozen): small, so counted exactly."""

    list_display = JOB_FIELDS
    list_filter = (queue_filter(JOB_QUEUES),)
    ordering = ("job",)
    search_fields = ("job",)
    fields = readonly_fields = JOB_FIELDS

    def get_queryset(self, request):
        # Each row's interval and lateness from the same expressions as the index's figure.
        late = ExpressionWrapper(jobs_late(user=request.user, now=timezone.now()), output_field=BooleanField())
        return super().get_queryset(request).annotate(every_seconds=interval_seconds(), is_late=late)

    @admin.display(description="interval")
    def interval(self, obj: ScheduledJob) -> str:
        if obj.every_seconds is None:
            return "not scheduled (no enabled interval)"
        return f"every {timedelta(seconds=obj.every_seconds)}"

    @admin.display(description="since last success")
    def last_success_age(self, obj: ScheduledJob) -> str:
        if obj.last_success_at is None:
            return f"never (installed {timesince(obj.created_at)} ago)"
        return f"{timesince(obj.last_success_at)}"

    @admin.display(description="state", boolean=False)
    def state(self, obj: ScheduledJob) -> str:
        if obj.every_seconds is None:
            return "not judged"
        return "late" if obj.is_late else "on time"
