"""Statement import (REM-1, REM-2, REM-4..7): the service, the command, the admin and the inbox job.

The sample files are in ``samples/`` (see ``samples/build.py`` for what each day contains).
"""

from __future__ import annotations

import csv
import io
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from payments.models import LedgerEntry
from remittances.models import BankStatement, BankTransaction, RemittanceAccount, bank_transaction_ledger_reference
from remittances.parsers import BadAmount, HostileXml, MalformedStatement, StatementTooLarge, UnsupportedStatement
from remittances.services.statements import (
    BatchMismatch,
    UnknownReceivingAccount,
    UnreconciledStatement,
    statement_import,
)
from tests.factories import AccountFactory, UserFactory
from tests.remittances.samples import build

SAMPLES = Path(build.HERE)
Status = BankTransaction.Status

pytestmark = pytest.mark.django_db


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def make_receiving_account(*, number, kind, account=None, currency="USD", now, status="active"):
    return RemittanceAccount.objects.create(
        kind=kind,
        status=status,
        account=account,
        number=number,
        bank_name="Example Bank Europe",
        bic="EXBKDEFFXXX",
        bank_country="DE",
        currency=currency,
        beneficiary_name="Alibaba Cloud (Singapore) Pte. Ltd.",
        issued_at=now,
    )


@pytest.fixture
def customer():
    return AccountFactory(kind="enterprise", name="ACME Corp")


@pytest.fixture
def dedicated(customer, now):
    return make_receiving_account(
        number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=customer, now=now
    )


@pytest.fixture
def shared(now):
    return make_receiving_account(number=build.SHARED_IBAN, kind=RemittanceAccount.Kind.NON_DEDICATED, now=now)


def ledger_total(account) -> Decimal:
    return LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or Decimal("0")


def nothing_recorded() -> bool:
    return (
        not BankStatement.objects.exists()
        and not BankTransaction.objects.exists()
        and not LedgerEntry.objects.exists()
    )


def do_import(data: bytes, now, **kwargs):
    return statement_import(data=data, file_name=kwargs.pop("file_name", "statement"), now=now, **kwargs)


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
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        do_import(sample("camt053_shared_v08.xml"), now)
    assert len(callbacks) == 1  # claims_match_pending runs once the lines are visible


# --- REM-4 duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["camt053_v02.xml", "camt053_v08.xml", "camt054_v02.xml", "mt940_day.sta"])
def test_rem_4_same_file_twice_second_import_only_duplicates(name, dedicated, customer, now):
    first = do_import(sample(name), now)
    rows = BankTransaction.objects.count()
    second = do_import(sample(name), now)
    assert second.duplicates == second.entries == first.entries
    assert (second.credited, second.unmatched, second.rejected, second.review) == (0, 0, 0, 0)
    assert second.statement_id == first.statement_id and second.new_statements == 0
    assert BankTransaction.objects.count() == rows and BankStatement.objects.count() == 1
    assert ledger_total(customer) == Decimal(first.credited_amounts["USD"])
    assert LedgerEntry.objects.count() == first.credited


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
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or _database_url(settings)
    done = subprocess.run(
        [sys.executable, "manage.py", "import_bank_statement", str(SAMPLES / "billion_laughs.xml"), "--json"],
        capture_output=True, text=True, env=env, cwd=Path(settings.BASE_DIR), timeout=120,
    )
    assert done.returncode != 0
    assert "DTD" in done.stderr
    assert json.loads(done.stdout)["code"] == "statement_hostile_xml"


def _database_url(settings) -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_command_refuses_oversized_file_before_reading(dedicated, settings):
    from django.core.management.base import CommandError

    settings.STATEMENT_MAX_BYTES = 10
    out = io.StringIO()
    with pytest.raises(CommandError, match="limited to 10 bytes"):
        call_command("import_bank_statement", str(SAMPLES / "camt053_v08.xml"), "--json", stdout=out)
    assert json.loads(out.getvalue())["code"] == "statement_too_large"
