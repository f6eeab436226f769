# Local Kubernetes control plane for tests and the demo (see tests/control-plane/README.md).
# Included by the top-level Makefile.

# kubectl (the control plane's own version), helm 4, kwokctl and the components; prefer these to
# any kubectl the machine has.
TEST_CLUSTER_BIN := $(CURDIR)/target/test-cluster/bin
TEST_CLUSTER_KUBECONFIG := $(CURDIR)/target/test-cluster/kubeconfig

.PHONY: test-cluster test-cluster-down

test-cluster: ## Start the local control plane (upstream Kubernetes and a kwok node) in the background.
	@tests/control-plane/up.sh

test-cluster-down: ## Stop the local control plane.
	@tests/control-plane/down.sh
