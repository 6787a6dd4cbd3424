"""DRF exception handler: every error answer is ``{"code", "rule", "detail"}``.

Business errors answer with their own status (422 rule violation, 409 conflict, 404 unknown);
malformed input answers 400 with the fields at fault under ``fields``.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from billing_backoffice.errors import BillingError


def exception_handler(exc, context):
    if isinstance(exc, BillingError):
        return Response(exc.as_dict(), status=exc.http_status)
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
                "fields": exc.detail,
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        code = getattr(getattr(exc, "detail", None), "code", None) or getattr(exc, "default_code", "error")
        response.data = {"code": str(code), "rule": None, "detail": str(detail)}
    return response
