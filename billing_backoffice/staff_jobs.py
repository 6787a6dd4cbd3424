"""Long staff work as a job with progress (issue 10, "Long work shows progress").

A statement upload or a bulk admin action over many rows would keep a request open for minutes.
Instead the page records a ``StaffJob`` (kind, actor, total, done, state, summary, error),
enqueues a Celery task after the commit (``enqueue_on_commit``: nothing is sent for work that
rolls back) and redirects to the job's progress page (``staff_jobs_admin.py``), which polls a
JSON status until the job is finished and then shows its summary. The page can be left: "Recent
jobs" (the staff job list, each user's own) finds it again.

- ``job_create`` / ``job_enqueue`` / ``job_start`` / ``job_progress`` / ``job_finish`` /
  ``job_fail``: the one writer of ``StaffJob`` rows. ``job_start`` claims a queued job
  (``queued -> running``) for one task message and answers ``None`` for a finished one, or for
  one another message is running, so a second message for a job does nothing twice.
- ``jobs_resend_lost`` (task ``billing_backoffice.resend_lost_staff_jobs``, beat, every 5
  minutes): a job still queued 10 minutes after it was recorded lost its message (the broker was
  down when the page committed: the page answered an error, the job row stayed), and a job
  "running" for longer than the task time limit lost its worker: each is sent again.
- ``jobs_of(user)``: the jobs a user may see, their own (superusers: all). The status endpoint
  answers 404 for anyone else's job, so it does not even say that it exists.
- Bulk actions: an admin action registers a ``BulkAction`` (a name, the model, what to call per
  object). ``run_service_action`` (admin_site.py) runs up to ``JOB_THRESHOLD`` objects at once as
  before; more become a job, which ``bulk_action_run`` (task ``billing_backoffice.run_bulk_action``,
  queue ``bulk``) works through in id order, each object its own service call (a refusal is
  recorded with its rule and the rest go on, as in the request), reporting progress as it goes.
  Registered by the admin modules, which Django imports in the worker too (admin autodiscovery).

Errors are stored with card numbers masked (SEC-1, ``redact_card_numbers``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet

from billing_backoffice.audit import audit_context
from billing_backoffice.enqueue import enqueue_on_commit
from billing_backoffice.errors import BillingError
from billing_backoffice.logging import redact_card_numbers
from billing_backoffice.models import StaffJob

logger = logging.getLogger("billing.staff_jobs")

State = StaffJob.State
# An action over more objects than this runs as a job (each object is a service call, often a
# gateway call: 20 of them already take seconds).
JOB_THRESHOLD = 20
NOTES_MAX = 100  # refusals kept on a job's summary; the count says how many there were
ERROR_MAX = 2000
BULK_TASK = "billing_backoffice.run_bulk_action"
# A job still queued this long after the page recorded it has lost its message: sent again.
RESEND_QUEUED_AFTER = timedelta(minutes=10)
RESEND_BATCH = 100


# --- the rows ------------------------------------------------------------------------------------


def job_create(*, kind: str, title: str, actor, now: datetime, task: str, total: int | None = None,
               params: dict | None = None) -> StaffJob:
    """Record a job that ``task`` (a Celery task name, called with ``job_id``) will run."""
    return StaffJob.objects.create(
        kind=kind, title=title[:200], actor=actor, total=total, params=params or {}, task=task, created_at=now,
    )


def job_enqueue(job: StaffJob) -> None:
    """Send the job's task once the transaction that recorded the job commits."""
    enqueue_on_commit(job.task, job_id=job.pk)


def job_run_limit() -> timedelta:
    """How long a run can hold a job: past the task's hard time limit its worker is gone."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)


def job_start(job_id: int, *, now: datetime, run_id: str = "") -> StaffJob | None:
    """Claim the job for the run of task message ``run_id``; ``None`` when it is finished already
    (a redelivered message) or another message's run holds it.

    A running job is taken over by the redelivery of the message that runs it (the same task id:
    its worker died mid-task and the broker handed the message on) and, once its run is older
    than the task time limit (nothing runs that long), by any message. A second message for a
    job that is running (the sweep's resend of a job that was only slow to start) does nothing.
    """
    claimable = Q(state=State.QUEUED) | Q(state=State.RUNNING, started_at__lt=now - job_run_limit())
    if run_id:
        claimable |= Q(state=State.RUNNING, run_id=run_id)
    claimed = StaffJob.objects.filter(claimable, pk=job_id).update(state=State.RUNNING, started_at=now, run_id=run_id)
    return StaffJob.objects.select_related("actor").get(pk=job_id) if claimed else None


def jobs_resend_lost(*, now: datetime) -> int:
    """Send again the task of each job whose message was lost; returns how many were sent.

    Lost: still queued ``RESEND_QUEUED_AFTER`` after it was recorded, or running past
    ``job_run_limit``. A job that was only slow to start gets a second message, which
    ``job_start`` makes harmless. One job's send failing (the broker still down, a task no longer
    registered) is logged and the others are sent; the next sweep tries it again.
    """
    lost = (
        StaffJob.objects.filter(
            Q(state=State.QUEUED, created_at__lt=now - RESEND_QUEUED_AFTER)
            | Q(state=State.RUNNING, started_at__lt=now - job_run_limit())
        )
        .exclude(task="")
        .order_by("created_at", "pk")
        .values_list("pk", "task")[:RESEND_BATCH]
    )
    sent = 0
    for job_id, task in lost:
        try:  # the task runs it in autocommit: sent at once, so a failed send is caught here
            enqueue_on_commit(task, job_id=job_id)
        except Exception:  # noqa: BLE001 - one job's send never stops the others'
            logger.exception("could not send staff job %s (%s) again", job_id, task)
            continue
        logger.warning("staff job %s lost its message; sent %s again", job_id, task)
        sent += 1
    return sent


def job_progress(job_id: int, *, done: int, total: int | None = None) -> None:
    """Record how far the job got (one UPDATE; seen at once by the page when run in autocommit)."""
    values = {"done": done} if total is None else {"done": done, "total": total}
    StaffJob.objects.filter(pk=job_id, state=State.RUNNING).update(**values)


def job_finish(job_id: int, *, now: datetime, summary: dict, obj=None) -> None:
    values = {"state": State.DONE, "summary": summary, "finished_at": now}
    if obj is not None:
        values.update(content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk))
    job = StaffJob.objects.filter(pk=job_id)
    job.update(**values)
    total = job.values_list("total", flat=True).first()
    if total is not None:
        job.update(done=total)


def job_fail(job_id: int, *, now: datetime, error: str, summary: dict | None = None) -> None:
    StaffJob.objects.filter(pk=job_id).update(
        state=State.FAILED, error=redact_card_numbers(error)[:ERROR_MAX], summary=summary or {}, finished_at=now,
    )


def jobs_of(user) -> QuerySet:
    """The jobs ``user`` may see: their own; a superuser sees everyone's."""
    jobs = StaffJob.objects.select_related("actor")
    return jobs if user.is_superuser else jobs.filter(actor_id=user.pk)


def job_status(job: StaffJob) -> dict:
    """What the progress page's poll reads (no card data: summaries hold counts and masked texts)."""
    percent = None
    if job.total:
        percent = min(100, round(100 * job.done / job.total))
    elif job.finished:
        percent = 100
    return {
        "id": job.pk, "kind": job.kind, "title": job.title, "state": job.state, "finished": job.finished,
        "done": job.done, "total": job.total, "percent": percent, "text": job_text(job),
        "summary": job.summary, "error": job.error,
    }


def job_text(job: StaffJob) -> str:
    if job.state == State.QUEUED:
        return "Waiting for a worker to start the job."
    if job.state == State.FAILED:
        return f"Failed: {job.error}"
    if job.state == State.DONE:
        return "Done."
    if job.total is None:
        return "Reading the input."
    return f"{job.done:,} of {job.total:,} done."


# --- bulk admin actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkAction:
    """``call(obj, actor, now)`` per object; ``check(obj, result)`` may turn a result into a warning."""

    name: str
    model: type
    call: Callable
    done_message: str
    check: Callable | None = None


BULK_ACTIONS: dict[str, BulkAction] = {}


def bulk_action(name: str, *, model, call: Callable, done_message: str, check: Callable | None = None) -> BulkAction:
    """Register (or re-register, on a module reload) the bulk action ``name``."""
    action = BulkAction(name=name, model=model, call=call, done_message=done_message, check=check)
    BULK_ACTIONS[name] = action
    return action


def bulk_action_start(action: BulkAction, *, ids: list[int], actor, now: datetime, log_message: str = "",
                      reason: str = "") -> StaffJob:
    """Record the job and send it to a worker once the request's transaction commits.

    ``log_message`` (default: the done message for one object) and ``reason`` are what each
    success writes to the admin's LogEntry."""
    noun = action.model._meta.verbose_name_plural
    log_message = log_message or action.done_message.format(count=1)
    job = job_create(
        kind=action.name, title=f"{action.name}: {len(ids)} {noun}", actor=actor, now=now, total=len(ids),
        task=BULK_TASK, params={"ids": list(ids), "log": f"{log_message} Reason: {reason}" if reason else log_message},
    )
    job_enqueue(job)
    return job


def bulk_action_run(*, job_id: int, clock: Callable[[], datetime], run_id: str = "") -> StaffJob | None:
    """Work through a bulk action's objects (the task's body); resumes after ``done`` on a redelivery."""
    job = job_start(job_id, now=clock(), run_id=run_id)
    if job is None:
        return None
    action = BULK_ACTIONS.get(job.kind)
    if action is None:
        job_fail(job_id, now=clock(), error=f"No bulk action is registered as {job.kind!r}.")
        return job
    ids = job.params.get("ids", [])
    log = job.params.get("log") or action.done_message.format(count=1)
    outcome = job.summary.get("outcome") or {"done": 0, "refused": 0, "warnings": 0, "notes": []}
    with audit_context(actor=job.actor, job=job.pk):
        for position in range(job.done, len(ids)):
            _bulk_item(action, ids[position], actor=job.actor, now=clock(), outcome=outcome, log=log)
            StaffJob.objects.filter(pk=job_id).update(done=position + 1, summary={"outcome": outcome})
    job_finish(job_id, now=clock(), summary=_bulk_summary(action, outcome))
    return job


def _bulk_item(action: BulkAction, pk: int, *, actor, now: datetime, outcome: dict, log: str) -> None:
    obj = action.model._default_manager.filter(pk=pk).first()
    if obj is None:
        _note(outcome, "refused", f"#{pk}: no longer exists")
        return
    try:
        result = action.call(obj, actor, now)
    except BillingError as error:
        _note(outcome, "refused", f"{obj}: {error.rule_text}")
        return
    except Exception as error:  # noqa: BLE001 - one poison object never halts the job
        logger.exception("bulk action %s failed on %s", action.name, pk)
        _note(outcome, "refused", f"{obj}: unexpected error ({type(error).__name__})")
        return
    problem = action.check(obj, result) if action.check else None
    if problem:
        _note(outcome, "warnings", f"{obj}: {problem}")
        return
    if actor is not None:
        LogEntry.objects.log_actions(user_id=actor.pk, queryset=[obj], action_flag=CHANGE, change_message=log,
                                     single_object=True)
    outcome["done"] += 1


def _note(outcome: dict, counter: str, text: str) -> None:
    outcome[counter] += 1
    if len(outcome["notes"]) < NOTES_MAX:
        outcome["notes"].append(redact_card_numbers(text))


def _bulk_summary(action: BulkAction, outcome: dict) -> dict:
    return {
        "outcome": outcome,
        "figures": [["Done", outcome["done"]], ["Refused", outcome["refused"]], ["Warnings", outcome["warnings"]]],
        "message": action.done_message.format(count=outcome["done"]),
        "notes": outcome["notes"],
    }
