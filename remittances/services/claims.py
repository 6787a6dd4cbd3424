"""Claims for transfers received on the shared (non-dedicated) account: CLM-1..4.

Flow (CLM-1): a transfer arrives on the shared account and stays ``unmatched`` (REM-2); a claim
for a cloud account is submitted by the console or initiated by the account manager; the
claim is attached to its bank transaction (at once, or later by ``claims_match_pending`` or
``claim_attach``), which becomes ``claimed``; the account manager reviews it; finance approves
it, which credits the ledger once and marks the transaction ``credited``. A rejection (CLM-4)
credits nothing, records the reason and puts the transaction back to ``unmatched``.

Lock order, the same in every function here, so that two staff members acting at once on one
claim (review or reject against approve, two approvals...) queue instead of deadlocking:

    claim row  ->  bank transaction row  ->  account row (taken by ``ledger_post``)

A function that starts from a transaction (``claim_submit`` with a transaction) holds no claim
lock: the claim it creates is new. The dedicated auto-credit (statements) locks transaction ->
account and never a claim, so it cannot close a cycle with these either.

CLM-2 rests on the database as well as on these checks: the conditional update
``unmatched -> claimed`` lets one claim at a time hold a transaction, a partial unique constraint
allows one live claim per transaction, and the ledger's unique reference
``bank-txn:<id>`` (shared with the dedicated auto-credit) lets the money in once.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime, timedelta
from typing import NamedTuple

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Concat

from billing_backoffice import money as money_checks
from billing_backoffice.errors import BillingError, Conflict, NotFound
from billing_backoffice.permissions import StaffPermissionDenied, staff_require
from billing_backoffice.free_text import free_text_check
from payments.errors import AccountNotFound
from payments.models import Account, LedgerEntry
from payments.services.ledger import InvalidAmount, ReferenceReused, ledger_post
from payments.services.settlement import settlement_request
from remittances.models import (
    BankTransaction,
    RemittanceAccount,
    RemittanceClaim,
    bank_transaction_ledger_reference,
)

Status = RemittanceClaim.Status
Source = RemittanceClaim.Source
TxnStatus = BankTransaction.Status

# Permission codenames (app label ``remittances``) checked here as well as in the admin (SEC-3).
PERM_INITIATE = "remittances.add_remittanceclaim"
PERM_REVIEW = "remittances.review_remittanceclaim"
PERM_APPROVE = "remittances.approve_remittanceclaim"

# Evidence the customer or the manager attaches: small scans or PDFs only.
PROOF_MAX_BYTES = 10 * 1024 * 1024
PROOF_TYPES = {  # content type -> (file extension, leading bytes of such a file)
    "application/pdf": (".pdf", (b"%PDF-",)),
    "image/png": (".png", (b"\x89PNG\r\n\x1a\n",)),
    "image/jpeg": (".jpg", (b"\xff\xd8\xff",)),
}


# --- errors ---------------------------------------------------------------------------------


class ClaimNotFound(NotFound):
    code = "claim_not_found"
    default_detail = "No such claim."


class BankTransactionNotFound(NotFound):
    code = "bank_transaction_not_found"
    default_detail = "No such bank transaction."


class ClaimInvalid(BillingError):
    """Malformed claim input (amount, currency, source, a missing reason...)."""

    code = "claim_invalid"
    http_status = 400


class ProofRejected(BillingError):
    code = "proof_rejected"
    http_status = 400
    default_detail = "The proof must be a PDF, PNG or JPEG file of at most 10 MB."


class ClaimMismatch(BillingError):
    """The claim does not describe the transaction it names (CLM-1: the transaction record found)."""

    code = "claim_mismatch"
    rule = "CLM-1"


class ClaimStateError(Conflict):
    """The claim is not in the status this step starts from (CLM-1 order of steps)."""

    code = "claim_state"
    rule = "CLM-1"


class TransactionNotClaimable(Conflict):
    """CLM-2: the transaction is already claimed or credited."""

    code = "transaction_not_claimable"
    rule = "CLM-2"


class AlreadyCredited(Conflict):
    """CLM-2: the transaction's money is already in the ledger; nothing is changed."""

    code = "already_credited"
    rule = "CLM-2"


class FourEyesViolation(BillingError):
    """CLM-3: whoever initiated or reviewed a claim never decides it."""

    code = "four_eyes"
    rule = "CLM-3"


# SEC-3: the one staff-permission error (billing_backoffice.permissions), under its old name.
ClaimPermissionDenied = StaffPermissionDenied


# --- small helpers ---------------------------------------------------------------------------


def _require_perm(actor, *perms: str, action: str) -> None:
    """SEC-3: ``actor`` holds at least one of ``perms``."""
    staff_require(actor, permission=perms, action=f"{action} remittance claims", system_allowed=False)


class ClaimAmountNotInCurrency(ClaimInvalid):
    """I6: more decimals than the currency has (JPY 0.01): a rule about the pair, not the shape."""

    code = "amount_not_in_currency"
    http_status = 422


def _claim_amount(amount, currency: str) -> object:
    """I6: > 0, at most ``money.MAX_AMOUNT``, no more decimals than the currency has (JPY: none)."""
    try:
        money_checks.amount_validate(amount)
    except InvalidAmount as error:
        raise ClaimInvalid(error.detail, rule="I6", code=error.code) from None
    try:
        return money_checks.amount_validate(amount, currency)
    except InvalidAmount as error:
        raise ClaimAmountNotInCurrency(error.detail, rule="I6") from None


def _currency(currency: str) -> str:
    """I6: an accepted ISO 4217 fiat code (``money.CURRENCIES``): no ``ZZZ``, no ``XAU``."""
    try:
        return money_checks.currency_validate(currency)
    except money_checks.InvalidCurrency as error:
        raise ClaimInvalid(error.detail, rule="I6", code=error.code) from None


# CLM-1: a transfer's value date is plausible: not before 2000, at most a few days ahead of the
# clock (a bank may give a value date one or two business days out, never more).
VALUE_DATE_EARLIEST = date(2000, 1, 1)
VALUE_DATE_DAYS_AHEAD = 5


class ValueDateImplausible(BillingError):
    code = "value_date_out_of_window"
    rule = "CLM-1"


def _value_date(value_date: date | None, *, now: datetime) -> date | None:
    if value_date is None:
        return None
    latest = now.date() + timedelta(days=VALUE_DATE_DAYS_AHEAD)
    if not VALUE_DATE_EARLIEST <= value_date <= latest:
        raise ValueDateImplausible(
            f"A transfer's value date is between {VALUE_DATE_EARLIEST} and {VALUE_DATE_DAYS_AHEAD} days "
            f"from today ({latest}), not {value_date}."
        )
    return value_date


def validate_proof(proof: UploadedFile) -> str:
    """The proof's file extension when it is a PDF/PNG/JPEG under the size limit, else refuse.

    The size is checked before anything is read; the declared content type must agree with the
    file's first bytes, so a renamed executable or HTML page is refused.
    """
    if proof.size is None or proof.size > PROOF_MAX_BYTES:
        raise ProofRejected(f"The proof is larger than {PROOF_MAX_BYTES // (1024 * 1024)} MB.")
    if proof.size == 0:
        raise ProofRejected("The proof file is empty.")
    declared = (getattr(proof, "content_type", "") or "").split(";")[0].strip().lower()
    if declared not in PROOF_TYPES:
        raise ProofRejected("The proof must be a PDF, PNG or JPEG file.")
    extension, signatures = PROOF_TYPES[declared]
    proof.seek(0)
    head = proof.read(16)
    proof.seek(0)
    if not head.startswith(signatures):
        raise ProofRejected(f"The proof's content is not a {declared} file.")
    return extension


def _locked_claim(claim_id: int) -> RemittanceClaim:
    try:
        return RemittanceClaim.objects.select_for_update().get(pk=claim_id)
    except RemittanceClaim.DoesNotExist:
        raise ClaimNotFound() from None


def _locked_transaction(txn_id: int) -> BankTransaction:
    try:
        return BankTransaction.objects.select_related("receiving_account").select_for_update(of=("self",)).get(
            pk=txn_id
        )
    except BankTransaction.DoesNotExist:
        raise BankTransactionNotFound() from None


def _check_claimable(txn: BankTransaction, *, amount, currency: str) -> None:
    """CLM-1/CLM-2: a booked credit on a shared account, unmatched, with the claim's figures."""
    if txn.receiving_account.kind != RemittanceAccount.Kind.NON_DEDICATED:
        raise ClaimMismatch(
            "Only transfers to the shared (non-dedicated) account are claimed; a dedicated account's "
            "transfers are credited automatically."
        )
    if txn.entry_kind != BankTransaction.EntryKind.CREDIT:
        raise ClaimMismatch("Only booked credits can be claimed.")
    if txn.status != TxnStatus.UNMATCHED:
        raise TransactionNotClaimable(
            f"Bank transaction {txn.pk} is {txn.get_status_display().lower()}; it can be claimed only while unmatched."
        )
    if txn.currency != currency:
        raise ClaimMismatch(f"The claim is in {currency} but the transaction is in {txn.currency}.")
    if txn.amount != amount:
        raise ClaimMismatch(
            f"The claim is for {amount} {currency} but the transaction is for {txn.amount} {txn.currency}."
        )


def _already_credited(txn: BankTransaction) -> str:
    return f"Bank transaction {txn.pk} has already been credited; this claim cannot credit it again."


def _take_transaction(txn_id: int, *, account_id: int) -> bool:
    """CLM-2: ``unmatched -> claimed`` as one conditional update; False when another claim won."""
    return (
        BankTransaction.objects.filter(pk=txn_id, status=TxnStatus.UNMATCHED).update(
            status=TxnStatus.CLAIMED, account_id=account_id
        )
        == 1
    )


def _candidate_transactions(*, account_id, amount, currency: str, bank_reference: str):
    """Unmatched credits on a shared account with exactly this reference, amount and currency.

    The customer knows their transfer by the reference they typed (end-to-end id) or the one the
    bank gave back; both are compared exactly, never by similarity (money follows this match).
    CLM-4: a transaction that a claim of this account was rejected for is never matched to the
    account automatically again (only a person can claim it for the account once more), so
    automatic matching never undoes a decision. ``account_id`` may be an ``OuterRef``.
    """
    rejected_here = RemittanceClaim.objects.filter(
        bank_transaction=OuterRef("pk"),
        status=Status.REJECTED,
        account_id=OuterRef(account_id) if isinstance(account_id, OuterRef) else account_id,
    )
    # A bank reference with "#" (or one that looks like a derived key) is stored as
    # "ref:<reference>" (statements._plain_key): compare with that form too.
    if isinstance(bank_reference, str):
        escaped = "ref:" + bank_reference
    else:
        escaped = Concat(Value("ref:"), bank_reference, output_field=CharField())
    return BankTransaction.objects.filter(
        Q(bank_reference=bank_reference) | Q(bank_reference=escaped) | Q(end_to_end_id=bank_reference),
        status=TxnStatus.UNMATCHED,
        entry_kind=BankTransaction.EntryKind.CREDIT,
        receiving_account__kind=RemittanceAccount.Kind.NON_DEDICATED,
        amount=amount,
        currency=currency,
    ).exclude(Exists(rejected_here))


def _match_one(*, account_id: int, amount, currency: str, bank_reference: str) -> int | None:
    """Take the single matching transaction, if there is exactly one; its id, or None.

    Two candidates (the same reference on two shared accounts) are left to a person.
    """
    if not bank_reference:
        return None
    ids = list(
        _candidate_transactions(account_id=account_id, amount=amount, currency=currency, bank_reference=bank_reference)
        .order_by("pk")
        .values_list("pk", flat=True)[:2]
    )
    if len(ids) != 1:
        return None
    return ids[0] if _take_transaction(ids[0], account_id=account_id) else None


def _store_proof(claim: RemittanceClaim, proof: UploadedFile | None, extension: str | None) -> None:
    if proof is None:
        return
    # A generated name: the client's file name is neither trusted nor guessable from outside.
    claim.proof.save(f"{uuid.uuid4().hex}{extension}", proof, save=False)


# --- services ------------------------------------------------------------------------------------


class ClaimSubmission(NamedTuple):
    claim: RemittanceClaim
    created: bool  # False: the same console claim had been filed before; this is that claim


def console_claim_key(
    *, account_id: int, amount, currency: str, value_date: date | None, bank_reference: str, payer_name: str
) -> str:
    """The idempotency key of a console claim: what the claim describes, normalised.

    A console client may retry a claim (or post it several times at once); the claim is the same
    when it is for the same account, amount, currency, value date, bank reference and payer.
    ``RemittanceClaim.idempotency_key`` is unique per account in the database.
    """
    parts = (
        str(account_id), f"{amount:.2f}", currency, value_date.isoformat() if value_date else "",
        " ".join(bank_reference.split()), " ".join(payer_name.split()).casefold(),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def claim_submit(**arguments) -> RemittanceClaim:
    """CLM-1: file a claim (see ``claim_submit_once``); the claim, new or the one filed before."""
    return claim_submit_once(**arguments).claim


@transaction.atomic
def claim_submit_once(
    *,
    account_id: int,
    amount,
    currency: str,
    value_date: date | None = None,
    payer_name: str = "",
    bank_reference: str = "",
    proof: UploadedFile | None = None,
    bank_transaction_id: int | None = None,
    source: str,
    initiated_by=None,
    now: datetime,
) -> ClaimSubmission:
    """CLM-1: a claim that a shared-account transfer belongs to ``account_id``.

    - ``source=console``: sent by the customer (``initiated_by`` None); matched at once to the one
      unmatched transaction with the same reference, amount and currency, else kept unattached
      until ``claims_match_pending`` or ``claim_attach`` finds its transaction. Idempotent: the
      same claim sent again (``console_claim_key``), even concurrently, returns the first one,
      whatever became of it (a rejected claim stays rejected, CLM-4), and changes nothing.
    - ``source=staff``: initiated by an account manager (``add_remittanceclaim``), usually from an
      unmatched transaction (``bank_transaction_id``), which must be unmatched, on a shared
      account, in the same currency and for the same amount.
    CLM-2: taking the transaction is a conditional update ``unmatched -> claimed``, so of two
    claims on one transaction exactly one gets it; the other is refused and leaves nothing.
    """
    if source == Source.CONSOLE:
        if initiated_by is not None:
            raise ClaimInvalid("A console claim has no staff initiator.")
    elif source == Source.STAFF:
        _require_perm(initiated_by, PERM_INITIATE, action="initiate")
    else:
        raise ClaimInvalid(f"Unknown claim source {source!r}.")
    currency = _currency(currency)
    amount = _claim_amount(amount, currency)
    value_date = _value_date(value_date, now=now)
    free_text_check(payer_name=payer_name, bank_reference=bank_reference)  # SEC-1, before anything is kept
    extension = validate_proof(proof) if proof is not None else None
    if not Account.objects.filter(pk=account_id).exists():
        raise AccountNotFound()
    payer_name = (payer_name or "").strip()[:140]
    bank_reference = (bank_reference or "").strip()[:200]

    key = None
    if source == Source.CONSOLE:
        key = console_claim_key(
            account_id=account_id, amount=amount, currency=currency, value_date=value_date,
            bank_reference=bank_reference, payer_name=payer_name,
        )
        earlier = RemittanceClaim.objects.filter(account_id=account_id, idempotency_key=key).first()
        if earlier is not None:
            return ClaimSubmission(earlier, False)

    try:
        # A savepoint: when a concurrent identical claim commits first, our insert fails on the
        # key and everything this call did (the transaction it took included) is undone.
        with transaction.atomic():
            claim = _file_claim(
                account_id=account_id, amount=amount, currency=currency, value_date=value_date,
                payer_name=payer_name, bank_reference=bank_reference, proof=proof, extension=extension,
                bank_transaction_id=bank_transaction_id, source=source, initiated_by=initiated_by, key=key, now=now,
            )
    except IntegrityError:
        earlier = key and RemittanceClaim.objects.filter(account_id=account_id, idempotency_key=key).first()
        if not earlier:
            raise
        return ClaimSubmission(earlier, False)
    return ClaimSubmission(claim, True)


def _file_claim(
    *, account_id, amount, currency, value_date, payer_name, bank_reference, proof, extension,
    bank_transaction_id, source, initiated_by, key, now,
) -> RemittanceClaim:
    txn_id = None
    if bank_transaction_id is not None:
        txn = _locked_transaction(bank_transaction_id)
        _check_claimable(txn, amount=amount, currency=currency)
        if not _take_transaction(txn.pk, account_id=account_id):  # pragma: no cover - we hold the lock
            raise TransactionNotClaimable(f"Bank transaction {txn.pk} was claimed meanwhile.")
        txn_id = txn.pk
        # The claim carries the transfer as the bank reported it, whatever the form said.
        value_date = value_date or txn.value_date
        payer_name = payer_name or txn.payer_name[:140]
        bank_reference = bank_reference or txn.bank_reference
    elif source == Source.CONSOLE:
        txn_id = _match_one(account_id=account_id, amount=amount, currency=currency, bank_reference=bank_reference)

    claim = RemittanceClaim(
        account_id=account_id,
        bank_transaction_id=txn_id,
        amount=amount,
        currency=currency,
        value_date=value_date,
        payer_name=payer_name,
        bank_reference=bank_reference,
        source=source,
        initiated_by=initiated_by if source == Source.STAFF else None,
        status=Status.SUBMITTED,
        idempotency_key=key,
        submitted_at=now,
    )
    _store_proof(claim, proof, extension)
    try:
        claim.save()
    except IntegrityError:
        if claim.proof:
            claim.proof.delete(save=False)  # the earlier claim keeps its own proof
        raise
    return claim


@transaction.atomic
def claim_attach(*, claim_id: int, bank_transaction_id: int, actor, now: datetime) -> RemittanceClaim:
    """CLM-1: the account manager finds the transaction of a claim that is still waiting for one.

    Same checks as a staff claim (unmatched, shared account, same amount and currency; CLM-2).
    Locks claim -> transaction.
    """
    claim = _locked_claim(claim_id)
    _require_perm(actor, PERM_REVIEW, action="attach transactions to")
    if claim.status != Status.SUBMITTED or claim.bank_transaction_id is not None:
        if claim.bank_transaction_id == bank_transaction_id and claim.status != Status.REJECTED:
            return claim  # a replay changes nothing
        raise ClaimStateError(f"Claim #{claim.pk} is not waiting for its transaction.")
    txn = _locked_transaction(bank_transaction_id)
    _check_claimable(txn, amount=claim.amount, currency=claim.currency)
    if not _take_transaction(txn.pk, account_id=claim.account_id):  # pragma: no cover - we hold the lock
        raise TransactionNotClaimable(f"Bank transaction {txn.pk} was claimed meanwhile.")
    claim.bank_transaction = txn
    claim.save(update_fields=["bank_transaction"])
    return claim


def claims_match_pending(*, now: datetime) -> int:
    """Attach waiting console claims to transactions that have arrived since (CLM-1).

    Called after each statement import (after its commit). A waiting claim is a submitted claim
    with no transaction and a reference; it is attached when exactly one unmatched shared-account
    credit has that reference, amount and currency. One short transaction per claim, locking
    claim -> transaction like every claim service; claims being worked on by someone else right
    now are skipped (``SKIP LOCKED``) and picked up by the next import. Returns how many were attached.
    """
    waiting = (
        RemittanceClaim.objects.filter(status=Status.SUBMITTED, bank_transaction__isnull=True)
        .exclude(bank_reference="")
        .filter(
            # Only claims that have a candidate at all: one query, not one per waiting claim.
            Exists(
                _candidate_transactions(
                    account_id=OuterRef("account_id"), amount=OuterRef("amount"), currency=OuterRef("currency"),
                    bank_reference=OuterRef("bank_reference"),
                )
            )
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    attached = 0
    for claim_id in list(waiting):
        with transaction.atomic():
            claim = (
                RemittanceClaim.objects.select_for_update(skip_locked=True)
                .filter(pk=claim_id, status=Status.SUBMITTED, bank_transaction__isnull=True)
                .first()
            )
            if claim is None:
                continue
            txn_id = _match_one(
                account_id=claim.account_id, amount=claim.amount, currency=claim.currency,
                bank_reference=claim.bank_reference,
            )
            if txn_id is None:
                continue
            claim.bank_transaction_id = txn_id
            claim.save(update_fields=["bank_transaction"])
            attached += 1
    return attached


@transaction.atomic
def claim_review(*, claim_id: int, actor, note: str = "", now: datetime) -> RemittanceClaim:
    """CLM-1: the account manager confirms the evidence belongs to the customer.

    ``submitted -> reviewed``; needs ``review_remittanceclaim`` and an attached transaction. The
    reviewer may be the initiator (CLM-3 only keeps both of them from approving).
    Locks claim -> transaction.
    """
    free_text_check(note=note)  # SEC-1
    claim = _locked_claim(claim_id)
    _require_perm(actor, PERM_REVIEW, action="review")
    if claim.status != Status.SUBMITTED:
        raise ClaimStateError(
            f"Claim #{claim.pk} is {claim.get_status_display().lower()}; only a submitted claim is reviewed."
        )
    if claim.bank_transaction_id is None:
        raise ClaimStateError(
            f"Claim #{claim.pk} has no bank transaction yet; attach the transfer before reviewing.",
            code="claim_not_matched",
        )
    txn = _locked_transaction(claim.bank_transaction_id)
    if txn.status != TxnStatus.CLAIMED or txn.account_id != claim.account_id:  # pragma: no cover - invariant
        raise TransactionNotClaimable(f"Bank transaction {txn.pk} is not held by this claim.")
    claim.status = Status.REVIEWED
    claim.reviewed_by = actor
    claim.reviewed_at = now
    claim.note = (note or "").strip()
    claim.save(update_fields=["status", "reviewed_by", "reviewed_at", "note"])
    return claim


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
    claim = _locked_claim(claim_id)
    if claim.status == Status.APPROVED:
        return claim  # a replay changes nothing
    _require_perm(actor, PERM_APPROVE, action="approve")
    if claim.status != Status.REVIEWED:
        raise ClaimStateError(
            f"Claim #{claim.pk} is {claim.get_status_display().lower()}; only a reviewed claim is approved."
        )
    if actor.pk == claim.initiated_by_id:
        raise FourEyesViolation("You initiated this claim; another finance staff member must approve it.")
    if actor.pk == claim.reviewed_by_id:
        raise FourEyesViolation("You reviewed this claim; another finance staff member must approve it.")
    txn = _locked_transaction(claim.bank_transaction_id)
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
    claim = _locked_claim(claim_id)
    if claim.status == Status.REJECTED:
        return claim  # a replay changes nothing
    if claim.status == Status.APPROVED:
        raise ClaimStateError(f"Claim #{claim.pk} is approved; an approved claim is never rejected.")
    if claim.status == Status.REVIEWED:
        _require_perm(actor, PERM_APPROVE, action="reject reviewed")
    else:
        _require_perm(actor, PERM_REVIEW, PERM_APPROVE, action="reject")
    if not reason:
        raise ClaimInvalid("A rejection needs a reason.", rule="CLM-4")
    if actor.pk == claim.initiated_by_id:
        raise FourEyesViolation("You initiated this claim; another staff member must decide it.")
    if actor.pk == claim.reviewed_by_id:
        raise FourEyesViolation("You reviewed this claim; another staff member must decide it.")
    if claim.bank_transaction_id is not None:
        txn = _locked_transaction(claim.bank_transaction_id)
        if txn.status == TxnStatus.CLAIMED:
            txn.status = TxnStatus.UNMATCHED
            txn.account = None
            txn.save(update_fields=["status", "account"])
    claim.status = Status.REJECTED
    claim.decided_by = actor
    claim.decided_at = now
    claim.note = f"{reason}\n\nReview note: {claim.note}" if claim.note else reason
    claim.save(update_fields=["status", "decided_by", "decided_at", "note"])
    return claim
