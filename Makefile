# Postline — every command a developer or CI needs. Each target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# `make test PYTEST_ARGS=...` passes options through (CI uses --create-db).
PYTEST_ARGS ?=
# Demo data that `make run` loads once into an empty database.
DEMO_USERS ?= 2000
DEMO_POSTS ?= 20000
PIDFILE := .data/gunicorn.pid
JOBS_PIDFILE := .data/jobs.pid

.PHONY: help install run test lint stop fuzz deploy-check ci-tools loadtest loadtest-smoke soak bench compare faults

help:
	@echo "make run    start Postline on http://127.0.0.1:8000 and its job worker (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set)"
	@echo "make test   run the test suite"
	@echo "make faults run the fault tests (Redis, PostgreSQL, a replica, the primary (Patroni), a worker failing under load) and show their counts"
	@echo "make lint   ruff, ruff format --check, mypy, makemigrations --check, bandit, pip-audit"
	@echo "make stop   stop the server, the job worker and the embedded PostgreSQL and Redis"
	@echo "make fuzz   schemathesis against a live server (FUZZ_EXAMPLES, FUZZ_SECONDS)"
	@echo "make loadtest   locust (brief + mixed scenarios) against a production-like gunicorn, reports in out/loadtests/ (not in git)"
	@echo "make soak   10 minutes of the mixed scenario at 70 % of measured capacity"
	@echo "make bench  wrk benchmark on 1M users / 10M posts, both server models, cache on/off, plots in docs/"
	@echo "make deploy-check   validate Dockerfile, compose, Kubernetes and Prometheus files offline"

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

# The job worker (emails) runs beside gunicorn and stops with it. It starts once gunicorn has
# written its pid file (after clearing the metrics directory), so that gunicorn's /metrics
# shows the worker's metrics too. Development emails land as files in .data/mail/.
run: install
	$(BIN)/python manage.py prestart
	$(BIN)/python manage.py seed --if-empty --users $(DEMO_USERS) --posts $(DEMO_POSTS)
	mkdir -p .data
	rm -f $(PIDFILE)
	export PROMETHEUS_MULTIPROC_DIR=$${PROMETHEUS_MULTIPROC_DIR:-$(CURDIR)/.data/metrics}; \
	( while [ ! -f $(PIDFILE) ]; do sleep 0.2; done; exec $(BIN)/python manage.py run_jobs ) & echo $$! > $(JOBS_PIDFILE); \
	trap 'kill -TERM $$(cat $(JOBS_PIDFILE)) 2>/dev/null; rm -f $(JOBS_PIDFILE)' EXIT; \
	$(BIN)/gunicorn -c project/gunicorn.conf.py --pid $(PIDFILE)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fault tests print one line of counts each (docs/reliability.md); they also run in `make test`.
faults: install
	$(BIN)/python -m pytest -m faults -s tests/test_faults.py tests/test_replicas.py tests/test_failover.py $(PYTEST_ARGS)

# bandit: the shipped code ([tool.bandit] in pyproject.toml). pip-audit: known vulnerabilities of
# the installed packages, from PyPI's per-release JSON API (its only network use); where that
# API does not answer it lists every package as skipped and passes.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/bandit -c pyproject.toml -q -r project users posts manage.py
	$(BIN)/pip-audit --skip-editable --progress-spinner off

stop:
	@if [ -f $(PIDFILE) ]; then kill -TERM $$(cat $(PIDFILE)) 2>/dev/null && echo "gunicorn: stopped" || true; rm -f $(PIDFILE); fi
	@if [ -f $(JOBS_PIDFILE) ]; then kill -TERM $$(cat $(JOBS_PIDFILE)) 2>/dev/null && echo "job worker: stopped" || true; rm -f $(JOBS_PIDFILE); fi
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m project.devservers.embedded stop; fi

FUZZ_EXAMPLES ?= 60
FUZZ_SECONDS ?= 300
fuzz: install
	$(BIN)/python -m pip install --quiet -e '.[dev,fuzz]'
	$(BIN)/python -m tests.fuzz_live --max-examples $(FUZZ_EXAMPLES) --max-time $(FUZZ_SECONDS)

deploy-check:
	bash deploy/validate.sh

# Load tests: locust against gunicorn started with production settings on 127.0.0.1, on a
# dedicated database seeded once (docs/loadtests.md). LOADTEST_ARGS passes options through.
LOADTEST_ARGS ?=
LOAD_INSTALLED := $(VENV)/.installed-load
$(LOAD_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[dev,load]'
	touch $@

loadtest: $(LOAD_INSTALLED)
	$(BIN)/python -m loadtests.run --scenario both --users 40 --run-time 60s $(LOADTEST_ARGS)

# The CI smoke run: 20 s on a small seed, same thresholds, reports outside docs/.
loadtest-smoke: $(LOAD_INSTALLED)
	$(BIN)/python -m loadtests.run --scenario both --users 10 --spawn-rate 5 --run-time 20s \
		--database postline_smoke --seed-users 2000 --seed-posts 20000 --report-dir .data/loadtests-smoke $(LOADTEST_ARGS)

# wrk on 1M users / 10M posts; BENCH_ARGS passes options through (e.g. --database seedbench).
BENCH_ARGS ?=
bench: $(LOAD_INSTALLED)
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m loadtests.bench --write-docs $(BENCH_ARGS)

# Postline beside the article's stack, measured by ../shared/anchors' own harness.
COMPARE_ARGS ?=
compare: $(LOAD_INSTALLED)
	$(BIN)/python -m loadtests.anchors --rounds 3 $(COMPARE_ARGS)

# Ten minutes of the mixed scenario at 70 % of the capacity measured just before (docs/reliability.md).
soak: $(LOAD_INSTALLED)
	$(BIN)/python -m loadtests.run --soak --users 40 --run-time 10m $(LOADTEST_ARGS)

# System tools some tests use (promtool, Chromium for the admin browser test, PgBouncer, Patroni, etcd and HAProxy for the failover test); CI installs
# them, a developer may too. Without them those tests skip and say why.
ci-tools:
	command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; }
	[ -x /usr/bin/chromium ] || { apt-get update -qq && apt-get install -y -qq chromium; }
	[ -x /usr/sbin/pgbouncer ] || { apt-get update -qq && apt-get install -y -qq --no-install-recommends pgbouncer; }
	[ -x /usr/bin/patroni ] && [ -x /usr/bin/etcd ] && [ -x /usr/sbin/haproxy ] || { apt-get update -qq && apt-get install -y -qq --no-install-recommends patroni etcd-server haproxy; }
