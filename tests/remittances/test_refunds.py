"""Refunds of credited funds (RFD-1, RFD-3, SEC-1, SEC-3)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing_backoffice.free_text import CardNumberInText
from billing_backoffice.permissions import StaffPermissionDenied
from payments.models import Bill, LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import RefundRequest, refund_ledger_reference
from remittances.services import refunds
from remittances.services.funds_out import (
    ExceedsAvailableBalance,
    ExceedsTransactionCredit,
    FourEyesViolation,
    SourceNotCredited,
)
from tests.factories import AccountFactory
from tests.remittances.refund_helpers import PAYER_BIC, PAYER_IBAN, bank_txn, credited_txn, finance, manager, requested

pytestmark = pytest.mark.django_db

Status = RefundRequest.Status


def test_rfd_1_refund_is_recorded_then_approved_by_another_finance_member_debiting_once(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    recorder, approver = finance(), finance()
    refund = requested(account, txn, by=recorder, now=now, amount="40.00")
    assert refund.status == Status.SUBMITTED
    assert (refund.payer_iban, refund.payer_bic, refund.debtor_account_id) == (PAYER_IBAN, PAYER_BIC, txn.receiving_account_id)
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")  # nothing moved yet

    approved = refunds.refund_approve(refund_id=refund.pk, actor=approver, now=now)
    again = refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)  # a replay
    assert approved.status == again.status == Status.APPROVED
    [debit] = LedgerEntry.objects.filter(reference=refund_ledger_reference(refund.pk))
    assert (debit.amount, debit.kind, debit.created_by_id) == (Decimal("-40.00"), LedgerEntry.Kind.REFUND, approver.pk)
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("60.00")
    again.refresh_from_db()
    assert (again.decided_by_id, again.ledger_entry_id) == (approver.pk, debit.pk)


def test_rfd_1_four_eyes_the_recorder_cannot_approve_service_and_database(now):
    account = AccountFactory()
    recorder = finance()
    refund = requested(account, credited_txn(account, now=now), by=recorder, now=now)
    with pytest.raises(FourEyesViolation):
        refunds.refund_approve(refund_id=refund.pk, actor=recorder, now=now)
    with pytest.raises(FourEyesViolation):
        refunds.refund_reject(refund_id=refund.pk, actor=recorder, reason="no", now=now)
    refund.refresh_from_db()
    assert refund.status == Status.SUBMITTED and not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND).exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        RefundRequest.objects.filter(pk=refund.pk).update(decided_by=recorder)


def test_rfd_1_rejection_needs_a_reason_and_moves_no_money(now):
    account = AccountFactory()
    refund = requested(account, credited_txn(account, now=now), by=finance(), now=now)
    decider = finance()
    with pytest.raises(refunds.RefundInvalid):
        refunds.refund_reject(refund_id=refund.pk, actor=decider, reason="  ", now=now)
    rejected = refunds.refund_reject(refund_id=refund.pk, actor=decider, reason="Customer withdrew", now=now)
    assert (rejected.status, rejected.decision_note) == (Status.REJECTED, "Customer withdrew")
    with pytest.raises(refunds.RefundStateError):
        refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("100.00")


@pytest.mark.parametrize(
    "field, value",
    [("payer_iban", "DE89370400440532013001"), ("payer_iban", "not an iban"), ("payer_bic", "COBA"),
     ("payer_bic", "COBA12FFXXX"), ("payer_name", " "), ("reason", "")],
)
def test_rfd_1_iban_bic_payer_and_reason_are_validated_nothing_recorded(now, field, value):
    account = AccountFactory()
    txn = credited_txn(account, now=now)
    with pytest.raises(refunds.RefundInvalid):
        requested(account, txn, by=finance(), now=now, **{field: value})
    assert not RefundRequest.objects.exists()


def test_rfd_1_sec_1_a_card_number_in_the_reason_is_refused_before_anything_is_kept(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now)
    with pytest.raises(CardNumberInText):
        requested(account, txn, by=finance(), now=now, reason="paid by 4242 4242 4242 4242 by mistake")
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize("amount", ["0", "-5.00", "1.005", "abc"])
def test_rfd_1_i6_amount_must_be_a_positive_two_place_decimal(now, amount):
    account = AccountFactory()
    with pytest.raises(Exception) as error:
        requested(account, credited_txn(account, now=now), by=finance(), now=now, amount=amount)
    assert getattr(error.value, "rule", None) == "I6"
    assert not RefundRequest.objects.exists()


def test_rfd_1_sec_3_account_managers_may_not_request_or_approve_refunds(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now)
    with pytest.raises(StaffPermissionDenied):
        requested(account, txn, by=manager(), now=now)
    refund = requested(account, txn, by=finance(), now=now)
    with pytest.raises(StaffPermissionDenied):
        refunds.refund_approve(refund_id=refund.pk, actor=manager(), now=now)
    refund.refresh_from_db()
    assert refund.status == Status.SUBMITTED


def test_rfd_3_never_more_than_the_credit_less_what_was_already_refunded(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    credited_txn(account, now=now, amount="500.00")  # other money on the balance does not count for this txn
    first = requested(account, txn, by=finance(), now=now, amount="70.00")
    second = requested(account, txn, by=finance(), now=now, amount="40.00")  # fits until the first is approved
    refunds.refund_approve(refund_id=first.pk, actor=finance(), now=now)
    with pytest.raises(ExceedsTransactionCredit):
        refunds.refund_approve(refund_id=second.pk, actor=finance(), now=now)
    with pytest.raises(ExceedsTransactionCredit):
        requested(account, txn, by=finance(), now=now, amount="30.01")
    second.refresh_from_db()
    assert second.status == Status.SUBMITTED
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("530.00")


def test_rfd_3_never_more_than_the_balance_left_after_what_the_account_owes(now):
    account = AccountFactory()
    txn = credited_txn(account, now=now, amount="100.00")
    Bill.objects.create(
        account=account, kind=Bill.Kind.MONTHLY,
        reference="bill-rfd-3", issued_at=now, due_date=now.date(), amount_before_tax=Decimal("80.00"),
        total=Decimal("80.00"), currency="EUR",
    )
    with pytest.raises(ExceedsAvailableBalance):
        requested(account, txn, by=finance(), now=now, amount="20.01")
    refund = requested(account, txn, by=finance(), now=now, amount="20.00")
    assert refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now).status == Status.APPROVED


def test_rfd_3_only_a_transaction_credited_to_this_account_can_be_refunded(now):
    account, other = AccountFactory(), AccountFactory()
    unmatched = bank_txn(now=now, currency="EUR", amount="100.00")
    with pytest.raises(SourceNotCredited):
        requested(account, unmatched, by=finance(), now=now)
    someone_elses = credited_txn(other, now=now)
    with pytest.raises(SourceNotCredited):
        requested(account, someone_elses, by=finance(), now=now)
    assert not RefundRequest.objects.exists()
