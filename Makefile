# The two commands of set-up: `make demo` and `make test`. Each makes its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint format bench bench-drift bench-drift-width clean system-tools checkov airflow mlflow

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# a venv beside ours for a tool that pins many packages of its own: $(call side-venv,DIR,REQUIREMENT)
define side-venv
$(PYTHON) -m venv $(1)
$(1)/bin/python -m pip install --quiet --upgrade pip
$(1)/bin/python -m pip install --quiet "$(2)"
touch $@
endef

# checkov scans the Terraform `deploy aws` writes
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/.installed-stamp:
	$(call side-venv,$(CHECKOV_VENV),checkov>=3.2)

checkov: $(CHECKOV_VENV)/.installed-stamp

# Apache Airflow: the tests load and run the DAG `pipeline airflow` writes.
# Airflow alone is pinned (its constraint files live on GitHub, which this network cannot reach); it resolves on 3.11.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_VERSION ?= 3.3.2
$(AIRFLOW_VENV)/.installed-stamp:
	$(call side-venv,$(AIRFLOW_VENV),apache-airflow==$(AIRFLOW_VERSION))

airflow: $(AIRFLOW_VENV)/.installed-stamp

# MLflow: the tests save models with the real mlflow, import them (a directory, runs:/ and models:/ URIs) and serve
# what `mlopsctl export --format mlflow` writes with `mlflow models serve`. mlopsctl goes in too (editable), so
# `import runs:/...` runs where mlflow is importable; scikit-learn, skops, XGBoost, LightGBM and numpy are held at
# the main venv's versions, so a model saved by one venv is read by the other as it was written.
MLFLOW_VENV ?= .venv-mlflow
# 3.17.2: mlflow 3.18.0 pins mlflow-tracing==3.18.0, which the package index reachable here does not have yet.
MLFLOW_VERSION ?= 3.17.2
$(MLFLOW_VENV)/.installed-stamp: $(STAMP)
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip list --format=freeze --exclude-editable \
		| grep -iE '^(scikit-learn|skops|xgboost-cpu|lightgbm|numpy)==' > $(MLFLOW_VENV)/same-as-main.txt
	$(MLFLOW_VENV)/bin/python -m pip install --quiet -c $(MLFLOW_VENV)/same-as-main.txt \
		"mlflow==$(MLFLOW_VERSION)" xgboost-cpu lightgbm scikit-learn skops -e .
	touch $@

mlflow: $(MLFLOW_VENV)/.installed-stamp

demo: $(STAMP)  ## the whole loop on a dataset that ships with scikit-learn, in ./demo-workspace
	$(BIN)/python scripts/demo.py

# Debian tools the tests run for real: chromium (the dashboard), promtool (alert rules), amtool (Alertmanager config),
# crontab (retrain schedules, installed for a throwaway user).
# Installed when missing and we are root; the tests that need them skip with the reason otherwise.
system-tools:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v crontab >/dev/null || missing="$$missing cron"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing from Debian:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# two pytest-xdist workers (worksteal: one that runs out of tests takes some of the other's); a test marked `alone`
# runs with no other test beside it (tests/conftest.py). One file: $(BIN)/python -m pytest tests/test_x.py
test: $(STAMP) system-tools checkov airflow mlflow  ## every test, slow ones included
	MLOPS_CHECKOV=$(CHECKOV_VENV)/bin/checkov MLOPS_AIRFLOW_PYTHON=$(AIRFLOW_VENV)/bin/python \
		MLOPS_MLFLOW_PYTHON=$(MLFLOW_VENV)/bin/python \
		$(BIN)/python -m pytest -q -n 2 --dist worksteal

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/python scripts/check_tests.py  # a test without an assertion or an expected raise cannot fail

format: $(STAMP)
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

bench: $(STAMP)  ## serving benchmark; needs wrk (installed from Debian when missing and root)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || true
	$(BIN)/python bench/serve_bench.py

bench-drift: $(STAMP)  ## drift engine vs a plain scipy loop on 1M rows; Evidently too if EVIDENTLY_PYTHON is set
	$(BIN)/python bench/drift_bench.py $(if $(EVIDENTLY_PYTHON),--evidently-python $(EVIDENTLY_PYTHON))

bench-drift-width: $(STAMP)  ## drift engine over 300k rows x 1,000 columns: time, peak RSS, report sizes
	$(BIN)/python bench/drift_width_bench.py --parquet

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(AIRFLOW_VENV) $(MLFLOW_VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
