"""Poison messages end in a visible failed state instead of looping (QUALITY.md, Celery matrix).

What a message can do to a worker, and where it ends:

- The task raises a business error, a bug or bad arguments (a message produced by an older
  version): nothing retries it (``autoretry_for`` lists transient database errors only), the
  worker acknowledges it (``acks_late`` acknowledges failures too) and ``task_failure`` fires.
- The task keeps hitting a transient error: it is retried ``max_retries`` times with bounded
  backoff, then fails the same way.
- The message names a task this worker does not know, or cannot be decoded: Celery rejects it
  without requeueing (``task_unknown`` / ``task_rejected``).

Results are not stored (``CELERY_TASK_IGNORE_RESULT``), so the durable trace of each of these is
one ERROR line on the ``billing.tasks`` logger, emitted here, that names the task, its id and
its arguments, plus structured fields (``extra``) for a log pipeline. Arguments are shown only
when they are ids (integers, lists of integers, booleans, None); anything else is shown as its
type, so a card number or any other text from a message never reaches the logs (SEC-1).

The worker's own logs: Celery replaces the root logger's handlers with its own when a worker
starts (``worker_hijack_root_logger``), which drops the SEC-1 redaction filter of ``LOGGING``,
and its "unregistered task" error prints the whole message body. ``redact_worker_logs`` puts the
filter back on every handler Celery installs, so a card number that a faulty producer put into
a message is redacted there too.

Not handled here: a message whose task kills the worker process itself (out of memory, a
crash in a C extension). With ``reject_on_worker_lost`` it is requeued each time;
``CELERY_TASK_RETRY_ON_WORKER_LOST`` (Celery >= 5.7) bounds that by ``max_retries`` and then
ends it here like any other failure.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_failure,
    task_rejected,
    task_unknown,
)

from billing_backoffice.logging import RedactCardNumbers

logger = logging.getLogger("billing.tasks")

MAX_LISTED_IDS = 10


def safe_value(value: Any) -> Any:
    """An argument as it may be logged: ids as they are, anything else as its type only."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        if len(value) <= MAX_LISTED_IDS:
            return list(value)
        return f"<{len(value)} ids {min(value)}..{max(value)}>"
    return f"<{type(value).__name__}>"


def safe_arguments(args: Any, kwargs: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {f"arg{index}": safe_value(value) for index, value in enumerate(args or ())}
    if isinstance(kwargs, dict):
        shown.update({str(name): safe_value(value) for name, value in kwargs.items()})
    return shown


def _error_fields(exception: BaseException | None) -> dict[str, Any]:
    # Only the class and, for business errors, their stable code and rule: an exception's text
    # may quote message content. Celery's own error line (with the traceback) is still there.
    fields: dict[str, Any] = {"error": type(exception).__name__ if exception is not None else "unknown"}
    for attribute in ("code", "rule"):
        value = getattr(exception, attribute, None)
        if isinstance(value, str):
            fields[f"error_{attribute}"] = value
    return fields


@task_failure.connect(dispatch_uid="billing_backoffice.celery_failures.log_task_failure")
def log_task_failure(sender=None, task_id=None, exception=None, args=None, kwargs=None, **_: Any) -> None:
    """A task ended FAILED (for good: retries are over or were never allowed)."""
    name = getattr(sender, "name", str(sender))
    request = getattr(sender, "request", None)
    retries = getattr(request, "retries", 0) or 0
    fields = {
        "task_name": name,
        "task_id": task_id,
        "task_args": safe_arguments(args, kwargs),
        "retries": retries,
        "max_retries": getattr(sender, "max_retries", None),
        **_error_fields(exception),
    }
    logger.error(
        "TASK_FAILED task=%s id=%s args=%s error=%s retries=%s",
        name, task_id, fields["task_args"], fields["error"], retries,
        extra={"celery_failure": fields},
    )


@task_unknown.connect(dispatch_uid="billing_backoffice.celery_failures.log_task_unknown")
def log_task_unknown(sender=None, name=None, id=None, message=None, exc=None, **_: Any) -> None:  # noqa: A002
    """A message for a task this worker does not register (renamed, removed, or not imported)."""
    fields = {"task_name": str(name)[:200], "task_id": id, "error": "unregistered task"}
    logger.error(
        "TASK_REJECTED task=%s id=%s error=unregistered task (message dropped)",
        fields["task_name"], id, extra={"celery_failure": fields},
    )


@task_rejected.connect(dispatch_uid="billing_backoffice.celery_failures.log_task_rejected")
def log_task_rejected(sender=None, message=None, exc=None, **_: Any) -> None:
    """A message the worker could not decode (unknown content type, corrupt body)."""
    headers = getattr(message, "headers", None) or {}
    fields = {
        "task_name": str(headers.get("task", "unknown"))[:200],
        "task_id": headers.get("id"),
        "error": type(exc).__name__ if exc is not None else "rejected",
    }
    logger.error(
        "TASK_REJECTED task=%s id=%s error=%s (message dropped)",
        fields["task_name"], fields["task_id"], fields["error"], extra={"celery_failure": fields},
    )


@after_setup_logger.connect(dispatch_uid="billing_backoffice.celery_failures.redact_root")
@after_setup_task_logger.connect(dispatch_uid="billing_backoffice.celery_failures.redact_task")
def redact_worker_logs(logger=None, **_: Any) -> None:
    """SEC-1 in the worker: the card-number filter on the handlers Celery set up."""
    for handler in getattr(logger, "handlers", ()):
        if not any(isinstance(existing, RedactCardNumbers) for existing in handler.filters):
            handler.addFilter(RedactCardNumbers())
