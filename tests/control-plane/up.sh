#!/usr/bin/env bash
# Starts the local control plane (etcd + the test API server) in the background and writes an admin
# kubeconfig to $STATE_DIR/kubeconfig. Idempotent and safe to run concurrently: a running, healthy
# control plane is reused; a half-dead one is stopped and started afresh (with empty storage).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKI=$STATE_DIR/pki
KUBECONFIG_FILE=$STATE_DIR/kubeconfig
ETCD_PID=$STATE_DIR/etcd.pid
APISERVER_PID=$STATE_DIR/apiserver.pid
ENDPOINT_FILE=$STATE_DIR/endpoint

command -v curl >/dev/null || die "curl is needed (readiness checks)"
command -v openssl >/dev/null || die "openssl is needed (certificates)"
command -v flock >/dev/null || die "flock (util-linux) is needed"

mkdir -p "$STATE_DIR"
# One starter at a time (several test binaries may start at once). The daemons must not inherit
# the lock's file descriptor, or the lock would live as long as they do.
exec 9>"$STATE_DIR/.lock"
flock 9

healthy() {
  pid_alive "$ETCD_PID" && pid_alive "$APISERVER_PID" && [ -f "$ENDPOINT_FILE" ] &&
    curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "$(cat "$ENDPOINT_FILE")/readyz" >/dev/null 2>&1
}

print_summary() {
  log "control plane running at $(cat "$ENDPOINT_FILE") (API server PID $(cat "$APISERVER_PID"), etcd PID $(cat "$ETCD_PID"))"
  log "  export KUBECONFIG=$KUBECONFIG_FILE"
  log "  kubectl and helm: $BIN_DIR/kubectl, $BIN_DIR/helm"
  log "  audit log: $STATE_DIR/audit.log; stop with: make test-cluster-down"
}

# The server binary these sources and the pinned package list make (built below if not cached).
want=$("$CP_DIR/build-apiserver.sh" --key-only)

if healthy; then
  if [ "$(cat "$STATE_DIR/apiserver.want" 2>/dev/null)" = "$want" ]; then
    # Tools may be missing in a checkout sharing a running control plane's state: cheap to check.
    [ -x "$BIN_DIR/kubectl" ] && [ -x "$BIN_DIR/helm" ] || "$CP_DIR/fetch-tools.sh" kubectl
    print_summary
    exit 0
  fi
  log "the API server's sources or packages changed since it started: restarting it (storage starts empty)"
fi
if pid_alive "$ETCD_PID" || pid_alive "$APISERVER_PID"; then
  healthy || log "a previous control plane is not healthy: stopping it"
  "$CP_DIR/down.sh"
fi

total_start=$EPOCHREALTIME

# 1. Tools, packages and the server binary. Downloads run in parallel; the Debian packages are
#    needed only when the server binary for the pinned package list and sources is not cached.
binary=$want
logs=$STATE_DIR/fetch-logs
mkdir -p "$logs"
pids=()
"$CP_DIR/fetch-tools.sh" etcd 2>"$logs/etcd.log" & pids+=($!)
"$CP_DIR/fetch-tools.sh" kubectl 2>"$logs/kubectl.log" & pids+=($!)
if [ ! -x "$binary" ]; then
  log "no cached API server for these sources: fetching Debian packages and building (takes a few minutes the first time)"
  timed "fetching Debian packages" "$CP_DIR/fetch-debian.sh" >"$STATE_DIR/package-list"
  binary=$(timed "building the API server" "$CP_DIR/build-apiserver.sh" "$(cat "$STATE_DIR/package-list")")
  if [ "$binary" != "$want" ]; then
    # Built from today's sid instead of the pinned list (see fetch-debian.sh): remember it for the
    # pinned key too, so the next start does not resolve and build again.
    mkdir -p "$(dirname "$want")"
    ln -sf "$binary" "$want"
  fi
fi
for pid in "${pids[@]}"; do
  wait "$pid" || { cat "$logs"/*.log >&2; die "fetching tools failed"; }
done
cat "$logs"/*.log >&2
mkdir -p "$BIN_DIR"
ln -sf "$binary" "$BIN_DIR/poolwatch-test-apiserver"

# 2. Certificates: a CA, a serving certificate for 127.0.0.1/localhost, an admin client certificate
#    in group system:masters. Made once per state directory.
if [ ! -f "$PKI/admin.crt" ]; then
  log "creating certificates"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -keyout ca.key -out ca.crt -subj "/CN=poolwatch-test-ca" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout server.key -out server.csr -subj "/CN=poolwatch-test-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=poolwatch-admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt 2>/dev/null
    rm -f ./*.csr ./*.ext
  ) || die "openssl failed to make the certificates"
fi

# 3. etcd on free loopback ports, fresh data each start, no fsync (tests don't need durability).
start_daemon() { # PIDFILE LOGFILE CMD...: runs CMD in its own session, detached from our stdio and lock.
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" </dev/null >"$logfile" 2>&1 9>&- &
  echo $! >"$pidfile"
}

etcd_port=$(free_port)
peer_port=$(free_port)
rm -rf "$STATE_DIR/etcd-data"
log "starting etcd on 127.0.0.1:$etcd_port"
start_daemon "$ETCD_PID" "$STATE_DIR/etcd.log" "$BIN_DIR/etcd" --name poolwatch-test \
  --data-dir "$STATE_DIR/etcd-data" --unsafe-no-fsync --log-level warn \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "poolwatch-test=http://127.0.0.1:$peer_port"
for _ in $(seq 100); do
  curl -fsS --max-time 1 "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
  pid_alive "$ETCD_PID" || { tail -n 20 "$STATE_DIR/etcd.log" >&2; die "etcd exited"; }
  sleep 0.1
done

# 4. The API server.
api_port=$(free_port)
endpoint=https://127.0.0.1:$api_port
: >"$STATE_DIR/audit.log"
log "starting the API server on $endpoint"
start_daemon "$APISERVER_PID" "$STATE_DIR/apiserver.log" "$BIN_DIR/poolwatch-test-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" --secure-port "$api_port" --cert-dir "$PKI" \
  --audit-policy-file "$CP_DIR/audit-policy.yaml" --audit-log-path "$STATE_DIR/audit.log" -v=1
echo "$endpoint" >"$ENDPOINT_FILE"
echo "$want" >"$STATE_DIR/apiserver.want"
ready_start=$EPOCHREALTIME
for _ in $(seq 600); do
  healthy && break
  pid_alive "$APISERVER_PID" || { tail -n 30 "$STATE_DIR/apiserver.log" >&2; die "the API server exited"; }
  sleep 0.1
done
healthy || { tail -n 30 "$STATE_DIR/apiserver.log" >&2; die "the API server did not become ready in 60s"; }
log "API server ready after $(awk -v a="$ready_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"

# 5. The admin kubeconfig, self-contained.
b64() { base64 -w0 <"$1"; }
cat >"$KUBECONFIG_FILE.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: poolwatch-test
    cluster:
      server: $endpoint
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

log "control plane started in $(awk -v a="$total_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"
print_summary
