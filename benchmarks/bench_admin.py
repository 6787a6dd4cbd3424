"""Admin changelist benchmark (QUALITY.md: at 200k accounts / 2M methods / 1M bills, changelist
and search under 300 ms, pages under 300 KB of HTML). Not part of the test command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/bench_admin.py \
        [--accounts 200000] [--methods-per-account 10] [--bills 1000000] [--transactions 1000000] \
        [--claims 200000] [--repeat 5] [--json results.json]

It creates a throw-away database ``test_<name>`` (Django's test database machinery, so it never
touches the real one) and loads it with COPY, every constraint and trigger on (the audit
triggers are statement-level: one ``INSERT ... SELECT`` of events per COPY): accounts, their
payment methods (the first active and the default, one in ten PayPal, a third of the rest
removed), bills of every status over the last year, bank transactions on three shared receiving
accounts (1,000 per statement) and remittance claims in every status. Then ``VACUUM ANALYZE``,
as autovacuum would have done on a live database.

A superuser (``force_login``; the second factor is off in the test settings) GETs, through
``django.test.Client`` and the whole middleware stack, each big changelist: the first page,
page 2, filters, and every kind of search the admin routes (digits -> ids / UIDs, exact
e-mail / reference / payer id, text -> trigram), ``--repeat`` times each. Per URL: the median
milliseconds, the HTML size and the number of queries. Baseline, same run: the changelist of
staff groups (a table of two rows: the admin's own rendering and permission checks, no data
work); ``ratio`` is each URL's median over the baseline's. A URL over budget is shown with the
``EXPLAIN ANALYZE`` of its slowest query (``--explain-ms``: also any URL whose slowest query took
longer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.test")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench_data import WORDS, copy_rows, ids_of, load_accounts, load_methods, max_id  # noqa: E402
from payments.models import Bill  # noqa: E402
from remittances.models import BankStatement, BankTransaction, RemittanceAccount, RemittanceClaim  # noqa: E402

NOW = datetime.now(timezone.utc).replace(microsecond=0)
BUDGET_MS = 300
BUDGET_KB = 300
PER_STATEMENT = 1000
SHARED_NUMBERS = ("DE02120300000000202051", "GB33BUKB20201555555555", "NL91ABNA0417164300")


def load_bills(account_ids: list[int], count: int) -> None:
    """``count`` bills over the accounts, issued over the last year: 70 % paid, 15 % open, 5 %
    partially paid, 10 % overdue; monthly, order and threshold bills."""
    statuses = ["paid"] * 14 + ["open"] * 3 + ["partially_paid"] + ["overdue"] * 2
    kinds = ("monthly", "monthly", "monthly", "order", "usage_threshold")
    order_kinds = ("purchase", "upgrade", "renewal")

    def rows():
        for n in range(count):
            account_id = account_ids[n % len(account_ids)]
            issued = NOW - timedelta(minutes=(count - n) * 525_600 // count)  # oldest first, over a year
            status = statuses[n % len(statuses)]
            kind = kinds[n % len(kinds)]
            before_tax = Decimal(5 + n % 2000) + Decimal(n % 100) / 100
            tax = (before_tax * Decimal("0.10")).quantize(Decimal("0.01"))
            total = before_tax + tax
            paid = {"paid": total, "partially_paid": (total / 2).quantize(Decimal("0.01"))}.get(status, Decimal("0.00"))
            yield (account_id, kind, order_kinds[n % 3] if kind == "order" else "", f"bill-{n:09d}", issued,
                   (issued + timedelta(days=30)).date(), before_tax, tax, total, paid, status,
                   issued + timedelta(days=3) if status == "paid" else None)

    copy_rows(
        Bill,
        ("account_id", "kind", "order_kind", "reference", "issued_at", "due_date", "amount_before_tax", "tax",
         "total", "amount_paid", "status", "paid_at"),
        rows(),
        currency="USD",
    )


def load_bank_transactions(count: int, account_ids: list[int]) -> list[int]:
    """``count`` transactions on the shared receiving accounts, 1,000 per statement, received over
    the last year: most unmatched, some claimed, under review or not creditable. Their ids."""
    receiving = [
        RemittanceAccount.objects.create(
            kind="non_dedicated", number=number, bank_name="Example Bank", bic="EXBKDEFFXXX", bank_country="DE",
            currency="USD", beneficiary_name="Cloud Billing", issued_at=NOW - timedelta(days=400),
        ).pk
        for number in SHARED_NUMBERS
    ]
    statements = (count + PER_STATEMENT - 1) // PER_STATEMENT
    before = max_id(BankStatement)
    copy_rows(
        BankStatement,
        ("receiving_account_id", "identity", "file_sha256", "imported_at", "period_end"),
        (
            (receiving[k % len(receiving)], f"BENCH-STMT-{k:06d}", f"{k:064x}",
             NOW - timedelta(days=365) + timedelta(days=365) * k / statements,
             (NOW - timedelta(days=365) + timedelta(days=365) * k / statements).date())
            for k in range(statements)
        ),
        format="camt053",
        currency="USD",
        summary=json.dumps({"entries": PER_STATEMENT, "unmatched": PER_STATEMENT}),
    )
    statement_ids = ids_of(BankStatement, after=before)
    statuses = ["unmatched"] * 15 + ["claimed"] * 3 + ["review", "not_creditable"]

    def rows():
        for n in range(count):
            k = n // PER_STATEMENT
            status = statuses[n % len(statuses)]
            received = NOW - timedelta(days=365) + timedelta(days=365) * k / statements
            yield (statement_ids[k], receiving[k % len(receiving)], f"BANKREF-{n:010d}", n % PER_STATEMENT + 1,
                   "debit" if status == "not_creditable" else "credit", status,
                   Decimal(10 + n % 50_000) + Decimal(n % 100) / 100, received.date(), received.date(),
                   f"{WORDS[n % len(WORDS)].upper()} {WORDS[n * 7 % len(WORDS)].upper()} TRADING {n % 997}",
                   f"GB{n % 100:02d}BUKB{n:014d}", f"Invoice {n:08d}", f"E2E-{n:010d}",
                   account_ids[n % len(account_ids)] if status == "claimed" else None, received)

    before = max_id(BankTransaction)
    copy_rows(
        BankTransaction,
        ("statement_id", "receiving_account_id", "bank_reference", "position", "entry_kind", "status", "amount",
         "booking_date", "value_date", "payer_name", "payer_account", "remittance_info", "end_to_end_id",
         "account_id", "received_at"),
        rows(),
        currency="USD",
        detail_index=0,
    )
    return ids_of(BankTransaction, after=before)


def load_claims(count: int, account_ids: list[int], transaction_ids: list[int]) -> None:
    """``count`` claims: submitted (waiting or matched), reviewed, approved and rejected; each
    matched one on its own transaction (CLM-2), decided by someone else than who initiated and
    reviewed it (CLM-3)."""
    User = get_user_model()
    initiator, reviewer, decider = (
        User.objects.create_user(username=name, is_staff=True).pk for name in ("bench-am", "bench-rev", "bench-fin")
    )
    statuses = ["submitted", "submitted", "reviewed", "approved", "approved", "approved", "rejected", "rejected"]
    stride = max(len(transaction_ids) // max(count, 1), 1)

    def rows():
        for n in range(count):
            status = statuses[n % len(statuses)]
            waiting = status == "submitted" and n % 16 == 0
            txn = None if waiting or n * stride >= len(transaction_ids) else transaction_ids[n * stride]
            if txn is None and status == "approved":
                status = "rejected"
            submitted = NOW - timedelta(minutes=(count - n) * 525_600 // count)
            reviewed = status in ("reviewed", "approved", "rejected")
            decided = status in ("approved", "rejected")
            yield (account_ids[n * 13 % len(account_ids)], txn, Decimal(10 + n % 50_000), submitted.date(),
                   f"PAYER {WORDS[n % len(WORDS)].upper()}", f"BANKREF-{n * stride:010d}",
                   "staff" if n % 3 == 0 else "console", status, initiator if n % 3 == 0 else None,
                   reviewer if reviewed else None, decider if decided else None, submitted,
                   submitted + timedelta(hours=2) if reviewed else None,
                   submitted + timedelta(hours=5) if decided else None,
                   "not our customer" if status == "rejected" else "")

    copy_rows(
        RemittanceClaim,
        ("account_id", "bank_transaction_id", "amount", "value_date", "payer_name", "bank_reference", "source",
         "status", "initiated_by_id", "reviewed_by_id", "decided_by_id", "submitted_at", "reviewed_at",
         "decided_at", "note"),
        rows(),
        currency="USD",
    )


def load(args) -> dict:
    """Everything, then VACUUM ANALYZE; a few rows' keys for the searches."""
    timings = {}
    started = time.perf_counter()
    # 25 account managers share the accounts (every tenth has none), as the ageing report by
    # account manager meets them.
    managers = [get_user_model().objects.create_user(username=f"bench-am-{n:02d}", is_staff=True).pk for n in range(25)]
    account_ids = load_accounts(args.accounts, now=NOW - timedelta(days=400), account_managers=managers)
    timings["load_accounts_s"] = time.perf_counter() - started
    started = time.perf_counter()
    methods = load_methods(account_ids, per_account=args.methods_per_account, now=NOW - timedelta(days=200))
    timings["load_methods_s"] = time.perf_counter() - started
    started = time.perf_counter()
    load_bills(account_ids, args.bills)
    timings["load_bills_s"] = time.perf_counter() - started
    started = time.perf_counter()
    transaction_ids = load_bank_transactions(args.transactions, account_ids)
    load_claims(args.claims, account_ids, transaction_ids)
    timings["load_bank_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    timings["vacuum_analyze_s"] = time.perf_counter() - started
    middle = len(account_ids) // 2
    paypal = next(n for n, (_, _, kind) in enumerate(methods) if kind == "paypal")
    return {
        "timings": timings,
        "account_id": account_ids[middle],
        "account_uid": f"8{middle:015d}",
        "account_email": f"billing{middle}@example.com",
        "paypal_email": f"payer{paypal}@example.com",
        "paypal_payer": f"BENCHPAYER{paypal}",
        "bill_id": max_id(Bill) // 2,
        "bill_reference": f"bill-{args.bills // 2:09d}",
        "transaction_id": transaction_ids[len(transaction_ids) // 2],
        "bank_reference": f"BANKREF-{len(transaction_ids) // 2:010d}",
        "claim_reference": f"BANKREF-{(args.claims // 2) * max(len(transaction_ids) // max(args.claims, 1), 1):010d}",
    }


def urls(keys: dict) -> list[tuple[str, str, dict]]:
    """(label, path, query) of every page measured; the first is the baseline."""
    a, m, b = "/admin/payments/account/", "/admin/payments/paymentmethod/", "/admin/payments/bill/"
    t, c = "/admin/remittances/banktransaction/", "/admin/remittances/remittanceclaim/"
    return [
        ("baseline: groups", "/admin/auth/group/", {}),
        ("admin index (dashboard)", "/admin/", {}),
        ("accounts", a, {}),
        ("accounts p2", a, {"p": "2"}),
        ("accounts filter region+status", a, {"region__exact": "EU", "status__exact": "active"}),
        ("accounts search uid", a, {"q": keys["account_uid"]}),
        ("accounts search id", a, {"q": str(keys["account_id"])}),
        ("accounts search e-mail", a, {"q": keys["account_email"]}),
        ("accounts search name (trigram)", a, {"q": "cobalt"}),
        ("accounts search rare name", a, {"q": "Cobalt Harbor 7"}),
        ("account page (the whole story, issue 10)", f"{a}{keys['account_id']}/change/", {}),
        ("methods", m, {}),
        ("methods p2", m, {"p": "2"}),
        ("methods filter kind+status", m, {"kind__exact": "paypal", "status__exact": "active"}),
        ("methods filter account region", m, {"account__region__exact": "MY"}),
        ("methods search last4", m, {"q": "4242"}),
        ("methods search account uid", m, {"q": keys["account_uid"]}),
        ("methods search paypal e-mail", m, {"q": keys["paypal_email"]}),
        ("methods search payer id", m, {"q": keys["paypal_payer"]}),
        ("bills", b, {}),
        ("bills p2", b, {"p": "2"}),
        ("bills filter overdue", b, {"due": "overdue"}),
        ("bills filter status+region", b, {"status__exact": "open", "account__region__exact": "EU"}),
        ("bills filter total 10k+", b, {"total": "10k+"}),
        ("bills search id", b, {"q": str(keys["bill_id"])}),
        ("bills search account uid", b, {"q": keys["account_uid"]}),
        ("bills search reference", b, {"q": keys["bill_reference"]}),
        ("bill page (charges and payments)", f"{b}{keys['bill_id']}/change/", {}),
        ("transactions", t, {}),
        ("transactions p2", t, {"p": "2"}),
        ("transactions filter unmatched", t, {"status__exact": "unmatched"}),
        ("transactions filter older 30d", t, {"age": "30"}),
        ("transactions search reference", t, {"q": keys["bank_reference"]}),
        ("transactions search id", t, {"q": str(keys["transaction_id"])}),
        ("transactions search payer (trigram)", t, {"q": "cobalt"}),
        ("claims", c, {}),
        ("claims p2", c, {"p": "2"}),
        ("claims filter to review", c, {"queue": "to_review"}),
        ("claims filter approved", c, {"status__exact": "approved"}),
        ("claims search account uid", c, {"q": keys["account_uid"]}),
        ("claims search reference", c, {"q": keys["claim_reference"]}),
        # The lists behind the index's work-queue figures (issue 10), the biggest of each kind.
        ("queue: transfers unmatched over 7 days", t, {"queue": "unmatched_older"}),
        ("queue: bills over 90 days past due", b, {"queue": "past_due_over_90"}),
        ("queue: claims to approve", c, {"queue": "to_approve"}),
        ("receivables ageing report (CC-4)", "/admin/payments/reminder/ageing/", {}),
        ("receivables ageing by account manager", "/admin/payments/reminder/ageing/", {"group_by": "account_manager"}),
        ("receivables ageing by region", "/admin/payments/reminder/ageing/", {"group_by": "region"}),
    ]


def role_client(role: str) -> Client:
    """A client signed in as a staff member of ``role`` (the groups come from the migrations)."""
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username=f"bench-{role.split()[0].lower()}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def select_one_ms(times: int = 50) -> float:
    samples = []
    with connection.cursor() as cursor:
        for _ in range(times):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(client: Client, path: str, query: dict, repeat: int) -> dict:
    samples = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(path, query)
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, f"{path} {query}: HTTP {response.status_code}"
        samples.append(elapsed)
    slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
    return {
        "median_ms": statistics.median(samples),
        "kb": len(response.content) / 1000,
        "queries": len(queries.captured_queries),
        "slowest_query_ms": float(slowest["time"]) * 1000,
        "slowest_sql": slowest["sql"],
    }


def explain_analyze(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--methods-per-account", type=int, default=10)
    parser.add_argument("--bills", type=int, default=1_000_000)
    parser.add_argument("--transactions", type=int, default=1_000_000, help="bank transactions")
    parser.add_argument("--claims", type=int, default=200_000, help="remittance claims")
    parser.add_argument("--repeat", type=int, default=5, help="GETs per URL (the median is reported)")
    parser.add_argument("--explain-ms", type=float, default=None,
                        help="also EXPLAIN ANALYZE the slowest query of URLs whose slowest query took longer")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the loaded test database afterwards (to EXPLAIN queries by hand)")
    args = parser.parse_args()

    from django.test.utils import setup_test_environment

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    plans = []
    try:
        started = time.perf_counter()
        keys = load(args)
        load_s = time.perf_counter() - started
        user = get_user_model().objects.create_superuser(username="bench-root", email="root@example.com")
        client = Client()
        client.force_login(user)
        round_trip_ms = select_one_ms()
        measured = [(label, path, query, measure(client, path, query, args.repeat)) for label, path, query in urls(keys)]
        # Each role's index is its work queue (issue 10): measured as the role, not as the superuser.
        for role in ("Account managers", "Finance staff"):
            measured.append((f"admin index as {role.lower()} (work queue)", "/admin/", {},
                             measure(role_client(role), "/admin/", {}, args.repeat)))
        base_ms = measured[0][3]["median_ms"]
        rows = []
        for label, path, query, figures in measured:
            within = figures["median_ms"] < BUDGET_MS and figures["kb"] < BUDGET_KB
            rows.append({
                "url": label,
                "median_ms": round(figures["median_ms"], 1),
                "kb": round(figures["kb"], 1),
                "queries": figures["queries"],
                "slowest_query_ms": round(figures["slowest_query_ms"], 1),
                "ratio": round(figures["median_ms"] / base_ms, 2),
                "within_budget": within,
                "accounts": args.accounts,
                "methods": args.accounts * args.methods_per_account,
                "bills": args.bills,
            })
            slow = args.explain_ms is not None and figures["slowest_query_ms"] > args.explain_ms
            if not within or slow:
                plans.append((label, path, query, figures, explain_analyze(figures["slowest_sql"])))
    finally:
        connection.close()
        if args.keep:
            print(f"kept the test database {database}")
        else:
            connection.creation.destroy_test_db(database, verbosity=0)

    columns = ["url", "median_ms", "kb", "queries", "slowest_query_ms", "ratio", "within_budget"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print(f"data: {args.accounts} accounts, {args.accounts * args.methods_per_account} methods, {args.bills} bills, "
          f"{args.transactions} bank transactions, {args.claims} claims; loaded in {load_s:.0f} s "
          f"({', '.join(f'{k} {v:.0f}' for k, v in keys['timings'].items())})")
    print(f"SELECT 1 round trip: {round_trip_ms:.2f} ms; baseline (groups changelist): {base_ms:.1f} ms")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
    print(f"budget: every changelist, filter and search under {BUDGET_MS} ms and {BUDGET_KB} KB of HTML "
          f"(median of {args.repeat} GETs; ratio = median / the baseline's, same run)")
    for label, path, query, figures, plan in plans:
        over = figures["median_ms"] >= BUDGET_MS or figures["kb"] >= BUDGET_KB
        print(f"\n== {'over budget' if over else 'slow query'}: {label} ({path}?{urlencode(query)}): "
              f"{figures['median_ms']:.0f} ms, {figures['kb']:.0f} KB; slowest query "
              f"{figures['slowest_query_ms']:.0f} ms:\n{figures['slowest_sql']}\n{plan}")
    if args.json:
        for row in rows:
            row["baseline_ms"] = round(base_ms, 1)
            row["select_1_ms"] = round(round_trip_ms, 2)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
