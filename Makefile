# poolwatch development commands. `make help` lists them.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
POOLWATCH_CACHE ?= $(HOME)/.cache/poolwatch
export POOLWATCH_CACHE_DIR := $(POOLWATCH_CACHE)
# Python tools (Huawei's SDK, manifest linters) live in a private virtualenv, never system-wide.
PY_VENV := $(POOLWATCH_CACHE)/venv
PYTHON := $(PY_VENV)/bin/python
export POOLWATCH_PYTHON := $(PYTHON)

CRD_FILE := crds/poolstatisticswatches.poolwatch.io.yaml

-include tests/control-plane/control-plane.mk

.PHONY: help
help: ## List the commands.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-20s %s\n", $$1, $$2}'

.PHONY: demo
demo: ## Run poolwatch end to end: local control plane, ModelArts simulator, two watches.
	@examples/demo/demo.sh

.PHONY: demo-down
demo-down: ## Stop the demo and the local control plane.
	@examples/demo/demo.sh down

.PHONY: build
build: ## Build the poolwatch binary (debug).
	$(CARGO) build --locked

.PHONY: crd
crd: ## Regenerate the committed CRD from the Rust types.
	$(CARGO) run --locked --quiet -- crd > $(CRD_FILE)

.PHONY: fmt
fmt: ## Format the code.
	$(CARGO) fmt

.PHONY: lint
lint: ## rustfmt and clippy, warnings are errors.
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

.PHONY: crd-check
crd-check: ## Fail when the committed CRD differs from `poolwatch crd`.
	@$(CARGO) run --locked --quiet -- crd | diff -u $(CRD_FILE) - \
		|| { echo "$(CRD_FILE) is stale: run 'make crd' and commit it." >&2; exit 1; }

$(PY_VENV)/.installed: tests/python-requirements.txt
	@echo "==> Python tools into $(PY_VENV)"
	python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python-requirements.txt
	cp tests/python-requirements.txt $@

.PHONY: python-tools
python-tools: $(PY_VENV)/.installed ## Install the pinned Python tools (Huawei SDK, linters).

# End-to-end tests mostly wait (for polls, for the API server), so they run wider than the
# machine's core count.
TEST_THREADS ?= 16

.PHONY: test
test: python-tools ## Every check and test: format, lint, CRD drift, unit and integration tests.
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory crd-check
	@echo "==> Local control plane (the first start builds a Kubernetes API server: minutes)"
	$(MAKE) --no-print-directory test-cluster
	$(CARGO) test --locked --all-targets -- --test-threads=$(TEST_THREADS)
