"""Admin of verification holds (HOLD-2): read-only, filters for holds due or overdue for
release, and the release-now action (a gateway refusal is reported, the hold kept for a retry)."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from billing_backoffice.admin_site import (
    BigTableAdminMixin, ReadOnlyAdminMixin, has_model_perm, money_column, run_service_action,
)
from payments.admin.display import masked_html
from payments.models import VerificationHold
from payments.selectors import account_ids_named_by
from payments.services.holds import LOCAL_HOLD_AMOUNTS


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
        "id", "account_uid", "method", "amount_display", "status", "placed_at",
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

    amount_display = money_column("amount")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(account_id__in=account_ids_named_by(term)), False
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
