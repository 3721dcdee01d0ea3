# Two entry points on a fresh machine: `make guides` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: guides test bench install llama-server clean-notebooks

$(BIN)/sparkbooks: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[models,singlecell,topics,vision]'
	@touch $@

$(VENV)/.test-extras: $(BIN)/sparkbooks
	$(PIP) install -e '.[test,models,singlecell,topics,vision]'
	@touch $@

install: $(BIN)/sparkbooks

## llama.cpp's llama-server for the LLM playbooks: built once from a pinned source, then cached.
llama-server: $(BIN)/sparkbooks
	$(BIN)/sparkbooks setup llama-server

## Run every playbook on its auto profile (cpu here) and render the guide site.
guides: llama-server
	$(BIN)/sparkbooks build
	@echo "Guide site: $(CURDIR)/site/index.html"

## Unit tests, every playbook through papermill, nbval on tagged outputs, the site in headless Chromium.
test: $(VENV)/.test-extras llama-server
	$(BIN)/python -m pytest tests playbooks --nbval-lax --nbval-current-env

## Benchmarks (not part of `make test`): each prints a table, then one JSON line.
bench: $(BIN)/sparkbooks
	$(PIP) install -e '.[models,singlecell,topics,vision,bench]'
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Strip notebooks for commit, taking nbval reference outputs from a fresh cpu run.
clean-notebooks: $(BIN)/sparkbooks
	$(BIN)/sparkbooks run --all --profile cpu --no-progress
	$(BIN)/sparkbooks clean --from-run
