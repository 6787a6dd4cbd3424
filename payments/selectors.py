"""Reads of the payments app that are more than one filter (STYLE.md: selectors)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum

from payments.models import LedgerEntry


def account_balances(*, account_id: int) -> dict[str, Decimal]:
    """SEC-4: the account's balance in every currency its ledger holds, in one query.

    ``{currency: sum of its entries}``, currencies in alphabetical order. A currency whose
    entries cancel out is kept (``0.00``): the account did hold it.
    """
    rows = (
        LedgerEntry.objects.filter(account_id=account_id)
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    return {row["currency"]: row["total"] for row in rows}
