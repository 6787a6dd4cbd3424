"""Factories of refunds, transfers between accounts and outgoing payment files (RFD-1..3).

Submitted requests as the services record them, built directly; approving one moves money, so
tests of approval go through ``remittances.services``.
"""

from __future__ import annotations

from decimal import Decimal

import factory
from django.utils import timezone

from remittances.refund_models import FundsTransfer, PaymentFile, RefundRequest

from .accounts import AccountFactory, UserFactory
from .remittances import DedicatedRemittanceAccountFactory, SharedRemittanceAccountFactory


class RefundRequestFactory(factory.django.DjangoModelFactory):
    """A submitted refund to the payer's IBAN, paid from a shared receiving account."""

    class Meta:
        model = RefundRequest

    account = factory.SubFactory(AccountFactory)
    debtor_account = factory.SubFactory(SharedRemittanceAccountFactory)
    amount = Decimal("50.00")
    currency = "USD"
    payer_name = "ACME LTD"
    payer_iban = "DE89370400440532013000"
    payer_bic = "COBADEFFXXX"
    reason = "Paid twice"
    status = RefundRequest.Status.SUBMITTED
    requested_by = factory.SubFactory(UserFactory)
    submitted_at = factory.LazyFunction(timezone.now)


class FundsTransferFactory(factory.django.DjangoModelFactory):
    """A submitted transfer of money between two accounts (RFD-2)."""

    class Meta:
        model = FundsTransfer

    from_account = factory.SubFactory(AccountFactory)
    to_account = factory.SubFactory(AccountFactory)
    amount = Decimal("25.00")
    currency = "USD"
    reason = "Paid into the wrong account"
    status = FundsTransfer.Status.SUBMITTED
    requested_by = factory.SubFactory(UserFactory)
    submitted_at = factory.LazyFunction(timezone.now)


class PaymentFileFactory(factory.django.DjangoModelFactory):
    """A generated pain.001 file of one payment (its XML is a placeholder, not a valid file)."""

    class Meta:
        model = PaymentFile

    debtor_account = factory.SubFactory(DedicatedRemittanceAccountFactory)
    currency = "USD"
    message_id = factory.Sequence(lambda n: f"PAYFILE-FACTORY-{n}")
    payment_count = 1
    total = Decimal("50.00")
    content = "<Document/>"
    created_at = factory.LazyFunction(timezone.now)
