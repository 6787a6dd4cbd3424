"""Credit-control benchmark (QUALITY.md: the reminder job over 200k accounts / 1M bills within
60 s, set-based). Not part of the test command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/bench_credit_control.py \
        [--accounts 200000] [--bills-per-account 5] [--chunk 500] [--json results.json]

A throw-away database ``test_<name>`` (Django's test database machinery) is loaded with COPY: N
accounts, each with ``--bills-per-account`` unpaid bills due 0, 3, 9, 16 and 30 days ago (cycling);
the bills 9 days late already had their first reminder and those 16 and 30 days late their first
two (sent on earlier days), so one run sends level 1, 2 and 3 reminders and puts accounts on
hold; 1 account in 20 is paused. Then exactly what the job and its chunk tasks do:

- run: the job's own steps (expired pauses end, settled holds lift, ``reminder_due_chunks``) and
  ``reminders_send_chunk`` for every chunk (one statement each: reminders, holds and their
  notifications, two channels each), on one connection, or drained by ``--workers`` processes
  as the ``bulk`` queue's workers do (Procfile: ``BULK_CONCURRENCY``, 2 by default);
- re-run: the same chunks again in the same window, which must send nothing;
- baseline: one ``INSERT ... SELECT`` of as many rows into a temp table (rolled back), the fastest
  set-based write of that many rows;
- delivery: ``--deliveries`` of the e-mails the run wrote sent one by one as the delivery task
  does (claim, send through Django's e-mail framework, record), against a same-run baseline:
  the same e-mails rendered and sent with no outbox bookkeeping (locmem backend for both).
The figures are the run's time, its write rate against the baseline's, and the delivery rate
against its baseline (same run, same machine). The machine's load is printed with them.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.test")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from django.core import mail  # noqa: E402

from payments.models import Account, Bill, Notification, Reminder, ReminderPause  # noqa: E402
from payments.services import credit_control as cc  # noqa: E402
from payments.services import notifications as outbox  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
BUDGET_S = 60
DAYS_LATE = (0, 3, 9, 16, 30)


def load(*, accounts: int, bills_per_account: int) -> None:
    staff = get_user_model().objects.create(username="bench-manager", is_staff=True)
    with connection.cursor() as cursor:
        with cursor.copy(
            f"COPY {Account._meta.db_table} (uid, name, email, kind, country, region, status, kyc_status, "
            "credit_approved, credit_limit, credit_currency, auto_settlement_enabled, has_running_resources, "
            "paypal_charge_threshold, has_outstanding_bills, created_at) FROM STDIN"
        ) as copy:
            for n in range(accounts):
                copy.write_row((
                    f"9{n:015d}", f"Bench {n}", f"bench{n}@example.com", "individual", "US", "US", "active",
                    "not_required", False, Decimal("0.00"), "USD", True, False, Decimal("100.00"), True, NOW,
                ))
        cursor.execute(f"SELECT id FROM {Account._meta.db_table} ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
        with cursor.copy(
            f"COPY {Bill._meta.db_table} (account_id, kind, order_kind, reference, issued_at, due_date, "
            "amount_before_tax, tax, total, currency, amount_paid, status) FROM STDIN"
        ) as copy:
            for account_id in ids:
                for b in range(bills_per_account):
                    due = NOW.date() - timedelta(days=DAYS_LATE[(account_id + b) % len(DAYS_LATE)])
                    total = Decimal(40 + 10 * b)
                    copy.write_row((
                        account_id, "monthly", "", f"bench-{account_id}-{b}", NOW - timedelta(days=60), due,
                        total, Decimal("0.00"), total, "USD", Decimal("0.00"), "open",
                    ))
        with cursor.copy(
            f"COPY {ReminderPause._meta.db_table} (account_id, reason, started_at, ends_at, created_by_id) FROM STDIN"
        ) as copy:
            for account_id in ids[::20]:
                copy.write_row((account_id, "bench pause", NOW - timedelta(days=1), NOW + timedelta(days=5), staff.pk))
        cursor.execute(
            f"""
            INSERT INTO {Reminder._meta.db_table} (bill_id, account_id, level, days_past_due, sent_at)
            SELECT b.id, b.account_id, l.level, l.days, (b.due_date + l.days)::timestamp AT TIME ZONE 'UTC'
            FROM {Bill._meta.db_table} b
            CROSS JOIN (VALUES (1, 1, 9), (2, 7, 16)) AS l(level, days, min_late)
            WHERE (%(today)s::date - b.due_date) >= l.min_late
            """,
            {"today": NOW.date(), "now": NOW},
        )
        cursor.execute("ANALYZE")


def job_steps() -> list[list[int]]:
    """What ``payments.run_reminders`` does before it fans out: pauses end, settled holds lift."""
    cc.reminder_pauses_end_expired(now=NOW)
    cc.credit_holds_lift_settled(now=NOW)
    return cc.reminder_due_chunks(now=NOW, size=CHUNK)


def _chunk_task(chunk: list[int]) -> tuple[int, int]:
    """One ``payments.send_reminders_chunk`` (in a worker process: its own connection)."""
    result = cc.reminders_send_chunk(account_ids=chunk, now=NOW)
    return result.reminders, result.holds


def reminder_run(chunks: list[list[int]] | None = None, *, workers: int = 1) -> tuple[float, int, int, list[list[int]]]:
    started = time.perf_counter()
    chunks = chunks if chunks is not None else job_steps()
    if workers > 1:
        connection.close()  # each forked worker opens its own connection
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_chunk_task, chunks, chunksize=1)
    else:
        results = [_chunk_task(chunk) for chunk in chunks]
    reminders, holds = sum(r for r, _ in results), sum(h for _, h in results)
    return time.perf_counter() - started, reminders, holds, chunks


def delivery(count: int) -> dict:
    """NOTIFY-2: e-mails delivered one by one through the outbox, against sending the same
    e-mails with no outbox bookkeeping (the same rendering and backend), both on locmem."""
    ids = list(
        Notification.objects.filter(channel=Notification.Channel.EMAIL, status=Notification.Status.PENDING)
        .order_by("pk").values_list("pk", flat=True)[: 2 * count]
    )
    outbox_ids, baseline_ids = ids[:count], ids[count:]
    mail.outbox = []
    started = time.perf_counter()
    for pk in outbox_ids:
        assert outbox.notification_deliver(notification_id=pk, now=NOW) == Notification.Status.DELIVERED
    outbox_s = time.perf_counter() - started
    rows = list(Notification.objects.filter(pk__in=baseline_ids))
    mail.outbox = []
    started = time.perf_counter()
    for notification in rows:
        outbox._send_email(notification)
    baseline_s = time.perf_counter() - started
    mail.outbox = []
    return {
        "deliveries": len(outbox_ids),
        "delivery_per_s": round(len(outbox_ids) / outbox_s),
        "delivery_baseline_per_s": round(len(rows) / baseline_s),
        "delivery_ratio": round((len(outbox_ids) / outbox_s) / (len(rows) / baseline_s), 3),
    }


def baseline(rows: int) -> float:
    with transaction.atomic():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE bench_baseline (id bigint, bill_id bigint, level int, at timestamptz) ON COMMIT DROP")
            cursor.execute(
                "INSERT INTO bench_baseline SELECT g, g, 1, now() FROM generate_series(1, %s) g", [rows]
            )
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


CHUNK = 500


def main() -> None:
    global CHUNK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--bills-per-account", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="processes draining the chunks (1: one connection)")
    parser.add_argument("--deliveries", type=int, default=2000, help="e-mails delivered for the delivery rate")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    CHUNK = args.chunk
    logging.getLogger("payments.services.credit_control").setLevel(logging.WARNING)

    from django.test.utils import setup_test_environment

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        load(accounts=args.accounts, bills_per_account=args.bills_per_account)
        load_s = time.perf_counter() - started
        load_avg = os.getloadavg()[0]
        run_s, reminders, holds, chunks = reminder_run(workers=args.workers)
        counts = (Reminder.objects.count(), Notification.objects.count())
        again_s, again_reminders, again_holds, _ = reminder_run(chunks)
        assert (again_reminders, again_holds) == (0, 0), "a second run in the window must send nothing"
        assert (Reminder.objects.count(), Notification.objects.count()) == counts
        base_s = baseline(reminders + counts[1])
        delivered = delivery(args.deliveries)
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)

    rows_written = reminders + holds + counts[1]
    row = {
        "accounts": args.accounts,
        "bills": args.accounts * args.bills_per_account,
        "load_s": round(load_s, 1),
        "chunks": len(chunks),
        "workers": args.workers,
        "load_avg_1m_before": round(load_avg, 2),
        "run_s": round(run_s, 2),
        "reminders": reminders,
        "holds": holds,
        "notifications": counts[1],
        "rows_per_s": round(rows_written / run_s),
        "rerun_s": round(again_s, 2),
        "baseline_s": round(base_s, 3),
        "baseline_rows_per_s": round((reminders + counts[1]) / base_s),
        "est_200k_accounts_s": round(run_s / args.accounts * 200_000, 1),
    }
    row["ratio"] = round(row["rows_per_s"] / row["baseline_rows_per_s"], 3)
    row.update(delivered)
    row["within_budget"] = row["est_200k_accounts_s"] < BUDGET_S
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key.ljust(width)}  {value}")
    print(f"budget: the reminder job over 200k accounts / 1M bills < {BUDGET_S} s ({args.workers} worker(s)); a re-run sends nothing")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
