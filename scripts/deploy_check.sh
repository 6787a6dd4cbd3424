#!/usr/bin/env bash
# `make deploy-check`: deploy on this machine as README "Deployment" says, drive it with faults,
# check what must hold. Production settings; PostgreSQL (127.0.0.1:5432, the machine's) behind
# our own PgBouncer (transaction pooling) and our own Redis, on ports of their own so the
# machine's Redis is never restarted; the Procfile's processes (gunicorn with 4 workers, the
# money and bulk workers, beat), each started from its Procfile line.
# Figures: benchmarks/results/deploy.json. Runs as root (CI does); installs pgbouncer if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
SECONDS_OF_LOAD=${DEPLOY_CHECK_SECONDS:-120}
CLIENTS=${DEPLOY_CHECK_CLIENTS:-50}
WEB_PORT=${DEPLOY_CHECK_PORT:-8765}
REDIS_PORT=${DEPLOY_CHECK_REDIS_PORT:-6391}
PGBOUNCER_PORT=${DEPLOY_CHECK_PGBOUNCER_PORT:-6433}
DB=billing_deploy
WORK=$(mktemp -d /tmp/deploy_check.XXXXXX)
chmod 755 "$WORK"
echo "deploy-check: work folder $WORK"

if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends pgbouncer
fi
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not running on 127.0.0.1:5432"; exit 1; }

# --- services of our own: Redis, PgBouncer ----------------------------------------------------
# The broker keeps its messages across a restart (append-only file, as README "Deployment" asks):
# a task queued before the Redis restart still runs after it.
start_redis() {
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly yes \
    --appendfsync everysec --dir "$WORK" --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
}
cat >"$WORK/pgbouncer.ini" <<INI
[databases]
$DB = host=127.0.0.1 port=5432 dbname=$DB user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = transaction
max_client_conn = 400
default_pool_size = 20
pidfile = $WORK/pgbouncer.pid
logfile = $WORK/pgbouncer.log
ignore_startup_parameters = extra_float_digits,options
INI
echo '"postgres" ""' >"$WORK/userlist.txt"
chown -R postgres "$WORK" 2>/dev/null || true
start_pgbouncer() {
  if [ "$(id -u)" = 0 ]; then "$PGBOUNCER" -d -u postgres "$WORK/pgbouncer.ini"; else "$PGBOUNCER" -d "$WORK/pgbouncer.ini"; fi
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p "$PGBOUNCER_PORT" -q && return; sleep 0.1; done
}

pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  sleep 3
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
  sleep 1
  dropdb -h 127.0.0.1 -U postgres --if-exists --force "$DB" 2>/dev/null
}
trap cleanup EXIT

dropdb -h 127.0.0.1 -U postgres --if-exists --force "$DB"
createdb -h 127.0.0.1 -U postgres "$DB"
start_redis
start_pgbouncer

# --- the environment the README's deployment gives every process ------------------------------
export DJANGO_SETTINGS_MODULE=billing_backoffice.settings.production
export SECRET_KEY=deploy-check-secret-key-$(date +%s)-not-for-production-use-0123456789
export CARD_FINGERPRINT_KEY=deploy-check-fingerprint-key
export ALLOWED_HOSTS=127.0.0.1,localhost
export DATABASE_URL=postgres://postgres@127.0.0.1:$PGBOUNCER_PORT/$DB
export DATABASE_BEHIND_PGBOUNCER=true
export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0
export METRICS_ENABLED=true
export PROMETHEUS_MULTIPROC_DIR=$WORK/metrics
export PORT=$WEB_PORT WEB_CONCURRENCY=4
export HOLD_RELEASE_AFTER_MINUTES=0
# The load logs in with a password only: the second factor is a browser's job (tests cover it).
export ADMIN_REQUIRE_OTP=false
export AXES_ENABLED=false
export STATEMENT_INBOX_DIR=$WORK/inbox MEDIA_ROOT=$WORK/media
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" "$STATEMENT_INBOX_DIR" "$MEDIA_ROOT"
DIRECT_URL=postgres://postgres@127.0.0.1:5432/$DB

# Migrations straight to PostgreSQL (DDL and advisory locks do not belong behind the pooler).
DATABASE_URL=$DIRECT_URL $PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0
$PY manage.py sync_beat_schedule >/dev/null
TOKEN=$($PY manage.py issue_api_token deploy-check 2>/dev/null | tail -n 1)
STAFF_PASSWORD=deploy-check-Staff-2026
DJANGO_SUPERUSER_PASSWORD=$STAFF_PASSWORD $PY manage.py createsuperuser --noinput --username admin --email admin@example.com
# The staff the load logs in as, in their roles' groups (README: "add staff users to their groups").
STAFF_PASSWORD=$STAFF_PASSWORD $PY manage.py shell -c '
import os
from django.contrib.auth.models import Group, User
for username, group in (("finance-upload", "Finance staff"), ("finance-approve", "Finance staff"),
                        ("manager-review", "Account managers")):
    user = User.objects.create_user(username, password=os.environ["STAFF_PASSWORD"], is_staff=True)
    user.groups.add(Group.objects.get(name=group))
'

$PY manage.py register_receiving_account --number DE89370400440532013000 --bank-name "Example Bank" \
  --bic EXBKDEFFXXX --currency USD >/dev/null 2>&1 || true

# --- the Procfile's processes, each in its own process group ----------------------------------
declare -A proc_pid
start_proc() {
  local name=$1 command
  command=$(sed -n "s/^$name: //p" Procfile)
  set -m
  bash -c "exec $command" >>"$WORK/$name.log" 2>&1 </dev/null &
  proc_pid[$name]=$!
  pids+=($!)
  set +m
}
for name in web worker worker_bulk beat; do start_proc "$name"; done
for _ in $(seq 1 120); do
  curl -fsS -H 'X-Forwarded-Proto: https' "http://127.0.0.1:$WEB_PORT/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS -H 'X-Forwarded-Proto: https' "http://127.0.0.1:$WEB_PORT/readyz" || { echo "never ready"; tail -n 30 "$WORK"/*.log; exit 1; }
echo

METRICS_URL="http://127.0.0.1:$WEB_PORT/metrics"
task_counts() {
  DATABASE_URL=$DIRECT_URL $PY -c '
import json, os, sys
sys.path.insert(0, "scripts")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.production")
from deploy_check_verify import task_counts
print(json.dumps(task_counts(sys.argv[1])))' "$METRICS_URL"
}
task_counts >"$WORK/tasks_before.json"  # what beat's first firings ran before the load

# --- load with faults in the middle -----------------------------------------------------------
$PY scripts/deploy_check_load.py --base "http://127.0.0.1:$WEB_PORT" --token "$TOKEN" \
  --staff-password "$STAFF_PASSWORD" --seconds "$SECONDS_OF_LOAD" --clients "$CLIENTS" --out "$WORK/load.json" &
load_pid=$!
sleep 15  # the baseline pass (15 s) runs first
echo "[]" >"$WORK/faults.json"
fault() {  # name: record when it started, for the check's fault windows
  $PY - "$WORK/faults.json" "$1" <<'PYF'
import json, sys, time
path, name = sys.argv[1], sys.argv[2]
faults = json.load(open(path)); faults.append({"fault": name, "at": time.time()}); json.dump(faults, open(path, "w"))
PYF
  echo "fault: $1"
}
step=$((SECONDS_OF_LOAD / 6))
sleep "$step"
fault "money worker SIGKILL + restart"
kill -KILL -- "-${proc_pid[worker]}"; sleep 3; start_proc worker
sleep "$step"
fault "one gunicorn worker SIGKILL"
kill -KILL "$(pgrep -P "${proc_pid[web]}" | head -n 1)"  # the master (exec'd by bash) starts another
sleep "$step"
fault "Redis restart"
redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; sleep 2; start_redis
sleep "$step"
fault "PgBouncer restart"
kill "$(cat "$WORK/pgbouncer.pid")"; sleep 2; start_pgbouncer
wait "$load_pid"

# --- drain and verify: the workers finish what the load queued (the check waits for them) ------
DATABASE_URL=$DIRECT_URL $PY scripts/deploy_check_verify.py "$WORK/load.json" "$WORK/faults.json" \
  "$WORK/tasks_before.json" benchmarks/results/deploy.json "$METRICS_URL"
