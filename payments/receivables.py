"""Receivables ageing (CC-4): what customers owe, per currency, by how long it is past due.

A read (a selector): the unpaid bills' outstanding amounts (total - paid) summed into the
buckets not due, 1-30, 31-60, 61-90 and over 90 days past the due date (the UTC calendar day of
``now``), per currency and optionally per region or account manager, with days sales
outstanding: receivables / bills issued in the last 90 days x 90. Amounts are never summed
across currencies. One aggregate query for the buckets, one for the sales, whatever the size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from payments.models import Bill

BUCKETS = ("not_due", "days_1_30", "days_31_60", "days_61_90", "over_90")
BUCKET_LABELS = {"not_due": "Not due", "days_1_30": "1-30", "days_31_60": "31-60", "days_61_90": "61-90",
                 "over_90": "Over 90"}
GROUPS = {"currency": (), "region": ("account__region",), "account_manager": ("account__account_manager__username",)}
DSO_WINDOW_DAYS = 90
ZERO = Decimal("0.00")


@dataclass
class AgeingRow:
    currency: str
    group: str
    not_due: Decimal
    days_1_30: Decimal
    days_31_60: Decimal
    days_61_90: Decimal
    over_90: Decimal
    total: Decimal
    bills: int
    sales: Decimal
    dso: Decimal | None


def _filtered(qs, *, currency: str = "", region: str = "", account_manager_id: int | None = None):
    if currency:
        qs = qs.filter(currency=currency)
    if region:
        qs = qs.filter(account__region=region)
    if account_manager_id:
        qs = qs.filter(account__account_manager_id=account_manager_id)
    return qs


def receivables_ageing(
    *, now: datetime, group_by: str = "currency", currency: str = "", region: str = "",
    account_manager_id: int | None = None, with_sales: bool = True,
) -> list[AgeingRow]:
    """CC-4: one row per currency (and region or account manager when grouped by it).

    ``with_sales=False`` skips the sales query (``sales`` 0, ``dso`` None): the index's ageing
    chart needs the buckets only, and summing 90 days of bills costs as much again."""
    extra = GROUPS[group_by]
    today = timezone.localdate(now)
    outstanding = F("total") - F("amount_paid")
    ranges = {
        "not_due": Q(due_date__gte=today),
        "days_1_30": Q(due_date__lte=today - timedelta(days=1), due_date__gte=today - timedelta(days=30)),
        "days_31_60": Q(due_date__lte=today - timedelta(days=31), due_date__gte=today - timedelta(days=60)),
        "days_61_90": Q(due_date__lte=today - timedelta(days=61), due_date__gte=today - timedelta(days=90)),
        "over_90": Q(due_date__lt=today - timedelta(days=90)),
    }
    unpaid = _filtered(Bill.objects.filter(status__in=Bill.UNPAID_STATUSES), currency=currency, region=region,
                       account_manager_id=account_manager_id)
    keys = ("currency", *extra)
    rows = unpaid.values(*keys).annotate(
        **{name: Sum(outstanding, filter=condition) for name, condition in ranges.items()},
        total=Sum(outstanding), bills=Count("id"),
    ).order_by(*keys)
    sales = _sales(now=now, keys=keys, currency=currency, region=region,
                   account_manager_id=account_manager_id) if with_sales else {}
    result = []
    for row in rows:
        key = tuple(row[k] for k in keys)
        sold = sales.get(key) or ZERO
        total = row["total"] or ZERO
        result.append(AgeingRow(
            currency=row["currency"], group=str(row[extra[0]] or "(none)") if extra else "",
            **{name: row[name] or ZERO for name in BUCKETS}, total=total, bills=row["bills"], sales=sold,
            dso=(total / sold * DSO_WINDOW_DAYS).quantize(Decimal("0.1")) if sold else None,
        ))
    return result


def _sales(*, now: datetime, keys: tuple[str, ...], currency: str, region: str,
           account_manager_id: int | None) -> dict[tuple, Decimal]:
    """Bills issued in the DSO window, summed per group key."""
    issued = _filtered(Bill.objects.filter(issued_at__gte=now - timedelta(days=DSO_WINDOW_DAYS), issued_at__lte=now),
                       currency=currency, region=region, account_manager_id=account_manager_id)
    return {tuple(r[k] for k in keys): r["sales"] for r in issued.values(*keys).annotate(sales=Sum("total"))}
