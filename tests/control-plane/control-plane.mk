# Local Kubernetes control plane for tests and the demo (see tests/control-plane/README.md).
# Included by the top-level Makefile.

# kubectl 1.35, helm 4, etcd and the API server binary; prefer these to any system kubectl.
TEST_CLUSTER_BIN := $(CURDIR)/target/test-cluster/bin
TEST_CLUSTER_KUBECONFIG := $(CURDIR)/target/test-cluster/kubeconfig

.PHONY: test-cluster test-cluster-down

test-cluster: ## Start the local control plane (etcd + API server) in the background.
	@tests/control-plane/up.sh

test-cluster-down: ## Stop the local control plane.
	@tests/control-plane/down.sh
