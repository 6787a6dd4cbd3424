"""RFD-1: a bank transaction's ``refunded`` state is stored, not computed.

It is set when the payment file holding the refunds that pay the credit back in full is marked
sent; a payment the bank rejects puts the money back exactly once and makes the transaction
``credited`` again. Migration 0016 stores it on the rows that were already refunded in full.
"""

from __future__ import annotations

import importlib
from datetime import date
from decimal import Decimal

import pytest
from django.apps import apps

from payments.models import LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import BankReversal, BankStatement, BankTransaction, ReconciliationDay, RefundRequest
from remittances.services import payment_files, refunds, reversals
from remittances.services.funds_out import SourceNotCredited
from remittances.services.reconciliation import reconciliation_run
from tests.factories import AccountFactory
from tests.remittances.refund_helpers import bank_txn, credited_txn, finance, requested, shared_account

pytestmark = pytest.mark.django_db

TxnStatus = BankTransaction.Status
WED = date(2026, 11, 25)


def approved(account, txn, *, now, amount):
    refund = requested(account, txn, by=finance(), now=now, amount=amount)
    return refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)


def file_and_send(*, now):
    """Every approved refund into its payment file (one per debtor account and currency), sent."""
    for payment_file in payment_files.payment_files_generate(actor=finance(), now=now):
        payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=finance(), now=now)


def status_of(txn) -> str:
    return BankTransaction.objects.values_list("status", flat=True).get(pk=txn.pk)


def test_rfd_1_a_credit_refunded_in_full_is_stored_refunded_when_its_payment_file_is_sent(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    approved(account, txn, now=now, amount="100.00")
    assert status_of(txn) == TxnStatus.CREDITED  # approved: the money left the balance, not the bank
    [payment_file] = payment_files.payment_files_generate(actor=finance(), now=now)
    assert status_of(txn) == TxnStatus.CREDITED  # in a file, not yet sent
    payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=finance(), now=now)
    assert status_of(txn) == TxnStatus.REFUNDED
    payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=finance(), now=now)  # replay
    assert status_of(txn) == TxnStatus.REFUNDED
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("0.00")
    with pytest.raises(SourceNotCredited):  # RFD-3: nothing of it is left to refund or move
        requested(account, txn, by=finance(), now=now, amount="1.00")


def test_rfd_1_a_partly_refunded_credit_stays_credited_until_the_last_part_is_sent(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    approved(account, txn, now=now, amount="60.00")
    file_and_send(now=now)
    assert status_of(txn) == TxnStatus.CREDITED
    approved(account, txn, now=now, amount="40.00")
    assert status_of(txn) == TxnStatus.CREDITED
    file_and_send(now=now)
    assert status_of(txn) == TxnStatus.REFUNDED


def test_rfd_1_a_rejected_payment_puts_the_money_back_once_and_the_credit_is_credited_again(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    refund = approved(account, txn, now=now, amount="100.00")
    file_and_send(now=now)
    assert status_of(txn) == TxnStatus.REFUNDED
    # The bank's statement returns the payment, and finance records the same return by hand.
    returned = bank_txn(now=now, receiving=txn.receiving_account, amount="100.00",
                        entry_kind=BankTransaction.EntryKind.REVERSAL, status=TxnStatus.NOT_CREDITABLE,
                        end_to_end_id=f"RFD-{refund.pk}")
    BankTransaction.objects.filter(pk=returned.pk).update(reversal_of="debit")
    assert reversals.reversal_apply(reversal_id=returned.pk, now=now).outcome == BankReversal.Outcome.RETURNED
    refunds.refund_return(refund_id=refund.pk, actor=finance(), reason="AC04 account closed", now=now)
    refunds.refund_return(refund_id=refund.pk, actor=finance(), reason="again", now=now)
    assert LedgerEntry.objects.filter(reverses__refund=refund).count() == 1
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")
    assert status_of(txn) == TxnStatus.CREDITED
    # Its money is there again: it can be refunded again, and that refund's file makes it refunded.
    approved(account, txn, now=now, amount="100.00")
    file_and_send(now=now)
    assert status_of(txn) == TxnStatus.REFUNDED
    assert RefundRequest.objects.filter(bank_transaction=txn, status=RefundRequest.Status.RETURNED).count() == 1


def test_rfd_1_rcn_3_the_proof_counts_the_stored_state(now):
    receiving = shared_account(now=now)
    BankStatement.objects.create(
        receiving_account=receiving, format=BankStatement.Format.CAMT053, identity="RFD1-STORED", currency="EUR",
        opening_balance=Decimal("0.00"), closing_balance=Decimal("0.00"), period_start=WED, period_end=WED,
        file_sha256="r" * 64, imported_at=now,
    )
    account = AccountFactory()
    sent, waiting = (credited_txn(account, now=now, amount=a, receiving=receiving) for a in ("30.00", "20.00"))
    approved(account, sent, now=now, amount="30.00")
    file_and_send(now=now)
    approved(account, waiting, now=now, amount="20.00")  # approved, its file not sent yet
    reconciliation_run(day=WED, now=now)
    totals = ReconciliationDay.objects.get(receiving_account=receiving, day=WED).totals_per_state
    assert (totals["refunded"]["amount"], totals["credited"]["amount"]) == ("30.00", "20.00")


def test_rfd_1_the_data_migration_stores_refunded_on_rows_already_paid_back_in_full(now):
    migration = importlib.import_module("remittances.migrations.0016_rfd_1_refunded_stored")
    account = AccountFactory()
    full, part, unsent = (credited_txn(account, now=now, amount="50.00") for _ in range(3))
    approved(account, full, now=now, amount="50.00")
    approved(account, part, now=now, amount="10.00")
    file_and_send(now=now)
    approved(account, unsent, now=now, amount="50.00")
    # The rows as they were before the migration: credited, whatever their refunds.
    BankTransaction.objects.filter(pk=full.pk).update(status=TxnStatus.CREDITED)
    assert migration.store_refunded(apps, None) == 1
    assert [status_of(t) for t in (full, part, unsent)] == [TxnStatus.REFUNDED, TxnStatus.CREDITED, TxnStatus.CREDITED]
    migration.unstore_refunded(apps, None)
    assert status_of(full) == TxnStatus.CREDITED


def test_rfd_1_rvs_1_the_bank_reversing_a_refunded_credit_leaves_the_account_owing_it(now):
    """Paid back to the payer and then taken back by the bank: the money left twice. The reversal
    still finds the credit (RVS-1) and, the balance being empty, the account owes it (I3)."""
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-REFUNDED-1")
    approved(account, txn, now=now, amount="100.00")
    file_and_send(now=now)
    assert status_of(txn) == TxnStatus.REFUNDED
    reversal = bank_txn(now=now, receiving=txn.receiving_account, amount="100.00",
                        entry_kind=BankTransaction.EntryKind.REVERSAL, status=TxnStatus.NOT_CREDITABLE,
                        end_to_end_id="E2E-REFUNDED-1")
    outcome = reversals.reversal_apply(reversal_id=reversal.pk, now=now)
    assert (outcome.outcome, outcome.original_id) == (BankReversal.Outcome.OWING, txn.pk)
    assert status_of(txn) == TxnStatus.REVERSED
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("0.00")
