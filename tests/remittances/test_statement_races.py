"""REM-4 / REM-1 races on PostgreSQL with real threads: one file imported several times at once.

Each thread runs ``statement_import`` on its own connection (closed at the end). Whatever the
interleaving, each line of the file exists once and each credit reaches the ledger once.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from payments.models import LedgerEntry
from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from remittances.services.statements import statement_import
from tests.factories import AccountFactory
from tests.concurrency import errors_of, run_at_once as run_all_at_once
from tests.remittances.samples import build
from tests.helpers.statements import make_receiving_account

pytestmark = [pytest.mark.race, pytest.mark.django_db(transaction=True)]


def run_at_once(payloads: list[bytes], now):
    """Import every payload in its own thread, all released together; (summaries, errors)."""
    results = run_all_at_once([lambda data=data: statement_import(data=data, file_name="race", now=now)
                               for data in payloads])
    errors = errors_of(results)
    return [result for result in results if not isinstance(result, BaseException)], errors


@pytest.fixture
def customer():
    return AccountFactory(kind="enterprise")


@pytest.fixture
def dedicated(customer, now):
    return make_receiving_account(
        number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=customer, now=now
    )


def ledger_total(account) -> Decimal:
    return LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or Decimal("0")


@pytest.mark.parametrize("round_", range(3))
def test_rem_4_rem_1_same_file_imported_four_times_at_once_credits_each_entry_once(round_, dedicated, customer, now):
    data = build.camt(statement_id=f"RACE-{round_}").encode()
    summaries, errors = run_at_once([data] * 4, now)
    assert not errors, errors
    assert sum(s.credited for s in summaries) == build.STANDARD_CREDITABLE_LINES
    assert sorted(s.duplicates for s in summaries) == [0, 10, 10, 10]
    assert ledger_total(customer) == build.STANDARD_CREDITABLE  # the file's credits, once
    assert LedgerEntry.objects.count() == build.STANDARD_CREDITABLE_LINES
    assert BankTransaction.objects.count() == build.STANDARD_LINES
    assert BankStatement.objects.count() == 1


def test_rem_4_notification_and_statement_of_the_same_entries_at_once_credit_once(dedicated, customer, now):
    """Different statement ids, same bank references: the entry keys decide, under the same race."""
    entries = [e for e in build.STANDARD_DAY if e.ref in ("E1-REF-0001", "E2-BATCH")]
    payloads = [
        build.camt(message="054", statement_id="NTF-RACE", entries=entries).encode(),
        build.camt(statement_id="STMT-RACE", entries=entries, closing=Decimal("1550.00")).encode(),
        build.camt(message="054", version=2, statement_id="NTF-RACE-2", entries=entries).encode(),
    ]
    summaries, errors = run_at_once(payloads, now)
    assert not errors, errors
    assert sum(s.credited for s in summaries) == 4
    assert sum(s.duplicates for s in summaries) == 8
    assert ledger_total(customer) == Decimal("550.00")
    assert BankStatement.objects.count() == 3


def test_rem_4_i2_overlapping_files_with_other_bytes_at_once_credit_each_entry_once(dedicated, customer, now):
    """Three different files sharing entries, imported at once: a statement, the same statement
    generated again (other message id, other bytes) and the next statement repeating half of it.
    Each entry is recorded and credited once, whichever import gets it."""
    entries = [build.Entry(f"{i}.00", ref=f"OV-{i}", txs=[build.Tx(f"{i}.00", f"Payer {i}")]) for i in range(1, 13)]
    first = build.camt(statement_id="OV-1", entries=entries[:8], closing=build.STANDARD_OPENING + 36)
    payloads = [
        first.encode(),
        first.replace("<MsgId>MSG-OV-1</MsgId>", "<MsgId>MSG-OV-1-AGAIN</MsgId>").encode(),
        build.camt(statement_id="OV-2", entries=entries[4:], closing=build.STANDARD_OPENING + 68).encode(),
    ]
    assert len(set(payloads)) == 3
    summaries, errors = run_at_once(payloads, now)
    assert not errors, errors
    assert sum(s.credited for s in summaries) == 12
    assert sum(s.duplicates for s in summaries) == 8 + 8 + 8 - 12
    assert BankTransaction.objects.count() == 12
    assert ledger_total(customer) == sum(range(1, 13))
    assert LedgerEntry.objects.count() == 12
    assert BankStatement.objects.count() == 2


def test_rem_2_shared_file_imported_at_once_records_each_line_once(now):
    make_receiving_account(number=build.SHARED_IBAN, kind=RemittanceAccount.Kind.NON_DEDICATED, now=now)
    data = build.camt(iban=build.SHARED_IBAN, statement_id="SHARED-RACE").encode()
    summaries, errors = run_at_once([data] * 3, now)
    assert not errors, errors
    assert sum(s.unmatched for s in summaries) == build.STANDARD_CREDITABLE_LINES
    assert BankTransaction.objects.filter(status=BankTransaction.Status.UNMATCHED).count() == 7
    assert not LedgerEntry.objects.exists()


def test_rem_4_inbox_job_running_twice_at_once_imports_each_file_once(dedicated, customer, now, tmp_path, settings):
    from remittances.tasks import import_statement_inbox

    settings.STATEMENT_INBOX_DIR = tmp_path / "inbox"
    settings.STATEMENT_INBOX_DIR.mkdir()
    for i in range(6):
        entries = [build.Entry("10.00", ref=f"INBOX-{i}", txs=[build.Tx("10.00", f"Payer {i}")])]
        doc = build.camt(statement_id=f"INBOX-{i}", entries=entries, closing=build.STANDARD_OPENING + 10)
        (settings.STATEMENT_INBOX_DIR / f"day-{i}.xml").write_text(doc)
    barrier = threading.Barrier(3)
    outcomes, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            outcomes.append(import_statement_inbox())
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    imported = sorted(f["file"] for o in outcomes for f in o["imported"])
    assert imported == [f"day-{i}.xml" for i in range(6)]  # each file claimed by exactly one run
    assert ledger_total(customer) == Decimal("60.00")
    assert len(list((settings.STATEMENT_INBOX_DIR / "processed").glob("*.xml"))) == 6
