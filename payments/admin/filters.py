"""List filters that the admin index's figures link to (``templates/admin/dashboard/figures.html``):
each figure's link carries one of these, so the list shows exactly the rows the figure counts.

The windows match ``billing_backoffice/dashboard.py``: "last 24 hours" is ``FAILED_WINDOW`` back
from now, "today" starts at local midnight. Both read the clock as the dashboard does
(``timezone.now()`` at request time).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from payments.models import LedgerEntry

# Mirrors billing_backoffice.dashboard (an app never imports that composition module).
LAST_24_HOURS = timedelta(hours=24)
CREDIT_KINDS = (LedgerEntry.Kind.REMITTANCE_CREDIT, LedgerEntry.Kind.CLAIM_CREDIT)


def start_of_day(now):
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


class CreatedWindowFilter(admin.SimpleListFilter):
    """Rows created in the last 24 hours (charges: the index's "Failed charges" figure)."""

    title = "created"
    parameter_name = "created"

    def lookups(self, request, model_admin):
        return [("24h", "In the last 24 hours")]

    def queryset(self, request, queryset):
        if self.value() == "24h":
            return queryset.filter(created_at__gte=timezone.now() - LAST_24_HOURS)
        return queryset


class CreditedTodayFilter(admin.SimpleListFilter):
    """Funds credited today: dedicated transfers and approved claims (the index's figure)."""

    title = "funds credited"
    parameter_name = "credited"

    def lookups(self, request, model_admin):
        return [("today", "Today (transfers and claims)")]

    def queryset(self, request, queryset):
        if self.value() == "today":
            return queryset.filter(kind__in=CREDIT_KINDS, created_at__gte=start_of_day(timezone.now()))
        return queryset
