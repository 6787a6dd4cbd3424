"""The staff steps on a claim that has its transfer: review (CLM-1), approve (CLM-1..3, the one
credit), reject (CLM-4). Who may take which step is ``remittances.claim_steps``; every function
here locks claim -> transaction -> account (the last in ``ledger_post``)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing_backoffice.free_text import free_text_check
from payments.models import LedgerEntry
from payments.services.customer_events import claim_decided_notify
from payments.services.ledger import ReferenceReused, ledger_post
from payments.services.settlement import settlement_request
from remittances.claim_steps import involvement, step_permissions
from remittances.models import BankTransaction, RemittanceClaim, bank_transaction_ledger_reference
from remittances.services.claims.access import locked_claim, locked_transaction, require_perm
from remittances.services.claims.errors import (
    AlreadyCredited,
    ClaimInvalid,
    ClaimStateError,
    FourEyesViolation,
    TransactionNotClaimable,
)

Status = RemittanceClaim.Status
TxnStatus = BankTransaction.Status


@transaction.atomic
def claim_review(*, claim_id: int, actor, note: str = "", now: datetime) -> RemittanceClaim:
    """CLM-1: the account manager confirms the evidence belongs to the customer.

    ``submitted -> reviewed``; needs ``review_remittanceclaim`` and an attached transaction. The
    reviewer may be the initiator (CLM-3 only keeps both of them from approving).
    Locks claim -> transaction.
    """
    free_text_check(note=note)  # SEC-1
    claim = locked_claim(claim_id)
    require_perm(actor, *step_permissions("review", claim), action="review")
    if claim.status != Status.SUBMITTED:
        raise ClaimStateError(
            f"Claim #{claim.pk} is {claim.get_status_display().lower()}; only a submitted claim is reviewed."
        )
    if claim.bank_transaction_id is None:
        raise ClaimStateError(
            f"Claim #{claim.pk} has no bank transaction yet; attach the transfer before reviewing.",
            code="claim_not_matched",
        )
    txn = locked_transaction(claim.bank_transaction_id)
    if txn.status != TxnStatus.CLAIMED or txn.account_id != claim.account_id:  # pragma: no cover - invariant
        raise TransactionNotClaimable(f"Bank transaction {txn.pk} is not held by this claim.")
    claim.status = Status.REVIEWED
    claim.reviewed_by = actor
    claim.reviewed_at = now
    claim.note = (note or "").strip()
    claim.save(update_fields=["status", "reviewed_by", "reviewed_at", "note"])
    return claim


def _already_credited(txn: BankTransaction) -> str:
    return f"Bank transaction {txn.pk} has already been credited; this claim cannot credit it again."


@transaction.atomic
def claim_approve(*, claim_id: int, actor, now: datetime) -> RemittanceClaim:
    """CLM-1..3: finance approves a reviewed claim; the ledger is credited exactly once.

    ``reviewed -> approved``; needs ``approve_remittanceclaim``; never by the initiator or the
    reviewer (CLM-3, also CheckConstraints). The credit is ``ledger_post`` with the transaction's
    one reference ``bank-txn:<id>`` for the transaction's amount and currency. If that reference
    is already in the ledger (credited by another path), the approval is refused (CLM-2) and
    nothing changes. A replay of an approval that happened returns the claim unchanged.
    Locks claim -> transaction -> account (in ``ledger_post``).
    """
    claim = locked_claim(claim_id)
    if claim.status == Status.APPROVED:
        return claim  # a replay changes nothing
    require_perm(actor, *step_permissions("approve", claim), action="approve")
    if claim.status != Status.REVIEWED:
        raise ClaimStateError(
            f"Claim #{claim.pk} is {claim.get_status_display().lower()}; only a reviewed claim is approved."
        )
    part = involvement(claim, actor)
    if part is not None:
        raise FourEyesViolation(f"You {part} this claim; another finance staff member must approve it.")
    txn = locked_transaction(claim.bank_transaction_id)
    reference = bank_transaction_ledger_reference(txn.pk)
    if (
        txn.status != TxnStatus.CLAIMED
        or txn.ledger_entry_id is not None
        or LedgerEntry.objects.filter(reference=reference).exists()
    ):
        raise AlreadyCredited(_already_credited(txn))
    try:
        posting = ledger_post(
            account_id=claim.account_id, amount=txn.amount, currency=txn.currency,
            kind=LedgerEntry.Kind.CLAIM_CREDIT, reference=reference, now=now, actor=actor,
            memo=f"Claim #{claim.pk}",
        )
    except ReferenceReused:
        posting = None
    if posting is None or not posting.created:
        # Another path posted this transaction between our check and our insert; raising rolls
        # back everything this call did (CLM-2: change nothing).
        raise AlreadyCredited(_already_credited(txn))
    txn.status = TxnStatus.CREDITED
    txn.account_id = claim.account_id
    txn.ledger_entry = posting.entry
    txn.credited_at = now
    txn.save(update_fields=["status", "account", "ledger_entry", "credited_at"])
    claim.status = Status.APPROVED
    claim.decided_by = actor
    claim.decided_at = now
    claim.save(update_fields=["status", "decided_by", "decided_at"])
    claim_decided_notify(  # NOTIFY-1, same transaction
        account_id=claim.account_id, claim_id=claim.pk, approved=True, amount=txn.amount, currency=txn.currency,
        reference=claim.bank_reference, note="The amount was credited to your account balance.", now=now,
    )
    settlement_request(account_id=claim.account_id)  # SET-2: pay open bills once this commits
    return claim


@transaction.atomic
def claim_reject(*, claim_id: int, actor, reason: str, now: datetime) -> RemittanceClaim:
    """CLM-4: reject a submitted or reviewed claim; credits nothing, frees the transaction.

    A submitted claim is rejected by the account manager (``review_remittanceclaim``) or finance
    (``approve_remittanceclaim``); a reviewed one by finance. The reason is required and recorded
    (before any review note). The decider is never the initiator or the reviewer (CLM-3: the
    database constraints cover every decision). The transaction goes back to ``unmatched`` and
    can be claimed again. Rejecting a rejected claim again returns it unchanged.
    Locks claim -> transaction.
    """
    free_text_check(reason=reason)  # SEC-1
    reason = (reason or "").strip()
    claim = locked_claim(claim_id)
    if claim.status == Status.REJECTED:
        return claim  # a replay changes nothing
    if claim.status == Status.APPROVED:
        raise ClaimStateError(f"Claim #{claim.pk} is approved; an approved claim is never rejected.")
    action = "reject reviewed" if claim.status == Status.REVIEWED else "reject"
    require_perm(actor, *step_permissions("reject", claim), action=action)
    if not reason:
        raise ClaimInvalid("A rejection needs a reason.", rule="CLM-4")
    part = involvement(claim, actor)
    if part is not None:
        raise FourEyesViolation(f"You {part} this claim; another staff member must decide it.")
    if claim.bank_transaction_id is not None:
        txn = locked_transaction(claim.bank_transaction_id)
        if txn.status == TxnStatus.CLAIMED:
            txn.status = TxnStatus.UNMATCHED
            txn.account = None
            txn.save(update_fields=["status", "account"])
    claim.status = Status.REJECTED
    claim.decided_by = actor
    claim.decided_at = now
    claim.note = f"{reason}\n\nReview note: {claim.note}" if claim.note else reason
    claim.save(update_fields=["status", "decided_by", "decided_at", "note"])
    claim_decided_notify(  # NOTIFY-1, same transaction
        account_id=claim.account_id, claim_id=claim.pk, approved=False, amount=claim.amount, currency=claim.currency,
        reference=claim.bank_reference or "-", note=f"Reason: {reason}", now=now,
    )
    return claim
