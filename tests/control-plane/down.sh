#!/usr/bin/env bash
# Stops the local control plane started by up.sh: the API server, then etcd, each by its PID file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# stop NAME PIDFILE EXPECTED: TERM, then KILL after 10s. EXPECTED must appear in the process's
# command line, so a PID reused by an unrelated process is never signalled.
stop() {
  local name=$1 pidfile=$2 expected=$3 pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$expected"; then
    log "PID $pid in $pidfile is no longer our $name: leaving it alone"
    rm -f "$pidfile"
    return 0
  fi
  log "stopping $name (PID $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in 10s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop "API server" "$STATE_DIR/apiserver.pid" poolwatch-test-apiserver
stop etcd "$STATE_DIR/etcd.pid" etcd
rm -f "$STATE_DIR/endpoint"
log "control plane stopped"
