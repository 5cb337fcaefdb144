# Two commands do all set-up on a fresh machine:
#   make run   install the pinned stack into .venv (if needed), then `kedro run --pipelines=full`
#   make test  the same install, then the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEPS   := requirements.txt requirements-assets.txt pyproject.toml
# The stamp name carries a hash of the dependency files: any edit re-installs, nothing else does.
STAMP  := $(VENV)/.installed-$(shell cat $(DEPS) | sha256sum | cut -c1-16)
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

export KEDRO_DISABLE_TELEMETRY := true

.PHONY: install run test docs viz mlflow-ui bench bench-pipeline clean-venv

install: $(STAMP)

$(STAMP): $(DEPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch is pinned in the same call as the rest so no dependency pulls a CUDA build
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -r requirements-assets.txt
	$(PIP) install --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: install
	$(BIN)/kedro run --pipelines=full

test: install
	$(BIN)/python -m pytest

# the parameter reference, generated from the schema and conf/base (a test fails when it is stale)
docs: install
	$(BIN)/python -m glta_pipelines.framework.parameter_reference conf/base docs/parameters.md

viz: install
	$(BIN)/kedro viz run

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

bench: install
	$(BIN)/python benchmarks/bench_lightgcn.py
	$(BIN)/python benchmarks/bench_baselines.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_llm.py
	$(BIN)/python benchmarks/bench_cold_start.py

# per-node wall times of one `full` run, next to the CPU's matmul rate (about 10 minutes)
bench-pipeline: install
	$(BIN)/python benchmarks/bench_pipeline.py

clean-venv:
	rm -rf $(VENV)
