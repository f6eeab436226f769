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

# Watches in `make bench`; `make bench-scaling` runs 250, 500, 1000 and 2000.
N ?= 500
# DETAILS=1: every watch sets spec.poolDetails, with 10 pools per workspace.
DETAILS ?= 0

.PHONY: bench
bench: ## Scale benchmark: N watches (default 500; DETAILS=1 with pool details) on the local control plane; results in bench/results/.
	$(MAKE) --no-print-directory test-cluster
	N=$(N) DETAILS=$(DETAILS) $(CARGO) bench --locked --bench scale

.PHONY: bench-scaling
bench-scaling: ## The scale benchmark for N = 250, 500, 1000 and 2000, and the per-watch cost table.
	$(MAKE) --no-print-directory test-cluster
	for n in 250 500 1000 2000; do N=$$n $(CARGO) bench --locked --bench scale; done
	bench/scaling-table.sh > bench/results/scaling.md
	cat bench/results/scaling.md

# `make bench-peers`: poolwatch and External Secrets Operator side by side (benches/peers.rs), at each
# size in PEERS_N, each run on a control plane of its own in BENCH_PEERS_CLUSTER_DIR, started empty
# and deleted afterwards (never the shared target/test-cluster). ESO's controller is built once
# into the cache from tests/go/external-secrets (the first time: about 9 minutes on 2 cores).
PEERS_N ?= 500,2000
BENCH_PEERS_CLUSTER_DIR ?= $(CURDIR)/target/bench-peers-cluster

.PHONY: bench-peers
bench-peers: ## poolwatch and External Secrets Operator side by side, N = PEERS_N (500,2000); results in bench/results/peers.*.
	@tests/control-plane/build-components.sh external-secrets >/dev/null
	PEERS_N=$(PEERS_N) POOLWATCH_BENCH_CLUSTER_DIR=$(BENCH_PEERS_CLUSTER_DIR) $(CARGO) bench --locked --bench peers

.PHONY: bench-table-check
bench-table-check: ## Fail when bench/results/scaling.md is not what bench/scaling-table.sh makes of the results.
	@bench/scaling-table.sh | diff -u bench/results/scaling.md - \
		|| { echo "bench/results/scaling.md is stale: run 'bench/scaling-table.sh > bench/results/scaling.md'." >&2; exit 1; }

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
	@# tests/flux and tests/argocd are `make test-gitops`'s (test = false in Cargo.toml), so
	@# --all-targets leaves them out, and given beside it they are ignored: a run of their own.
	$(CARGO) clippy --locked --test flux --test argocd -- -D warnings

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

.PHONY: signing-fixtures-check
signing-fixtures-check: python-tools ## Fail when Huawei's pinned Python SDK no longer signs as tests/fixtures/signing.json says.
	@$(PYTHON) tests/signing/generate_fixtures.py | diff -u tests/fixtures/signing.json - \
		|| { echo "tests/fixtures/signing.json differs from what the pinned SDK signs: read the diff, then run '$(PYTHON) tests/signing/generate_fixtures.py > tests/fixtures/signing.json'." >&2; exit 1; }

# End-to-end tests mostly wait (for polls, for the API server), so they run wider than the
# machine's core count.
TEST_THREADS ?= 16

# Cargo tools, each built once from crates.io into the cache (a few minutes the first time):
# $(call cargo_tool,NAME,VERSION) makes the rule of the stamp file $(CARGO_TOOLS)/.NAME-VERSION.
CARGO_TOOLS := $(POOLWATCH_CACHE)/cargo-bin
define cargo_tool
$(CARGO_TOOLS)/.$(1)-$(2):
	@echo "==> $(1) $(2) into $(CARGO_TOOLS)"
	$(CARGO) install --locked --quiet $(1)@$(2) --root $(CARGO_TOOLS)
	touch $$@
endef

# cargo-deny: licenses, bans, sources, advisories.
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(CARGO_TOOLS)/bin/cargo-deny
$(eval $(call cargo_tool,cargo-deny,$(CARGO_DENY_VERSION)))

.PHONY: deny
deny: $(CARGO_TOOLS)/.cargo-deny-$(CARGO_DENY_VERSION) ## Dependency licenses, banned crates and sources (deny.toml; offline).
	$(CARGO_DENY) --locked check licenses bans sources

# Security advisories offline, against a snapshot of the RustSec database (../shared/advisory-db,
# or POOLWATCH_ADVISORY_DB), and the check's self-test: see tests/advisories.sh for what happens
# without a snapshot (POOLWATCH_ADVISORIES=live, CI=true).
.PHONY: advisories
advisories: $(CARGO_TOOLS)/.cargo-deny-$(CARGO_DENY_VERSION) ## Security advisories, offline, against the RustSec snapshot (../shared/advisory-db); and a self-test of the check.
	@CARGO_DENY=$(CARGO_DENY) tests/advisories.sh check
	@CARGO_DENY=$(CARGO_DENY) tests/advisories.sh self-test

.PHONY: audit
audit: $(CARGO_TOOLS)/.cargo-deny-$(CARGO_DENY_VERSION) ## Security advisories against the live RustSec database (fetched from GitHub).
	$(CARGO_DENY) --locked check advisories

# The container image: a static musl binary FROM scratch (Dockerfile), built with buildah or podman
# (deploy/image/build.sh), and its SBOM from cargo-cyclonedx, built once into the cache.
CARGO_CYCLONEDX_VERSION := 0.5.9
CARGO_CYCLONEDX := $(CARGO_TOOLS)/bin/cargo-cyclonedx
$(eval $(call cargo_tool,cargo-cyclonedx,$(CARGO_CYCLONEDX_VERSION)))

.PHONY: image
image: $(CARGO_TOOLS)/.cargo-cyclonedx-$(CARGO_CYCLONEDX_VERSION) ## Container image: target/image/poolwatch-VERSION.oci.tar and its SBOM (needs buildah or podman).
	@CARGO_CYCLONEDX=$(CARGO_CYCLONEDX) deploy/image/build.sh >/dev/null

.PHONY: workflow-lint
workflow-lint: ## actionlint (built from its Go module, tests/go/actionlint) and tests/workflow-rules.sh (pins, checkout credentials, permissions) on .github/workflows/.
	@"$$(tests/control-plane/build-components.sh actionlint)/actionlint" .github/workflows/*.yaml
	@tests/workflow-rules.sh

# $(call install_missing,COMMAND:PACKAGE ...): the shell command that installs, from the
# distribution's packages (Debian/Ubuntu), the package of each COMMAND that is not on PATH.
install_missing = missing=""; for pair in $(1); do \
		command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair\#\#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "==> installing$$missing"; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# What `make test` needs to build and run the image, from the distribution's packages.
CONTAINER_TOOLS := buildah:buildah podman:podman runc:runc skopeo:skopeo musl-gcc:musl-tools

.PHONY: container-tools
container-tools: ## Install buildah, podman, runc, skopeo and musl-tools where missing (Debian/Ubuntu).
	@$(call install_missing,$(CONTAINER_TOOLS))

# What `make test-gitops` needs besides what it builds: Redis, Argo CD's cache.
GITOPS_TOOLS := redis-server:redis-server

.PHONY: gitops-tools
gitops-tools: ## Install redis-server (Argo CD's cache in make test-gitops) where missing (Debian/Ubuntu).
	@$(call install_missing,$(GITOPS_TOOLS))

SOAK_MINUTES ?= 30

.PHONY: soak
soak: ## Soak: 200 watches, random upstream faults, an API server restart, for SOAK_MINUTES (30).
	SOAK_MINUTES=$(SOAK_MINUTES) $(CARGO) test --locked --test soak -- --ignored --nocapture

.PHONY: test
test: python-tools ## Every check and test: format, lint, CRD drift, dependency policy, unit and integration tests.
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory crd-check
	$(MAKE) --no-print-directory bench-table-check
	$(MAKE) --no-print-directory signing-fixtures-check
	$(MAKE) --no-print-directory workflow-lint
	$(MAKE) --no-print-directory alerts-check
	$(MAKE) --no-print-directory deny
	$(MAKE) --no-print-directory advisories
	@echo "==> Local control plane (the first start builds Kubernetes from source: minutes)"
	$(MAKE) --no-print-directory test-cluster
	@echo "==> GitOps readers: kstatus, Argo CD's sync, diff and health (the first time builds them with Go 1.27.3: minutes)"
	@tests/control-plane/build-components.sh gitops-readers >/dev/null
	@echo "==> Container image (the first build compiles the release binary for musl: minutes)"
	$(MAKE) --no-print-directory container-tools
	$(MAKE) --no-print-directory image
	@# The benchmark is built (and linted) but not run: it is `make bench`'s, and a bench target that
	@# returns at once under `cargo test` would only look like a pass.
	$(CARGO) build --locked --benches
	$(CARGO) test --locked --lib --bins --tests -- --test-threads=$(TEST_THREADS)

# GitOps controllers for real, kept out of `make test` for time. Flux's source-controller and
# kustomize-controller reconcile watches from a git repository on loopback (tests/flux); then Argo
# CD's application controller and repo-server (3.6.2, with Redis) sync them from one
# (tests/argocd). The first run builds the controllers from their modules (Flux: 7 minutes of
# CPU, 20 minutes of wall time measured on 2 cores busy with other builds; Argo CD: 7 minutes of
# wall time cold on 2 shared cores); then the Flux tests and the Argo CD tests take a minute or
# two each (144 s together, measured warm). From a clean clone it builds and starts everything itself (the
# control plane, the components, Redis from the distribution's packages).
.PHONY: test-gitops
test-gitops: gitops-tools ## Flux's and Argo CD's controllers sync watches from git: wait/health, stalled, new generations, drift, prune (tests/flux, tests/argocd).
	$(MAKE) --no-print-directory test-cluster
	@echo "==> Flux's controllers (the first time builds them from their modules: minutes)"
	@tests/control-plane/build-components.sh flux >/dev/null
	$(CARGO) test --locked --test flux -- --test-threads=$(TEST_THREADS)
	@echo "==> Argo CD's application controller and repo-server (the first time builds them with Go 1.27.3: minutes)"
	@tests/control-plane/build-components.sh argocd >/dev/null
	$(CARGO) test --locked --test argocd -- --test-threads=$(TEST_THREADS)

# The oldest Kubernetes minor the pinned k8s-openapi supports; `make test` runs the newest.
K8S_MATRIX_MINORS ?= 1.33

.PHONY: test-k8s-matrix
test-k8s-matrix: python-tools ## The end-to-end suite on the oldest supported Kubernetes too (K8S_MATRIX_MINORS), each on its own control plane.
	@for minor in $(K8S_MATRIX_MINORS); do \
		echo "==> Kubernetes $$minor: control plane in target/test-cluster-k8s-$$minor"; \
		export POOLWATCH_KUBE_MINOR=$$minor POOLWATCH_TEST_CLUSTER_DIR=$(CURDIR)/target/test-cluster-k8s-$$minor; \
		tests/control-plane/up.sh && \
		tests/control-plane/build-components.sh gitops-readers >/dev/null && \
		$(CARGO) test --locked --tests -- --test-threads=$(TEST_THREADS); \
		status=$$?; tests/control-plane/down.sh; [ $$status = 0 ] || exit $$status; \
	done

# The shipped alerts, by Prometheus' own promtool (tests/go/prometheus): the PrometheusRule's
# spec.groups as a plain rule file (PyYAML, of yamllint's venv), `promtool check rules`, then the
# unit tests of every alert (tests/prometheus/*.test.yaml), run beside that rule file.
ALERTS_FILE := deploy/prometheus/poolwatch-alerts.yaml
ALERTS_CHECK_DIR := target/alerts-check

.PHONY: alerts-check
alerts-check: python-tools ## Prometheus alerts: promtool check rules, and promtool's unit tests of every alert (tests/prometheus/).
	@promtool="$$(tests/control-plane/build-components.sh prometheus)/promtool"; \
	rm -rf $(ALERTS_CHECK_DIR) && mkdir -p $(ALERTS_CHECK_DIR) && \
	$(PYTHON) -c 'import sys, yaml; yaml.safe_dump({"groups": yaml.safe_load(open(sys.argv[1]))["spec"]["groups"]}, sys.stdout, sort_keys=False, width=1000)' \
		$(ALERTS_FILE) > $(ALERTS_CHECK_DIR)/poolwatch-alerts.rules.yaml && \
	cp tests/prometheus/*.test.yaml $(ALERTS_CHECK_DIR)/ && \
	echo "==> promtool check rules, promtool test rules ($$("$$promtool" --version | head -n 1))" && \
	"$$promtool" check rules $(ALERTS_CHECK_DIR)/poolwatch-alerts.rules.yaml && \
	"$$promtool" test rules $(ALERTS_CHECK_DIR)/*.test.yaml

# The Helm chart's static checks; `make test` runs them first.
CHART := charts/poolwatch
CHART_CHECK_DIR := target/chart-check
CHART_MODES := default namespaced everything federation

.PHONY: chart-check
chart-check: python-tools ## Helm chart: CRDs and deploy/ copies in sync, helm lint --strict, kubernetes-validate --strict, yamllint.
	@diff -ru crds $(CHART)/crds \
		|| { echo "$(CHART)/crds differs from crds/: copy crds/ into it." >&2; exit 1; }
	@diff -u deploy/grafana/poolwatch-dashboard.json $(CHART)/files/grafana-dashboard.json \
		&& diff -u deploy/prometheus/poolwatch-alerts.yaml $(CHART)/files/prometheus-alerts.yaml \
		|| { echo "$(CHART)/files differs from deploy/: copy the dashboard and alerts into it." >&2; exit 1; }
	@[ -x $(TEST_CLUSTER_BIN)/helm ] || tests/control-plane/fetch-tools.sh helm
	@mkdir -p $(CHART_CHECK_DIR)
	@for mode in $(CHART_MODES); do \
		values=$$([ $$mode = default ] || echo "--values $(CHART)/ci/$$mode-values.yaml"); \
		echo "==> chart, $$mode values: helm lint --strict, helm template | kubernetes-validate --strict"; \
		$(TEST_CLUSTER_BIN)/helm lint --strict --quiet $(CHART) $$values; \
		$(TEST_CLUSTER_BIN)/helm template poolwatch $(CHART) --namespace poolwatch $$values \
			> $(CHART_CHECK_DIR)/$$mode.yaml; \
		$(PY_VENV)/bin/kubernetes-validate --strict --quiet $(CHART_CHECK_DIR)/$$mode.yaml; \
	done
	@echo "==> yamllint"
	@$(PY_VENV)/bin/yamllint --strict $(CHART)/Chart.yaml $(CHART)/values.yaml $(CHART)/ci $(CHART)/crds \
		$(CHART)/files deploy tests/prometheus .yamllint $(CHART_CHECK_DIR)

test: chart-check
