"""gunicorn's own logs (error log and access log) with the project's filters and format.

gunicorn writes its access log through the ``gunicorn.access`` logger with handlers of its own
(not propagated, so ``settings.LOGGING`` never sees them). ``RedactingLogger`` (``logger_class``
in ``gunicorn.conf.py``) puts the SEC-1 card-number filter on each of its handlers, so
``GET /admin/payments/paymentmethod/?q=4242424242424242`` is written with ``[REDACTED PAN]``,
and uses the JSON formatter when ``LOG_FORMAT=json``. Access lines also carry the request id
the application answered with (``X-Request-ID``), the method, path, status and duration as
fields of their own.
"""

from __future__ import annotations

import os

from gunicorn.glogging import Logger

from billing_backoffice.log_context import JsonFormatter, LogContextFilter
from billing_backoffice.logging import RedactCardNumbers



def _log_format() -> str:
    """The Django settings' LOG_FORMAT (json in production, text locally)."""
    try:
        from django.conf import settings

        return settings.LOG_FORMAT
    except Exception:  # settings not importable in this process: the environment decides
        return os.environ.get("LOG_FORMAT", "json")


class RedactingLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        json_lines = _log_format() == "json"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(existing, RedactCardNumbers) for existing in handler.filters):
                    handler.addFilter(LogContextFilter())
                    handler.addFilter(RedactCardNumbers())
                if json_lines and getattr(handler, "_gunicorn", False):  # gunicorn's own, not a logconfig's
                    handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "request_id": atoms["{x-request-id}o"],
            "remote_addr": atoms["h"],
        }
        try:
            self.access_log.info(self.cfg.access_log_format, atoms, extra=fields)
        except Exception:
            self.exception("access log line failed")
