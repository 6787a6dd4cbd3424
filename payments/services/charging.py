"""Charging cards and PayPal: usage (PAY-2, HOLD-4), orders (PAY-1, CRED-3), threshold and
month-end charges (PAY-2, PAY-3), and how every charge is executed (PAY-4, PAY-5, PAY-6, HOLD-3).

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Sum

from billing_backoffice import money
from billing_backoffice.enqueue import enqueue_on_commit
from billing_backoffice.errors import BillingError, Conflict, NotFound
from billing_backoffice.free_text import free_text_check
from billing_backoffice.item_failures import NOT_ISOLATED, JobItems, skipped_ids_sql
from payments.errors import AccountNotFound
from payments.gateways import GatewayError, card_gateway, paypal_gateway
from payments.gateways.base import ChargeResult
from payments.models import (
    Account, Bill, Charge, LedgerEntry, PaymentMethod, ThreeDSChallenge, UsageRecord, VerificationHold,
)
from payments.services.billing import (
    MONTHLY_CHUNK_SIZE,
    account_unpaid_total,
    bill_create,
    bill_tax,
    console_reference,
    currency_code,
    period_bounds,
    positive_amount,
    usage_period,
)
from payments.services.credit_control import credit_hold_refusal
from payments.services.customer_events import charge_failed_notify, three_ds_waiting_notify
from payments.services.ledger import ledger_post
from payments.services.holds import hold_amount_for, hold_record
from payments.services.settlement import accounts_sync_outstanding

logger = logging.getLogger(__name__)
Status = Charge.Status

# PAY-2: thresholds are in USD before tax; usage in another currency is compared after this
# indicative conversion (units per USD). Currencies not listed are never charged at a threshold
# and go on the monthly bill (PAY-3). Override with settings.BILLING_THRESHOLD_USD_RATES.
CARD_THRESHOLD_USD = Decimal("1000.00")
THRESHOLD_USD_RATES = {"USD": "1", "EUR": "0.90", "GBP": "0.78", "JPY": "150", "MYR": "4.40"}

# charges_retry_failed: a pending charge younger than this may still be running in its task.
PENDING_GRACE = timedelta(minutes=10)
MAX_GATEWAY_ATTEMPTS = 10  # then the pending charge waits for staff (it may have been made)
FAILED_RETRY_AFTER = timedelta(days=1)
MAX_CHARGE_ATTEMPTS = 3  # charges per bill, the first one included
RETRY_BATCH_SIZE = 200


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


# Failures that may pass later without the customer doing anything we could wait for; never
# KYC (PAY-5), credit accounts (PAY-6) or 3DS (the customer must act).
RETRYABLE_REASONS = (Reason.INSUFFICIENT_FUNDS, Reason.ISSUER_DECLINED, Reason.NO_USABLE_METHOD)
DECLINES = {
    "issuer_declined": (Reason.ISSUER_DECLINED, "The issuer declined the charge."),
    "insufficient_funds": (Reason.INSUFFICIENT_FUNDS, "The charge was declined for insufficient funds."),
    "not_enabled_online": (
        Reason.NOT_ENABLED_ONLINE,
        "The card is not enabled for online and international transactions.",
    ),
}


class ChargeNotFound(NotFound):
    code = "charge_not_found"
    default_detail = "No such charge."


class UsageReferenceReused(Conflict):
    code = "usage_reference_reused"
    rule = "I2"


class OrderReferenceReused(Conflict):
    code = "order_reference_reused"
    rule = "I2"


class OrderRefused(BillingError):
    """The order is refused whole; nothing is created (PAY-5, HOLD-3, CRED-3)."""

    code = "order_refused"


class CreditLimitExceeded(OrderRefused):
    code = "credit_limit_exceeded"
    rule = "CRED-3"


class InvalidOrderKind(BillingError):
    code = "invalid_order_kind"
    rule = "PAY-1"


def charge_enqueue(charge_id: int) -> None:
    """Execute the charge in a worker once the transaction that created it commits."""
    enqueue_on_commit("payments.execute_charge", charge_id=charge_id)


def _active_default(account_id: int) -> PaymentMethod | None:
    """HOLD-3: the account's default method if it is active, the only kind ever charged."""
    return PaymentMethod.objects.filter(
        account_id=account_id, is_default=True, status=PaymentMethod.Status.ACTIVE
    ).first()


def _charge_create(*, bill: Bill, method: PaymentMethod | None, kind: str, attempt: int, now: datetime) -> Charge:
    """The pending charge of ``bill`` with its saved key; the same attempt twice is one row."""
    charge, _ = Charge.objects.get_or_create(
        idempotency_key=f"charge-{bill.pk}-{attempt}",
        defaults=dict(
            account_id=bill.account_id, bill=bill, payment_method=method, kind=kind,
            amount=bill.outstanding, currency=bill.currency, created_at=now,
        ),
    )
    return charge


# --- usage (PAY-2, HOLD-4) ---------------------------------------------------------------------


@dataclass(frozen=True)
class UsageResult:
    record: UsageRecord
    created: bool


def _usage_replay(record: UsageRecord, *, account_id, amount, currency, period) -> UsageResult:
    if (record.account_id, record.amount, record.currency, record.period) != (account_id, amount, currency, period):
        raise UsageReferenceReused(f"Usage {record.reference} was already reported with other figures.")
    return UsageResult(record, created=False)


def usage_record(*, account_id: int, amount, currency: str, period: str, reference: str, now: datetime) -> UsageResult:
    """PAY-2: record pay-as-you-go usage, once per console reference (I2).

    A replay with the same figures returns the first record; with other figures it is refused
    (409). The first usage of an account whose default is PayPal places the PayPal
    pre-authorization (HOLD-4) from a task, after the commit.

    I6: the amount has no more decimals than its currency (JPY: none), is at most
    ``money.MAX_AMOUNT``, and the account's unbilled usage in that currency stays at most
    ``money.COLUMN_MAX``: that sum becomes one threshold or monthly bill, whose columns hold no
    more (a poison record would otherwise stop every run of the threshold job). The account row
    is locked so that two reports at once cannot both pass the check. The period is within the
    usage window around ``now`` (``usage_period``); SEC-1: the reference is no card number.
    """
    currency = currency_code(currency)
    amount, period = positive_amount(amount, currency), usage_period(period, now=now)
    free_text_check(reference=reference)
    reference = console_reference(reference)
    figures = dict(account_id=account_id, amount=amount, currency=currency, period=period)
    existing = UsageRecord.objects.filter(reference=reference).first()
    if existing is not None:
        return _usage_replay(existing, **figures)
    if not Account.objects.filter(pk=account_id).exists():
        raise AccountNotFound()
    try:
        with transaction.atomic():
            _unbilled_usage_guard(account_id=account_id, currency=currency, amount=amount)
            record = UsageRecord.objects.create(reference=reference, reported_at=now, **figures)
            if _paypal_preauth_due(account_id):
                _preauth_enqueue(account_id)
    except IntegrityError:
        # The same usage reported twice at the same moment: the first insert won.
        return _usage_replay(UsageRecord.objects.get(reference=reference), **figures)
    return UsageResult(record, created=True)


def _unbilled_usage_guard(*, account_id: int, currency: str, amount: Decimal) -> None:
    """I6 / PAY-2: with the account locked, the unbilled usage plus ``amount`` fits one bill."""
    Account.objects.select_for_update(no_key=True).filter(pk=account_id).first()
    unbilled = UsageRecord.objects.filter(
        account_id=account_id, currency=currency, status=UsageRecord.Status.UNBILLED
    ).aggregate(total=Sum("amount"))["total"] or Decimal("0.00")
    money.accumulation_check(current=unbilled, adding=amount, what=f"The unbilled usage in {currency}")


def _preauth_key(account_id: int) -> str:
    return f"paypal-payg-preauth-{account_id}"


def _paypal_preauth_due(account_id: int) -> bool:
    """HOLD-4: a PayPal default, not credit-approved (PAY-6), and no pre-authorization yet."""
    return (
        PaymentMethod.objects.filter(
            account_id=account_id, is_default=True, status=PaymentMethod.Status.ACTIVE,
            kind=PaymentMethod.Kind.PAYPAL, account__credit_approved=False,
        ).exists()
        and not Charge.objects.filter(idempotency_key=_preauth_key(account_id)).exists()
    )


def _preauth_enqueue(account_id: int) -> None:
    enqueue_on_commit("payments.place_paypal_preauth", account_id=account_id)


def paypal_preauth_place(*, account_id: int, now: datetime) -> Charge | None:
    """HOLD-4: once per account, a PayPal pre-authorization when pay-as-you-go charges start.

    Recorded as a ``paypal_preauth`` charge (its unique key makes it once per account; it moves
    no money) and, when approved, a ``VerificationHold`` that the release job voids (HOLD-2).
    """
    account = Account.objects.get(pk=account_id)
    method = _active_default(account_id)
    if account.credit_approved or method is None or method.kind != PaymentMethod.Kind.PAYPAL:
        return None
    amount, currency = hold_amount_for(account)
    charge, _ = Charge.objects.get_or_create(
        idempotency_key=_preauth_key(account_id),
        defaults=dict(
            account=account, payment_method=method, kind=Charge.Kind.PAYPAL_PREAUTH,
            amount=amount, currency=currency, created_at=now,
        ),
    )
    return charge_execute(charge_id=charge.pk, now=now)


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


# --- orders (PAY-1, PAY-5, PAY-6, CRED-3) ------------------------------------------------------


@dataclass(frozen=True)
class OrderResult:
    bill: Bill
    charge: Charge | None
    created: bool


def _order_replay(bill: Bill, *, account_id, kind, amount, currency) -> OrderResult:
    if (bill.account_id, bill.order_kind, bill.amount_before_tax, bill.currency) != (account_id, kind, amount, currency):
        raise OrderReferenceReused(f"Order {bill.reference} was already placed with other figures.")
    return OrderResult(bill, bill.charges.order_by("-pk").first(), created=False)


def _credit_refusal(account: Account, *, amount: Decimal, currency: str) -> OrderRefused | None:
    """CRED-3: an order may not take the account's unpaid bills past its credit limit."""
    if currency != account.credit_currency:
        return CreditLimitExceeded(
            f"The credit limit is in {account.credit_currency}; an order in {currency} cannot be bought on it.",
            code="credit_currency_mismatch",
        )
    owed = account_unpaid_total(account_id=account.pk, currency=currency)
    total = amount + bill_tax(account=account, amount_before_tax=amount, currency=currency)
    if owed + total > account.credit_limit:
        return CreditLimitExceeded(
            f"The order of {total} {currency} would take the unpaid bills ({owed}) past the credit "
            f"limit of {account.credit_limit} {currency}."
        )
    return None


def order_place(*, account_id: int, kind: str, amount, currency: str, reference: str, now: datetime) -> OrderResult:
    """PAY-1: a subscription order becomes a bill charged to the default method at once.

    Idempotent by the console's reference (a replay returns the first bill and its charge).
    Credit-approved accounts are not charged (PAY-6): the bill waits for a bank transfer, and an
    order past the credit limit is refused (CRED-3). For other accounts, missing KYC (PAY-5) or
    no active default method (HOLD-3) refuses the order; a decline or a 3DS demand is recorded
    as a failed charge and leaves the bill open.
    """
    if kind not in Bill.OrderKind.values:
        raise InvalidOrderKind(f"{kind!r} is not an order kind (purchase, upgrade, renewal).")
    currency = currency_code(currency)
    amount = positive_amount(amount, currency)  # I6: JPY 0.01 is no order
    free_text_check(reference=reference)
    reference = console_reference(reference)
    figures = dict(account_id=account_id, kind=kind, amount=amount, currency=currency)
    bill_reference = f"order:{reference}"
    with transaction.atomic():
        try:
            # Serialises the orders of one account, which the credit-limit check needs (CRED-3).
            account = Account.objects.select_for_update(no_key=True).get(pk=account_id)
        except Account.DoesNotExist:
            raise AccountNotFound() from None
        existing = Bill.objects.filter(reference=bill_reference).first()
        if existing is not None:
            return _order_replay(existing, **figures)
        hold = credit_hold_refusal(account_id=account.pk)  # CC-2: usage is still accepted
        if hold:
            raise hold
        method = None
        if account.credit_approved:
            refusal = _credit_refusal(account, amount=amount, currency=currency)
        else:
            method = _active_default(account.pk)
            refusal = _order_refusal(account, method)
        if refusal:
            raise refusal
        try:
            bill = bill_create(
                account=account, kind=Bill.Kind.ORDER, order_kind=kind, reference=bill_reference,
                amount_before_tax=amount, currency=currency, now=now,
            )
        except IntegrityError:
            # Another account placed an order with this reference at the same moment.
            return _order_replay(Bill.objects.get(reference=bill_reference), **figures)
        charge = _charge_create(bill=bill, method=method, kind=Charge.Kind.ORDER, attempt=1, now=now) if method else None
    if charge is not None:
        charge = charge_execute(charge_id=charge.pk, now=now)
        bill.refresh_from_db()
    return OrderResult(bill, charge, created=True)


def _order_refusal(account: Account, method: PaymentMethod | None) -> OrderRefused | None:
    if account.kyc_status in (Account.KycStatus.REQUIRED, Account.KycStatus.PENDING):
        return OrderRefused(
            "KYC verification is required and not complete; the order cannot be charged.",
            rule="PAY-5", code=Reason.KYC_REQUIRED,
        )
    if method is None:
        return OrderRefused(
            "The account has no active default payment method to charge the order to.",
            rule="HOLD-3", code=Reason.NO_USABLE_METHOD,
        )
    return None


# --- charge execution (PAY-4, PAY-5, PAY-6, HOLD-3) --------------------------------------------


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


# --- threshold charges (PAY-2) -----------------------------------------------------------------


def _threshold_rates() -> dict[str, Decimal]:
    rates = getattr(settings, "BILLING_THRESHOLD_USD_RATES", THRESHOLD_USD_RATES)
    return {code: Decimal(str(rate)) for code, rate in rates.items()}


def usage_threshold(*, account: Account, method: PaymentMethod, currency: str) -> Decimal | None:
    """PAY-2: USD 1,000 for a card default, the account's own USD 8..500 for PayPal."""
    rate = _threshold_rates().get(currency)
    if rate is None:
        return None
    usd = CARD_THRESHOLD_USD if method.kind == PaymentMethod.Kind.CARD else account.paypal_charge_threshold
    return usd * rate


def _threshold_candidates() -> list[tuple[int, str]]:
    """One query: (account, currency) whose unbilled usage reached the threshold of its active
    default method, for accounts that are not credit-approved (PAY-6)."""
    usage, account, method = UsageRecord._meta.db_table, Account._meta.db_table, PaymentMethod._meta.db_table
    rates = _threshold_rates()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT u.account_id, u.currency
            FROM {usage} AS u
            JOIN {account} AS a ON a.id = u.account_id AND NOT a.credit_approved
            JOIN {method} AS pm ON pm.account_id = u.account_id AND pm.is_default AND pm.status = %(active)s
            JOIN unnest(%(codes)s::text[], %(rates)s::numeric[]) AS r(currency, rate) ON r.currency = u.currency
            WHERE u.status = %(unbilled)s
            GROUP BY u.account_id, u.currency, pm.kind, a.paypal_charge_threshold, r.rate
            HAVING SUM(u.amount) >= r.rate * CASE WHEN pm.kind = %(card)s THEN %(card_usd)s
                                                  ELSE a.paypal_charge_threshold END
            ORDER BY u.account_id, u.currency
            """,
            {
                "active": PaymentMethod.Status.ACTIVE, "unbilled": UsageRecord.Status.UNBILLED,
                "card": PaymentMethod.Kind.CARD, "card_usd": CARD_THRESHOLD_USD,
                "codes": list(rates), "rates": list(rates.values()),
            },
        )
        return [(row[0], row[1]) for row in cursor.fetchall()]


def usage_threshold_charge(*, account_id: int, currency: str, now: datetime) -> Charge | None:
    """PAY-2: charge the account's accumulated unbilled usage in ``currency`` if it reached the
    threshold: a ``usage_threshold`` bill, a pending ``threshold`` charge executed by a task after
    the commit, and the usage rows marked charged. None when nothing is due (or no active
    default method: the usage stays unbilled; or a credit account: never charged, PAY-6).

    The usage rows are locked in id order, like the month-end generation locks them, so the two
    never charge or bill a row twice and never deadlock.
    """
    with transaction.atomic():
        account = Account.objects.get(pk=account_id)
        method = _active_default(account_id)
        if account.credit_approved or method is None:
            return None
        threshold = usage_threshold(account=account, method=method, currency=currency)
        rows = list(
            UsageRecord.objects.select_for_update()
            .filter(account_id=account_id, currency=currency, status=UsageRecord.Status.UNBILLED)
            .order_by("pk")
            .values_list("pk", "amount")
        )
        total = sum((amount for _, amount in rows), Decimal("0.00"))
        if threshold is None or not rows or total < threshold:
            return None
        bill = bill_create(
            account=account, kind=Bill.Kind.USAGE_THRESHOLD, amount_before_tax=total, currency=currency,
            reference=f"usage-threshold:{account_id}:{currency}:{rows[0][0]}", now=now,
        )
        charge = _charge_create(bill=bill, method=method, kind=Charge.Kind.THRESHOLD, attempt=1, now=now)
        UsageRecord.objects.filter(pk__in=[pk for pk, _ in rows], status=UsageRecord.Status.UNBILLED).update(
            status=UsageRecord.Status.CHARGED, charge=charge, bill=bill
        )
        charge_enqueue(charge.pk)
    return charge


THRESHOLD_JOB = "payments.charge_usage_thresholds"


def threshold_charges_run(*, now: datetime) -> int:
    """PAY-2: the scheduled scan. One query finds the accounts due, then one service call each.
    Returns how many threshold charges were created.

    Each (account, currency) runs in its own savepoint: one that fails (usage whose total does not
    fit a bill) is recorded and retried by later runs, bounded, and the accounts after it are
    still charged (``billing_backoffice/item_failures.py``)."""
    candidates = _threshold_candidates()
    if not candidates:
        return 0
    items = JobItems(job=THRESHOLD_JOB, item_kind="payments.account", now=now)
    created = 0
    for account_id, currency in candidates:
        key = f"{account_id}:{currency}"
        if items.skips(key):
            continue
        outcome = items.run(
            key, lambda: usage_threshold_charge(account_id=account_id, currency=currency, now=now),
            object_id=account_id,
        )
        created += outcome.ok and outcome.value is not None
    return created


# --- month-end deduction (PAY-3) ---------------------------------------------------------------


DEDUCTION_JOB = "payments.month_end_deduction"


def _deduction_batch_sql(skipped_sql: str) -> str:
    # The month's unpaid monthly bills of accounts that are not credit-approved, in id order, but
    # bills whose deduction failed and waits for its retry (billing_backoffice/item_failures.py);
    # ``only`` narrows it to one bill (a failed batch is redone bill by bill).
    bill, account = Bill._meta.db_table, Account._meta.db_table
    return f"""
        SELECT b.id, b.account_id, b.total - b.amount_paid AS amount, b.currency
        FROM {bill} AS b JOIN {account} AS a ON a.id = b.account_id AND NOT a.credit_approved
        WHERE b.kind = %(monthly)s AND b.period_start = %(start)s AND b.status = ANY(%(unpaid)s)
          AND b.id > %(after)s AND (%(only)s::bigint IS NULL OR b.id = %(only)s::bigint)
          AND b.id NOT IN ({skipped_sql})
        ORDER BY b.id LIMIT %(size)s
    """


def _deduction_sql(skipped_sql: str) -> str:
    method, charge = PaymentMethod._meta.db_table, Charge._meta.db_table
    # A batch of bills, one first-attempt charge each (its key makes a rerun insert nothing). A
    # default that is not active gives a charge that fails at once (HOLD-3), so the admin shows
    # why nothing was taken.
    return f"""
        WITH batch AS ({_deduction_batch_sql(skipped_sql)}), inserted AS (
            INSERT INTO {charge} (
                account_id, bill_id, payment_method_id, kind, amount, currency, idempotency_key,
                gateway_reference, status, failure_reason, failure_rule, failure_detail, attempts,
                created_at, completed_at
            )
            SELECT batch.account_id, batch.id, pm.id, %(kind)s, batch.amount, batch.currency,
                   'charge-' || batch.id || '-1', '',
                   CASE WHEN pm.status = %(active)s THEN %(pending)s ELSE %(failed)s END,
                   CASE WHEN pm.status = %(active)s THEN '' ELSE %(no_method)s END,
                   CASE WHEN pm.status = %(active)s THEN '' ELSE 'HOLD-3' END,
                   CASE WHEN pm.status = %(active)s THEN '' ELSE %(no_method_detail)s END,
                   0, %(now)s,
                   CASE WHEN pm.status = %(active)s THEN NULL ELSE %(now)s END
            FROM batch LEFT JOIN {method} AS pm ON pm.account_id = batch.account_id AND pm.is_default
            ORDER BY batch.id
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id, status
        )
        SELECT (SELECT MAX(id) FROM batch),
               COALESCE((SELECT array_agg(id ORDER BY id) FROM inserted WHERE status = %(pending)s), '{{}}'),
               (SELECT COUNT(*) FROM inserted),
               COALESCE((SELECT array_agg(id) FROM batch), '{{}}')
    """


def month_end_deduction_run(*, period: str, now: datetime, batch_size: int = MONTHLY_CHUNK_SIZE) -> int:
    """PAY-3: after the monthly bills are generated, one charge per unpaid monthly bill of every
    account that is not credit-approved (PAY-6), to its default method, executed by tasks.

    Set-based: one statement per batch of bills. A rerun (or beat firing twice) creates nothing.
    A batch whose statement fails (a poison bill) is redone bill by bill: the poison one is
    recorded and retried by later runs, bounded (billing_backoffice/item_failures.py), the
    others are charged. Returns how many charges were created.
    """
    start, _ = period_bounds(period)
    items = JobItems(job=DEDUCTION_JOB, item_kind="payments.bill", now=now)
    skipped_sql, skipped_params = skipped_ids_sql(job=DEDUCTION_JOB, item_kind="payments.bill", now=now)
    params = {
        "monthly": Bill.Kind.MONTHLY, "start": start, "unpaid": list(Bill.UNPAID_STATUSES), "size": batch_size,
        "kind": Charge.Kind.MONTH_END, "active": PaymentMethod.Status.ACTIVE, "pending": Status.PENDING,
        "failed": Status.FAILED, "no_method": Reason.NO_USABLE_METHOD, "now": now, "only": None,
        "no_method_detail": "Only an active, verified method is charged; the account has no active default.",
        **skipped_params,
    }
    sql = _deduction_sql(skipped_sql)

    def deduct(batch_params) -> tuple[int | None, int, list[int]]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, batch_params)
            last, pending_ids, inserted, bill_ids = cursor.fetchone()
            for charge_id in pending_ids:
                charge_enqueue(charge_id)
        return last, inserted, bill_ids

    after, created = 0, 0
    while True:
        try:
            last, inserted, bill_ids = deduct({**params, "after": after})
        except NOT_ISOLATED:
            raise
        except Exception as error:  # noqa: BLE001  (a poison bill: found bill by bill below)
            logger.warning("PAY-3: a deduction batch after bill %s failed (%s); bill by bill", after,
                           type(error).__name__)
            last, inserted = _deduct_bill_by_bill(items, deduct, params, after=after, sql=skipped_sql)
        else:
            items.resolve(bill_ids)
        created += inserted
        if last is None:
            return created
        after = last


def _deduct_bill_by_bill(items: JobItems, deduct, params: dict, *, after: int, sql: str) -> tuple[int | None, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM ({_deduction_batch_sql(sql)}) AS batch", {**params, "after": after})
        bill_ids = [row[0] for row in cursor.fetchall()]
    inserted = 0
    for bill_id in bill_ids:
        outcome = items.run(bill_id, lambda: deduct({**params, "after": 0, "only": bill_id}))
        inserted += outcome.value[1] if outcome.ok else 0
    return (max(bill_ids) if bill_ids else None), inserted


# --- retries -----------------------------------------------------------------------------------


def bill_locked_for_new_charge(charge: Charge) -> Bill:
    """The bill of ``charge``, locked for adding another charge to it (a retry, a 3DS replay).

    The account is locked first, the order settlement and charge success use: inserting the new
    charge takes a key-share lock on the account row, which would wait on a settlement that
    holds the account and waits on this bill (a deadlock) if the bill were locked first. The
    bill lock makes the new charge's amount what the bill still owes.
    """
    Account.objects.select_for_update().only("pk").get(pk=charge.account_id)
    return Bill.objects.select_for_update().get(pk=charge.bill_id)


@dataclass(frozen=True)
class RetryReport:
    pending_retried: int
    failed_retried: int
    succeeded: int


def charge_retry(*, charge_id: int, now: datetime) -> Charge | None:
    """A new attempt for the bill of a failed charge, to the account's current active default
    (a new key: the failed attempt charged nothing). None when the bill needs no more attempts."""
    with transaction.atomic():
        failed = Charge.objects.select_related("bill").get(pk=charge_id)
        bill = bill_locked_for_new_charge(failed)
        attempts = bill.charges.count()
        if bill.status == Bill.Status.PAID or attempts >= MAX_CHARGE_ATTEMPTS or bill.charges.filter(pk__gt=failed.pk).exists():
            return None
        charge = _charge_create(
            bill=bill, method=_active_default(bill.account_id), kind=failed.kind, attempt=attempts + 1, now=now
        )
    return charge_execute(charge_id=charge.pk, now=now)


def charges_retry_failed(*, now: datetime, batch_size: int = RETRY_BATCH_SIZE) -> RetryReport:
    """Bounded retries, run on a schedule.

    1. Pending charges left by a gateway timeout or a lost task are run again with their SAME
       saved key, so the processor never charges twice (at most MAX_GATEWAY_ATTEMPTS times; a
       charge still pending after that waits for staff, since it may have been made).
    2. Bills whose last charge failed for a reason that may pass (insufficient funds, a decline,
       no usable method) get a new attempt a day later, at most MAX_CHARGE_ATTEMPTS per bill.
       KYC (PAY-5), credit accounts (PAY-6) and 3DS are never retried automatically.
    """
    pending = list(
        Charge.objects.filter(status=Status.PENDING, created_at__lte=now - PENDING_GRACE, attempts__lt=MAX_GATEWAY_ATTEMPTS)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    succeeded = 0
    for charge_id in pending:
        succeeded += charge_execute(charge_id=charge_id, now=now).status == Status.SUCCEEDED
    newer = Charge.objects.filter(bill_id=OuterRef("bill_id"), pk__gt=OuterRef("pk"))
    retryable = list(
        Charge.objects.filter(
            status=Status.FAILED, failure_reason__in=RETRYABLE_REASONS, completed_at__lte=now - FAILED_RETRY_AFTER,
            bill__status__in=Bill.UNPAID_STATUSES, account__credit_approved=False,
        )
        .exclude(kind=Charge.Kind.PAYPAL_PREAUTH)
        .filter(~Exists(newer))
        .annotate(bill_attempts=Count("bill__charges"))
        .filter(bill_attempts__lt=MAX_CHARGE_ATTEMPTS)
        .order_by("completed_at", "pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    retried = 0
    for charge_id in retryable:
        charge = charge_retry(charge_id=charge_id, now=now)
        retried += charge is not None
        succeeded += charge is not None and charge.status == Status.SUCCEEDED
    return RetryReport(pending_retried=len(pending), failed_retried=retried, succeeded=succeeded)


__all__ = [
    "ChargeNotFound", "CreditLimitExceeded", "InvalidOrderKind", "OrderReferenceReused", "OrderRefused",
    "OrderResult", "Reason", "RetryReport", "UsageReferenceReused", "UsageResult", "bill_locked_for_new_charge",
    "charge_enqueue",
    "charge_execute", "charge_retry", "charges_retry_failed", "month_end_deduction_run", "order_place",
    "paypal_preauth_place", "threshold_charges_run", "usage_record", "usage_threshold", "usage_threshold_charge",
]
