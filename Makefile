# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
# Needs only Python 3.11+ and make; everything else comes from the package registry.

PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
BIN := $(VENV)/bin
DEMO_START ?= 2013-01-01
DEMO_END ?= 2013-01-31

export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# uv must use the Python it is given, never download one.
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup demo test lint format dev replay materialize summary clean bench bench-quick

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"

# --compile-bytecode: every Dagster run is a fresh interpreter (the code server spawns one per run),
# and where PYTHONDONTWRITEBYTECODE is set (many CI runners and images) no import is ever cached:
# the run's start-up then recompiles Dagster, pandas and their dependencies, 8 s instead of 3 here
# (docs/operations.md#from-a-landed-file-to-its-feature-partition). The Dockerfile does the same.
$(VENV)/.synced: pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --frozen --all-extras --compile-bytecode --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')"
	@touch $@

## setup: create .venv with the locked dependencies (uv.lock)
setup: $(VENV)/.synced

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## demo: replay January 2013 into data/landing and materialize every asset for it in one run
demo: setup $(DAGSTER_HOME)/dagster.yaml replay materialize summary

replay: setup
	$(BIN)/dataeng-replay --start $(DEMO_START) --end $(DEMO_END)

materialize: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m dataeng_assets.definitions --select '*' \
		--partition-range $(DEMO_START)...$(DEMO_END)

summary: setup
	$(BIN)/python -m dataeng_assets.summary

## test: lint, then the whole test suite (SeaweedFS and dagster dev are started by fixtures)
test: setup lint
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## dev: the Dagster UI on http://127.0.0.1:3000 (webserver and daemon)
dev: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## bench: the benchmarks (results in bench/results/); bench-quick: a few minutes at most
bench: setup
	$(BIN)/python -m bench.run

bench-quick: setup
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf data/lake data/landing $(DAGSTER_HOME)
