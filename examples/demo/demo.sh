#!/usr/bin/env bash
# `make demo`: poolwatch end to end on the local control plane against the ModelArts simulator.
# `make demo-down` (this script with `down`) stops what it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEMO_DIR=$ROOT/examples/demo
STATE=$ROOT/target/demo
POOLWATCH=$ROOT/target/debug/poolwatch
BIN=$ROOT/target/test-cluster/bin
export KUBECONFIG=$ROOT/target/test-cluster/kubeconfig
NAMESPACE=poolwatch-demo

say() { printf '\n==> %s\n' "$*"; }
stop_pid() { # PIDFILE NAME
  if [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; then
    kill -TERM "$(cat "$1")"
    for _ in $(seq 100); do kill -0 "$(cat "$1")" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $2"
  fi
  rm -f "$1"
}

if [ "${1:-}" = down ]; then
  stop_pid "$STATE/operator.pid" "the operator"
  stop_pid "$STATE/simulator.pid" "the simulator"
  make -C "$ROOT" --no-print-directory test-cluster-down
  exit 0
fi

mkdir -p "$STATE"
say "Building poolwatch (the first build compiles its dependencies: minutes)"
cargo build --locked --manifest-path "$ROOT/Cargo.toml"

say "Starting the local control plane (the first start builds Kubernetes from source: minutes)"
make -C "$ROOT" --no-print-directory test-cluster
kubectl() { "$BIN/kubectl" "$@"; }

say "Starting the ModelArts simulator (config: examples/demo/simulator.yaml)"
stop_pid "$STATE/operator.pid" "the previous operator"
stop_pid "$STATE/simulator.pid" "the previous simulator"
cp "$DEMO_DIR/simulator.yaml" "$STATE/simulator.yaml"
"$POOLWATCH" simulator --listen 127.0.0.1:0 --config "$STATE/simulator.yaml" >"$STATE/simulator.log" 2>&1 &
echo $! >"$STATE/simulator.pid"
SIMULATOR_URL=
for _ in $(seq 100); do
  # The log may not exist yet: the background job opens it when it starts.
  SIMULATOR_URL=$(sed -n 's/^listening on //p' "$STATE/simulator.log" 2>/dev/null | head -n 1 || true)
  [ -n "$SIMULATOR_URL" ] && break
  sleep 0.1
done
[ -n "$SIMULATOR_URL" ] || { cat "$STATE/simulator.log"; echo "the simulator did not start" >&2; exit 1; }
echo "simulator at $SIMULATOR_URL"

say "Installing the CRD, a Secret with the simulator's keys and two watches"
kubectl apply --server-side -f "$ROOT/crds/"
kubectl wait --for=condition=Established --timeout=60s crd/poolstatisticswatches.poolwatch.io >/dev/null
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
kubectl -n "$NAMESPACE" create secret generic hwcloud-credentials \
  --from-literal=accessKeyId=SIMULATORDEMOAK00001 \
  --from-literal=secretAccessKey=simulator-demo-secret-key-not-for-real-use \
  --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
sed "s|\${SIMULATOR_URL}|$SIMULATOR_URL|g" "$DEMO_DIR/watches.yaml" | kubectl apply --server-side -f -

say "Running the operator (log: target/demo/operator.log)"
"$POOLWATCH" run --watch-namespace "$NAMESPACE" \
  --metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:8081 \
  >"$STATE/operator.log" 2>&1 &
echo $! >"$STATE/operator.pid"

kubectl -n "$NAMESPACE" wait --for=condition=Ready --timeout=60s psw --all >/dev/null
say "kubectl get psw -o wide"
kubectl -n "$NAMESPACE" get psw -o wide

say "kubectl describe psw training (conditions and the operator's events)"
for _ in $(seq 50); do
  kubectl -n "$NAMESPACE" get events --field-selector involvedObject.name=training -o name | grep -q . && break
  sleep 0.2
done
kubectl -n "$NAMESPACE" describe psw training | sed -n '/^Status:/,$p'

# Asks watch `training` for a poll until PoolsHealthy has reason $1 (the simulator re-reads its
# config within a second, so the first poll may still see the old pools).
poll_until_pools() {
  for attempt in $(seq 20); do
    kubectl -n "$NAMESPACE" annotate psw training --overwrite \
      poolwatch.io/refresh-requested-at="$1-$attempt-$(date +%s)" >/dev/null
    kubectl -n "$NAMESPACE" wait psw/training --timeout=3s \
      --for=jsonpath='{.status.conditions[?(@.type=="PoolsHealthy")].reason}'="$1" >/dev/null 2>&1 && return 0
  done
  echo "watch training never showed PoolsHealthy reason $1" >&2
  return 1
}
show_pools() {
  kubectl -n "$NAMESPACE" get psw training -o jsonpath='{range .status.poolDetails[*]}{.name}{"\t"}{.displayName}{"\t"}{.phase}{"\t"}{.message}{"\n"}{end}'
  echo "PoolsHealthy: $(kubectl -n "$NAMESPACE" get psw training \
    -o jsonpath='{.status.conditions[?(@.type=="PoolsHealthy")].message}')"
}

say "spec.poolDetails: which pool, and why (status.poolDetails of watch training)"
show_pools

say "A pool turns Abnormal (edited in target/demo/simulator.yaml); kubectl describe shows the event"
sed -i '/name: pool-6d1b4a1c/,/gpuDriver/ s/phase: Running/phase: Abnormal\n          message: 2 of 4 nodes are NotReady (GPU Xid 79)/' "$STATE/simulator.yaml"
poll_until_pools PoolsAbnormal
show_pools
kubectl -n "$NAMESPACE" describe psw training | sed -n '/^Events:/,$p'

say "... and recovers"
sed -i '/name: pool-6d1b4a1c/,/gpuDriver/ { /message: 2 of 4 nodes/d; s/phase: Abnormal/phase: Running/ }' "$STATE/simulator.yaml"
poll_until_pools PoolsFailed
for _ in $(seq 50); do
  kubectl -n "$NAMESPACE" get events --field-selector involvedObject.name=training,reason=PoolRecovered -o name | grep -q . && break
  sleep 0.2
done
kubectl -n "$NAMESPACE" describe psw training | sed -n '/^Events:/,$p'

say "Reading /metrics (HTTPS, self-signed) as a ServiceAccount bound to the chart's metrics-reader ClusterRole"
"$BIN/helm" template poolwatch "$ROOT/charts/poolwatch" --show-only templates/metrics-reader.yaml \
  | kubectl apply --server-side -f - >/dev/null
kubectl -n "$NAMESPACE" create serviceaccount metrics-reader --dry-run=client -o yaml \
  | kubectl apply --server-side -f - >/dev/null
kubectl create clusterrolebinding poolwatch-demo-metrics-reader --clusterrole=poolwatch-metrics-reader \
  --serviceaccount="$NAMESPACE:metrics-reader" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
echo "anonymous:  HTTP $(curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:8080/metrics)"
echo "the reader:"
curl -sk -H "Authorization: Bearer $(kubectl -n "$NAMESPACE" create token metrics-reader)" \
  https://127.0.0.1:8080/metrics | grep -E '^poolwatch_pool(s|_phase)\{'

cat <<TXT

poolwatch is running against the simulator. Try:
  export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH
  kubectl -n $NAMESPACE get psw -w                      # watch the counts
  \$EDITOR target/demo/simulator.yaml                    # change counts or pools; seen at the next poll (30 s)
  kubectl -n $NAMESPACE annotate psw training poolwatch.io/refresh-requested-at="\$(date +%s)" --overwrite   # poll now
  kubectl -n $NAMESPACE describe psw training            # conditions and events
  curl -sk -H "Authorization: Bearer \$(kubectl -n $NAMESPACE create token metrics-reader)" https://127.0.0.1:8080/metrics | grep ^poolwatch_   # Prometheus metrics
  tail -f target/demo/operator.log                       # the operator's log

Stop everything with: make demo-down
TXT
