"""Linking a payment method: what cards and PayPal share, and wallets (refused).

Linking is three modules by method: ``cards`` (LINK-3, ELIG-2..5, LINK-5 3-D Secure), ``paypal``
(ELIG-2, ELIG-5, LINK-6) and ``verification`` (the hold that verifies a new method, HOLD-1 and
the recorded refusals, LINK-7); this one holds the checks both methods make (LINK-1, LINK-2,
LINK-7) and ``wallet_link`` (ELIG-6). Rules: ELIG-2..7, LINK-1..7, HOLD-1, HOLD-3, DEF-1
(through ``payment_method_activate``). Gateway calls never run inside a database transaction or
under a row lock: the method is committed as ``pending`` first, the gateway is called with a
key derived from the method's id, and the outcome is written in a second short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing_backoffice.free_text import free_text_check
from payments import eligibility
from payments.errors import AccountNotFound, AlreadyLinked, LinkRefused
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge
from payments.services.attempts import link_attempt_record
from payments.services.verification import GatewayUnavailable, link_refuse

Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome
Status = PaymentMethod.Status


@dataclass(frozen=True)
class LinkResult:
    method: PaymentMethod
    challenge: ThreeDSChallenge | None = None
    approval_url: str = ""


# --- checks shared by cards and PayPal ------------------------------------------------------


def link_account_get(account_id: int) -> Account:
    try:
        return Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None


def link_account_refusal(account: Account) -> LinkRefused | None:
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


def link_gateway_unavailable_record(account: Account, kind: str, now: datetime, **attempt) -> None:
    link_attempt_record(
        account=account, kind=kind, outcome=Outcome.REJECTED, reason=Reason.GATEWAY_ERROR,
        detail=GatewayUnavailable.default_detail, now=now, **attempt,
    )


def linked_elsewhere_refusal(account: Account, *, kind: str, **lookup) -> AlreadyLinked | None:
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
            return None  # a renewed card replaces its expired record (see cards._create_card_method)
        return AlreadyLinked(f"This {noun} is already linked to this account.", reason=Reason.ALREADY_LINKED_HERE)
    return AlreadyLinked(
        f"This {noun} is linked to another cloud account; it must be unlinked there first."
    )


# --- wallets ----------------------------------------------------------------------------------


def wallet_link(*, account_id: int, wallet: str, now: datetime) -> None:
    """ELIG-6: Alipay and WeChat Pay are not payment methods; every attempt is refused.
    SEC-1: a wallet name holding a card number is refused (400) before the attempt is recorded."""
    free_text_check(wallet_name=wallet)
    account = link_account_get(account_id)
    name = eligibility.REFUSED_WALLETS.get(wallet, wallet)
    error = LinkRefused(
        f"{name} is not a payment method here; link a Visa, Mastercard, American Express or JCB "
        "card, or PayPal where available.",
        rule="ELIG-6", reason=Reason.WALLET_NOT_SUPPORTED,
    )
    raise link_refuse(account, wallet[:16], error, now)
