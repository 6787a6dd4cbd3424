"""A statement finance uploads in the admin, imported as a staff job (issue 10; REM-1..7 unchanged).

``statement_upload_start`` (the upload page) checks the permission (SEC-3) and the size, stores
the file (default storage, ``statement-uploads/<job>/``: the worker reads the same bytes the
user sent), records a ``StaffJob`` and enqueues ``remittances.import_uploaded_statement`` after
the commit; the page redirects to the job's progress page. ``statement_upload_run`` (the task)
imports the stored bytes with ``statement_import``, exactly as the page did before: all or
nothing, identical bytes recognised by their SHA-256 (every line a duplicate), one poison line
never halting the file. It reports the file's line count before the import's transaction opens
(the progress bar's total), stores the summary on the job (each statement keeps its own on
``BankStatement.summary``, as before) and links the job to the first statement. A refused file
fails the job with the rule and the reason; nothing is recorded. The stored file is deleted
once the job is finished (the statements keep its name and hash).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils.text import get_valid_filename

from billing_backoffice.errors import BillingError
from billing_backoffice.models import StaffJob
from billing_backoffice.permissions import staff_require
from billing_backoffice.staff_jobs import job_create, job_enqueue, job_fail, job_finish, job_progress, job_start
from remittances.models import BankStatement
from remittances.parsers import AUTO, check_size
from remittances.services.statements import ImportSummary, statement_import

logger = logging.getLogger(__name__)

JOB_KIND = "remittances.statement_import"
TASK = "remittances.import_uploaded_statement"
PERMISSION = "remittances.import_bankstatement"
# (label, ImportSummary attribute): what the progress page and the statement show, in words.
FIGURES = (
    ("Lines read", "entries"),
    ("Credited", "credited"),
    ("Waiting for a claim (shared account)", "unmatched"),
    ("To review (currency differs)", "review"),
    ("Duplicates (imported before)", "duplicates"),
    ("Not creditable (debits, reversals, pending)", "rejected"),
)


def statement_upload_start(*, upload, fmt: str = AUTO, actor, now: datetime) -> StaffJob:
    """Store the uploaded file and queue its import; ``upload`` is Django's ``UploadedFile``."""
    staff_require(actor, permission=PERMISSION, action="import bank statements", system_allowed=False)
    check_size(upload.size)
    name = (upload.name or "statement")[:255]
    job = job_create(kind=JOB_KIND, title=f"Import {name}", actor=actor, now=now, task=TASK,
                     params={"file_name": name, "format": fmt})
    path = default_storage.save(f"statement-uploads/{job.pk}/{get_valid_filename(name) or 'statement'}", upload)
    job.params["path"] = path
    job.save(update_fields=["params"])
    job_enqueue(job)
    return job


def statement_upload_run(*, job_id: int, now: datetime, run_id: str = "") -> StaffJob | None:
    """The task's body: import the stored file for the job's actor and record the outcome
    (``run_id``: the task message's id, ``staff_jobs.job_start``)."""
    job = job_start(job_id, now=now, run_id=run_id)
    if job is None:
        return None  # finished already: a redelivered message does nothing
    params = job.params
    try:
        with default_storage.open(params["path"], "rb") as stored:
            data = stored.read()
        summary = statement_import(
            data=data, file_name=params.get("file_name", ""), fmt=params.get("format", AUTO), actor=job.actor,
            now=now, progress=lambda done, total: job_progress(job_id, done=done, total=total),
        )
    except BillingError as refusal:
        rule = f"{refusal.rule}: " if refusal.rule else ""
        job_fail(job_id, now=now, error=f"The statement was refused; nothing was imported. {rule}{refusal.detail}",
                 summary={"rule": refusal.rule, "code": refusal.code})
        _discard(params)
        return job
    except FileNotFoundError:
        job_fail(job_id, now=now, error="The uploaded file is no longer stored; upload it again.")
        return job
    first = BankStatement.objects.filter(pk=summary.statement_id).first()
    job_finish(job_id, now=now, summary=upload_summary(summary), obj=first)
    _discard(params)
    return job


def upload_summary(summary: ImportSummary) -> dict:
    """The job's summary: figures in words, notes, and the statements the file holds."""
    notes = []
    if summary.entries and summary.duplicates == summary.entries:
        notes.append("Every line was imported before (the same entries or the same file): nothing was credited twice.")
    if summary.credited_on_suspended:
        notes.append(f"{summary.credited_on_suspended} line(s) credited to a suspended dedicated account: follow up.")
    if summary.review:
        notes.append("Lines to review arrived in a currency other than their receiving account's (not credited).")
    if summary.rejected:
        notes.append("Debits, reversals and pending entries are recorded and never credited.")
    for currency, total in sorted(summary.credited_amounts.items()):
        notes.append(f"Credited {total} {currency} in total.")
    return {
        "figures": [[label, getattr(summary, name)] for label, name in FIGURES],
        "notes": notes,
        "object_ids": summary.statement_ids,  # the job's links: every statement of the file
        "format": summary.format,
        "statements": summary.statements,
        "new_statements": summary.new_statements,
        "import": summary.as_dict(),
    }


def statement_job(statement: BankStatement) -> StaffJob | None:
    """The upload job that imported ``statement`` (the newest, if the file was uploaded again)."""
    return (
        StaffJob.objects.filter(kind=JOB_KIND, state=StaffJob.State.DONE)
        .filter(Q(object_id=str(statement.pk)) | Q(summary__object_ids__contains=[statement.pk]))
        .order_by("-created_at", "-id").first()
    )


def _discard(params: dict) -> None:
    try:
        default_storage.delete(params["path"])
    except OSError:  # noqa: PERF203 - a file left behind is harmless; the job has finished
        logger.warning("could not delete the uploaded statement %s", params.get("path"))
