"""The statement inbox (REM-4): every file dropped into ``settings.STATEMENT_INBOX_DIR`` is
imported once, one ``statement_import`` call per file; the task ``remittances.import_statement_inbox``
runs ``statement_inbox_import``.

- A file is claimed by an atomic rename into ``processing/`` before it is read, so two runs at
  once (two beat firings, a retry overlapping the next run) never import one file twice; the
  loser of the rename skips the file. Even so, the import itself is idempotent (REM-4 duplicates).
- Imported files go to ``processed/`` with ``<name>.summary.json`` beside them; refused files go to
  ``failed/`` with ``<name>.error.txt`` saying why (the rule and the reason). Each keeps a unique
  prefix (claim time + random) so a bank re-sending ``statement.xml`` never overwrites the last one.
- A refused file is a poison item of the job (billing_backoffice/item_failures.py): recorded under
  its name in ``failed/`` with its reason, visible to finance in the admin, and tried again from
  ``failed/`` by later runs with a backoff (a statement for a receiving account registered since
  then imports), until it is given up; "retry now" in the admin makes the next run try it again.
  A file that then imports moves to ``processed/`` and its failure is resolved. One bad file never
  stops the others.
- A transient database error puts the file back where it was and retries the task (bounded).
  A run killed mid-import leaves the file in ``processing/``; after ``STALE_AFTER`` it is put back
  into the inbox by the next run (its import had rolled back, or is found as duplicates).
- Writers should drop files atomically (write ``.name.part`` or ``name.tmp``, then rename): names
  starting with a dot or ending in ``.part``/``.tmp`` are left alone.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError

from billing_backoffice.errors import BillingError
from billing_backoffice.item_failures import JobItems
from remittances.parsers import check_size
from remittances.services.statements import statement_import

logger = logging.getLogger("remittances.statements")

INBOX_JOB = "remittances.import_statement_inbox"
ITEM_KIND = "statement_file"
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
STALE_AFTER = timedelta(minutes=15)  # well past CELERY_TASK_TIME_LIMIT (300 s)
SKIPPED_SUFFIXES = (".part", ".tmp")
SIDE_FILES = (".error.txt", ".summary.json")


def _folders(inbox: Path) -> dict[str, Path]:
    folders = {name: inbox / name for name in ("processing", "processed", "failed")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def _requeue_stale(processing: Path, inbox: Path) -> None:
    """Files claimed by a run that died: back into the inbox (their import rolled back)."""
    cutoff = time.time() - STALE_AFTER.total_seconds()
    for path in processing.iterdir():
        if path.is_file() and path.stat().st_mtime < cutoff:
            original = path.name.split("--", 1)[-1]
            try:
                os.rename(path, inbox / original)
            except FileNotFoundError:
                pass  # another run requeued it first


def _claim(path: Path, target: Path) -> Path | None:
    """Atomically move ``path`` to ``target``; None if another run took it first."""
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    os.utime(target)  # the claim time, which _requeue_stale measures from
    return target


def _import_one(claimed: Path, original_name: str, *, now: datetime) -> dict:
    check_size(claimed.stat().st_size)  # before the file is read into memory
    summary = statement_import(data=claimed.read_bytes(), file_name=original_name, actor=None, now=now)
    return summary.as_dict()


def _refusal(error: BaseException) -> dict:
    if isinstance(error, BillingError):
        return {"code": error.code, "rule": error.rule, "error": error.detail,
                "text": f"{error.code} ({error.rule or 'no rule'}): {error.detail}\n"}
    # A bug, not the file's fault: keep the file aside and go on.
    return {"code": "unexpected_error", "rule": None, "error": type(error).__name__,
            "text": f"unexpected error ({type(error).__name__}); retried by later runs, or move the file back "
                    "into the inbox once fixed\n"}


def _process(claimed: Path, *, put_back: Path, folders: dict[str, Path], items: JobItems, now: datetime, outcome: dict) -> None:
    """Import one claimed file and file it away; ``put_back`` is where a transient error returns it."""
    original_name = claimed.name.split("--", 1)[-1]
    try:
        result = items.run(claimed.name, lambda: _import_one(claimed, original_name, now=now))
    except TRANSIENT_ERRORS:
        os.rename(claimed, put_back)  # nothing was committed; retried by the task
        raise
    if not result.ok:
        refusal = _refusal(result.error)
        if isinstance(result.error, BillingError):
            logger.warning("Statement %s refused: %s", original_name, result.error)
        else:
            logger.error("Statement %s could not be imported (%s)", original_name, type(result.error).__name__)
        target = folders["failed"] / claimed.name
        os.rename(claimed, target)
        target.with_name(target.name + ".error.txt").write_text(refusal.pop("text"), encoding="utf-8")
        outcome["failed"].append({"file": original_name, **refusal})
        return
    target = folders["processed"] / claimed.name
    os.rename(claimed, target)
    target.with_name(target.name + ".summary.json").write_text(
        json.dumps(result.value, sort_keys=True, default=str), encoding="utf-8"
    )
    stale_error = folders["failed"] / f"{claimed.name}.error.txt"
    stale_error.unlink(missing_ok=True)  # it failed before and imports now
    logger.info("Statement %s imported: %s", original_name, result.value)
    outcome["imported"].append({"file": original_name, **result.value})


def statement_inbox_import(*, now: datetime) -> dict:
    """REM-4: import each new file of the inbox once, then retry the refused files that are due;
    returns what happened to each (see the module docstring)."""
    inbox = Path(settings.STATEMENT_INBOX_DIR)
    inbox.mkdir(parents=True, exist_ok=True)
    folders = _folders(inbox)
    _requeue_stale(folders["processing"], inbox)
    items = JobItems(job=INBOX_JOB, item_kind=ITEM_KIND, now=now)
    outcome: dict = {"imported": [], "failed": []}
    for path in sorted(inbox.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        name = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}--{path.name}"
        claimed = _claim(path, folders["processing"] / name)
        if claimed is not None:
            _process(claimed, put_back=inbox / path.name, folders=folders, items=items, now=now, outcome=outcome)
    for name, failure in sorted(items.open_failures().items()):
        quarantined = folders["failed"] / name
        if items.skips(name) or not quarantined.is_file():
            continue  # waiting for its retry, given up, or taken out of failed/ by an operator
        claimed = _claim(quarantined, folders["processing"] / name)
        if claimed is not None:
            _process(claimed, put_back=quarantined, folders=folders, items=items, now=now, outcome=outcome)
    return outcome
