"""Linking cards and PayPal: eligibility, validation and 3-D Secure; the hold is ``verification``.

Rules: ELIG-2..7, LINK-1..7, HOLD-1, HOLD-3, DEF-1 (through ``payment_method_activate``).
Gateway calls never run inside a database transaction or under a row lock: the method is
committed as ``pending`` first, the gateway is called with a key derived from the method's id,
and the outcome is written in a second short transaction.
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
from payments.errors import (
    AccountNotFound,
    AlreadyLinked,
    ChallengeNotFound,
    LinkRefused,
    PaymentMethodNotFound,
    VerificationNotPending,
)
from payments.gateways import GatewayError, card_gateway, paypal_gateway
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge
from payments.services.attempts import link_attempt_record
from payments.services.customer_events import three_ds_waiting_notify
from payments.services.verification import (  # noqa: F401 (re-exported: linking's public names)
    DECLINES,
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


@dataclass(frozen=True)
class LinkResult:
    method: PaymentMethod
    challenge: ThreeDSChallenge | None = None
    approval_url: str = ""


def card_fingerprint(number: str) -> str:
    """SEC-1 / LINK-1: keyed HMAC-SHA256 of the card number; the key comes from the environment."""
    return hmac.new(settings.CARD_FINGERPRINT_KEY.encode(), number.encode(), hashlib.sha256).hexdigest()


# --- checks shared by cards and PayPal ------------------------------------------------------


def _get_account(account_id: int) -> Account:
    try:
        return Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None


def _account_refusal(account: Account) -> LinkRefused | None:
    if account.status != Account.Status.ACTIVE:
        return LinkRefused(
            f"The account is {account.get_status_display().lower()}; no method can be linked to it.",
            rule="LINK-2",
            reason=Reason.ACCOUNT_NOT_ACTIVE,
        )
    if account.kyc_status in (Account.KycStatus.REQUIRED, Account.KycStatus.PENDING):
        return LinkRefused(
            "KYC verification is required and not complete for this account.",
            rule="LINK-7",
            reason=Reason.KYC_REQUIRED,
        )
    return None


def _record_gateway_unavailable(account: Account, kind: str, now: datetime, **attempt) -> None:
    link_attempt_record(
        account=account, kind=kind, outcome=Outcome.REJECTED, reason=Reason.GATEWAY_ERROR,
        detail=GatewayUnavailable.default_detail, now=now, **attempt,
    )


# --- cards ---------------------------------------------------------------------------------


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


def _linked_elsewhere_refusal(account: Account, *, kind: str, **lookup) -> AlreadyLinked | None:
    """LINK-1 / LINK-2: a live method holding this card or PayPal account, on any account."""
    holder = (
        PaymentMethod.objects.filter(kind=kind, status__in=PaymentMethod.LIVE_STATUSES, **lookup)
        .only("id", "account_id", "status")
        .first()
    )
    if holder is None:
        return None
    noun = "card" if kind == PaymentMethod.Kind.CARD else "PayPal account"
    if holder.account_id == account.pk:
        if holder.status == Status.EXPIRED:
            return None  # a renewed card replaces its expired record (see _create_card_method)
        return AlreadyLinked(f"This {noun} is already linked to this account.", reason=Reason.ALREADY_LINKED_HERE)
    return AlreadyLinked(
        f"This {noun} is linked to another cloud account; it must be unlinked there first."
    )


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
    account = _get_account(account_id)
    kind = PaymentMethod.Kind.CARD
    last4 = "".join(ch for ch in card.number if ch.isdigit())[-4:]
    refusal = _account_refusal(account)
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
    fingerprint = card_fingerprint(number)
    conflict = _linked_elsewhere_refusal(account, kind=kind, fingerprint=fingerprint)
    if conflict:
        raise link_refuse(account, kind, conflict, now, **attempt)

    gateway = card_gateway()
    try:
        details = gateway.tokenize(
            number=number,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            cvv=card.cvv,
            idempotency_key=f"tokenize-{uuid.uuid4()}",
        )
    except GatewayError:
        _record_gateway_unavailable(account, kind, now, **attempt)
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

    exp_year = card.exp_year + 2000 if card.exp_year < 100 else card.exp_year
    try:
        method = _create_card_method(account, card, details, fingerprint, exp_year, now)
    except IntegrityError:
        # Another request linked the same card between our check and our insert (LINK-1).
        conflict = _linked_elsewhere_refusal(account, kind=kind, fingerprint=fingerprint) or AlreadyLinked(
            "This card is linked to another cloud account; it must be unlinked there first."
        )
        raise link_refuse(account, kind, conflict, now, **attempt) from None

    trigger = None
    if account.region in eligibility.THREE_DS_MANDATORY_REGIONS:
        trigger = ThreeDSChallenge.Trigger.REGION
    else:
        try:
            if gateway.risk_requires_3ds(token=details.token, idempotency_key=f"risk-{method.pk}"):
                trigger = ThreeDSChallenge.Trigger.RISK
        except GatewayError:
            trigger = ThreeDSChallenge.Trigger.RISK  # no risk answer: ask for 3DS rather than skip it
    if trigger:
        challenge = ThreeDSChallenge.objects.create(
            payment_method=method,
            trigger=trigger,
            created_at=now,
            expires_at=now + settings.VERIFICATION_TIMEOUT,
        )
        three_ds_waiting_notify(challenge=challenge, now=now)  # NOTIFY-1
        link_attempt_record(
            account=account,
            kind=kind,
            outcome=Outcome.PENDING,
            detail="3-D Secure challenge sent to the cardholder.",
            method=method,
            rule="LINK-5",
            now=now,
        )
        return LinkResult(method=method, challenge=challenge)
    method = payment_method_verify_with_hold(method_id=method.pk, now=now)
    return LinkResult(method=method)


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


# --- PayPal -------------------------------------------------------------------------------------


def paypal_identity(*, payer_id: str, email: str) -> tuple[str, str]:
    """LINK-1: the payer id upper-cased (PayPal issues them so) and the e-mail lower-cased."""
    return (payer_id or "").strip().upper(), (email or "").strip().lower()


def paypal_link(*, account_id: int, email: str, payer_id: str, country: str, now: datetime) -> LinkResult:
    """ELIG-2 (PayPal by region), ELIG-5 (not registered in the Chinese mainland), LINK-1, LINK-6.

    Creates a pending method and a billing agreement the customer approves on PayPal; the method
    links only when ``paypal_agreement_complete`` reports an approved agreement with funding.
    SEC-1: an e-mail or payer id holding a card number is refused before anything is recorded.
    """
    free_text_check(paypal_email=email, payer_id=payer_id)
    account = _get_account(account_id)
    kind = PaymentMethod.Kind.PAYPAL
    # LINK-1: PayPal identifies an account by payer id and e-mail without regard to case, so
    # both are stored normalised and looked up case-insensitively (UPPER index, see the model).
    payer_id, email = paypal_identity(payer_id=payer_id, email=email)
    refusal = _account_refusal(account)
    if refusal:
        raise link_refuse(account, kind, refusal, now)
    if not eligibility.paypal_allowed(account.region):
        error = LinkRefused(
            f"PayPal is not available for accounts registered in {account.get_region_display()}.",
            rule="ELIG-2", reason=Reason.UNSUPPORTED_REGION,
        )
        raise link_refuse(account, kind, error, now)
    if country.upper() == eligibility.CHINESE_MAINLAND:
        error = LinkRefused(
            "PayPal accounts registered in the Chinese mainland cannot be linked.",
            rule="ELIG-5", reason=Reason.ISSUED_IN_CHINESE_MAINLAND,
        )
        raise link_refuse(account, kind, error, now)
    conflict = _linked_elsewhere_refusal(account, kind=kind, paypal_payer_id__iexact=payer_id)
    if conflict:
        raise link_refuse(account, kind, conflict, now)
    try:
        agreement = paypal_gateway().create_agreement(
            payer_id=payer_id, email=email, idempotency_key=f"agreement-{uuid.uuid4()}"
        )
    except GatewayError:
        _record_gateway_unavailable(account, kind, now)
        raise GatewayUnavailable() from None
    try:
        with transaction.atomic():
            method = PaymentMethod.objects.create(
                account=account, kind=kind, status=Status.PENDING, status_changed_at=now,
                paypal_payer_id=payer_id, paypal_email=email, paypal_country=country.upper(),
                agreement_id=agreement.agreement_id,
                agreement_state=PaymentMethod.AgreementState.NOT_APPROVED,
            )
    except IntegrityError:
        conflict = _linked_elsewhere_refusal(account, kind=kind, paypal_payer_id__iexact=payer_id) or AlreadyLinked(
            "This PayPal account is linked to another cloud account; it must be unlinked there first."
        )
        raise link_refuse(account, kind, conflict, now) from None
    link_attempt_record(
        account=account, kind=kind, outcome=Outcome.PENDING, method=method, rule="LINK-6",
        detail="Waiting for the customer to approve the billing agreement on PayPal.", now=now,
    )
    return LinkResult(method=method, approval_url=agreement.approval_url)


def paypal_agreement_complete(*, method_id: int, approved: bool, has_funding_source: bool, now: datetime) -> PaymentMethod:
    """LINK-6: only an approved agreement with a funding source links (then HOLD-1 applies)."""
    with transaction.atomic():
        try:
            method = PaymentMethod.objects.select_for_update().get(pk=method_id, kind=PaymentMethod.Kind.PAYPAL)
        except PaymentMethod.DoesNotExist:
            raise PaymentMethodNotFound() from None
        if method.status != Status.PENDING or method.agreement_state != PaymentMethod.AgreementState.NOT_APPROVED:
            raise VerificationNotPending(
                f"This PayPal method is {method.get_status_display().lower()}; its agreement is already settled.",
                rule="LINK-6",
            )
        if not approved:
            method.agreement_state = PaymentMethod.AgreementState.CANCELLED
            reason = Reason.AGREEMENT_NOT_APPROVED
        else:
            method.agreement_state = PaymentMethod.AgreementState.APPROVED
            method.has_funding_source = has_funding_source
            reason = None if has_funding_source else Reason.NO_FUNDING_SOURCE
        method.save(update_fields=["agreement_state", "has_funding_source"])
        if reason:
            payment_method_fail(method_id=method.pk, reason=reason, now=now)
    if reason:
        detail = (
            "The billing agreement was not approved on PayPal."
            if reason == Reason.AGREEMENT_NOT_APPROVED
            else "The PayPal account has no funding source."
        )
        raise link_refuse(method.account, method.kind, LinkRefused(detail, rule="LINK-6", reason=reason), now, method=method)
    return payment_method_verify_with_hold(method_id=method.pk, now=now)


# --- wallets ----------------------------------------------------------------------------------


def wallet_link(*, account_id: int, wallet: str, now: datetime) -> None:
    """ELIG-6: Alipay and WeChat Pay are not payment methods; every attempt is refused.
    SEC-1: a wallet name holding a card number is refused (400) before the attempt is recorded."""
    free_text_check(wallet_name=wallet)
    account = _get_account(account_id)
    name = eligibility.REFUSED_WALLETS.get(wallet, wallet)
    error = LinkRefused(
        f"{name} is not a payment method here; link a Visa, Mastercard, American Express or JCB "
        "card, or PayPal where available.",
        rule="ELIG-6", reason=Reason.WALLET_NOT_SUPPORTED,
    )
    raise link_refuse(account, wallet[:16], error, now)
