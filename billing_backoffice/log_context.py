"""Who and what a log line is about: request id, staff user or API client, Celery task.

The fields live in a context variable that the request-id middleware (web) and the Celery
task signals (worker) set; ``LogContextFilter`` copies them onto every record, so any
``logger.info(...)`` inside a request or task carries them without passing anything. Services
add their own fields with ``extra={"account_uid": ..., "rule": ...}`` or ``log_context(...)``.

Formatters: ``TextFormatter`` (one readable line, local) and ``JsonFormatter`` (one JSON object
per line, production), chosen by ``LOG_FORMAT`` (``billing_backoffice/log_config.py``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any, Iterator

from celery.signals import setup_logging, task_postrun, task_prerun
from django.conf import settings
from django.utils.functional import SimpleLazyObject, empty
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_fields: ContextVar[dict[str, Any]] = ContextVar("billing_log_context", default={})
_task_tokens: dict[str, Any] = {}

# Fields shown in the text format's trailer when present (JSON shows every extra field).
TEXT_FIELDS = ("request_id", "user", "task_name", "task_id", "account_uid", "rule", "code", "duration_ms")
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is kept only when it is a plain token: it is logged and echoed back.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Probes that load balancers and Prometheus call every few seconds: their lines only at DEBUG.
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")

request_logger = logging.getLogger("billing.request")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Adds fields to every record logged inside the block (nested blocks add to outer ones)."""
    token = _fields.set({**_fields.get(), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


def current_log_context() -> dict[str, Any]:
    return dict(_fields.get())


def _user_label(request: Any) -> str | None:
    """The acting user, only if authentication already ran: a log line never queries the database."""
    user = vars(request).get("user")  # DRF assigns the token's user directly
    if isinstance(user, SimpleLazyObject):
        wrapped = user._wrapped
        user = None if wrapped is empty else wrapped
    if user is None:
        user = vars(request).get("_cached_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    kind = "staff" if getattr(user, "is_staff", False) else "api"
    return f"{kind}:{user.get_username()}"


class LogContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields.get().items():
            if name == "request":
                if not hasattr(record, "user") and (label := _user_label(value)):
                    record.user = label
            elif not hasattr(record, name):
                setattr(record, name, value)
        # Celery's "Task x[id] succeeded in 0.12s" line: its run time as a field of its own.
        if isinstance(record.args, dict) and isinstance(record.args.get("runtime"), (int, float)):
            record.duration_ms = round(record.args["runtime"] * 1000, 1)
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request_id=... user=...]: message``: the fields before the message,
    so a line's end stays the message itself (tools and tests read Celery's result there)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context_fields)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        shown = " ".join(f"{name}={getattr(record, name)}" for name in TEXT_FIELDS if hasattr(record, name))
        record.context_fields = f" [{shown}]" if shown else ""
        return super().formatMessage(record)


class JsonFormatter(_JsonFormatter):
    # Objects Django attaches for its own handlers (runserver's socket, the HttpRequest).
    _DROPPED = ("request", "server_time", "_card_numbers_redacted", "color_message", "taskName", "context_fields")

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        for name in self._DROPPED:
            log_data.pop(name, None)


def request_id_from(header: str | None) -> str:
    if header and _VALID_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE: a request id for every line the request logs, echoed back in the
    ``X-Request-ID`` header (gunicorn's access line reads it from there), and one line per
    request with its status and duration (and the request metrics when they are on)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        started = time.perf_counter()
        with log_context(request_id=request_id, request=request):
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            seconds = time.perf_counter() - started
            duration_ms = round(seconds * 1000, 1)
            if settings.METRICS_ENABLED:
                from billing_backoffice.metrics import observe_request

                observe_request(request, response, seconds)
            quiet = request.path in QUIET_PATHS and response.status_code < 500
            request_logger.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s %s %.1fms", request.method, request.path, response.status_code, duration_ms,
                extra={"method": request.method, "path": request.path, "status": response.status_code,
                       "duration_ms": duration_ms},
            )
        return response


@task_prerun.connect(dispatch_uid="billing_backoffice.log_context.task_started")
def _task_started(task_id=None, task=None, **_: Any) -> None:
    fields = {**_fields.get(), "task_id": task_id, "task_name": getattr(task, "name", str(task))}
    _task_tokens[task_id] = _fields.set(fields)


@task_postrun.connect(dispatch_uid="billing_backoffice.log_context.task_finished")
def _task_finished(task_id=None, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        with contextlib.suppress(ValueError, RuntimeError):  # set in another context (eager, threads)
            _fields.reset(token)


@setup_logging.connect(dispatch_uid="billing_backoffice.log_context.worker_logging")
def _worker_logging(**_: Any) -> None:
    """Celery worker and beat log through ``settings.LOGGING`` (same format, same SEC-1 filter)
    instead of replacing the root logger's handlers with Celery's own."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
