"""End of `make deploy-check`: let the workers release the holds and finish the uploads, check the
invariants, that every accepted message took effect once, and the load's figures.

Run with the deployment's settings against the database directly (not through PgBouncer).
Prints a table and writes benchmarks/results/deploy.json; exits 1 on any failed check.

    deploy_check_verify.py LOAD_JSON FAULTS_JSON TASKS_BEFORE_JSON OUT_JSON METRICS_URL
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.production")

import django  # noqa: E402

django.setup()

from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402

from payments.models import Bill, Charge, UsageRecord, VerificationHold  # noqa: E402
from tests.payments.invariants import assert_all_invariants  # noqa: E402

CONSOLE_P95_BUDGET_MS = 250
FAULT_GRACE_SECONDS = 20  # 5xx tolerated from a fault's start until then...
REQUEST_TIMEOUT_SECONDS = 10  # ...and for requests started up to this long before it (still in flight)


def wait_for_idle_workers(timeout: float = 120) -> bool:
    """Until no message waits in a queue or is being worked on (kombu's ``unacked``), twice in a row."""
    from billing_backoffice.metrics import broker_figures, broker_unacked

    quiet, deadline = 0, time.time() + timeout
    while time.time() < deadline:
        busy = sum(broker_figures().values()) + broker_unacked()
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 2:
            return True
        time.sleep(1)
    return False


def release_every_hold_through_the_workers() -> dict:
    """HOLD-2 by the deployment itself: the release job sent to the money worker until no hold is left."""
    from celery import current_app

    for _ in range(20):
        if not VerificationHold.objects.filter(status=VerificationHold.Status.PLACED).exists():
            break
        current_app.send_task("payments.release_due_holds")  # routed to `money` by CELERY_TASK_ROUTES
        wait_for_idle_workers()
    return dict(VerificationHold.objects.values_list("status").annotate(n=Count("id")).order_by())


def finish_upload_jobs() -> dict:
    """Every statement upload's job, finished. A job whose message was lost in a fault window (the
    broker down as the page committed) is sent again by the lost-job sweep 10 minutes later: the
    check runs that sweep as it will run then, instead of waiting 10 minutes."""
    from billing_backoffice.models import StaffJob
    from billing_backoffice.staff_jobs import RESEND_QUEUED_AFTER, jobs_resend_lost
    from remittances.services.statement_uploads import JOB_KIND

    jobs = StaffJob.objects.filter(kind=JOB_KIND)
    wait_for_idle_workers()
    unfinished = jobs.filter(state__in=(StaffJob.State.QUEUED, StaffJob.State.RUNNING))
    resent = 0
    if unfinished.exists():
        resent = jobs_resend_lost(now=timezone.now() + RESEND_QUEUED_AFTER + timedelta(seconds=1))
        wait_for_idle_workers()
    states = dict(jobs.values_list("state").annotate(n=Count("id")).order_by())
    return {"states": states, "resent_by_the_sweep": resent}


def staff_flow_checks(load: dict, failures: list[str]) -> dict:
    """Each claim the console filed is stored once; each transfer of an accepted upload recorded
    once; each claim the load reviewed or approved is in that state (or further)."""
    from remittances.models import BankTransaction, RemittanceClaim

    filed = load.get("claims_filed", [])
    claims = dict(RemittanceClaim.objects.filter(bank_reference__startswith="LOADREF")
                  .values_list("bank_reference").annotate(n=Count("id")).order_by())
    wrong = [ref for _, ref in filed if claims.get(ref) != 1]
    if wrong:
        failures.append(f"filed claims not stored exactly once: {wrong[:5]}")
    uploaded = [ref for upload in load.get("statement_uploads", []) for ref in upload["credits"]]
    transfers = dict(BankTransaction.objects.filter(bank_reference__in=uploaded)
                     .values_list("bank_reference").annotate(n=Count("id")).order_by())
    missing = [ref for ref in uploaded if transfers.get(ref) != 1]
    if missing:
        failures.append(f"uploaded transfers not recorded exactly once: {missing[:5]}")
    status = dict(RemittanceClaim.objects.filter(pk__in=load.get("claims_reviewed", []) + load.get("claims_approved", []))
                  .values_list("pk", "status"))
    Status = RemittanceClaim.Status
    not_reviewed = [pk for pk in load.get("claims_reviewed", []) if status.get(pk) not in (Status.REVIEWED, Status.APPROVED)]
    not_approved = [pk for pk in load.get("claims_approved", []) if status.get(pk) != Status.APPROVED]
    if not_reviewed or not_approved:
        failures.append(f"claims not in the state the staff put them in: reviewed {not_reviewed[:5]}, "
                        f"approved {not_approved[:5]}")
    return {
        "claims_filed": len(filed), "statements_uploaded": len(load.get("statement_uploads", [])),
        "transfers_uploaded": len(uploaded),
        "claims_matched": RemittanceClaim.objects.filter(bank_reference__startswith="LOADREF",
                                                         bank_transaction__isnull=False).count(),
        "claims_reviewed": len(load.get("claims_reviewed", [])), "claims_approved": len(load.get("claims_approved", [])),
    }


def task_counts(metrics_url: str) -> dict[str, float]:
    """``task:state`` -> runs, from the web's /metrics (every worker's counters, multiprocess mode)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(metrics_url, headers={"X-Forwarded-Proto": "https"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "billing_celery_tasks_total":
                key = sample.labels["task"] + ":" + sample.labels["state"]
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def main() -> int:
    load = json.loads(Path(sys.argv[1]).read_text())
    faults = json.loads(Path(sys.argv[2]).read_text())
    tasks_before = json.loads(Path(sys.argv[3]).read_text())
    out = Path(sys.argv[4])
    metrics_url = sys.argv[5]
    failures: list[str] = []

    windows = [(fault["at"] - load["started_at"] - REQUEST_TIMEOUT_SECONDS,
                fault["at"] - load["started_at"] + FAULT_GRACE_SECONDS) for fault in faults]
    errors_outside = [r for r in load["requests"] if not any(start <= r[2] <= end for start, end in windows)]
    if errors_outside:
        failures.append(f"{len(errors_outside)} answers 5xx/connection errors outside the fault windows: "
                        f"{errors_outside[:5]}")

    holds = release_every_hold_through_the_workers()
    if holds.get(VerificationHold.Status.PLACED, 0):
        failures.append(f"holds still placed after the release job: {holds}")
    uploads = finish_upload_jobs()
    if set(uploads["states"]) - {"done"}:
        failures.append(f"statement upload jobs not done: {uploads}")
    if not wait_for_idle_workers():
        failures.append("the workers never went idle (messages still queued or unacknowledged)")
    drained_at = time.time()
    after = task_counts(metrics_url)
    ran = {key: after[key] - tasks_before.get(key, 0) for key in sorted(after) if after[key] > tasks_before.get(key, 0)}
    try:
        assert_all_invariants()
    except AssertionError as error:
        failures.append(f"invariant violated: {error}")

    staff_flow = staff_flow_checks(load, failures)
    accepted = load["accepted_usage_references"]
    stored = dict(UsageRecord.objects.filter(reference__in=accepted).values_list("reference").annotate(n=Count("id")))
    wrong = {ref: stored.get(ref, 0) for ref in accepted if stored.get(ref, 0) != 1}
    if wrong:
        failures.append(f"accepted usage not stored exactly once: {list(wrong.items())[:5]}")

    orders = load.get("accepted_order_references", [])
    bills = dict(Bill.objects.filter(reference__in=[f"order:{ref}" for ref in orders])
                 .values_list("reference").annotate(n=Count("id")).order_by())
    charged = dict(Charge.objects.filter(bill__reference__in=[f"order:{ref}" for ref in orders],
                                         status=Charge.Status.SUCCEEDED)
                   .values_list("bill__reference").annotate(n=Count("id")).order_by())
    wrong = [ref for ref in orders if bills.get(f"order:{ref}") != 1 or charged.get(f"order:{ref}", 0) > 1]
    if wrong:
        failures.append(f"accepted orders not billed once and charged at most once: {wrong[:5]}")

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
        # Task runs from the start of the load until the workers were idle after it (the hold
        # releases and upload imports of the check included), by task and outcome.
        "tasks": ran, "task_runs": sum(ran.values()),
        "task_seconds": round(drained_at - load["started_at"], 1),
        "task_throughput_per_s": round(sum(ran.values()) / (drained_at - load["started_at"]), 2),
        "staff_flow": staff_flow, "upload_jobs": uploads,
        "errors": {"5xx_or_connection_in_fault_windows": len(load["requests"]) - len(errors_outside),
                   "5xx_or_connection_outside": len(errors_outside)},
        "faults": faults, "holds": holds, "accepted_usage_references": len(accepted),
        "accepted_order_references": len(orders),
        "failures": failures, "passed": not failures,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")

    print(f"{'endpoint':45} {'req':>6} {'rate/s':>7} {'p50':>7} {'p95':>7} {'p99':>7}  status")
    for name, row in {**load["baseline"], **load["endpoints"]}.items():
        print(f"{name:45} {row['requests']:>6} {row['rate_per_s']:>7} {row['p50_ms']:>7} {row['p95_ms']:>7} "
              f"{row['p99_ms']:>7}  {row['status']}")
    print(f"console p50/p95: {console_p95 and load['console_latencies_ms']['p50']} / {console_p95} ms "
          f"(budget p95 < {CONSOLE_P95_BUDGET_MS} ms); holds: {holds}")
    print(f"tasks run ({sum(ran.values()):.0f}, {result['task_throughput_per_s']}/s): {ran}")
    print(f"staff flow: {staff_flow}; upload jobs: {uploads}")
    for failure in failures:
        print("FAILED:", failure)
    print("deploy-check:", "passed" if not failures else "FAILED", f"-> {out}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
