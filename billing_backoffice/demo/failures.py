"""Failed verifications and refused link attempts (LINK-7), worded like the linking services."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from payments import eligibility
from payments.eligibility import Network, Region
from payments.models import LinkAttempt, PaymentMethod, ThreeDSChallenge
from payments.services.verification import DECLINES

from .plans import AccountPlan, MethodPlan
from .tables import CARD_FAILURES, PAYPAL_FAILURES, REFUSALS

if TYPE_CHECKING:
    from .builder import AccountBuilder

Status = PaymentMethod.Status
Kind = PaymentMethod.Kind
Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome


def failed_method(b: AccountBuilder) -> MethodPlan:
    """A verification that failed: a decline of the hold, 3DS abandoned, PayPal not approved."""
    rng = b.rng
    kind = b.pick_kind()
    created = b.between(b.created + timedelta(days=1), b.end - timedelta(hours=2))
    if kind == Kind.PAYPAL:
        reason = rng.choice(PAYPAL_FAILURES)
        agreement = (PaymentMethod.AgreementState.CANCELLED if reason == Reason.AGREEMENT_NOT_APPROVED
                     else PaymentMethod.AgreementState.APPROVED)
        token = {Reason.ISSUER_DECLINED: "decline", Reason.INSUFFICIENT_FUNDS: "insufficient"}.get(reason, "approve")
        m = b.new_paypal(status=Status.FAILED, created=created, agreement=agreement, token=token)
        if agreement == PaymentMethod.AgreementState.APPROVED:
            m.has_funding_source = reason != Reason.NO_FUNDING_SOURCE
        plan = MethodPlan(method=m, created_at=created)
        plan.attempts.append(b.agreement_sent(m, created))
        failed_at = created + timedelta(minutes=rng.randint(1, 20))
        rule, detail = {
            Reason.AGREEMENT_NOT_APPROVED: ("LINK-6", "The billing agreement was not approved on PayPal."),
            Reason.NO_FUNDING_SOURCE: ("LINK-6", "The PayPal account has no funding source."),
        }.get(reason) or DECLINES[reason][1:]
    else:
        reason = rng.choice(CARD_FAILURES)
        token = {Reason.ISSUER_DECLINED: "decline", Reason.NOT_ENABLED_ONLINE: "notonline",
                 Reason.INSUFFICIENT_FUNDS: "insufficient"}.get(reason, "approve")
        m = b.new_card(status=Status.FAILED, created=created, token=token)
        plan = MethodPlan(method=m, created_at=created)
        trigger = b.three_ds_trigger()
        if reason == Reason.THREE_DS_NOT_COMPLETED:
            trigger = trigger or ThreeDSChallenge.Trigger.RISK
            abandoned = rng.random() < 0.5
            failed_at = created + (settings.VERIFICATION_TIMEOUT if abandoned else timedelta(minutes=rng.randint(1, 5)))
            plan.challenge = ThreeDSChallenge(
                payment_method=m, trigger=trigger, created_at=created, expires_at=created + settings.VERIFICATION_TIMEOUT,
                status=ThreeDSChallenge.Status.EXPIRED if abandoned else ThreeDSChallenge.Status.FAILED,
                completed_at=None if abandoned else failed_at,
            )
            rule, detail = "LINK-5", "3-D Secure was not completed; the card is not linked."
        else:
            failed_at = created + timedelta(seconds=rng.randint(2, 20))
            if trigger:  # 3DS passed, then the issuer refused the hold
                failed_at += timedelta(minutes=2)
                plan.challenge = ThreeDSChallenge(
                    payment_method=m, trigger=trigger, status=ThreeDSChallenge.Status.SUCCEEDED, created_at=created,
                    expires_at=created + settings.VERIFICATION_TIMEOUT, completed_at=failed_at - timedelta(seconds=3),
                )
            _, rule, detail = DECLINES[reason]
        if plan.challenge is not None:
            plan.attempts.append(b.challenge_sent(m, created))
    m.failure_reason = reason
    m.status_changed_at = failed_at
    plan.attempts.append(b.attempt(failed_at, Outcome.REJECTED, kind=kind, method=m, reason=reason,
                                   rule=rule, detail=detail))
    return plan


def refusal(b: AccountBuilder, plan: AccountPlan) -> LinkAttempt | None:
    """LINK-7: a link refused before any method existed, with the service's rule and wording."""
    rng = b.rng
    region = b.account.region
    region_label = Region(region).label
    at = b.between(b.created, b.end)
    reason = rng.choice(REFUSALS)

    def rejected(rule: str, detail: str, **attempt) -> LinkAttempt:
        attempt.setdefault("kind", Kind.CARD)
        if attempt["kind"] == Kind.CARD:
            attempt.setdefault("network", Network.VISA)
            attempt.setdefault("last4", b.last4())
        return b.attempt(attempt.pop("at", at), Outcome.REJECTED, reason=reason, rule=rule, detail=detail, **attempt)

    if reason == Reason.UNSUPPORTED_NETWORK:
        network, last4 = rng.choice([(Network.UNIONPAY, "0005"), (Network.DISCOVER, "1117"), (Network.DINERS, "0004")])
        return rejected("ELIG-3", f"{Network(network).label} cards are not accepted; use Visa, Mastercard, "
                        "American Express or JCB.", network=network, last4=last4)
    if reason == Reason.UNSUPPORTED_CARD_TYPE:
        funding = rng.choice(["prepaid", "virtual", "gift"])
        return rejected("ELIG-4", f"{funding.capitalize()} cards cannot be linked: they cannot pass pre-authorization.")
    if reason == Reason.UNSUPPORTED_REGION:
        refused = [n for n in (Network.AMEX, Network.JCB) if not eligibility.card_network_allowed(region, n)]
        if not eligibility.paypal_allowed(region):
            refused.append("paypal")
        if not refused:
            return None  # OTHER accepts everything (ELIG-2)
        choice = rng.choice(refused)
        if choice == "paypal":
            return rejected("ELIG-2", f"PayPal is not available for accounts registered in {region_label}.",
                            kind=Kind.PAYPAL)
        return rejected("ELIG-2", f"{Network(choice).label} cards are not available for accounts registered "
                        f"in {region_label}.", network=choice)
    if reason == Reason.ISSUED_IN_CHINESE_MAINLAND:
        if eligibility.paypal_allowed(region) and rng.random() < 0.4:
            return rejected("ELIG-5", "PayPal accounts registered in the Chinese mainland cannot be linked.",
                            kind=Kind.PAYPAL)
        return rejected("ELIG-5", "Cards issued in the Chinese mainland cannot be linked.")
    if reason == Reason.WALLET_NOT_SUPPORTED:
        wallet = rng.choice(list(eligibility.REFUSED_WALLETS))
        return rejected("ELIG-6", f"{eligibility.REFUSED_WALLETS[wallet]} is not a payment method here; link a Visa, "
                        "Mastercard, American Express or JCB card, or PayPal where available.", kind=wallet)
    if reason == Reason.INVALID_CARD_DETAILS:
        return rejected("LINK-3", "The card number is not valid.")
    if reason == Reason.EXPIRES_TOO_SOON:
        return rejected("LINK-3", "A card that expires this month or earlier cannot be added.")
    if reason == Reason.ALREADY_LINKED:
        return rejected("LINK-1", "This card is linked to another cloud account; it must be unlinked there first.")
    if reason == Reason.ALREADY_LINKED_HERE:
        own = [mp.method for mp in plan.methods
               if mp.method.kind == Kind.CARD and mp.method.status in (Status.ACTIVE, Status.PENDING)]
        if not own:
            return None
        m = rng.choice(own)
        return rejected("LINK-1", "This card is already linked to this account.", network=m.network, last4=m.last4,
                        at=b.between(m.activated_at or m.status_changed_at, b.end))
    # GATEWAY_ERROR: tokenization failed, nothing was linked; no rule (a transient error).
    return rejected("", "The payment gateway did not answer; nothing was linked. Try again.")
