"""Which billing story each demo account tells, and how its account is shaped for it.

The profile is fixed by the account's index (``billing_profile``), and what a story draws comes
from a generator of its own (``billing_rng``), so adding billing left every draw of the account
builder as it was. Only active accounts have a billing story. The builder shapes the account for its profile (``shape_for_billing``):
the method that is charged is linked long before the story starts, and a card whose charges are
declined or ask for 3-D Secure carries the simulated processor's scenario in its token (the
processor decides by the token, as a real one decides by the card). ``effective_profile`` is the
story the account can really tell: on a database seeded before billing existed, the accounts
were not shaped, so a story whose conditions are not met falls back to a plainer one.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from payments import eligibility
from payments.models import Account, PaymentMethod

from .tables import SEED

if TYPE_CHECKING:
    from .builder import AccountBuilder
    from .plans import AccountPlan

Status = PaymentMethod.Status
Kind = PaymentMethod.Kind


class Profile:
    NONE = "none"
    PAYG = "payg"  # pay-as-you-go, charged at month end (PAY-3), thresholds (PAY-2), orders (PAY-1)
    PAYG_DECLINED = "payg_declined"  # the issuer declines every charge (PAY-5), retried
    PAYG_3DS = "payg_3ds"  # orders ask for 3-D Secure (PAY-1), month-end charges do not
    PAYG_NO_METHOD = "payg_no_method"  # the default card expired: nothing to charge (HOLD-3)
    KYC_BLOCKED = "kyc_blocked"  # KYC asked for after linking: charges refused (PAY-5)
    CREDIT = "credit"  # credit-approved, pays its bills by bank transfer (CRED-1..3, PAY-6)
    CREDIT_SETTLEMENT_OFF = "credit_settlement_off"  # finance pays its bills by hand (SET-1, SET-3)
    CREDIT_AFTER_THRESHOLD = "credit_after_threshold"  # approved while a charge was pending (PAY-6)
    CREDIT_PENDING = "credit_pending"  # pay-as-you-go with a credit application waiting (CRED-1)
    CREDIT_REJECTED = "credit_rejected"  # pay-as-you-go whose application was rejected (CRED-2)


# Every STORY_EVERY-th account has a billing story, the stories taken in turn from CYCLE: every
# story is told once or twice in the 300 accounts, and the seed stays fast (money moves through
# the services, one call at a time). Neither STORY_EVERY nor the cycle's length is a multiple of
# the five regions (``REGION_ORDER[index % 5]``), so the stories are told in every region.
STORY_EVERY = 9
CYCLE = (
    Profile.PAYG, Profile.CREDIT, Profile.PAYG_DECLINED, Profile.CREDIT_PENDING, Profile.PAYG,
    Profile.CREDIT_SETTLEMENT_OFF, Profile.PAYG_NO_METHOD, Profile.CREDIT_REJECTED, Profile.PAYG,
    Profile.KYC_BLOCKED, Profile.CREDIT, Profile.PAYG_3DS, Profile.CREDIT_AFTER_THRESHOLD, Profile.PAYG,
    Profile.PAYG_DECLINED, Profile.CREDIT_PENDING, Profile.CREDIT, Profile.PAYG, Profile.CREDIT_REJECTED,
)
CREDIT_PROFILES = (Profile.CREDIT, Profile.CREDIT_SETTLEMENT_OFF, Profile.CREDIT_AFTER_THRESHOLD)
# What the charged (default) method must be: an active method, an active card, an expired card.
NEEDS = {
    Profile.PAYG: "active",
    Profile.PAYG_DECLINED: "active",
    Profile.PAYG_3DS: "active_card",
    Profile.PAYG_NO_METHOD: "expired",
    Profile.KYC_BLOCKED: "active",
    Profile.CREDIT_AFTER_THRESHOLD: "active_card",
    Profile.CREDIT_PENDING: "active",
    Profile.CREDIT_REJECTED: "active",
}
DECLINE_SCENARIOS = ("chargedecline", "chargenofunds")  # simulated processor: issuer_declined, insufficient_funds
PAYPAL_THRESHOLDS = ("25.00", "50.00", "100.00", "100.00", "150.00", "250.00")  # PAY-2: USD 8..500


def billing_rng(index: int, purpose: str = "") -> random.Random:
    return random.Random(f"{SEED}-billing{purpose}-{index}")


def billing_profile(index: int) -> str:
    """The story account ``index`` tells (``NONE`` for most accounts): every STORY_EVERY-th, in turn."""
    if index % STORY_EVERY:
        return Profile.NONE
    return CYCLE[(index // STORY_EVERY) % len(CYCLE)]


def story_kyc(profile: str, drawn: str) -> str:
    """The KYC status a story needs: blocked for KYC_BLOCKED (asked for after linking), cleared
    for every other story (its charges would be refused otherwise, PAY-5)."""
    K = Account.KycStatus
    blocked = drawn in (K.REQUIRED, K.PENDING)
    if profile == Profile.KYC_BLOCKED:
        return drawn if blocked else K.REQUIRED
    return K.VERIFIED if blocked else drawn


def kyc_blocked(account: Account) -> bool:
    return account.kyc_status in (Account.KycStatus.REQUIRED, Account.KycStatus.PENDING)


def token_scenario(method: PaymentMethod) -> str:
    """The simulated processor's scenario in a card token or PayPal agreement id."""
    ident = method.gateway_token if method.kind == Kind.CARD else method.agreement_id
    parts = ident.split("_")
    return parts[1] if len(parts) > 2 else "approve"


def effective_profile(profile: str, account: Account, default: PaymentMethod | None, *, start: datetime) -> str:
    """The story this account can tell with the methods it has (see the module docstring)."""
    if profile == Profile.NONE or account.status != Account.Status.ACTIVE:
        return Profile.NONE
    usable = default is not None and default.status == Status.ACTIVE and (default.activated_at or start) < start
    if kyc_blocked(account):
        return Profile.KYC_BLOCKED if usable else Profile.NONE
    need = NEEDS.get(profile)
    if need == "expired":
        expired = default is not None and default.status == Status.EXPIRED and default.status_changed_at < start
        return profile if expired else Profile.NONE
    if need and not usable:
        return Profile.NONE
    if need == "active_card" and default.kind != Kind.CARD:
        return Profile.CREDIT if profile == Profile.CREDIT_AFTER_THRESHOLD else Profile.PAYG
    scenario = token_scenario(default) if default is not None else "approve"
    if profile == Profile.PAYG_DECLINED and scenario not in DECLINE_SCENARIOS:
        return Profile.PAYG
    if profile == Profile.PAYG_3DS and scenario != "risk3ds":
        return Profile.PAYG
    if profile in (Profile.PAYG, Profile.CREDIT_PENDING, Profile.CREDIT_REJECTED, Profile.CREDIT_AFTER_THRESHOLD) \
            and scenario != "approve":
        return Profile.NONE  # a card that fails its charges tells another story than this one
    return profile


# --- shaping the account in the builder ----------------------------------------------------------


def shape_for_billing(b: AccountBuilder, plan: AccountPlan, profile: str, *, start: datetime) -> None:
    """Give an active account the charged method its story needs, linked before ``start``."""
    if kyc_blocked(b.account):
        profile = Profile.KYC_BLOCKED
    need = NEEDS.get(profile)
    if need is None:
        return
    methods = [mp.method for mp in plan.methods]
    if need == "expired":
        default = next((m for m in methods if m.status == Status.EXPIRED and m.status_changed_at < start), None)
        if default is None:
            expired = b.expired_card(expired_before=start)
            plan.methods.append(expired)
            default = expired.method
    else:
        cards_only = need == "active_card" or not eligibility.paypal_allowed(b.account.region)
        # Every other pay-as-you-go story where PayPal is offered pays by PayPal (HOLD-4, PAY-2).
        paypal = not cards_only and profile == Profile.PAYG and (b.index // STORY_EVERY) % 2 == 0
        old = [m for m in methods if m.status == Status.ACTIVE and m.activated_at < start
               and (m.kind == Kind.CARD or not cards_only) and (m.kind == Kind.PAYPAL or not paypal)]
        if old:
            default = old[0]
        else:
            kind = Kind.CARD if cards_only else Kind.PAYPAL if paypal else b.pick_kind()
            placed = b.between(b.created + timedelta(days=1), start - timedelta(days=1))
            linked = b.verified(kind, placed, "released")
            plan.methods.append(linked)
            default = linked.method
    for m in methods:
        m.is_default = False
    default.is_default = True  # DEF-1 / DEF-2: one default, active or expired
    scenario = {
        Profile.PAYG_DECLINED: DECLINE_SCENARIOS[(b.index // STORY_EVERY) % len(DECLINE_SCENARIOS)],
        Profile.PAYG_3DS: "risk3ds",
        Profile.CREDIT_AFTER_THRESHOLD: "approve",
    }.get(profile)
    if scenario and default.kind == Kind.CARD:
        default.gateway_token = default.gateway_token.replace("tok_approve_", f"tok_{scenario}_", 1)
    elif scenario and default.kind == Kind.PAYPAL:
        default.agreement_id = default.agreement_id.replace("ba_approve_", f"ba_{scenario}_", 1)
    if default.kind == Kind.PAYPAL:
        b.account.paypal_charge_threshold = b.rng.choice(PAYPAL_THRESHOLDS)
