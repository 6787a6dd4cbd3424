"""Admin of charges and usage records: read-only (the charging services own every write), searched
by id, account or the exact idempotency key / console reference."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_backoffice.admin_export import StreamedExportMixin
from billing_backoffice.admin_site import BigTableAdminMixin, ReadOnlyAdminMixin, money_column
from payments.admin.display import EMPTY, account_link, route_search
from payments.admin.exports import ChargeResource
from payments.admin.filters import CreatedWindowFilter
from payments.models import Charge, ThreeDSChallenge, UsageRecord
from payments.work_queues import CHARGE_QUEUES
from billing_backoffice.work_queues import queue_filter
from payments.reasons import reason_choices, reason_label


class FailureReasonFilter(admin.SimpleListFilter):
    """PAY-5 reasons seen on failed charges of the last 30 days (an index range on
    ``(status, created_at)``, not a ``DISTINCT`` over every charge), plus the chosen one."""

    title = "failure reason"
    parameter_name = "failure_reason"
    LOOKBACK = timedelta(days=30)

    def lookups(self, request, model_admin):
        since = timezone.now() - self.LOOKBACK
        reasons = set(
            Charge.objects.filter(status=Charge.Status.FAILED, created_at__gte=since)
            .exclude(failure_reason="")
            .order_by()
            .values_list("failure_reason", flat=True)
            .distinct()[:50]
        )
        if self.value():
            reasons.add(self.value())
        return reason_choices(reasons)

    def queryset(self, request, queryset):
        return queryset.filter(failure_reason=self.value()) if self.value() else queryset


def bill_link(obj):
    """The bill a charge or usage record belongs to, by its reference (never its id)."""
    if obj.bill_id is None:
        return EMPTY
    return format_html('<a href="{}">{}</a>', reverse("admin:payments_bill_change", args=[obj.bill_id]),
                       obj.bill.reference)


# --- charges and usage ----------------------------------------------------------------------------


@admin.register(Charge)
class ChargeAdmin(StreamedExportMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    resource_classes = [ChargeResource]
    list_display = (
        "id", "account_uid", "amount_display", "status", "failure", "kind", "created_at", "completed_at",
        "attempts", "bill_link",
    )
    list_filter = (queue_filter(CHARGE_QUEUES), "status", FailureReasonFilter, CreatedWindowFilter, "kind")
    list_select_related = ("account", "bill")
    raw_id_fields = ("account", "bill", "payment_method", "authenticated_by")
    ordering = ("-id",)
    search_fields = ("idempotency_key",)  # routed by get_search_results
    search_help_text = "Charge id, account UID or id (digits), or the exact idempotency key."
    fields = readonly_fields = (
        "account", "bill", "payment_method", "kind", "amount", "currency", "status", "failure_reason",
        "failure_rule", "failure_detail", "three_ds", "gateway_reference", "idempotency_key", "attempts",
        "created_at", "completed_at",
    )

    amount_display = money_column("amount")

    @admin.display(description="failure reason", ordering="failure_reason")
    def failure(self, obj: Charge):
        """PAY-5: the reason in words, with the rule that failed it."""
        if not obj.failure_reason:
            return EMPTY
        label = reason_label(obj.failure_reason)
        return f"{label} ({obj.failure_rule})" if obj.failure_rule else label

    bill_link = admin.display(description="bill", ordering="bill_id")(lambda self, obj: bill_link(obj))

    def get_search_results(self, request, queryset, search_term):
        # The idempotency key is unique (indexed); the gateway reference has no index.
        return route_search(queryset, search_term, reference_field="idempotency_key")

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: Charge):
        return account_link(obj.account)

    @admin.display(description="3-D Secure (PAY-1)")
    def three_ds(self, obj: Charge):
        """The challenge this charge asked for, or the completed one it was sent again with."""
        asked = ThreeDSChallenge.objects.filter(charge=obj).first()
        challenge, role = (asked, "asked for") if asked else (obj.authenticated_by, "sent after")
        if challenge is None:
            return EMPTY
        url = reverse("admin:payments_threedschallenge_change", args=[challenge.pk])
        return format_html(
            '{} <a href="{}">challenge {}</a> ({})', role, url, challenge.pk, challenge.get_status_display()
        )


@admin.register(UsageRecord)
class UsageRecordAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "account_uid", "amount_display", "period", "status", "reference", "reported_at", "bill_link")
    list_filter = ("status",)
    list_select_related = ("account", "bill")
    raw_id_fields = ("account", "charge", "bill")
    ordering = ("-id",)
    search_fields = ("reference",)  # routed by get_search_results
    search_help_text = "Usage id, account UID or id (digits), or the console's exact reference."
    fields = readonly_fields = ("account", "amount", "currency", "period", "status", "reference", "reported_at", "charge", "bill")

    amount_display = money_column("amount")
    bill_link = admin.display(description="bill", ordering="bill_id")(lambda self, obj: bill_link(obj))

    def get_search_results(self, request, queryset, search_term):
        return route_search(queryset, search_term, reference_field="reference")

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: UsageRecord):
        return account_link(obj.account)
