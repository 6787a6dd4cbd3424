"""Charge execution (PAY-4, PAY-5, PAY-6, HOLD-3, HOLD-4): how every charge of cards and PayPal runs.

Charging is four modules by job: ``usage`` (PAY-2, the PayPal pre-authorization HOLD-4),
``orders`` (PAY-1, CRED-3), ``scheduled_charging`` (threshold charges PAY-2, the month-end
deduction PAY-3, retries) and this one, which they all use to create and run a charge.

How a charge runs (``charge_execute``), so that money moves once whatever is retried:
1. The ``Charge`` row is created and committed first, ``pending``, with its idempotency key
   ``charge-{bill}-{attempt}`` saved on it.
2. The gateway is called outside any transaction and row lock, always with that saved key, so
   a retry after a timeout or a crash gets the processor's first answer instead of a second charge.
3. The outcome is written by a conditional update ``pending -> succeeded | failed``; only the
   update that wins posts to the ledger, in the same transaction: +amount ``charge`` and
   -amount ``bill_payment``, so the balance nets to zero and the bill is paid by its own charge.
A transient gateway error leaves the charge pending for ``charges_retry_failed``.

Amounts: the charge is the bill's outstanding amount, which for a new bill is its total; the
gateway is never asked for more (PAY-4: no service fee on cards or PayPal).
Orders that need 3-D Secure (PAY-1): when the processor's risk check asks for it, nothing is
charged; the charge fails with ``three_ds_not_completed`` (PAY-5) and, in the same transaction, a
``ThreeDSChallenge`` tied to that charge is opened for the console. Completing it
(``payments.services.order_three_ds``) replays the bill's charge with a new key and the
processor's authentication; failing or abandoning it leaves the bill open.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from billing_backoffice.enqueue import enqueue_on_commit
from payments.gateways import GatewayError, card_gateway, paypal_gateway
from payments.gateways.base import ChargeResult
from payments.models import Account, Bill, Charge, LedgerEntry, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services.customer_events import charge_failed_notify, three_ds_waiting_notify
from payments.services.holds import hold_record
from payments.services.ledger import ledger_post
from payments.services.outstanding import accounts_sync_outstanding
from payments.errors import ChargeNotFound  # noqa: F401 (raised here)

logger = logging.getLogger(__name__)
Status = Charge.Status


class Reason:
    """``Charge.failure_reason`` codes."""

    KYC_REQUIRED = "kyc_required"
    THREE_DS_NOT_COMPLETED = "three_ds_not_completed"
    ISSUER_DECLINED = "issuer_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    NOT_ENABLED_ONLINE = "not_enabled_online"
    NO_USABLE_METHOD = "no_usable_method"
    CREDIT_ACCOUNT = "credit_account"
    BILL_ALREADY_PAID = "bill_already_paid"


# The gateway's decline codes, as (reason, what the customer and staff read).
DECLINES = {
    "issuer_declined": (Reason.ISSUER_DECLINED, "The issuer declined the charge."),
    "insufficient_funds": (Reason.INSUFFICIENT_FUNDS, "The charge was declined for insufficient funds."),
    "not_enabled_online": (
        Reason.NOT_ENABLED_ONLINE,
        "The card is not enabled for online and international transactions.",
    ),
}


def charge_enqueue(charge_id: int) -> None:
    """Execute the charge in a worker once the transaction that created it commits."""
    enqueue_on_commit("payments.execute_charge", charge_id=charge_id)


def active_default_method(account_id: int) -> PaymentMethod | None:
    """HOLD-3: the account's default method if it is active, the only kind ever charged."""
    return PaymentMethod.objects.filter(
        account_id=account_id, is_default=True, status=PaymentMethod.Status.ACTIVE
    ).first()


def charge_create(*, bill: Bill, method: PaymentMethod | None, kind: str, attempt: int, now: datetime) -> Charge:
    """The pending charge of ``bill`` with its saved key; the same attempt twice is one row."""
    charge, _ = Charge.objects.get_or_create(
        idempotency_key=f"charge-{bill.pk}-{attempt}",
        defaults=dict(
            account_id=bill.account_id, bill=bill, payment_method=method, kind=kind,
            amount=bill.outstanding, currency=bill.currency, created_at=now,
        ),
    )
    return charge


# --- execution ---------------------------------------------------------------------------------


def _charge_refusal(charge: Charge) -> tuple[str, str, str] | None:
    """Why this charge must not reach the gateway at all, as (reason, rule, detail)."""
    account, method, bill = charge.account, charge.payment_method, charge.bill
    if account.credit_approved:
        return (
            Reason.CREDIT_ACCOUNT, "PAY-6",
            "Credit-approved accounts pay by bank transfer; their cards and PayPal are not charged automatically.",
        )
    if account.kyc_status in (Account.KycStatus.REQUIRED, Account.KycStatus.PENDING):
        return Reason.KYC_REQUIRED, "PAY-5", "KYC verification is required and not complete."
    if method is None or method.status != PaymentMethod.Status.ACTIVE or method.account_id != charge.account_id:
        state = "missing" if method is None else method.get_status_display().lower()
        return (
            Reason.NO_USABLE_METHOD, "HOLD-3",
            f"Only an active, verified method is charged; the method is {state}.",
        )
    if bill is not None and bill.status == Bill.Status.PAID:
        return Reason.BILL_ALREADY_PAID, "I5", "The bill was paid meanwhile; nothing was charged."
    return None


def _gateway_charge(charge: Charge) -> ChargeResult:
    method = charge.payment_method
    common = dict(
        amount=charge.amount,  # PAY-4: exactly what is owed, no fee on top
        currency=charge.currency,
        description=f"{charge.get_kind_display()} {charge.bill.reference if charge.bill else ''}".strip(),
        idempotency_key=charge.idempotency_key,
        customer_initiated=charge.kind == Charge.Kind.ORDER,
    )
    if method.kind == PaymentMethod.Kind.PAYPAL:
        return paypal_gateway().charge(agreement_id=method.agreement_id, **common)
    authentication = charge.authenticated_by.gateway_reference if charge.authenticated_by_id else ""
    return card_gateway().charge(token=method.gateway_token, three_ds_authentication=authentication, **common)


def charge_execute(*, charge_id: int, now: datetime) -> Charge:
    """Run one pending charge at the gateway and record its outcome, exactly once.

    Must be called outside a transaction (the gateway call holds no lock). Safe to call twice or
    concurrently: the saved key makes the processor charge once, and only the conditional update
    that wins records the outcome and posts to the ledger. A charge that is not pending is
    returned as it is, with no gateway call.
    """
    try:
        charge = Charge.objects.select_related("account", "payment_method", "bill", "authenticated_by").get(pk=charge_id)
    except Charge.DoesNotExist:
        raise ChargeNotFound() from None
    if charge.status != Status.PENDING:
        return charge
    if charge.kind == Charge.Kind.PAYPAL_PREAUTH:
        _preauth_execute(charge, now=now)
    else:
        _charge_run(charge, now=now)
    charge.refresh_from_db()
    return charge


def _charge_run(charge: Charge, *, now: datetime) -> None:
    # The refusals apply only before the first send. Once a charge went to the gateway, its
    # answer may have been lost with the money taken: a retry must replay the saved key and
    # record what the processor says (PAY-5, I2), even if the bill was paid meanwhile
    # (_charge_succeed then pays only what is still owed and leaves the rest on the balance).
    if charge.attempts == 0:
        refusal = _charge_refusal(charge)
        if refusal:
            _charge_fail(charge, *refusal, now)
            return
    Charge.objects.filter(pk=charge.pk, status=Status.PENDING).update(attempts=F("attempts") + 1)
    try:
        result = _gateway_charge(charge)
    except GatewayError as error:
        _charge_gateway_error(charge, error)
        return
    if result.succeeded:
        _charge_succeed(charge, gateway_reference=result.gateway_reference, now=now)
    elif result.requires_3ds:
        _charge_ask_for_3ds(charge, authentication_id=result.authentication_id, now=now)
    else:
        reason, detail = DECLINES.get(result.decline_code, DECLINES["issuer_declined"])
        _charge_fail(charge, reason, "PAY-5", detail, now)


def _charge_ask_for_3ds(charge: Charge, *, authentication_id: str, now: datetime) -> None:
    """PAY-1 / PAY-5: the risk check asked for 3DS; nothing was charged. The charge fails and the
    challenge the console shows the cardholder is opened with it, atomically: whoever records
    the outcome opens the one challenge (the one-to-one makes a second impossible)."""
    expires_at = now + settings.VERIFICATION_TIMEOUT
    with transaction.atomic():
        failed = _charge_fail(
            charge, Reason.THREE_DS_NOT_COMPLETED, "PAY-5",
            "The risk check asked for 3-D Secure for this order; nothing was charged. The bill is "
            f"charged again once the cardholder completes the challenge (until {expires_at:%Y-%m-%d %H:%M} UTC).",
            now,
        )
        if failed:
            challenge = ThreeDSChallenge.objects.create(
                payment_method_id=charge.payment_method_id, charge=charge, trigger=ThreeDSChallenge.Trigger.RISK,
                gateway_reference=authentication_id[:64], created_at=now, expires_at=expires_at,
            )
            three_ds_waiting_notify(challenge=challenge, now=now)  # NOTIFY-1, same transaction


def _charge_gateway_error(charge: Charge, error: Exception) -> None:
    logger.warning("Charge %s: gateway error (%s); it stays pending and is retried with its key.", charge.pk, error)
    Charge.objects.filter(pk=charge.pk, status=Status.PENDING).update(
        failure_detail=f"Gateway unavailable, will be retried with the same key: {error}"[:300]
    )


@transaction.atomic
def _charge_fail(charge: Charge, reason: str, rule: str, detail: str, now: datetime) -> bool:
    """pending -> failed (conditional); the bill stays open (PAY-5). The customer is told, once
    (NOTIFY-1; a 3-D Secure demand has its own message)."""
    failed = bool(
        Charge.objects.filter(pk=charge.pk, status=Status.PENDING).update(
            status=Status.FAILED, failure_reason=reason, failure_rule=rule,
            failure_detail=detail[:300], completed_at=now,
        )
    )
    if failed:
        charge_failed_notify(charge_id=charge.pk, now=now)
    return failed


def _charge_mark_succeeded(charge: Charge, gateway_reference: str, now: datetime) -> bool:
    return bool(
        Charge.objects.filter(pk=charge.pk, status=Status.PENDING).update(
            status=Status.SUCCEEDED, gateway_reference=gateway_reference[:64], failure_detail="", completed_at=now
        )
    )


def _charge_succeed(charge: Charge, *, gateway_reference: str, now: datetime) -> None:
    """One transaction: the charge succeeds, the money is credited, and its bill is paid with it."""
    with transaction.atomic():
        # The account first, then the bill: the order ledger_post and settlement lock them in.
        Account.objects.select_for_update().only("pk").get(pk=charge.account_id)
        if not _charge_mark_succeeded(charge, gateway_reference, now):
            return  # another worker recorded this charge's outcome first
        ledger_post(
            account_id=charge.account_id, amount=charge.amount, currency=charge.currency,
            kind=LedgerEntry.Kind.CHARGE, reference=f"charge:{charge.pk}", now=now,
            memo=f"{charge.get_kind_display()} {gateway_reference}",
        )
        if charge.bill_id:
            _bill_pay_from_charge(charge, now=now)
            with connection.cursor() as cursor:  # DEL-3 flag, with the account locked
                accounts_sync_outstanding(cursor, account_ids=[charge.account_id])


def _bill_pay_from_charge(charge: Charge, *, now: datetime) -> None:
    bill = Bill.objects.select_for_update().get(pk=charge.bill_id)
    # Settlement may have paid part of the bill from the balance meanwhile: pay what is still
    # owed; any rest of the charge stays on the balance for the next bill (SET-2).
    pay = min(charge.amount, bill.outstanding)
    if pay <= 0:
        return
    ledger_post(
        account_id=bill.account_id, amount=-pay, currency=bill.currency, kind=LedgerEntry.Kind.BILL_PAYMENT,
        reference=f"bill-payment:{bill.pk}:charge:{charge.pk}", now=now, memo=f"Paid by charge {charge.pk}",
    )
    bill.amount_paid += pay
    if bill.amount_paid == bill.total:
        bill.status, bill.paid_at = Bill.Status.PAID, now
    elif bill.status != Bill.Status.OVERDUE:
        bill.status = Bill.Status.PARTIALLY_PAID
    bill.save(update_fields=["amount_paid", "status", "paid_at"])


def _preauth_execute(charge: Charge, *, now: datetime) -> None:
    method = charge.payment_method
    # Refused only before the first send: once sent, the answer may have been lost with the
    # authorization placed, so the saved key is replayed and the hold recorded (then released).
    unusable = method is None or method.status != PaymentMethod.Status.ACTIVE
    if method is None or (unusable and charge.attempts == 0):
        _charge_fail(charge, Reason.NO_USABLE_METHOD, "HOLD-3", "The PayPal method is no longer active.", now)
        return
    Charge.objects.filter(pk=charge.pk, status=Status.PENDING).update(attempts=F("attempts") + 1)
    try:
        auth = paypal_gateway().authorize_hold(
            agreement_id=method.agreement_id, amount=charge.amount, currency=charge.currency,
            descriptor=VerificationHold.DESCRIPTOR, idempotency_key=charge.idempotency_key,
        )
    except GatewayError as error:
        _charge_gateway_error(charge, error)
        return
    if not auth.approved:
        reason, detail = DECLINES.get(auth.decline_code, DECLINES["issuer_declined"])
        _charge_fail(charge, reason, "HOLD-4", f"PayPal pre-authorization: {detail}", now)
        return
    with transaction.atomic():
        if _charge_mark_succeeded(charge, auth.authorization_id, now):
            hold_record(
                method=method, authorization_id=auth.authorization_id, amount=charge.amount,
                currency=charge.currency, now=now,
            )


def bill_locked_for_new_charge(charge: Charge) -> Bill:
    """The bill of ``charge``, locked for adding another charge to it (a retry, a 3DS replay).

    The account is locked first, the order settlement and charge success use: inserting the new
    charge takes a key-share lock on the account row, which would wait on a settlement that
    holds the account and waits on this bill (a deadlock) if the bill were locked first. The
    bill lock makes the new charge's amount what the bill still owes.
    """
    Account.objects.select_for_update().only("pk").get(pk=charge.account_id)
    return Bill.objects.select_for_update().get(pk=charge.bill_id)
