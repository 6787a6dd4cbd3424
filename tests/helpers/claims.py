"""Builders for the claim tests (CLM-1..4): receiving accounts, imported bank lines, staff with
remittances permissions, and claims filed and reviewed through the services.

Bank transactions are factory rows (status ``unmatched`` on a shared receiving account), as the
statement importer would leave them; claims go through ``remittances.services.claims``.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from django.contrib.auth.models import Permission

from payments.models import LedgerEntry
from remittances.models import BankTransaction, RemittanceAccount, RemittanceClaim, bank_transaction_ledger_reference
from remittances.services import claims as svc
from tests.factories import (
    AccountFactory,
    BankTransactionFactory,
    DedicatedRemittanceAccountFactory,
    SharedRemittanceAccountFactory,
    UserFactory,
)

_seq = itertools.count(1)


def shared_account(*, currency: str = "USD", now) -> RemittanceAccount:
    return SharedRemittanceAccountFactory(currency=currency, issued_at=now)


def dedicated_account(account, *, currency: str = "USD", now) -> RemittanceAccount:
    return DedicatedRemittanceAccountFactory(account=account, currency=currency, issued_at=now)


def bank_txn(
    *, now, receiving: RemittanceAccount | None = None, amount: str = "1200.00", currency: str = "USD",
    reference: str | None = None, payer_name: str = "", remittance_info: str = "", end_to_end_id: str = "",
    status: str = BankTransaction.Status.UNMATCHED, entry_kind: str = BankTransaction.EntryKind.CREDIT,
) -> BankTransaction:
    """An imported statement line of its own statement (the importer is tested elsewhere)."""
    receiving = receiving or shared_account(currency=currency, now=now)
    fields = dict(bank_reference=reference) if reference else {}
    return BankTransactionFactory(
        statement__receiving_account=receiving, statement__currency=currency, statement__imported_at=now,
        entry_kind=entry_kind, status=status, amount=Decimal(amount), currency=currency,
        value_date=date(2026, 11, 25), payer_name=payer_name, remittance_info=remittance_info,
        end_to_end_id=end_to_end_id, received_at=now, **fields,
    )


def staff(username: str, *codenames: str):
    """A staff user holding exactly these remittances permissions."""
    user = UserFactory(username=username)
    perms = Permission.objects.filter(content_type__app_label="remittances", codename__in=codenames)
    assert perms.count() == len(codenames), codenames
    user.user_permissions.add(*perms)
    return type(user).objects.get(pk=user.pk)  # fresh: no cached permissions


def manager_user(username: str = "am"):
    return staff(username, "view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim")


def finance_user(username: str = "fin"):
    return staff(username, "view_remittanceclaim", "approve_remittanceclaim")


def console_claim(account, *, now, amount: str = "1200.00", currency: str = "USD", reference: str = "", **extra):
    return svc.claim_submit(
        account_id=account.pk, amount=amount, currency=currency, bank_reference=reference,
        source=RemittanceClaim.Source.CONSOLE, now=now, **extra,
    )


def staff_claim(account, txn, *, by, now, amount: str | None = None, currency: str | None = None):
    return svc.claim_submit(
        account_id=account.pk, amount=amount or txn.amount, currency=currency or txn.currency,
        bank_transaction_id=txn.pk, source=RemittanceClaim.Source.STAFF, initiated_by=by, now=now,
    )


def reviewed_claim(*, now, account=None, txn=None, reviewer=None):
    """A console claim, matched and reviewed by an account manager: ready for finance."""
    account = account or AccountFactory()
    txn = txn or bank_txn(now=now)
    claim = console_claim(account, now=now, amount=str(txn.amount), reference=txn.bank_reference)
    assert claim.bank_transaction_id == txn.pk
    return svc.claim_review(claim_id=claim.pk, actor=reviewer or manager_user(f"rev{next(_seq)}"), now=now), txn


def credits_of(txn) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(reference=bank_transaction_ledger_reference(txn.pk)))
