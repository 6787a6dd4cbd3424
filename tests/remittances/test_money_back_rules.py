"""Issue 13, the pieces finished last: statement sequence numbers (RCN-1), the direction of a
reversal (RVS-1), a refund payment the bank returned in a statement (RFD-1), the payment-file
beat task (RFD-1) and finance's queue of accounts left owing (RVS-1)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from payments.models import Bill, LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import (
    BankReversal,
    BankStatement,
    BankTransaction,
    PaymentFile,
    ReconciliationDay,
    RefundRequest,
)
from remittances.parsers import parse_statement_file
from remittances.selectors import accounts_left_owing_by_reversal
from remittances.services import payment_files, refunds, reversals
from remittances.services.reconciliation import reconciliation_run
from remittances.tasks import generate_payment_files
from tests.factories import AccountFactory
from tests.helpers.statements import do_import, sample
from tests.remittances.refund_helpers import bank_txn, credited_txn, finance, requested, shared_account, staff
from tests.remittances.samples import build

pytestmark = pytest.mark.django_db

Kind = BankTransaction.EntryKind
Outcome = BankReversal.Outcome
MON, TUE, WED = date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)


def statement(receiving, day, opening, closing, *, now, number=None, n=[0]):  # noqa: B006 - a counter
    n[0] += 1
    return BankStatement.objects.create(
        receiving_account=receiving, format=BankStatement.Format.CAMT053, identity=f"SEQ-{n[0]}", currency="EUR",
        opening_balance=Decimal(opening), closing_balance=Decimal(closing), period_start=day, period_end=day,
        sequence_number=number, file_sha256=f"seq{n[0]:061d}", imported_at=now,
    )


def rcn1_details(receiving, day) -> list[str]:
    record = ReconciliationDay.objects.get(receiving_account=receiving, day=day)
    return [item.detail for item in record.exceptions.filter(rule="RCN-1")]


def with_sequence(document: str, number: int, tag: str = "ElctrncSeqNb") -> bytes:
    """A built camt.053 with the statement's running number (it follows ``Stmt/Id`` in the schema)."""
    head, tail = document.split("</Id>", 1)
    return f"{head}</Id>\n      <{tag}>{number}</{tag}>{tail}".encode()


# --- RCN-1: statement sequence numbers ----------------------------------------------------------


def test_rcn_1_the_parsers_read_the_statements_running_number():
    [camt] = parse_statement_file(with_sequence(build.camt(), 417))
    [legal] = parse_statement_file(with_sequence(build.camt(), 9, tag="LglSeqNb"))
    [mt940] = parse_statement_file(sample("mt940_day.sta"))  # :28C:00042/001, page 1 of statement 42
    [none] = parse_statement_file(sample("camt053_v08.xml"))
    assert (camt.sequence_number, legal.sequence_number, mt940.sequence_number, none.sequence_number) == (
        417, 9, 42, None)


def test_rcn_1_a_missing_statement_number_is_flagged_with_the_statements(now):
    receiving = shared_account(now=now)
    first = statement(receiving, MON, "0.00", "0.00", now=now, number=7)
    second = statement(receiving, TUE, "0.00", "0.00", now=now, number=9)
    reconciliation_run(day=TUE, now=now)
    [item] = ReconciliationDay.objects.get(receiving_account=receiving, day=TUE).exceptions.filter(rule="RCN-1")
    assert item.detail == "Statement sequence: missing statement number(s) 8."
    assert item.statement_ids == [first.pk, second.pk]
    assert ReconciliationDay.objects.get(receiving_account=receiving, day=TUE).verdict == "difference"


def test_rcn_1_consecutive_numbers_pages_and_a_restart_at_1_agree_a_step_back_does_not(now):
    steady, paged, restarted, backwards = (shared_account(now=now) for _ in range(4))
    for receiving, numbers in ((steady, (7, [8])), (paged, (7, [8, 8])), (restarted, (9912, [1])),
                               (backwards, (9, [5]))):
        statement(receiving, MON, "0.00", "0.00", now=now, number=numbers[0])
        for number in numbers[1]:
            statement(receiving, TUE, "0.00", "0.00", now=now, number=number)
    gapped = shared_account(now=now)
    statement(gapped, MON, "0.00", "0.00", now=now, number=3)
    statement(gapped, TUE, "0.00", "0.00", now=now, number=4)
    statement(gapped, TUE, "0.00", "0.00", now=now, number=7)  # the same day, numbers 5 and 6 missing
    reconciliation_run(day=TUE, now=now)
    assert rcn1_details(steady, TUE) == rcn1_details(paged, TUE) == rcn1_details(restarted, TUE) == []
    assert rcn1_details(backwards, TUE) == ["Statement sequence: statement number 5 comes after 9."]
    assert rcn1_details(gapped, TUE) == ["Statement sequence: missing statement number(s) 5..6."]


def test_rcn_1_the_import_keeps_the_number_and_the_proof_sees_a_gap_between_two_files(shared, now):
    entries = [build.Entry("10.00", ref="SEQ-A", txs=[build.Tx("10.00", "Payer")])]
    monday = build.camt(iban=build.SHARED_IBAN, statement_id="SEQ-MON", entries=entries, date="2026-11-23",
                        closing=build.STANDARD_OPENING + 10)
    tuesday = build.camt(iban=build.SHARED_IBAN, statement_id="SEQ-TUE", entries=[], date="2026-11-24",
                         opening=build.STANDARD_OPENING + 10, closing=build.STANDARD_OPENING + 10)
    do_import(with_sequence(monday, 100), now)
    do_import(with_sequence(tuesday, 102), now, file_name="tuesday")
    assert sorted(BankStatement.objects.values_list("sequence_number", flat=True)) == [100, 102]
    reconciliation_run(day=TUE, now=now)
    assert rcn1_details(shared, TUE) == ["Statement sequence: missing statement number(s) 101."]


# --- RVS-1: the direction of a reversal ---------------------------------------------------------


def test_rvs_1_the_import_stores_each_reversals_direction_and_the_record_keeps_it(dedicated, now,
                                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        do_import(sample("mt940_day.sta"), now)  # RC 40.00 (a reversed credit), RD 15.00 (a reversed debit)
    lines = dict(BankTransaction.objects.filter(entry_kind=Kind.REVERSAL).values_list("amount", "reversal_of"))
    assert lines == {Decimal("40.00"): "credit", Decimal("15.00"): "debit"}
    assert set(BankTransaction.objects.exclude(entry_kind=Kind.REVERSAL).values_list("reversal_of", flat=True)) == {""}
    records = dict(BankReversal.objects.values_list("amount", "reversal_of"))
    assert records == {Decimal("40.00"): "credit", Decimal("15.00"): "debit"}
    [camt_line] = parse_statement_file(sample("camt053_v08.xml"))[0].entries[3:4]  # DBIT + RvslInd
    assert (camt_line.reversal, camt_line.reversal_of) == (True, "credit")


def test_rvs_1_a_reversal_of_a_debit_never_debits_the_customer_whose_credit_it_names(now):
    account = AccountFactory()
    original = credited_txn(account, now=now, amount="80.00", end_to_end_id="E2E-BOTH-WAYS")
    line = bank_txn(now=now, receiving=original.receiving_account, amount="80.00", entry_kind=Kind.REVERSAL,
                    status=BankTransaction.Status.NOT_CREDITABLE, end_to_end_id="E2E-BOTH-WAYS")
    BankTransaction.objects.filter(pk=line.pk).update(reversal_of="debit")
    record = reversals.reversal_apply(reversal_id=line.pk, now=now)
    assert (record.outcome, record.reversal_of, record.original_id) == (Outcome.UNKNOWN, "debit", None)
    original.refresh_from_db()
    assert original.status == BankTransaction.Status.CREDITED
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("80.00")


def test_rcn_1_a_reversed_debit_is_money_in_a_reversed_credit_money_out(now):
    receiving = shared_account(now=now)
    statement(receiving, MON, "100.00", "100.00", now=now)
    today = statement(receiving, TUE, "100.00", "105.00", now=now)
    for n, (amount, direction) in enumerate((("15.00", "debit"), ("10.00", "credit"))):
        BankTransaction.objects.create(
            statement=today, receiving_account=receiving, bank_reference=f"DIR-{n}", position=n + 1,
            entry_kind=Kind.REVERSAL, reversal_of=direction, status=BankTransaction.Status.NOT_CREDITABLE,
            amount=Decimal(amount), currency="EUR", booking_date=TUE, received_at=now,
        )
    reconciliation_run(day=TUE, now=now)
    record = ReconciliationDay.objects.get(receiving_account=receiving, day=TUE)
    assert (record.booked_total, record.verdict) == (Decimal("5.00"), "agreed")
    assert rcn1_details(receiving, TUE) == []


# --- RFD-1: the next payment file, and a payment the bank returned ------------------------------


def test_rfd_1_the_beat_task_puts_an_approved_refund_into_the_next_file_once(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    refund = requested(account, txn, by=finance(), now=now, amount="30.00")
    refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)
    assert generate_payment_files.apply().get() == 1
    assert generate_payment_files.apply().get() == 0  # a second run: nothing left, nothing written twice
    refund.refresh_from_db()
    [payment_file] = PaymentFile.objects.all()
    assert (refund.status, refund.payment_file_id, payment_file.total) == (
        RefundRequest.Status.IN_FILE, payment_file.pk, Decimal("30.00"))
    assert "<EndToEndId>RFD-%d</EndToEndId>" % refund.pk in payment_file.content


def test_rfd_1_a_statement_returning_the_refund_payment_credits_the_money_back_once(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    refund = requested(account, txn, by=finance(), now=now, amount="40.00")
    refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)
    [payment_file] = payment_files.payment_files_generate(actor=finance(), now=now)
    payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=finance(), now=now)
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("60.00")
    returned = bank_txn(now=now, receiving=txn.receiving_account, amount="40.00", entry_kind=Kind.REVERSAL,
                        status=BankTransaction.Status.NOT_CREDITABLE, end_to_end_id=f"RFD-{refund.pk}")
    BankTransaction.objects.filter(pk=returned.pk).update(reversal_of="debit")
    record = reversals.reversal_apply(reversal_id=returned.pk, now=now)
    again = reversals.reversal_apply(reversal_id=returned.pk, now=now)
    assert (record.outcome, record.account_id, again.pk) == (Outcome.RETURNED, account.pk, record.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.return_entry_id) == (RefundRequest.Status.RETURNED, record.ledger_entry_id)
    assert LedgerEntry.objects.filter(reverses=refund.ledger_entry).count() == 1
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")
    # A second return line naming the same refund finds it returned already: it waits for review.
    other = bank_txn(now=now, receiving=txn.receiving_account, amount="40.00", entry_kind=Kind.REVERSAL,
                     status=BankTransaction.Status.NOT_CREDITABLE, remittance_info=f"Return RFD-{refund.pk}")
    BankTransaction.objects.filter(pk=other.pk).update(reversal_of="debit")
    assert reversals.reversal_apply(reversal_id=other.pk, now=now).outcome == Outcome.UNKNOWN
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")


# --- RVS-1: finance's queue of accounts left owing ----------------------------------------------


def test_rvs_1_accounts_left_owing_by_reversal_lists_the_unresolved_with_the_entries_involved(now):
    account = AccountFactory()
    original = credited_txn(account, now=now, amount="100.00", end_to_end_id="E2E-OWES")
    bill = Bill.objects.create(
        account=account, kind=Bill.Kind.MONTHLY, reference="bill-owes", issued_at=now, due_date=now.date(),
        amount_before_tax=Decimal("100.00"), total=Decimal("100.00"), currency="EUR",
        amount_paid=Decimal("100.00"), status=Bill.Status.PAID, paid_at=now,
    )
    LedgerEntry.objects.create(account=account, amount=Decimal("-100.00"), currency="EUR",
                               kind=LedgerEntry.Kind.BILL_PAYMENT, reference=f"bill:{bill.pk}", created_at=now)
    kept = credited_txn(AccountFactory(), now=now, amount="20.00", end_to_end_id="E2E-FINE")
    for source in (original, kept):
        line = bank_txn(now=now, receiving=source.receiving_account, amount=str(source.amount),
                        entry_kind=Kind.REVERSAL, status=BankTransaction.Status.NOT_CREDITABLE,
                        end_to_end_id=source.end_to_end_id)
        reversals.reversal_apply(reversal_id=line.pk, now=now)
    [owing] = accounts_left_owing_by_reversal()
    assert (owing.account_id, owing.amount, owing.original_id) == (account.pk, Decimal("100.00"), original.pk)
    assert owing.original.ledger_entry_id == original.ledger_entry_id
    reversals.reversal_resolve(reversal_record_id=owing.pk, actor=finance_resolver(), resolution="Paid again",
                               now=now)
    assert list(accounts_left_owing_by_reversal()) == []


def finance_resolver():
    return staff("fin_owing", "view_bankreversal", "resolve_bankreversal")
