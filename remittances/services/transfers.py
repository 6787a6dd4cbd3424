"""Transfers of credited funds between cloud accounts: RFD-2, RFD-3.

Funds credited to the wrong account are moved to the right one: an account manager initiates
the transfer (from, to, amount, the credited bank transaction where there is one, a reason);
finance approves it (four eyes: never the initiator; also a CheckConstraint), which posts one
debit on the source and one credit on the target, with the linked references
``transfer:<id>:out`` / ``transfer:<id>:in``, in one database transaction. The target's open
bills are then settled (SET-2). A rejection moves nothing.

Locks: transfer row -> bank transaction row -> account rows in pk order (the source is locked
by ``check_limits``, both again in pk order before posting), like every other money path.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing_backoffice import money as money_checks
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import free_text_check
from billing_backoffice.permissions import staff_require
from payments.models import Account, LedgerEntry
from payments.services.ledger import ledger_post
from payments.services.settlement import settlement_request
from remittances.models import FundsTransfer, transfer_ledger_references
from remittances.services.funds_out import FourEyesViolation, RequestNotFound, check_limits, locked_source
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    TransferInvalid,
    TransferStateError,
)

Status = FundsTransfer.Status

PERM_INITIATE = "remittances.add_fundstransfer"
PERM_APPROVE = "remittances.approve_fundstransfer"


def _locked(transfer_id: int) -> FundsTransfer:
    transfer = FundsTransfer.objects.select_for_update().filter(pk=transfer_id).first()
    if transfer is None:
        raise RequestNotFound("No such transfer.")
    return transfer


@transaction.atomic
def transfer_request(
    *, from_account_id: int, to_account_id: int, amount, currency: str, reason: str, actor, now: datetime,
    bank_transaction_id: int | None = None,
) -> FundsTransfer:
    """RFD-2: the account manager initiates a transfer; nothing moves until finance approves."""
    staff_require(actor, permission=PERM_INITIATE, action="initiate transfers between accounts", rule="RFD-2",
                  system_allowed=False)
    free_text_check(reason=reason)  # SEC-1
    amount, currency = money_checks.money_validate(amount, currency)
    reason = (reason or "").strip()
    if not reason:
        raise TransferInvalid("A transfer needs a reason (why the funds belong to the other account).")
    if from_account_id == to_account_id:
        raise TransferInvalid("A transfer moves funds between two different accounts.")
    if Account.objects.filter(pk__in=[from_account_id, to_account_id]).count() != 2:
        raise TransferInvalid("No such account.")
    txn = locked_source(bank_transaction_id, account_id=from_account_id, currency=currency)
    check_limits(amount=amount, currency=currency, account_id=from_account_id, txn=txn)
    return FundsTransfer.objects.create(
        from_account_id=from_account_id, to_account_id=to_account_id, bank_transaction=txn, amount=amount,
        currency=currency, reason=reason, requested_by=actor, submitted_at=now,
    )


def _approval_checks(transfer: FundsTransfer, actor) -> None:
    """RFD-2 four eyes, the state, RFD-3 limits (locking the source and both accounts): raises."""
    staff_require(actor, permission=PERM_APPROVE, action="approve transfers between accounts", rule="RFD-2",
                  system_allowed=False)
    if transfer.status != Status.SUBMITTED:
        raise TransferStateError(f"Transfer #{transfer.pk} is {transfer.get_status_display().lower()}.")
    if actor.pk == transfer.requested_by_id:
        raise FourEyesViolation("You initiated this transfer; finance must approve it.", rule="RFD-2")
    txn = locked_source(transfer.bank_transaction_id, account_id=transfer.from_account_id, currency=transfer.currency)
    # Both accounts locked in pk order before the balance is read: no deadlock with a transfer
    # the other way round, and the source's balance cannot move under the check.
    list(Account.objects.select_for_update().filter(
        pk__in=[transfer.from_account_id, transfer.to_account_id]).order_by("pk").values_list("pk", flat=True))
    check_limits(amount=transfer.amount, currency=transfer.currency, account_id=transfer.from_account_id, txn=txn,
                 excluding_transfer=transfer.pk)


def transfer_approval_refusal(*, transfer_id: int, actor) -> BillingError | None:
    """What ``transfer_approve`` would refuse now (RFD-2, RFD-3), or None; writes nothing."""
    try:
        with transaction.atomic():
            transfer = _locked(transfer_id)
            if transfer.status == Status.APPROVED:
                return None  # a replay changes nothing
            _approval_checks(transfer, actor)
    except BillingError as error:
        return error
    return None


@transaction.atomic
def transfer_approve(*, transfer_id: int, actor, now: datetime, note: str = "") -> FundsTransfer:
    """RFD-2/RFD-3: finance approves; one debit and one credit, linked, in this transaction."""
    free_text_check(note=note)
    transfer = _locked(transfer_id)
    if transfer.status == Status.APPROVED:
        return transfer  # a replay changes nothing
    _approval_checks(transfer, actor)
    out_ref, in_ref = transfer_ledger_references(transfer.pk)
    debit = ledger_post(
        account_id=transfer.from_account_id, amount=-transfer.amount, currency=transfer.currency,
        kind=LedgerEntry.Kind.ADJUSTMENT, reference=out_ref, now=now, actor=actor,
        memo=f"Transfer #{transfer.pk} to account {transfer.to_account_id} ({in_ref})",
    )
    credit = ledger_post(
        account_id=transfer.to_account_id, amount=transfer.amount, currency=transfer.currency,
        kind=LedgerEntry.Kind.ADJUSTMENT, reference=in_ref, now=now, actor=actor,
        memo=f"Transfer #{transfer.pk} from account {transfer.from_account_id} ({out_ref})",
    )
    transfer.status = Status.APPROVED
    transfer.debit_entry, transfer.credit_entry = debit.entry, credit.entry
    transfer.decided_by, transfer.decided_at = actor, now
    transfer.decision_note = (note or "").strip()
    transfer.save(update_fields=["status", "debit_entry", "credit_entry", "decided_by", "decided_at", "decision_note"])
    settlement_request(account_id=transfer.to_account_id)  # SET-2: pay the target's open bills after commit
    return transfer


@transaction.atomic
def transfer_reject(*, transfer_id: int, actor, reason: str, now: datetime) -> FundsTransfer:
    """RFD-2: finance rejects a submitted transfer, with a reason; nothing moves."""
    free_text_check(reason=reason)
    reason = (reason or "").strip()
    transfer = _locked(transfer_id)
    if transfer.status == Status.REJECTED:
        return transfer
    staff_require(actor, permission=PERM_APPROVE, action="reject transfers between accounts", rule="RFD-2",
                  system_allowed=False)
    if transfer.status != Status.SUBMITTED:
        raise TransferStateError(f"Transfer #{transfer.pk} is {transfer.get_status_display().lower()}.")
    if not reason:
        raise TransferInvalid("A rejection needs a reason.")
    if actor.pk == transfer.requested_by_id:
        raise FourEyesViolation("You initiated this transfer; finance must decide it.", rule="RFD-2")
    transfer.status = Status.REJECTED
    transfer.decided_by, transfer.decided_at, transfer.decision_note = actor, now, reason
    transfer.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    return transfer
