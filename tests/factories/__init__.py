"""factory_boy factories, one module per area; import them from ``tests.factories``.

Every model of the apps has one (``tests/test_factories.py`` checks it): accounts and staff
(``accounts``), the linking models (``linking``), usage, bills, charges and ledger entries
(``billing``), credit control and notifications (``credit_control``), the remittances models
(``remittances``), reversals and the daily proof (``reconciliation``), refunds, transfers and payment files (``refunds``), scheduled runs, job item
failures and staff jobs (``core``). They build rows as the services would leave them; tests of a rule call the services.
"""

from .accounts import AccountFactory, StaffFactory, UserFactory
from .billing import BillFactory, ChargeFactory, LedgerEntryFactory, UsageRecordFactory
from .core import JobItemFailureFactory, ScheduledJobFactory, ScheduledRunFactory, StaffJobFactory
from .credit_control import CreditHoldFactory, NotificationFactory, ReminderFactory, ReminderPauseFactory
from .linking import CardMethodFactory, ChallengeFactory, HoldFactory, LinkAttemptFactory, PayPalMethodFactory
from .reconciliation import BankReversalFactory, ReconciliationDayFactory, ReconciliationExceptionFactory
from .refunds import FundsTransferFactory, PaymentFileFactory, RefundRequestFactory
from .remittances import (
    BankStatementFactory,
    BankTransactionFactory,
    BankTransactionKeyFactory,
    CreditLimitRequestFactory,
    DedicatedRemittanceAccountFactory,
    RemittanceClaimFactory,
    SharedRemittanceAccountFactory,
)

__all__ = [
    "AccountFactory",
    "BankReversalFactory",
    "BankStatementFactory",
    "BankTransactionFactory",
    "BankTransactionKeyFactory",
    "BillFactory",
    "CardMethodFactory",
    "ChallengeFactory",
    "ChargeFactory",
    "CreditHoldFactory",
    "CreditLimitRequestFactory",
    "DedicatedRemittanceAccountFactory",
    "FundsTransferFactory",
    "HoldFactory",
    "JobItemFailureFactory",
    "LedgerEntryFactory",
    "LinkAttemptFactory",
    "NotificationFactory",
    "PayPalMethodFactory",
    "PaymentFileFactory",
    "ReconciliationDayFactory",
    "ReconciliationExceptionFactory",
    "RefundRequestFactory",
    "ReminderFactory",
    "ReminderPauseFactory",
    "RemittanceClaimFactory",
    "ScheduledJobFactory",
    "ScheduledRunFactory",
    "SharedRemittanceAccountFactory",
    "StaffFactory",
    "StaffJobFactory",
    "UsageRecordFactory",
    "UserFactory",
]
