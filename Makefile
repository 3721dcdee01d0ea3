# Two entry points on a fresh machine: `make guides` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: guides test bench install llama-server llama-server-venv clean-notebooks gpu-check gpu-contract gpu-api-snapshot

$(BIN)/sparkbooks: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[models,singlecell,topics,vision,rag,robot,kg]'
	@touch $@

# one pip resolve for a fresh venv (not the guides' install and then this one again)
$(VENV)/.test-extras: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[test,models,singlecell,topics,vision,rag,robot,kg]'
	@touch $(BIN)/sparkbooks $@

install: $(BIN)/sparkbooks

## llama.cpp's llama-server for the LLM playbooks: built once from a pinned source, then cached.
## `sparkbooks setup` needs only the standard library, so the source tree's CLI builds it with $(PYTHON) while pip
## installs the venv (the compile uses the cores while pip mostly downloads and unpacks): ≈ 2 min less on a fresh
## 2-core machine than one after the other.
## (A $(PYTHON) without pip cannot fetch the source: then the build waits for the venv, in `llama-server-venv`.)
llama-server:
	@if $(PYTHON) -m pip --version >/dev/null 2>&1; then PYTHONPATH=shared $(PYTHON) -m sparkbooks.cli setup llama-server; \
	else echo "$(PYTHON) has no pip: llama-server is built after the install"; fi

llama-server-venv: $(BIN)/sparkbooks
	@$(BIN)/sparkbooks setup llama-server

## Run every playbook on its auto profile (cpu here) and render the guide site, each guide as its playbook finishes.
## The site's path comes first, before the install and the llama-server build (once, ≈ 6 min on 2 cores): open it
## while the rest runs.
guides:
	@echo "Guide site: file://$(CURDIR)/site/index.html (each guide appears there as its playbook finishes)"
	@$(MAKE) --no-print-directory -j2 install llama-server
	@$(MAKE) --no-print-directory llama-server-venv
	$(BIN)/sparkbooks build

## Unit tests, every playbook once through papermill (nbval's comparison on its tagged outputs), the site in Chromium.
## Two sessions: the unit tests on two pytest-xdist workers (mostly one-threaded Python: two keep both cores busy),
## then the playbooks one at a time with the machine to themselves (each run is held to its guide's stated minutes,
## and a playbook beside other work takes 1.3–6× longer). Both always run; the target fails if either failed.
TEST_WORKERS ?= 2
## One BLAS/OpenMP thread per worker: two workers with two threads each oversubscribe two cores
## (the benchmark smokes and training tests: 252 s with the default threads, 198 s with one, on this 2-core VM).
UNIT_THREADS := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
## The playbook session collects only the files that mark tests slow (collecting all ~1,900 tests costs ≈ 40 s);
## tests/test_project.py checks this list against the files.
SLOW_TESTS := tests/test_browser.py tests/test_claims.py tests/test_jupyterlab.py tests/test_playbooks.py \
              tests/test_rag.py tests/test_render.py tests/test_vlm.py
test:
	@$(MAKE) --no-print-directory -j2 $(VENV)/.test-extras llama-server
	@$(MAKE) --no-print-directory llama-server-venv
	@rc=0; \
	$(UNIT_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not slow" tests || rc=$$?; \
	$(BIN)/python -m pytest -m slow $(SLOW_TESTS) || rc=$$?; \
	exit $$rc

## Benchmarks (not part of `make test`): each prints a table, then one JSON line.
bench: $(BIN)/sparkbooks
	$(PIP) install -e '.[models,singlecell,topics,vision,rag,robot,kg,bench]'
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Strip notebooks for commit, taking nbval reference outputs from a fresh cpu run.
clean-notebooks: $(BIN)/sparkbooks
	$(BIN)/sparkbooks run --all --profile cpu --no-progress
	$(BIN)/sparkbooks clean --from-run

## On a machine with an NVIDIA GPU: every GPU path that can run there, small, ≤ 8 min; one JSON report.
## Runs from the source tree with the system python (no install, no network needed); parts whose
## dependencies are missing report "not installed".
gpu-check:
	PYTHONPATH=shared $(PYTHON) benchmarks/gpu_check.py --out gpu-check.json

## The GPU contract environment: the CUDA 13 RAPIDS wheels (≈ 6 GB, ≈ 4 min with a fast link) import without a GPU.
GPU_VENV ?= .gpu-contract
PYTHON312 ?= python3.12
$(GPU_VENV)/bin/python:
	$(PYTHON312) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip --disable-pip-version-check -q install -e '.[gpu,test,singlecell,topics]'

## Rewrite tests/gpu_api_snapshot.json from the real wheels (commit it): what every GPU call site binds to.
gpu-api-snapshot: $(GPU_VENV)/bin/python
	$(GPU_VENV)/bin/python tests/gpu_contract.py --write

## Run the contract tests with the real wheels, including the ones that exercise cudf.pandas in CPU-fallback mode.
gpu-contract: $(GPU_VENV)/bin/python
	$(GPU_VENV)/bin/python -m pytest tests/test_gpu_contract.py
