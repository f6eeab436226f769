#!/usr/bin/env bash
# Stops or starts only the API server of a running control plane, keeping etcd and its data: for
# tests of how clients live through an API server restart. Same port, certificates and flags, so
# kubeconfigs stay valid.
#   apiserver.sh stop     TERM the API server (its command line is kept for `start`)
#   apiserver.sh start    start it again as it was and wait until it is ready
#   apiserver.sh restart  both
# Use a control plane of its own (POOLWATCH_TEST_CLUSTER_DIR): other tests on a shared one would
# see the outage.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APISERVER_PID=$STATE_DIR/apiserver.pid
SAVED=$STATE_DIR/apiserver.cmdline
PKI=$STATE_DIR/pki

stop_apiserver() {
  pid_alive "$APISERVER_PID" || die "no API server runs for $STATE_DIR"
  local pid
  pid=$(cat "$APISERVER_PID")
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- poolwatch-test-apiserver ||
    die "PID $pid is not our API server"
  cp "/proc/$pid/cmdline" "$SAVED"
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  log "API server (PID $pid) stopped; etcd keeps running"
}

start_apiserver() {
  [ -f "$SAVED" ] || die "no saved API server command line: run '$0 stop' first"
  pid_alive "$APISERVER_PID" && die "the API server is already running"
  local -a cmd
  mapfile -d '' -t cmd <"$SAVED"
  setsid "${cmd[@]}" </dev/null >>"$STATE_DIR/apiserver.log" 2>&1 &
  echo $! >"$APISERVER_PID"
  local endpoint
  endpoint=$(cat "$STATE_DIR/endpoint")
  for _ in $(seq 600); do
    curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "$endpoint/readyz" >/dev/null 2>&1 && { log "API server ready again (PID $(cat "$APISERVER_PID"))"; return 0; }
    pid_alive "$APISERVER_PID" || { tail -n 30 "$STATE_DIR/apiserver.log" >&2; die "the API server exited"; }
    sleep 0.1
  done
  die "the API server did not become ready in 60s"
}

case "${1:-}" in
  stop) stop_apiserver ;;
  start) start_apiserver ;;
  restart) stop_apiserver; start_apiserver ;;
  *) die "usage: $0 stop|start|restart" ;;
esac
