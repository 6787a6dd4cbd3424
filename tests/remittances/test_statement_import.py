"""Statement import (REM-1, REM-2, REM-4..7): the service, the command, the admin and the inbox job.

The sample files are in ``samples/`` (see ``samples/build.py`` for what each day contains); the
builders are in ``tests/helpers/statements.py``, the ``customer``/``dedicated``/``shared``
fixtures in ``tests/remittances/conftest.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from billing_backoffice.models import StaffJob
from payments.models import LedgerEntry
from remittances.models import BankStatement, BankTransaction, RemittanceAccount, bank_transaction_ledger_reference
from remittances.parsers import BadAmount, HostileXml, MalformedStatement, StatementTooLarge, UnsupportedStatement
from remittances.services.receiving import UnknownReceivingAccount
from remittances.services.statement_lines import BatchMismatch, UnreconciledStatement
from remittances.services.statements import statement_import
from tests.factories import AccountFactory, UserFactory
from tests.helpers.admin import body_of
from tests.helpers.statements import SAMPLES, do_import, ledger_total, make_receiving_account, sample
from tests.remittances.samples import build

Status = BankTransaction.Status

pytestmark = pytest.mark.django_db


def nothing_recorded() -> bool:
    return (
        not BankStatement.objects.exists()
        and not BankTransaction.objects.exists()
        and not LedgerEntry.objects.exists()
    )


# --- REM-1 / REM-2 --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["camt053_v02.xml", "camt053_v04.xml", "camt053_v08.xml", "camt053_v13.xml", "camt054_v08.xml"])
def test_rem_1_dedicated_account_credits_booked_credits_at_once(name, dedicated, customer, now):
    summary = do_import(sample(name), now)
    assert (summary.entries, summary.credited, summary.rejected, summary.duplicates, summary.unmatched) == (
        build.STANDARD_LINES, build.STANDARD_CREDITABLE_LINES, 3, 0, 0,
    )
    assert summary.credited_amounts == {"USD": "660.00"}
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    credited = BankTransaction.objects.filter(status=Status.CREDITED)
    assert credited.count() == build.STANDARD_CREDITABLE_LINES
    for txn in credited.select_related("ledger_entry"):
        assert txn.account_id == customer.pk and txn.credited_at == now
        assert txn.ledger_entry.reference == bank_transaction_ledger_reference(txn.pk)
        assert txn.ledger_entry.kind == LedgerEntry.Kind.REMITTANCE_CREDIT
        assert txn.ledger_entry.amount == txn.amount
    statement = BankStatement.objects.get()
    assert statement.summary["credited"] == 7 and statement.receiving_account == dedicated
    assert statement.file_sha256 == summary.file_sha256 and statement.imported_at == now


def test_rem_1_mt940_dedicated_account_credits_booked_credits(dedicated, customer, now):
    summary = do_import(sample("mt940_day.sta"), now)
    assert (summary.entries, summary.credited, summary.rejected) == (build.MT940_LINES, build.MT940_CREDITABLE_LINES, 3)
    assert ledger_total(customer) == build.MT940_CREDITABLE


def test_rem_1_suspended_dedicated_account_is_still_credited_and_noted(customer, now):
    make_receiving_account(
        number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=customer, now=now,
        status=RemittanceAccount.Status.SUSPENDED,
    )
    summary = do_import(sample("camt053_v08.xml"), now)
    assert summary.credited == summary.credited_on_suspended == 7
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    assert all("suspended" in memo for memo in LedgerEntry.objects.values_list("memo", flat=True))


@pytest.mark.parametrize("name", ["camt053_shared_v08.xml", "mt940_shared.sta"])
def test_rem_2_shared_account_lines_stay_unmatched_and_uncredited(name, shared, now):
    summary = do_import(sample(name), now)
    assert summary.credited == 0 and summary.unmatched > 0
    assert summary.unmatched + summary.rejected == summary.entries
    assert not LedgerEntry.objects.exists()
    assert set(BankTransaction.objects.values_list("status", flat=True)) == {Status.UNMATCHED, Status.NOT_CREDITABLE}
    assert not BankTransaction.objects.filter(account__isnull=False).exists()


def test_rem_2_waiting_claims_are_matched_after_the_import_commits(shared, django_capture_on_commit_callbacks, now):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        do_import(sample("camt053_shared_v08.xml"), now)
    assert len(callbacks) == 1  # claims_match_pending runs once the lines are visible
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        do_import(sample("camt053_shared_v08.xml"), now)
    assert callbacks == []  # nothing new arrived: nothing to match


# --- REM-4 duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize("resent", ["same bytes", "re-encoded"])
@pytest.mark.parametrize("name", ["camt053_v02.xml", "camt053_v08.xml", "camt054_v02.xml", "mt940_day.sta"])
def test_rem_4_same_file_twice_second_import_only_duplicates(name, resent, dedicated, customer, now):
    """Same bytes are recognised by their hash; re-encoded ones entry by entry: same outcome."""
    first = do_import(sample(name), now)
    rows = BankTransaction.objects.count()
    again = sample(name) if resent == "same bytes" else sample(name).replace(b"\n", b"\r\n")
    second = do_import(again, now)
    assert second.duplicates == second.entries == first.entries
    assert (second.credited, second.unmatched, second.rejected, second.review) == (0, 0, 0, 0)
    assert second.statement_id == first.statement_id and second.new_statements == 0
    assert BankTransaction.objects.count() == rows and BankStatement.objects.count() == 1
    assert ledger_total(customer) == Decimal(first.credited_amounts["USD"])
    assert LedgerEntry.objects.count() == first.credited


def test_rem_4_reimport_of_same_bytes_with_a_contradicting_format_is_still_refused(dedicated, now):
    do_import(sample("camt053_v08.xml"), now)
    with pytest.raises(UnsupportedStatement, match="not the requested camt054"):
        do_import(sample("camt053_v08.xml"), now, fmt="camt054")


def test_rem_4_notification_then_statement_credits_each_entry_once(dedicated, customer, now):
    """The bank's camt.054 of the day and its camt.053 list the same entries under other ids."""
    entries = [e for e in build.STANDARD_DAY if e.ref in ("E1-REF-0001", "E2-BATCH")]
    notification = build.camt(message="054", statement_id="NTF-1", entries=entries)
    statement = build.camt(statement_id="STMT-1", entries=entries, closing=Decimal("1550.00"))
    first = do_import(notification.encode(), now)
    second = do_import(statement.encode(), now)
    assert first.credited == 4
    assert (second.duplicates, second.credited, second.new_statements) == (4, 0, 1)
    assert ledger_total(customer) == Decimal("550.00")


def test_rem_4_missing_and_repeated_references_are_keyed_by_statement_and_position(dedicated, now):
    do_import(sample("camt053_v08.xml"), now)
    keys = dict(BankTransaction.objects.values_list("payer_name", "bank_reference"))
    assert keys["ACME Corp"] == "E1-REF-0001"
    assert keys["Globex Ltd"] == "E2-D1" and keys["Initech GmbH"] == "E2-D2"
    assert keys["Umbrella Inc"] == "E2-BATCH#3"  # a batch detail without its own reference
    assert keys["Pending Payer"] == "pdng:E5-REF"  # the booked entry to come is not its duplicate
    assert keys["No Ref Payer"] == "pos:STMT-053-V08:6"
    assert (keys["Dup One"], keys["Dup Two"]) == ("pos:STMT-053-V08:7", "pos:STMT-053-V08:8")


def test_rem_4_resent_statement_with_a_new_line_adds_only_that_line(dedicated, customer, now):
    day = [e for e in build.STANDARD_DAY if e.ref == "E1-REF-0001"]
    extra = build.Entry("5.00", ref="LATE-1", txs=[build.Tx("5.00", "Late Payer")])
    do_import(build.camt(statement_id="S1", entries=day, closing=Decimal("1250.00")).encode(), now)
    again = do_import(build.camt(statement_id="S1", entries=day + [extra], closing=Decimal("1255.00")).encode(), now)
    assert (again.duplicates, again.credited, again.new_statements) == (1, 1, 0)
    assert ledger_total(customer) == Decimal("255.00")
    assert BankStatement.objects.get().summary["entries"] == 2


def regenerated(doc: str, message_id: str = "MSG-AGAIN") -> bytes:
    """The file as the bank generates it again: a new message id and creation time in the group
    header, so other bytes (no file-hash match) around the same statement and entries."""
    header, end, rest = doc.partition("</GrpHdr>")
    header = re.sub(r"<MsgId>[^<]*</MsgId>", f"<MsgId>{message_id}</MsgId>", header)
    header = re.sub(r"<CreDtTm>[^<]*</CreDtTm>", "<CreDtTm>2026-11-26T06:00:00</CreDtTm>", header)
    return (header + end + rest).encode()


def test_rem_4_i2_resent_statement_with_other_bytes_and_new_entries_records_and_credits_only_those(
    dedicated, customer, now
):
    """REM-4 / I2 / REM-1: the statement again, as other bytes, with two entries added: the ten
    known lines are duplicates, the two new ones are recorded and credited once; once more, nothing."""
    late = [
        build.Entry("5.00", ref="LATE-1", txs=[build.Tx("5.00", "Late One")]),
        build.Entry("7.00", ref="LATE-2", txs=[build.Tx("7.00", "Late Two")]),
    ]
    first = do_import(build.camt(statement_id="S1").encode(), now)
    resent = build.camt(statement_id="S1", entries=[*build.STANDARD_DAY, *late], closing=build.STANDARD_CLOSING + 12)
    again = do_import(regenerated(resent), now)
    assert (first.entries, first.credited) == (build.STANDARD_LINES, build.STANDARD_CREDITABLE_LINES)
    assert (again.entries, again.duplicates, again.credited, again.new_statements) == (12, 10, 2, 0)
    assert again.credited_amounts == {"USD": "12.00"} and again.statement_id == first.statement_id
    assert BankTransaction.objects.count() == 12
    assert set(BankTransaction.objects.filter(bank_reference__startswith="LATE").values_list("status", flat=True)) == {
        Status.CREDITED
    }
    assert ledger_total(customer) == build.STANDARD_CREDITABLE + 12
    assert BankStatement.objects.get().summary["entries"] == 12
    third = do_import(regenerated(resent, "MSG-THIRD"), now)
    assert (third.duplicates, third.credited) == (12, 0)
    assert ledger_total(customer) == build.STANDARD_CREDITABLE + 12
    assert LedgerEntry.objects.count() == build.STANDARD_CREDITABLE_LINES + 2


def test_rem_4_rem_2_overlapping_statement_on_a_shared_account_adds_only_its_new_lines(shared, now):
    """REM-4 / REM-2: the next statement repeats three entries of the last one (other statement,
    other bytes): they stay single, the two new ones wait unmatched."""
    entries = [build.Entry(f"{i}.00", ref=f"SH-{i}", txs=[build.Tx(f"{i}.00", f"Payer {i}")]) for i in range(1, 8)]
    do_import(build.camt(iban=build.SHARED_IBAN, statement_id="DAY-1", entries=entries[:5],
                         closing=build.STANDARD_OPENING + 15).encode(), now)
    second = do_import(build.camt(iban=build.SHARED_IBAN, statement_id="DAY-2", entries=entries[2:],
                                  closing=build.STANDARD_OPENING + 25).encode(), now)
    assert (second.entries, second.duplicates, second.unmatched, second.new_statements) == (5, 3, 2, 1)
    assert sorted(BankTransaction.objects.values_list("bank_reference", flat=True)) == [f"SH-{i}" for i in range(1, 8)]
    assert set(BankTransaction.objects.values_list("status", flat=True)) == {Status.UNMATCHED}
    assert not LedgerEntry.objects.exists()


def test_rem_5_resent_statement_of_known_entries_must_still_reconcile(dedicated, customer, now):
    """Every entry being known skips no check: balances that do not add up refuse the file (REM-5)."""
    do_import(build.camt(statement_id="S1").encode(), now)
    ledger, rows = ledger_total(customer), BankTransaction.objects.count()
    with pytest.raises(UnreconciledStatement, match="closing balance is 1545.01"):
        do_import(regenerated(build.camt(statement_id="S1", closing=build.STANDARD_CLOSING + Decimal("0.01"))), now)
    assert (ledger_total(customer), BankTransaction.objects.count()) == (ledger, rows)


def _batch_and_lookalike(statement_id: str, *, with_batch: bool = True, with_lookalike: bool = True):
    """A batch entry ``E1`` without detail references (keys ``E1#1``, ``E1#2``) and/or another
    entry whose own bank reference is literally ``E1#1``."""
    entries = []
    if with_batch:
        entries.append(build.Entry("30.00", ref="E1", txs=[build.Tx("10.00", "Batch One"), build.Tx("20.00", "Batch Two")]))
    if with_lookalike:
        entries.append(build.Entry("5.00", ref="E1#1", txs=[build.Tx("5.00", "Lookalike")]))
    total = sum((Decimal(e.amount) for e in entries), Decimal("0"))
    return build.camt(statement_id=statement_id, entries=entries, closing=build.STANDARD_OPENING + total).encode()


def test_rem_4_a_reference_that_looks_like_a_batch_key_is_its_own_transfer(dedicated, customer, now):
    """REM-4 / REM-6: an entry whose bank reference is ``E1#1`` next to a batch ``E1`` split into
    ``E1#1`` and ``E1#2``: three transfers, three credits; none is taken for a duplicate."""
    summary = do_import(_batch_and_lookalike("S-LOOK"), now)

    keys = dict(BankTransaction.objects.values_list("payer_name", "bank_reference"))
    assert keys == {"Batch One": "E1#1", "Batch Two": "E1#2", "Lookalike": "ref:E1#1"}
    assert (summary.credited, summary.duplicates) == (3, 0)
    assert ledger_total(customer) == Decimal("35.00")


@pytest.mark.parametrize("first_batch", [True, False])
def test_rem_4_lookalike_reference_in_another_file_is_not_a_duplicate(dedicated, customer, now, first_batch):
    """Across files too: whichever of the two arrives first, the other is still recorded and
    credited, and re-sending either changes nothing (I2)."""
    first = _batch_and_lookalike("S-A", with_batch=first_batch, with_lookalike=not first_batch)
    second = _batch_and_lookalike("S-B", with_batch=not first_batch, with_lookalike=first_batch)
    do_import(first, now)
    summary = do_import(second, now)
    assert summary.duplicates == 0 and BankTransaction.objects.count() == 3
    assert ledger_total(customer) == Decimal("35.00")
    assert do_import(regenerated(second.decode()), now).credited == 0
    assert ledger_total(customer) == Decimal("35.00")


def test_rem_6_i6_resent_known_entries_are_still_checked(dedicated, customer, now):
    """A re-sent file whose known batch no longer adds up (REM-6), or whose known entry has a bad
    amount (I6), is refused whole as on its first import."""
    do_import(build.camt(statement_id="S1").encode(), now)
    rows = BankTransaction.objects.count()
    uneven = build.camt(statement_id="S1").replace(">80.00</Amt>", ">70.00</Amt>")
    with pytest.raises(BatchMismatch, match="add up to 290.00 USD but the entry is 300.00 USD"):
        do_import(regenerated(uneven), now)
    bad = build.camt(statement_id="S1").replace('<Amt Ccy="USD">250.00</Amt>', '<Amt Ccy="USD">250.001</Amt>', 1)
    with pytest.raises(BadAmount, match="250.001 has more than two decimal places"):
        do_import(regenerated(bad), now)
    assert BankTransaction.objects.count() == rows
    assert ledger_total(customer) == build.STANDARD_CREDITABLE


def test_rem_4_duplicate_check_is_batched_not_per_entry(shared, now):
    """The number of queries does not grow with the number of entries."""

    def run(n: int, statement_id: str) -> int:
        entries = [build.Entry("1.00", ref=f"{statement_id}-{i}", txs=[build.Tx("1.00", f"P{i}")]) for i in range(n)]
        doc = build.camt(iban=build.SHARED_IBAN, statement_id=statement_id, entries=entries,
                         closing=build.STANDARD_OPENING + n)
        with CaptureQueriesContext(connection) as queries:
            do_import(doc.encode(), now)
        return len(queries)

    assert run(5, "SMALL") == run(400, "LARGE")


# --- REM-5 / REM-6 / REM-7 ------------------------------------------------------------------------


def test_rem_5_unreconciled_camt053_is_refused_whole_with_the_figures(dedicated, now):
    with pytest.raises(UnreconciledStatement) as caught:
        do_import(sample("camt053_unreconciled_v08.xml"), now)
    detail = caught.value.detail
    assert "opening balance 1000.00" in detail and "booked entries 545.00 = 1545.00" in detail
    assert "closing balance is 1545.01" in detail and caught.value.rule == "REM-5"
    assert nothing_recorded()


def test_rem_5_unreconciled_mt940_is_refused_whole(dedicated, now):
    with pytest.raises(UnreconciledStatement, match="1560.01"):
        do_import(sample("mt940_unreconciled.sta"), now)
    assert nothing_recorded()


def test_rem_6_batch_entry_becomes_one_transaction_per_detail(dedicated, customer, now):
    do_import(sample("camt053_v08.xml"), now)
    batch = BankTransaction.objects.filter(position=2).order_by("detail_index")
    assert [(t.detail_index, t.amount, t.payer_name, t.payer_account, t.remittance_info) for t in batch] == [
        (1, Decimal("100.00"), "Globex Ltd", "FR1420041010050500013M02606", "Globex order 77"),
        (2, Decimal("120.00"), "Initech GmbH", "DE44500105175407324931", "Initech inv 12"),
        (3, Decimal("80.00"), "Umbrella Inc", "NL91ABNA0417164300", "Umbrella Q4"),
    ]
    assert all(t.status == Status.CREDITED for t in batch)
    assert len({t.ledger_entry_id for t in batch}) == 3


def test_rem_6_single_detail_entry_is_booked_at_the_entry_amount(dedicated, customer, now):
    """A lone detail may show the amount before the bank's charges: the booked entry counts."""
    entry = build.Entry("98.50", ref="FEE-1", txs=[build.Tx("100.00", "Charged Payer")])
    do_import(build.camt(statement_id="FEES", entries=[entry], closing=Decimal("1098.50")).encode(), now)
    assert BankTransaction.objects.get().amount == Decimal("98.50")
    assert ledger_total(customer) == Decimal("98.50")


def test_rem_6_batch_whose_details_do_not_add_up_is_refused(dedicated, now):
    with pytest.raises(BatchMismatch, match="add up to 250.00 USD but the entry is 300.00 USD"):
        do_import(sample("camt053_batch_mismatch_v08.xml"), now)
    assert nothing_recorded()


def test_rem_7_statement_for_an_unknown_receiving_account_is_refused(dedicated, now):
    with pytest.raises(UnknownReceivingAccount, match=build.UNKNOWN_IBAN) as caught:
        do_import(sample("camt053_unknown_account_v08.xml"), now)
    assert caught.value.rule == "REM-7"
    assert nothing_recorded()


def test_rem_7_file_with_one_unknown_statement_is_refused_whole(dedicated, now):
    """Several statements in a file: all-or-nothing for the whole file."""
    good = build.camt(statement_id="GOOD")
    bad = build.camt(statement_id="BAD", iban=build.UNKNOWN_IBAN)
    stmt = lambda doc: doc[doc.index("<Stmt>"): doc.index("</Stmt>") + len("</Stmt>")]  # noqa: E731
    both = good.replace(stmt(good), stmt(good) + stmt(bad))
    with pytest.raises(UnknownReceivingAccount):
        do_import(both.encode(), now)
    assert nothing_recorded()


def test_rem_4_file_with_two_statements_records_both(dedicated, shared, customer, now):
    a = build.camt(statement_id="A")
    b = build.camt(statement_id="B", iban=build.SHARED_IBAN)
    stmt = lambda doc: doc[doc.index("<Stmt>"): doc.index("</Stmt>") + len("</Stmt>")]  # noqa: E731
    summary = do_import(a.replace(stmt(a), stmt(a) + stmt(b)).encode(), now)
    assert (summary.statements, summary.credited, summary.unmatched) == (2, 7, 7)
    assert BankStatement.objects.count() == 2


# --- entries that are never credited --------------------------------------------------------------


def test_rem_1_debit_reversal_and_pending_entries_are_recorded_never_credited(dedicated, now):
    do_import(sample("camt053_v08.xml"), now)
    kinds = {t.payer_name: (t.entry_kind, t.status, t.ledger_entry_id, t.account_id) for t in BankTransaction.objects.all()}
    assert kinds["Supplier AG"] == ("debit", Status.NOT_CREDITABLE, None, None)
    assert kinds["Returned Co"] == ("reversal", Status.NOT_CREDITABLE, None, None)
    assert kinds["Pending Payer"] == ("pending", Status.NOT_CREDITABLE, None, None)


def test_rem_1_mt940_reversed_debit_puts_money_back_but_is_not_credited(dedicated, now):
    do_import(sample("mt940_day.sta"), now)
    reversed_debit = BankTransaction.objects.get(bank_reference="E4B-REF")
    assert (reversed_debit.entry_kind, reversed_debit.status) == ("reversal", Status.NOT_CREDITABLE)
    assert reversed_debit.ledger_entry_id is None


def test_rem_1_currency_mismatch_goes_to_review_uncredited(dedicated, customer, now):
    summary = do_import(sample("camt053_eur_v08.xml"), now)
    assert (summary.review, summary.credited) == (1, 0)
    txn = BankTransaction.objects.get()
    assert (txn.status, txn.currency, txn.ledger_entry_id) == (Status.REVIEW, "EUR", None)
    assert not LedgerEntry.objects.exists()


# --- refused files change nothing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("billion_laughs.xml", HostileXml),
        ("external_entity.xml", HostileXml),
        ("external_dtd.xml", HostileXml),
        ("parameter_entity.xml", HostileXml),
        ("camt053_truncated.xml", MalformedStatement),
        ("mt940_truncated.sta", MalformedStatement),
        ("camt053_unknown_version.xml", UnsupportedStatement),
        ("camt052_v08.xml", UnsupportedStatement),
        ("pain001.xml", UnsupportedStatement),
        ("camt053_three_decimals_v08.xml", BadAmount),
        ("camt053_jpy_v08.xml", BadAmount),
    ],
)
def test_rem_4_refused_files_fail_atomically_with_a_clear_error(name, error, dedicated, now):
    with pytest.raises(error) as caught:
        do_import(sample(name), now)
    assert caught.value.detail and caught.value.code.startswith("statement_")
    assert nothing_recorded()


def test_oversized_upload_is_refused_before_parsing(dedicated, settings, now):
    settings.STATEMENT_MAX_BYTES = 100
    with pytest.raises(StatementTooLarge):
        do_import(sample("camt053_v08.xml"), now)
    assert nothing_recorded()


def test_i6_bad_amount_in_one_entry_refuses_the_whole_file(dedicated, now):
    entries = list(build.STANDARD_DAY) + [build.Entry("1.001", ref="BAD", txs=[build.Tx("1.001", "x")])]
    with pytest.raises(BadAmount, match="1.001 has more than two decimal places"):
        do_import(build.camt(entries=entries).encode(), now)
    assert nothing_recorded()


# --- the import_bank_statement command ------------------------------------------------------------


def run_command(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_bank_statement", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_json_prints_one_summary_object(dedicated):
    out, _ = run_command(str(SAMPLES / "camt053_v08.xml"), "--json")
    payload = json.loads(out)  # exactly one object: anything else would not parse
    assert {"entries", "credited", "unmatched", "duplicates", "rejected"} <= payload.keys()
    assert (payload["entries"], payload["credited"], payload["rejected"]) == (10, 7, 3)
    again, _ = run_command(str(SAMPLES / "camt053_v08.xml"), "--json", "--format", "camt053")
    assert json.loads(again)["duplicates"] == 10


def test_command_refused_file_exits_non_zero_with_error_object_and_changes_nothing(dedicated):
    from django.core.management.base import CommandError

    out = io.StringIO()
    with pytest.raises(CommandError, match="REM-5"):
        call_command("import_bank_statement", str(SAMPLES / "camt053_unreconciled_v08.xml"), "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["rule"] == "REM-5" and "does not reconcile" in payload["error"]
    assert nothing_recorded()


def test_command_process_exit_code_and_stderr(dedicated):
    """Through the real entry point: non-zero exit, the reason on stderr."""
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_backoffice.settings.test"}
    env["DATABASE_URL"] = _database_url()  # the test database this test runs against
    done = subprocess.run(
        [sys.executable, "manage.py", "import_bank_statement", str(SAMPLES / "billion_laughs.xml"), "--json"],
        capture_output=True, text=True, env=env, cwd=Path(settings.BASE_DIR), timeout=120,
    )
    assert done.returncode != 0
    assert "DTD" in done.stderr
    assert json.loads(done.stdout)["code"] == "statement_hostile_xml"


def _database_url() -> str:
    from tests.helpers.database import current_database_url

    return current_database_url()


def test_command_refuses_oversized_file_before_reading(dedicated, settings):
    from django.core.management.base import CommandError

    settings.STATEMENT_MAX_BYTES = 10
    out = io.StringIO()
    with pytest.raises(CommandError, match="limited to 10 bytes"):
        call_command("import_bank_statement", str(SAMPLES / "camt053_v08.xml"), "--json", stdout=out)
    assert json.loads(out.getvalue())["code"] == "statement_too_large"


# --- admin: upload, the transactions queue, exports -----------------------------------------------


def staff_with(username: str, *codenames: str):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="remittances", codename__in=codenames))
    return user


@pytest.fixture
def finance_user():
    return staff_with(
        "finance-stmt", "import_bankstatement", "view_bankstatement", "view_banktransaction", "approve_remittanceclaim"
    )


@pytest.fixture
def manager_user():
    return staff_with(
        "manager-stmt", "view_bankstatement", "view_banktransaction", "add_remittanceclaim", "review_remittanceclaim"
    )


UPLOAD_URL = "admin:remittances_bankstatement_upload"


def upload(client, name: str, fmt: str = "auto", content: bytes | None = None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = sample(name) if content is None else content
    return client.post(reverse(UPLOAD_URL), {"file": SimpleUploadedFile(name, data), "format": fmt})


def test_rem_4_admin_upload_as_finance_imports_and_shows_the_summary(
    client, finance_user, dedicated, customer, eager_tasks, django_capture_on_commit_callbacks
):
    client.force_login(finance_user)
    assert client.get(reverse(UPLOAD_URL)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # the import's job runs in the request
        response = upload(client, "camt053_v08.xml")
    assert response.status_code == 302  # to the job's progress page
    page = client.get(response["Location"]).content.decode()
    assert 'id="job-summary"' in page and '<th scope="row">Credited</th><td>7</td>' in page
    statement = BankStatement.objects.get()
    assert statement.imported_by == finance_user and statement.file_name == "camt053_v08.xml"
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    # the statement list shows it with its summary, and the upload button
    listing = client.get(reverse("admin:remittances_bankstatement_changelist"))
    assert listing.status_code == 200
    assert "7 credited" in listing.content.decode() and reverse(UPLOAD_URL) in listing.content.decode()


def test_rem_4_admin_upload_forbidden_to_account_managers(client, manager_user, dedicated):
    client.force_login(manager_user)
    assert client.get(reverse(UPLOAD_URL)).status_code == 403
    assert upload(client, "camt053_v08.xml").status_code == 403
    assert nothing_recorded()
    listing = client.get(reverse("admin:remittances_bankstatement_changelist"))
    assert listing.status_code == 200 and reverse(UPLOAD_URL) not in listing.content.decode()


def test_rem_5_admin_upload_of_a_refused_file_shows_the_error_and_changes_nothing(
    client, finance_user, dedicated, eager_tasks, django_capture_on_commit_callbacks
):
    client.force_login(finance_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "camt053_unreconciled_v08.xml")
    page = client.get(response["Location"]).content.decode()
    assert 'id="job-error"' in page and "REM-5" in page and "1545.01" in page
    assert nothing_recorded()


def test_admin_upload_over_the_size_limit_is_refused_before_parsing(client, finance_user, dedicated, settings):
    settings.STATEMENT_MAX_BYTES = 64
    client.force_login(finance_user)
    response = upload(client, "billion_laughs.xml")  # refused for its size, never parsed or stored
    assert response.status_code == 200 and not StaffJob.objects.exists()
    assert "statements are limited to 64 bytes" in response.content.decode()
    assert nothing_recorded()


@pytest.fixture
def queue(shared, dedicated, now):
    """Transactions of various ages, currencies and amounts on both kinds of receiving account."""
    do_import(sample("camt053_shared_v08.xml"), now)
    do_import(sample("camt053_eur_v08.xml"), now)
    return BankTransaction.objects.all()


def listed(client, **params) -> set[int]:
    response = client.get(reverse("admin:remittances_banktransaction_changelist"), params)
    assert response.status_code == 200, response.status_code  # an invalid filter redirects (?e=1)
    return {t.pk for t in response.context["cl"].result_list}


def test_rem_2_unmatched_queue_filters_and_search(client, finance_user, queue, shared):
    from django.utils import timezone

    client.force_login(finance_user)
    # The age filter reads the real clock: the lines arrived just now, whatever the date today.
    queue.update(received_at=timezone.now())
    unmatched = set(queue.filter(status=Status.UNMATCHED).values_list("pk", flat=True))
    assert listed(client, status__exact="unmatched") == unmatched and len(unmatched) == 7
    assert listed(client, age="today") == set(queue.values_list("pk", flat=True))
    assert listed(client, age="7") == set()
    old = queue.get(bank_reference="E1-REF-0001")
    BankTransaction.objects.filter(pk=old.pk).update(received_at=timezone.now() - timezone.timedelta(days=40))
    assert listed(client, age="30") == {old.pk}
    assert listed(client, currency="EUR") == set(queue.filter(currency="EUR").values_list("pk", flat=True))
    assert listed(client, amount_range="100-1k") == set(queue.filter(amount__gte=100, amount__lt=1000).values_list("pk", flat=True))
    assert listed(client, receiving=str(shared.pk)) == set(queue.filter(receiving_account=shared).values_list("pk", flat=True))
    assert listed(client, receiving="dedicated") == set(queue.filter(currency="EUR").values_list("pk", flat=True))
    assert listed(client, q="E2-D1") == {queue.get(bank_reference="E2-D1").pk}  # exact reference
    assert listed(client, q="E2-D") == set()  # references are matched exactly, never by prefix
    assert listed(client, q="initech") == {queue.get(payer_name="Initech GmbH").pk}


def test_unmatched_queue_is_read_only_and_offers_claims_to_managers(client, manager_user, queue):
    client.force_login(manager_user)
    response = client.get(reverse("admin:remittances_banktransaction_changelist"), {"status__exact": "unmatched"})
    assert response.status_code == 200
    txn = queue.filter(status=Status.UNMATCHED).first()
    try:
        initiate = reverse("admin:remittances_remittanceclaim_initiate", args=[txn.pk])
    except NoReverseMatch:  # the claims admin has no initiate page: no link to show
        initiate = None
    if initiate:
        assert initiate in response.content.decode()
    assert "Initiate a claim" not in client.get(
        reverse("admin:remittances_banktransaction_changelist"), {"status__exact": "credited"}
    ).content.decode()
    change = client.get(reverse("admin:remittances_banktransaction_change", args=[txn.pk]))
    assert change.status_code == 200 and b'name="amount"' not in change.content
    assert client.post(reverse("admin:remittances_banktransaction_delete", args=[txn.pk])).status_code == 403


def test_unmatched_queue_query_count_does_not_grow_with_the_page(client, finance_user, shared, now):
    client.force_login(finance_user)
    url = reverse("admin:remittances_banktransaction_changelist")

    def queries_for(n: int, statement_id: str) -> int:
        entries = [build.Entry("1.00", ref=f"{statement_id}-{i}", txs=[build.Tx("1.00", f"P{i}")]) for i in range(n)]
        do_import(build.camt(iban=build.SHARED_IBAN, statement_id=statement_id, entries=entries,
                             closing=build.STANDARD_OPENING + n).encode(), now)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url, {"status__exact": "unmatched"}).status_code == 200
        return len(queries)

    assert queries_for(3, "Q-SMALL") == queries_for(60, "Q-LARGE")


FORMULAS = {
    "payer_name": "=HYPERLINK(\"http://evil.invalid\",\"x\")",
    "remittance_info": "+cmd|' /C calc'!A0",
    "end_to_end_id": "-2+3",
    "payer_account": "@SUM(A1)",
}


@pytest.fixture
def hostile_txn(shared, now):
    statement = BankStatement.objects.create(
        receiving_account=shared, format="camt053", identity="HOSTILE", currency="USD", file_sha256="0" * 64,
        imported_at=now,
    )
    tab = BankTransaction.objects.create(
        statement=statement, receiving_account=shared, bank_reference="\tTAB-REF", position=2, entry_kind="credit",
        status=Status.UNMATCHED, amount=Decimal("5.00"), currency="USD", payer_name="\rCR name", received_at=now,
    )
    formula = BankTransaction.objects.create(
        statement=statement, receiving_account=shared, bank_reference="=1+1", position=1, entry_kind="credit",
        status=Status.UNMATCHED, amount=Decimal("10.00"), currency="USD", received_at=now, **FORMULAS,
    )
    return formula, tab


def test_csv_export_neutralises_formula_cells(hostile_txn):
    from remittances.admin.statements import BankTransactionResource

    formula, tab = hostile_txn
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(BankTransactionResource().export().csv))}
    for field, value in FORMULAS.items():
        assert rows[formula.pk][field] == "'" + value
    assert rows[formula.pk]["bank_reference"] == "'=1+1"
    assert rows[tab.pk]["bank_reference"] == "'\tTAB-REF" and rows[tab.pk]["payer_name"] == "'\rCR name"
    assert rows[formula.pk]["amount"] == "10.00"  # numbers are left alone


def test_admin_csv_and_xlsx_exports_neutralise_formula_cells(client, finance_user, hostile_txn):
    from remittances.admin.statements import BankTransactionResource

    client.force_login(finance_user)
    fields = {f"banktransactionresource_{name}": "on" for name in BankTransactionResource().get_export_order()}
    url = reverse("admin:remittances_banktransaction_export")
    response = client.post(url, {"format": "0", "resource": "0", **fields})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = body_of(response).decode("utf-8")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text and "'+cmd" in text
    xlsx = client.post(url, {"format": "1", "resource": "0", **fields})
    assert xlsx.status_code == 200
    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(body_of(xlsx))).active
    values = [cell.value for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
    assert "'=HYPERLINK(\"http://evil.invalid\",\"x\")" in values
    assert not any(v.startswith(("=", "+", "@")) for v in values)


def test_export_needs_the_view_permission(client, hostile_txn):
    client.force_login(staff_with("nobody-stmt"))
    assert client.get(reverse("admin:remittances_banktransaction_export")).status_code == 403


# --- the statement inbox job ----------------------------------------------------------------------


@pytest.fixture
def inbox(tmp_path, settings):
    settings.STATEMENT_INBOX_DIR = tmp_path / "inbox"
    settings.STATEMENT_INBOX_DIR.mkdir()
    return settings.STATEMENT_INBOX_DIR


def test_rem_4_inbox_job_imports_each_file_and_files_it_away(inbox, dedicated, shared, customer):
    from remittances.tasks import import_statement_inbox

    for name in ("camt053_v08.xml", "mt940_shared.sta", "camt053_unreconciled_v08.xml"):
        (inbox / name).write_bytes(sample(name))
    (inbox / ".half-written.xml").write_bytes(b"<Docu")
    (inbox / "later.xml.part").write_bytes(b"<Docu")
    outcome = import_statement_inbox()
    assert sorted(f["file"] for f in outcome["imported"]) == ["camt053_v08.xml", "mt940_shared.sta"]
    [failed] = outcome["failed"]
    assert (failed["file"], failed["rule"]) == ("camt053_unreconciled_v08.xml", "REM-5")
    assert ledger_total(customer) == build.STANDARD_CREDITABLE
    processed = sorted(p.name for p in (inbox / "processed").iterdir())
    assert len(processed) == 4 and sum(name.endswith(".summary.json") for name in processed) == 2
    [error_file] = (inbox / "failed").glob("*.error.txt")
    assert "REM-5" in error_file.read_text() and "does not reconcile" in error_file.read_text()
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".half-written.xml", "later.xml.part"]
    assert import_statement_inbox() == {"imported": [], "failed": []}  # a second run has nothing to do


def test_rem_4_inbox_job_requeues_a_file_left_by_a_dead_run(inbox, dedicated, customer):
    import os
    import time

    from remittances.tasks import import_statement_inbox

    processing = inbox / "processing"
    processing.mkdir()
    stuck = processing / "20261126T000000-deadbeef--camt053_v08.xml"
    stuck.write_bytes(sample("camt053_v08.xml"))
    old = time.time() - 3600
    os.utime(stuck, (old, old))
    fresh = processing / "20261126T000000-cafebabe--camt054_v08.xml"  # a live run is on it
    fresh.write_bytes(sample("camt054_v08.xml"))
    outcome = import_statement_inbox()
    assert [f["file"] for f in outcome["imported"]] == ["camt053_v08.xml"]
    assert fresh.exists()
    assert ledger_total(customer) == build.STANDARD_CREDITABLE


def test_statement_and_transaction_pages_render_for_a_superuser(client, queue):
    client.force_login(UserFactory(username="root-stmt", is_superuser=True))
    statement = BankStatement.objects.first()
    txn = queue.first()
    for url in (
        reverse("admin:remittances_bankstatement_changelist"),
        reverse("admin:remittances_bankstatement_change", args=[statement.pk]),
        reverse("admin:remittances_bankstatement_changelist") + "?q=STMT-SHARED-1",
        reverse("admin:remittances_banktransaction_changelist"),
        reverse("admin:remittances_banktransaction_change", args=[txn.pk]),
        reverse("admin:remittances_banktransaction_export"),
        reverse(UPLOAD_URL),
    ):
        assert client.get(url).status_code == 200, url
    assert client.get(reverse("admin:remittances_bankstatement_add")).status_code == 403  # bank records only
