"""The admin index's charts (issue 10): credited funds per day over 30 days, the overdue ageing,
and link and charge failures by reason over 7 days (``charts.Chart``: SVG plus a table).

A composition module (it reads both apps, like ``queue_board``). Money is charted per currency,
never summed across currencies. A chart is made only for a user who may view the list behind
it; each costs one grouped query, whatever the table sizes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing_backoffice.charts import Bar, Chart
from billing_backoffice.dashboard import CREDIT_KINDS
from billing_backoffice.money import money_text
from payments.models import Charge, LedgerEntry, LinkAttempt
from payments.reasons import reason_label
from payments.receivables import receivables_ageing

CREDIT_DAYS = 30
FAILURE_WINDOW = timedelta(days=7)
OVERDUE_BUCKETS = (("1-30 days", "days_1_30"), ("31-60 days", "days_31_60"), ("61-90 days", "days_61_90"),
                   ("over 90 days", "over_90"))


def credited_per_day(*, now: datetime) -> list[Chart]:
    """Funds credited (dedicated transfers and approved claims) per UTC day, one chart per currency."""
    today = timezone.localdate(now)
    first = today - timedelta(days=CREDIT_DAYS - 1)
    rows = (LedgerEntry.objects.filter(kind__in=CREDIT_KINDS, created_at__date__gte=first)
            .annotate(day=TruncDate("created_at")).values("currency", "day").annotate(total=Sum("amount"))
            .order_by())
    by_currency: dict[str, dict] = defaultdict(dict)
    for row in rows:
        by_currency[row["currency"]][row["day"]] = row["total"]
    days = [first + timedelta(days=n) for n in range(CREDIT_DAYS)]
    return [
        Chart(f"credited-{currency.lower()}", f"Funds credited per day, last {CREDIT_DAYS} days ({currency})", [
            Bar(f"{day:%m-%d}", totals.get(day, Decimal("0")), money_text(totals.get(day, 0), currency))
            for day in days
        ], column="Credited", label_column="Day")
        for currency, totals in sorted(by_currency.items())
    ]


def overdue_ageing(*, now: datetime) -> list[Chart]:
    """CC-4's overdue buckets (what is owed, by how long past due), one chart per currency."""
    return [
        Chart(f"ageing-{row.currency.lower()}", f"Overdue receivables by age ({row.currency})", [
            Bar(label, getattr(row, field), money_text(getattr(row, field), row.currency))
            for label, field in OVERDUE_BUCKETS
        ], column="Outstanding", label_column="Past due")
        for row in receivables_ageing(now=now, with_sales=False) if any(getattr(row, field) for _, field in OVERDUE_BUCKETS)
    ]


def _by_reason(queryset, field: str) -> list[Bar]:
    rows = queryset.values(field).annotate(n=Count("pk")).order_by("-n", field)
    return [Bar(reason_label(row[field]) if row[field] else "No reason recorded", row["n"]) for row in rows]


def failures_by_reason(*, now: datetime, links: bool, charges: bool) -> list[Chart]:
    since = now - FAILURE_WINDOW
    charts = []
    if links:
        bars = _by_reason(LinkAttempt.objects.filter(outcome=LinkAttempt.Outcome.REJECTED, created_at__gte=since),
                          "reason")
        charts.append(Chart("link-failures", "Failed links by reason, last 7 days", bars, column="Links",
                            label_column="Reason"))
    if charges:
        bars = _by_reason(Charge.objects.filter(status=Charge.Status.FAILED, created_at__gte=since), "failure_reason")
        charts.append(Chart("charge-failures", "Failed charges by reason, last 7 days", bars, column="Charges",
                            label_column="Reason"))
    return [chart for chart in charts if chart.bars]


def index_charts(*, user, now: datetime) -> list[Chart]:
    """The charts this user may see (the view permission of the list behind each)."""
    charts = []
    if user.has_perm("payments.view_ledgerentry"):
        charts += credited_per_day(now=now)
    if user.has_perm("payments.view_bill"):
        charts += overdue_ageing(now=now)
    charts += failures_by_reason(now=now, links=user.has_perm("payments.view_linkattempt"),
                                 charges=user.has_perm("payments.view_charge"))
    return charts
