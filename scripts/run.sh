#!/usr/bin/env bash
# `make run`: migrate, install the job schedule, seed the demo, then serve the admin with one
# Celery worker and one Celery beat beside it.
#
# Ctrl-C (or SIGTERM / SIGHUP to make or to this script) stops every process this script
# started, children included: each service runs in its own process group, which is stopped as a
# whole (TERM, then KILL after a grace period). The embedded PostgreSQL, when DATABASE_URL is
# unset, is not ours to stop: it keeps running for the next command (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
GRACE_SECONDS=${GRACE_SECONDS:-20}  # the worker's warm shutdown finishes the task in hand

$PY manage.py migrate --noinput
$PY manage.py sync_beat_schedule
$PY manage.py seed_demo

pids=()
stopped=0
# A service is alive while its process (our child) runs. Not `kill -0`: a service that exited
# stays a zombie until this script reaps it, and kill -0 still finds it.
alive() {
  if [ -r "/proc/$1/stat" ]; then
    [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]
  else
    kill -0 "$1" 2>/dev/null
  fi
}
stop_all() {
  [ "$stopped" = 1 ] && return
  stopped=1
  trap - INT TERM HUP EXIT
  echo
  echo "Stopping web server, worker and beat..."
  # TERM to each service's main process: the worker stops its own pool processes cleanly.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 $((GRACE_SECONDS * 4))); do
    running=0
    for pid in "${pids[@]}"; do alive "$pid" && running=1; done
    [ "$running" = 0 ] && break
    sleep 0.25
  done
  # Whatever is left in the groups (a stuck service, a pool process) goes now. The groups' ids
  # cannot have been reused: their leaders are our unreaped children until the `wait` below.
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
trap stop_all INT TERM HUP EXIT

# Job control on only while starting the services: each gets its own process group (so a
# terminal Ctrl-C reaches this script, not the services mid-start, and stopping a group reaches
# the worker's pool processes too). Off again so later foreground commands keep our group.
set -m
.venv/bin/celery -A billing_backoffice worker --loglevel=INFO --concurrency=2 </dev/null &
pids+=($!)
.venv/bin/celery -A billing_backoffice beat --loglevel=INFO </dev/null &
pids+=($!)
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload </dev/null &
pids+=($!)
set +m

sleep 2
cat <<MSG

  Billing back office is running: http://127.0.0.1:${PORT}/admin/
  Console API docs:               http://127.0.0.1:${PORT}/api/v1/docs/
  Demo logins (password: ${DEMO_PASSWORD:-billing-demo-2026}):
    admin    superuser
    manager  account managers
    finance  finance staff
  Press Ctrl-C to stop everything.

MSG
# Whichever service stops first (crash or Ctrl-C) brings the others down.
set +e
wait -n "${pids[@]}"
status=$?
stop_all
exit "$status"
