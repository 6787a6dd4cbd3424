"""Outgoing pain.001 payment files of approved refunds (RFD-1)."""

from __future__ import annotations

import importlib.resources
import re
from decimal import Decimal
from xml.etree import ElementTree as ET

import pytest
import xmlschema

from billing_backoffice.logging import card_numbers_in
from billing_backoffice.permissions import StaffPermissionDenied
from payments.models import LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import PaymentFile, RefundRequest
from remittances.payment_files import NAMESPACE
from remittances.services import payment_files, refunds
from tests.factories import AccountFactory
from tests.remittances.refund_helpers import credited_txn, finance, manager, requested, shared_account

pytestmark = pytest.mark.django_db

Status = RefundRequest.Status
NS = {"p": NAMESPACE}


@pytest.fixture(scope="module")
def pain001_schema():
    path = importlib.resources.files("sepaxml") / "schemas" / "pain.001.001.03.xsd"
    return xmlschema.XMLSchema(str(path))


def approved_refund(account, txn, *, now, amount="40.00"):
    refund = requested(account, txn, by=finance(), now=now, amount=amount)
    return refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)


def test_rfd_1_one_file_per_debtor_account_and_currency_each_payment_in_exactly_one(now, pain001_schema):
    account = AccountFactory()
    eur_a, eur_b = shared_account(currency="EUR", now=now), shared_account(currency="EUR", now=now)
    usd = shared_account(currency="USD", now=now, number="GB29NWBK60161331926819")
    r1 = approved_refund(account, credited_txn(account, now=now, receiving=eur_a), now=now, amount="10.00")
    r2 = approved_refund(account, credited_txn(account, now=now, receiving=eur_a), now=now, amount="20.50")
    r3 = approved_refund(account, credited_txn(account, now=now, receiving=eur_b), now=now)
    r4 = approved_refund(account, credited_txn(account, now=now, receiving=usd, currency="USD"), now=now)
    pending = requested(account, credited_txn(account, now=now, receiving=eur_a), by=finance(), now=now)

    files = payment_files.payment_files_generate(actor=finance(), now=now)
    assert len(files) == 3
    assert payment_files.payment_files_generate(actor=finance(), now=now) == []  # nothing left to pay
    by_debtor = {(f.debtor_account_id, f.currency): f for f in files}
    first = by_debtor[(eur_a.pk, "EUR")]
    assert (first.payment_count, first.total) == (2, Decimal("30.50"))
    for refund in (r1, r2, r3, r4):
        refund.refresh_from_db()
        assert refund.status == Status.IN_FILE
    pending.refresh_from_db()
    assert pending.status == Status.SUBMITTED and pending.payment_file_id is None
    end_to_end = []
    for payment_file in files:
        pain001_schema.validate(payment_file.content)  # raises on any schema violation
        document = ET.fromstring(payment_file.content.encode())
        ids = [e.text for e in document.iterfind(".//p:CdtTrfTxInf/p:PmtId/p:EndToEndId", NS)]
        assert document.findtext(".//p:GrpHdr/p:NbOfTxs", namespaces=NS) == str(len(ids))
        end_to_end += ids
    assert sorted(end_to_end) == sorted(f"RFD-{r.pk}" for r in (r1, r2, r3, r4))  # each in exactly one file
    usd_file = by_debtor[(usd.pk, "USD")]
    document = ET.fromstring(usd_file.content.encode())
    assert document.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=NS) == "GB29NWBK60161331926819"
    assert document.find(".//p:InstdAmt", NS).get("Ccy") == "USD"
    assert document.findtext(".//p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) == r4.payer_iban


def test_rfd_1_a_schema_violation_is_caught_by_the_validation(now, pain001_schema):
    """The schema check is real: a file missing its message id is refused."""
    account = AccountFactory()
    approved_refund(account, credited_txn(account, now=now), now=now)
    [payment_file] = payment_files.payment_files_generate(actor=finance(), now=now)
    broken = payment_file.content.replace("<MsgId>", "<MsgIdX>").replace("</MsgId>", "</MsgIdX>")
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        pain001_schema.validate(broken)


def test_rfd_1_file_marked_sent_then_a_rejected_payment_puts_the_money_back_once(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    refund = approved_refund(account, txn, now=now, amount="40.00")
    [payment_file] = payment_files.payment_files_generate(actor=finance(), now=now)
    clerk = finance()
    sent = payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=clerk, now=now)
    assert (sent.status, sent.sent_by_id) == (PaymentFile.Status.SENT, clerk.pk)
    refund.refresh_from_db()
    assert refund.status == Status.SENT
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("60.00")

    returned = refunds.refund_return(refund_id=refund.pk, actor=clerk, reason="AC04 account closed", now=now)
    again = refunds.refund_return(refund_id=refund.pk, actor=clerk, reason="again", now=now)
    assert returned.status == again.status == Status.RETURNED
    back = LedgerEntry.objects.filter(reverses=refund.ledger_entry)
    assert back.count() == 1 and back.get().amount == Decimal("40.00")
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")
    # The returned money is refundable again (RFD-3 counts only refunds whose money left).
    assert requested(account, txn, by=finance(), now=now, amount="100.00").status == Status.SUBMITTED


def test_rfd_1_only_a_refund_in_a_file_can_be_returned(now):
    account = AccountFactory()
    refund = approved_refund(account, credited_txn(account, now=now), now=now)
    with pytest.raises(refunds.RefundStateError):
        refunds.refund_return(refund_id=refund.pk, actor=finance(), reason="x", now=now)
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("60.00")


def test_rfd_1_sec_3_account_managers_may_not_generate_or_send_files(now):
    account = AccountFactory()
    approved_refund(account, credited_txn(account, now=now), now=now)
    with pytest.raises(StaffPermissionDenied):
        payment_files.payment_files_generate(actor=manager(), now=now)
    assert not PaymentFile.objects.exists()
    [payment_file] = payment_files.payment_files_generate(actor=finance(), now=now)
    with pytest.raises(StaffPermissionDenied):
        payment_files.payment_file_mark_sent(payment_file_id=payment_file.pk, actor=manager(), now=now)
    payment_file.refresh_from_db()
    assert payment_file.status == PaymentFile.Status.GENERATED


def test_rfd_1_sec_1_a_files_message_id_never_reads_as_a_card_number(now):
    """SEC-1: a payment file's message id (logged, stored, sent to the bank) is the date and
    random letters, so no scan of a log line or a table ever reads a card number in it; it is
    unique per file and fits pain.001's 35 characters."""
    ids = {payment_files._message_id(now) for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(rf"RFD{now:%Y%m%d}[A-Z]{{20}}", message_id) for message_id in ids)
    assert card_numbers_in(" ".join(ids)) == []
