"""Admin of 3-D Secure challenges: a card link's (LINK-5) or an order's (PAY-1), read-only, with
the charge that asked for it and the charge sent again after it."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from billing_backoffice.admin_site import BigTableAdminMixin, ReadOnlyAdminMixin
from payments.admin.display import EMPTY, masked_html
from payments.models import Charge, ThreeDSChallenge
from payments.work_queues import THREE_DS_QUEUES
from billing_backoffice.work_queues import queue_filter
from payments.selectors import account_ids_named_by


class ChallengePurposeFilter(admin.SimpleListFilter):
    """A card link's challenge (LINK-5) or an order's (PAY-1)."""

    title = "purpose"
    parameter_name = "purpose"

    def lookups(self, request, model_admin):
        return (("link", "Card link (LINK-5)"), ("order", "Order charge (PAY-1)"))

    def queryset(self, request, queryset):
        if self.value() == "link":
            return queryset.for_linking()
        if self.value() == "order":
            return queryset.for_orders()
        return queryset


@admin.register(ThreeDSChallenge)
class ThreeDSChallengeAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "method", "account_uid", "purpose", "trigger", "status", "created_at", "expires_at", "completed_at"
    )
    list_filter = (queue_filter(THREE_DS_QUEUES), "status", ChallengePurposeFilter, "trigger")
    list_select_related = ("payment_method__account",)
    search_fields = ("payment_method__account__uid",)  # routed by get_search_results
    search_help_text = "Account UID or id (digits)."
    raw_id_fields = ("payment_method", "charge")
    fields = readonly_fields = (
        "payment_method", "method", "purpose", "charge", "replayed_by", "trigger", "status", "created_at",
        "expires_at", "completed_at",
    )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(payment_method__account_id__in=account_ids_named_by(term)), False
        return queryset.none(), False

    @admin.display(description="method")
    def method(self, obj: ThreeDSChallenge):
        return masked_html(obj.payment_method)

    @admin.display(description="account", ordering="payment_method__account__uid")
    def account_uid(self, obj: ThreeDSChallenge):
        return obj.payment_method.account.uid

    @admin.display(description="purpose")
    def purpose(self, obj: ThreeDSChallenge):
        if obj.charge_id is None:
            return "Card link"
        url = reverse("admin:payments_charge_change", args=[obj.charge_id])
        return format_html('Order: <a href="{}">charge {}</a>', url, obj.charge_id)

    @admin.display(description="charge after 3DS")
    def replayed_by(self, obj: ThreeDSChallenge):
        replay = Charge.objects.filter(authenticated_by=obj).only("pk", "status").first()
        if replay is None:
            return EMPTY
        url = reverse("admin:payments_charge_change", args=[replay.pk])
        return format_html('<a href="{}">charge {}</a> ({})', url, replay.pk, replay.get_status_display())
