"""Reads behind the account page and the bill page (STYLE.md: selectors): one customer's story.

Each function is one bounded query (at most ``limit`` rows, or a fixed number of queries), so the
account page costs the same number of queries whatever the account holds (QUALITY.md admin
budgets). The texts in words (why a method is not usable, what a region may link) are pure
functions of the rows and the tables of ``payments.eligibility``: no query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from payments import eligibility as elig
from payments.models import Account, Bill, Charge, LedgerEntry, LinkAttempt, PaymentMethod, VerificationHold
from payments.reasons import reason_label
from payments.selectors import account_ledger, account_payment_methods

PANEL_LIMIT = 10
METHOD_LIMIT = 20
ATTEMPT_LIMIT = 20  # LINK-7: an account can collect thousands of attempts


# --- what the region may link (ELIG-1..6) ------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    method: str
    allowed: bool
    why: str


def region_offers(region: str) -> list[Offer]:
    """ELIG-2..6: every method kind a customer might try, whether this region may link it, and why
    (the rule in words)."""
    name = elig.Region(region).label if region in elig.Region.values else region
    offers = []
    for network in (elig.Network.VISA, elig.Network.MASTERCARD, elig.Network.AMEX, elig.Network.JCB):
        allowed = elig.card_network_allowed(region, network)
        why = f"offered in {name} (ELIG-2)" if allowed else f"not offered in {name} (ELIG-2)"
        offers.append(Offer(f"{network.label} cards", allowed, why))
    paypal = elig.paypal_allowed(region)
    offers.append(Offer("PayPal", paypal, f"{'offered' if paypal else 'not offered'} in {name} (ELIG-2)"))
    offers += [
        Offer("UnionPay, Discover, Diners Club cards", False, "networks not supported in any region (ELIG-3)"),
        Offer("Prepaid, virtual and gift cards", False, "cannot pass the pre-authorization (ELIG-4)"),
        Offer("Cards or PayPal from the Chinese mainland", False, "refused in every region (ELIG-5)"),
        Offer("Alipay, WeChat Pay", False, "third-party wallets are not payment methods (ELIG-6)"),
    ]
    return offers


def region_note(region: str) -> str:
    """LINK-5: whether every card link here needs 3-D Secure."""
    if region in elig.THREE_DS_MANDATORY_REGIONS:
        return "Every card link needs a completed 3-D Secure challenge here (LINK-5)."
    return "A card link needs 3-D Secure only when the risk check asks for it (LINK-5)."


# --- methods and why they are (not) usable -----------------------------------------------------


@dataclass(frozen=True)
class MethodStory:
    method: PaymentMethod
    reason: str
    challenge: object | None  # the pending link challenge (LINK-5), if any


def account_methods(*, account_id: int, limit: int = METHOD_LIMIT) -> list[PaymentMethod]:
    """Default first, then newest, each with its pending link challenges; two queries."""
    return list(account_payment_methods(account_id=account_id)[: limit + 1])


def method_story(method: PaymentMethod, *, account: Account) -> MethodStory:
    """The method's state in words: what it waits for, why it failed, or what it is used for."""
    pending = getattr(method, "pending_challenges", None) or []
    challenge = pending[0] if pending else None
    Status = PaymentMethod.Status
    if method.status == Status.PENDING:
        if challenge is not None:
            reason = "Waiting for 3-D Secure: the card is not usable until the cardholder completes it (LINK-5)."
        elif method.kind == PaymentMethod.Kind.PAYPAL:
            reason = "Agreement not approved: the customer has not approved the billing agreement on PayPal (LINK-6)."
        else:
            reason = "Waiting for the verification hold to succeed (HOLD-3)."
    elif method.status == Status.FAILED:
        reason = f"Failed: {reason_label(method.failure_reason) or 'no reason recorded'}."
    elif method.status == Status.EXPIRED:
        reason = f"Expired after {method.expiry} (DEL-5)."
    elif method.status == Status.REMOVED:
        reason = "Removed (unlinked, DEL-4)."
    elif account.credit_approved:
        reason = "Active; not used for automatic payments: the account pays by bank transfer (PAY-6)."
    elif method.is_default:
        reason = "Active: the default method, charged for orders and usage (DEF-1, PAY-1)."
    else:
        reason = "Active; not the default (DEF-2)."
    return MethodStory(method, reason, challenge)


# --- holds, bills, charges, ledger, link attempts -------------------------------------------------


def account_holds(*, account_id: int, limit: int = PANEL_LIMIT) -> list[VerificationHold]:
    return list(
        VerificationHold.objects.filter(account_id=account_id).select_related("payment_method")[: limit + 1]
    )


def account_unpaid_bills(*, account_id: int, limit: int = PANEL_LIMIT) -> list[Bill]:
    """Open, partially paid and overdue bills, oldest first (the order settlement pays them, SET-2)."""
    return list(
        Bill.objects.filter(account_id=account_id, status__in=Bill.UNPAID_STATUSES).order_by("issued_at", "id")[
            : limit + 1
        ]
    )


def bill_is_overdue(bill: Bill, *, now: datetime) -> bool:
    """CRED-3: marked overdue, or unpaid past its due date (before the job marks it)."""
    return bill.status == Bill.Status.OVERDUE or (
        bill.status in Bill.UNPAID_STATUSES and bill.due_date < now.date()
    )


def account_recent_charges(*, account_id: int, limit: int = PANEL_LIMIT) -> list[Charge]:
    return list(
        Charge.objects.filter(account_id=account_id)
        .select_related("payment_method", "bill")
        .order_by("-created_at", "-id")[: limit + 1]
    )


def account_recent_ledger(*, account_id: int, limit: int = PANEL_LIMIT) -> list[LedgerEntry]:
    """The newest entries with their running balance (SEC-4)."""
    return list(account_ledger(account_id=account_id)[: limit + 1])


def account_recent_attempts(*, account_id: int, limit: int = ATTEMPT_LIMIT) -> list[LinkAttempt]:
    return list(LinkAttempt.objects.filter(account_id=account_id).order_by("-created_at", "-id")[: limit + 1])


# --- a bill's charge attempts and payments -------------------------------------------------------


def bill_charges(*, bill: Bill, limit: int = PANEL_LIMIT * 5) -> list[Charge]:
    """PAY-1..5: every charge made for the bill, newest first, with its method."""
    return list(Charge.objects.filter(bill_id=bill.pk).select_related("payment_method").order_by("-created_at", "-id")[:limit])


def bill_payments(*, bill: Bill, limit: int = PANEL_LIMIT * 5) -> list[LedgerEntry]:
    """The ledger's ``bill_payment`` entries of the bill, oldest first: settlement and manual
    payments (``settle:<bill id>:...``, SET-2/SET-3) and payments by the bill's own charge
    (``bill-payment:<bill id>:charge:<id>``). Filtered on the account first (its index)."""
    return list(
        LedgerEntry.objects.filter(account_id=bill.account_id, kind=LedgerEntry.Kind.BILL_PAYMENT)
        .filter(Q(reference__startswith=f"settle:{bill.pk}:") | Q(reference__startswith=f"bill-payment:{bill.pk}:"))
        .select_related("created_by")
        .order_by("created_at", "id")[:limit]
    )
