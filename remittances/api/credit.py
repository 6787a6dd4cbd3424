"""Console API: credit applications (CRED-1). Parse the shape, call one service, render.

``POST /api/v1/accounts/{id}/credit-applications/`` files an application sent by the console
(source ``console``, no staff recorder). The limit takes effect only when an account manager
approves it in the admin, so the answer is the application, ``submitted``.

I6 at the edge: the limit must be a JSON *string* holding a decimal with at most 2 places; a
JSON number (a float once parsed) is refused with 400 rather than rounded.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from billing_backoffice.api_fields import CurrencyField, FreeTextField, LimitField
from billing_backoffice.api_schema import error_responses
from billing_backoffice.api_views import ConsoleAPIView
from remittances.models import CreditLimitRequest
from remittances.services import credit as services

ERROR_TEXT = {
    400: "Malformed input (a limit that is not a decimal string with at most 2 places, an unknown currency...).",
    404: "Unknown account.",
    409: "The account already has an open credit application (CRED-1).",
    422: "A rule refused it (CRED-1: account not active, nothing to revoke; I6: more decimals than the "
    "currency has, e.g. JPY 0.50); `rule` names the rule.",
}


class CreditApplicationCreateSerializer(serializers.Serializer):
    """I6 shape (400): a decimal string within the column, an accepted currency; SEC-1: the
    justification never holds a card number. JPY with cents is the service's I6 rule (422)."""

    requested_limit = LimitField(
        help_text="Decimal as a string, at most 2 decimal places, >= 0 (\"0\" asks to revoke credit).",
    )
    currency = CurrencyField()
    justification = FreeTextField(max_length=2000, help_text="Why the customer needs credit.")


class CreditApplicationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text="submitted, approved or rejected.")
    requested_limit = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    currency = serializers.CharField()


class CreditApplicationCreateView(ConsoleAPIView):  # token only: a staff session never reaches it

    @extend_schema(
        summary="Apply for a credit limit (CRED-1)",
        description=(
            "201 with the application, `submitted`: the limit takes effect only once an account "
            "manager approves it. A limit of \"0\" asks to revoke the account's credit."
        ),
        request=CreditApplicationCreateSerializer,
        responses={
            201: CreditApplicationSerializer,
            **error_responses(ERROR_TEXT),
        },
    )
    def post(self, request, account_id: int):
        form = CreditApplicationCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        application: CreditLimitRequest = services.credit_request_submit(
            account_id=account_id,
            requested_limit=form.validated_data["requested_limit"],
            currency=form.validated_data["currency"],
            justification=form.validated_data["justification"],
            source=CreditLimitRequest.Source.CONSOLE,
            recorded_by=None,
            now=timezone.now(),
        )
        return Response(CreditApplicationSerializer(application).data, status=status.HTTP_201_CREATED)
