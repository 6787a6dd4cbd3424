"""Filing a claim and finding its transfer (CLM-1, CLM-2): ``claim_submit`` (console or staff),
``claim_attach`` (a person attaches the transfer), ``claims_match_pending`` (after each import).

CLM-2: taking a transaction is the conditional update ``unmatched -> claimed``, so of two claims
on one transaction exactly one gets it; a partial unique constraint allows one live claim per
transaction. Which transfers a claim may take is ``remittances.selectors``; a function that
starts from a transaction holds no claim lock (the claim it creates is new), else it locks
claim -> transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime
from typing import NamedTuple

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from billing_backoffice.free_text import free_text_check
from payments.errors import AccountNotFound
from payments.models import Account
from remittances.claim_steps import PERM_INITIATE, step_permissions
from remittances.models import BankTransaction, RemittanceAccount, RemittanceClaim
from remittances.selectors import claim_matching_transactions
from remittances.services.claims.access import locked_claim, locked_transaction, require_perm
from remittances.services.claims.errors import (
    ClaimInvalid,
    ClaimMismatch,
    ClaimStateError,
    TransactionNotClaimable,
)
from remittances.services.claims.inputs import (
    claim_amount_check,
    claim_currency_check,
    claim_value_date_check,
    validate_proof,
)

Status = RemittanceClaim.Status
Source = RemittanceClaim.Source
TxnStatus = BankTransaction.Status


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


def _take_transaction(txn_id: int, *, account_id: int) -> bool:
    """CLM-2: ``unmatched -> claimed`` as one conditional update; False when another claim won."""
    return (
        BankTransaction.objects.filter(pk=txn_id, status=TxnStatus.UNMATCHED).update(
            status=TxnStatus.CLAIMED, account_id=account_id
        )
        == 1
    )


def _match_one(*, account_id: int, amount, currency: str, bank_reference: str) -> int | None:
    """Take the single matching transaction, if there is exactly one; its id, or None.

    Two candidates (the same reference on two shared accounts) are left to a person.
    """
    if not bank_reference:
        return None
    ids = list(
        claim_matching_transactions(
            account_id=account_id, amount=amount, currency=currency, bank_reference=bank_reference
        )
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
    *, account_id: int, amount, currency: str, value_date: date | None = None, payer_name: str = "",
    bank_reference: str = "", proof: UploadedFile | None = None, bank_transaction_id: int | None = None,
    source: str, initiated_by=None, now: datetime,
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
    _check_source(source, initiated_by=initiated_by)
    currency = claim_currency_check(currency)
    amount = claim_amount_check(amount, currency)
    value_date = claim_value_date_check(value_date, now=now)
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
        earlier = _filed_before(account_id, key)
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
        earlier = key and _filed_before(account_id, key)
        if not earlier:
            raise
        return ClaimSubmission(earlier, False)
    return ClaimSubmission(claim, True)


def _filed_before(account_id: int, key: str) -> RemittanceClaim | None:
    return RemittanceClaim.objects.filter(account_id=account_id, idempotency_key=key).first()


def _check_source(source: str, *, initiated_by) -> None:
    """A console claim has no initiator; a staff claim's initiator may initiate claims (SEC-3)."""
    if source == Source.CONSOLE:
        if initiated_by is not None:
            raise ClaimInvalid("A console claim has no staff initiator.")
    elif source == Source.STAFF:
        require_perm(initiated_by, PERM_INITIATE, action="initiate")
    else:
        raise ClaimInvalid(f"Unknown claim source {source!r}.")


def _file_claim(
    *, account_id, amount, currency, value_date, payer_name, bank_reference, proof, extension,
    bank_transaction_id, source, initiated_by, key, now,
) -> RemittanceClaim:
    txn_id = None
    if bank_transaction_id is not None:
        txn = locked_transaction(bank_transaction_id)
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
    claim = locked_claim(claim_id)
    require_perm(actor, *step_permissions("attach", claim), action="attach transactions to")
    if claim.status != Status.SUBMITTED or claim.bank_transaction_id is not None:
        if claim.bank_transaction_id == bank_transaction_id and claim.status != Status.REJECTED:
            return claim  # a replay changes nothing
        raise ClaimStateError(f"Claim #{claim.pk} is not waiting for its transaction.")
    txn = locked_transaction(bank_transaction_id)
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
                claim_matching_transactions(
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
