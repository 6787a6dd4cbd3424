"""Celery tasks of the remittances app.

``remittances.import_statement_inbox`` imports every statement file dropped into
``settings.STATEMENT_INBOX_DIR`` (REM-4), one ``statement_import`` call per file:

- A file is claimed by an atomic rename into ``processing/`` before it is read, so two runs at
  once (two beat firings, a retry overlapping the next run) never import one file twice; the
  loser of the rename skips the file. Even so, the import itself is idempotent (REM-4 duplicates).
- Imported files go to ``processed/`` with ``<name>.summary.json`` beside them; refused files go to
  ``failed/`` with ``<name>.error.txt`` saying why (the rule and the reason). Each keeps a unique
  prefix (claim time + random) so a bank re-sending ``statement.xml`` never overwrites the last one.
- A transient database error puts the file back into the inbox and retries the task (bounded).
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
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from billing_backoffice.errors import BillingError
from remittances.parsers import StatementTooLarge
from remittances.services.statements import statement_import

logger = logging.getLogger("remittances.statements")

TRANSIENT_ERRORS = (OperationalError, InterfaceError)
STALE_AFTER = timedelta(minutes=15)  # well past CELERY_TASK_TIME_LIMIT (300 s)
SKIPPED_SUFFIXES = (".part", ".tmp")


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


def _claim(path: Path, processing: Path) -> Path | None:
    """Atomically move ``path`` into ``processing/``; None if another run took it first."""
    claimed = processing / f"{timezone.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}--{path.name}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    os.utime(claimed)  # the claim time, which _requeue_stale measures from
    return claimed


def _import_one(claimed: Path, original_name: str) -> dict:
    size = claimed.stat().st_size
    if size > settings.STATEMENT_MAX_BYTES:
        raise StatementTooLarge(
            f"The file has {size} bytes; statements are limited to {settings.STATEMENT_MAX_BYTES} bytes."
        )
    summary = statement_import(
        data=claimed.read_bytes(), file_name=original_name, actor=None, now=timezone.now()
    )
    return summary.as_dict()


@shared_task(
    name="remittances.import_statement_inbox",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=3,
    retry_backoff=30,
    retry_backoff_max=300,
    retry_jitter=True,
)
def import_statement_inbox() -> dict:
    """REM-4: import each file of the statement inbox once; returns what happened to each."""
    inbox = Path(settings.STATEMENT_INBOX_DIR)
    inbox.mkdir(parents=True, exist_ok=True)
    folders = _folders(inbox)
    _requeue_stale(folders["processing"], inbox)
    outcome = {"imported": [], "failed": []}
    for path in sorted(inbox.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        claimed = _claim(path, folders["processing"])
        if claimed is None:
            continue
        try:
            figures = _import_one(claimed, path.name)
        except BillingError as error:
            target = folders["failed"] / claimed.name
            os.rename(claimed, target)
            target.with_name(target.name + ".error.txt").write_text(
                f"{error.code} ({error.rule or 'no rule'}): {error.detail}\n", encoding="utf-8"
            )
            logger.warning("Statement %s refused: %s", path.name, error)
            outcome["failed"].append({"file": path.name, "code": error.code, "rule": error.rule, "error": error.detail})
            continue
        except TRANSIENT_ERRORS:
            os.rename(claimed, inbox / path.name)  # nothing was committed; retried by the task
            raise
        except Exception as error:  # a bug, not the file's fault: keep the file aside, go on
            logger.exception("Statement %s could not be imported", path.name)
            target = folders["failed"] / claimed.name
            os.rename(claimed, target)
            target.with_name(target.name + ".error.txt").write_text(
                f"unexpected error ({type(error).__name__}); move the file back into the inbox once fixed\n",
                encoding="utf-8",
            )
            outcome["failed"].append({"file": path.name, "code": "unexpected_error", "rule": None, "error": type(error).__name__})
            continue
        target = folders["processed"] / claimed.name
        os.rename(claimed, target)
        target.with_name(target.name + ".summary.json").write_text(
            json.dumps(figures, sort_keys=True, default=str), encoding="utf-8"
        )
        logger.info("Statement %s imported: %s", path.name, figures)
        outcome["imported"].append({"file": path.name, **figures})
    return outcome
