#!/usr/bin/env bash
# `make run`: migrate, seed the demo, then serve the admin with one Celery worker and one beat.
# Ctrl-C stops every process this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}

$PY manage.py migrate --noinput
$PY manage.py sync_beat_schedule
$PY manage.py seed_demo

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "Stopping web server, worker and beat..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

.venv/bin/celery -A billing_backoffice worker --loglevel=INFO --concurrency=2 &
pids+=($!)
.venv/bin/celery -A billing_backoffice beat --loglevel=INFO &
pids+=($!)
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload &
pids+=($!)

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
wait -n "${pids[@]}"
