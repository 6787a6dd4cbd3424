"""Returning a transfer that cannot be credited to its payer (issue 10; RFD-1's road, no balance).

A credit in another currency than its receiving account's waits in ``review`` and credits nobody.
Finance records its return to the payer, another finance member approves it (four eyes), it goes
into a pain.001 file in the transfer's own currency, and once the file is sent the transfer is
``returned``; no ledger entry is ever written for it. A payment the bank rejects puts it back in
``review``. Only such a transfer can be returned this way, and only once at a time.
"""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from payments.models import LedgerEntry
from remittances.models import BankStatement, BankTransaction, PaymentFile, ReconciliationDay, RefundRequest
from remittances.services import payment_files, refunds
from remittances.services.payer_returns import payer_return_request
from remittances.services.reconciliation import reconciliation_run
from remittances.services.refunds import RefundInvalid
from tests.factories import AccountFactory
from tests.helpers.roles import FINANCE, MANAGERS, confirm_post, in_group, is_confirm_page
from tests.remittances.refund_helpers import PAYER_BIC, PAYER_IBAN, bank_txn, credited_txn, finance, shared_account

pytestmark = pytest.mark.django_db

Status = BankTransaction.Status
WED = date(2026, 11, 25)


def mismatch(now, *, amount: str = "250.00"):
    """A USD transfer on a EUR shared account: recorded for review, credited to nobody."""
    receiving = shared_account(currency="EUR", now=now)
    return bank_txn(now=now, receiving=receiving, amount=amount, currency="USD", status=Status.REVIEW,
                    payer_name="Acme Inc", booking_date=WED)


def recorded(txn, *, by, now):
    return payer_return_request(bank_transaction_id=txn.pk, payer_name="Acme Inc", payer_iban=PAYER_IBAN,
                                payer_bic=PAYER_BIC, reason="Sent in USD to our EUR account", actor=by, now=now)


def status_of(txn) -> str:
    return BankTransaction.objects.values_list("status", flat=True).get(pk=txn.pk)


def send_files(*, by, now) -> list[PaymentFile]:
    files = payment_files.payment_files_generate(actor=by, now=now)
    for payment_file in files:
        payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=by, now=now)
    return files


def test_rfd_1_a_currency_mismatch_is_returned_whole_by_four_eyes_and_a_payment_file_without_a_ledger_entry(now):
    txn = mismatch(now)
    ledger_rows = LedgerEntry.objects.count()
    payer_return = recorded(txn, by=finance("rec"), now=now)
    assert (payer_return.kind, payer_return.amount, payer_return.currency) == ("payer_return", txn.amount, "USD")
    assert payer_return.account_id is None and payer_return.debtor_account_id == txn.receiving_account_id
    approved = refunds.refund_approve(refund_id=payer_return.pk, actor=finance("approver"), now=now)
    assert approved.status == RefundRequest.Status.APPROVED and approved.ledger_entry_id is None
    assert status_of(txn) == Status.REVIEW  # approved, not yet paid out
    [payment_file] = send_files(by=finance("ops"), now=now)
    assert (payment_file.currency, payment_file.total, payment_file.payment_count) == ("USD", txn.amount, 1)
    assert "<InstdAmt Ccy=\"USD\">250.00</InstdAmt>" in payment_file.content
    assert PAYER_IBAN in payment_file.content
    assert status_of(txn) == Status.RETURNED
    assert LedgerEntry.objects.count() == ledger_rows  # never on any balance


def test_rfd_1_whoever_recorded_a_payer_return_cannot_approve_it(now):
    recorder = finance("self")
    payer_return = recorded(mismatch(now), by=recorder, now=now)
    with pytest.raises(refunds.FourEyesViolation):
        refunds.refund_approve(refund_id=payer_return.pk, actor=recorder, now=now)
    assert RefundRequest.objects.get(pk=payer_return.pk).status == RefundRequest.Status.SUBMITTED


def test_rfd_1_only_an_uncredited_transfer_in_another_currency_is_returned_and_one_return_at_a_time(now):
    account_txn = credited_txn(AccountFactory(), now=now)
    repeat = bank_txn(now=now, amount="10.00", currency="EUR", status=Status.REVIEW)  # a REM-4 differing repeat
    for txn in (account_txn, repeat):
        with pytest.raises(RefundInvalid):
            recorded(txn, by=finance(), now=now)
    txn = mismatch(now)
    first = recorded(txn, by=finance(), now=now)
    with pytest.raises(RefundInvalid, match="already has a payer return under way"):
        recorded(txn, by=finance(), now=now)
    refunds.refund_reject(refund_id=first.pk, actor=finance(), reason="wrong IBAN", now=now)
    assert recorded(txn, by=finance(), now=now).status == RefundRequest.Status.SUBMITTED  # rejected: again
    assert RefundRequest.objects.filter(bank_transaction=txn).count() == 2


def test_rfd_1_a_returned_payment_puts_the_transfer_back_in_review_and_moves_no_money(now):
    txn = mismatch(now)
    payer_return = recorded(txn, by=finance(), now=now)
    refunds.refund_approve(refund_id=payer_return.pk, actor=finance(), now=now)
    send_files(by=finance(), now=now)
    ledger_rows = LedgerEntry.objects.count()
    returned = refunds.refund_return(refund_id=payer_return.pk, actor=finance(), reason="AC01 wrong IBAN", now=now)
    assert returned.status == RefundRequest.Status.RETURNED and returned.return_entry_id is None
    assert status_of(txn) == Status.REVIEW and LedgerEntry.objects.count() == ledger_rows
    assert recorded(txn, by=finance(), now=now).status == RefundRequest.Status.SUBMITTED  # it can go again


def test_rcn_3_a_returned_transfer_counts_as_refunded_not_as_a_stray(now):
    txn = mismatch(now, amount="40.00")
    BankStatement.objects.filter(pk=txn.statement_id).update(
        opening_balance=0, closing_balance=0, period_start=WED, period_end=WED)
    payer_return = recorded(txn, by=finance(), now=now)
    refunds.refund_approve(refund_id=payer_return.pk, actor=finance(), now=now)
    send_files(by=finance(), now=now)
    reconciliation_run(day=WED, now=now)
    day = ReconciliationDay.objects.get(receiving_account=txn.receiving_account, day=WED)
    assert day.totals_per_state["refunded"]["amount"] == "40.00"
    assert not day.exceptions.filter(rule="RCN-3").exists()


# --- the admin ----------------------------------------------------------------------------------


def test_rfd_1_finance_returns_a_mismatch_from_its_page_and_another_approves_it_seeing_no_balance_moves(client, now):
    txn = mismatch(now)
    recorder, approver = in_group(FINANCE, "fin-rec"), in_group(FINANCE, "fin-appr")
    client.force_login(recorder)
    page = client.get(reverse("admin:remittances_banktransaction_change", args=[txn.pk])).content.decode()
    url = reverse("admin:remittances_banktransaction_return_to_payer", args=[txn.pk])
    assert url in page and "Return it to the payer" in page
    form = client.get(url)
    assert form.context["form"].initial["payer_name"] == "Acme Inc"
    response = client.post(url, {"payer_name": "Acme Inc", "payer_iban": PAYER_IBAN, "payer_bic": PAYER_BIC,
                                 "reason": "USD on a EUR account"})
    assert response.status_code == 302
    payer_return = RefundRequest.objects.get(bank_transaction=txn)
    assert LogEntry.objects.filter(object_id=str(txn.pk), user=recorder).exists()
    page = client.get(reverse("admin:remittances_banktransaction_change", args=[txn.pk])).content.decode()
    assert reverse("admin:remittances_refundrequest_decide", args=[payer_return.pk]) in page
    client.force_login(approver)
    first = client.post(reverse("admin:remittances_refundrequest_changelist"),
                        {"action": "approve_selected", "_selected_action": [str(payer_return.pk)], "index": "0"})
    assert is_confirm_page(first) and "none changes" in first.content.decode()
    confirm_post(client, first)
    assert RefundRequest.objects.get(pk=payer_return.pk).status == RefundRequest.Status.APPROVED


def test_sec_3_an_account_manager_cannot_return_a_transfer(client, now):
    txn = mismatch(now)
    client.force_login(in_group(MANAGERS, "am-ret"))
    url = reverse("admin:remittances_banktransaction_return_to_payer", args=[txn.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"payer_name": "x", "payer_iban": PAYER_IBAN, "payer_bic": PAYER_BIC,
                             "reason": "x"}).status_code == 403
    assert not RefundRequest.objects.exists()
