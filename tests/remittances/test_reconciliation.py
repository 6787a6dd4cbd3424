"""The daily reconciliation proof (RCN-1, RCN-2, RCN-3) and its job."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing_backoffice.permissions import StaffPermissionDenied
from payments.models import LedgerEntry
from payments.services.ledger import ledger_post
from remittances.models import (
    BankStatement,
    BankTransaction,
    ReconciliationDay,
    ReconciliationException,
    RemittanceAccount,
    bank_transaction_ledger_reference,
)
from remittances.services import payment_files, reconciliation, refunds, reversals
from remittances.tasks import reconcile_day
from tests.factories import AccountFactory
from tests.remittances.refund_helpers import credited_txn, finance, requested, shared_account, staff

pytestmark = pytest.mark.django_db

Verdict = ReconciliationDay.Verdict
THU, FRI, MON, TUE = date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24)
Kind = BankTransaction.EntryKind


def statement(receiving, day, opening, closing, *, now, n=[0]):  # noqa: B006 - a counter
    n[0] += 1
    return BankStatement.objects.create(
        receiving_account=receiving, format=BankStatement.Format.CAMT053, identity=f"RCN-{n[0]}", currency="EUR",
        opening_balance=Decimal(opening), closing_balance=Decimal(closing), period_start=day, period_end=day,
        file_sha256=f"rcn{n[0]:061d}", imported_at=now,
    )


def line(stmt, amount, *, now, kind=Kind.CREDIT, status=BankTransaction.Status.UNMATCHED, n=[0]):  # noqa: B006
    n[0] += 1
    return BankTransaction.objects.create(
        statement=stmt, receiving_account=stmt.receiving_account, bank_reference=f"RCN-L{n[0]}", position=n[0],
        entry_kind=kind, status=status, amount=Decimal(amount), currency="EUR", booking_date=stmt.period_end,
        value_date=stmt.period_end, received_at=now,
    )


def dedicated(now):
    account = AccountFactory()
    return RemittanceAccount.objects.create(
        kind=RemittanceAccount.Kind.DEDICATED, account=account, number=f"DE00RCNDED{account.pk:08d}",
        bank_name="Example Bank", bic="EXBKDEFFXXX", bank_country="DE", currency="EUR", beneficiary_name="Cloud Ltd",
        issued_at=now,
    )


def credit_line(txn, *, now):
    posting = ledger_post(account_id=txn.receiving_account.account_id, amount=txn.amount, currency="EUR",
                          kind=LedgerEntry.Kind.REMITTANCE_CREDIT, reference=bank_transaction_ledger_reference(txn.pk),
                          now=now)
    txn.status, txn.account_id, txn.ledger_entry = BankTransaction.Status.CREDITED, txn.receiving_account.account_id, posting.entry
    txn.save()


def day_of(receiving, day) -> ReconciliationDay:
    return ReconciliationDay.objects.get(receiving_account=receiving, day=day)


def test_rcn_1_closing_equals_previous_closing_plus_booked_entries_agreed(now):
    receiving = shared_account(now=now)
    statement(receiving, THU, "0.00", "100.00", now=now)
    fri = statement(receiving, FRI, "100.00", "130.00", now=now)
    line(fri, "50.00", now=now)
    line(fri, "20.00", now=now, kind=Kind.DEBIT)
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    assert (day.verdict, day.opening_balance, day.booked_total, day.closing_balance) == (
        Verdict.AGREED, Decimal("100.00"), Decimal("30.00"), Decimal("130.00"))
    assert not day.exceptions.exists()


def test_rcn_1_a_closing_that_does_not_add_up_and_a_broken_chain_are_exceptions(now):
    receiving = shared_account(now=now)
    thu = statement(receiving, THU, "0.00", "100.00", now=now)
    fri = statement(receiving, FRI, "90.00", "150.00", now=now)  # opens at 90, not 100
    line(fri, "60.00", now=now)
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    assert day.verdict == Verdict.DIFFERENCE
    found = list(day.exceptions.all())
    assert len(found) == 2  # the chain is broken, and closing != previous closing + booked entries
    assert all(e.rule == "RCN-1" and e.statement_ids == [thu.pk, fri.pk] for e in found)
    assert [e.amount for e in found] == [Decimal("-10.00"), Decimal("-10.00")]  # both say 10 is missing
    assert "does not continue" in found[0].detail and "closing balance is 150.00" in found[1].detail


def test_rcn_1_a_missing_statement_day_is_flagged_weekends_are_not(now):
    receiving = shared_account(now=now)
    statement(receiving, THU, "0.00", "0.00", now=now)
    statement(receiving, MON, "0.00", "0.00", now=now)  # Friday missing; Saturday and Sunday are no bank days
    reconciliation.reconciliation_run(day=MON, now=now)
    [exception] = day_of(receiving, MON).exceptions.all()
    assert exception.rule == "RCN-1" and "2026-11-20" in exception.detail
    assert "2026-11-21" not in exception.detail and "2026-11-22" not in exception.detail
    reconciliation.reconciliation_run(day=TUE, now=now)  # no statement on a weekday after the last one
    assert "No statement for 2026-11-24" in day_of(receiving, TUE).exceptions.get().detail


def test_rcn_2_dedicated_ledger_credits_equal_creditable_lines_less_reversals(now):
    receiving = dedicated(now)
    fri = statement(receiving, FRI, "0.00", "150.00", now=now)
    credit_line(line(fri, "100.00", now=now, status=BankTransaction.Status.MATCHED), now=now)
    credit_line(line(fri, "50.00", now=now, status=BankTransaction.Status.MATCHED), now=now)
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    assert (day.verdict, day.ledger_credited, day.bank_creditable) == (Verdict.AGREED, Decimal("150.00"), Decimal("150.00"))


def test_rcn_2_a_line_never_credited_is_an_exception_with_the_entry_then_resolved_by_a_person(now):
    receiving = dedicated(now)
    fri = statement(receiving, FRI, "0.00", "150.00", now=now)
    credit_line(line(fri, "100.00", now=now, status=BankTransaction.Status.MATCHED), now=now)
    stuck = line(fri, "50.00", now=now, status=BankTransaction.Status.MATCHED)
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    [exception] = day.exceptions.all()
    assert (exception.rule, exception.amount, exception.transaction_ids) == ("RCN-2", Decimal("50.00"), [stuck.pk])
    with pytest.raises(StaffPermissionDenied):
        reconciliation.reconciliation_exception_resolve(exception_id=exception.pk, actor=finance(), resolution="x", now=now)
    clerk = staff("rcn_fin", "view_reconciliationday", "resolve_reconciliationday")
    with pytest.raises(reconciliation.ResolutionRequired):
        reconciliation.reconciliation_exception_resolve(exception_id=exception.pk, actor=clerk, resolution=" ", now=now)
    reconciliation.reconciliation_exception_resolve(exception_id=exception.pk, actor=clerk,
                                                    resolution="Credited by hand after the outage", now=now)
    day.refresh_from_db()
    exception.refresh_from_db()
    assert day.verdict == Verdict.RESOLVED and exception.resolved_by_id == clerk.pk


def test_rcn_2_a_reversal_of_a_credited_line_keeps_the_proof_green(now):
    receiving = dedicated(now)
    fri = statement(receiving, FRI, "0.00", "0.00", now=now)
    original = line(fri, "100.00", now=now, status=BankTransaction.Status.MATCHED)
    BankTransaction.objects.filter(pk=original.pk).update(end_to_end_id="E2E-RCN")
    original.refresh_from_db()
    credit_line(original, now=now)
    back = line(fri, "100.00", now=now, kind=Kind.REVERSAL, status=BankTransaction.Status.NOT_CREDITABLE)
    BankTransaction.objects.filter(pk=back.pk).update(end_to_end_id="E2E-RCN")
    assert reversals.reversal_apply(reversal_id=back.pk, now=now).outcome == "debited"
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    assert (day.verdict, day.ledger_credited, day.bank_creditable) == (Verdict.AGREED, Decimal("0.00"), Decimal("0.00"))


def test_rcn_3_shared_credits_totals_per_state_and_age_and_strays(now):
    receiving = shared_account(now=now)
    fri = statement(receiving, FRI, "0.00", "0.00", now=now)
    account = AccountFactory()
    line(fri, "10.00", now=now)
    line(fri, "20.00", now=now, status=BankTransaction.Status.CLAIMED)
    refunded = credited_txn(account, now=now, amount="30.00", receiving=receiving)
    BankTransaction.objects.filter(pk=refunded.pk).update(booking_date=FRI)
    refund = requested(account, refunded, by=finance(), now=now, amount="30.00")
    refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)
    for payment_file in payment_files.payment_files_generate(actor=finance(), now=now):  # RFD-1: sent
        payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=finance(), now=now)
    stray = line(fri, "5.00", now=now, status=BankTransaction.Status.MATCHED)  # matched on a shared account
    BankStatement.objects.filter(pk=fri.pk).update(closing_balance=Decimal("0.00"))
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    totals = day.totals_per_state
    assert (totals["unmatched"]["amount"], totals["claimed"]["amount"], totals["refunded"]["amount"]) == (
        "10.00", "20.00", "30.00")
    assert totals["unmatched"]["by_age"] == {"0-7 days": {"count": 1, "amount": "10.00"}}
    rcn3 = day.exceptions.get(rule="RCN-3")
    assert rcn3.transaction_ids == [stray.pk]


def test_rcn_job_runs_once_per_day_per_account_and_set_based(now):
    accounts = [shared_account(now=now) for _ in range(5)] + [dedicated(now) for _ in range(5)]
    for receiving in accounts:
        statement(receiving, FRI, "0.00", "0.00", now=now)
    with CaptureQueriesContext(connection) as first:
        assert reconcile_day.run(day=FRI.isoformat()) == 10
    assert reconcile_day.run(day=FRI.isoformat()) == 0  # the window is taken
    assert reconciliation.reconciliation_run(day=FRI, now=now) == 0  # and the days exist
    assert ReconciliationDay.objects.filter(day=FRI).count() == 10
    more = [shared_account(now=now) for _ in range(20)]
    for receiving in more:
        statement(receiving, THU, "0.00", "0.00", now=now)
    with CaptureQueriesContext(connection) as second:
        assert reconciliation.reconciliation_run(day=THU, now=now) == 30
    assert len(second) <= len(first) + 2  # a fixed number of queries, whatever the number of accounts
    assert ReconciliationException.objects.filter(day__day=FRI).count() == 0


def test_rcn_the_reconciliation_page_per_account_and_day_and_the_resolution_by_finance(client, now):
    from tests.helpers.admin import as_user
    from tests.helpers.roles import in_group

    receiving = shared_account(now=now)
    statement(receiving, THU, "0.00", "100.00", now=now)
    fri = statement(receiving, FRI, "100.00", "999.00", now=now)
    line(fri, "50.00", now=now)
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    as_user(client, in_group("Finance staff", "rcn_page"))
    page = client.get(reverse("admin:remittances_reconciliationday_change", args=[day.pk])).content.decode()
    for figure in ("100.00", "50.00", "999.00", "unmatched", "Difference", "RCN-1"):
        assert figure in page
    assert "2026-11-20: difference" in page and "2026-11-19: not run" in page  # the 30-day strip
    exception = day.exceptions.get()
    response = client.post(reverse("admin:remittances_reconciliationexception_resolve", args=[exception.pk]),
                           {"resolution": "Bank corrected the closing balance"})
    assert response.status_code == 302
    day.refresh_from_db()
    assert day.verdict == Verdict.RESOLVED
    assert client.get("/admin/remittances/reconciliationexception/?open=yes").status_code == 200
    assert client.get("/admin/remittances/bankreversal/?open=yes").status_code == 200


def test_rcn_2_a_reversal_the_balance_could_not_take_is_a_difference_naming_the_reversal(now):
    receiving = dedicated(now)
    fri = statement(receiving, FRI, "0.00", "0.00", now=now)
    original = line(fri, "100.00", now=now, status=BankTransaction.Status.MATCHED)
    BankTransaction.objects.filter(pk=original.pk).update(end_to_end_id="E2E-OWE")
    original.refresh_from_db()
    credit_line(original, now=now)
    ledger_post(account_id=receiving.account_id, amount="-100.00", currency="EUR", kind=LedgerEntry.Kind.BILL_PAYMENT,
                reference="bill-paid-before-the-return", now=now)  # the money was spent on a bill
    back = line(fri, "100.00", now=now, kind=Kind.REVERSAL, status=BankTransaction.Status.NOT_CREDITABLE)
    BankTransaction.objects.filter(pk=back.pk).update(end_to_end_id="E2E-OWE")
    assert reversals.reversal_apply(reversal_id=back.pk, now=now).outcome == "owing"
    reconciliation.reconciliation_run(day=FRI, now=now)
    day = day_of(receiving, FRI)
    [exception] = day.exceptions.all()
    assert (day.verdict, exception.rule, exception.transaction_ids) == (Verdict.DIFFERENCE, "RCN-2", [back.pk])
    assert (day.ledger_credited, day.bank_creditable, exception.amount) == (
        Decimal("100.00"), Decimal("0.00"), Decimal("-100.00"))
