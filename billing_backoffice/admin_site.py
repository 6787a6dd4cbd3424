"""Shared pieces of the staff admin: a paginator that never counts a big table, read-only
model admins for records the processor owns, the loop every service-backed action runs, the
id bound of digit searches (``MAX_ID``, ``digits_pk``) and formula escaping for exports.

Kept out of the apps' ``admin.py`` so that ``remittances`` can use the same pieces for its own
big tables (bills, transactions, claims) without importing ``payments.admin``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from import_export import resources, widgets

from billing_backoffice.errors import BillingError
from billing_backoffice.staff_jobs import JOB_THRESHOLD, BulkAction, bulk_action_start
from billing_backoffice.money import money_text
from billing_backoffice.url_converters import MAX_ID  # noqa: F401 - re-exported for the admins

# Group names created by payments/migrations/0002_staff_groups.py (seed_demo uses them too).
ACCOUNT_MANAGERS = "Account managers"
FINANCE_STAFF = "Finance staff"

# An action runs one service call (one transaction, often a gateway call) per object; "select
# all N" on a table of millions must not turn one click into millions of calls.
ACTION_OBJECT_LIMIT = 500


class EstimatedCountPaginator(Paginator):
    """Pages a changelist without ``COUNT(*)`` over a whole big table (QUALITY.md budgets).

    - Unfiltered: PostgreSQL's own estimate (``pg_class.reltuples``, kept by autovacuum) once the
      table is big enough for it to matter; a small or never-analysed table is counted exactly.
    - Filtered or searched: the planner's estimate (``EXPLAIN``, nothing executed) when it is
      big, since counting a filter that matches most of the table means reading most of it;
      otherwise an exact count bounded to ``exact_count_limit + 1`` rows (a ``LIMIT``
      subquery), which also catches an estimate that was too low.
    The last page may be approximate on huge tables; nobody pages to row 1,800,000 by hand.
    """

    exact_count_limit = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return Paginator.count.func(self)
        qs = qs.order_by()  # ordering changes no count; dropping it keeps the plans simple
        estimate = planner_row_estimate(qs) if qs.query.where else table_row_estimate(qs)
        if estimate >= self.exact_count_limit:
            return estimate
        bounded = qs[: self.exact_count_limit + 1].count()
        if bounded <= self.exact_count_limit:
            return bounded
        return max(bounded, planner_row_estimate(qs))


def table_row_estimate(qs: QuerySet) -> int:
    """``pg_class.reltuples`` of the queryset's table; -1 when never analysed (PostgreSQL 14+)."""
    connection = connections[qs.db]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(qs.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1


def planner_row_estimate(qs: QuerySet) -> int:
    """The planner's row estimate for a filtered queryset (``EXPLAIN``, nothing executed)."""
    text = qs.explain(format="json")
    if not text:  # Django explains nothing for a query that cannot match (``.none()``)
        return 0
    return int(json.loads(text)[0]["Plan"]["Plan Rows"])


class BigTableAdminMixin:
    """Changelist settings for tables that grow to millions of rows."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False  # no second COUNT(*) of the unfiltered table
    show_facets = admin.ShowFacets.NEVER  # facet counts are one COUNT per filter choice


class ReadOnlyAdminMixin:
    """Records owned by the processor (or written only by services): inspect, never edit.

    Users with the view permission get the read-only change page; nobody (superusers
    included) gets add, change or delete. Actions call services, which own every write.
    """

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def has_model_perm(request, opts, codename: str) -> bool:
    """``request.user.has_perm("<app>.<codename>")`` for the admin's ``has_<x>_permission``."""
    return request.user.has_perm(f"{opts.app_label}.{codename}")


def refusal_text(label: str, error: BillingError) -> str:
    """``"Card •••• 4242: DEL-2: This is the default ..."``: the object, the rule, the reason."""
    return f"{label}: {error.rule_text}"


def log_done(modeladmin, request, obj, message: str, reason: str = "") -> None:
    """LogEntry of a service-backed action (Recent actions and the object's History)."""
    modeladmin.log_change(request, obj, f"{message} Reason: {reason}" if reason else message)


def run_service_action(
    modeladmin,
    request,
    queryset: QuerySet,
    call: Callable[[object], object],
    *,
    done_message: str,
    check: Callable[[object, object], str | None] | None = None,
    job: BulkAction | None = None,
    log_message: str | None = None,
    reason: str = "",
) -> None:
    """Call ``call(obj)`` once per selected object, in id order, and report each outcome.

    Each call is its own service transaction, so a refusal (a ``BillingError``) leaves the other
    objects' results in place and is shown with the rule that refused. ``check(obj, result)``
    may turn a returned result into a warning (e.g. a hold whose void the gateway refused).
    ``done_message`` is formatted with ``count``. ``job``: the action registered as a bulk
    action (``staff_jobs.bulk_action``); more than ``JOB_THRESHOLD`` objects then run as a staff
    job in a worker, and the message links its progress page. Each success is written to the
    admin's LogEntry (Recent actions, the object's History): ``log_message`` (default: the done
    message for one object) and the ``reason`` given on the confirmation page, if any.
    """
    objects = list(queryset.order_by("pk")[: ACTION_OBJECT_LIMIT + 1])
    if len(objects) > ACTION_OBJECT_LIMIT:
        modeladmin.message_user(
            request,
            f"Select at most {ACTION_OBJECT_LIMIT} objects per action; nothing was done.",
            messages.ERROR,
        )
        return
    if job is not None and len(objects) > JOB_THRESHOLD:
        started = bulk_action_start(job, ids=[obj.pk for obj in objects], actor=request.user, now=timezone.now(),
                                    log_message=log_message or done_message.format(count=1), reason=reason)
        url = reverse("admin:billing_backoffice_staffjob_progress", args=[started.pk])
        modeladmin.message_user(request, format_html(
            '{} objects: the action runs as a job. <a href="{}">Follow its progress</a> (also under "Recent jobs").',
            len(objects), url,
        ), messages.INFO)
        return
    done = 0
    for obj in objects:
        try:
            result = call(obj)
        except BillingError as error:
            modeladmin.message_user(request, refusal_text(str(obj), error), messages.ERROR)
            continue
        problem = check(obj, result) if check else None
        if problem:
            modeladmin.message_user(request, f"{obj}: {problem}", messages.WARNING)
            continue
        if hasattr(modeladmin, "log_change"):
            log_done(modeladmin, request, obj, log_message or done_message.format(count=1), reason)
        done += 1
    if done:
        modeladmin.message_user(request, done_message.format(count=done), messages.SUCCESS)


# --- searches and filters by id ------------------------------------------------------------------


def digits_pk(term: str, field: str = "pk") -> Q:
    """A run of digits as an id filter; past the bigint range, a filter that matches nothing.

    A longer run of digits names no row, and PostgreSQL would refuse it as a bigint parameter
    (a server error instead of an empty result).
    """
    return Q(**{field: int(term)}) if int(term) <= MAX_ID else Q(pk__in=[])


# --- amounts on screens ----------------------------------------------------------------------------


def money_cell(amount, currency, *, signed: bool = False):
    """An amount with its currency in a list or on a page (``50,000.00 USD``), never wrapped."""
    return format_html('<span class="money" style="white-space: nowrap">{}</span>',
                       money_text(amount, currency, signed=signed))


def money_column(amount: str = "amount", currency: str = "currency", *, description: str | None = None,
                 signed: bool = False):
    """A changelist column of ``obj.<amount>`` in ``obj.<currency>`` (a dotted path for a related
    row's currency, e.g. ``"day.currency"``), sortable by the amount; one column instead of two::

        amount_display = money_column("amount", "currency")
    """

    def currency_of(obj):
        for part in currency.split("."):
            obj = getattr(obj, part) if obj is not None else None
        return obj

    @admin.display(description=description or amount.replace("_", " "), ordering=amount)
    def column(self, obj):
        return money_cell(getattr(obj, amount), currency_of(obj), signed=signed)

    return column


# --- exports ---------------------------------------------------------------------------------------

# A spreadsheet runs a cell starting with one of these as a formula (CSV/XLSX injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value):
    """``=cmd|...`` -> ``'=cmd|...``: a spreadsheet shows the text from outside, never runs it."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class FormulaSafeResource(resources.ModelResource):
    """An export whose text cells are neutralised; numeric cells stay numbers."""

    NUMERIC_WIDGETS = (widgets.DecimalWidget, widgets.IntegerWidget, widgets.FloatWidget)

    def export_field(self, field, instance, **kwargs):
        value = super().export_field(field, instance, **kwargs)
        if isinstance(field.widget, self.NUMERIC_WIDGETS):
            return value
        return neutralise_formula(value)
