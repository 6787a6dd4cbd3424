"""Work queues: named conditions that say which rows wait for someone (issue 10, "What needs me
today"), written once and used twice:

- the admin index counts each queue (``count_queues``: one query for all queues, whatever the
  table sizes);
- the list behind each figure filters on it (``queue_filter``: a ``?queue=<name>`` list filter),
  so the figure and the list it links to count the same rows.

A queue's count is exact up to ``COUNT_LIMIT`` and "more than that" beyond it: counting a queue
of 700,000 unmatched transfers exactly means reading all of them on every visit to the index,
and nobody works through more than 10,000 rows from a figure. The changelist behind it counts
exactly up to the same limit (``admin_site.EstimatedCountPaginator``), so the two still agree.

A queue's ``condition(user=..., now=...)`` returns a ``Q`` on its model. Both callers take ``now``
from ``timezone.now()`` at request time. The apps define their queues (``payments.work_queues``,
``remittances.work_queues``); this core module imports no app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib import admin
from django.db import connection
from django.db.models import Q
from django.utils import timezone

PARAMETER = "queue"
# Rows counted exactly per queue; a count of COUNT_LIMIT + 1 means "more than COUNT_LIMIT". The
# same figure as the changelist paginator's exact_count_limit.
COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class WorkQueue:
    name: str  # the ``?queue=`` value, unique per model
    title: str  # what the index and the list filter say
    model: type
    condition: Callable[..., Q]  # condition(user=, now=) -> Q on ``model``
    rule: str = ""  # the rule the queue serves (RULES.md), shown beside the figure

    @property
    def view_permission(self) -> str:
        meta = self.model._meta
        return f"{meta.app_label}.view_{meta.model_name}"

    def q(self, *, user, now: datetime) -> Q:
        return self.condition(user=user, now=now)


def count_queues(queues: Iterable[WorkQueue], *, user, now: datetime) -> dict[str, int]:
    """``{model_label:queue_name: rows}`` of every queue in ONE query, whatever the table sizes:
    each queue is a scalar ``(SELECT COUNT(*) FROM (SELECT ... WHERE <condition> LIMIT n))`` of a
    single ``SELECT``, so it reads at most ``COUNT_LIMIT + 1`` rows (that count: "more")."""
    unique = {key(q.model, q.name): q for q in queues}
    if not unique:
        return {}
    parts, params = [], []
    for queue in unique.values():
        rows = queue.model._default_manager.filter(queue.q(user=user, now=now)).order_by().values("pk")
        sql, part_params = rows[: COUNT_LIMIT + 1].query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS bounded)")
        params.extend(part_params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return dict(zip(unique, row, strict=True))


def count_text(count: int) -> str:
    """A queue count as the index shows it: "1,234", or "10,000+" past ``COUNT_LIMIT``."""
    return f"{COUNT_LIMIT:,}+" if count > COUNT_LIMIT else f"{count:,}"


def key(model, name: str) -> str:
    return f"{model._meta.label_lower}:{name}"


def queue_filter(queues: Iterable[WorkQueue], title: str = "work queue") -> type[admin.SimpleListFilter]:
    """A ``?queue=<name>`` list filter selecting exactly the rows the index counts for that queue."""
    by_name = {q.name: q for q in queues}

    class WorkQueueFilter(admin.SimpleListFilter):
        parameter_name = PARAMETER

        def lookups(self, request, model_admin):
            return [(q.name, q.title) for q in by_name.values()]

        def queryset(self, request, queryset):
            queue = by_name.get(self.value() or "")
            if queue is None:
                return queryset
            return queryset.filter(queue.q(user=request.user, now=timezone.now()))

    WorkQueueFilter.title = title
    return WorkQueueFilter
