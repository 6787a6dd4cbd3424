"""Card and PayPal gateways behind small protocols; the implementation is chosen by a setting."""

from django.conf import settings
from django.utils.module_loading import import_string

from .base import (
    Agreement,
    Authorization,
    CardDetails,
    CardGateway,
    GatewayError,
    IdempotencyKeyReused,
    PayPalGateway,
    VoidResult,
)


def card_gateway() -> CardGateway:
    return import_string(settings.CARD_GATEWAY)()


def paypal_gateway() -> PayPalGateway:
    return import_string(settings.PAYPAL_GATEWAY)()


__all__ = [
    "Agreement",
    "Authorization",
    "CardDetails",
    "CardGateway",
    "GatewayError",
    "IdempotencyKeyReused",
    "PayPalGateway",
    "VoidResult",
    "card_gateway",
    "paypal_gateway",
]
