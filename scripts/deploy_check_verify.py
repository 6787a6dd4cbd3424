"""End of `make deploy-check`: release the holds, check the invariants and the load's figures.

Run with the deployment's settings against the database directly (not through PgBouncer).
Prints a table and writes benchmarks/results/deploy.json; exits 1 on any failed check.

    deploy_check_verify.py LOAD_JSON FAULTS_JSON TASKS_BEFORE_JSON OUT_JSON
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.production")

import django  # noqa: E402

django.setup()

from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402

from payments.models import UsageRecord, VerificationHold  # noqa: E402
from tests.payments.invariants import assert_all_invariants  # noqa: E402

CONSOLE_P95_BUDGET_MS = 250
FAULT_GRACE_SECONDS = 20  # 5xx tolerated from a fault's start until then...
REQUEST_TIMEOUT_SECONDS = 10  # ...and for requests started up to this long before it (still in flight)


def release_every_hold() -> dict:
    from payments.tasks.holds import release_due_holds

    for _ in range(20):
        if not VerificationHold.objects.filter(status=VerificationHold.Status.PLACED).exists():
            break
        release_due_holds()
    counts = dict(VerificationHold.objects.values_list("status").annotate(n=Count("id")).order_by())
    return counts


def main() -> int:
    load = json.loads(Path(sys.argv[1]).read_text())
    faults = json.loads(Path(sys.argv[2]).read_text())
    tasks = json.loads(Path(sys.argv[3]).read_text())
    out = Path(sys.argv[4])
    failures: list[str] = []

    windows = [(fault["at"] - load["started_at"] - REQUEST_TIMEOUT_SECONDS,
                fault["at"] - load["started_at"] + FAULT_GRACE_SECONDS) for fault in faults]
    errors_outside = [r for r in load["requests"] if not any(start <= r[2] <= end for start, end in windows)]
    if errors_outside:
        failures.append(f"{len(errors_outside)} answers 5xx/connection errors outside the fault windows: "
                        f"{errors_outside[:5]}")

    holds = release_every_hold()
    if holds.get(VerificationHold.Status.PLACED, 0):
        failures.append(f"holds still placed after the release job: {holds}")
    try:
        assert_all_invariants()
    except AssertionError as error:
        failures.append(f"invariant violated: {error}")

    accepted = load["accepted_usage_references"]
    stored = dict(UsageRecord.objects.filter(reference__in=accepted).values_list("reference").annotate(n=Count("id")))
    wrong = {ref: stored.get(ref, 0) for ref in accepted if stored.get(ref, 0) != 1}
    if wrong:
        failures.append(f"accepted usage not stored exactly once: {list(wrong.items())[:5]}")

    console_p95 = load["console_latencies_ms"]["p95"]
    if console_p95 > CONSOLE_P95_BUDGET_MS and os.environ.get("DEPLOY_CHECK_BUDGET", "strict") == "strict":
        failures.append(f"console p95 {console_p95} ms over the {CONSOLE_P95_BUDGET_MS} ms budget")

    result = {
        "measured_at": timezone.now().isoformat(),
        "clients": load["clients"], "think_seconds": load.get("think_seconds"), "seconds": load["seconds"],
        "console_p95_budget_ms": CONSOLE_P95_BUDGET_MS,
        "console_p95_within_budget": console_p95 <= CONSOLE_P95_BUDGET_MS,
        "load_average": os.getloadavg(), "total_requests": load["total_requests"],
        "request_rate_per_s": round(load["total_requests"] / load["seconds"], 1),
        "console_latency_ms": load["console_latencies_ms"],
        "baseline_healthz": load["baseline"],
        "endpoints": load["endpoints"],
        "tasks": tasks,
        "task_throughput_per_s": round(sum(tasks.get("after", {}).values()) / load["seconds"], 2),
        "errors": {"5xx_or_connection_in_fault_windows": len(load["requests"]) - len(errors_outside),
                   "5xx_or_connection_outside": len(errors_outside)},
        "faults": faults, "holds": holds, "accepted_usage_references": len(accepted),
        "failures": failures, "passed": not failures,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")

    print(f"{'endpoint':45} {'req':>6} {'rate/s':>7} {'p50':>7} {'p95':>7} {'p99':>7}  status")
    for name, row in {**load["baseline"], **load["endpoints"]}.items():
        print(f"{name:45} {row['requests']:>6} {row['rate_per_s']:>7} {row['p50_ms']:>7} {row['p95_ms']:>7} "
              f"{row['p99_ms']:>7}  {row['status']}")
    print(f"console p50/p95: {console_p95 and load['console_latencies_ms']['p50']} / {console_p95} ms "
          f"(budget p95 < {CONSOLE_P95_BUDGET_MS} ms); tasks run: {tasks.get('after')}; holds: {holds}")
    for failure in failures:
        print("FAILED:", failure)
    print("deploy-check:", "passed" if not failures else "FAILED", f"-> {out}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
