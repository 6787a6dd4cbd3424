"""Transfers of credited funds between accounts (RFD-2, RFD-3)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction

from billing_backoffice.permissions import StaffPermissionDenied
from payments.models import LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import FundsTransfer, transfer_ledger_references
from remittances.services import refunds, transfers
from remittances.services.funds_out import ExceedsTransactionCredit, FourEyesViolation
from tests.concurrency import run_at_once
from tests.factories import AccountFactory
from tests.remittances.refund_helpers import credited_txn, finance, manager, requested

Status = FundsTransfer.Status


def initiated(source, target, txn, *, by, now, amount="30.00", **extra):
    arguments = dict(
        from_account_id=source.pk, to_account_id=target.pk, bank_transaction_id=txn.pk if txn else None,
        amount=amount, currency="EUR", reason="Paid with the wrong account number", actor=by, now=now,
    )
    arguments.update(extra)
    return transfers.transfer_request(**arguments)


@pytest.mark.django_db
def test_rfd_2_manager_initiates_finance_approves_one_debit_one_credit_linked(now, django_capture_on_commit_callbacks):
    source, target = AccountFactory(), AccountFactory()
    txn = credited_txn(source, now=now, amount="100.00")
    transfer = initiated(source, target, txn, by=manager(), now=now)
    assert transfer.status == Status.SUBMITTED and account_balance(account_id=target.pk, currency="EUR") == 0
    approver = finance()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approved = transfers.transfer_approve(transfer_id=transfer.pk, actor=approver, now=now)
    assert callbacks  # the target's bills are settled after commit (SET-2)
    assert transfers.transfer_approve(transfer_id=transfer.pk, actor=finance(), now=now).status == Status.APPROVED
    out_ref, in_ref = transfer_ledger_references(transfer.pk)
    debit, credit = LedgerEntry.objects.get(reference=out_ref), LedgerEntry.objects.get(reference=in_ref)
    assert (debit.account_id, debit.amount, credit.account_id, credit.amount) == (
        source.pk, Decimal("-30.00"), target.pk, Decimal("30.00"))
    assert in_ref in debit.memo and out_ref in credit.memo  # each side names the other
    assert (approved.debit_entry_id, approved.credit_entry_id, approved.decided_by_id) == (debit.pk, credit.pk, approver.pk)
    assert account_balance(account_id=source.pk, currency="EUR") == Decimal("70.00")
    assert account_balance(account_id=target.pk, currency="EUR") == Decimal("30.00")


@pytest.mark.django_db
def test_rfd_2_four_eyes_and_roles(now):
    source, target = AccountFactory(), AccountFactory()
    txn = credited_txn(source, now=now)
    with pytest.raises(StaffPermissionDenied):  # finance does not initiate
        initiated(source, target, txn, by=staff_without_initiate(), now=now)
    both = manager_and_finance()
    transfer = initiated(source, target, txn, by=both, now=now)
    with pytest.raises(FourEyesViolation):
        transfers.transfer_approve(transfer_id=transfer.pk, actor=both, now=now)
    with pytest.raises(StaffPermissionDenied):
        transfers.transfer_approve(transfer_id=transfer.pk, actor=manager(), now=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        FundsTransfer.objects.filter(pk=transfer.pk).update(decided_by=both)
    transfer.refresh_from_db()
    assert transfer.status == Status.SUBMITTED
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADJUSTMENT).exists()
    rejected = transfers.transfer_reject(transfer_id=transfer.pk, actor=finance(), reason="Not misdirected", now=now)
    assert rejected.status == Status.REJECTED and account_balance(account_id=target.pk, currency="EUR") == 0


def staff_without_initiate():
    """Finance staff: they approve transfers, they do not initiate them."""
    return finance()


def manager_and_finance():
    """A user holding both roles' transfer permissions: four eyes must still stop them."""
    user = manager()
    user.user_permissions.add(Permission.objects.get(codename="approve_fundstransfer"))
    return type(user).objects.get(pk=user.pk)


@pytest.mark.django_db
def test_rfd_2_invalid_input_is_refused_and_nothing_recorded(now):
    source, target = AccountFactory(), AccountFactory()
    txn = credited_txn(source, now=now)
    for extra in ({"to_account_id": source.pk}, {"reason": " "}, {"amount": "0"}, {"currency": "XXX"}):
        with pytest.raises(Exception) as error:
            initiated(source, target, txn, by=manager(), now=now, **extra)
        assert getattr(error.value, "rule", None) in ("RFD-2", "I6")
    assert not FundsTransfer.objects.exists()


@pytest.mark.django_db
def test_rfd_3_a_transfer_and_a_refund_share_the_credit_limit(now):
    source, target = AccountFactory(), AccountFactory()
    txn = credited_txn(source, now=now, amount="100.00")
    refund = requested(source, txn, by=finance(), now=now, amount="80.00")
    refunds.refund_approve(refund_id=refund.pk, actor=finance(), now=now)
    with pytest.raises(ExceedsTransactionCredit):
        initiated(source, target, txn, by=manager(), now=now, amount="20.01")
    transfer = initiated(source, target, txn, by=manager(), now=now, amount="20.00")
    assert transfers.transfer_approve(transfer_id=transfer.pk, actor=finance(), now=now).status == Status.APPROVED


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_rfd_3_race_two_transfers_out_of_one_credit_at_once_move_it_once(now):
    source, target, other = AccountFactory(), AccountFactory(), AccountFactory()
    txn = credited_txn(source, now=now, amount="100.00")
    credited_txn(source, now=now, amount="500.00")
    first = initiated(source, target, txn, by=manager(), now=now, amount="100.00")
    second = initiated(source, other, txn, by=manager(), now=now, amount="100.00")
    approvers = [finance(), finance()]
    results = run_at_once([
        lambda: transfers.transfer_approve(transfer_id=first.pk, actor=approvers[0], now=now),
        lambda: transfers.transfer_approve(transfer_id=second.pk, actor=approvers[1], now=now),
    ], timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ExceedsTransactionCredit), results
    moved = account_balance(account_id=target.pk, currency="EUR") + account_balance(account_id=other.pk, currency="EUR")
    assert moved == Decimal("100.00")
    assert account_balance(account_id=source.pk, currency="EUR") == Decimal("500.00")
