"""Models of the payments app, one module per area; import them from ``payments.models``.

Models hold data, constraints and allowed transitions only; every write goes through
``payments.services``.
"""

from .accounts import Account, new_account_uid
from .billing import Bill, Charge, UsageRecord
from .credit_control import CreditHold, Reminder, ReminderPause
from .ledger import LedgerEntry
from .methods import LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from .notifications import Notification

__all__ = [
    "Account",
    "Bill",
    "Charge",
    "CreditHold",
    "LedgerEntry",
    "LinkAttempt",
    "Notification",
    "PaymentMethod",
    "Reminder",
    "ReminderPause",
    "ThreeDSChallenge",
    "UsageRecord",
    "VerificationHold",
    "new_account_uid",
]
