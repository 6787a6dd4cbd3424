"""factory_boy factories, one module per area; import them from ``tests.factories``.

Every model of the apps has one (``tests/test_factories.py`` checks it): accounts and staff
(``accounts``), the linking models (``linking``), usage, bills, charges and ledger entries
(``billing``), the remittances models (``remittances``), scheduled runs and job item failures
(``core``). They build rows as the services would leave them; tests of a rule call the services.
"""

from .accounts import AccountFactory, StaffFactory, UserFactory
from .billing import BillFactory, ChargeFactory, LedgerEntryFactory, UsageRecordFactory
from .core import JobItemFailureFactory, ScheduledRunFactory
from .linking import CardMethodFactory, ChallengeFactory, HoldFactory, LinkAttemptFactory, PayPalMethodFactory
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
    "BankStatementFactory",
    "BankTransactionFactory",
    "BankTransactionKeyFactory",
    "BillFactory",
    "CardMethodFactory",
    "ChallengeFactory",
    "ChargeFactory",
    "CreditLimitRequestFactory",
    "DedicatedRemittanceAccountFactory",
    "HoldFactory",
    "JobItemFailureFactory",
    "LedgerEntryFactory",
    "LinkAttemptFactory",
    "PayPalMethodFactory",
    "RemittanceClaimFactory",
    "ScheduledRunFactory",
    "SharedRemittanceAccountFactory",
    "StaffFactory",
    "UsageRecordFactory",
    "UserFactory",
]
