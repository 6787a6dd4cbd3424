"""Activation and the default method (DEF-1, DEF-2, HOLD-3)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from payments.errors import DefaultSwitchRefused, PaymentMethodNotFound
from payments.models import Account, PaymentMethod

Status = PaymentMethod.Status


@transaction.atomic
def payment_method_activate(*, method_id: int, now: datetime) -> PaymentMethod:
    """HOLD-3 / DEF-1: a verified method becomes active; the account's first becomes default.

    Only the verification services call this, after the hold succeeded (and 3DS where required).
    The account row is locked so two methods activating at once cannot both become default.
    """
    method = PaymentMethod.objects.select_related("account").get(pk=method_id)
    Account.objects.select_for_update().get(pk=method.account_id)
    method = PaymentMethod.objects.select_for_update().get(pk=method_id)
    if method.status == Status.ACTIVE:
        return method  # a replay changes nothing
    if method.status != Status.PENDING:
        return method  # removed or failed meanwhile: never resurrect it
    has_default = PaymentMethod.objects.filter(account_id=method.account_id, is_default=True).exists()
    method.status = Status.ACTIVE
    method.activated_at = now
    method.status_changed_at = now
    method.is_default = not has_default
    method.save(update_fields=["status", "activated_at", "status_changed_at", "is_default"])
    return method


def make_default_refusal(method: PaymentMethod) -> DefaultSwitchRefused | None:
    """DEF-2: why ``method`` cannot become the default (what the switch raises), or None."""
    if method.is_default or method.status == Status.ACTIVE:
        return None
    return DefaultSwitchRefused(
        f"Only an active method can become the default; this one is {method.get_status_display().lower()}.",
        rule="DEF-2",
    )


@transaction.atomic
def payment_method_make_default(*, method_id: int, account_id: int | None = None) -> PaymentMethod:
    """DEF-2: switch the default to another ``active`` method of the same account.

    ``account_id``, when given, must own the method (the console passes it; the admin does not).
    Locks the account row first, then the methods in id order, like every writer here.
    """
    try:
        method = PaymentMethod.objects.get(pk=method_id)
    except PaymentMethod.DoesNotExist:
        raise PaymentMethodNotFound() from None
    if account_id is not None and method.account_id != account_id:
        raise DefaultSwitchRefused(
            "The default can only be switched to a method of the same account.", rule="DEF-2"
        )
    Account.objects.select_for_update().get(pk=method.account_id)
    method = PaymentMethod.objects.select_for_update().get(pk=method_id)
    if method.is_default:
        return method
    refusal = make_default_refusal(method)
    if refusal is not None:
        raise refusal
    PaymentMethod.objects.filter(account_id=method.account_id, is_default=True).update(is_default=False)
    method.is_default = True
    method.save(update_fields=["is_default"])
    return method
