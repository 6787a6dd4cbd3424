"""Factories of the remittances models: receiving accounts, statements, bank lines, claims, credit.

Rows as the statement import and the services would leave them, built directly: for tests that
need them to exist. Tests of the rules themselves (REM-*, CLM-*, CRED-*) go through the services.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory
from django.utils import timezone

from remittances.models import (
    BankStatement,
    BankTransaction,
    BankTransactionKey,
    CreditLimitRequest,
    RemittanceAccount,
    RemittanceClaim,
)

from .accounts import AccountFactory


class SharedRemittanceAccountFactory(factory.django.DjangoModelFactory):
    """A shared (non-dedicated) receiving account (REM-2): it belongs to no cloud account."""

    class Meta:
        model = RemittanceAccount

    kind = RemittanceAccount.Kind.NON_DEDICATED
    account = None
    currency = "USD"
    number = factory.Sequence(lambda n: f"DE00SHARED{n:08d}")
    bank_name = "Example Bank"
    bic = "EXBKDEFFXXX"
    bank_country = "DE"
    beneficiary_name = "Cloud Ltd"
    issued_at = factory.LazyFunction(timezone.now)


class DedicatedRemittanceAccountFactory(SharedRemittanceAccountFactory):
    """A receiving account dedicated to one cloud account (REM-1)."""

    kind = RemittanceAccount.Kind.DEDICATED
    account = factory.SubFactory(AccountFactory)
    number = factory.Sequence(lambda n: f"DE00DEDIC{n:08d}")


class BankStatementFactory(factory.django.DjangoModelFactory):
    """An imported camt.053 of a shared receiving account."""

    class Meta:
        model = BankStatement

    receiving_account = factory.SubFactory(SharedRemittanceAccountFactory)
    format = BankStatement.Format.CAMT053
    identity = factory.Sequence(lambda n: f"STMT-FACTORY-{n}")
    currency = factory.SelfAttribute("receiving_account.currency")
    file_sha256 = factory.Sequence(lambda n: f"{n:064d}")
    imported_at = factory.LazyFunction(timezone.now)


class BankTransactionFactory(factory.django.DjangoModelFactory):
    """An unmatched booked credit line on a shared account, as the import leaves it."""

    class Meta:
        model = BankTransaction

    statement = factory.SubFactory(BankStatementFactory)
    receiving_account = factory.SelfAttribute("statement.receiving_account")
    bank_reference = factory.Sequence(lambda n: f"BANKREF-FACTORY-{n}")
    position = 1
    entry_kind = BankTransaction.EntryKind.CREDIT
    status = BankTransaction.Status.UNMATCHED
    amount = Decimal("1200.00")
    currency = factory.SelfAttribute("statement.currency")
    value_date = date(2026, 11, 25)
    received_at = factory.LazyFunction(timezone.now)


class BankTransactionKeyFactory(factory.django.DjangoModelFactory):
    """A line's bank reference as a key of its receiving account (REM-4)."""

    class Meta:
        model = BankTransactionKey

    bank_transaction = factory.SubFactory(BankTransactionFactory)
    receiving_account = factory.SelfAttribute("bank_transaction.receiving_account")
    key = factory.SelfAttribute("bank_transaction.bank_reference")


class RemittanceClaimFactory(factory.django.DjangoModelFactory):
    """A submitted console claim not yet matched to a transaction (CLM-1)."""

    class Meta:
        model = RemittanceClaim

    account = factory.SubFactory(AccountFactory)
    bank_transaction = None
    amount = Decimal("1200.00")
    currency = "USD"
    source = RemittanceClaim.Source.CONSOLE
    status = RemittanceClaim.Status.SUBMITTED
    submitted_at = factory.LazyFunction(timezone.now)


class CreditLimitRequestFactory(factory.django.DjangoModelFactory):
    """A submitted console request for a credit limit (CRED-1)."""

    class Meta:
        model = CreditLimitRequest

    account = factory.SubFactory(AccountFactory)
    requested_limit = Decimal("5000.00")
    currency = "USD"
    justification = "Monthly invoicing"
    source = CreditLimitRequest.Source.CONSOLE
    status = CreditLimitRequest.Status.SUBMITTED
    submitted_at = factory.LazyFunction(timezone.now)
