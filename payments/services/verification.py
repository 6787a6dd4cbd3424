"""The verification hold of a new method (HOLD-1, HOLD-2, HOLD-3) and recorded refusals (LINK-7).

Shared by card and PayPal linking (``linking``), the abandoned-verification job (``lifecycle``)
and the recovery of unrecorded authorizations (``hold_recovery``). Gateway calls never run
inside a transaction or under a row lock.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from billing_backoffice.errors import BillingError
from payments import eligibility
from payments.errors import LinkRefused, VerificationNotPending
from payments.gateways import GatewayError, card_gateway, paypal_gateway
from payments.models import Account, LinkAttempt, PaymentMethod, VerificationHold
from payments.services.attempts import link_attempt_record
from payments.services.defaults import payment_method_activate

Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome
Status = PaymentMethod.Status

# HOLD-1: USD 1.00, or the local-currency equivalent where the account's country has one.
LOCAL_HOLD_AMOUNTS = {
    "GB": ("GBP", Decimal("1.00")),
    "MY": ("MYR", Decimal("5.00")),
    "JP": ("JPY", Decimal("150")),
}
# The EU territories with their own codes (ELIG-1) all use the euro, Aland and Saint-Martin too.
EURO_COUNTRIES = eligibility.EU_COUNTRY_CODES - {"BG", "CZ", "DK", "HU", "PL", "RO", "SE"}


class GatewayUnavailable(BillingError):
    code = "gateway_unavailable"
    http_status = 503
    default_detail = "The payment gateway did not answer; nothing was linked. Try again."


def hold_amount_for(account: Account) -> tuple[Decimal, str]:
    """HOLD-1: the amount and currency of the verification hold for this account."""
    country = str(account.country)
    if country in LOCAL_HOLD_AMOUNTS:
        currency, amount = LOCAL_HOLD_AMOUNTS[country]
        return amount, currency
    if country in EURO_COUNTRIES:
        return Decimal("1.00"), "EUR"
    return Decimal("1.00"), "USD"


# --- refusals recorded as link attempts (LINK-7) -------------------------------------------


def link_refuse(account: Account, kind: str, error: LinkRefused, now: datetime, **attempt) -> LinkRefused:
    link_attempt_record(
        account=account,
        kind=kind,
        outcome=Outcome.REJECTED,
        reason=error.reason,
        rule=error.rule or "",
        detail=error.detail,
        now=now,
        **attempt,
    )
    return error


# --- the hold: shared by cards and PayPal -----------------------------------------------------

DECLINES = {
    "issuer_declined": (Reason.ISSUER_DECLINED, "LINK-4", "The issuer declined the verification."),
    "not_enabled_online": (
        Reason.NOT_ENABLED_ONLINE,
        "LINK-4",
        "The card is not enabled for online and international transactions.",
    ),
    "insufficient_funds": (
        Reason.INSUFFICIENT_FUNDS,
        "HOLD-1",
        "Insufficient funds for the USD 1.00 verification hold.",
    ),
}


def payment_method_verify_with_hold(*, method_id: int, now: datetime) -> PaymentMethod:
    """HOLD-1 / HOLD-3: place the verification hold, then activate (or fail) the method.

    The authorization key is derived from the method, so a retry after a crash gets the same
    authorization back instead of a second hold. Raises ``LinkRefused`` on a decline, and
    ``VerificationNotPending`` (nothing sent) when the method is no longer pending (LINK-5: a
    card unlinked or failed meanwhile never gets a hold).

    HOLD-2: the key is saved on the method (``hold_auth_key``) before the gateway call and
    cleared in the transaction that records its answer; a crash in between leaves it for
    ``holds_recover_unrecorded``, which finds the authorization by that key even if the method
    was unlinked since.
    """
    method = PaymentMethod.objects.select_related("account").get(pk=method_id)
    account = method.account
    amount, currency = hold_amount_for(account)
    key = f"hold-auth-{method.pk}"
    sent = PaymentMethod.objects.filter(pk=method.pk, status=Status.PENDING).update(
        hold_auth_key=key, hold_auth_sent_at=now
    )
    if not sent:
        method.refresh_from_db()
        raise VerificationNotPending(
            f"This payment method is {method.get_status_display().lower()}; no verification hold is placed.",
            rule="LINK-5",
        )
    try:
        auth = hold_authorize(method, amount=amount, currency=currency, idempotency_key=key)
    except GatewayError:
        # The method stays pending; the abandoned-verification job retries with the same key.
        link_attempt_record(
            account=account, kind=method.kind, outcome=Outcome.PENDING, reason=Reason.GATEWAY_ERROR,
            detail="Gateway unavailable while placing the hold; it will be retried.", method=method, now=now,
        )
        raise GatewayUnavailable() from None
    if not auth.approved:
        reason, rule, detail = DECLINES.get(auth.decline_code, DECLINES["issuer_declined"])
        with transaction.atomic():
            payment_method_fail(method_id=method.pk, reason=reason, now=now)
            hold_auth_answered(method_id=method.pk, idempotency_key=key)
        error = LinkRefused(detail, rule=rule, reason=reason)
        raise link_refuse(account, method.kind, error, now, method=method)
    hold_record(
        method=method, authorization_id=auth.authorization_id, amount=amount, currency=currency, now=now,
        idempotency_key=key,
    )
    method = payment_method_activate(method_id=method.pk, now=now)
    if method.status == Status.ACTIVE:
        link_attempt_record(account=account, kind=method.kind, outcome=Outcome.LINKED, method=method, now=now)
    return method


def hold_authorize(method: PaymentMethod, *, amount: Decimal, currency: str, idempotency_key: str):
    """HOLD-1: the gateway authorization of the verification hold (card or PayPal agreement)."""
    if method.kind == PaymentMethod.Kind.CARD:
        return card_gateway().authorize_hold(
            token=method.gateway_token, amount=amount, currency=currency,
            descriptor=VerificationHold.DESCRIPTOR, idempotency_key=idempotency_key,
        )
    return paypal_gateway().authorize_hold(
        agreement_id=method.agreement_id, amount=amount, currency=currency,
        descriptor=VerificationHold.DESCRIPTOR, idempotency_key=idempotency_key,
    )


def hold_auth_answered(*, method_id: int, idempotency_key: str) -> None:
    """HOLD-2: the answer to the authorization sent with this key is recorded; forget the key."""
    PaymentMethod.objects.filter(pk=method_id, hold_auth_key=idempotency_key).update(
        hold_auth_key="", hold_auth_sent_at=None
    )


@transaction.atomic
def hold_record(
    *, method: PaymentMethod, authorization_id: str, amount: Decimal, currency: str, now: datetime,
    idempotency_key: str = "", placed_at: datetime | None = None,
) -> VerificationHold:
    """HOLD-1/HOLD-2: one row per gateway authorization (unique), due for release later.

    ``idempotency_key``: the saved key of the authorization, cleared in the same transaction.
    ``placed_at``: when the processor placed it, if earlier than ``now`` (a recovered one); the
    24-hour deadline counts from then, so a hold recovered late is due for release at once.
    """
    placed_at = placed_at or now
    hold, _ = VerificationHold.objects.get_or_create(
        authorization_id=authorization_id,
        defaults={
            "payment_method": method,
            "account_id": method.account_id,
            "amount": amount,
            "currency": currency,
            "placed_at": placed_at,
            "release_after": placed_at + settings.HOLD_RELEASE_AFTER,
            "release_deadline": placed_at + settings.HOLD_RELEASE_DEADLINE,
        },
    )
    if idempotency_key:
        hold_auth_answered(method_id=method.pk, idempotency_key=idempotency_key)
    return hold


def payment_method_fail(*, method_id: int, reason: str, now: datetime) -> bool:
    """pending -> failed, by a conditional update; False when the method was no longer pending."""
    return bool(
        PaymentMethod.objects.filter(pk=method_id, status=Status.PENDING).update(
            status=Status.FAILED, failure_reason=reason, status_changed_at=now
        )
    )
