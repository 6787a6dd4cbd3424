"""Console API: ``POST /three-ds/{id}/complete/``, the outcome of any 3-D Secure challenge.

One endpoint for both kinds of challenge, so the console handles 3DS one way: a card link's
challenge (LINK-5) answers with the method, an order's challenge (PAY-1) with the order.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import status

from billing_backoffice.api_schema import error_responses
from billing_backoffice.api_views import ConsoleAPIView
from payments import services
from payments.api import serializers as s
from payments.api.billing import OrderSerializer, order_response
from payments.api.views import ERROR_TEXT, method_response
from payments.models import ThreeDSChallenge

COMPLETION = PolymorphicProxySerializer(
    component_name="ThreeDSCompletion",
    serializers=[s.PaymentMethodSerializer, OrderSerializer],
    resource_type_field_name=None,
)


class ThreeDSCompleteView(ConsoleAPIView):
    @extend_schema(
        summary="Report the 3-D Secure challenge outcome (LINK-5, PAY-1)",
        description=(
            "A card link's challenge: 200 with the method (active once the hold succeeded); a "
            "failed challenge answers 422 LINK-5 and the method is `failed`.\n\n"
            "An order's challenge: 200 with the order. On success its bill is charged again with "
            "the processor's authentication (the latest `charge`); on failure nothing is charged "
            "and the bill stays open (PAY-5). A challenge already finished or timed out answers 409 "
            "and charges nothing."
        ),
        request=s.ThreeDSOutcomeSerializer,
        responses={200: COMPLETION, **error_responses(ERROR_TEXT, 400, 404, 409, 422, 503)},
    )
    def post(self, request, challenge_id: int):
        form = s.ThreeDSOutcomeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        outcome, now = form.validated_data["outcome"], timezone.now()
        if ThreeDSChallenge.objects.for_orders().filter(pk=challenge_id).exists():
            result = services.order_three_ds_complete(challenge_id=challenge_id, outcome=outcome, now=now)
            return order_response(result, status_code=status.HTTP_200_OK)
        method = services.three_ds_complete(challenge_id=challenge_id, outcome=outcome, now=now)
        return method_response(method)
