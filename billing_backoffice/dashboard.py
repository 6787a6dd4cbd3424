"""Today's billing figures for the admin index, shown by ``site.BillingAdminSite.index`` (selectors:
reads only, a fixed number of queries).

One aggregate query per figure, each grouped by currency (money in different currencies is
never added up), and only the figures the user may see:

- overdue total (bills marked overdue, outstanding amount) - needs ``view_bill``;
- bills due in the next 7 days (today included; unpaid) - needs ``view_bill``;
- failed charges in the last 24 hours - needs ``view_charge``;
- funds credited today (UTC day): dedicated transfers and approved claims - needs
  ``view_ledgerentry``.
So the index costs at most four queries more, whatever the size of the tables. The bill and
charge figures use the ``(status, due_date)`` and ``(status, created_at)`` indexes; the ledger
figure filters on ``created_at`` (see the report: a BRIN index on it keeps that cheap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Sum
from django.utils import timezone

from payments.models import Bill, Charge, LedgerEntry

DUE_WINDOW_DAYS = 7
FAILED_WINDOW = timedelta(hours=24)
CREDIT_KINDS = (LedgerEntry.Kind.REMITTANCE_CREDIT, LedgerEntry.Kind.CLAIM_CREDIT)


@dataclass(frozen=True)
class Figure:
    currency: str
    count: int
    amount: Decimal


@dataclass
class Dashboard:
    today: object
    overdue: list[Figure] | None = None
    due_this_week: list[Figure] | None = None
    failed_charges: list[Figure] | None = None
    credited_today: list[Figure] | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Rows behind each shown figure, all currencies (what its linked list counts)."""
        names = ("overdue", "due_this_week", "failed_charges", "credited_today")
        return {n: sum(f.count for f in getattr(self, n)) for n in names if getattr(self, n) is not None}

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.overdue, self.due_this_week, self.failed_charges, self.credited_today))


def _figures(rows) -> list[Figure]:
    return [Figure(r["currency"], r["count"], r["amount"] or Decimal("0.00")) for r in rows]


def overdue_totals() -> list[Figure]:
    rows = (
        Bill.objects.filter(status=Bill.Status.OVERDUE)
        .values("currency")
        .annotate(count=Count("id"), amount=Sum(F("total") - F("amount_paid")))
        .order_by("currency")
    )
    return _figures(rows)


def bills_due_within(*, now: datetime, days: int = DUE_WINDOW_DAYS) -> list[Figure]:
    today = timezone.localdate(now)
    rows = (
        Bill.objects.filter(
            status__in=Bill.UNPAID_STATUSES, due_date__gte=today, due_date__lt=today + timedelta(days=days)
        )
        .values("currency")
        .annotate(count=Count("id"), amount=Sum(F("total") - F("amount_paid")))
        .order_by("currency")
    )
    return _figures(rows)


def failed_charges_since(*, since: datetime) -> list[Figure]:
    rows = (
        Charge.objects.filter(status=Charge.Status.FAILED, created_at__gte=since)
        .values("currency")
        .annotate(count=Count("id"), amount=Sum("amount"))
        .order_by("currency")
    )
    return _figures(rows)


def credited_since(*, since: datetime) -> list[Figure]:
    rows = (
        LedgerEntry.objects.filter(kind__in=CREDIT_KINDS, created_at__gte=since)
        .values("currency")
        .annotate(count=Count("id"), amount=Sum("amount"))
        .order_by("currency")
    )
    return _figures(rows)


def start_of_day(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def billing_dashboard(*, user, now: datetime) -> Dashboard | None:
    """The figures ``user`` may see, or None when none (no query is made for hidden figures)."""
    board = Dashboard(today=timezone.localdate(now))
    if user.has_perm("payments.view_bill"):
        board.overdue = overdue_totals()
        board.due_this_week = bills_due_within(now=now)
    if user.has_perm("payments.view_charge"):
        board.failed_charges = failed_charges_since(since=now - FAILED_WINDOW)
    if user.has_perm("payments.view_ledgerentry"):
        board.credited_today = credited_since(since=start_of_day(now))
    return None if board.empty else board
