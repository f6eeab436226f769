#!/usr/bin/env bash
# Stops or starts only the API server of a running control plane, keeping etcd and its data: for
# tests of how clients live through an API server restart. kwokctl starts it again with the same
# port, certificates and flags, so kubeconfigs stay valid.
#   apiserver.sh stop     TERM the API server and wait until it has exited
#   apiserver.sh start    start it again (kwokctl starts the components that are not running)
#   apiserver.sh restart  both
#   apiserver.sh pid      print its process id
# Use a control plane of its own (POOLWATCH_TEST_CLUSTER_DIR): other tests on a shared one would
# see the outage.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apiserver_pid() {
  local pid
  pid=$(component_pid kube-apiserver) || die "no API server runs for $STATE_DIR"
  kill -0 "$pid" 2>/dev/null || die "no API server runs for $STATE_DIR"
  echo "$pid"
}

# While the API server is stopped, no other control plane may be created: kwokctl would find its
# port free and take it, and the restart would fail with "address already in use" (seen when
# several tests with control planes of their own start at once). So stop starts a holder that
# takes the ports lock of with_port_lock (once a creation in progress, whose ports are already
# chosen, ends) without delaying the stop, and start releases it; should start never come (a
# failed test), the holder lets go after PORT_HOLD_SECONDS.
PORT_HOLD_SECONDS=90
PORT_HOLDER=$STATE_DIR/ports-holder.pid
PORTS_HELD=$STATE_DIR/ports-held

hold_ports() {
  mkdir -p "$CACHE_DIR"
  rm -f "$PORTS_HELD"
  # Its own output goes nowhere: whoever reads this script's output would wait for it.
  (
    flock 7
    touch "$PORTS_HELD"
    exec sleep "$PORT_HOLD_SECONDS"
  ) 7>"$CACHE_DIR/.control-plane-ports.lock" 9>&- >/dev/null 2>&1 &
  echo $! >"$PORT_HOLDER"
}

# ports_holder_alive: whether this control plane's stop left a holder (waiting or holding).
ports_holder_alive() { [ -s "$PORT_HOLDER" ] && kill -0 "$(cat "$PORT_HOLDER")" 2>/dev/null; }

# wait_for_ports: waits until the holder holds the lock.
wait_for_ports() {
  for _ in $(seq 1200); do
    [ -e "$PORTS_HELD" ] && return 0
    sleep 0.05
  done
  die "could not take the control planes' ports lock in 60s"
}

release_ports() {
  if [ -s "$PORT_HOLDER" ]; then kill "$(cat "$PORT_HOLDER")" 2>/dev/null || true; fi
  rm -f "$PORT_HOLDER" "$PORTS_HELD"
}

stop_apiserver() {
  local pid
  pid=$(apiserver_pid)
  hold_ports
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    # It drains long-running requests (watches) for longer than tests want to wait.
    kill -KILL "$pid" 2>/dev/null || true
    # kwokctl starts only components that are not running: wait until this one is gone.
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  log "API server (PID $pid) stopped; etcd keeps running"
}

start_apiserver() {
  local starter=(with_port_lock)
  # Holding the lock since stop (once the holder has it), or taking it now.
  if ports_holder_alive; then
    wait_for_ports
    starter=()
  fi
  "${starter[@]}" kwokctl start cluster --timeout 2m >>"$STATE_DIR/kwokctl.log" 2>&1 || {
    release_ports
    tail -n 20 "$STATE_DIR/kwokctl.log" >&2
    last_lines kube-apiserver
    die "kwokctl could not start the API server"
  }
  release_ports
  for _ in $(seq 600); do
    api_ready && { log "API server ready again (PID $(apiserver_pid))"; return 0; }
    sleep 0.1
  done
  last_lines kube-apiserver
  die "the API server did not become ready in 60s"
}

case "${1:-}" in
  stop) stop_apiserver ;;
  start) start_apiserver ;;
  restart) stop_apiserver; start_apiserver ;;
  pid) apiserver_pid ;;
  *) die "usage: $0 stop|start|restart|pid" ;;
esac
