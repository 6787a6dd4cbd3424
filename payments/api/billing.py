"""Console API: pay-as-you-go usage (PAY-2) and subscription orders (PAY-1, CRED-3).

Parse the shape, call one service, render. I6 at the edge: ``amount`` must be a JSON *string*
holding a decimal with at most 2 places; a JSON number (a float once parsed) is refused with 400
rather than rounded. A reference reused with other figures answers 409; a rule that refuses the
order itself (KYC PAY-5, no usable method HOLD-3, credit limit CRED-3) answers 422 and creates
nothing. A declined or 3DS-blocked charge does not refuse the order: the answer is 201 with the
open bill and the failed charge, its reason and rule (and, for 3DS, the challenge to complete).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from billing_backoffice.api_fields import AmountField, CurrencyField, FreeTextField, pattern_validator
from billing_backoffice.api_schema import error_responses
from billing_backoffice.api_views import ConsoleAPIView
from payments.api.schema import EnumField
from payments.models import Bill, Charge, ThreeDSChallenge, UsageRecord
from payments.services import billing as billing_services
from payments.services import charge_execution, orders, usage

PERIOD_PATTERN = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$"

ERROR_TEXT = {
    400: "Malformed input (an amount that is not a decimal string with at most 2 places, an unknown "
    "currency, a period that is not YYYY-MM...); `fields` names the fields at fault.",
    404: "Unknown account.",
    409: "The reference was already used with other figures (I2).",
    422: "A rule refused the order (PAY-5 KYC, HOLD-3 no usable method, CRED-3 credit limit), or the figures "
    "(I6: more decimals than the currency has, e.g. JPY 0.01, or unbilled usage past what one bill holds; "
    "PAY-2: a usage period outside its window); nothing was created.",
}


class MoneyInputSerializer(serializers.Serializer):
    """I6 shape at the edge (400): the amount a decimal string within ``money.MAX_AMOUNT``, the
    currency one of ``money.CURRENCIES``. The pair's rule (JPY has no cents) and the account's
    unbilled-usage bound are the service's (422 naming I6)."""

    amount = AmountField(help_text='Decimal as a string, more than zero, at most 2 decimal places, e.g. "12.50".')
    currency = CurrencyField()
    reference = FreeTextField(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9:._/-]*$", max_length=100,
        pattern_message="A letter or digit, then letters, digits and : . _ / - only.",
        help_text="The console's unique reference for this event; sending it again is idempotent.",
    )


class UsageCreateSerializer(MoneyInputSerializer):
    period = serializers.CharField(
        max_length=7, trim_whitespace=False,
        validators=[pattern_validator(PERIOD_PATTERN, "A billing month, YYYY-MM.")],
        help_text=(
            f"Billing month, YYYY-MM: from {billing_services.USAGE_PERIOD_MONTHS_BACK} months back to next "
            "month (another month answers 422 PAY-2)."
        ),
    )


class OrderCreateSerializer(MoneyInputSerializer):
    kind = EnumField(Bill.OrderKind, enum_name="OrderKindEnum")


class UsageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    period = serializers.CharField()
    reference = serializers.CharField()
    status = EnumField(UsageRecord.Status, enum_name="UsageStatusEnum")
    reported_at = serializers.DateTimeField()


class BillSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    kind = EnumField(Bill.Kind, enum_name="BillKindEnum")
    order_kind = serializers.CharField(help_text="purchase, upgrade or renewal for an order; blank otherwise.")
    reference = serializers.CharField()
    issued_at = serializers.DateTimeField()
    due_date = serializers.DateField()
    amount_before_tax = serializers.DecimalField(max_digits=14, decimal_places=2)
    tax = serializers.DecimalField(max_digits=14, decimal_places=2)
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    amount_paid = serializers.DecimalField(max_digits=14, decimal_places=2)
    status = EnumField(Bill.Status, enum_name="BillStatusEnum")


class ChargeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = EnumField(Charge.Kind, enum_name="ChargeKindEnum")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    status = EnumField(Charge.Status, enum_name="ChargeStatusEnum")
    failure_reason = serializers.CharField(help_text="Why it failed (kyc_required, issuer_declined...), else blank.")
    failure_rule = serializers.CharField(help_text="The rule behind the failure (PAY-5, HOLD-3...), else blank.")
    failure_detail = serializers.CharField()
    payment_method = serializers.IntegerField(source="payment_method_id", allow_null=True)


class OrderThreeDSSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Complete it with POST /api/v1/three-ds/{id}/complete/.")
    required = serializers.BooleanField(help_text="True while the challenge waits for the cardholder.")
    status = EnumField(ThreeDSChallenge.Status, enum_name="ThreeDSStatusEnum")
    expires_at = serializers.DateTimeField()


class OrderSerializer(serializers.Serializer):
    bill = BillSerializer()
    charge = ChargeSerializer(
        allow_null=True,
        help_text="The latest charge of the order's bill; null for a credit-approved account (PAY-6).",
    )
    three_ds = serializers.SerializerMethodField(
        help_text="The 3-D Secure challenge the risk check asked for on this charge (PAY-1), else null."
    )

    @extend_schema_field(OrderThreeDSSerializer(allow_null=True))
    def get_three_ds(self, order: dict) -> dict | None:
        charge = order["charge"]
        if charge is None or charge.failure_reason != charge_execution.Reason.THREE_DS_NOT_COMPLETED:
            return None  # only a charge that asked for 3DS has a challenge: no query otherwise
        challenge = ThreeDSChallenge.objects.filter(charge=charge).first()
        if challenge is None:
            return None
        data = {"id": challenge.pk, "required": challenge.status == ThreeDSChallenge.Status.PENDING,
                "status": challenge.status, "expires_at": challenge.expires_at}
        return OrderThreeDSSerializer(data).data


def order_response(result: orders.OrderResult, *, status_code: int) -> Response:
    return Response(OrderSerializer({"bill": result.bill, "charge": result.charge}).data, status=status_code)


class UsageCreateView(ConsoleAPIView):
    @extend_schema(
        summary="Report pay-as-you-go usage (PAY-2, HOLD-4)",
        description=(
            "201 with the usage record; 200 with the first record when the same reference is sent "
            "again with the same figures. Usage accumulates until the account's threshold is "
            "charged (PAY-2) or the monthly bill is generated (PAY-3)."
        ),
        request=UsageCreateSerializer,
        responses={201: UsageSerializer, 200: UsageSerializer, **error_responses(ERROR_TEXT, 400, 404, 409, 422)},
    )
    def post(self, request, account_id: int):
        form = UsageCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = usage.usage_record(account_id=account_id, now=timezone.now(), **form.validated_data)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(UsageSerializer(result.record).data, status=code)


class OrderCreateView(ConsoleAPIView):
    @extend_schema(
        summary="Place a subscription order (PAY-1, PAY-5, PAY-6, CRED-3)",
        description=(
            "201 with the bill and the outcome of its charge to the default method (`succeeded`, "
            "or `failed` with `failure_reason` and `failure_rule`, or `pending` while the gateway "
            "is retried). When the risk check asks for 3-D Secure (PAY-1) the charge fails with "
            "`three_ds_not_completed` and `three_ds` {id, required: true, expires_at} names the "
            "challenge to show the cardholder; completing it charges the bill. Credit-approved accounts are not charged: `charge` is null and the bill "
            "waits for a bank transfer. 200 when the same reference is sent again with the same figures."
        ),
        request=OrderCreateSerializer,
        responses={201: OrderSerializer, 200: OrderSerializer, **error_responses(ERROR_TEXT, 400, 404, 409, 422)},
    )
    def post(self, request, account_id: int):
        form = OrderCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = orders.order_place(account_id=account_id, now=timezone.now(), **form.validated_data)
        return order_response(result, status_code=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)
