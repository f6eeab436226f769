#!/usr/bin/env bash
# Deletes the local control plane started by up.sh: kwokctl stops every component and removes the
# cluster's state; any component process still alive afterwards is stopped here, so that nothing
# is left behind.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The components' PIDs, kept only while their command lines still name this cluster's folder, so a
# PID reused by an unrelated process is never signalled.
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$CLUSTER_DIR"; }
pids=()
for file in "$CLUSTER_DIR"/pids/*.pid; do
  [ -f "$file" ] && pid_alive "$file" && ours "$(cat "$file")" && pids+=("$(cat "$file")")
done
if [ -x "$BIN_DIR/kwokctl" ] && [ -d "$CLUSTER_DIR" ]; then
  kwokctl delete cluster >"$STATE_DIR/kwokctl-delete.log" 2>&1 ||
    { tail -n 20 "$STATE_DIR/kwokctl-delete.log" >&2; log "kwokctl could not delete the cluster: stopping its processes"; }
fi
for pid in "${pids[@]}"; do
  ours "$pid" || continue
  log "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-60)) outlived kwokctl: stopping it"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
done
rm -rf "$CLUSTER_DIR"
rm -f "$STATE_DIR/endpoint" "$STATE_DIR/control-plane.want" "$STATE_DIR/audit.log"
log "control plane stopped"
