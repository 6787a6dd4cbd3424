"""Claims for transfers received on the shared (non-dedicated) account: CLM-1..4.

Flow (CLM-1): a transfer arrives on the shared account and stays ``unmatched`` (REM-2); a claim
for a cloud account is submitted by the console or initiated by the account manager; the
claim is attached to its bank transaction (at once, or later by ``claims_match_pending`` or
``claim_attach``), which becomes ``claimed``; the account manager reviews it; finance approves
it, which credits the ledger once and marks the transaction ``credited``. A rejection (CLM-4)
credits nothing, records the reason and puts the transaction back to ``unmatched``.

Where each part lives: ``filing`` (submit, attach, match after an import), ``decisions``
(review, approve, reject), ``inputs`` (what a claim says: amount, currency, value date, proof),
``access`` (permission and locked rows), ``errors``. Who may take which step is decided once in
``remittances.claim_steps``; which transfers a claim may take, in ``remittances.selectors``.

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

from remittances.services.claims.decisions import claim_approve, claim_reject, claim_review
from remittances.services.claims.errors import (
    AlreadyCredited,
    BankTransactionNotFound,
    ClaimAmountNotInCurrency,
    ClaimInvalid,
    ClaimMismatch,
    ClaimNotFound,
    ClaimPermissionDenied,
    ClaimStateError,
    FourEyesViolation,
    ProofRejected,
    TransactionNotClaimable,
    ValueDateImplausible,
)
from remittances.services.claims.filing import (
    ClaimSubmission,
    claim_attach,
    claim_submit,
    claim_submit_once,
    claims_match_pending,
    console_claim_key,
)
from remittances.services.claims.inputs import validate_proof

__all__ = [
    "AlreadyCredited",
    "BankTransactionNotFound",
    "ClaimAmountNotInCurrency",
    "ClaimInvalid",
    "ClaimMismatch",
    "ClaimNotFound",
    "ClaimPermissionDenied",
    "ClaimStateError",
    "ClaimSubmission",
    "FourEyesViolation",
    "ProofRejected",
    "TransactionNotClaimable",
    "ValueDateImplausible",
    "claim_approve",
    "claim_attach",
    "claim_reject",
    "claim_review",
    "claim_submit",
    "claim_submit_once",
    "claims_match_pending",
    "console_claim_key",
    "validate_proof",
]
