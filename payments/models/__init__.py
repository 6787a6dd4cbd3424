"""Models of the payments app, one module per area; import them from ``payments.models``.

Models hold data, constraints and allowed transitions only; every write goes through
``payments.services``.
"""

from .accounts import Account, new_account_uid
from .billing import Bill, Charge, UsageRecord
from .ledger import LedgerEntry
from .methods import LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold

__all__ = [
    "Account",
    "Bill",
    "Charge",
    "LedgerEntry",
    "LinkAttempt",
    "PaymentMethod",
    "ThreeDSChallenge",
    "UsageRecord",
    "VerificationHold",
    "new_account_uid",
]
