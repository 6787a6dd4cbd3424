"""Request middleware: JSON errors under /api/, and the acting user of every audited change.

``ApiErrorMiddleware`` (first in MIDDLEWARE): under ``/api/`` every answer is JSON in the
console's error shape, DEBUG on or off. A view's crash answers a JSON 500 with no traceback
(the traceback goes to the log, through the card-safe reporter); a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE`` answers 413; any HTML error page Django produced on the way
(the DEBUG 404 of an unmatched URL, a middleware's crash) is replaced by the JSON of its status.

``AuditContextMiddleware``: the acting staff user (or API client) of every audited change (SEC-2).

Like ``pghistory.middleware.HistoryMiddleware``, plus the username and the method, and with
the ``actor`` key every audit row carries. Must come after ``AuthenticationMiddleware``.

The admin's user is known when the request arrives (session); the console API's user only
once DRF authenticates the token inside the view. DRF assigns ``request.user`` on the Django
request then, so the request's class is swapped for one whose ``user`` assignment updates the
context (the same technique pghistory's own middleware uses).
"""

from __future__ import annotations

import logging
from typing import Any

import pghistory
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest
from django.http import Http404
from django.utils.log import log_response

from billing_backoffice.api_errors import is_api_request, json_error
from billing_backoffice.audit import AuditBlock, actor_metadata

# Headers of an error answer that a client needs and that the JSON replacement keeps.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if is_api_request(request) and response.status_code >= 400 and not _is_json(response):
            replacement = json_error(response.status_code)
            for header in _KEPT_HEADERS:
                if header in response:
                    replacement[header] = response[header]
            replacement._has_been_logged = getattr(response, "_has_been_logged", False)
            return replacement
        return response

    def process_exception(self, request, exception):
        if not is_api_request(request):
            return None  # the admin keeps Django's pages (made card-safe by error_reports)
        if isinstance(exception, SuspiciousOperation):
            # As Django does, to the security logger; a body too big is the client's fault too.
            logging.getLogger(f"django.security.{type(exception).__name__}").error(
                str(exception), extra={"status_code": 400, "request": request}
            )
            return json_error(413 if isinstance(exception, RequestDataTooBig) else 400)
        if isinstance(exception, Http404):
            return json_error(404)
        if isinstance(exception, PermissionDenied):
            return json_error(403)
        response = json_error(500)
        log_response("Internal Server Error: %s", request.path, response=response, request=request,
                     exception=exception)
        return response


def _is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() == "application/json"


def _user_metadata(user: Any) -> dict[str, Any]:
    if user is None or not getattr(user, "is_authenticated", False):
        return {"actor": "anonymous", "user": None, "username": ""}
    return actor_metadata(user)


class _AuditedRequest:
    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "user":
            # Called inside the middleware's context: this updates that context's keys.
            pghistory.context(**_user_metadata(value))


class _AuditedWSGIRequest(_AuditedRequest, WSGIRequest):
    pass


class _AuditedASGIRequest(_AuditedRequest, ASGIRequest):
    pass


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        metadata = {
            **_user_metadata(getattr(request, "user", None)),
            "url": request.path,
            "method": request.method,
        }
        with AuditBlock(**metadata):
            if isinstance(request, WSGIRequest):
                request.__class__ = _AuditedWSGIRequest
            elif isinstance(request, ASGIRequest):
                request.__class__ = _AuditedASGIRequest
            return self.get_response(request)
