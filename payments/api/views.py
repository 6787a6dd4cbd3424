"""Console API views: parse with a serializer, call one service, render.

No rule lives here. Services raise ``BillingError`` subclasses, which
``billing_backoffice.api_errors`` turns into ``{"code", "rule", "detail"}`` with their status.
"""

from __future__ import annotations

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from billing_backoffice.api_schema import error_responses
from billing_backoffice.api_views import ConsoleAPIView, ConsoleListAPIView
from payments import services
from payments.api import serializers as s
from payments.api.filters import PaymentMethodFilter
from payments.errors import AccountNotFound, PaymentMethodNotFound
from payments.models import Account, PaymentMethod
from payments.selectors import account_payment_methods

# The answers every operation can give (400, 401, 404, 413, 415) are added to the schema by
# billing_backoffice.api_schema; these are the texts of the ones particular to an operation.
ERROR_TEXT = {
    400: "Malformed input; `fields` names the fields at fault.",
    404: "Unknown object.",
    409: "Already linked to another account (LINK-1), or the verification is already finished.",
    422: "A rule refused it; `rule` names the rule.",
    503: "The payment gateway did not answer; nothing was linked.",
}


def method_response(method: PaymentMethod, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(s.PaymentMethodSerializer(method).data, status=status_code)


# --- accounts -------------------------------------------------------------------------------------


class AccountCreateView(ConsoleAPIView):
    @extend_schema(
        summary="Create an account (ELIG-1: region from the country)",
        request=s.AccountCreateSerializer,
        responses={201: s.AccountSerializer, **error_responses(ERROR_TEXT, 400)},
    )
    def post(self, request):
        form = s.AccountCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        account = services.account_create(**form.validated_data)
        return Response(s.AccountSerializer(account).data, status=status.HTTP_201_CREATED)


class AccountDetailView(ConsoleAPIView):
    @extend_schema(
        summary="An account with its region, KYC status, credit status and balance",
        responses={200: s.AccountSerializer, **error_responses(ERROR_TEXT, 404)},
    )
    def get(self, request, account_id: int):
        try:
            account = Account.objects.get(pk=account_id)
        except Account.DoesNotExist:
            raise AccountNotFound() from None
        return Response(s.AccountSerializer(account).data)


# --- linking --------------------------------------------------------------------------------------


class CardLinkView(ConsoleAPIView):
    @extend_schema(
        summary="Link a card (LINK-3, ELIG-2..5, LINK-1, LINK-4, LINK-5, HOLD-1)",
        description=(
            "201 with the method: `active`, or `pending` with `three_ds` {id, required: true} when "
            "a 3-D Secure challenge must be completed. Refusals answer 422 (409 for LINK-1) and "
            "are recorded as link attempts. The number and CVV are never echoed."
        ),
        request=s.CardLinkSerializer,
        responses={201: s.CardLinkResultSerializer, **error_responses(ERROR_TEXT, 400, 404, 409, 422, 503)},
    )
    @sensitive_variables("form", "card")  # SEC-1: keep them out of error reports
    def post(self, request, account_id: int):
        form = s.CardLinkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        card = form.to_card_input()
        result = services.card_link(account_id=account_id, card=card, now=timezone.now())
        data = s.CardLinkResultSerializer(
            result.method, context={"three_ds_challenge": result.challenge}
        ).data
        return Response(data, status=status.HTTP_201_CREATED)


class PayPalLinkView(ConsoleAPIView):
    @extend_schema(
        summary="Start linking PayPal (ELIG-2, ELIG-5, LINK-1, LINK-6)",
        description="201 with a `pending` method and the `approval_url` of the billing agreement.",
        request=s.PayPalLinkSerializer,
        responses={201: s.PayPalLinkResultSerializer, **error_responses(ERROR_TEXT, 400, 404, 409, 422, 503)},
    )
    def post(self, request, account_id: int):
        form = s.PayPalLinkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = services.paypal_link(account_id=account_id, now=timezone.now(), **form.validated_data)
        data = s.PayPalLinkResultSerializer(result.method, context={"approval_url": result.approval_url}).data
        return Response(data, status=status.HTTP_201_CREATED)


class PayPalAgreementView(ConsoleAPIView):
    @extend_schema(
        summary="Report the PayPal billing agreement outcome (LINK-6)",
        description=(
            "200 with the method once the agreement is approved with a funding source and the "
            "hold succeeded; a cancelled agreement or no funding source answers 422 LINK-6 and "
            "the method is `failed`."
        ),
        request=s.AgreementOutcomeSerializer,
        responses={200: s.PaymentMethodSerializer, **error_responses(ERROR_TEXT, 400, 404, 409, 422, 503)},
    )
    def post(self, request, method_id: int):
        form = s.AgreementOutcomeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        method = services.paypal_agreement_complete(
            method_id=method_id,
            approved=form.validated_data["outcome"] == s.AgreementOutcome.APPROVED,
            has_funding_source=form.validated_data.get("has_funding_source", False),
            now=timezone.now(),
        )
        return method_response(method)


class WalletLinkView(ConsoleAPIView):
    @extend_schema(
        summary="Third-party wallets are refused (ELIG-6)",
        description="Always 422 with rule ELIG-6 (Alipay, WeChat Pay...); the attempt is recorded.",
        request=s.WalletLinkSerializer,
        responses=error_responses(ERROR_TEXT, 400, 404, 422),
    )
    def post(self, request, account_id: int):
        form = s.WalletLinkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.wallet_link(account_id=account_id, wallet=form.validated_data["wallet"].lower(), now=timezone.now())
        raise AssertionError("wallet_link refuses every wallet (ELIG-6)")  # pragma: no cover


# --- methods --------------------------------------------------------------------------------------


@extend_schema(
    summary="An account's payment methods, masked (removed ones only with ?status=removed)",
    responses={200: s.PaymentMethodSerializer(many=True), **error_responses(ERROR_TEXT, 400, 404)},
)
class PaymentMethodListView(ConsoleListAPIView):
    serializer_class = s.PaymentMethodSerializer
    filterset_class = PaymentMethodFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no account in the URL
            return PaymentMethod.objects.none()
        account_id = self.kwargs["account_id"]
        if not Account.objects.filter(pk=account_id).exists():
            raise AccountNotFound()
        return account_payment_methods(account_id=account_id)


class PaymentMethodDetailView(ConsoleAPIView):
    @extend_schema(summary="One payment method, masked", responses={200: s.PaymentMethodSerializer, **error_responses(ERROR_TEXT, 404)})
    def get(self, request, method_id: int):
        try:
            method = PaymentMethod.objects.get(pk=method_id)
        except PaymentMethod.DoesNotExist:
            raise PaymentMethodNotFound() from None
        return method_response(method)

    @extend_schema(
        summary="Unlink a payment method (DEL-1..4)",
        description="204, or 422 naming the DEL rule that keeps the method (DEL-2, DEL-3).",
        responses={204: None, **error_responses(ERROR_TEXT, 404, 422)},
    )
    def delete(self, request, method_id: int):
        services.payment_method_remove(method_id=method_id, now=timezone.now())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PaymentMethodDefaultView(ConsoleAPIView):
    @extend_schema(
        summary="Make a method the account's default (DEF-2)",
        request=None,
        responses={200: s.PaymentMethodSerializer, **error_responses(ERROR_TEXT, 404, 422)},
    )
    def post(self, request, method_id: int):
        method = services.payment_method_make_default(method_id=method_id)
        return method_response(method)
