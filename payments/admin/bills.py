"""Admin of bills: read-only money records (services own every write), the "pay from balance"
action (SET-3) and the automatic-settlement switch (SET-1).

- Big tables: estimated counts, no facets, ``list_select_related``, raw-id foreign keys, filters
  with fixed choices (no ``DISTINCT`` over millions of rows), searches routed to indexed columns
  (digits -> ids and account UIDs, anything else -> the exact unique reference), ordering by the
  primary key (an index) rather than by an unindexed date.
- SET-1 switch: a custom view under the bills admin (``bill/settlement/<account id>/``), linked
  from every bill row; it needs ``payments.pay_bill`` (finance, who pay by hand once it is off)
  or ``payments.change_account``.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_backoffice.admin_site import (
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    has_model_perm,
    money_cell,
    money_column,
    refusal_text,
    run_service_action,
)
from billing_backoffice.admin_confirm import confirmed_action
from billing_backoffice.admin_export import StreamedExportMixin
from billing_backoffice.errors import BillingError
from payments.admin import bill_page
from payments.admin.bill_payment import payment_previews
from payments.admin.display import account_link, route_search
from payments.admin.exports import BillResource
from payments.models import Account, Bill
from payments.work_queues import BILL_QUEUES
from billing_backoffice.work_queues import queue_filter
from payments.selectors import settlement_switch_history
from payments.services.bills import bill_pay_manual, settlement_switch

TEMPLATES = "admin/dashboard"


def can_switch_settlement(user) -> bool:
    return user.has_perm("payments.pay_bill") or user.has_perm("payments.change_account")


# --- filters (fixed choices: no query to build them) -------------------------------------------


class DueFilter(admin.SimpleListFilter):
    """CRED-3: bills marked overdue, unpaid bills past due that the job has not marked yet, and
    bills due in the next seven days."""

    title = "overdue"
    parameter_name = "due"
    UNPAID_NOT_OVERDUE = (Bill.Status.OPEN, Bill.Status.PARTIALLY_PAID)

    def lookups(self, request, model_admin):
        return [
            ("overdue", "Overdue"),
            ("past_due", "Past due, not yet marked"),
            ("week", "Due in the next 7 days"),
        ]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "overdue":
            return queryset.filter(status=Bill.Status.OVERDUE)
        if self.value() == "past_due":
            return queryset.filter(status__in=self.UNPAID_NOT_OVERDUE, due_date__lt=today)
        if self.value() == "week":
            return queryset.filter(
                status__in=Bill.UNPAID_STATUSES, due_date__gte=today, due_date__lt=today + timedelta(days=7)
            )
        return queryset


class AmountFilter(admin.SimpleListFilter):
    title = "total"
    parameter_name = "total"
    RANGES = {
        "lt100": (None, 100),
        "100-1k": (100, 1_000),
        "1k-10k": (1_000, 10_000),
        "10k+": (10_000, None),
    }

    def lookups(self, request, model_admin):
        return [("lt100", "Under 100"), ("100-1k", "100 to 1,000"), ("1k-10k", "1,000 to 10,000"), ("10k+", "10,000 and more")]

    def queryset(self, request, queryset):
        bounds = self.RANGES.get(self.value())
        if not bounds:
            return queryset
        low, high = bounds
        if low is not None:
            queryset = queryset.filter(total__gte=low)
        if high is not None:
            queryset = queryset.filter(total__lt=high)
        return queryset


# --- bills ----------------------------------------------------------------------------------------


class SettlementSwitchForm(forms.Form):
    enabled = forms.TypedChoiceField(
        choices=[("1", "On"), ("0", "Off")], coerce=lambda v: v == "1", widget=forms.HiddenInput
    )


@admin.register(Bill)
class BillAdmin(StreamedExportMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    resource_classes = [BillResource]
    list_display = (
        "reference", "account_uid", "status", "total_display", "outstanding", "due_date", "issued_at",
        "kind", "settlement",  # the region is a filter and on the account page: the list fits 1440 px
    )
    list_display_links = ("reference",)
    list_filter = (
        queue_filter(BILL_QUEUES), "status", DueFilter, "due_date", AmountFilter, "account__region", "kind",
        "account__auto_settlement_enabled",
    )
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    ordering = ("-id",)
    search_fields = ("reference",)  # routed by get_search_results
    search_help_text = "Bill id, account UID or id (digits), or the exact bill reference."
    actions = ("pay_from_balance",)
    fieldsets = (
        (None, {"fields": ("account", "account_uid", "settlement", "kind", "order_kind", "reference")}),
        ("Period", {"fields": ("period_start", "period_end", "issued_at", "due_date")}),
        ("Amounts", {"fields": ("amount_before_tax", "tax", "total", "currency", "amount_paid", "outstanding", "status", "paid_at")}),
        ("Ledger", {"fields": ("ledger",)}),
        ("Charge attempts and payments", {"fields": ("charge_attempts", "payments_made")}),
    )
    readonly_fields = tuple(f for _, spec in fieldsets for f in spec["fields"])

    def get_search_results(self, request, queryset, search_term):
        return route_search(queryset, search_term, reference_field="reference")

    def has_pay_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "pay_bill")

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: Bill):
        return account_link(obj.account)

    @admin.display(description="region", ordering="account__region")
    def region(self, obj: Bill):
        return obj.account.get_region_display()

    @admin.display(description="outstanding")
    def outstanding(self, obj: Bill):
        return money_cell(obj.outstanding, obj.currency)

    total_display = money_column("total")

    @admin.display(description="automatic settlement")
    def settlement(self, obj: Bill):
        state = "on" if obj.account.auto_settlement_enabled else "off"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:payments_bill_settlement", args=[obj.account_id]), state
        )

    @admin.display(description="charge attempts (PAY-1..5)")
    def charge_attempts(self, obj: Bill):
        return bill_page.charge_attempts_html(obj)

    @admin.display(description="payments (ledger, SET-2/SET-3)")
    def payments_made(self, obj: Bill):
        return bill_page.payments_html(obj)

    @admin.display(description="ledger")
    def ledger(self, obj: Bill):
        return format_html(
            '<a href="{}">Ledger of the account</a>',
            reverse("admin:payments_ledgerentry_account", args=[obj.account_id]),
        )

    @admin.action(description="Pay from balance (SET-3, accounts with settlement off)", permissions=["pay"])
    def pay_from_balance(self, request, queryset):
        """Behind a confirmation page: each bill's amount and the balance after it, or the
        SET-2/SET-3 refusal; the service checks everything again when confirmed."""

        def perform(selected, reason):
            now = timezone.now()
            run_service_action(
                self, request, selected,
                lambda bill: bill_pay_manual(bill_id=bill.pk, actor=request.user, now=now),
                done_message="Paid {count} bill(s) from the balance.", log_message="Paid from the balance (SET-3).",
                reason=reason,
            )

        return confirmed_action(
            self, request, queryset.select_related("account"), action="pay_from_balance",
            title="Pay bills from the balance",
            intro="Each bill is paid in full from its account's balance in the bill's currency, oldest first "
            "(SET-2); accounts with automatic settlement on are paid by the settlement instead (SET-3).",
            preview=payment_previews, perform=perform,
        )

    # SET-1: the switch, per account.

    def get_urls(self):
        own = [
            path(
                "settlement/<int:account_id>/",
                self.admin_site.admin_view(self.settlement_view),
                name="payments_bill_settlement",
            ),
        ]
        return own + super().get_urls()

    def settlement_view(self, request, account_id: int):
        if not (self.has_view_permission(request) or request.user.has_perm("payments.view_account")):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=account_id)
        may_switch = can_switch_settlement(request.user)
        if request.method == "POST":
            if not may_switch:
                raise PermissionDenied
            form = SettlementSwitchForm(request.POST)
            if form.is_valid():
                try:
                    settlement_switch(
                        account_id=account.pk, enabled=form.cleaned_data["enabled"], actor=request.user,
                        now=timezone.now(),
                    )
                except BillingError as error:
                    self.message_user(request, refusal_text(str(account), error), messages.ERROR)
                else:
                    state = "on" if form.cleaned_data["enabled"] else "off"
                    self.message_user(request, f"Automatic settlement is {state} for {account}.", messages.SUCCESS)
                return HttpResponseRedirect(request.path)
        account.refresh_from_db()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Automatic settlement: {account}",
            "account": account,
            "may_switch": may_switch,
            "form": SettlementSwitchForm(initial={"enabled": "0" if account.auto_settlement_enabled else "1"}),
            "history": settlement_switch_history(account_id=account.pk),
            "bills_url": reverse("admin:payments_bill_changelist") + f"?q={account.uid}",
            "ledger_url": reverse("admin:payments_ledgerentry_account", args=[account.pk]),
        }
        return TemplateResponse(request, f"{TEMPLATES}/settlement_switch.html", context)
