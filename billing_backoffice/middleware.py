"""Request middleware: the acting staff user (or API client) of every audited change (SEC-2).

Like ``pghistory.middleware.HistoryMiddleware``, plus the username and the method, and with
the ``actor`` key every audit row carries. Must come after ``AuthenticationMiddleware``.

The admin's user is known when the request arrives (session); the console API's user only
once DRF authenticates the token inside the view. DRF assigns ``request.user`` on the Django
request then, so the request's class is swapped for one whose ``user`` assignment updates the
context (the same technique pghistory's own middleware uses).
"""

from __future__ import annotations

from typing import Any

import pghistory
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest

from billing_backoffice.audit import AuditBlock, actor_metadata


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
