# Two commands on a fresh machine:  make demo   |   make test
# Everything lives in the project: .venv/ (packages) and .local/ (Airflow home, data, MLflow).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.sha256

export CT_HOME ?= $(CURDIR)/.local
export AIRFLOW_HOME ?= $(CT_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM ?= 4
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL ?= 10
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export MLFLOW_DISABLE_TELEMETRY ?= true
export GX_ANALYTICS_ENABLED ?= False
# MLflow logs through the root logger, so its INFO is INFO in task logs (include/foundation/logging_config.py)
export MLFLOW_CONFIGURE_LOGGING ?= false
export PYTHONWARNINGS ?= ignore:Using `httpx` with `starlette.testclient` is deprecated
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv demo run test lint up bench loop-value readmit lock clean

venv: $(STAMP)

# Re-installs only when requirements.txt changed (the stamp holds its hash): a second call installs nothing.
$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -f $@ ] && sha256sum -c --status $@; then touch $@; else \
	  echo "Installing requirements.txt into $(VENV) (first time: a few minutes)"; \
	  $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -r requirements.txt && \
	  sha256sum requirements.txt > $@; fi

demo: venv  ## The whole loop, headless, through Airflow (SQLite + local MLflow + .local/data)
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

run: venv  ## Your pipeline through Airflow's scheduler, week by week: make run PIPELINE=name [FIRST_WEEK=YYYY-MM-DD] [WEEKS=n]
	@test -n "$(PIPELINE)" || { echo "usage: make run PIPELINE=<name> [FIRST_WEEK=YYYY-MM-DD] [WEEKS=n] (docs/own-data.md)"; exit 2; }
	$(BIN)/python scripts/demo.py --pipeline $(PIPELINE) $(if $(FIRST_WEEK),--first-week $(FIRST_WEEK)) $(if $(WEEKS),--weeks $(WEEKS)) $(DEMO_ARGS)

# Two pytest-xdist workers by default (CI's two cores); the deployments share one (tests/conftest.py).
TEST_WORKERS ?= 2
test: venv lint  ## Lint, then the whole pytest suite (TEST_WORKERS=2 processes; 0 runs it in one)
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

lint: venv  ## ruff, then the architecture contracts in pyproject.toml (import-linter)
	$(BIN)/ruff check dags plugins include tests scripts
	$(BIN)/ruff format --check dags plugins include tests scripts
	$(BIN)/lint-imports --no-cache

up: venv  ## Airflow UI on localhost:8080 and MLflow UI on localhost:5000; Ctrl-C stops both
	bash scripts/up.sh

bench: venv  ## Benchmarks of the loop, P1-P6 and XCom sizes (print figures; not tests; ~10 min)
	$(BIN)/python tests/bench/parse.py
	$(BIN)/python tests/bench/loop.py $(BENCH_ARGS)

loop-value: venv  ## Replay 2013 under never / weekly / periodic / configured retraining and each signal alone; table, plot, MLflow run
	$(BIN)/python scripts/loop_value.py $(LOOP_VALUE_ARGS)

readmit: venv  ## Re-admit a quarantined interval: READMIT_ARGS='--pipeline P --interval YYYY-MM-DD --reason "..."'
	$(BIN)/python scripts/readmit.py $(READMIT_ARGS)

lock: venv  ## Re-resolve requirements.in into exact pins
	$(BIN)/python -m pip install --quiet -r requirements.in && $(BIN)/python -m pip freeze > requirements.txt

clean:  ## Remove local state (Airflow DB, data, MLflow store); keeps the venv
	rm -rf $(CT_HOME)
