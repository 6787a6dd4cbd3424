"""Reversed and returned bank entries (RVS-1, RVS-2)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing_backoffice.permissions import StaffPermissionDenied
from payments.models import Bill, LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import BankReversal, BankTransaction, RemittanceClaim
from remittances.services import reversals
from tests.factories import AccountFactory
from remittances.services.funds_out import SourceNotCredited
from tests.remittances.refund_helpers import bank_txn, credited_txn, finance, manager, requested, shared_account, staff

pytestmark = pytest.mark.django_db

Status = BankTransaction.Status
Outcome = BankReversal.Outcome


def reversal_line(original, *, now, amount=None, **named):
    return bank_txn(
        now=now, receiving=original.receiving_account, amount=str(amount or original.amount),
        currency=original.currency, entry_kind=BankTransaction.EntryKind.REVERSAL, status=Status.NOT_CREDITABLE,
        **named,
    )


def test_rvs_1_reversal_of_a_credited_entry_posts_one_reversing_debit_of_the_original_credit(now):
    account = AccountFactory()
    original = credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-RVS-1")
    line = reversal_line(original, now=now, end_to_end_id="E2E-RVS-1")
    record = reversals.reversal_apply(reversal_id=line.pk, now=now)
    assert reversals.reversal_apply(reversal_id=line.pk, now=now).pk == record.pk  # once
    assert reversals.reversals_apply(statement_ids=[line.statement_id], now=now) == []
    assert (record.outcome, record.original_id, record.account_id) == (Outcome.DEBITED, original.pk, account.pk)
    [debit] = LedgerEntry.objects.filter(reverses=original.ledger_entry)
    assert (debit.amount, debit.kind, debit.pk) == (Decimal("-100.00"), LedgerEntry.Kind.REVERSAL, record.ledger_entry_id)
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("0.00")
    original.refresh_from_db()
    assert original.status == Status.REVERSED
    with pytest.raises(SourceNotCredited):  # RFD-3: money the bank took back cannot be refunded
        requested(account, original, by=finance(), now=now, amount="1.00")


def test_rvs_1_a_return_that_quotes_the_original_reference_finds_it(now):
    account = AccountFactory()
    original = credited_txn(account, now=now, amount="80.00", reference="ORIGREF123")
    line = reversal_line(original, now=now, remittance_info="RETURN OF ORIGREF123 AC04 account closed")
    assert reversals.reversal_apply(reversal_id=line.pk, now=now).outcome == Outcome.DEBITED
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("0.00")


def test_rvs_1_bills_paid_stay_paid_and_an_account_left_owing_is_in_finances_queue(now):
    account = AccountFactory()
    original = credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-OWING")
    bill = Bill.objects.create(
        account=account, kind=Bill.Kind.MONTHLY, reference="bill-rvs-1", issued_at=now, due_date=now.date(),
        amount_before_tax=Decimal("100.00"), total=Decimal("100.00"), currency="EUR",
        amount_paid=Decimal("100.00"), status=Bill.Status.PAID, paid_at=now,
    )
    LedgerEntry.objects.create(  # the bill was paid from the balance (as settlement does)
        account=account, amount=Decimal("-100.00"), currency="EUR", kind=LedgerEntry.Kind.BILL_PAYMENT,
        reference=f"bill:{bill.pk}", created_at=now,
    )
    line = reversal_line(original, now=now, end_to_end_id="E2E-OWING")
    record = reversals.reversal_apply(reversal_id=line.pk, now=now)
    assert (record.outcome, record.original_id, record.account_id) == (Outcome.OWING, original.pk, account.pk)
    assert record.ledger_entry_id is None  # the floor (I3) holds; the account owes 100
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    def queue():
        return list(BankReversal.objects.filter(outcome=Outcome.OWING, resolved_at__isnull=True))

    assert queue() == [record]
    with pytest.raises(StaffPermissionDenied):
        reversals.reversal_resolve(reversal_record_id=record.pk, actor=manager(), resolution="x", now=now)
    clerk = finance_resolver()
    done = reversals.reversal_resolve(reversal_record_id=record.pk, actor=clerk, resolution="Customer paid again", now=now)
    assert (done.resolved_by_id, done.resolution) == (clerk.pk, "Customer paid again")
    assert queue() == []


def finance_resolver():
    return staff("fin_resolver", "view_bankreversal", "resolve_bankreversal")


def test_rvs_2_reversal_of_an_unmatched_entry_closes_it_and_rejects_the_pending_claim(now):
    account = AccountFactory()
    receiving = shared_account(currency="EUR", now=now)
    original = bank_txn(now=now, receiving=receiving, amount="55.00", end_to_end_id="E2E-RVS-2",
                        status=Status.CLAIMED)
    claim = RemittanceClaim.objects.create(
        account=account, bank_transaction=original, amount=Decimal("55.00"), currency="EUR",
        source=RemittanceClaim.Source.CONSOLE, submitted_at=now,
    )
    line = reversal_line(original, now=now, end_to_end_id="E2E-RVS-2")
    record = reversals.reversal_apply(reversal_id=line.pk, now=now)
    assert (record.outcome, record.original_id) == (Outcome.CLOSED, original.pk)
    original.refresh_from_db()
    claim.refresh_from_db()
    assert original.status == Status.REVERSED
    assert claim.status == RemittanceClaim.Status.REJECTED and "reversed" in claim.note
    assert not LedgerEntry.objects.exists()


def test_rvs_2_a_reversed_entry_can_no_longer_be_claimed(now):
    from remittances.services.claims import TransactionNotClaimable, claim_submit

    original = bank_txn(now=now, amount="55.00", end_to_end_id="E2E-CLOSED")
    reversals.reversal_apply(reversal_id=reversal_line(original, now=now, end_to_end_id="E2E-CLOSED").pk, now=now)
    am = staff("am_rvs", "view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim")
    with pytest.raises(TransactionNotClaimable):
        claim_submit(account_id=AccountFactory().pk, bank_transaction_id=original.pk, amount="55.00",
                     currency="EUR", initiated_by=am, source=RemittanceClaim.Source.STAFF, now=now)


@pytest.mark.parametrize("case", ["nothing_named", "amount_differs", "two_candidates"])
def test_rvs_1_a_reversal_whose_original_is_unknown_waits_for_review(now, case):
    account = AccountFactory()
    original = credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-AMBIG")
    if case == "two_candidates":
        credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-AMBIG",
                     receiving=original.receiving_account)
    named = {} if case == "nothing_named" else {"end_to_end_id": "E2E-AMBIG"}
    line = reversal_line(original, now=now, amount="99.00" if case == "amount_differs" else None, **named)
    record = reversals.reversal_apply(reversal_id=line.pk, now=now)
    assert (record.outcome, record.original_id, record.ledger_entry_id) == (Outcome.UNKNOWN, None, None)
    line.refresh_from_db()
    assert line.status == Status.NOT_CREDITABLE  # never credited; the unresolved row is its place in the queue
    assert list(BankReversal.objects.filter(outcome=Outcome.UNKNOWN, resolved_at__isnull=True)) == [record]
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REVERSAL).count() == 0


def test_rvs_1_an_entry_is_reversed_at_most_once(now):
    account = AccountFactory()
    original = credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-TWICE")
    credited_txn(account, now=now, amount="100.00")  # money enough for two debits
    first = reversals.reversal_apply(reversal_id=reversal_line(original, now=now, end_to_end_id="E2E-TWICE").pk, now=now)
    second = reversals.reversal_apply(reversal_id=reversal_line(original, now=now, end_to_end_id="E2E-TWICE").pk, now=now)
    assert (first.outcome, second.outcome) == (Outcome.DEBITED, Outcome.UNKNOWN)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REVERSAL).count() == 1
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")




def test_rvs_1_a_reversal_the_import_left_unhandled_is_applied_by_the_daily_proofs_sweep(now):
    from datetime import date

    from remittances.services.reconciliation import reconciliation_run

    account = AccountFactory()
    original = credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-SWEEP")
    reversal_line(original, now=now, end_to_end_id="E2E-SWEEP")  # recorded, never applied (a crash after commit)
    reconciliation_run(day=date(2026, 11, 25), now=now)
    assert BankReversal.objects.get(original=original).outcome == Outcome.DEBITED
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("0.00")
