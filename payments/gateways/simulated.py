"""A simulated processor, driven by test card numbers like a processor's sandbox.

Outcomes are decided by the card number at tokenization and carried in the opaque token and
authorization ids, so a worker process can void a hold placed by the web process. Idempotency
keys are honoured per process: a replay returns the first result, a replay with other
parameters raises ``IdempotencyKeyReused``. ``void_calls`` counts the voids that really
happened at this "processor" and ``charges`` lists the charges it really made (one per key,
replays excluded), which the exactly-once tests read.

Test numbers (any future expiry, any CVV of the right length) are listed in ``TEST_CARDS`` and
in the README. Any other Luhn-valid number is approved as a credit card issued in the US.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from payments.eligibility import network_from_number

from .base import (
    Agreement,
    Authorization,
    CardDetails,
    ChargeResult,
    GatewayError,
    IdempotencyKeyReused,
    VoidResult,
)

# number -> (scenario, funding, issuing country). Scenario names have no "_": they are read back
# out of the token and authorization ids ("tok_<scenario>_<random>").
TEST_CARDS: dict[str, tuple[str, str, str]] = {
    "4242424242424242": ("approve", "credit", "US"),
    "5555555555554444": ("approve", "credit", "GB"),
    "2223003122003222": ("approve", "debit", "DE"),
    "378282246310005": ("approve", "credit", "US"),
    "3530111333300000": ("approve", "credit", "JP"),
    "4000000000000002": ("decline", "credit", "US"),
    "4000000000000127": ("notonline", "credit", "US"),
    "4000000000009953": ("insufficient", "debit", "US"),
    "4000000000002206": ("approve", "prepaid", "US"),
    "4000000000003303": ("approve", "virtual", "US"),
    "4000000000004400": ("approve", "gift", "US"),
    "4000000000005506": ("approve", "credit", "CN"),
    "4000000000003204": ("risk3ds", "credit", "US"),
    "4000000000007700": ("voidfailsonce", "credit", "US"),
    "4000000000001190": ("unavailable", "credit", "US"),
    # Charging (PAY-1..5): these link normally (the hold is approved); their charges do not.
    "4000000000000341": ("chargedecline", "credit", "US"),
    "4000000000000358": ("chargenofunds", "debit", "US"),
    "4000000000000366": ("timeoutonce", "credit", "US"),
}
SCENARIO_DESCRIPTIONS = {
    "approve": "approved",
    "decline": "issuer declines the hold (LINK-4)",
    "notonline": "card not enabled for online/international use (LINK-4)",
    "insufficient": "insufficient funds for the USD 1.00 hold",
    "risk3ds": "risk check requires 3-D Secure (LINK-5)",
    "voidfailsonce": "the first void of its hold fails, the retry succeeds (HOLD-2)",
    "unavailable": "gateway unavailable on authorization and on charges (transient error)",
    "chargedecline": "links; every charge is declined by the issuer (PAY-5)",
    "chargenofunds": "links; every charge fails for insufficient funds (PAY-5)",
    "timeoutonce": "links; the first charge of each key is made but its answer is lost (timeout)",
}
# risk3ds cards also ask for 3-D Secure on every customer-initiated charge (orders, PAY-1) sent
# without the authentication id of a completed 3DS session.
# PayPal payer ids that drive the PayPal sandbox.
PAYPAL_DECLINE_PAYER = "DECLINEPAYER"
PAYPAL_INSUFFICIENT_PAYER = "NOFUNDSPAYER"
PAYPAL_CHARGE_DECLINE_PAYER = "CHARGEDECLINEPAYER"  # links; its charges are declined
PAYPAL_CHARGE_NOFUNDS_PAYER = "CHARGENOFUNDSPAYER"  # links; its charges lack funds
PAYPAL_PAYER_SCENARIOS = {
    PAYPAL_DECLINE_PAYER: "decline",
    PAYPAL_INSUFFICIENT_PAYER: "insufficient",
    PAYPAL_CHARGE_DECLINE_PAYER: "chargedecline",
    PAYPAL_CHARGE_NOFUNDS_PAYER: "chargenofunds",
}
CHARGE_DECLINES = {
    "decline": "issuer_declined",
    "chargedecline": "issuer_declined",
    "notonline": "not_enabled_online",
    "insufficient": "insufficient_funds",
    "chargenofunds": "insufficient_funds",
}


@dataclass(frozen=True)
class ProcessedCharge:
    """A charge the processor really made (not a replay): what the customer's statement shows."""

    idempotency_key: str
    payer: str  # card token or billing agreement id
    amount: Decimal
    currency: str
    gateway_reference: str


class _Processor:
    """State shared by every gateway instance in this process, as a processor would keep it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: dict[str, tuple[tuple, object]] = {}
        self.voided: set[str] = set()
        self.failed_void_once: set[str] = set()
        self.void_calls: Counter[str] = Counter()
        self.charges: list[ProcessedCharge] = []
        self.lost_answers: set[str] = set()

    def once(self, key: str, params: tuple, compute):
        with self.lock:
            if key in self.results:
                seen_params, result = self.results[key]
                if seen_params != params:
                    raise IdempotencyKeyReused(f"idempotency key {key} reused with other parameters")
                return result
            result = compute()
            self.results[key] = (params, result)
            return result

    def void(self, authorization_id: str, key: str) -> VoidResult:
        with self.lock:
            if key in self.results:
                params, result = self.results[key]
                if params != (authorization_id,):
                    raise IdempotencyKeyReused(f"idempotency key {key} reused with other parameters")
                return result
            if "_voidfailsonce_" in authorization_id and authorization_id not in self.failed_void_once:
                self.failed_void_once.add(authorization_id)
                raise GatewayError("simulated processor timeout while voiding")
            if authorization_id in self.voided:
                result = VoidResult(voided=True, error="already_voided")
            else:
                self.voided.add(authorization_id)
                self.void_calls[authorization_id] += 1
                result = VoidResult(voided=True)
            self.results[key] = ((authorization_id,), result)
            return result


    def charge(
        self, *, key: str, payer: str, amount: Decimal, currency: str, customer_initiated: bool,
        three_ds_authentication: str = "",
    ) -> ChargeResult:
        """One charge per key: a replay returns the first result; nothing is ever added (PAY-4)."""
        scenario = _scenario(payer)
        if scenario == "unavailable":
            raise GatewayError("simulated processor unavailable")
        params = (payer, str(amount), currency, three_ds_authentication)
        with self.lock:
            if key in self.results:
                seen_params, result = self.results[key]
                if seen_params != params:
                    raise IdempotencyKeyReused(f"idempotency key {key} reused with other parameters")
                return result
            if scenario in CHARGE_DECLINES:
                result = ChargeResult(succeeded=False, decline_code=CHARGE_DECLINES[scenario])
            elif scenario == "risk3ds" and customer_initiated and not three_ds_authentication:
                result = ChargeResult(
                    succeeded=False, requires_3ds=True, authentication_id=f"3ds_{secrets.token_hex(12)}"
                )
            else:
                reference = f"ch_{scenario}_{secrets.token_hex(12)}"
                self.charges.append(ProcessedCharge(key, payer, amount, currency, reference))
                result = ChargeResult(succeeded=True, gateway_reference=reference)
            self.results[key] = (params, result)
            if scenario == "timeoutonce" and key not in self.lost_answers:
                # The charge is made, then the answer is lost: only the same key finds it again.
                self.lost_answers.add(key)
                raise GatewayError("simulated processor timeout after charging")
            return result

    def charge_count(self, payer: str | None = None) -> int:
        """Real charges made (replays excluded), optionally for one card token or agreement."""
        with self.lock:
            return sum(1 for c in self.charges if payer is None or c.payer == payer)


PROCESSOR = _Processor()


def reset() -> None:
    """Forget every key and void (tests only)."""
    PROCESSOR.__init__()


def _scenario(token_or_auth: str) -> str:
    parts = token_or_auth.split("_")
    return parts[1] if len(parts) > 2 else "approve"


class SimulatedCardGateway:
    def tokenize(self, *, number: str, exp_month: int, exp_year: int, cvv: str, idempotency_key: str) -> CardDetails:
        scenario, funding, country = TEST_CARDS.get(number, ("approve", "credit", "US"))
        network = network_from_number(number)
        return PROCESSOR.once(
            idempotency_key,
            # The processor sees the number; the key maps to a hash so nothing here keeps the PAN.
            (hash(number), exp_month, exp_year),
            lambda: CardDetails(
                token=f"tok_{scenario}_{secrets.token_hex(12)}",
                network=network,
                funding=funding,
                issuing_country=country,
                last4=number[-4:],
            ),
        )

    def risk_requires_3ds(self, *, token: str, idempotency_key: str) -> bool:
        return PROCESSOR.once(idempotency_key, (token,), lambda: _scenario(token) == "risk3ds")

    def authorize_hold(
        self, *, token: str, amount: Decimal, currency: str, descriptor: str, idempotency_key: str
    ) -> Authorization:
        scenario = _scenario(token)
        if scenario == "unavailable":
            raise GatewayError("simulated processor unavailable")

        def compute() -> Authorization:
            if scenario == "decline":
                return Authorization(approved=False, decline_code="issuer_declined")
            if scenario == "notonline":
                return Authorization(approved=False, decline_code="not_enabled_online")
            if scenario == "insufficient":
                return Authorization(approved=False, decline_code="insufficient_funds")
            return Authorization(approved=True, authorization_id=f"auth_{scenario}_{secrets.token_hex(12)}")

        return PROCESSOR.once(idempotency_key, (token, str(amount), currency, descriptor), compute)

    def void(self, *, authorization_id: str, idempotency_key: str) -> VoidResult:
        return PROCESSOR.void(authorization_id, idempotency_key)

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
        return PROCESSOR.charge(
            key=idempotency_key, payer=token, amount=amount, currency=currency,
            customer_initiated=customer_initiated, three_ds_authentication=three_ds_authentication,
        )


class SimulatedPayPalGateway:
    def create_agreement(self, *, payer_id: str, email: str, idempotency_key: str) -> Agreement:
        from django.conf import settings

        def compute() -> Agreement:
            scenario = PAYPAL_PAYER_SCENARIOS.get(payer_id.upper(), "approve")
            agreement_id = f"ba_{scenario}_{secrets.token_hex(12)}"
            return Agreement(
                agreement_id=agreement_id,
                approval_url=f"{settings.PAYPAL_APPROVAL_BASE_URL}?token={agreement_id}",
            )

        return PROCESSOR.once(idempotency_key, (payer_id, email), compute)

    def authorize_hold(
        self, *, agreement_id: str, amount: Decimal, currency: str, descriptor: str, idempotency_key: str
    ) -> Authorization:
        scenario = _scenario(agreement_id)

        def compute() -> Authorization:
            if scenario == "decline":
                return Authorization(approved=False, decline_code="issuer_declined")
            if scenario == "insufficient":
                return Authorization(approved=False, decline_code="insufficient_funds")
            return Authorization(approved=True, authorization_id=f"ppauth_{scenario}_{secrets.token_hex(12)}")

        return PROCESSOR.once(idempotency_key, (agreement_id, str(amount), currency, descriptor), compute)

    def void(self, *, authorization_id: str, idempotency_key: str) -> VoidResult:
        return PROCESSOR.void(authorization_id, idempotency_key)

    def charge(
        self,
        *,
        agreement_id: str,
        amount: Decimal,
        currency: str,
        description: str,
        idempotency_key: str,
        customer_initiated: bool = False,
    ) -> ChargeResult:
        return PROCESSOR.charge(
            key=idempotency_key, payer=agreement_id, amount=amount, currency=currency,
            customer_initiated=customer_initiated,
        )
