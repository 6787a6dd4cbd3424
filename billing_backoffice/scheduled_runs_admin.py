"""The scheduled runs in the admin: which firing ran each window of the month-end jobs and the
settlement sweep, whether it finished, and how often it was started (redeliveries, takeovers).

Read-only for everybody (``ReadOnlyAdminMixin``): the rows are written by
``billing_backoffice/scheduled_runs.py`` alone. Viewing needs
``billing_backoffice.view_scheduledrun`` (superusers; no staff group is granted it). Registered
through ``billing_backoffice/admin.py``, which Django's admin autodiscovery imports.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from billing_backoffice.admin_site import BigTableAdminMixin, ReadOnlyAdminMixin
from billing_backoffice.models import ScheduledRun
from billing_backoffice.job_queues import RUN_QUEUES
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
