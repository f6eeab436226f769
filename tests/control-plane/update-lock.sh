#!/usr/bin/env bash
# Re-pins debian-packages.lock to what Debian sid has today (commit the result). The next
# `make test-cluster` then fetches those packages and rebuilds the API server.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

new=$(mktemp)
trap 'rm -f "$new"' EXIT
"$CP_DIR/fetch-debian.sh" --resolve >"$new"
[ -s "$new" ] || die "could not resolve the Kubernetes Go packages in Debian sid"
if cmp -s "$new" "$CP_DIR/debian-packages.lock"; then
  log "debian-packages.lock is current"
else
  diff "$CP_DIR/debian-packages.lock" "$new" >&2 || true
  cp "$new" "$CP_DIR/debian-packages.lock"
  log "debian-packages.lock updated: $(wc -l <"$new") packages"
fi
