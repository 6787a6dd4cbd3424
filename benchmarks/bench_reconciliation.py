"""Daily reconciliation proof benchmark (QUALITY.md: RCN-1..3 over 1,000 receiving accounts and
1M bank transactions within 60 s, set-based). Not part of the test command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/bench_reconciliation.py \
        [--accounts 1000] [--lines-per-account 1000] [--json results.json]

A throw-away database ``test_<name>`` is loaded with ``INSERT ... SELECT generate_series``: N
receiving accounts (one in ten dedicated to a cloud account), each with yesterday's and today's
statement and ``--lines-per-account`` booked credits today (the dedicated ones credited through
ledger entries, the shared ones unmatched); every figure agrees. Then ``reconciliation_run``
for today (the run), and again (the re-run, which must record nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from payments.models import Account, LedgerEntry  # noqa: E402
from remittances.models import (  # noqa: E402
    BankStatement,
    BankTransaction,
    ReconciliationDay,
    ReconciliationException,
    RemittanceAccount,
)
from remittances.services.reconciliation import reconciliation_run  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
DAY = date(2026, 11, 25)
BUDGET_S = 60


def load(*, accounts: int, lines: int) -> None:
    acct, rem, stmt, txn, ledger = (m._meta.db_table for m in (Account, RemittanceAccount, BankStatement,
                                                                BankTransaction, LedgerEntry))
    dedicated = max(1, accounts // 10)
    with connection.cursor() as c:
        c.execute(f"""INSERT INTO {acct} (uid, name, email, kind, country, region, status, kyc_status, credit_approved,
            credit_limit, credit_currency, auto_settlement_enabled, has_running_resources, paypal_charge_threshold,
            has_outstanding_bills, created_at)
            SELECT '8' || lpad(g::text, 15, '0'), 'Bench ' || g, 'bench' || g || '@example.com', 'enterprise', 'DE',
                'EU', 'active', 'not_required', false, 0, 'EUR', false, false, 100, false, %s
            FROM generate_series(1, %s) g""", [NOW, dedicated])
        c.execute(f"""INSERT INTO {rem} (kind, status, account_id, number, bank_name, bic, bank_code, bank_country,
            currency, beneficiary_name, issued_at)
            SELECT CASE WHEN g <= %s THEN 'dedicated' ELSE 'non_dedicated' END, 'active',
                (SELECT id FROM {acct} WHERE uid = '8' || lpad(g::text, 15, '0')),
                'BENCH' || lpad(g::text, 12, '0'), 'Bench Bank', 'EXBKDEFFXXX', '', 'DE', 'EUR', 'Cloud Ltd', %s
            FROM generate_series(1, %s) g""", [dedicated, NOW, accounts])
        closing = f"{lines * 10}.00"
        c.execute(f"""INSERT INTO {stmt} (receiving_account_id, format, identity, currency, opening_balance,
            closing_balance, period_start, period_end, file_name, file_sha256, imported_at, summary)
            SELECT r.id, 'camt053', 'B-' || r.id || '-' || d.n, 'EUR', 0, CASE WHEN d.n = 1 THEN 0 ELSE {closing} END,
                %s::date - (2 - d.n), %s::date - (2 - d.n), 'bench', md5(r.id || '-' || d.n), %s, '{{}}'
            FROM {rem} r CROSS JOIN (VALUES (1), (2)) AS d(n)""", [DAY, DAY, NOW])
        c.execute(f"""INSERT INTO {txn} (statement_id, receiving_account_id, bank_reference, position, detail_index,
            entry_kind, status, amount, currency, booking_date, value_date, payer_name, payer_account,
            remittance_info, end_to_end_id, account_id, received_at, reversal_of)
            SELECT s.id, r.id, 'BT-' || r.id || '-' || g, g, 0, 'credit',
                CASE WHEN r.kind = 'dedicated' THEN 'matched' ELSE 'unmatched' END, 10.00, 'EUR', %s, %s,
                'Payer', '', '', '', r.account_id, %s, ''
            FROM {rem} r JOIN {stmt} s ON s.receiving_account_id = r.id AND s.period_end = %s
            CROSS JOIN generate_series(1, %s) g""", [DAY, DAY, NOW, DAY, lines])
        # The dedicated lines were credited by the import: one ledger entry each.
        c.execute(f"""INSERT INTO {ledger} (account_id, amount, currency, kind, reference, memo, created_at)
            SELECT t.account_id, t.amount, 'EUR', 'remittance_credit', 'bank-txn:' || t.id, '', %s
            FROM {txn} t WHERE t.status = 'matched'""", [NOW])
        c.execute(f"""UPDATE {txn} t SET status = 'credited', ledger_entry_id = l.id, credited_at = %s
            FROM {ledger} l WHERE l.reference = 'bank-txn:' || t.id AND t.status = 'matched'""", [NOW])
        c.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--lines-per-account", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        load(accounts=args.accounts, lines=args.lines_per_account)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        recorded = reconciliation_run(day=DAY, now=NOW)
        run_s = time.perf_counter() - started
        started = time.perf_counter()
        again = reconciliation_run(day=DAY, now=NOW)
        rerun_s = time.perf_counter() - started
        agreed = ReconciliationDay.objects.filter(day=DAY, verdict="agreed").count()
        exceptions = ReconciliationException.objects.count()
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)
    assert again == 0, "a second run of the day must record nothing"
    row = {
        "accounts": args.accounts, "bank_transactions": args.accounts * args.lines_per_account,
        "load_s": round(load_s, 1), "run_s": round(run_s, 2), "days_recorded": recorded, "agreed": agreed,
        "exceptions": exceptions, "rerun_s": round(rerun_s, 3),
        "rows_per_s": round(args.accounts * args.lines_per_account / run_s),
        "within_budget": run_s < BUDGET_S,
    }
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key.ljust(width)}  {value}")
    print(f"budget: the proof over 1,000 receiving accounts / 1M bank transactions < {BUDGET_S} s; a re-run records nothing")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
