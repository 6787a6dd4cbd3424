"""The verification hold of a new method (HOLD-1, HOLD-2, HOLD-3) and recorded refusals (LINK-7).

Shared by card and PayPal linking (``linking``), the abandoned-verification job (``lifecycle``)
and the recovery of unrecorded authorizations (``hold_recovery``). The hold's amount, its
gateway authorization and its row are ``holds``' (the one home of verification holds). Gateway
calls never run inside a transaction or under a row lock.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from payments.errors import LinkRefused, VerificationNotPending
from payments.gateways import GatewayError
from payments.models import Account, LinkAttempt, PaymentMethod
from payments.services.attempts import link_attempt_record
from payments.services.defaults import payment_method_activate
from payments.services.holds import hold_amount_for, hold_auth_answered, hold_authorize, hold_record
from payments.errors import GatewayUnavailable  # noqa: F401 (raised here)

Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome
Status = PaymentMethod.Status


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


def payment_method_fail(*, method_id: int, reason: str, now: datetime) -> bool:
    """pending -> failed, by a conditional update; False when the method was no longer pending."""
    return bool(
        PaymentMethod.objects.filter(pk=method_id, status=Status.PENDING).update(
            status=Status.FAILED, failure_reason=reason, status_changed_at=now
        )
    )
