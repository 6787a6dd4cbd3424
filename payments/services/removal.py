"""Deleting (unlinking) a method: DEL-1..4, and the default it may leave behind (DEF-1)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from payments.errors import PaymentMethodNotFound, RemovalRefused
from payments.models import Account, PaymentMethod

Status = PaymentMethod.Status


def account_blocks_removing_last_active_method(account: Account) -> str | None:
    """DEL-3: what keeps the only active method in place, or None."""
    if account.has_running_resources:
        return "the account has running resources"
    if account.has_outstanding_bills:
        return "the account has outstanding or overdue bills"
    # The bills themselves, not only the flag: open, partially paid or overdue ones block it.
    if account.bills.filter(status__in=account.bills.model.UNPAID_STATUSES).exists():
        return "the account has outstanding or overdue bills"
    return None


def removal_refusal(method: PaymentMethod, *, others: list[PaymentMethod], account: Account) -> RemovalRefused | None:
    """DEL-2/DEL-3: why ``method`` may not be removed (the error the removal raises), or None.

    ``others``: the account's other live methods. The one place these rules are decided: the
    removal raises it, the admin's confirmation page and buttons show it (``removal_blocked``).
    """
    if method.is_default and method.status != Status.EXPIRED and others:
        return RemovalRefused(
            "This is the default payment method and the account has other methods; "
            "switch the default to another active method first.",
            rule="DEL-2",
            code="default_method_in_use",
        )
    if method.status == Status.ACTIVE and not any(m.status == Status.ACTIVE for m in others):
        blocker = account_blocks_removing_last_active_method(account)
        if blocker:
            return RemovalRefused(
                f"This is the only active payment method and {blocker}.",
                rule="DEL-3",
                code="only_active_method_in_use",
            )
    return None


def removal_blocked(method: PaymentMethod) -> RemovalRefused | None:
    """What ``payment_method_remove`` would refuse now, read without locks or writes (a preview:
    the removal checks again under its locks)."""
    if method.status == Status.REMOVED:
        return None
    others = list(
        PaymentMethod.objects.filter(account_id=method.account_id, status__in=PaymentMethod.LIVE_STATUSES)
        .exclude(pk=method.pk)
    )
    return removal_refusal(method, others=others, account=Account.objects.get(pk=method.account_id))


def removal_successor(method: PaymentMethod) -> PaymentMethod | None:
    """DEF-1: the active method that becomes the default when ``method`` (the default) goes."""
    if not method.is_default:
        return None
    return (
        PaymentMethod.objects.filter(account_id=method.account_id, status=Status.ACTIVE)
        .exclude(pk=method.pk).order_by("pk").first()
    )


@transaction.atomic
def payment_method_remove(*, method_id: int, now: datetime, account_id: int | None = None) -> PaymentMethod:
    """Unlink a method (DEL-1..3); its fingerprint or PayPal payer becomes free (DEL-4).

    Locks the account, then its live methods in id order, so a removal and a default switch (or
    two removals) on one account are serialised. Removing an already removed method is a no-op.
    """
    try:
        method = PaymentMethod.objects.only("id", "account_id").get(pk=method_id)
    except PaymentMethod.DoesNotExist:
        raise PaymentMethodNotFound() from None
    if account_id is not None and method.account_id != account_id:
        raise PaymentMethodNotFound()
    account = Account.objects.select_for_update().get(pk=method.account_id)
    live = list(
        PaymentMethod.objects.select_for_update()
        .filter(account_id=account.pk, status__in=PaymentMethod.LIVE_STATUSES)
        .order_by("pk")
    )
    method = PaymentMethod.objects.get(pk=method_id) if method_id not in {m.pk for m in live} else next(
        m for m in live if m.pk == method_id
    )
    if method.status == Status.REMOVED:
        return method
    others = [m for m in live if m.pk != method.pk]
    refusal = removal_refusal(method, others=others, account=account)
    if refusal is not None:
        raise refusal
    was_default = method.is_default
    method.status = Status.REMOVED
    method.is_default = False
    method.removed_at = now
    method.status_changed_at = now
    method.save(update_fields=["status", "is_default", "removed_at", "status_changed_at"])
    if was_default:
        # DEF-1: an expired default removed while active methods remain hands the default on.
        successor = next((m for m in others if m.status == Status.ACTIVE), None)
        if successor:
            successor.is_default = True
            successor.save(update_fields=["is_default"])
    return method
