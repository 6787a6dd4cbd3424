"""The items the batch jobs could not process, in the admin: which job, which item (linked to its
page where it is a row), why, how often, and whether it is retried, given up or resolved.

Read-only (``ReadOnlyAdminMixin``): rows are written by ``billing_backoffice/item_failures.py``
alone. Viewing needs ``view_jobitemfailure`` and the "Retry now" action ``retry_jobitemfailure``
(finance staff, by migration; superusers). The action calls ``job_item_failure_retry`` for each
selected row: the next run of the job tries the item again.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_backoffice.admin_site import BigTableAdminMixin, ReadOnlyAdminMixin, has_model_perm, run_service_action
from billing_backoffice.item_failures import job_item_failure_retry
from billing_backoffice.models import JobItemFailure
from billing_backoffice.job_queues import FAILURE_QUEUES
from billing_backoffice.work_queues import queue_filter
from billing_backoffice.staff_jobs import bulk_action


# "Retry now" over many rows runs as a staff job (billing_backoffice/staff_jobs.py).
RETRY_JOB = bulk_action(
    "billing_backoffice.retry_job_item_failures",
    model=JobItemFailure,
    call=lambda failure, actor, now: job_item_failure_retry(failure_id=failure.pk, actor=actor, now=now),
    done_message="{count} item(s) will be retried by the next run of their job.",
    check=lambda failure, result: "already resolved" if result.resolved_at else None,
)


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("open", "open (retrying or given up)"), ("retrying", "retrying"), ("given_up", "given up"),
                ("resolved", "resolved"))

    def queryset(self, request, queryset):
        open_rows = queryset.filter(resolved_at__isnull=True)
        return {
            "open": open_rows,
            "retrying": open_rows.filter(given_up_at__isnull=True),
            "given_up": open_rows.filter(given_up_at__isnull=False),
            "resolved": queryset.filter(resolved_at__isnull=False),
        }.get(self.value(), queryset)


@admin.register(JobItemFailure)
class JobItemFailureAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("job", "item", "reason", "attempts", "state", "last_failed_at", "next_retry_at")
    list_filter = (queue_filter(FAILURE_QUEUES), StateFilter, "job", "item_kind")
    list_select_related = ("retried_by",)
    ordering = ("-last_failed_at", "-id")
    search_fields = ("=item_key",)
    search_help_text = "The exact item key: an id (12), an id and currency (12:USD), a file name."
    actions = ("retry_selected",)
    fields = readonly_fields = (
        "job", "item", "item_kind", "item_key", "error", "rule", "message", "attempts", "state",
        "first_failed_at", "last_failed_at", "next_retry_at", "given_up_at", "resolved_at", "retried_at",
        "retried_by",
    )

    def has_retry_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "retry_jobitemfailure")

    @admin.display(description="item", ordering="item_key")
    def item(self, obj: JobItemFailure):
        label = f"{obj.item_kind} {obj.item_key}"
        if obj.object_id is None or "." not in obj.item_kind:
            return label
        app_label, model_name = obj.item_kind.split(".", 1)
        try:
            link = reverse(f"admin:{app_label}_{model_name}_change", args=[obj.object_id])
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}</a>', link, label)

    @admin.display(description="reason", ordering="error")
    def reason(self, obj: JobItemFailure) -> str:
        head = f"{obj.error} ({obj.rule})" if obj.rule else obj.error
        text = obj.message if len(obj.message) <= 120 else obj.message[:119] + "…"
        return f"{head}: {text}"

    @admin.display(description="state")
    def state(self, obj: JobItemFailure) -> str:
        if obj.state == "retrying" and obj.next_retry_at and obj.next_retry_at <= timezone.now():
            return "retrying (due at the next run)"
        return obj.state

    @admin.action(description="Retry now (at the job's next run)", permissions=["retry"])
    def retry_selected(self, request, queryset):
        now = timezone.now()
        run_service_action(
            self, request, queryset,
            lambda failure: job_item_failure_retry(failure_id=failure.pk, actor=request.user, now=now),
            done_message=RETRY_JOB.done_message,
            check=RETRY_JOB.check,
            job=RETRY_JOB,  # more than JOB_THRESHOLD rows: a staff job with a progress page
        )
