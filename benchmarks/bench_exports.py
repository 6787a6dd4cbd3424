"""Streamed exports benchmark (issue 10: "200k rows export without a timeout or a memory spike").
Not part of the test command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/bench_exports.py \
        [--accounts 20000] [--bills 200000] [--json results.json]

A throw-away database ``test_<name>`` with ``--accounts`` accounts and ``--bills`` bills (loaded
with COPY, as ``bench_admin``). A superuser POSTs the bill list's export page (every column, as
the page does) for CSV and for XLSX, through ``django.test.Client`` and the whole middleware
stack, and reads the streamed body to its end. Per format: the seconds, the rows per second, the
file size and the peak Python memory while the file is made (``tracemalloc``), for the first
tenth of the rows (a filter on the bill id) and for all of them. Memory does not grow with the
rows when the file is streamed in chunks: ``memory_ratio`` (peak for all rows / peak for a tenth)
stays near 1, where building the file in memory would make it about 10. Baseline, same run: the
bill changelist's first page; ``ratio`` is the export's seconds over the baseline's.
Budget: every export within 60 s (far below any proxy timeout when streamed, since the first
bytes leave at once) and ``memory_ratio`` under 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_admin import NOW, load_bills  # noqa: E402  (sets Django up)
from bench_data import load_accounts  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from payments.admin.exports import BillResource  # noqa: E402
from payments.models import Bill  # noqa: E402

BUDGET_S = 60
BUDGET_MEMORY_RATIO = 2.0
FORMATS = {"csv": "0", "xlsx": "1"}


def _post(client: Client, fmt: str, query: str) -> int:
    fields = {f"billresource_{name}": "on" for name in BillResource().get_export_order()}
    response = client.post(reverse("admin:payments_bill_export") + query,
                           {"format": FORMATS[fmt], "resource": "0", **fields})
    assert response.status_code == 200, response.status_code
    return sum(len(part) for part in response.streaming_content)


def export(client: Client, fmt: str, query: str) -> dict:
    """Timed without tracing (tracemalloc slows Python down several times), then traced."""
    started = time.perf_counter()
    size = _post(client, fmt, query)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    _post(client, fmt, query)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "bytes": size, "peak_mb": peak / 2**20}


def baseline_s(client: Client) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        assert client.get(reverse("admin:payments_bill_changelist")).status_code == 200
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--bills", type=int, default=200_000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    from django.test.utils import setup_test_environment

    setup_test_environment()
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    rows = []
    try:
        load_bills(load_accounts(args.accounts, now=NOW), args.bills)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        user = get_user_model().objects.create_superuser(username="bench-root", email="root@example.com")
        client = Client()
        client.force_login(user)
        base = baseline_s(client)
        ids = list(Bill.objects.order_by("pk").values_list("pk", flat=True))
        tenth = f"?id__lte={ids[len(ids) // 10 - 1]}"
        for fmt in FORMATS:
            small, full = export(client, fmt, tenth), export(client, fmt, "")
            rows.append({
                "format": fmt, "rows": len(ids), "seconds": round(full["seconds"], 2),
                "rows_per_s": round(len(ids) / full["seconds"]), "mb": round(full["bytes"] / 2**20, 1),
                "peak_mb": round(full["peak_mb"], 1), "peak_mb_tenth": round(small["peak_mb"], 1),
                "memory_ratio": round(full["peak_mb"] / small["peak_mb"], 2),
                "ratio": round(full["seconds"] / base, 1),
                "within_budget": full["seconds"] < BUDGET_S and full["peak_mb"] / small["peak_mb"] < BUDGET_MEMORY_RATIO,
            })
    finally:
        connection.close()
        connection.creation.destroy_test_db(database, verbosity=0)

    columns = list(rows[0])
    print(f"data: {args.accounts} accounts, {args.bills} bills; baseline (bill changelist page): {base * 1000:.0f} ms")
    print("  ".join(columns))
    for row in rows:
        print("  ".join(str(row[c]) for c in columns))
    print(f"budget: each export under {BUDGET_S} s, peak memory for all rows under {BUDGET_MEMORY_RATIO}x a tenth's")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
