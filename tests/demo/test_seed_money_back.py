"""seed_demo's money going back out (issue 13): a refund (RFD-1), a transfer (RFD-2), bank
reversals (RVS-1), a payer return of a currency mismatch, and the daily proof (RCN-1); once only."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from billing_backoffice.demo import seed as demo
from payments.models import LedgerEntry
from remittances.models import (
    BankReversal, BankTransaction, FundsTransfer, PaymentFile, ReconciliationDay, ReconciliationException,
    RefundRequest,
)
from tests.payments.invariants import assert_all_invariants

pytestmark = pytest.mark.django_db

MODELS = (RefundRequest, FundsTransfer, PaymentFile, BankReversal, ReconciliationDay, ReconciliationException,
          BankTransaction, LedgerEntry)


def state() -> dict:
    return {model.__name__: sorted(model.objects.values_list("pk", flat=True)) for model in MODELS}


@pytest.fixture
def seeded(now):
    demo.seed_demo(now=now, password="pw")
    return now


def test_rfd_1_seed_demo_has_a_refund_approved_by_another_finance_member_and_sent(seeded):
    refund = RefundRequest.objects.get(kind=RefundRequest.Kind.REFUND)
    assert (refund.requested_by.username, refund.decided_by.username) == ("finance", "finance2")
    assert refund.status == RefundRequest.Status.SENT and refund.payment_file.status == PaymentFile.Status.SENT
    assert refund.bank_transaction.status == BankTransaction.Status.REFUNDED
    assert refund.ledger_entry.amount == -refund.amount


def test_rfd_2_seed_demo_has_a_transfer_initiated_by_a_manager_approved_by_finance(seeded):
    transfer = FundsTransfer.objects.get()
    assert transfer.status == FundsTransfer.Status.APPROVED
    assert (transfer.requested_by.username, transfer.decided_by.username) == ("manager", "finance")
    assert transfer.debit_entry.amount == -transfer.amount and transfer.credit_entry.amount == transfer.amount
    assert transfer.from_account_id != transfer.to_account_id


def test_rvs_1_seed_demo_has_a_reversal_debited_once_and_one_leaving_the_account_owing(seeded):
    debited = BankReversal.objects.get(outcome=BankReversal.Outcome.DEBITED)
    assert LedgerEntry.objects.filter(reverses=debited.original.ledger_entry).count() == 1
    assert debited.ledger_entry.amount == -debited.amount
    owing = BankReversal.objects.get(outcome=BankReversal.Outcome.OWING)
    assert owing.ledger_entry is None and owing.resolved_at is None
    assert owing.original.status == BankTransaction.Status.REVERSED
    assert not LedgerEntry.objects.filter(reverses=owing.original.ledger_entry).exists()


def test_rfd_1_seed_demo_has_a_currency_mismatch_returned_to_its_payer_waiting_for_finance(seeded):
    back = RefundRequest.objects.get(kind=RefundRequest.Kind.PAYER_RETURN)
    assert back.status == RefundRequest.Status.SUBMITTED and back.requested_by.username == "finance"
    txn = back.bank_transaction
    assert txn.status == BankTransaction.Status.REVIEW and txn.currency != txn.receiving_account.currency
    assert back.amount == txn.amount and back.ledger_entry is None


def test_rcn_1_seed_demo_has_a_reconciliation_day_with_a_difference_and_a_clean_day(seeded):
    days = ReconciliationDay.objects.all()
    assert days.filter(verdict=ReconciliationDay.Verdict.AGREED).exists()
    assert ReconciliationException.objects.filter(rule="RCN-1", day__verdict=ReconciliationDay.Verdict.DIFFERENCE).exists()


@pytest.mark.parametrize("moment", ["2027-01-01T00:00:30", "2026-11-26T23:59:00"])
def test_rfd_1_rfd_2_rvs_1_rcn_1_seed_demo_money_back_once_at_any_hour_invariants_kept(moment):
    now = datetime.fromisoformat(moment).replace(tzinfo=timezone.utc)
    demo.seed_demo(now=now, password="pw")
    assert RefundRequest.objects.count() == 2 and FundsTransfer.objects.count() == 1
    assert_all_invariants()
    for model, field in ((RefundRequest, "submitted_at"), (FundsTransfer, "decided_at"), (PaymentFile, "sent_at"),
                         (BankReversal, "created_at"), (LedgerEntry, "created_at")):
        assert not model.objects.filter(**{f"{field}__gt": now}).exists(), model
    before = state()
    demo.seed_demo(now=now, password="pw")
    assert state() == before
