"""Admin of bills, charges, usage and the ledger: read-only money records (services own every
write), the "pay from balance" action (SET-3), the automatic-settlement switch (SET-1), an
account's ledger with its running balance, and today's figures on the admin index.

- Bills, charges, usage records and ledger entries are never edited here (``ReadOnlyAdminMixin``):
  amounts and statuses change only through the billing and settlement services.
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
from django.core.paginator import Paginator
from django.db.models import F, Q, Sum, Window
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
    refusal_text,
    run_service_action,
)
from billing_backoffice.dashboard import billing_dashboard
from billing_backoffice.errors import BillingError
from payments.models import Account, Bill, Charge, LedgerEntry, ThreeDSChallenge, UsageRecord
from payments.services.bills import bill_pay_manual, settlement_switch, settlement_switch_history

EMPTY = "—"
MAX_ID = 2**63 - 1
TEMPLATES = "admin/dashboard"
LEDGER_PAGE_SIZE = 100


def _account_ids(term: str) -> list[int]:
    """Digits name an account by UID (unique index) or id; looked up first (one indexed query)."""
    by_pk = Q(pk=int(term)) if int(term) <= MAX_ID else Q(pk__in=[])
    return list(Account.objects.filter(Q(uid=term) | by_pk).values_list("pk", flat=True)[:2])


def _digits_pk(term: str) -> Q:
    return Q(pk=int(term)) if int(term) <= MAX_ID else Q(pk__in=[])


def route_search(queryset, term: str, *, reference_field: str | None):
    """Digits -> the row's id or its account; other text -> the exact unique reference."""
    term = term.strip()
    if not term:
        return queryset, False
    if term.isdigit():
        return queryset.filter(Q(account_id__in=_account_ids(term)) | _digits_pk(term)), False
    if reference_field:
        return queryset.filter(**{reference_field: term}), False
    return queryset.none(), False


def account_link(account: Account):
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:payments_account_change", args=[account.pk]), account.uid
    )


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
        return [(reason, reason) for reason in sorted(reasons)]

    def queryset(self, request, queryset):
        return queryset.filter(failure_reason=self.value()) if self.value() else queryset


# --- bills ----------------------------------------------------------------------------------------


class SettlementSwitchForm(forms.Form):
    enabled = forms.TypedChoiceField(
        choices=[("1", "On"), ("0", "Off")], coerce=lambda v: v == "1", widget=forms.HiddenInput
    )


@admin.register(Bill)
class BillAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "reference", "account_uid", "region", "kind", "issued_at", "due_date", "total",
        "amount_paid", "outstanding", "currency", "status", "settlement",
    )
    list_display_links = ("id", "reference")
    list_filter = (
        "status", DueFilter, "due_date", AmountFilter, "account__region", "kind",
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
        return obj.outstanding

    @admin.display(description="automatic settlement")
    def settlement(self, obj: Bill):
        state = "on" if obj.account.auto_settlement_enabled else "off"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:payments_bill_settlement", args=[obj.account_id]), state
        )

    @admin.display(description="ledger")
    def ledger(self, obj: Bill):
        return format_html(
            '<a href="{}">Ledger of the account</a>',
            reverse("admin:payments_ledgerentry_account", args=[obj.account_id]),
        )

    @admin.action(description="Pay from balance (SET-3, accounts with settlement off)", permissions=["pay"])
    def pay_from_balance(self, request, queryset):
        now = timezone.now()
        run_service_action(
            self, request, queryset,
            lambda bill: bill_pay_manual(bill_id=bill.pk, actor=request.user, now=now),
            done_message="Paid {count} bill(s) from the balance.",
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


# --- charges and usage ----------------------------------------------------------------------------


@admin.register(Charge)
class ChargeAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "account_uid", "kind", "amount", "currency", "status", "failure_reason", "failure_rule",
        "attempts", "created_at", "completed_at", "bill_id",
    )
    list_filter = ("status", "kind", FailureReasonFilter)
    list_select_related = ("account",)
    raw_id_fields = ("account", "bill", "payment_method", "authenticated_by")
    ordering = ("-id",)
    search_fields = ("idempotency_key",)  # routed by get_search_results
    search_help_text = "Charge id, account UID or id (digits), or the exact idempotency key."
    fields = readonly_fields = (
        "account", "bill", "payment_method", "kind", "amount", "currency", "status", "failure_reason",
        "failure_rule", "failure_detail", "three_ds", "gateway_reference", "idempotency_key", "attempts",
        "created_at", "completed_at",
    )

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
    list_display = ("id", "account_uid", "amount", "currency", "period", "status", "reference", "reported_at", "charge_id", "bill_id")
    list_filter = ("status",)
    list_select_related = ("account",)
    raw_id_fields = ("account", "charge", "bill")
    ordering = ("-id",)
    search_fields = ("reference",)  # routed by get_search_results
    search_help_text = "Usage id, account UID or id (digits), or the console's exact reference."
    fields = readonly_fields = ("account", "amount", "currency", "period", "status", "reference", "reported_at", "charge", "bill")

    def get_search_results(self, request, queryset, search_term):
        return route_search(queryset, search_term, reference_field="reference")

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: UsageRecord):
        return account_link(obj.account)


# --- the ledger -----------------------------------------------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "account_ledger", "kind", "amount", "currency", "reference", "created_by")
    list_filter = ("kind",)
    list_select_related = ("account", "created_by")
    raw_id_fields = ("account", "reverses", "created_by")
    ordering = ("-id",)
    search_fields = ("reference",)  # routed by get_search_results
    search_help_text = "Entry id, account UID or id (digits), or the exact reference."
    fields = readonly_fields = (
        "account", "amount", "currency", "kind", "reference", "reverses", "memo", "created_by", "created_at",
    )

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
        entries = (
            LedgerEntry.objects.filter(account_id=account.pk)
            .select_related("created_by")
            .annotate(
                running_balance=Window(
                    Sum("amount"), partition_by=[F("currency")], order_by=[F("created_at").asc(), F("id").asc()]
                )
            )
            .order_by("-created_at", "-id")
        )
        page = Paginator(entries, LEDGER_PAGE_SIZE).get_page(request.GET.get("p"))
        balances = (
            LedgerEntry.objects.filter(account_id=account.pk).values("currency").annotate(balance=Sum("amount")).order_by("currency")
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Ledger of {account}",
            "account": account,
            "page": page,
            "balances": list(balances),
            "changelist_url": reverse("admin:payments_ledgerentry_changelist") + f"?q={account.uid}",
        }
        return TemplateResponse(request, f"{TEMPLATES}/ledger_account.html", context)


# --- the admin index: today's figures -------------------------------------------------------------


def install_dashboard(site: admin.AdminSite) -> None:
    """Add today's billing figures to the index page's context (``templates/admin/index.html``).

    The default site is used as is (no custom ``AdminSite`` class), so its ``index`` view is
    wrapped once, before the site builds its URLs.
    """
    original = site.index
    if getattr(original, "with_billing_dashboard", False):
        return

    def index(request, extra_context=None):
        board = billing_dashboard(user=request.user, now=timezone.now())
        return original(request, extra_context={"billing_dashboard": board, **(extra_context or {})})

    index.with_billing_dashboard = True
    site.index = index


install_dashboard(admin.site)
