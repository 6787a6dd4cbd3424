"""Columns and links shared by the payments admins: masked payment methods (SEC-1: only
``PaymentMethod.masked`` is ever shown), LINK-6 agreement state, links to an account, and the
search routing of the big money tables."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from billing_backoffice.admin_site import digits_pk
from payments.models import Account, LinkAttempt, PaymentMethod
from payments.selectors import account_ids_named_by

EMPTY = "—"


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



# A long customer name is cut with an ellipsis (its full text in the tooltip) so that a list row
# never wraps and the columns after it stay on a 1440 px screen.
NAME_CELL = ('<span class="account-name" title="{}" style="display: inline-block; max-width: 10em; overflow: hidden;'
             ' text-overflow: ellipsis; white-space: nowrap; vertical-align: bottom">{}</span>')


def account_link(account: Account | None):
    """The account's UID linked to its page, then its name: never its internal id."""
    if account is None:
        return EMPTY
    return format_html(
        '<a href="{}">{}</a> ' + NAME_CELL,
        reverse("admin:payments_account_change", args=[account.pk]), account.uid, account.name, account.name,
    )


def route_search(queryset, term: str, *, reference_field: str | None):
    """Digits -> the row's id or its account; other text -> the exact unique reference."""
    term = term.strip()
    if not term:
        return queryset, False
    if term.isdigit():
        return queryset.filter(Q(account_id__in=account_ids_named_by(term)) | digits_pk(term)), False
    if reference_field:
        return queryset.filter(**{reference_field: term}), False
    return queryset.none(), False
