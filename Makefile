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

.PHONY: help install run test lint stop fuzz deploy-check ci-tools

help:
	@echo "make run    start Postline on http://127.0.0.1:8000 (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set)"
	@echo "make test   run the test suite"
	@echo "make lint   ruff, ruff format --check, mypy, makemigrations --check"
	@echo "make stop   stop the server and the embedded PostgreSQL and Redis"
	@echo "make fuzz   schemathesis against a live server (FUZZ_EXAMPLES, FUZZ_SECONDS)"
	@echo "make deploy-check   validate Dockerfile, compose, Kubernetes and Prometheus files offline"

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

run: install
	$(BIN)/python manage.py prestart
	$(BIN)/python manage.py seed --if-empty --users $(DEMO_USERS) --posts $(DEMO_POSTS)
	mkdir -p .data
	exec $(BIN)/gunicorn -c project/gunicorn.conf.py --pid $(PIDFILE)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python manage.py makemigrations --check --dry-run

stop:
	@if [ -f $(PIDFILE) ]; then kill -TERM $$(cat $(PIDFILE)) 2>/dev/null && echo "gunicorn: stopped" || true; rm -f $(PIDFILE); fi
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m project.embedded stop; fi

FUZZ_EXAMPLES ?= 60
FUZZ_SECONDS ?= 300
fuzz: install
	$(BIN)/python -m pip install --quiet -e '.[dev,fuzz]'
	$(BIN)/python tests/fuzz_live.py --max-examples $(FUZZ_EXAMPLES) --max-time $(FUZZ_SECONDS)

deploy-check:
	bash deploy/validate.sh

# System tools some tests use (promtool, Chromium for the admin browser test); CI installs
# them, a developer may too. Without them those tests skip and say why.
ci-tools:
	command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; }
	[ -x /usr/bin/chromium ] || { apt-get update -qq && apt-get install -y -qq chromium; }
