"""Admin of payment methods: read-only (the processor owns them), with the make-default (DEF-2)
and remove (DEL-1..3) actions. SEC-1: no gateway token, no fingerprint, only the masked number."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from billing_backoffice.admin_site import (
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    digits_pk,
    has_model_perm,
    run_service_action,
)
from billing_backoffice.admin_confirm import ObjectToolsMixin, Preview, confirmed_action, object_tool
from billing_backoffice.admin_export import StreamedExportMixin
from payments import services
from payments.admin.display import MethodDisplayMixin
from payments.admin.exports import PaymentMethodResource
from payments.models import PaymentMethod
from payments.work_queues import METHOD_QUEUES
from billing_backoffice.work_queues import queue_filter
from payments.reasons import reason_label
from payments.selectors import account_ids_named_by
from payments.services.defaults import make_default_refusal
from payments.services.removal import removal_blocked, removal_successor


def removal_preview(method: PaymentMethod) -> Preview:
    """What removing ``method`` does, or the DEL rule that refuses it."""
    label = f"{method.get_kind_display()} {method.masked} of account {method.account.uid} {method.account.name}"
    refusal = removal_blocked(method)
    if refusal is not None:
        return Preview(label, refusal=refusal.rule_text)
    if method.status == PaymentMethod.Status.REMOVED:
        return Preview(label, [("Status", "Already removed: nothing changes.")])
    successor = removal_successor(method)
    lines = [
        ("Status", f"{method.get_status_display()} -> Removed"),
        ("Default method", (f"passes to {successor.masked}" if successor else "the account has no default afterwards")
         if method.is_default else "unchanged"),
    ]
    return Preview(label, lines)


# --- payment methods -------------------------------------------------------------------------


@admin.register(PaymentMethod)
class PaymentMethodAdmin(
    ObjectToolsMixin, StreamedExportMixin, MethodDisplayMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    resource_classes = [PaymentMethodResource]
    list_display = (
        "id", "method_masked", "network", "status_display", "is_default", "account_uid", "region",
        "expiry", "created_at",
    )
    list_display_links = ("id", "method_masked")
    list_filter = (queue_filter(METHOD_QUEUES), "kind", "network", "status", "account__region", "is_default")
    list_select_related = ("account",)
    search_fields = ("last4",)  # routed by get_search_results
    search_help_text = "Last four digits, account UID or id, PayPal e-mail or payer id."
    raw_id_fields = ("account",)
    actions = ("make_default_selected", "remove_selected")
    # SEC-1: no gateway token, no fingerprint; the number itself is never stored.
    fieldsets = (
        (None, {"fields": ("account", "kind", "method_masked", "status_display", "is_default", "failure_reason_text")}),
        ("Card", {"fields": ("network", "funding", "issuing_country", "expiry", "cardholder_name", "company_name")}),
        ("Billing address", {"fields": ("billing_line1", "billing_city", "billing_postal_code", "billing_country")}),
        ("PayPal", {"fields": ("paypal_email", "paypal_payer_id", "paypal_country", "agreement_id", "agreement_state", "has_funding_source")}),
        ("Dates", {"fields": ("created_at", "activated_at", "status_changed_at", "removed_at")}),
    )
    readonly_fields = tuple(f for _, spec in fieldsets for f in spec["fields"])

    @admin.display(description="failure reason")
    def failure_reason_text(self, obj: PaymentMethod) -> str:
        """The stored code in words (``payments/reasons.py``), never the raw code."""
        return reason_label(obj.failure_reason) or "—"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit() and len(term) == 4:
            return queryset.filter(last4=term), False
        if term.isdigit():
            return queryset.filter(Q(account_id__in=account_ids_named_by(term)) | digits_pk(term)), False
        if "@" in term:
            # ``kind`` too: the index on UPPER(paypal_email) is partial (PayPal rows only); without
            # it PostgreSQL reads every method (0.8 s at 2M, benchmarks/bench_admin.py).
            return queryset.filter(kind=PaymentMethod.Kind.PAYPAL, paypal_email__iexact=term), False
        return queryset.filter(paypal_payer_id__in={term, term.upper()}), False

    change_form_template = "admin/change_form_with_tools.html"

    def object_tools(self, request, method: PaymentMethod) -> list:
        """The page's Make default and Remove buttons: usable, or disabled with the rule that
        refuses them (the services' own checks: ``removal_blocked``, ``make_default_refusal``)."""
        tools = []
        if self.has_make_default_permission(request) and not method.is_default:
            tools.append(object_tool("make_default_selected", "Make default", make_default_refusal(method)))
        if self.has_remove_permission(request) and method.status != PaymentMethod.Status.REMOVED:
            tools.append(object_tool("remove_selected", "Remove (unlink)", removal_blocked(method)))
        return tools

    def has_make_default_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "make_default_paymentmethod")

    def has_remove_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "remove_paymentmethod")

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: PaymentMethod):
        return obj.account.uid

    @admin.display(description="region", ordering="account__region")
    def region(self, obj: PaymentMethod):
        return obj.account.get_region_display()

    @admin.action(description="Make default (DEF-2)", permissions=["make_default"])
    def make_default_selected(self, request, queryset):
        run_service_action(
            self, request, queryset,
            lambda method: services.payment_method_make_default(method_id=method.pk),
            done_message="{count} method(s) made the default of their account.",
        )

    @admin.action(description="Remove (unlink) (DEL-1..3)", permissions=["remove"])
    def remove_selected(self, request, queryset):
        """Behind a confirmation page: what is unlinked and what becomes the default, or the DEL
        rule that refuses it (``removal_blocked``, the service's own check)."""

        def perform(selected, reason):
            now = timezone.now()
            run_service_action(
                self, request, selected,
                lambda method: services.payment_method_remove(method_id=method.pk, now=now),
                done_message="Removed {count} payment method(s).", log_message="Removed (unlinked) through the admin.",
                reason=reason,
            )

        return confirmed_action(
            self, request, queryset.select_related("account"), action="remove_selected",
            title="Remove (unlink) payment methods",
            intro="A removed method is unlinked for good; its card or PayPal account can then be linked to "
            "another cloud account (DEL-4).",
            preview=lambda methods: [removal_preview(method) for method in methods], perform=perform,
        )
