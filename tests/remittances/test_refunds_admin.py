"""Refunds, transfers and payment files in the admin, as the real roles (RFD-1, RFD-2, SEC-3)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from payments.services.ledger import account_balance
from remittances.models import FundsTransfer, PaymentFile, RefundRequest, transfer_ledger_references
from tests.factories import AccountFactory, UserFactory
from tests.helpers.admin import as_user, messages_of
from tests.helpers.roles import confirm_post, in_group
from tests.remittances.refund_helpers import PAYER_BIC, PAYER_IBAN, credited_txn

pytestmark = pytest.mark.django_db


def test_rfd_1_finance_records_another_approves_generates_downloads_and_marks_sent(client, now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    recorder, approver = in_group("Finance staff", "fin_a"), in_group("Finance staff", "fin_b")
    response = as_user(client, recorder).post(reverse("admin:remittances_refundrequest_record"), {
        "account": account.pk, "bank_transaction": txn.pk, "amount": "25.00", "currency": "EUR",
        "payer_name": "Payer GmbH", "payer_iban": PAYER_IBAN, "payer_bic": PAYER_BIC, "reason": "Overpaid",
    })
    assert response.status_code == 302, response.content[:2000]
    refund = RefundRequest.objects.get()
    decide = reverse("admin:remittances_refundrequest_decide", args=[refund.pk])
    response = client.post(decide, {"decision": "approve", "note": ""}, follow=True)  # the recorder: refused
    assert any("RFD-1" in m for m in messages_of(response))
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.SUBMITTED

    as_user(client, approver).post(decide, {"decision": "approve", "note": "ok"})
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.APPROVED
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("75.00")
    client.post(reverse("admin:remittances_paymentfile_generate"), {"confirm": "on"})
    payment_file = PaymentFile.objects.get()
    download = client.get(reverse("admin:remittances_paymentfile_download", args=[payment_file.pk]))
    assert download.status_code == 200 and download["Content-Type"] == "application/xml"
    assert f"<EndToEndId>RFD-{refund.pk}</EndToEndId>".encode() in download.content
    client.post("/admin/remittances/paymentfile/", {"action": "mark_sent", "_selected_action": [payment_file.pk]})
    payment_file.refresh_from_db()
    assert payment_file.status == PaymentFile.Status.SENT
    assert client.get(reverse("admin:remittances_refundrequest_change", args=[refund.pk])).status_code == 200


def test_rfd_2_manager_initiates_finance_approves_admin_shows_both_sides(client, now):
    source, target = AccountFactory(), AccountFactory()
    txn = credited_txn(source, now=now, amount="100.00")
    response = as_user(client, in_group("Account managers", "am_a")).post(
        reverse("admin:remittances_fundstransfer_initiate"), {
            "from_account": source.pk, "to_account": target.pk, "bank_transaction": txn.pk, "amount": "100.00",
            "currency": "EUR", "reason": "Wrong account number on the transfer",
        })
    assert response.status_code == 302
    transfer = FundsTransfer.objects.get()
    assert client.get(reverse("admin:remittances_fundstransfer_decide", args=[transfer.pk])).status_code == 403
    page = as_user(client, in_group("Finance staff", "fin_c")).post(
        "/admin/remittances/fundstransfer/", {"action": "approve_selected", "_selected_action": [transfer.pk]})
    body = page.content.decode()
    assert page.status_code == 200 and "Balance of" in body and ">Confirm</button>" in body  # issue 10: a preview
    transfer.refresh_from_db()
    assert transfer.status == FundsTransfer.Status.SUBMITTED
    confirm_post(client, page)
    transfer.refresh_from_db()
    assert transfer.status == FundsTransfer.Status.APPROVED
    page = client.get(reverse("admin:remittances_fundstransfer_change", args=[transfer.pk])).content.decode()
    for reference in transfer_ledger_references(transfer.pk):
        assert reference in page
    assert account_balance(account_id=target.pk, currency="EUR") == Decimal("100.00")


def test_sec_3_account_managers_cannot_record_refunds_or_download_files(client, now):
    manager = in_group("Account managers", "am_b")
    as_user(client, manager)
    assert client.get(reverse("admin:remittances_refundrequest_record")).status_code == 403
    assert client.post(reverse("admin:remittances_paymentfile_generate"), {"confirm": "on"}).status_code == 403
    assert client.get(reverse("admin:remittances_fundstransfer_initiate")).status_code == 200
    assert not RefundRequest.objects.exists() and not PaymentFile.objects.exists()


def test_sec_1_a_card_number_typed_as_the_refund_reason_is_refused_and_not_shown_back(client, now):
    account = AccountFactory()
    txn = credited_txn(account, now=now)
    response = as_user(client, in_group("Finance staff", "fin_d")).post(
        reverse("admin:remittances_refundrequest_record"), {
            "account": account.pk, "bank_transaction": txn.pk, "amount": "5.00", "currency": "EUR",
            "payer_name": "Payer", "payer_iban": PAYER_IBAN, "payer_bic": PAYER_BIC, "reason": "4242424242424242",
        })
    assert response.status_code == 200 and b"4242424242424242" not in response.content
    assert not RefundRequest.objects.exists()


# --- issue 10: approving from the list goes through a confirmation page ---------------------------


def recorded_refund(client, recorder, now, amount="25.00") -> RefundRequest:
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    as_user(client, recorder).post(reverse("admin:remittances_refundrequest_record"), {
        "account": account.pk, "bank_transaction": txn.pk, "amount": amount, "currency": "EUR",
        "payer_name": "Payer GmbH", "payer_iban": PAYER_IBAN, "payer_bic": PAYER_BIC, "reason": "Overpaid",
    })
    return RefundRequest.objects.get()


def test_rfd_1_approve_confirmation_shows_the_balance_after_and_debits_once(client, now):
    refund = recorded_refund(client, in_group("Finance staff", "fin_a"), now)
    as_user(client, in_group("Finance staff", "fin_b"))
    page = client.post("/admin/remittances/refundrequest/", {"action": "approve_selected", "_selected_action": [refund.pk]})
    body = page.content.decode()
    assert page.status_code == 200 and "100.00 EUR" in body and "75.00 EUR" in body and PAYER_IBAN in body
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.SUBMITTED  # the page changed nothing
    assert account_balance(account_id=refund.account_id, currency="EUR") == Decimal("100.00")
    confirm_post(client, page)
    confirm_post(client, page)  # double submit
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.APPROVED
    assert account_balance(account_id=refund.account_id, currency="EUR") == Decimal("75.00")


def test_rfd_1_the_recorder_sees_the_four_eyes_refusal_and_no_usable_confirm(client, now):
    recorder = in_group("Finance staff", "fin_a")
    refund = recorded_refund(client, recorder, now)
    page = client.post("/admin/remittances/refundrequest/", {"action": "approve_selected", "_selected_action": [refund.pk]})
    body = page.content.decode()
    assert "RFD-1" in body and "You recorded this refund" in body and "disabled" in body
    confirm_post(client, page)  # confirmed anyway: the service refuses
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.SUBMITTED


def test_rfd_3_a_refund_above_the_credit_left_is_refused_on_the_page(client, now):
    refund = recorded_refund(client, in_group("Finance staff", "fin_a"), now, amount="90.00")
    RefundRequest.objects.filter(pk=refund.pk).update(amount=Decimal("150.00"))  # more than the credit
    as_user(client, in_group("Finance staff", "fin_b"))
    page = client.post("/admin/remittances/refundrequest/", {"action": "approve_selected", "_selected_action": [refund.pk]})
    assert "RFD-3" in page.content.decode()
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.SUBMITTED
