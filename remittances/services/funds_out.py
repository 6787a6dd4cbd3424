"""RFD-3: how much of a bank transaction's credit, and of an account's balance, may still leave.

Shared by refunds (RFD-1) and transfers between accounts (RFD-2). The callers hold the locks
that make these figures stable until they commit, always in this order:

    refund / transfer row  ->  bank transaction row  ->  account rows (by pk)

The bank transaction row lock serialises every refund and transfer out of one credit; the
account row lock (also taken by ``ledger_post``) serialises everything that moves the balance.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum

from payments.models import Account
from payments.services.billing import account_unpaid_total
from payments.services.ledger import account_balance
from remittances.models import BankTransaction, FundsTransfer, RefundRequest
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    ExceedsAvailableBalance,
    ExceedsTransactionCredit,
    FundsOutFourEyesViolation as FourEyesViolation,
    RequestNotFound,
    SourceNotCredited,
)

ZERO = Decimal("0.00")


def transaction_remaining(txn: BankTransaction, *, excluding_refund: int | None = None,
                          excluding_transfer: int | None = None) -> Decimal:
    """RFD-3: the transaction's credit less what was already refunded or moved out of it."""
    refunded = (
        RefundRequest.objects.filter(bank_transaction_id=txn.pk, status__in=RefundRequest.DEBITED_STATUSES)
        .exclude(pk=excluding_refund).aggregate(s=Sum("amount"))["s"] or ZERO
    )
    moved = (
        FundsTransfer.objects.filter(bank_transaction_id=txn.pk, status=FundsTransfer.Status.APPROVED)
        .exclude(pk=excluding_transfer).aggregate(s=Sum("amount"))["s"] or ZERO
    )
    return txn.amount - refunded - moved


def account_available(*, account_id: int, currency: str) -> Decimal:
    """RFD-3: the balance left after what the account owes on its unpaid bills."""
    return account_balance(account_id=account_id, currency=currency) - account_unpaid_total(
        account_id=account_id, currency=currency
    )


def locked_source(txn_id: int | None, *, account_id: int, currency: str) -> BankTransaction | None:
    """Lock the bank transaction money leaves from (None: none named) and check it fits."""
    if txn_id is None:
        return None
    txn = BankTransaction.objects.select_for_update().filter(pk=txn_id).first()
    if txn is None:
        raise SourceNotCredited("No such bank transaction.")
    if txn.status != BankTransaction.Status.CREDITED or txn.account_id != account_id:
        raise SourceNotCredited(
            f"Bank transaction #{txn.pk} is {txn.get_status_display().lower()}"
            + ("" if txn.account_id == account_id else ", not credited to this account")
            + "; only its credited money can leave."
        )
    if txn.currency != currency:
        raise SourceNotCredited(f"Bank transaction #{txn.pk} is in {txn.currency}, not {currency}.")
    return txn


def check_limits(*, amount: Decimal, currency: str, account_id: int, txn: BankTransaction | None,
                 excluding_refund: int | None = None, excluding_transfer: int | None = None) -> None:
    """RFD-3 under the locks the caller holds (transaction row, then the account row here)."""
    if txn is not None:
        remaining = transaction_remaining(txn, excluding_refund=excluding_refund, excluding_transfer=excluding_transfer)
        if amount > remaining:
            raise ExceedsTransactionCredit(
                f"{amount} {currency} is more than the {remaining} {currency} left of bank transaction "
                f"#{txn.pk} ({txn.amount} credited, less what was already refunded or moved)."
            )
    Account.objects.select_for_update().filter(pk=account_id).first()
    available = account_available(account_id=account_id, currency=currency)
    if amount > available:
        raise ExceedsAvailableBalance(
            f"{amount} {currency} is more than the {available} {currency} the account has left after what it owes."
        )
