"""RFD-3 under concurrency, on PostgreSQL with real threads released by a barrier.

Approvals of refunds (and transfers) out of one credit lock refund -> bank transaction ->
account; without the bank transaction row lock both approvals read the same "already
refunded" sum and both debit, which these tests catch every time.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Sum

from billing_backoffice.errors import BillingError
from payments.models import Bill, LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import RefundRequest
from remittances.services import refunds
from remittances.services.funds_out import ExceedsAvailableBalance, ExceedsTransactionCredit
from tests.concurrency import run_at_once
from tests.factories import AccountFactory
from tests.remittances.refund_helpers import credited_txn, finance, requested

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]


def refunded_total(account) -> Decimal:
    return -(LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.REFUND).aggregate(s=Sum("amount"))["s"] or 0)


@pytest.mark.parametrize("round_", range(3))
def test_rfd_3_race_two_approvals_at_once_never_refund_more_than_was_credited(now, round_):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    credited_txn(account, now=now, amount="1000.00")  # the balance alone would allow both
    first = requested(account, txn, by=finance(), now=now, amount="70.00")
    second = requested(account, txn, by=finance(), now=now, amount="60.00")
    approvers = [finance(), finance()]
    results = run_at_once([
        lambda: refunds.refund_approve(refund_id=first.pk, actor=approvers[0], now=now),
        lambda: refunds.refund_approve(refund_id=second.pk, actor=approvers[1], now=now),
    ], timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ExceedsTransactionCredit), results
    assert not [e for e in errors if not isinstance(e, BillingError)]
    assert RefundRequest.objects.filter(status=RefundRequest.Status.APPROVED).count() == 1
    assert refunded_total(account) in (Decimal("70.00"), Decimal("60.00"))
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("1100.00") - refunded_total(account)


def test_rfd_3_race_refunds_of_two_credits_never_exceed_the_balance_left_after_what_is_owed(now):
    """Two credits of 100, a bill of 100 owed: refunding both credits whole at once leaves one.

    The transaction locks differ, so only the account row lock (taken before the balance is
    read) serialises them; the ledger's own floor would let both through (balance 0).
    """
    account = AccountFactory()
    a = credited_txn(account, now=now, amount="100.00")
    b = credited_txn(account, now=now, amount="100.00")
    Bill.objects.create(
        account=account, kind=Bill.Kind.MONTHLY, reference="bill-rfd-3-race", issued_at=now, due_date=now.date(),
        amount_before_tax=Decimal("100.00"), total=Decimal("100.00"), currency="EUR",
    )
    first = requested(account, a, by=finance(), now=now, amount="100.00")
    second = requested(account, b, by=finance(), now=now, amount="100.00")
    approvers = [finance(), finance()]
    results = run_at_once([
        lambda: refunds.refund_approve(refund_id=first.pk, actor=approvers[0], now=now),
        lambda: refunds.refund_approve(refund_id=second.pk, actor=approvers[1], now=now),
    ], timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ExceedsAvailableBalance), results
    assert refunded_total(account) == Decimal("100.00")
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")


def test_rfd_1_race_two_finance_members_generate_payment_files_at_once_each_payment_in_one_file(now):
    from remittances.models import PaymentFile
    from remittances.services import payment_files

    account = AccountFactory()
    for _ in range(6):
        refund = requested(account, credited_txn(account, now=now, amount="10.00"), by=finance(), now=now, amount="10.00")
        refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)
    clerks = [finance(), finance()]
    results = run_at_once([
        lambda: payment_files.payment_files_generate(actor=clerks[0], now=now),
        lambda: payment_files.payment_files_generate(actor=clerks[1], now=now),
    ], timeout=120)
    assert not [r for r in results if isinstance(r, BaseException)], results
    in_files = RefundRequest.objects.filter(status=RefundRequest.Status.IN_FILE)
    assert in_files.count() == 6
    assert sum(f.payment_count for f in PaymentFile.objects.all()) == 6  # no payment in two files
    ids = [e for f in PaymentFile.objects.all() for e in f.content.split("<EndToEndId>")[1:]]
    assert len(ids) == len(set(ids)) == 6
