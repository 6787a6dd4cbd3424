"""Builders for the statement import tests (REM-1, REM-2, REM-4..7): the sample files, receiving
accounts and the import call. The ``customer``, ``dedicated`` and ``shared`` fixtures built from
them are in ``tests/remittances/conftest.py``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.db.models import Sum

from payments.models import LedgerEntry
from remittances.services.statements import statement_import
from tests.factories import SharedRemittanceAccountFactory
from tests.remittances.samples import build

SAMPLES = Path(build.HERE)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def make_receiving_account(*, number, kind, account=None, currency="USD", now, status="active"):
    """A receiving account under the number the sample files name."""
    return SharedRemittanceAccountFactory(
        kind=kind, status=status, account=account, number=number, bank_name="Example Bank Europe",
        currency=currency, beneficiary_name="Alibaba Cloud (Singapore) Pte. Ltd.", issued_at=now,
    )


def ledger_total(account) -> Decimal:
    return LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or Decimal("0")


def do_import(data: bytes, now, **kwargs):
    return statement_import(data=data, file_name=kwargs.pop("file_name", "statement"), now=now, **kwargs)
