"""Work queues of the scheduled jobs (``work_queues``): finance's "jobs that failed or are late".

Core models only (``models.ScheduledRun``, ``models.JobItemFailure``); no app is imported.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from billing_backoffice.models import JobItemFailure, ScheduledRun
from billing_backoffice.work_queues import WorkQueue


def runs_late(*, user, now: datetime) -> Q:
    """A run still marked running after its lease: its owner died or hangs (another firing may
    take it over; until then the job is late)."""
    return Q(status=ScheduledRun.Status.RUNNING, lease_until__lt=now)


def items_failing(*, user, now: datetime) -> Q:
    """Items of a batch job that failed and have not succeeded since (retrying or given up)."""
    return Q(resolved_at__isnull=True)


RUN_QUEUES = (WorkQueue("late", "Late (running past its lease)", ScheduledRun, runs_late),)
FAILURE_QUEUES = (WorkQueue("failing", "Failed, not resolved", JobItemFailure, items_failing),)
