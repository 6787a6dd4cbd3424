"""Orders (PAY-1, PAY-5, PAY-6, HOLD-3, CRED-3, CC-2): a subscription order becomes a bill charged
to the default method at once (``charge_execution``), or waits for a transfer on a credit account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction

from billing_backoffice.free_text import free_text_check
from payments.errors import AccountNotFound
from payments.models import Account, Bill, Charge, PaymentMethod
from payments.services.billing import (
    account_unpaid_total,
    bill_create,
    bill_tax,
    console_reference,
    currency_code,
    positive_amount,
)
from payments.services.charge_execution import Reason, active_default_method, charge_create, charge_execute
from payments.services.credit_control import credit_hold_refusal
from payments.errors import (  # noqa: F401 (raised here, importable from here)
    CreditLimitExceeded,
    InvalidOrderKind,
    OrderReferenceReused,
    OrderRefused,
)


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
            method = active_default_method(account.pk)
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
        charge = charge_create(bill=bill, method=method, kind=Charge.Kind.ORDER, attempt=1, now=now) if method else None
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
