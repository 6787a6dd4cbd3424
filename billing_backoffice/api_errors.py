"""DRF exception handler: every error answer is ``{"code", "rule", "detail"}``.

Business errors answer with their own status (422 rule violation, 409 conflict, 404 unknown,
503 gateway unavailable); malformed input answers 400 with the fields at fault under ``fields``.

SEC-1: the card serializers never echo a number or CVV, but some stock DRF and django-filter
messages quote the input (``"x" is not a valid choice``), so a card number pasted into the
wrong field could come back. Every message is therefore passed through the same Luhn-based
redaction as the logs before it is answered.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from billing_backoffice.errors import BillingError
from billing_backoffice.logging import redact_card_numbers


def _redacted(value):
    """The same structure of messages, with any card number in them replaced."""
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, str):  # ErrorDetail is a str; keep its code
        redacted = redact_card_numbers(value)
        if redacted == value:
            return value
        return exceptions.ErrorDetail(redacted, code=getattr(value, "code", None))
    return value


def exception_handler(exc, context):
    if isinstance(exc, BillingError):
        body = exc.as_dict()
        body["detail"] = redact_card_numbers(str(body["detail"]))
        return Response(body, status=exc.http_status)
    if isinstance(exc, (Http404, exceptions.NotFound)):
        return Response(
            {"code": "not_found", "rule": None, "detail": "No such object."},
            status=status.HTTP_404_NOT_FOUND,
        )
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            {
                "code": "invalid",
                "rule": None,
                "detail": "The request has fields that are missing or malformed.",
                "fields": _redacted(exc.detail),
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        code = getattr(getattr(exc, "detail", None), "code", None) or getattr(exc, "default_code", "error")
        response.data = {"code": str(code), "rule": None, "detail": redact_card_numbers(str(detail))}
    return response
