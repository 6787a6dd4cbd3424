"""The errors of the remittances app, one catalogue (issue 14): bank statements, remittance
accounts, credit limit applications and claims, each with its stable ``code`` and the ``rule``
it enforces. The services, parsers, admin and API import them from here (the modules that raise
them re-export them). Codes are unique across the project (``tests/test_error_codes.py``).
"""

from __future__ import annotations

from billing_backoffice.errors import BillingError, Conflict, NotFound, StaffPermissionDenied


# --- bank statements (REM-4, REM-7): nothing from a refused file is recorded ------------------


class StatementError(BillingError):
    """A statement file that cannot be imported; nothing from it is recorded."""

    code = "statement_refused"
    rule = "REM-4"
    http_status = 400


class StatementTooLarge(StatementError):
    code = "statement_too_large"


class UnsupportedStatement(StatementError):
    """Not a statement format (or version) we import: never an empty success."""

    code = "statement_unsupported"


class HostileXml(StatementError):
    """A DTD, entity declaration or external reference: refused before anything is expanded."""

    code = "statement_hostile_xml"


class MalformedStatement(StatementError):
    """Truncated, not well-formed, or missing a part the format requires."""

    code = "statement_malformed"


class BadAmount(StatementError):
    code = "statement_bad_amount"
    rule = "I6"


class UnknownReceivingAccount(StatementError):
    code = "statement_unknown_account"
    rule = "REM-7"


class UnreconciledStatement(StatementError):
    code = "statement_unreconciled"
    rule = "REM-5"


class BatchMismatch(StatementError):
    code = "statement_batch_mismatch"
    rule = "REM-6"


# --- remittance accounts (REM-1, REM-2, CRED-1) -----------------------------------------------


class CreditNotApproved(BillingError):
    code = "credit_not_approved"
    rule = "CRED-1"


class DedicatedAccountExists(Conflict):
    code = "dedicated_account_exists"
    rule = "REM-1"


class NumberUnavailable(BillingError):
    code = "number_unavailable"
    rule = "REM-1"
    http_status = 503


class RemittanceAccountNotFound(NotFound):
    code = "remittance_account_not_found"
    default_detail = "No such remittance account."


class RemittanceAccountStateError(Conflict):
    code = "remittance_account_state"


class InvalidBankDetails(BillingError):
    """Malformed input to a registration: an IBAN, BIC, currency or name that is not valid."""

    code = "invalid_bank_details"
    http_status = 400


class ReceivingAccountConflict(Conflict):
    code = "receiving_account_conflict"
    rule = "REM-2"


# --- credit limit applications (CRED-1..3) ----------------------------------------------------


class CreditRequestNotFound(NotFound):
    code = "credit_request_not_found"
    default_detail = "No such credit application."


class CreditRequestRefused(BillingError):
    """The account or the application does not qualify (CRED-1)."""

    code = "credit_request_refused"
    rule = "CRED-1"


class CreditRequestOpen(Conflict):
    """CRED-1: one open application per account (``credit_one_open_request_per_account``)."""

    code = "credit_request_open"
    rule = "CRED-1"


class CreditRequestDecided(Conflict):
    """CRED-1: an application is decided once, ``submitted -> approved | rejected``."""

    code = "credit_request_decided"
    rule = "CRED-1"


class CreditSelfDecision(BillingError):
    """CRED-2: the staff member who recorded the application cannot decide it."""

    code = "credit_self_decision"
    rule = "CRED-2"


class CreditLimitBelowOwed(BillingError):
    """CRED-3: a limit is never set below what the account currently owes."""

    code = "credit_limit_below_owed"
    rule = "CRED-3"


# --- claims (CLM-1..4, I6) --------------------------------------------------------------------


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


# --- refunds, transfers and payment files (RFD-1..3) --------------------------------------------


class ExceedsTransactionCredit(BillingError):
    """RFD-3: more than the transaction's credit less what was already refunded or moved."""

    code = "exceeds_transaction_credit"
    rule = "RFD-3"


class ExceedsAvailableBalance(BillingError):
    """RFD-3: more than the account's balance left after what it owes."""

    code = "exceeds_available_balance"
    rule = "RFD-3"


class SourceNotCredited(BillingError):
    """Only a bank transaction credited to this account can be refunded or moved out of."""

    code = "source_not_credited"
    rule = "RFD-3"


class FundsOutFourEyesViolation(FourEyesViolation):
    """RFD-1: whoever recorded a refund or transfer never decides it (the ``four_eyes`` refusal
    of claims, CLM-3, under its own rule)."""

    rule = "RFD-1"


class RequestNotFound(NotFound):
    code = "request_not_found"
    default_detail = "No such refund or transfer."


class RefundInvalid(BillingError):
    """Malformed refund input: IBAN, BIC, payer name, reason, debtor account..."""

    code = "refund_invalid"
    rule = "RFD-1"
    http_status = 400


class RefundStateError(Conflict):
    code = "refund_state"
    rule = "RFD-1"


class TransferInvalid(BillingError):
    code = "transfer_invalid"
    rule = "RFD-2"
    http_status = 400


class TransferStateError(Conflict):
    code = "transfer_state"
    rule = "RFD-2"


class PaymentFileState(Conflict):
    code = "payment_file_state"
    rule = "RFD-1"


# --- bank reversals and reconciliation (RVS-1, RCN-1..3) ---------------------------------------


class ReversalState(Conflict):
    code = "reversal_state"
    rule = "RVS-1"


class ResolutionRequired(BillingError):
    code = "resolution_required"
    rule = "RCN-2"
    http_status = 400


# --- staff (SEC-3) ---------------------------------------------------------------------------------

# The one staff-permission error (billing_backoffice.errors.StaffPermissionDenied), under the
# names the remittance services used before it existed.
PermissionRefused = StaffPermissionDenied
CreditDecisionNotPermitted = StaffPermissionDenied
ClaimPermissionDenied = StaffPermissionDenied
