"""Admin of link attempts (LINK-7): every try to link a method, read-only, searched by account."""

from __future__ import annotations

from django.contrib import admin

from billing_backoffice.admin_site import BigTableAdminMixin, ReadOnlyAdminMixin
from payments.admin.display import EMPTY
from payments.models import LinkAttempt
from payments.work_queues import LINK_QUEUES
from billing_backoffice.work_queues import queue_filter
from payments.selectors import account_ids_named_by


class AttemptKindFilter(admin.SimpleListFilter):
    """``kind`` is free text (refused wallets keep their name); fixed choices, no DISTINCT scan."""

    title = "kind"
    parameter_name = "kind"
    KNOWN = ("card", "paypal")

    def lookups(self, request, model_admin):
        return [("card", "Card"), ("paypal", "PayPal"), ("wallet", "Refused wallet (ELIG-6)")]

    def queryset(self, request, queryset):
        if self.value() in self.KNOWN:
            return queryset.filter(kind=self.value())
        if self.value() == "wallet":
            return queryset.exclude(kind__in=self.KNOWN)
        return queryset


@admin.register(LinkAttempt)
class LinkAttemptAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "account_uid", "kind", "outcome", "reason", "rule", "card", "detail")
    list_filter = (queue_filter(LINK_QUEUES), "outcome", "reason", AttemptKindFilter, "created_at")
    list_select_related = ("account",)
    search_fields = ("account__uid",)  # routed by get_search_results
    search_help_text = "Account UID or id (digits)."
    raw_id_fields = ("account", "payment_method")
    fields = readonly_fields = (
        "account", "payment_method", "kind", "outcome", "reason", "rule", "detail", "network", "card",
        "created_at",
    )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(account_id__in=account_ids_named_by(term)), False
        return queryset.none(), False

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: LinkAttempt):
        return obj.account.uid

    @admin.display(description="card")
    def card(self, obj: LinkAttempt):
        return f"•••• {obj.last4}" if obj.last4 else EMPTY
