"""Staff admin of the payment-method domain: a thin layer over ``payments.services``.

- Payment methods, holds, link attempts and 3DS challenges are records owned by the processor
  or written by services: read-only here (``ReadOnlyAdminMixin``). Accounts allow editing only
  of contact fields; money and status fields are ``readonly_fields``.
- Every action needs its own ``Meta.permissions`` codename (SEC-3), loops over the selected ids
  with one service call each and reports refusals with the rule that refused.
- Card data: only ``PaymentMethod.masked`` (``•••• 4242``) is shown; the gateway token and the
  fingerprint are never displayed (SEC-1).
- Big tables: estimated counts, ``list_select_related``, raw-id foreign keys, and searches
  routed to indexed columns (digits -> ids / UIDs / last4, e-mail -> exact match).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.db.models import Prefetch, Q
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django.urls import reverse
from django.utils.html import format_html

from billing_backoffice.admin_site import (
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    has_model_perm,
    run_service_action,
)
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from payments import services
from payments.models import Account, Charge, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services.accounts import silent_period_ends_at
from payments.services.linking import LOCAL_HOLD_AMOUNTS

EMPTY = "—"
MAX_ID = 2**63 - 1  # a longer run of digits is no primary key (bigint)


def _digits_pk(term: str) -> Q:
    return Q(pk=int(term)) if int(term) <= MAX_ID else Q(pk__in=[])


def _account_uid_or_pk(term: str) -> Q:
    """Digits are an account UID (unique index) or an account id (primary key)."""
    return Q(uid=term) | _digits_pk(term)


def _account_ids(term: str) -> list[int]:
    """Accounts a digits search names, looked up first: one indexed query, after which the
    big table is filtered on its own indexed ``account_id`` instead of an OR across a join
    (which PostgreSQL answers with a sequential scan of both tables)."""
    return list(Account.objects.filter(_account_uid_or_pk(term)).values_list("pk", flat=True)[:2])


# --- display helpers shared by the admins and inlines -------------------------------------------


def agreement_not_approved(method: PaymentMethod) -> bool:
    """LINK-6: a PayPal method whose billing agreement is still (or was never) approved."""
    return method.kind == PaymentMethod.Kind.PAYPAL and (
        method.agreement_state == PaymentMethod.AgreementState.NOT_APPROVED
        or method.failure_reason == LinkAttempt.Reason.AGREEMENT_NOT_APPROVED
    )


def method_status_html(method: PaymentMethod):
    if agreement_not_approved(method):
        return format_html(
            "{} — <strong>{}</strong>",
            method.get_status_display(),
            PaymentMethod.AgreementState.NOT_APPROVED.label,
        )
    return method.get_status_display()


def masked_html(method: PaymentMethod | None):
    if method is None:
        return EMPTY
    return format_html("{} <code>{}</code>", method.get_kind_display(), method.masked)


class MethodDisplayMixin:
    """Columns for any admin whose rows are payment methods."""

    @admin.display(description="method")
    def method_masked(self, obj: PaymentMethod):
        return masked_html(obj)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: PaymentMethod):
        return method_status_html(obj)


# --- inlines on the account page -------------------------------------------------------------


class PaymentMethodInline(MethodDisplayMixin, ReadOnlyInline):
    model = PaymentMethod
    fields = readonly_fields = (
        "method_masked", "network", "status_display", "is_default", "expiry", "created_at"
    )


class HoldInline(ReadOnlyInline):
    model = VerificationHold
    fk_name = "account"
    fields = readonly_fields = (
        "method", "amount", "currency", "status", "placed_at", "release_deadline", "released_at"
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment_method")

    @admin.display(description="method")
    def method(self, obj: VerificationHold):
        return masked_html(obj.payment_method)


class RecentAttemptsFormSet(BaseInlineFormSet):
    """Only the newest ``limit`` attempts: an account can collect thousands (LINK-7)."""

    limit = 20

    def get_queryset(self):
        # Sliced once and cached: the inline formset filters by account before this runs.
        if not hasattr(self, "_recent"):
            self._recent = super().get_queryset()[: self.limit]
        return self._recent


class LinkAttemptInline(ReadOnlyInline):
    model = LinkAttempt
    formset = RecentAttemptsFormSet
    verbose_name_plural = "link attempts (20 most recent)"
    fields = readonly_fields = ("created_at", "kind", "outcome", "reason", "rule", "card", "detail")

    @admin.display(description="card")
    def card(self, obj: LinkAttempt):
        return f"•••• {obj.last4}" if obj.last4 else EMPTY


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
class AccountAdmin(BigTableAdminMixin, admin.ModelAdmin):
    form = AccountAdminForm
    list_display = (
        "uid", "name", "kind", "country_code", "region", "status", "silent_period_end", "kyc_status",
        "default_method", "credit_approved",
    )
    list_filter = ("region", "kind", "status", "kyc_status")
    list_select_related = ()  # the default method comes from one prefetch per page
    search_fields = ("uid",)  # routed by get_search_results
    search_help_text = "Account UID or id (digits), exact e-mail, or part of the name."
    raw_id_fields = ("account_manager",)
    actions = ("deactivate_selected", "reactivate_selected")
    inlines = (PaymentMethodInline, HoldInline, LinkAttemptInline)
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
        "has_outstanding_bills", "created_at", "settlement_and_ledger",
    )

    def get_queryset(self, request):
        defaults = PaymentMethod.objects.filter(is_default=True)
        return super().get_queryset(request).prefetch_related(
            Prefetch("payment_methods", queryset=defaults, to_attr="default_methods")
        )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(_account_uid_or_pk(term)), False
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

    @admin.display(description="silent period ends")
    def silent_period_end(self, obj: Account):
        if obj.status != Account.Status.DEACTIVATED:
            return EMPTY
        # Formatted here: the change page shows a callable's value with str() otherwise.
        return display_for_value(silent_period_ends_at(obj), EMPTY)

    @admin.action(description="Deactivate (start the 15-day silent period)", permissions=["deactivate"])
    def deactivate_selected(self, request, queryset):
        now = timezone.now()
        run_service_action(
            self, request, queryset,
            lambda account: services.account_deactivate(account_id=account.pk, now=now),
            done_message="Deactivated {count} account(s).",
        )

    @admin.action(description="Reactivate (within the silent period)", permissions=["deactivate"])
    def reactivate_selected(self, request, queryset):
        now = timezone.now()
        run_service_action(
            self, request, queryset,
            lambda account: services.account_reactivate(account_id=account.pk, now=now),
            done_message="Reactivated {count} account(s).",
        )


# --- payment methods -------------------------------------------------------------------------


@admin.register(PaymentMethod)
class PaymentMethodAdmin(MethodDisplayMixin, BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "method_masked", "network", "status_display", "is_default", "account_uid", "region",
        "expiry", "created_at",
    )
    list_display_links = ("id", "method_masked")
    list_filter = ("kind", "network", "status", "account__region", "is_default")
    list_select_related = ("account",)
    search_fields = ("last4",)  # routed by get_search_results
    search_help_text = "Last four digits, account UID or id, PayPal e-mail or payer id."
    raw_id_fields = ("account",)
    actions = ("make_default_selected", "remove_selected")
    # SEC-1: no gateway token, no fingerprint; the number itself is never stored.
    fieldsets = (
        (None, {"fields": ("account", "kind", "method_masked", "status_display", "is_default", "failure_reason")}),
        ("Card", {"fields": ("network", "funding", "issuing_country", "expiry", "cardholder_name", "company_name")}),
        ("Billing address", {"fields": ("billing_line1", "billing_city", "billing_postal_code", "billing_country")}),
        ("PayPal", {"fields": ("paypal_email", "paypal_payer_id", "paypal_country", "agreement_id", "agreement_state", "has_funding_source")}),
        ("Dates", {"fields": ("created_at", "activated_at", "status_changed_at", "removed_at")}),
    )
    readonly_fields = tuple(f for _, spec in fieldsets for f in spec["fields"])

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit() and len(term) == 4:
            return queryset.filter(last4=term), False
        if term.isdigit():
            return queryset.filter(Q(account_id__in=_account_ids(term)) | _digits_pk(term)), False
        if "@" in term:
            # ``kind`` too: the index on UPPER(paypal_email) is partial (PayPal rows only); without
            # it PostgreSQL reads every method (0.8 s at 2M, benchmarks/bench_admin.py).
            return queryset.filter(kind=PaymentMethod.Kind.PAYPAL, paypal_email__iexact=term), False
        return queryset.filter(paypal_payer_id__in={term, term.upper()}), False

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
        now = timezone.now()
        run_service_action(
            self, request, queryset,
            lambda method: services.payment_method_remove(method_id=method.pk, now=now),
            done_message="Removed {count} payment method(s).",
        )


# --- verification holds ------------------------------------------------------------------------


class CurrencyFilter(admin.SimpleListFilter):
    """Fixed choices: a DISTINCT over the holds table would scan it on every page view."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        currencies = {"USD", "EUR", *(currency for currency, _ in LOCAL_HOLD_AMOUNTS.values())}
        return [(c, c) for c in sorted(currencies)]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


class DueFilter(admin.SimpleListFilter):
    """HOLD-2: holds the release job should have voided by now."""

    title = "release"
    parameter_name = "due"
    OPEN = (VerificationHold.Status.PLACED, VerificationHold.Status.RELEASE_FAILED)

    def lookups(self, request, model_admin):
        return [("due", "Due for release"), ("overdue", "Overdue (past the 24-hour deadline)")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "due":
            return queryset.filter(status__in=self.OPEN, release_after__lte=now)
        if self.value() == "overdue":
            return queryset.filter(status__in=self.OPEN, release_deadline__lt=now)
        return queryset


@admin.register(VerificationHold)
class VerificationHoldAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "account_uid", "method", "amount", "currency", "status", "placed_at",
        "release_deadline", "overdue", "released_at", "release_attempts",
    )
    list_filter = ("status", CurrencyFilter, DueFilter)
    list_select_related = ("account", "payment_method")
    search_fields = ("authorization_id",)  # routed by get_search_results
    search_help_text = "Account UID or id (digits), or the exact authorization id."
    raw_id_fields = ("account", "payment_method")
    actions = ("release_selected",)
    fields = readonly_fields = (
        "account", "payment_method", "method", "amount", "currency", "descriptor",
        "authorization_id", "status", "placed_at", "release_after", "release_deadline", "overdue",
        "released_at", "release_attempts", "last_error", "lease_expires_at",
    )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(account_id__in=_account_ids(term)), False
        return queryset.filter(authorization_id=term), False

    def has_release_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, "release_verificationhold")

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: VerificationHold):
        return obj.account.uid

    @admin.display(description="method")
    def method(self, obj: VerificationHold):
        return masked_html(obj.payment_method)

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj: VerificationHold) -> bool:
        return obj.status != VerificationHold.Status.RELEASED and obj.release_deadline < timezone.now()

    @admin.action(description="Release now (void the hold, HOLD-2)", permissions=["release"])
    def release_selected(self, request, queryset):
        # Imported here: the holds service is its own module and the admin must load without it.
        from payments.services.holds import hold_release

        now = timezone.now()

        def not_released(hold, result):
            # A gateway failure is not an exception: the hold stays release_failed for a retry.
            if result.status != VerificationHold.Status.RELEASED:
                return f"not released ({result.get_status_display()}): {result.last_error or 'try again'}"
            return None

        run_service_action(
            self, request, queryset,
            lambda hold: hold_release(hold_id=hold.pk, now=now, actor=request.user),
            done_message="Released {count} hold(s).",
            check=not_released,
        )


# --- link attempts and 3DS challenges ----------------------------------------------------------


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
    list_filter = ("outcome", "reason", AttemptKindFilter, "created_at")
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
            return queryset.filter(account_id__in=_account_ids(term)), False
        return queryset.none(), False

    @admin.display(description="account", ordering="account__uid")
    def account_uid(self, obj: LinkAttempt):
        return obj.account.uid

    @admin.display(description="card")
    def card(self, obj: LinkAttempt):
        return f"•••• {obj.last4}" if obj.last4 else EMPTY


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
    list_filter = ("status", ChallengePurposeFilter, "trigger")
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
            return queryset.filter(payment_method__account_id__in=_account_ids(term)), False
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

# Bills, charges, usage and the ledger live in their own module to keep this one readable.
from payments import billing_admin  # noqa: E402,F401  (registers its ModelAdmins)
from billing_backoffice import audit_admin  # noqa: E402,F401  (audit log and History pages, SEC-2)
