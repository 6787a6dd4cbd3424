"""Statement import benchmark (QUALITY.md: 100k-entry camt.053 under 60 s and 1 GB; re-import
inserts nothing and takes at most half the time). Not part of the test command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/bench_statement_import.py \
        [--entries 100000] [--dedicated-entries 20000] [--json results.json]

It creates a fresh throw-away database ``test_<name>`` (Django's test database machinery, so it
never touches the real one), generates camt.053 files in memory and imports them through
``statement_import``:

- shared account (REM-2): every credit stays unmatched; the pure import path.
- dedicated account (REM-1): every credit is posted to the ledger at once (bulk ledger postings,
  one ledger entry per line).

For each: the first import, a re-import of the same bytes (recognised by the file's hash) and a
re-send of the same entries as other bytes: the file as the bank generates it again, with a new
message id and creation time, so every entry is checked by its key (REM-4). Both must insert and
credit nothing. Figures: wall time of each import, the ratios of both re-imports to the first
import of the same run (QUALITY.md: at most 0.5), and the process's peak resident memory while
importing (sampled by a thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.test")

import django  # noqa: E402

django.setup()

import psutil  # noqa: E402
from django.db import connection  # noqa: E402

from payments.models import Account, LedgerEntry  # noqa: E402
from remittances.models import BankTransaction, RemittanceAccount  # noqa: E402
from remittances.services.statements import statement_import  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
SHARED = "DE02120300000000202051"
DEDICATED = "DE89370400440532013000"
BUDGET_SECONDS = 60
BUDGET_BYTES = 1024**3


def camt053(*, entries: int, iban: str, statement_id: str, message_id: str = "",
            created: str = "2026-11-25T18:00:00") -> bytes:
    """A camt.053.001.08 with ``entries`` booked credits of 1.00 to 9.99, each with one detail.

    ``message_id`` and ``created`` are the group header's: a file generated again by the bank
    has new ones, and the same statement and entries.
    """
    parts = []
    total = Decimal("0.00")
    for i in range(entries):
        amount = Decimal(100 + i % 900) / 100
        total += amount
        parts.append(
            f"<Ntry><Amt Ccy=\"USD\">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
            f"<BookgDt><Dt>2026-11-25</Dt></BookgDt><ValDt><Dt>2026-11-25</Dt></ValDt>"
            f"<AcctSvcrRef>{statement_id}-{i:07d}</AcctSvcrRef><BkTxCd><Prtry><Cd>NTRF</Cd></Prtry></BkTxCd>"
            f"<NtryDtls><TxDtls><Refs><EndToEndId>E2E-{i:07d}</EndToEndId></Refs>"
            f"<Amt Ccy=\"USD\">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
            f"<RltdPties><Dbtr><Pty><Nm>Payer {i % 5000}</Nm></Pty></Dbtr>"
            f"<DbtrAcct><Id><IBAN>GB33BUKB20201555555555</IBAN></Id></DbtrAcct></RltdPties>"
            f"<RmtInf><Ustrd>Invoice {i:07d}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n"
        )
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>{message_id or statement_id}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{statement_id}</Id><Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>USD</Ccy></Acct>"
        '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        "<Dt><Dt>2026-11-25</Dt></Dt></Bal>"
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">{total}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        "<Dt><Dt>2026-11-25</Dt></Dt></Bal>\n"
    )
    return (head + "".join(parts) + "</Stmt></BkToCstmrStmt></Document>\n").encode()


class PeakMemory:
    """Peak RSS of this process while the block runs (sampled every 50 ms)."""

    def __enter__(self):
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def timed_import(data: bytes) -> tuple[float, int, object]:
    with PeakMemory() as memory:
        started = time.perf_counter()
        summary = statement_import(data=data, file_name="bench.xml", now=NOW)
        elapsed = time.perf_counter() - started
    return elapsed, memory.peak, summary


def receiving_accounts():
    customer = Account.objects.create(name="Bench Customer", email="bench@example.com", kind="enterprise", country="US", region="intl")
    common = dict(bank_name="Example Bank", bic="EXBKDEFFXXX", bank_country="DE", currency="USD",
                  beneficiary_name="Bench", issued_at=NOW)
    RemittanceAccount.objects.create(kind="non_dedicated", number=SHARED, **common)
    RemittanceAccount.objects.create(kind="dedicated", number=DEDICATED, account=customer, **common)
    return customer


def scenario(name: str, *, entries: int, iban: str) -> dict:
    statement_id = f"BENCH-{name.upper()}"
    data = camt053(entries=entries, iban=iban, statement_id=statement_id)
    file_mb = round(len(data) / 1e6, 1)
    rows_before = BankTransaction.objects.count()
    first, first_peak, summary = timed_import(data)
    rows_after = BankTransaction.objects.count()
    again, again_peak, resummary = timed_import(data)
    # The same statement generated again by the bank: new message id and creation time, other
    # bytes, so no hash match and every entry is checked by its key (the batched lookup).
    regenerated = camt053(entries=entries, iban=iban, statement_id=statement_id,
                          message_id=f"{statement_id}-AGAIN", created="2026-11-26T06:00:00")
    assert regenerated != data
    del data  # one file in memory at a time, as for the first import
    resent, resent_peak, resent_summary = timed_import(regenerated)
    assert rows_after - rows_before == entries, "the first import must record every entry"
    assert BankTransaction.objects.count() == rows_after, "a re-import must insert nothing"
    assert resummary.duplicates == entries and resummary.credited == 0
    assert resent_summary.duplicates == entries and resent_summary.credited == 0
    return {
        "scenario": name,
        "entries": entries,
        "file_mb": file_mb,
        "first_s": round(first, 2),
        "reimport_s": round(again, 2),
        "reimport_ratio": round(again / first, 3),
        "resent_s": round(resent, 2),
        "resent_ratio": round(resent / first, 3),
        "peak_rss_mb": round(max(first_peak, again_peak, resent_peak) / 1e6),
        "credited": summary.credited,
        "unmatched": summary.unmatched,
        "rate_per_s": round(entries / first),
        "within_budget": first < BUDGET_SECONDS and max(first_peak, again_peak, resent_peak) < BUDGET_BYTES
        and again <= first / 2 and resent <= first / 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="entries of the shared-account file")
    parser.add_argument("--dedicated-entries", type=int, default=20_000, help="entries credited through the ledger")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    from django.test.utils import setup_test_environment

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        customer = receiving_accounts()
        rows = [scenario("shared", entries=args.entries, iban=SHARED)]
        if args.dedicated_entries:
            rows.append(scenario("dedicated", entries=args.dedicated_entries, iban=DEDICATED))
            assert LedgerEntry.objects.filter(account=customer).count() == args.dedicated_entries
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)

    columns = [
        "scenario", "entries", "file_mb", "first_s", "reimport_s", "reimport_ratio", "resent_s", "resent_ratio",
        "peak_rss_mb", "rate_per_s", "within_budget",
    ]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
    print(f"budgets: first import < {BUDGET_SECONDS} s, peak RSS < 1 GB, re-import and re-send <= 0.5 x first import")
    print("reimport = the same bytes (recognised by hash); resent = same statement generated again "
          "(new message id and time: other bytes, every entry checked by its key)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
