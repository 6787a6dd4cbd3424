"""Housekeeping tasks of the project itself (autodiscovered: billing_backoffice is an app)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.scheduled_runs import scheduled_runs_prune
from billing_backoffice.task_retries import RETRY_OPTIONS


@shared_task(name="billing_backoffice.prune_scheduled_runs", **RETRY_OPTIONS)
def prune_scheduled_runs() -> int:
    """Delete finished scheduled runs past their retention (the window guard's old rows)."""
    return scheduled_runs_prune(now=timezone.now())


@shared_task(bind=True, name="billing_backoffice.run_bulk_action", **RETRY_OPTIONS)
def run_bulk_action(self, *, job_id: int) -> int:
    """A bulk admin action run as a staff job (``staff_jobs.bulk_action_run``); returns the job id."""
    from billing_backoffice.staff_jobs import bulk_action_run

    bulk_action_run(job_id=job_id, clock=timezone.now, run_id=self.request.id or "")
    return job_id


@shared_task(name="billing_backoffice.resend_lost_staff_jobs", **RETRY_OPTIONS)
def resend_lost_staff_jobs() -> int:
    """Beat: send again the staff jobs whose task message was lost (``staff_jobs.jobs_resend_lost``)."""
    from billing_backoffice.staff_jobs import jobs_resend_lost

    return jobs_resend_lost(now=timezone.now())
