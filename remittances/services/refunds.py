"""Refunds of credited funds to the payer's bank account: RFD-1, RFD-3.

Flow: finance records a refund (amount, payer name, IBAN and BIC validated with schwifty, the
credited bank transaction it comes from where there is one, a reason) -> another finance staff
member approves it (four eyes; also a CheckConstraint), which debits the ledger once under the
reference ``refund:<id>`` -> the next run of ``payment_files_generate`` (the hourly beat task
``remittances.generate_payment_files``, or finance generating now) puts it into exactly one
pain.001 file -> the file is marked sent; if the bank reports the payment rejected (by hand, or a
reversed debit in a statement naming ``RFD-<id>``: ``reversals``), ``refund_return`` credits
the money back once (a reversing entry of the debit). A rejection moves no money.

Locks: refund row -> bank transaction row -> account row (``funds_out``), so two approvals of
refunds out of one credit queue on the transaction row and RFD-3 is checked on settled figures.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from billing_backoffice import money as money_checks
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import free_text_check
from billing_backoffice.permissions import staff_require
from payments.models import Account, LedgerEntry
from payments.services.ledger import ledger_post, ledger_reverse
from remittances.models import BankTransaction, RefundRequest, RemittanceAccount, refund_ledger_reference
from remittances.services.funds_out import (
    FourEyesViolation,
    RequestNotFound,
    check_limits,
    locked_source,
)
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    RefundInvalid,
    RefundStateError,
)

Status = RefundRequest.Status

PERM_REQUEST = "remittances.add_refundrequest"
PERM_APPROVE = "remittances.approve_refundrequest"
PERM_FILES = "remittances.send_paymentfile"


def payer_bank_account(*, iban: str, bic: str) -> tuple[str, str]:
    """RFD-1: the payer's IBAN and BIC, validated (checksum, country format, BIC structure)."""
    try:
        parsed_iban = IBAN(iban or "")
    except SchwiftyException:
        raise RefundInvalid("The payer's IBAN is not valid (check digits or format).") from None
    try:
        parsed_bic = BIC(bic or "")
    except SchwiftyException:
        raise RefundInvalid("The payer's BIC is not valid (8 or 11 characters: bank, country, location).") from None
    return parsed_iban.compact, str(parsed_bic.compact)


def _locked(refund_id: int) -> RefundRequest:
    refund = RefundRequest.objects.select_for_update().filter(pk=refund_id).first()
    if refund is None:
        raise RequestNotFound("No such refund request.")
    return refund


@transaction.atomic
def refund_request(
    *, account_id: int, amount, currency: str, payer_name: str, payer_iban: str, payer_bic: str,
    reason: str, actor, now: datetime, bank_transaction_id: int | None = None,
    debtor_account_id: int | None = None,
) -> RefundRequest:
    """RFD-1: finance records a refund; nothing moves until another finance member approves it.

    The debtor account (ours, the refund is paid from) is the bank transaction's receiving
    account, or ``debtor_account_id`` when the refund names no transaction. RFD-3 is checked
    here as a courtesy and again, under the locks, at approval.
    """
    staff_require(actor, permission=PERM_REQUEST, action="request refunds", rule="RFD-1", system_allowed=False)
    free_text_check(payer_name=payer_name, reason=reason)  # SEC-1, before anything is kept
    amount, currency = money_checks.money_validate(amount, currency)
    payer_name, reason = (payer_name or "").strip(), (reason or "").strip()
    if not payer_name:
        raise RefundInvalid("A refund needs the payer's name (the creditor of the payment).")
    if not reason:
        raise RefundInvalid("A refund needs a reason.")
    iban, bic = payer_bank_account(iban=payer_iban, bic=payer_bic)
    if not Account.objects.filter(pk=account_id).exists():
        raise RefundInvalid("No such account.")
    txn = locked_source(bank_transaction_id, account_id=account_id, currency=currency)
    debtor_id = txn.receiving_account_id if txn is not None else debtor_account_id
    debtor = RemittanceAccount.objects.filter(pk=debtor_id).first() if debtor_id else None
    if debtor is None:
        raise RefundInvalid("Name the bank account the refund is paid from (or the bank transaction).")
    if debtor.currency != currency:
        raise RefundInvalid(f"The debtor account {debtor.number} holds {debtor.currency}, not {currency}.")
    check_limits(amount=amount, currency=currency, account_id=account_id, txn=txn)
    return RefundRequest.objects.create(
        account_id=account_id, bank_transaction=txn, debtor_account=debtor, amount=amount, currency=currency,
        payer_name=payer_name[:140], payer_iban=iban, payer_bic=bic, reason=reason, requested_by=actor,
        submitted_at=now,
    )


def _approval_checks(refund: RefundRequest, actor) -> None:
    """RFD-1 four eyes, the state, RFD-3 limits (locking the source and the account): raises.
    A payer return: its transfer still waits, uncredited, for it (``payer_return_source``)."""
    staff_require(actor, permission=PERM_APPROVE, action="approve refunds", rule="RFD-1", system_allowed=False)
    if refund.status != Status.SUBMITTED:
        raise RefundStateError(f"{refund} is {refund.get_status_display().lower()}.")
    if actor.pk == refund.requested_by_id:
        raise FourEyesViolation("You recorded this refund; another finance staff member must approve it.")
    if refund.kind == RefundRequest.Kind.PAYER_RETURN:
        payer_return_source(refund.bank_transaction_id, excluding=refund.pk)
        return
    txn = locked_source(refund.bank_transaction_id, account_id=refund.account_id, currency=refund.currency)
    check_limits(amount=refund.amount, currency=refund.currency, account_id=refund.account_id, txn=txn,
                 excluding_refund=refund.pk)


def refund_approval_refusal(*, refund_id: int, actor) -> BillingError | None:
    """What ``refund_approve`` would refuse now (RFD-1, RFD-3), or None: the same checks, in a
    transaction that writes nothing, for the admin's confirmation page."""
    try:
        with transaction.atomic():
            refund = _locked(refund_id)
            if refund.status in RefundRequest.DEBITED_STATUSES or refund.status == Status.RETURNED:
                return None  # a replay changes nothing
            _approval_checks(refund, actor)
    except BillingError as error:
        return error
    return None


@transaction.atomic
def refund_approve(*, refund_id: int, actor, now: datetime, note: str = "") -> RefundRequest:
    """RFD-1/RFD-3: another finance member approves; the ledger is debited once.

    A replay of an approval returns the refund unchanged. RFD-3 is checked under the locks
    (refund -> bank transaction -> account), so two approvals at once never take more than the
    credit, nor more than the balance left after what the account owes.
    """
    free_text_check(note=note)
    refund = _locked(refund_id)
    if refund.status in RefundRequest.DEBITED_STATUSES or refund.status == Status.RETURNED:
        return refund  # a replay changes nothing
    _approval_checks(refund, actor)
    if refund.kind == RefundRequest.Kind.PAYER_RETURN:  # never credited: no balance to debit
        return _decided(refund, actor, now=now, note=note, ledger_entry=None)
    posting = ledger_post(
        account_id=refund.account_id, amount=-refund.amount, currency=refund.currency,
        kind=LedgerEntry.Kind.REFUND, reference=refund_ledger_reference(refund.pk), now=now, actor=actor,
        memo=f"Refund #{refund.pk} to {refund.payer_iban}",
    )
    return _decided(refund, actor, now=now, note=note, ledger_entry=posting.entry)


def _decided(refund: RefundRequest, actor, *, now: datetime, note: str, ledger_entry) -> RefundRequest:
    refund.status = Status.APPROVED
    refund.ledger_entry = ledger_entry
    refund.decided_by = actor
    refund.decided_at = now
    refund.decision_note = (note or "").strip()
    refund.save(update_fields=["status", "ledger_entry", "decided_by", "decided_at", "decision_note"])
    return refund


def payer_return_source(txn_id: int, *, excluding: int | None = None) -> BankTransaction:
    """The bank transaction a payer return pays back, locked: a credit the back office could not
    take because it is not in the receiving account's currency, still waiting (``review``), with
    no other payer return under way. Raises ``RefundInvalid`` otherwise."""
    txn = BankTransaction.objects.select_for_update().select_related("receiving_account").filter(pk=txn_id).first()
    if txn is None:
        raise RefundInvalid("No such bank transaction.")
    if (txn.status != BankTransaction.Status.REVIEW or txn.entry_kind != BankTransaction.EntryKind.CREDIT
            or txn.currency == txn.receiving_account.currency):
        raise RefundInvalid(
            f"Bank transaction #{txn.pk} is {txn.get_status_display().lower()}; only a credit in another currency "
            "than its receiving account's, waiting for review, is returned to the payer whole."
        )
    live = RefundRequest.objects.filter(bank_transaction_id=txn.pk, kind=RefundRequest.Kind.PAYER_RETURN).exclude(
        status__in=(Status.REJECTED, Status.RETURNED)).exclude(pk=excluding)
    if live.exists():
        raise RefundInvalid(f"Bank transaction #{txn.pk} already has a payer return under way.")
    return txn


@transaction.atomic
def refund_reject(*, refund_id: int, actor, reason: str, now: datetime) -> RefundRequest:
    """RFD-1: another finance member rejects a submitted refund, with a reason; no money moves."""
    free_text_check(reason=reason)
    reason = (reason or "").strip()
    refund = _locked(refund_id)
    if refund.status == Status.REJECTED:
        return refund
    staff_require(actor, permission=PERM_APPROVE, action="reject refunds", rule="RFD-1", system_allowed=False)
    if refund.status != Status.SUBMITTED:
        raise RefundStateError(f"Refund #{refund.pk} is {refund.get_status_display().lower()}; it cannot be rejected.")
    if not reason:
        raise RefundInvalid("A rejection needs a reason.")
    if actor.pk == refund.requested_by_id:
        raise FourEyesViolation("You recorded this refund; another finance staff member must decide it.")
    refund.status = Status.REJECTED
    refund.decided_by = actor
    refund.decided_at = now
    refund.decision_note = reason
    refund.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    return refund


@transaction.atomic
def refund_return(*, refund_id: int, actor, reason: str, now: datetime) -> RefundRequest:
    """The bank reported the payment rejected: the money goes back to the balance, once.

    From ``in_file`` or ``sent`` only. A bank transaction the refund had paid back in full
    (``refunded``) is ``credited`` again: its money is on the balance again. The credit back is a reversing entry of the refund's
    debit (``reversal:refund:<id>``; the ledger's unique reference and one-to-one ``reverses``
    make a second return impossible).
    """
    staff_require(actor, permission=PERM_FILES, action="record returned payments", rule="RFD-1")
    free_text_check(reason=reason)
    refund = _locked(refund_id)
    if refund.status == Status.RETURNED:
        return refund
    if refund.status not in (Status.IN_FILE, Status.SENT):
        raise RefundStateError(f"Refund #{refund.pk} is {refund.get_status_display().lower()}; only a payment in a file is returned.")
    if refund.kind == RefundRequest.Kind.PAYER_RETURN:
        # Nothing was ever credited: the transfer waits for review again (the payment came back).
        BankTransaction.objects.filter(
            pk=refund.bank_transaction_id, status=BankTransaction.Status.RETURNED
        ).update(status=BankTransaction.Status.REVIEW)
        refund.status = Status.RETURNED
        refund.return_reason = (reason or "").strip()[:300]
        refund.returned_at = now
        refund.save(update_fields=["status", "return_reason", "returned_at"])
        return refund
    # The transaction it paid back is credited again (its lock before the account's, funds_out).
    BankTransaction.objects.filter(
        pk=refund.bank_transaction_id, status=BankTransaction.Status.REFUNDED
    ).update(status=BankTransaction.Status.CREDITED)
    posting = ledger_reverse(
        entry_id=refund.ledger_entry_id, now=now, actor=actor, memo=f"Refund #{refund.pk} returned by the bank"
    )
    refund.status = Status.RETURNED
    refund.return_entry = posting.entry
    refund.return_reason = (reason or "").strip()[:300]
    refund.returned_at = now
    refund.save(update_fields=["status", "return_entry", "return_reason", "returned_at"])
    return refund
