"""Factories of the reversal and reconciliation records (RVS, RCN), as the import and the daily
proof leave them. Tests of the rules go through ``remittances.services`` (reversals, reconciliation).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from remittances.reconciliation_models import ReconciliationDay, ReconciliationException
from remittances.reversal_models import BankReversal

from .remittances import BankTransactionFactory, SharedRemittanceAccountFactory


class BankReversalFactory(factory.django.DjangoModelFactory):
    """A reversal line whose original is unknown: it waits for review (RVS-2)."""

    class Meta:
        model = BankReversal

    reversal = factory.SubFactory(BankTransactionFactory)
    outcome = BankReversal.Outcome.UNKNOWN
    amount = factory.SelfAttribute("reversal.amount")
    currency = factory.SelfAttribute("reversal.currency")
    created_at = factory.LazyFunction(timezone.now)


class ReconciliationDayFactory(factory.django.DjangoModelFactory):
    """A day of a shared receiving account on which the bank and the back office agreed (RCN-1)."""

    class Meta:
        model = ReconciliationDay

    receiving_account = factory.SubFactory(SharedRemittanceAccountFactory)
    day = factory.Sequence(lambda n: date(2026, 11, 1) + timedelta(days=n % 365))
    verdict = ReconciliationDay.Verdict.AGREED
    currency = factory.SelfAttribute("receiving_account.currency")
    booked_total = Decimal("0.00")
    computed_at = factory.LazyFunction(timezone.now)
    run_id = factory.LazyFunction(lambda: str(uuid.uuid4()))


class ReconciliationExceptionFactory(factory.django.DjangoModelFactory):
    """An open RCN-1 difference of a day, waiting for a person's resolution."""

    class Meta:
        model = ReconciliationException

    day = factory.SubFactory(ReconciliationDayFactory, verdict=ReconciliationDay.Verdict.DIFFERENCE)
    rule = "RCN-1"
    detail = "Opening plus the booked entries does not equal the closing balance."
    amount = Decimal("10.00")
    currency = factory.SelfAttribute("day.currency")
