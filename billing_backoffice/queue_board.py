"""Each role's work queue on the admin index (issue 10, "What needs me today").

A composition module (it reads both apps' queues, like ``dashboard``). Every figure is a queue of
``payments.work_queues``, ``remittances.work_queues`` or ``job_queues``, counted by
``work_queues.count_queues`` and linked to its list with ``?queue=<name>``: the count and the list
come from the same condition, so they agree. A figure is shown only to a user who may view its list.

Sections follow the role's groups ("Account managers", "Finance staff"); a superuser sees both.
Failed charges are split by reason (``?queue=failed_7d&failure_reason=<code>``, the charge list's
reason filter). Queries: one for all the counts, one for the charge reasons, whatever the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count
from django.urls import reverse
from django.utils.http import urlencode

from billing_backoffice import job_queues
from billing_backoffice.admin_site import ACCOUNT_MANAGERS, FINANCE_STAFF
from billing_backoffice.work_queues import PARAMETER, WorkQueue, count_queues, count_text, key
from payments import work_queues as pq
from payments.models import Charge
from payments.reasons import reason_label
from remittances import work_queues as rq

MANAGER_SECTIONS: tuple[tuple[str, tuple[WorkQueue, ...]], ...] = (
    ("Credit applications", rq.CREDIT_QUEUES),
    ("Claims", rq.CLAIM_QUEUES[:1]),
    ("Unmatched shared-account transfers, by age", rq.TRANSACTION_QUEUES[:3]),
    ("Payment methods", pq.LINK_QUEUES[:1] + pq.METHOD_QUEUES + pq.THREE_DS_QUEUES),
)
FINANCE_SECTIONS: tuple[tuple[str, tuple[WorkQueue, ...]], ...] = (
    ("Claims", rq.CLAIM_QUEUES[2:]),
    ("Unmatched shared-account transfers, by age", rq.TRANSACTION_QUEUES[:3]),
    ("Bank", rq.TRANSACTION_QUEUES[3:] + rq.STATEMENT_QUEUES + rq.REVERSAL_QUEUES),
    ("Unpaid bills past due, by age", pq.BILL_QUEUES),
    ("Failed charges (last 7 days)", pq.CHARGE_QUEUES),
    ("Scheduled jobs", job_queues.JOB_QUEUES + job_queues.RUN_QUEUES + job_queues.FAILURE_QUEUES),
    ("Credit control", pq.ACCOUNT_QUEUES + pq.HOLD_QUEUES + pq.PAUSE_QUEUES),
)
CHARGE_FAILURES = pq.CHARGE_QUEUES[0]


@dataclass(frozen=True)
class QueueFigure:
    figure_id: str  # the page's data-figure (unique on the index)
    title: str
    count: int
    link: str
    rule: str = ""

    @property
    def shown(self) -> str:
        return count_text(self.count)


@dataclass
class Section:
    title: str
    figures: list[QueueFigure] = field(default_factory=list)


@dataclass
class QueueBoard:
    roles: list[str]
    sections: list[Section]

    @property
    def counts(self) -> dict[str, int]:
        return {f.figure_id: f.count for s in self.sections for f in s.figures}


def roles_of(user) -> list[str]:
    if user.is_superuser:
        return [ACCOUNT_MANAGERS, FINANCE_STAFF]
    names = set(user.groups.values_list("name", flat=True))
    return [role for role in (ACCOUNT_MANAGERS, FINANCE_STAFF) if role in names]


def queue_link(queue: WorkQueue, **extra: str) -> str:
    meta = queue.model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    return f"{url}?{urlencode({PARAMETER: queue.name, **extra})}"


def figure_id(queue: WorkQueue) -> str:
    return f"{queue.model._meta.model_name}-{queue.name}".replace("_", "-")


def _role_sections(role: str, user):
    sections = MANAGER_SECTIONS if role == ACCOUNT_MANAGERS else FINANCE_SECTIONS
    for title, queues in sections:
        visible = tuple(q for q in queues if user.has_perm(q.view_permission))
        if visible:
            yield title, visible


def charge_failures_by_reason(*, user, now: datetime) -> list[tuple[str, int]]:
    """(reason code, failed charges) of the last 7 days, most first; one grouped query."""
    rows = (
        Charge.objects.filter(CHARGE_FAILURES.q(user=user, now=now))
        .values("failure_reason")
        .annotate(count=Count("pk"))
        .order_by("-count", "failure_reason")
    )
    return [(r["failure_reason"], r["count"]) for r in rows]


def _reason_figures(user, now: datetime) -> list[QueueFigure]:
    # An empty reason cannot be selected by the reason filter: such charges are in the total only.
    return [
        QueueFigure(f"charge-failed-7d-{code}".replace("_", "-"), reason_label(code), count,
                    queue_link(CHARGE_FAILURES, failure_reason=code), "PAY-5")
        for code, count in charge_failures_by_reason(user=user, now=now) if code
    ]


def queue_board(*, user, now: datetime) -> QueueBoard | None:
    """The user's work queues, or None when they have none they may see."""
    roles = roles_of(user)
    plan: list[tuple[str, str, tuple[WorkQueue, ...]]] = []
    seen: set[tuple[str, str]] = set()
    for role in roles:
        for title, queues in _role_sections(role, user):
            if (title, queues[0].name) not in seen:  # a section both roles share is shown once
                seen.add((title, queues[0].name))
                plan.append((role, title, queues))
    if not plan:
        return None
    counts = count_queues([q for _, _, queues in plan for q in queues], user=user, now=now)
    sections = []
    for _role, title, queues in plan:
        section = Section(title, [
            QueueFigure(figure_id(q), q.title, counts[key(q.model, q.name)], queue_link(q), q.rule) for q in queues
        ])
        if CHARGE_FAILURES in queues:
            section.figures += _reason_figures(user, now)
        sections.append(section)
    return QueueBoard(roles=roles, sections=sections)
