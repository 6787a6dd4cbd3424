"""Receivables ageing (CC-4): what customers owe, per currency, by how long it is past due.

A read (a selector): the unpaid bills' outstanding amounts (total - paid) summed into the
buckets not due, 1-30, 31-60, 61-90 and over 90 days past the due date (the UTC calendar day of
``now``), per currency and optionally per region or account manager, with days sales
outstanding: receivables / bills issued in the last 90 days x 90. Amounts are never summed
across currencies. One aggregate query for the buckets, one for the sales, whatever the size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Case, CharField, Count, Sum, Value, When
from django.utils import timezone

from payments.models import Bill

BUCKETS = ("not_due", "days_1_30", "days_31_60", "days_61_90", "over_90")
BUCKET_LABELS = {"not_due": "Not due", "days_1_30": "1-30", "days_31_60": "31-60", "days_61_90": "61-90",
                 "over_90": "Over 90"}
# The account manager is grouped by id and named afterwards (``_named_managers``): joining the
# users table into the aggregate of every unpaid bill costs more than one lookup of a few names.
GROUPS = {"currency": (), "region": ("account__region",), "account_manager": ("account__account_manager",)}
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
    keys = ("currency", *extra)
    unpaid = _filtered(Bill.objects.filter(status__in=Bill.UNPAID_STATUSES), currency=currency, region=region,
                       account_manager_id=account_manager_id)
    # One row per group and bucket with the bucket as a grouping key, and total and paid summed
    # apart (outstanding = total - paid): two sums per bill instead of a filtered difference per
    # bucket, which is what the report costs over 300,000 unpaid bills (numeric arithmetic).
    cells = unpaid.annotate(bucket=_bucket_of_due_date(timezone.localdate(now))).values(*keys, "bucket").annotate(
        billed=Sum("total"), paid=Sum("amount_paid"), bills=Count("id"),
    ).order_by()
    groups: dict[tuple, dict] = {}
    for cell in cells:
        group = groups.setdefault(tuple(cell[k] for k in keys), {"bills": 0, **dict.fromkeys(BUCKETS, ZERO)})
        group[cell["bucket"]] += cell["billed"] - cell["paid"]
        group["bills"] += cell["bills"]
    sales = _sales(now=now, keys=keys, currency=currency, region=region,
                   account_manager_id=account_manager_id) if with_sales else {}
    names = _named_managers(key[1] for key in groups) if group_by == "account_manager" else {}
    result = []
    for key in groups:
        figures = groups[key]
        sold = sales.get(key) or ZERO
        total = sum((figures[name] for name in BUCKETS), ZERO)
        group = str(names.get(key[1], key[1]) or "(none)") if extra else ""
        result.append(AgeingRow(
            currency=key[0], group=group,
            **{name: figures[name] for name in BUCKETS}, total=total, bills=figures["bills"], sales=sold,
            dso=(total / sold * DSO_WINDOW_DAYS).quantize(Decimal("0.1")) if sold else None,
        ))
    result.sort(key=lambda row: (row.currency, row.group == "(none)", row.group))  # "(none)" last
    return result


def _named_managers(ids) -> dict[int, str]:
    """``{user id: username}`` of the account managers among ``ids``."""
    wanted = {pk for pk in ids if pk is not None}
    return dict(get_user_model().objects.filter(pk__in=wanted).values_list("pk", "username")) if wanted else {}


def _bucket_of_due_date(today: date) -> Case:
    """The ageing bucket of a bill's due date (days past due on ``today``), as a SQL ``CASE``."""
    return Case(
        When(due_date__gte=today, then=Value("not_due")),
        When(due_date__gte=today - timedelta(days=30), then=Value("days_1_30")),
        When(due_date__gte=today - timedelta(days=60), then=Value("days_31_60")),
        When(due_date__gte=today - timedelta(days=90), then=Value("days_61_90")),
        default=Value("over_90"),
        output_field=CharField(),
    )


def _sales(*, now: datetime, keys: tuple[str, ...], currency: str, region: str,
           account_manager_id: int | None) -> dict[tuple, Decimal]:
    """Bills issued in the DSO window, summed per group key."""
    issued = _filtered(Bill.objects.filter(issued_at__gte=now - timedelta(days=DSO_WINDOW_DAYS), issued_at__lte=now),
                       currency=currency, region=region, account_manager_id=account_manager_id)
    return {tuple(r[k] for k in keys): r["sales"] for r in issued.values(*keys).annotate(sales=Sum("total"))}
