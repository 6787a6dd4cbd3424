"""Console API: a customer's claim for a transfer to the shared account (CLM-1).

``POST /api/v1/accounts/{id}/claims/`` as JSON, or as multipart when a proof file (PDF, PNG,
JPEG, at most 10 MB) comes with it. The serializer checks the shape (400 with the fields at
fault); ``claim_submit`` owns the rules (422/409 naming the rule). Token auth only, like the
payments console API: a staff session cookie never reaches this view.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from billing_backoffice.api_parsers import BoundedJSONParser
from billing_backoffice.api_schema import error_responses
from billing_backoffice.api_views import ConsoleAPIView

from remittances.models import RemittanceClaim
from remittances.services.claims import ProofRejected, claim_submit_once, validate_proof

_AMOUNT = re.compile(r"[0-9]{1,14}(\.[0-9]{1,2})?")


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^[0-9]{1,14}(\.[0-9]{1,2})?$"})
class DecimalStringField(serializers.Field):
    """An amount as a decimal string (``"120.50"``): never a JSON number, at most 2 places (I6)."""

    default_error_messages = {
        "invalid": "Send the amount as a decimal string with at most two decimal places, e.g. \"120.50\".",
        "not_positive": "The amount must be greater than zero.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str) or not _AMOUNT.fullmatch(data.strip()):
            self.fail("invalid")
        try:
            value = Decimal(data.strip())
        except InvalidOperation:  # pragma: no cover - the pattern already ruled it out
            self.fail("invalid")
        if value <= 0:
            self.fail("not_positive")
        return value

    def to_representation(self, value):
        return f"{value:.2f}"


class ProofField(serializers.FileField):
    """The optional proof: PDF, PNG or JPEG, size and first bytes checked before it is kept."""

    def to_internal_value(self, data):
        upload = super().to_internal_value(data)
        try:
            validate_proof(upload)
        except ProofRejected as error:
            raise serializers.ValidationError(error.detail, code="invalid_proof") from None
        return upload


class ClaimCreateSerializer(serializers.Serializer):
    amount = DecimalStringField(help_text='Decimal string, e.g. "1200.00".')
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", help_text="ISO 4217, e.g. USD.")
    value_date = serializers.DateField(required=False, allow_null=True)
    payer_name = serializers.CharField(max_length=140, required=False, allow_blank=True, default="")
    bank_reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="",
        help_text="The transfer's reference (end-to-end id) as sent; matched exactly.",
    )
    proof = ProofField(required=False, allow_null=True, help_text="Multipart only: PDF, PNG or JPEG, at most 10 MB.")

    def validate_currency(self, value: str) -> str:
        return value.upper()


class ClaimCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text="submitted (then reviewed, approved or rejected).")
    matched = serializers.SerializerMethodField(
        help_text="True when the transfer was found on the shared account; otherwise the claim waits for it."
    )

    def get_matched(self, claim: RemittanceClaim) -> bool:
        return claim.bank_transaction_id is not None


class ClaimCreateView(ConsoleAPIView):
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]

    @extend_schema(
        summary="Claim a transfer to the shared account (CLM-1)",
        description=(
            "201 with `matched: true` when the transfer was found (same reference, amount and "
            "currency), else the claim waits for the transfer to arrive. The account manager "
            "reviews the claim and finance approves it; only then is the balance credited. "
            "Idempotent: the same claim sent again (same amount, currency, value date, bank "
            "reference and payer) answers 200 with the claim filed first, whatever its status."
        ),
        request={"application/json": ClaimCreateSerializer, "multipart/form-data": ClaimCreateSerializer},
        responses={
            201: ClaimCreatedSerializer,
            200: ClaimCreatedSerializer,
            **error_responses({
                400: "Malformed input or proof file; `fields` names the fields at fault.",
                404: "Unknown account.",
                409: "The claim conflicts with the state of the account or of a transfer.",
                422: "A rule refused the claim; `rule` names the rule.",
            }),
        },
    )
    def post(self, request, account_id: int):
        form = ClaimCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        claim, created = claim_submit_once(
            account_id=account_id,
            amount=data["amount"],
            currency=data["currency"],
            value_date=data.get("value_date"),
            payer_name=data.get("payer_name", ""),
            bank_reference=data.get("bank_reference", ""),
            proof=data.get("proof"),
            source=RemittanceClaim.Source.CONSOLE,
            initiated_by=None,
            now=timezone.now(),
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(ClaimCreatedSerializer(claim).data, status=code)
