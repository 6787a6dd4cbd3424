"""REM-4: one transfer is one line, whichever message reports it and under which reference.

A camt.054 notification may quote the entry's and the detail's account servicer reference, the
day's camt.053 or MT940 only one of them: every bank reference a line carries identifies it, so
the second message is a duplicate and a dedicated account is credited once. Lines keyed by
position (no reference) that collide but differ are recorded for review, never dropped.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from payments.models import LedgerEntry
from remittances.models import BankTransaction, BankTransactionKey, RemittanceAccount
from remittances.services.statements import statement_import
from tests.factories import AccountFactory
from tests.remittances.samples import build
from tests.remittances.samples.build import Entry, Tx
from tests.helpers.statements import make_receiving_account

pytestmark = pytest.mark.django_db

Status = BankTransaction.Status


@pytest.fixture
def dedicated(now):
    return make_receiving_account(
        number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=AccountFactory(), now=now
    )


def notification(*, entry_ref: str, detail_ref: str, amount: str = "250.00", payer: str = "ACME Corp") -> bytes:
    """A camt.054 with one credit, the reference at entry and/or detail level."""
    entry = Entry(amount, ref=entry_ref, txs=[Tx(amount, payer, "GB33BUKB20201555555555", "Invoice 7", "E2E-7", ref=detail_ref)])
    return build.camt(message="054", statement_id="NTF-1", entries=[entry]).encode()


def day_statement(*, entry_ref: str, amount: str = "250.00", statement_id: str = "STMT-DAY", details=True) -> bytes:
    """The day's camt.053 with the same credit, the reference at entry level only."""
    txs = [Tx(amount, "ACME Corp", "GB33BUKB20201555555555", "Invoice 7", "E2E-7")] if details else []
    entry = Entry(amount, ref=entry_ref, txs=txs)
    closing = build.STANDARD_OPENING + Decimal(amount)
    return build.camt(statement_id=statement_id, entries=[entry], closing=closing).encode()


def mt940(*, reference: str, amount: str = "250,00", lines: str = "") -> bytes:
    """An MT940 day on the dedicated account; the closing balance follows the lines."""
    body = f":61:2611251125C{amount}NTRFNONREF//{reference}\n:86:?20Invoice 7?32ACME Corp\n" if reference else ""
    closing = Decimal("1000.00") + (Decimal(amount.replace(",", ".")) if reference else 0) + _lines_total(lines)
    text = (
        f":20:STMT20261125\n:25:{build.DEDICATED_IBAN}\n:28C:00042/001\n:60F:C261124USD1000,00\n"
        f"{body}{lines}:62F:C261125USD{str(closing).replace('.', ',')}\n"
    )
    return text.encode()


def _lines_total(lines: str) -> Decimal:
    total = Decimal("0.00")
    for line in lines.splitlines():
        if line.startswith(":61:"):
            mark_and_amount = line[14:].split("N", 1)[0]  # "C60,00"
            value = Decimal(mark_and_amount[1:].replace(",", "."))
            total += value if mark_and_amount[0] == "C" else -value
    return total


def credits_on(receiving) -> int:
    return LedgerEntry.objects.filter(account=receiving.account).count()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # The notification's detail reference is the statement's entry reference.
        (notification(entry_ref="NTF-E-1", detail_ref="TX-1"), day_statement(entry_ref="TX-1")),
        # The notification's entry reference is the statement's entry reference.
        (notification(entry_ref="NTF-E-1", detail_ref="TX-1"), day_statement(entry_ref="NTF-E-1")),
        # The other way round: the statement first.
        (day_statement(entry_ref="NTF-E-1"), notification(entry_ref="NTF-E-1", detail_ref="TX-1")),
        (day_statement(entry_ref="TX-1", details=False), notification(entry_ref="NTF-E-1", detail_ref="TX-1")),
    ],
)
def test_rem_4_the_same_transfer_in_a_camt054_and_the_days_camt053_is_credited_once(first, second, dedicated, now):
    one = statement_import(data=first, now=now)
    two = statement_import(data=second, now=now)
    assert (one.entries, one.credited) == (1, 1)
    assert (two.entries, two.credited, two.duplicates, two.review) == (1, 0, 1, 0)
    assert BankTransaction.objects.count() == 1
    assert credits_on(dedicated) == 1


def test_rem_4_a_third_message_quoting_only_the_other_reference_is_recognised(dedicated, now):
    statement_import(data=day_statement(entry_ref="TX-1"), now=now)
    # The notification names the line by TX-1 (known) and NTF-E-1 (new): NTF-E-1 is added to it.
    statement_import(data=notification(entry_ref="NTF-E-1", detail_ref="TX-1"), now=now)
    third = statement_import(data=mt940(reference="NTF-E-1"), now=now)
    assert (third.entries, third.duplicates, third.credited) == (1, 1, 0)
    txn = BankTransaction.objects.get()
    assert set(BankTransactionKey.objects.filter(bank_transaction=txn).values_list("key", flat=True)) == {
        "TX-1", "NTF-E-1",
    }
    assert credits_on(dedicated) == 1


def test_rem_4_a_repeat_under_a_known_reference_with_another_amount_is_recorded_for_review(dedicated, now):
    statement_import(data=day_statement(entry_ref="TX-1"), now=now)
    other = statement_import(data=notification(entry_ref="", detail_ref="TX-1", amount="260.00"), now=now)
    assert (other.entries, other.duplicates, other.review, other.credited) == (1, 0, 1, 0)
    review = BankTransaction.objects.get(status=Status.REVIEW)
    assert (review.amount, review.account_id, review.ledger_entry_id) == (Decimal("260.00"), None, None)
    assert credits_on(dedicated) == 1
    # The same differing message again: a duplicate of its review record, not a second one.
    again = statement_import(data=notification(entry_ref="", detail_ref="TX-1", amount="260.00") + b" ", now=now)
    assert (again.duplicates, again.review) == (1, 0)
    assert BankTransaction.objects.filter(status=Status.REVIEW).count() == 1


NO_REF_60 = ":61:2611251125C60,00NTRFNONREF\n:86:?20no reference?32Payer Sixty\n"
NO_REF_70 = ":61:2611251125C70,00NTRFNONREF\n:86:?20no reference?32Payer Seventy\n"


def test_rem_4_position_keyed_lines_that_collide_but_differ_are_recorded_for_review(dedicated, now):
    """Two MT940 files with the same :20:/:28C: and closing date, other lines at one position."""
    first = statement_import(data=mt940(reference="", lines=NO_REF_60), now=now)
    second = statement_import(data=mt940(reference="", lines=NO_REF_70), now=now)
    assert (first.entries, first.credited) == (1, 1)
    assert (second.entries, second.duplicates, second.review, second.credited) == (1, 0, 1, 0)
    review = BankTransaction.objects.get(status=Status.REVIEW)
    assert (review.amount, review.payer_name) == (Decimal("70.00"), "Payer Seventy")
    assert credits_on(dedicated) == 1
    # The identical first file again is a plain duplicate.
    assert statement_import(data=mt940(reference="", lines=NO_REF_60) + b"\n", now=now).duplicates == 1
    assert BankTransaction.objects.count() == 2


def test_rem_4_a_position_keyed_repeat_with_the_same_figures_is_a_duplicate(dedicated, now):
    statement_import(data=mt940(reference="", lines=NO_REF_60), now=now)
    again = statement_import(data=mt940(reference="", lines=NO_REF_60) + b"\n\n", now=now)
    assert (again.duplicates, again.review) == (1, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_rem_4_race_the_notification_and_the_day_statement_imported_at_once_credit_once(now):
    """Two messages of one transfer under different references, imported at the same moment:
    without the per-account turn each import would miss the other's uncommitted keys."""
    from tests.concurrency import run_at_once

    receiving = make_receiving_account(
        number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=AccountFactory(), now=now
    )
    files = [notification(entry_ref="NTF-E-1", detail_ref="TX-1"), day_statement(entry_ref="NTF-E-1")]
    results = run_at_once([lambda data=data: statement_import(data=data, now=now) for data in files], timeout=120)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sorted((r.credited, r.duplicates) for r in results) == [(0, 1), (1, 0)]
    assert BankTransaction.objects.count() == 1
    assert credits_on(receiving) == 1
