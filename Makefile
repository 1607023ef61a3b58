# Everyday commands of the hub. They work from a fresh clone: each target builds the
# venv if needed, and the embedded Kafka fetches its jars with mvn on first start.
# Where things run: HOTELHUB_HOME (default ~/.cache/hotelhub), HOTELHUB_BROKER_PORT,
# HOTELHUB_CONTROLLER_PORT, HOTELHUB_REGISTRY_PORT; KAFKA_BOOTSTRAP_SERVERS and
# SCHEMA_REGISTRY_URL point everything at clusters you run yourself.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOTELHUB := $(BIN)/hotelhub
# The first Python 3.11+ on PATH; override with `make venv PYTHON=/path/to/python3`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { command -v $$p; break; }; done)

.PHONY: help venv system-packages demo test lint contracts services-up services-down bench

help:
	@echo "make venv           .venv with the project and its dev tools (Python 3.11+)"
	@echo "make system-packages  Debian's postgresql, prometheus, chromium, chromium-driver (apt-get if missing)"
	@echo "make demo           start broker, registry and PostgreSQL, then a simulated hotel day through the hub"
	@echo "make test           pytest; fixtures start the broker, registry and PostgreSQL they need"
	@echo "make lint           ruff check + mypy (strict)"
	@echo "make contracts      check schemas/avro against the registry (hotelhub schemas check)"
	@echo "make services-up    start the embedded Kafka, schema registry and PostgreSQL, register the contracts"
	@echo "make services-down  stop them"
	@echo "make bench          every benchmark in sequence (bench/README.md); BENCH_ARGS=--runs 3"

venv: $(STAMP)

# Re-installs only when pyproject.toml changes, so a rerun is instant.
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "make venv: no Python 3.11+ found; pass PYTHON=..." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input -e '.[dev]'
	@touch $@

# Installs only what is missing (apt-get, as root or with sudo -n); instant when all are there.
system-packages:
	scripts/system-packages

# The operator registers the contracts: workers and publishers only look them up.
services-up: venv system-packages
	$(HOTELHUB) broker up
	$(HOTELHUB) registry up
	$(HOTELHUB) schemas register
	$(HOTELHUB) storage up

services-down: venv
	-$(HOTELHUB) storage down
	-$(HOTELHUB) registry down
	$(HOTELHUB) broker down

# Leaves broker and registry running so you can look around (hotelhub tail,
# hotelhub broker tool ...); `make services-down` stops them.
demo: services-up
	$(HOTELHUB) demo
	@echo "broker, registry and PostgreSQL are still running; stop them with: make services-down"

# pytest exits 5 when it collected nothing: a broken test layout, never a pass.
test: venv system-packages
	@$(BIN)/pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests (exit 5); failing" >&2; fi; \
	exit $$status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

contracts: services-up
	$(HOTELHUB) schemas check

# Every benchmark in sequence against the local broker and registry (left running), each
# the median of 3 runs (bench.state: one run); results in bench/results/. Run one at a time on a quiet machine.
BENCH_ARGS ?= --runs 3
# quixstreams (the month's peer) pins older confluent-kafka and pydantic than the hub, so it
# goes in without its own requirements (pyproject.toml's `bench` extra lists the others).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input --no-deps 'quixstreams>=3.28,<3.29'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input -e '.[bench]'
	@touch $@

bench: services-up $(BENCH_STAMP)
	$(BIN)/python -m bench.signing $(BENCH_ARGS)
	$(BIN)/python -m bench.produce $(BENCH_ARGS)
	$(BIN)/python -m bench.consume $(BENCH_ARGS)
	$(BIN)/python -m bench.stay $(BENCH_ARGS)
	$(BIN)/python -m bench.latency $(BENCH_ARGS)
	$(BIN)/python -m bench.gateway $(BENCH_ARGS)
	$(BIN)/python -m bench.offline_sync $(BENCH_ARGS)
	$(BIN)/python -m bench.reports $(BENCH_ARGS)
	$(BIN)/python -m bench.state
	$(BIN)/python -m bench.restore $(BENCH_ARGS)
	$(BIN)/python -m bench.worker_recovery $(BENCH_ARGS)
	$(BIN)/python -m bench.storage_sink $(BENCH_ARGS)
	$(BIN)/python -m bench.month_catchup --runs 3
