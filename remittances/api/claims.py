"""Console API: a customer's claim for a transfer to the shared account (CLM-1).

``POST /api/v1/accounts/{id}/claims/`` as JSON, or as multipart when a proof file (PDF, PNG,
JPEG, at most 10 MB) comes with it. The serializer checks the shape (400 with the fields at
fault); ``claim_submit`` owns the rules (422/409 naming the rule). Token auth only, like the
payments console API: a staff session cookie never reaches this view.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from billing_backoffice.api_fields import AmountField, CurrencyField, FreeTextField
from billing_backoffice.api_parsers import BoundedJSONParser
from billing_backoffice.api_schema import error_responses
from billing_backoffice.api_views import ConsoleAPIView

from remittances.models import RemittanceClaim
from remittances.services.claims import ProofRejected, claim_submit_once, validate_proof

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
    """The multipart claim (with an optional proof file). Shape only (400): amount and currency
    (I6), free text without card numbers (SEC-1). The service answers 422 for a value date outside
    its window (CLM-1: from 2000 to a few days ahead) and for cents in a currency without them."""

    amount = AmountField(help_text='Decimal string, e.g. "1200.00".')
    currency = CurrencyField()
    value_date = serializers.DateField(
        required=False, allow_null=True,
        help_text="YYYY-MM-DD; from 2000-01-01 to 5 days after today (another date answers 422 CLM-1).",
    )
    payer_name = FreeTextField(max_length=140, required=False, allow_blank=True, default="")
    bank_reference = FreeTextField(
        max_length=200, required=False, allow_blank=True, default="",
        help_text="The transfer's reference (end-to-end id) as sent; matched exactly.",
    )
    proof = ProofField(required=False, allow_null=True, help_text="Multipart only: PDF, PNG or JPEG, at most 10 MB.")


class ClaimCreateJSONSerializer(ClaimCreateSerializer):
    """The JSON claim: no proof (a file only comes in multipart), so the schema offers none."""

    proof = None


def claim_form(request) -> ClaimCreateSerializer:
    """The serializer for the request's media type (a ``proof`` in JSON is no file: ignored)."""
    multipart = (request.content_type or "").startswith("multipart/")
    return (ClaimCreateSerializer if multipart else ClaimCreateJSONSerializer)(data=request.data)


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
        request={"application/json": ClaimCreateJSONSerializer, "multipart/form-data": ClaimCreateSerializer},
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
        form = claim_form(request)
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
