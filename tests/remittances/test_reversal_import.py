"""RVS-1/RVS-2 through the real statement import, and the daily proof after it (RCN-1, RCN-2)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from payments.models import LedgerEntry
from remittances.models import BankReversal, BankTransaction, ReconciliationDay
from remittances.services.reconciliation import reconciliation_run
from tests.helpers.statements import do_import, ledger_total, sample
from tests.remittances.samples import build
from tests.remittances.samples.build import Entry, Tx

pytestmark = pytest.mark.django_db

NEXT_DAY = "2026-11-26"


def returns_file(entries, *, opening=build.STANDARD_CLOSING, statement_id="STMT-2026-11-26", iban=build.DEDICATED_IBAN):
    closing = opening + sum((Decimal(e.amount) if e.credit else -Decimal(e.amount)) for e in entries)
    return build.camt(statement_id=statement_id, date=NEXT_DAY, entries=entries, opening=opening, closing=closing,
                      iban=iban).encode()


def test_rvs_1_importing_the_sample_then_its_reversal_debits_once_and_the_proof_stays_green(
        dedicated, customer, now, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        do_import(sample("camt053_v08.xml"), now)
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    reversal = Entry("250.00", credit=False, reversal=True, ref="RVSL-E1",
                     txs=[Tx("250.00", "ACME Corp", "", "Return AC04", "E2E-0001")])
    with django_capture_on_commit_callbacks(execute=True):
        do_import(returns_file([reversal]), now)
    with django_capture_on_commit_callbacks(execute=True):  # the same return again: a duplicate, nothing more
        do_import(returns_file([reversal]), now, file_name="again")
    original = BankTransaction.objects.get(end_to_end_id="E2E-0001", entry_kind="credit")
    [debit] = LedgerEntry.objects.filter(reverses=original.ledger_entry)
    assert debit.amount == Decimal("-250.00")
    assert ledger_total(customer) == build.STANDARD_CREDITABLE - Decimal("250.00")
    record = BankReversal.objects.get(original=original)
    assert record.outcome == BankReversal.Outcome.DEBITED
    # The sample's own reversal (40.00, no end-to-end id, nothing quoted) waits for a person.
    assert BankReversal.objects.filter(outcome=BankReversal.Outcome.UNKNOWN, amount=Decimal("40.00")).count() == 1

    assert reconciliation_run(day=date(2026, 11, 25), now=now) == 1
    assert reconciliation_run(day=date(2026, 11, 26), now=now) == 1
    first, second = (ReconciliationDay.objects.get(receiving_account=dedicated, day=d)
                     for d in (date(2026, 11, 25), date(2026, 11, 26)))
    assert (first.verdict, first.ledger_credited, first.bank_creditable) == ("agreed", build.STANDARD_CREDITABLE,
                                                                              build.STANDARD_CREDITABLE)
    assert (second.verdict, second.ledger_credited, second.bank_creditable) == ("agreed", Decimal("-250.00"),
                                                                                Decimal("-250.00"))
    assert (second.opening_balance, second.booked_total, second.closing_balance) == (
        build.STANDARD_CLOSING, Decimal("-250.00"), build.STANDARD_CLOSING - Decimal("250.00"))


def test_rvs_2_a_return_of_an_unmatched_shared_transfer_closes_it(shared, now, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        do_import(sample("camt053_shared_v08.xml"), now)
    target = BankTransaction.objects.filter(receiving_account=shared, entry_kind="credit").exclude(
        end_to_end_id="").order_by("pk").first()
    reversal = Entry(str(target.amount), credit=False, reversal=True, ref="RVSL-SH",
                     txs=[Tx(str(target.amount), "Someone", "", "Return", target.end_to_end_id)])
    opening = shared.statements.get().closing_balance
    with django_capture_on_commit_callbacks(execute=True):
        do_import(returns_file([reversal], opening=opening, statement_id="SH-2026-11-26", iban=build.SHARED_IBAN), now)
    target.refresh_from_db()
    assert target.status == BankTransaction.Status.REVERSED
    assert not LedgerEntry.objects.exists()
