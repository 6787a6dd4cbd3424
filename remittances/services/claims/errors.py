"""The errors of the claim services (CLM-1..4, I6, SEC-3), defined in the app's catalogue ``remittances/errors.py``."""

from __future__ import annotations

from remittances.errors import (  # noqa: F401 (raised here, importable from here)
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


