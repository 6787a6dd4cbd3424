"""The daily proof and the reversal queue in the admin (RCN-1..3, RVS-1/RVS-2).

- Reconciliation days: the page per receiving account and day (opening balance, booked entries,
  closing balance, the back office's totals per state and age, the verdict, its exceptions).
- Reconciliation exceptions and bank reversals: finance's work queues (open items first), each
  with the statements and entries involved; "resolve" records who, when and what (one service
  call). Every record is read-only; the job and the services write them.
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
from django.utils.html import format_html, format_html_join

from billing_backoffice.admin_site import (
    BigTableAdminMixin, ReadOnlyAdminMixin, ReadOnlyInline, money_column, refusal_text,
)
from payments.admin.display import account_link
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from remittances.models import BankReversal, ReconciliationDay, ReconciliationException
from remittances.work_queues import REVERSAL_QUEUES
from billing_backoffice.work_queues import queue_filter
from remittances.services import reconciliation, reversals

TEMPLATE = "admin/remittances/refunds/form.html"


class ResolveForm(ForgetsCardNumbers, forms.Form):
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), validators=[card_number_free],
                                 help_text="What was found and what was done.")


class OpenFilter(admin.SimpleListFilter):
    title = "resolution"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open (to resolve)"), ("no", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


def _links(model: str, ids) -> str:
    if not ids:
        return "—"
    return format_html_join(", ", '<a href="{}">#{}</a>', (
        (reverse(f"admin:remittances_{model}_change", args=[pk]), pk) for pk in ids[:50]))


class ResolveMixin:
    resolve_permission = ""

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm(self.resolve_permission)

    def _resolve_page(self, request, obj_id: int, call):
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        obj = get_object_or_404(self.model, pk=obj_id)
        form = ResolveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                call(obj, form.cleaned_data["resolution"])
            except BillingError as error:
                self.message_user(request, refusal_text(str(obj), error), messages.ERROR)
            else:
                self.message_user(request, f"{obj}: resolution recorded.", messages.SUCCESS)
            return HttpResponseRedirect(reverse(f"admin:remittances_{self.opts.model_name}_change", args=[obj.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": f"Resolve {obj}",
                   "form": form, "obj": obj}
        return TemplateResponse(request, TEMPLATE, context)

    @admin.display(description="resolve")
    def resolve_link(self, obj):
        if obj.resolved_at is not None:
            return format_html("{} by {}", obj.resolution[:80], obj.resolved_by)
        return format_html('<a href="{}">Record a resolution</a>',
                           reverse(f"admin:remittances_{self.opts.model_name}_resolve", args=[obj.pk]))


class ExceptionInline(ReadOnlyInline):
    model = ReconciliationException
    fields = ("rule", "detail", "amount", "statement_ids", "transaction_ids", "resolution", "resolved_by")
    readonly_fields = fields


@admin.register(ReconciliationDay)
class ReconciliationDayAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("day", "receiving_account", "verdict", "opening", "booked", "closing", "ledger", "bank")
    opening = money_column("opening_balance")
    booked = money_column("booked_total")
    closing = money_column("closing_balance")
    ledger = money_column("ledger_credited")
    bank = money_column("bank_creditable")
    list_filter = ("verdict", "day")
    list_select_related = ("receiving_account",)
    search_fields = ("=receiving_account__number",)
    date_hierarchy = "day"
    raw_id_fields = ("receiving_account",)
    exclude = ("totals_per_state", "run_id")
    readonly_fields = ("states", "last_30_days")
    inlines = [ExceptionInline]

    @admin.display(description="the last 30 days")
    def last_30_days(self, obj):
        """One cell per day up to this one: green agreed, red difference, grey resolved or missing."""
        colours = {"agreed": "#2e7d32", "difference": "#c62828", "resolved": "#9e9e9e"}
        days = dict(ReconciliationDay.objects.filter(
            receiving_account_id=obj.receiving_account_id, day__gt=obj.day - timedelta(days=30), day__lte=obj.day,
        ).values_list("day", "verdict"))
        cells = []
        for offset in range(29, -1, -1):
            day = obj.day - timedelta(days=offset)
            verdict = days.get(day, "not run")
            cells.append((colours.get(verdict, "#e0e0e0"), f"{day}: {verdict}"))
        strip = format_html_join("", '<span title="{1}" style="display:inline-block;width:10px;height:24px;'
                                     'margin-right:2px;background:{0}"></span>', cells)
        return format_html('<div aria-label="verdicts of the last 30 days">{}</div>', strip)

    @admin.display(description="booked credits per state and age (RCN-3)")
    def states(self, obj):
        rows = [
            (state, figures["count"], figures["amount"],
             ", ".join(f"{age}: {v['count']} / {v['amount']}" for age, v in sorted(figures["by_age"].items())))
            for state, figures in sorted(obj.totals_per_state.items())
        ]
        if not rows:
            return "—"
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><tr><th>state</th><th>count</th><th>amount</th><th>by age</th></tr>{}</table>", body)


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(ResolveMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    resolve_permission = "remittances.resolve_reconciliationday"
    list_display = ("id", "day", "rule", "detail", "amount_display", "resolve_link")
    amount_display = money_column("amount")
    list_filter = (OpenFilter, "rule")
    list_select_related = ("day", "day__receiving_account", "resolved_by")
    raw_id_fields = ("day",)
    readonly_fields = ("statements", "entries", "resolve_link")

    @admin.display(description="statements")
    def statements(self, obj):
        return _links("bankstatement", obj.statement_ids)

    @admin.display(description="entries")
    def entries(self, obj):
        return _links("banktransaction", obj.transaction_ids)

    def get_urls(self):
        return [path("<int:obj_id>/resolve/", self.admin_site.admin_view(self.resolve_view),
                     name="remittances_reconciliationexception_resolve"), *super().get_urls()]

    def resolve_view(self, request, obj_id: int):
        return self._resolve_page(request, obj_id, lambda obj, text: reconciliation.reconciliation_exception_resolve(
            exception_id=obj.pk, actor=request.user, resolution=text, now=timezone.now()))


@admin.register(BankReversal)
class BankReversalAdmin(ResolveMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    resolve_permission = "remittances.resolve_bankreversal"
    list_display = ("id", "outcome", "reversal_of", "account_cell", "amount_display", "reversal", "original",
                    "created_at", "resolve_link")
    list_filter = (queue_filter(REVERSAL_QUEUES), OpenFilter, "outcome", "reversal_of")
    list_select_related = ("account", "reversal", "original", "resolved_by")
    amount_display = money_column("amount")
    account_cell = admin.display(description="account", ordering="account__uid")(lambda self, obj: account_link(obj.account))
    raw_id_fields = ("reversal", "original", "account", "ledger_entry")
    readonly_fields = ("resolve_link",)

    def get_urls(self):
        return [path("<int:obj_id>/resolve/", self.admin_site.admin_view(self.resolve_view),
                     name="remittances_bankreversal_resolve"), *super().get_urls()]

    def resolve_view(self, request, obj_id: int):
        return self._resolve_page(request, obj_id, lambda obj, text: reversals.reversal_resolve(
            reversal_record_id=obj.pk, actor=request.user, resolution=text, now=timezone.now()))
