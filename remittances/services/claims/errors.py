"""The errors of the claim services (CLM-1..4, I6, SEC-3); each carries its ``code`` and ``rule``."""

from __future__ import annotations

from billing_backoffice.errors import BillingError, Conflict, NotFound
from billing_backoffice.permissions import StaffPermissionDenied


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


class ClaimAmountNotInCurrency(ClaimInvalid):
    """I6: more decimals than the currency has (JPY 0.01): a rule about the pair, not the shape."""

    code = "amount_not_in_currency"
    http_status = 422


class ValueDateImplausible(BillingError):
    code = "value_date_out_of_window"
    rule = "CLM-1"


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
