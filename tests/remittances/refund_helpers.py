"""Shared set-up of the refund, transfer and payment-file tests (RFD-1..3)."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from django.contrib.auth.models import Permission

from payments.models import LedgerEntry
from payments.services.ledger import ledger_post
from remittances.models import BankStatement, BankTransaction, RemittanceAccount, bank_transaction_ledger_reference
from remittances.services import refunds
from tests.factories import UserFactory

PAYER_IBAN = "DE89370400440532013000"
PAYER_BIC = "COBADEFFXXX"
_seq = itertools.count(1)


def staff(username: str, *codenames: str):
    """A staff user holding exactly these remittances permissions."""
    user = UserFactory(username=username)
    perms = Permission.objects.filter(content_type__app_label="remittances", codename__in=codenames)
    assert perms.count() == len(codenames), codenames
    user.user_permissions.add(*perms)
    return type(user).objects.get(pk=user.pk)  # fresh: no cached permissions


def shared_account(*, currency: str = "EUR", now, number: str | None = None) -> RemittanceAccount:
    n = next(_seq)
    return RemittanceAccount.objects.create(
        kind=RemittanceAccount.Kind.NON_DEDICATED, number=number or f"DE00RFDSHARED{n:06d}{currency}",
        bank_name="Example Bank", bic="EXBKDEFFXXX", bank_country="DE", currency=currency,
        beneficiary_name="Cloud Ltd", issued_at=now,
    )


def bank_txn(*, now, receiving=None, amount: str = "100.00", currency: str = "EUR", payer_name: str = "",
             status: str = BankTransaction.Status.UNMATCHED, entry_kind: str = BankTransaction.EntryKind.CREDIT,
             reference: str | None = None, booking_date: date = date(2026, 11, 25), end_to_end_id: str = "",
             remittance_info: str = "") -> BankTransaction:
    """An imported statement line, made with the ORM."""
    receiving = receiving or shared_account(currency=currency, now=now)
    n = next(_seq)
    statement = BankStatement.objects.create(
        receiving_account=receiving, format=BankStatement.Format.CAMT053, identity=f"RFD-STMT-{n}",
        currency=currency, file_sha256=f"{n:064d}", imported_at=now,
    )
    return BankTransaction.objects.create(
        statement=statement, receiving_account=receiving, bank_reference=reference or f"RFD-REF-{n}", position=1,
        entry_kind=entry_kind, status=status, amount=Decimal(amount), currency=currency,
        booking_date=booking_date, value_date=booking_date, payer_name=payer_name, received_at=now,
        end_to_end_id=end_to_end_id, remittance_info=remittance_info,
    )


def finance(username: str | None = None):
    return staff(
        username or f"fin{next(_seq)}", "view_refundrequest", "add_refundrequest", "approve_refundrequest",
        "view_fundstransfer", "approve_fundstransfer", "view_paymentfile", "generate_paymentfile", "send_paymentfile",
    )


def manager(username: str | None = None):
    return staff(username or f"am{next(_seq)}", "view_fundstransfer", "add_fundstransfer", "view_refundrequest")


def credited_txn(account, *, now, amount: str = "100.00", currency: str = "EUR", receiving=None,
                 **line) -> BankTransaction:
    """A bank transaction credited to ``account`` through the ledger, as the import or a claim does."""
    receiving = receiving or shared_account(currency=currency, now=now)
    txn = bank_txn(now=now, receiving=receiving, amount=amount, currency=currency, payer_name="Payer GmbH", **line)
    posting = ledger_post(
        account_id=account.pk, amount=txn.amount, currency=currency, kind=LedgerEntry.Kind.CLAIM_CREDIT,
        reference=bank_transaction_ledger_reference(txn.pk), now=now,
    )
    txn.status, txn.account, txn.ledger_entry, txn.credited_at = (
        BankTransaction.Status.CREDITED, account, posting.entry, now,
    )
    txn.save()
    return txn


def requested(account, txn, *, by, now, amount: str = "40.00", **extra):
    arguments = dict(
        account_id=account.pk, bank_transaction_id=txn.pk if txn is not None else None, amount=amount,
        currency=txn.currency if txn is not None else extra.pop("currency", "EUR"), payer_name="Payer GmbH",
        payer_iban=PAYER_IBAN, payer_bic=PAYER_BIC, reason="Overpaid invoice", actor=by, now=now,
    )
    arguments.update(extra)
    return refunds.refund_request(**arguments)
