"""Hold release benchmark (QUALITY.md: claim batches with ``FOR UPDATE SKIP LOCKED``, never hold a
row lock during a gateway call; a 100k backlog drained in under 60 s against the simulated
gateway). Not part of the test command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/bench_hold_release.py \
        [--holds 100000] [--workers 1,2] [--batch-size 200] [--json results.json]

It creates a throw-away database ``test_<name>`` (Django's test database machinery, so it never
touches the real one). For each worker count in ``--workers`` it COPYs a backlog of ``--holds``
due verification holds (one per payment method, two methods per account, one in ten PayPal,
placed over the last 23 hours so none is past its deadline), VACUUM ANALYZEs, then:

- baseline: one set-based ``UPDATE`` of the same rows to ``released`` (rolled back, then vacuumed
  away), the fastest write of those rows the database can do;
- drain: ``holds_release_due`` (the release job's service: leased batches, a simulated gateway
  void per hold, one conditional UPDATE per batch) in that many threads at once, each with its own
  connection, as overlapping job runs would; repeated until nothing is due.
Then every hold of the backlog must be released, every one voided exactly once at the simulated
processor (``PROCESSOR.void_calls``) and sent to the gateway once, and no void may have run
inside a transaction (no row lock held during a gateway call). A later scenario's backlog sits
beside the released holds of the earlier ones, as on a live table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from bench_data import copy_rows, ids_of, load_accounts, load_methods, max_id  # noqa: E402
from payments.gateways.simulated import PROCESSOR, SimulatedCardGateway, SimulatedPayPalGateway  # noqa: E402
from payments.models import VerificationHold  # noqa: E402
from payments.services.holds import DUE_STATUSES, holds_release_due  # noqa: E402

NOW = datetime.now(timezone.utc).replace(microsecond=0)
BUDGET_100K_S = 60
BACKLOG_SPAN = timedelta(hours=22)  # placed from 23 h to 1 h ago: all due, none overdue
TABLE = VerificationHold._meta.db_table


class VoidWatch:
    """What the gateway saw: void requests per authorization and voids sent inside a transaction."""

    lock = threading.Lock()
    requested: Counter[str] = Counter()
    in_transaction = 0

    @classmethod
    def seen(cls, authorization_id: str) -> None:
        # A thread's own connection: an atomic block open here would hold the claim's row locks.
        inside = connection.in_atomic_block or not connection.get_autocommit()
        with cls.lock:
            cls.requested[authorization_id] += 1
            cls.in_transaction += inside


class WatchedCardGateway(SimulatedCardGateway):
    def void(self, *, authorization_id: str, idempotency_key: str):
        VoidWatch.seen(authorization_id)
        return super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)


class WatchedPayPalGateway(SimulatedPayPalGateway):
    def void(self, *, authorization_id: str, idempotency_key: str):
        VoidWatch.seen(authorization_id)
        return super().void(authorization_id=authorization_id, idempotency_key=idempotency_key)


def load_backlog(holds: int, *, start: int) -> list[str]:
    """COPY ``holds`` due holds with their accounts and methods; their authorization ids."""
    account_ids = load_accounts((holds + 1) // 2, now=NOW - timedelta(days=30), start=start)
    methods = load_methods(account_ids, per_account=2, now=NOW - timedelta(days=1), start=start)[:holds]
    step = BACKLOG_SPAN / holds
    first_placed = NOW - timedelta(hours=23)
    authorizations = []

    def rows():
        for n, (method_id, account_id, kind) in enumerate(methods):
            prefix = "ppauth" if kind == "paypal" else "auth"
            authorization = f"{prefix}_approve_{start + n:024x}"
            authorizations.append(authorization)
            placed = first_placed + step * n
            yield (method_id, account_id, authorization, placed, placed + settings.HOLD_RELEASE_AFTER,
                   placed + settings.HOLD_RELEASE_DEADLINE)

    before = max_id(VerificationHold)
    copy_rows(
        VerificationHold,
        ("payment_method_id", "account_id", "authorization_id", "placed_at", "release_after", "release_deadline"),
        rows(),
        amount=Decimal("1.00"),
        currency="USD",
        status="placed",
    )
    assert len(ids_of(VerificationHold, after=before)) == holds
    return authorizations


def vacuum_analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def baseline() -> tuple[float, int]:
    """Seconds for one set-based UPDATE of every due hold to ``released`` (rolled back)."""
    with transaction.atomic():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET status = 'released', released_at = %s, last_error = '', lease_token = NULL, "
                "lease_expires_at = NULL WHERE status = ANY(%s) AND release_after <= %s",
                [NOW, list(DUE_STATUSES), NOW],
            )
            updated = cursor.rowcount
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed, updated


def drain(workers: int, *, batch_size: int) -> tuple[float, list[int]]:
    """Every worker runs the release job's service at once until nothing is due; seconds and
    how many holds each run released."""
    barrier = threading.Barrier(workers)
    released = [0] * workers
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            # One job run caps its batches by the backlog it saw at its start; runs repeat (the
            # beat fires every few minutes) until nothing is due.
            while True:
                count = holds_release_due(now=NOW, batch_size=batch_size)
                released[index] += count
                if count == 0:
                    break
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, released


def check_exactly_once(authorizations: list[str], released: list[int]) -> None:
    holds = len(authorizations)
    assert sum(released) == holds, f"the runs released {sum(released)} holds, not {holds}"
    rows = VerificationHold.objects.filter(authorization_id__in=authorizations)
    assert rows.filter(status=VerificationHold.Status.RELEASED, released_at__isnull=False,
                       lease_token__isnull=True).count() == holds, "every hold must end released"
    assert all(PROCESSOR.void_calls[a] == 1 for a in authorizations), "the processor must void each hold once"
    assert all(VoidWatch.requested[a] == 1 for a in authorizations), "no hold may be sent to the gateway twice"
    assert VoidWatch.in_transaction == 0, "a void ran inside a transaction (a row lock held during the call)"


def scenario(workers: int, *, holds: int, batch_size: int, start: int) -> dict:
    started = time.perf_counter()
    authorizations = load_backlog(holds, start=start)
    vacuum_analyze()
    load_s = time.perf_counter() - started
    base_s, updated = baseline()
    assert updated == holds, f"the baseline updated {updated} rows, not {holds}"
    vacuum_analyze()  # the rolled-back versions would otherwise slow the drain's index scans
    drain_s, released = drain(workers, batch_size=batch_size)
    check_exactly_once(authorizations, released)
    rate = holds / drain_s
    base_rate = holds / base_s
    return {
        "workers": workers,
        "holds": holds,
        "batch_size": batch_size,
        "load_s": round(load_s, 1),
        "drain_s": round(drain_s, 2),
        "holds_per_s": round(rate),
        "released_per_run": "/".join(str(r) for r in released),
        "baseline_s": round(base_s, 2),
        "baseline_rows_per_s": round(base_rate),
        "ratio": round(rate / base_rate, 3),
        "est_100k_s": round(100_000 / rate, 1),
        "voided_once": True,
        "within_budget": 100_000 / rate < BUDGET_100K_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=100_000, help="due holds in each scenario's backlog")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, one scenario each")
    parser.add_argument("--batch-size", type=int, default=settings.HOLD_RELEASE_BATCH_SIZE)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    logging.getLogger("payments.services.holds").setLevel(logging.ERROR)

    from django.test.utils import setup_test_environment

    setup_test_environment()
    settings.CARD_GATEWAY = f"{__name__}.WatchedCardGateway"
    settings.PAYPAL_GATEWAY = f"{__name__}.WatchedPayPalGateway"
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        rows = [
            scenario(workers, holds=args.holds, batch_size=args.batch_size, start=i * args.holds)
            for i, workers in enumerate(worker_counts)
        ]
    finally:
        connection.close()
        connection.creation.destroy_test_db(database, verbosity=0)

    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
    print(
        f"budget: a 100k backlog drained in under {BUDGET_100K_S} s (est_100k_s, from this run's rate); "
        "ratio = drain holds/s over a set-based UPDATE of the same rows (rows/s), same run"
    )
    print("checked: every hold released, voided once at the processor, never voided inside a transaction")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
