"""Linking a card (LINK-1, LINK-3, ELIG-2..5, LINK-5 3-D Secure, then HOLD-1 in ``verification``).

SEC-1: the number and CVV live only in ``CardInput`` (never in its repr) and in the
``sensitive_variables`` frames that pass them to the gateway's tokenization; only the keyed
fingerprint and the last four digits are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables
from django_countries import countries
from stdnum import luhn

from billing_backoffice.free_text import free_text_check
from payments import eligibility
from payments.eligibility import Network
from payments.errors import AlreadyLinked, ChallengeNotFound, LinkRefused, VerificationNotPending
from payments.gateways import GatewayError, card_gateway
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge
from payments.services.attempts import link_attempt_record
from payments.services.customer_events import three_ds_waiting_notify
from payments.services.linking import (
    LinkResult,
    link_account_get,
    link_account_refusal,
    link_gateway_unavailable_record,
    linked_elsewhere_refusal,
)
from payments.services.verification import (
    GatewayUnavailable,
    link_refuse,
    payment_method_fail,
    payment_method_verify_with_hold,
)

Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome
Status = PaymentMethod.Status


@dataclass(frozen=True)
class CardInput:
    """The card form as the console sends it; number and CVV never appear in its repr (SEC-1)."""

    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvv: str = field(repr=False)
    cardholder_name: str
    billing_line1: str
    billing_city: str
    billing_postal_code: str
    billing_country: str
    company_name: str = ""


def card_fingerprint(number: str) -> str:
    """SEC-1 / LINK-1: keyed HMAC-SHA256 of the card number; the key comes from the environment."""
    return hmac.new(settings.CARD_FINGERPRINT_KEY.encode(), number.encode(), hashlib.sha256).hexdigest()


@sensitive_variables("card", "number")
def validate_card_fields(card: CardInput, *, now: datetime) -> tuple[str, Network]:
    """LINK-3 and ELIG-3: returns the digits-only number and its network, or raises LinkRefused."""
    number = "".join(ch for ch in card.number if ch not in " -")
    if not number.isdigit() or not 12 <= len(number) <= 19 or not luhn.is_valid(number):
        raise LinkRefused("The card number is not valid.", rule="LINK-3", reason=Reason.INVALID_CARD_DETAILS)
    network = eligibility.network_from_number(number)
    if network not in eligibility.SUPPORTED_NETWORKS:
        label = "UnionPay cards are" if network == Network.UNIONPAY else f"{network.label} cards are"
        raise LinkRefused(
            f"{label} not accepted; use Visa, Mastercard, American Express or JCB.",
            rule="ELIG-3",
            reason=Reason.UNSUPPORTED_NETWORK,
        )
    if not 1 <= card.exp_month <= 12:
        raise LinkRefused("The expiry month must be 01 to 12.", rule="LINK-3", reason=Reason.INVALID_CARD_DETAILS)
    exp_year = card.exp_year + 2000 if card.exp_year < 100 else card.exp_year
    if (exp_year, card.exp_month) <= (now.year, now.month):
        raise LinkRefused(
            "A card that expires this month or earlier cannot be added.",
            rule="LINK-3",
            reason=Reason.EXPIRES_TOO_SOON,
        )
    expected_cvv = eligibility.cvv_length(network)
    if not (card.cvv.isdigit() and len(card.cvv) == expected_cvv):
        raise LinkRefused(
            f"The security code must be {expected_cvv} digits for {network.label}.",
            rule="LINK-3",
            reason=Reason.INVALID_CARD_DETAILS,
        )
    missing = [
        label
        for label, value in (
            ("cardholder name", card.cardholder_name),
            ("billing street", card.billing_line1),
            ("billing city", card.billing_city),
            ("billing postal code", card.billing_postal_code),
        )
        if not value.strip()
    ]
    if missing:
        raise LinkRefused(
            "Missing " + ", ".join(missing) + ".", rule="LINK-3", reason=Reason.INVALID_CARD_DETAILS
        )
    if card.billing_country.upper() not in countries:
        raise LinkRefused(
            "The billing country is not a known ISO 3166 country code.",
            rule="LINK-3",
            reason=Reason.INVALID_CARD_DETAILS,
        )
    return number, network


@sensitive_variables("card", "number")
def card_link(*, account_id: int, card: CardInput, now: datetime) -> LinkResult:
    """Link a card: LINK-3 fields, ELIG-2..5 eligibility, LINK-1 uniqueness, LINK-5 3DS, HOLD-1.

    Returns the method (``active``, or ``pending`` with the 3DS challenge to complete). Raises a
    ``LinkRefused`` naming the rule for every refusal, after recording the attempt (LINK-7).
    SEC-1: a card number typed into a free-text field is refused first, before any attempt row.
    """
    free_text_check(
        cardholder_name=card.cardholder_name, company_name=card.company_name, billing_street=card.billing_line1,
        billing_city=card.billing_city, billing_postal_code=card.billing_postal_code,
    )
    account = link_account_get(account_id)
    kind = PaymentMethod.Kind.CARD
    number, network, attempt = _card_checks(account, card, now=now)
    fingerprint = card_fingerprint(number)
    conflict = linked_elsewhere_refusal(account, kind=kind, fingerprint=fingerprint)
    if conflict:
        raise link_refuse(account, kind, conflict, now, **attempt)
    gateway = card_gateway()
    details = _card_tokenize(gateway, account, card, number, now=now, attempt=attempt)
    exp_year = card.exp_year + 2000 if card.exp_year < 100 else card.exp_year
    try:
        method = _create_card_method(account, card, details, fingerprint, exp_year, now)
    except IntegrityError:
        # Another request linked the same card between our check and our insert (LINK-1).
        conflict = linked_elsewhere_refusal(account, kind=kind, fingerprint=fingerprint) or AlreadyLinked(
            "This card is linked to another cloud account; it must be unlinked there first."
        )
        raise link_refuse(account, kind, conflict, now, **attempt) from None
    trigger = _three_ds_trigger(gateway, account, details, method)
    if trigger:
        return LinkResult(method=method, challenge=_three_ds_open(account, method, trigger, now=now))
    method = payment_method_verify_with_hold(method_id=method.pk, now=now)
    return LinkResult(method=method)


@sensitive_variables("card", "number")
def _card_checks(account: Account, card: CardInput, *, now: datetime) -> tuple[str, Network, dict]:
    """The refusals before the gateway (LINK-2, LINK-7, LINK-3, ELIG-3, ELIG-2), each recorded:
    the digits-only number, its network and what the attempt rows record of the card."""
    kind = PaymentMethod.Kind.CARD
    last4 = "".join(ch for ch in card.number if ch.isdigit())[-4:]
    refusal = link_account_refusal(account)
    if refusal:
        raise link_refuse(account, kind, refusal, now, last4=last4)
    try:
        number, network = validate_card_fields(card, now=now)
    except LinkRefused as error:
        raise link_refuse(account, kind, error, now, last4=last4) from None
    attempt = {"network": network.value, "last4": last4}
    if not eligibility.card_network_allowed(account.region, network):
        error = LinkRefused(
            f"{network.label} cards are not available for accounts registered in "
            f"{account.get_region_display()}.",
            rule="ELIG-2",
            reason=Reason.UNSUPPORTED_REGION,
        )
        raise link_refuse(account, kind, error, now, **attempt)
    return number, network, attempt


@sensitive_variables("card", "number")
def _card_tokenize(gateway, account: Account, card: CardInput, number: str, *, now: datetime, attempt: dict):
    """The gateway's token and card details, refusing prepaid, virtual and gift cards (ELIG-4)
    and cards issued in the Chinese mainland (ELIG-5); no answer is GatewayUnavailable."""
    kind = PaymentMethod.Kind.CARD
    try:
        details = gateway.tokenize(
            number=number,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            cvv=card.cvv,
            idempotency_key=f"tokenize-{uuid.uuid4()}",
        )
    except GatewayError:
        link_gateway_unavailable_record(account, kind, now, **attempt)
        raise GatewayUnavailable() from None
    if details.funding in (PaymentMethod.Funding.PREPAID, PaymentMethod.Funding.VIRTUAL, PaymentMethod.Funding.GIFT):
        error = LinkRefused(
            f"{details.funding.capitalize()} cards cannot be linked: they cannot pass pre-authorization.",
            rule="ELIG-4",
            reason=Reason.UNSUPPORTED_CARD_TYPE,
        )
        raise link_refuse(account, kind, error, now, **attempt)
    if details.issuing_country.upper() == eligibility.CHINESE_MAINLAND:
        error = LinkRefused(
            "Cards issued in the Chinese mainland cannot be linked.",
            rule="ELIG-5",
            reason=Reason.ISSUED_IN_CHINESE_MAINLAND,
        )
        raise link_refuse(account, kind, error, now, **attempt)
    return details


def _three_ds_trigger(gateway, account: Account, details, method: PaymentMethod) -> str | None:
    """LINK-5: 3-D Secure by region, or when the processor's risk check asks (or cannot answer)."""
    if account.region in eligibility.THREE_DS_MANDATORY_REGIONS:
        return ThreeDSChallenge.Trigger.REGION
    try:
        if gateway.risk_requires_3ds(token=details.token, idempotency_key=f"risk-{method.pk}"):
            return ThreeDSChallenge.Trigger.RISK
    except GatewayError:
        return ThreeDSChallenge.Trigger.RISK  # no risk answer: ask for 3DS rather than skip it
    return None


def _three_ds_open(account: Account, method: PaymentMethod, trigger: str, *, now: datetime) -> ThreeDSChallenge:
    """LINK-5: the challenge the cardholder completes in the console; the method stays pending."""
    challenge = ThreeDSChallenge.objects.create(
        payment_method=method,
        trigger=trigger,
        created_at=now,
        expires_at=now + settings.VERIFICATION_TIMEOUT,
    )
    three_ds_waiting_notify(challenge=challenge, now=now)  # NOTIFY-1
    link_attempt_record(
        account=account,
        kind=PaymentMethod.Kind.CARD,
        outcome=Outcome.PENDING,
        detail="3-D Secure challenge sent to the cardholder.",
        method=method,
        rule="LINK-5",
        now=now,
    )
    return challenge

@transaction.atomic
def _create_card_method(account, card, details, fingerprint, exp_year, now) -> PaymentMethod:
    # A renewed card (same number, new expiry) replaces the account's own expired record.
    PaymentMethod.objects.filter(
        account=account, kind=PaymentMethod.Kind.CARD, fingerprint=fingerprint, status=Status.EXPIRED
    ).update(status=Status.REMOVED, is_default=False, removed_at=now, status_changed_at=now)
    with transaction.atomic():  # savepoint: the IntegrityError of a race leaves the outer block usable
        return PaymentMethod.objects.create(
            account=account,
            kind=PaymentMethod.Kind.CARD,
            status=Status.PENDING,
            status_changed_at=now,
            gateway_token=details.token,
            fingerprint=fingerprint,
            last4=details.last4,
            network=details.network,
            funding=details.funding,
            issuing_country=details.issuing_country,
            exp_month=card.exp_month,
            exp_year=exp_year,
            cardholder_name=card.cardholder_name.strip(),
            company_name=card.company_name.strip(),
            billing_line1=card.billing_line1.strip(),
            billing_city=card.billing_city.strip(),
            billing_postal_code=card.billing_postal_code.strip(),
            billing_country=card.billing_country.upper(),
        )


# --- 3-D Secure --------------------------------------------------------------------------------


def three_ds_complete(*, challenge_id: int, outcome: str, now: datetime) -> PaymentMethod:
    """LINK-5: the cardholder finished the challenge; success places the hold, failure fails."""
    with transaction.atomic():
        try:
            # Link challenges only: an order's challenge is completed by order_three_ds (PAY-1).
            challenge = (
                ThreeDSChallenge.objects.for_linking()
                .select_for_update()
                .select_related("payment_method")
                .get(pk=challenge_id)
            )
        except ThreeDSChallenge.DoesNotExist:
            raise ChallengeNotFound() from None
        if challenge.status != ThreeDSChallenge.Status.PENDING or challenge.expires_at <= now:
            raise VerificationNotPending(
                f"This 3-D Secure challenge is already {challenge.get_status_display().lower()}."
                if challenge.status != ThreeDSChallenge.Status.PENDING
                else "This 3-D Secure challenge timed out; link the card again.",
                rule="LINK-5",
            )
        if challenge.payment_method.status != Status.PENDING:
            # LINK-5: the card was unlinked (or failed) while its challenge waited. The method
            # row is locked with the challenge, so an unlink either committed before (seen
            # here) or waits; a hold is never placed on a removed card.
            raise VerificationNotPending(
                f"This card is {challenge.payment_method.get_status_display().lower()}; the 3-D Secure "
                "result changes nothing and no verification hold is placed.",
                rule="LINK-5",
            )
        succeeded = outcome == "success"
        challenge.status = ThreeDSChallenge.Status.SUCCEEDED if succeeded else ThreeDSChallenge.Status.FAILED
        challenge.completed_at = now
        challenge.save(update_fields=["status", "completed_at"])
        method = challenge.payment_method
        if not succeeded:
            payment_method_fail(method_id=method.pk, reason=Reason.THREE_DS_NOT_COMPLETED, now=now)
    if not succeeded:
        error = LinkRefused("3-D Secure was not completed; the card is not linked.", rule="LINK-5", reason=Reason.THREE_DS_NOT_COMPLETED)
        raise link_refuse(method.account, method.kind, error, now, method=method)
    return payment_method_verify_with_hold(method_id=method.pk, now=now)
