"""Pay-as-you-go usage (PAY-2, I6) and the PayPal pre-authorization it starts (HOLD-4).

A usage record is accepted once per console reference; the threshold charge and the monthly bill
that collect it are ``scheduled_charging``'s and ``billing``'s. The pre-authorization is a
``paypal_preauth`` charge run by ``charge_execution`` from a task after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum

from billing_backoffice import money
from billing_backoffice.enqueue import enqueue_on_commit
from billing_backoffice.free_text import free_text_check
from payments.errors import AccountNotFound
from payments.models import Account, Charge, PaymentMethod, UsageRecord
from payments.services.billing import console_reference, currency_code, positive_amount, usage_period
from payments.services.charge_execution import active_default_method, charge_execute
from payments.services.holds import hold_amount_for
from payments.errors import UsageReferenceReused  # noqa: F401 (raised here)


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
    method = active_default_method(account_id)
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
