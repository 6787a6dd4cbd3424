"""`make bench`: the small tier of every benchmark, figures in ``benchmarks/results/latest.json``.

    [DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench] .venv/bin/python benchmarks/run_all.py [--only NAME]

Each benchmark runs in its own subprocess (a fresh Django, its own throw-away ``test_<name>``
database, no memory left over from the previous one) with this process's environment, so they
all use the same ``DATABASE_URL`` or, when it is unset, the same embedded PostgreSQL. Each writes
its figures with ``--json``; this script gathers them, with the sizes and the wall time, into one
file and prints a summary table. The full-size runs (QUALITY.md budgets at 100k entries, 1M
accounts, a 100k hold backlog, 200k accounts / 2M methods / 1M bills in the admin) are the
benchmarks' own defaults: run them one by one.

Exits non-zero when a benchmark fails (its output is shown); a figure outside its budget is
reported in the table (``within_budget``), not as a failure: timings on shared machines drift.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# The small tier: big enough for stable rates, small enough for a couple of minutes on 2 cores.
SMALL_TIER = {
    "statement_import": ["bench_statement_import.py", "--entries", "20000", "--dedicated-entries", "5000"],
    "settlement": ["bench_settlement.py", "--accounts", "10000", "--bills-per-account", "3", "--chunk", "500"],
    "hold_release": ["bench_hold_release.py", "--holds", "10000", "--workers", "1,2"],
    "admin": [
        "bench_admin.py", "--accounts", "20000", "--methods-per-account", "10", "--bills", "100000",
        "--transactions", "100000", "--claims", "20000",
    ],
    "reconciliation": ["bench_reconciliation.py", "--accounts", "200", "--lines-per-account", "500"],
    "exports": ["bench_exports.py", "--accounts", "2000", "--bills", "20000"],
}

# The figures shown in the summary table, per benchmark (the JSON file keeps all of them).
SUMMARY = {
    "statement_import": ["scenario", "entries", "first_s", "reimport_ratio", "resent_ratio", "peak_rss_mb", "rate_per_s", "within_budget"],
    "settlement": ["accounts", "bills_settled", "settle_s", "ratio", "est_1M_accounts_s", "within_budget"],
    "hold_release": ["workers", "holds", "drain_s", "holds_per_s", "ratio", "est_100k_s", "within_budget"],
    "admin": ["url", "median_ms", "kb", "queries", "ratio", "within_budget"],
    "exports": ["format", "rows", "seconds", "rows_per_s", "peak_mb", "memory_ratio", "ratio", "within_budget"],
    "reconciliation": ["accounts", "bank_transactions", "run_s", "rows_per_s", "within_budget"],
}


def run_one(name: str, argv: list[str]) -> dict:
    """Run one benchmark script; its JSON figures, the command and the wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        command = [sys.executable, str(HERE / argv[0]), *argv[1:], "--json", str(out)]
        print(f"== {name}: {' '.join(argv)}", flush=True)
        started = time.perf_counter()
        # Output passes straight through: each benchmark prints its own table.
        completed = subprocess.run(command, cwd=HERE.parent)
        wall = time.perf_counter() - started
        if completed.returncode != 0 or not out.exists():
            return {"name": name, "args": argv[1:], "ok": False, "returncode": completed.returncode,
                    "wall_s": round(wall, 1)}
        figures = json.loads(out.read_text())
    rows = figures if isinstance(figures, list) else [figures]
    return {"name": name, "args": argv[1:], "ok": True, "wall_s": round(wall, 1), "rows": rows}


def print_summary(results: list[dict]) -> None:
    print()
    print("== summary (all figures in benchmarks/results/latest.json)")
    for result in results:
        if not result["ok"]:
            print(f"{result['name']}: FAILED (exit {result['returncode']})")
            continue
        columns = SUMMARY.get(result["name"]) or list(result["rows"][0])
        table = [[str(row.get(c, "")) for c in columns] for row in result["rows"]]
        widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
        print(f"{result['name']} ({result['wall_s']} s)")
        print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        for r in table:
            print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SMALL_TIER), action="append", help="run only this benchmark (repeatable)")
    args = parser.parse_args()
    names = args.only or list(SMALL_TIER)

    results = [run_one(name, SMALL_TIER[name]) for name in names]
    RESULTS.mkdir(exist_ok=True)
    report = {
        "tier": "small",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "benchmarks": results,
    }
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print_summary(results)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
