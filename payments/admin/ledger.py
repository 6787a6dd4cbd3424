"""Admin of the ledger (SEC-4): read-only entries, and an account's ledger with the running
balance after each entry."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from billing_backoffice.admin_export import StreamedExportMixin
from billing_backoffice.admin_site import BigTableAdminMixin, ReadOnlyAdminMixin, money_column
from payments.admin.display import route_search
from payments.admin.exports import LedgerEntryResource
from payments.admin.filters import CreditedTodayFilter
from payments.models import Account, LedgerEntry
from payments.selectors import account_balances, account_ledger

TEMPLATES = "admin/dashboard"
LEDGER_PAGE_SIZE = 100


# --- the ledger -----------------------------------------------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(StreamedExportMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    resource_classes = [LedgerEntryResource]
    list_display = ("id", "created_at", "account_ledger", "kind", "amount_display", "reference", "created_by")
    list_filter = ("kind", CreditedTodayFilter)
    list_select_related = ("account", "created_by")
    raw_id_fields = ("account", "reverses", "created_by")
    ordering = ("-id",)
    search_fields = ("reference",)  # routed by get_search_results
    search_help_text = "Entry id, account UID or id (digits), or the exact reference."
    fields = readonly_fields = (
        "account", "amount", "currency", "kind", "reference", "reverses", "memo", "created_by", "created_at",
    )

    amount_display = money_column("amount", signed=True)

    def get_search_results(self, request, queryset, search_term):
        return route_search(queryset, search_term, reference_field="reference")

    @admin.display(description="account (ledger)", ordering="account__uid")
    def account_ledger(self, obj: LedgerEntry):
        return format_html(
            '<a href="{}" title="Ledger of this account with its running balance">{}</a>',
            reverse("admin:payments_ledgerentry_account", args=[obj.account_id]), obj.account.uid,
        )

    def get_urls(self):
        own = [
            path(
                "account/<int:account_id>/",
                self.admin_site.admin_view(self.account_ledger_view),
                name="payments_ledgerentry_account",
            ),
        ]
        return own + super().get_urls()

    def account_ledger_view(self, request, account_id: int):
        """SEC-4: an account's entries, newest first, each with the balance after it (per currency,
        a window function over the account's entries in posting order)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=account_id)
        page = Paginator(account_ledger(account_id=account.pk), LEDGER_PAGE_SIZE).get_page(request.GET.get("p"))
        balances = [
            {"currency": currency, "balance": balance}
            for currency, balance in account_balances(account_id=account.pk).items()
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Ledger of {account}",
            "account": account,
            "page": page,
            "balances": balances,
            "changelist_url": reverse("admin:payments_ledgerentry_changelist") + f"?q={account.uid}",
        }
        return TemplateResponse(request, f"{TEMPLATES}/ledger_account.html", context)
