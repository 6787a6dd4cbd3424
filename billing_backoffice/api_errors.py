"""DRF exception handler: every error answer is ``{"code", "rule", "detail"}``.

Business errors answer with their own status (422 rule violation, 409 conflict, 404 unknown,
503 gateway unavailable); malformed input answers 400 with the fields at fault under ``fields``.

SEC-1: the card serializers never echo a number or CVV, but some stock DRF and django-filter
messages quote the input (``"x" is not a valid choice``), so a card number pasted into the
wrong field could come back. Every message is therefore passed through the same Luhn-based
redaction as the logs before it is answered.

Outside DRF (no URL matched, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, a crash), Django
answers through ``handler400/403/404/500`` in ``billing_backoffice.urls``; under ``/api/`` those
answer the same JSON shape (``json_error``), elsewhere Django's own pages.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from billing_backoffice.errors import CARD_NUMBER_MESSAGE, BillingError, CardNumberInText
from billing_backoffice.forbidden import forbidden_page  # the staff's 403 page (issue 10)
from billing_backoffice.logging import redact_card_numbers


def _redacted(value):
    """The same structure of messages, with any card number in them replaced."""
    if isinstance(value, dict):  # keys too: an unknown query parameter is named by its key
        return {redact_card_numbers(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, str):  # ErrorDetail is a str; keep its code
        redacted = redact_card_numbers(value)
        if redacted == value:
            return value
        return exceptions.ErrorDetail(redacted, code=getattr(value, "code", None))
    return value


def _error_codes(detail):
    if isinstance(detail, dict):
        return [code for item in detail.values() for code in _error_codes(item)]
    if isinstance(detail, list):
        return [code for item in detail for code in _error_codes(item)]
    return [getattr(detail, "code", None)]


def _only_card_numbers(detail) -> bool:
    codes = _error_codes(detail)
    return bool(codes) and all(code == CardNumberInText.code for code in codes)


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
        if _only_card_numbers(exc.detail):
            # Well-formed, but a rule forbids it (SEC-1): 422, so a schema-valid request is never
            # answered "malformed" (no pattern can state the Luhn check).
            return Response(
                {
                    "code": CardNumberInText.code,
                    "rule": CardNumberInText.rule,
                    "detail": CARD_NUMBER_MESSAGE,
                    "fields": _redacted(exc.detail),
                },
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
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


# --- answers outside DRF --------------------------------------------------------------------------

API_PREFIX = "/api/"

# status -> (code, detail) of the answers Django itself gives, in the console's error shape.
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is malformed."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "No such object."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("request_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the body as application/json."),
    500: ("server_error", "An unexpected error occurred; it has been logged."),
}


def is_api_request(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def json_error(status_code: int, *, code: str | None = None, detail: str | None = None) -> JsonResponse:
    """``{"code", "rule", "detail"}`` with the stock code and text of ``status_code``."""
    stock_code, stock_detail = STATUS_ERRORS.get(status_code, ("error", "The request failed."))
    body = {"code": code or stock_code, "rule": None, "detail": redact_card_numbers(detail or stock_detail)}
    return JsonResponse(body, status=status_code)


def handler400(request, exception=None):
    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return json_error(413)
    return json_error(400)


def handler403(request, exception=None):
    if not is_api_request(request):
        return forbidden_page(request, exception)
    return json_error(403)


def handler404(request, exception=None):
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return json_error(404)


def handler500(request):
    if not is_api_request(request):
        return defaults.server_error(request)
    return json_error(500)
