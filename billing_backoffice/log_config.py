"""The ``LOGGING`` dict of every process (web, worker, beat, ``manage.py``), in one place.

``text`` (local default) is one human-readable line per record; ``json`` (production default)
is one JSON object per line for a log pipeline. Both carry the same fields: the request id,
the staff user or API client, the Celery task id and name (``billing_backoffice.log_context``),
and whatever a call passes in ``extra`` (``account_uid``, ``rule``, ``duration_ms`` ...).

Every handler redacts card numbers first (SEC-1). Django's own loggers are routed to the same
handler: by default ``django`` prints to an unfiltered console handler when DEBUG is on and
``django.server`` (runserver's access log) to a handler of its own, both of which would write
query strings such as ``?q=4242424242424242`` as they came.

Pure Python (no Django import): the settings modules call it.
"""

from __future__ import annotations

from typing import Any

LOG_FORMATS = ("text", "json")


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            # Order matters: the context is added first, so its fields are redacted too.
            "log_context": {"()": "billing_backoffice.log_context.LogContextFilter"},
            "redact_card_numbers": {"()": "billing_backoffice.logging.RedactCardNumbers"},
        },
        "formatters": {
            "text": {"()": "billing_backoffice.log_context.TextFormatter"},
            "json": {"()": "billing_backoffice.log_context.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["log_context", "redact_card_numbers"],
                "formatter": log_format,
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # No handler of Django's own (console when DEBUG, mail_admins): records go to root's.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "pgserver": {"level": "WARNING"},
            # WeasyPrint logs every rendering step at INFO.
            "weasyprint": {"level": "WARNING"},
            "fontTools": {"level": "WARNING"},
            # django-axes logs every login at INFO; lockouts (WARNING) still show, and every login is
            # kept in its AccessLog table.
            "axes": {"level": "WARNING"},
        },
    }
