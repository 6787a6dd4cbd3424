"""Admin of accounts: contact details only are editable; the change page tells the account's
whole story in bounded panels (``account_panels.py``: methods, holds, link attempts, bills,
charges, ledger, audit, and the remittances app's credit, dedicated account and claims); the
deactivate / reactivate actions (LIFE-1, LIFE-2).

Money, status and derived fields are ``readonly_fields``: they change only through services.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.db.models import Prefetch
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_backoffice.admin_export import StreamedExportMixin
from billing_backoffice.admin_site import BigTableAdminMixin, has_model_perm, run_service_action
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from billing_backoffice.work_queues import queue_filter
from billing_backoffice.admin_confirm import ObjectToolsMixin, Preview, confirmed_action, object_tool
from payments import services
from payments.admin import account_page  # noqa: F401  (registers the payments panels)
from payments.admin.account_panels import panels_for
from payments.admin.display import EMPTY, masked_html
from payments.admin.exports import AccountResource
from payments.models import Account, PaymentMethod
from payments.selectors import account_uid_or_pk
from payments.services.accounts import deactivation_refusal, reactivation_refusal, silent_period_ends_at
from payments.services.credit_control import account_credit_state
from payments.work_queues import ACCOUNT_QUEUES


# --- accounts ------------------------------------------------------------------------------


class AccountAdminForm(ForgetsCardNumbers, forms.ModelForm):
    """The contact details staff may fix; SEC-1: never a card number (refused before the audit row)."""

    class Meta:
        model = Account
        fields = ("name", "email", "account_manager")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("name", "email"):
            if name in self.fields:
                self.fields[name].validators.append(card_number_free)


@admin.register(Account)
class AccountAdmin(ObjectToolsMixin, StreamedExportMixin, BigTableAdminMixin, admin.ModelAdmin):
    resource_classes = [AccountResource]
    form = AccountAdminForm
    list_display = (
        "uid", "name", "kind", "country_code", "region", "status", "silent_period_end", "kyc_status",
        "default_method", "credit_approved",
    )
    # ?queue=reminder_level_<n>: the index's "Accounts at ..." credit-control figures (CC-1).
    list_filter = (queue_filter(ACCOUNT_QUEUES, "credit control"), "region", "kind", "status", "kyc_status")
    list_select_related = ()  # the default method comes from one prefetch per page
    search_fields = ("uid",)  # routed by get_search_results
    search_help_text = "Account UID or id (digits), exact e-mail, or part of the name."
    raw_id_fields = ("account_manager",)
    actions = ("deactivate_selected", "reactivate_selected")
    # Methods, holds, link attempts and the rest of the story are panels (account_page.py,
    # remittances/admin/account_panels.py), each one bounded query: no inline formsets.
    change_form_template = "admin/payments/account/change_form.html"
    fieldsets = (
        (None, {"fields": ("uid", "name", "email", "kind", "country", "region", "account_manager")}),
        ("Status", {"fields": ("status", "deactivated_at", "silent_period_end", "closed_at", "kyc_status")}),
        ("Methods", {"fields": ("default_method",)}),
        (
            "Credit and settlement",
            {
                "fields": (
                    "credit_approved", "credit_limit", "credit_currency", "auto_settlement_enabled",
                    "settlement_and_ledger", "has_running_resources", "has_outstanding_bills",
                    "credit_control",
                )
            },
        ),
        (None, {"fields": ("created_at",)}),
    )
    # Money, status and derived fields change only through services (region follows the
    # country, ELIG-1); staff with change permission may fix contact details only.
    readonly_fields = (
        "uid", "kind", "country", "region", "status", "deactivated_at", "silent_period_end",
        "closed_at", "kyc_status", "default_method", "credit_approved", "credit_limit",
        "credit_currency", "auto_settlement_enabled", "has_running_resources",
        "has_outstanding_bills", "created_at", "settlement_and_ledger", "credit_control",
    )

    def get_queryset(self, request):
        defaults = PaymentMethod.objects.filter(is_default=True)
        return super().get_queryset(request).prefetch_related(
            Prefetch("payment_methods", queryset=defaults, to_attr="default_methods")
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        """Issue 10: the whole story of the account, panel by panel (account_panels.py)."""
        if obj is not None:
            context["account_panels"] = panels_for(request, obj, timezone.now())
        return super().render_change_form(request, context, add, change, form_url, obj)

    def object_tools(self, request, account: Account) -> list:
        """Deactivate or Reactivate on the account's page, through the confirmation page; disabled
        with the rule that refuses it (LINK-2, DEL-3: the services' own checks)."""
        if not self.has_deactivate_permission(request):
            return []
        if account.status == Account.Status.ACTIVE:
            return [object_tool("deactivate_selected", "Deactivate", deactivation_refusal(account))]
        if account.status == Account.Status.DEACTIVATED:
            refusal = reactivation_refusal(account, now=timezone.now())
            return [object_tool("reactivate_selected", "Reactivate", refusal)]
        return []

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.replace(" ", "").isdigit():  # a UID as printed in groups of four digits
            return queryset.filter(account_uid_or_pk(term.replace(" ", ""))), False
        if "@" in term:
            return queryset.filter(email__iexact=term), False
        return queryset.filter(name__icontains=term), False

    # Accounts are created by the console (the service derives the region) and are closed,
    # never deleted: ledger and method rows point at them.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_deactivate_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "deactivate_account")

    @admin.display(description="country", ordering="country")
    def country_code(self, obj: Account) -> str:
        # The field's own display flattens the ~250 country choices for every row.
        return obj.country.code

    @admin.display(description="default method")
    def default_method(self, obj: Account):
        methods = getattr(obj, "default_methods", None)
        if methods is None:  # object not loaded through get_queryset
            methods = list(obj.payment_methods.filter(is_default=True))
        return masked_html(methods[0] if methods else None)

    @admin.display(description="settlement switch and ledger")
    def settlement_and_ledger(self, obj: Account):
        """SET-1 switch (finance) and the account's ledger with its running balance."""
        return format_html(
            '<a href="{}">automatic settlement: {}</a> · <a href="{}">ledger</a>',
            reverse("admin:payments_bill_settlement", args=[obj.pk]),
            "on" if obj.auto_settlement_enabled else "off",
            reverse("admin:payments_ledgerentry_account", args=[obj.pk]),
        )

    @admin.display(description="dunning level, pause, hold, messages")
    def credit_control(self, obj: Account):
        """CC-1..3 at a glance (the change page only: the changelist keeps its fixed query count),
        with links to the account's reminders, holds, pauses and notifications (NOTIFY-1)."""
        state = account_credit_state(account_id=obj.pk, now=timezone.now())
        pause, hold = state["pause"], state["hold"]
        return format_html(
            'level {} · {} · {} · <a href="{}">reminders</a> · <a href="{}">holds</a> · <a href="{}">pauses</a>'
            ' · <a href="{}">notifications</a>',
            state["level"] or "none",
            f"paused until {pause.ends_at:%Y-%m-%d}" if pause else "not paused",
            f"on credit hold since {hold.started_at:%Y-%m-%d}" if hold else "no credit hold",
            *(f"{reverse(f'admin:payments_{model}_changelist')}?account__id__exact={obj.pk}"
              for model in ("reminder", "credithold", "reminderpause", "notification")),
        )

    @admin.display(description="silent period ends")
    def silent_period_end(self, obj: Account):
        if obj.status != Account.Status.DEACTIVATED:
            return EMPTY
        # Formatted here: the change page shows a callable's value with str() otherwise.
        return display_for_value(silent_period_ends_at(obj), EMPTY)

    @admin.action(description="Deactivate (start the 15-day silent period)", permissions=["deactivate"])
    def deactivate_selected(self, request, queryset):
        """Behind a confirmation page: when the silent period ends, or the rule that refuses it."""
        return self._lifecycle_action(request, queryset, deactivate=True)

    @admin.action(description="Reactivate (within the silent period)", permissions=["deactivate"])
    def reactivate_selected(self, request, queryset):
        return self._lifecycle_action(request, queryset, deactivate=False)

    def _lifecycle_action(self, request, queryset, *, deactivate: bool):
        service = services.account_deactivate if deactivate else services.account_reactivate
        verb = "Deactivated" if deactivate else "Reactivated"

        def perform(selected, reason):
            now = timezone.now()
            run_service_action(
                self, request, selected, lambda account: service(account_id=account.pk, now=now),
                done_message=f"{verb} {{count}} account(s).", log_message=f"{verb} through the admin.",
                reason=reason,
            )

        now = timezone.now()
        return confirmed_action(
            self, request, queryset, action="deactivate_selected" if deactivate else "reactivate_selected",
            title="Deactivate accounts" if deactivate else "Reactivate accounts",
            intro="Deactivating starts the 15-day silent period: the methods stay linked, the account can be "
            "reactivated until it ends, then it is closed and its methods released (LINK-2)." if deactivate
            else "Reactivating ends the silent period; the account keeps its methods (LINK-2).",
            preview=lambda accounts: [lifecycle_preview(a, deactivate=deactivate, now=now) for a in accounts],
            perform=perform,
        )


def lifecycle_preview(account: Account, *, deactivate: bool, now) -> Preview:
    """What deactivating (or reactivating) ``account`` does, or the LINK-2/DEL-3 refusal."""
    label = f"Account {account.uid} {account.name}"
    refusal = deactivation_refusal(account) if deactivate else reactivation_refusal(account, now=now)
    if refusal is not None:
        return Preview(label, refusal=refusal.rule_text)
    target = Account.Status.DEACTIVATED if deactivate else Account.Status.ACTIVE
    if account.status == target:
        return Preview(label, [("Status", f"Already {target.label.lower()}: nothing changes.")])
    lines = [("Status", f"{account.get_status_display()} -> {target.label}")]
    if deactivate:
        ends = now + settings.ACCOUNT_SILENT_PERIOD
        lines.append(("Silent period ends", f"{ends:%Y-%m-%d %H:%M} UTC; then the account is closed"))
    return Preview(label, lines)
