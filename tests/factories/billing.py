"""Factories of usage, bills, charges and ledger entries.

Rows as the billing services would leave them, built directly: for tests that need a bill or a
charge to exist, not for tests of how the services make them (those call the services). A ledger
entry is the exception: it is posted through ``ledger_post``, the ledger's writer, so the balance
floor (I3), the once-per-reference guard (I2) and the audit context hold for factory rows too.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from payments.models import Account, Bill, Charge, LedgerEntry, UsageRecord
from payments.services import ledger_post

from .accounts import AccountFactory
from .linking import CardMethodFactory


class UsageRecordFactory(factory.django.DjangoModelFactory):
    """Unbilled pay-as-you-go usage of the current month."""

    class Meta:
        model = UsageRecord

    account = factory.SubFactory(AccountFactory)
    amount = Decimal("10.00")
    currency = "USD"
    reported_at = factory.LazyFunction(timezone.now)
    period = factory.LazyAttribute(lambda o: f"{o.reported_at:%Y-%m}")
    reference = factory.Sequence(lambda n: f"usage-{n}")
    status = UsageRecord.Status.UNBILLED


class BillFactory(factory.django.DjangoModelFactory):
    """An open monthly bill, no tax, due in 30 days; the account is flagged as owing (DEL-3).

    ``BillFactory(total="50.00")`` sets the total (before tax = total); a paid bill needs
    ``status=PAID, amount_paid=<total>`` (and gets ``paid_at``), as the constraints require.
    """

    class Meta:
        model = Bill
        skip_postgeneration_save = True

    account = factory.SubFactory(AccountFactory)
    kind = Bill.Kind.MONTHLY
    order_kind = factory.LazyAttribute(lambda o: Bill.OrderKind.PURCHASE if o.kind == Bill.Kind.ORDER else "")
    reference = factory.Sequence(lambda n: f"bill-factory-{n}")
    issued_at = factory.LazyFunction(timezone.now)
    due_date = factory.LazyAttribute(lambda o: (o.issued_at + timedelta(days=30)).date())
    total = Decimal("100.00")
    tax = Decimal("0.00")
    amount_before_tax = factory.LazyAttribute(lambda o: Decimal(str(o.total)) - Decimal(str(o.tax)))
    currency = "USD"
    amount_paid = Decimal("0.00")
    status = Bill.Status.OPEN
    paid_at = factory.LazyAttribute(lambda o: o.issued_at if o.status == Bill.Status.PAID else None)

    @factory.post_generation
    def flag_account(bill, create, extracted, **kwargs):
        # What issuing a bill does (DEL-3): an account with an unpaid bill cannot be closed.
        if create and bill.status != Bill.Status.PAID:
            Account.objects.filter(pk=bill.account_id).update(has_outstanding_bills=True)


class ChargeFactory(factory.django.DjangoModelFactory):
    """A pending order charge of the account's card (no gateway call is made)."""

    class Meta:
        model = Charge

    account = factory.SubFactory(AccountFactory)
    payment_method = factory.SubFactory(CardMethodFactory, account=factory.SelfAttribute("..account"))
    bill = None
    kind = Charge.Kind.ORDER
    amount = Decimal("100.00")
    currency = "USD"
    idempotency_key = factory.Sequence(lambda n: f"charge-factory-{n}")
    status = Charge.Status.PENDING
    created_at = factory.LazyFunction(timezone.now)

    class Params:
        failed = factory.Trait(
            status=Charge.Status.FAILED, failure_reason="declined", completed_at=factory.LazyFunction(timezone.now)
        )


class LedgerEntryFactory(factory.django.DjangoModelFactory):
    """A ledger entry posted by ``ledger_post`` (a credit of 100.00 USD unless told otherwise).

    ``created_at`` is the ``now`` passed to ``ledger_post``; ``created_by`` its actor. A debit
    below the account's floor is refused as it would be in production (I3).
    """

    class Meta:
        model = LedgerEntry

    account = factory.SubFactory(AccountFactory)
    amount = Decimal("100.00")
    currency = "USD"
    kind = LedgerEntry.Kind.REMITTANCE_CREDIT
    reference = factory.Sequence(lambda n: f"ledger-factory:{n}")
    memo = ""
    created_by = None
    reverses = None
    created_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *, account, created_at, created_by, **fields):
        return ledger_post(account_id=account.pk, now=created_at, actor=created_by, **fields).entry
