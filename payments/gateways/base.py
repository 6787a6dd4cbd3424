"""The protocols a card processor and PayPal adapter implement.

Every call carries an ``idempotency_key``: the processor keeps the first result for a key and
answers a replay with it, so a retried call (after a timeout or a crash) never places or voids
twice. The back office derives keys from its own row ids, so a retry reuses the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


class GatewayError(Exception):
    """Transient failure (timeout, 5xx): the call may be retried with the same key."""


class IdempotencyKeyReused(Exception):
    """The same idempotency key was sent with other parameters: a programming error."""


@dataclass(frozen=True)
class CardDetails:
    token: str
    network: str
    funding: str  # credit, debit, prepaid, virtual, gift
    issuing_country: str
    last4: str


@dataclass(frozen=True)
class Authorization:
    approved: bool
    authorization_id: str = ""
    decline_code: str = ""  # issuer_declined, insufficient_funds, not_enabled_online


@dataclass(frozen=True)
class VoidResult:
    voided: bool  # True also when the authorization was already voided or had expired (I4)
    error: str = ""


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of one charge (PAY-1..5). Exactly the amount asked is charged (PAY-4: no fee).

    ``requires_3ds``: the processor's risk check wants the cardholder to pass 3-D Secure before it
    charges (only ever for a customer-initiated charge, PAY-1); nothing was charged.
    ``authentication_id`` then names the processor's 3DS session: once the cardholder passed it,
    the charge is sent again (new key) with ``three_ds_authentication`` set to it.
    """

    succeeded: bool
    gateway_reference: str = ""
    decline_code: str = ""  # issuer_declined, insufficient_funds, not_enabled_online
    requires_3ds: bool = False
    authentication_id: str = ""


@dataclass(frozen=True)
class Agreement:
    agreement_id: str
    approval_url: str


class CardGateway(Protocol):
    def tokenize(
        self, *, number: str, exp_month: int, exp_year: int, cvv: str, idempotency_key: str
    ) -> CardDetails: ...

    def risk_requires_3ds(self, *, token: str, idempotency_key: str) -> bool: ...

    def authorize_hold(
        self, *, token: str, amount: Decimal, currency: str, descriptor: str, idempotency_key: str
    ) -> Authorization: ...

    def void(self, *, authorization_id: str, idempotency_key: str) -> VoidResult: ...

    def charge(
        self,
        *,
        token: str,
        amount: Decimal,
        currency: str,
        description: str,
        idempotency_key: str,
        customer_initiated: bool = False,
        three_ds_authentication: str = "",
    ) -> ChargeResult:
        """Charge ``amount`` to the card. ``customer_initiated`` is True for an order the customer
        places (PAY-1): only then may the risk check ask for 3-D Secure; merchant-initiated charges
        (usage thresholds, month-end deductions) are exempt, as with real processors.
        ``three_ds_authentication``: the ``authentication_id`` of a 3DS session the cardholder
        completed for this order; the risk check then does not ask again."""
        ...


class PayPalGateway(Protocol):
    def create_agreement(
        self, *, payer_id: str, email: str, idempotency_key: str
    ) -> Agreement: ...

    def authorize_hold(
        self, *, agreement_id: str, amount: Decimal, currency: str, descriptor: str, idempotency_key: str
    ) -> Authorization: ...

    def void(self, *, authorization_id: str, idempotency_key: str) -> VoidResult: ...

    def charge(
        self,
        *,
        agreement_id: str,
        amount: Decimal,
        currency: str,
        description: str,
        idempotency_key: str,
        customer_initiated: bool = False,
    ) -> ChargeResult: ...
