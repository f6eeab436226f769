#!/usr/bin/env bash
# Fetches the Debian sid packages pinned in debian-packages.lock (Kubernetes' Go libraries and the Go
# toolchain) and unpacks them into $CACHE_DIR/debian-root. Nothing is installed: apt runs with a
# private sources list, state and cache, and the system's apt configuration is left alone.
#
# Prints the path of the package list actually unpacked (the lock, unless sid dropped a pinned
# version: then the current sid versions are used, with a warning to refresh the lock).
#
# Usage: fetch-debian.sh            fetch and unpack what the lock names
#        fetch-debian.sh --resolve  print the current sid resolution as lock lines
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOCK=$CP_DIR/debian-packages.lock
ROOTS=(golang-go golang-k8s-apiextensions-apiserver-dev golang-k8s-apiserver-dev golang-k8s-api-dev
  golang-k8s-client-go-dev golang-k8s-kube-openapi-dev)
APT_DIR=$CACHE_DIR/apt
DEB_DIR=$CACHE_DIR/debs
ROOT_DIR=$CACHE_DIR/debian-root

# The mirror is the one the machine's own apt uses for Debian (only the suite differs).
debian_mirror() {
  if [ -n "${POOLWATCH_DEBIAN_MIRROR:-}" ]; then echo "$POOLWATCH_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
  [ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }')
  [ -n "$uri" ] || die "cannot find a Debian mirror in the apt configuration; set POOLWATCH_DEBIAN_MIRROR"
  echo "$uri"
}

APT_OPTS=()
setup_apt() {
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/etc"
  touch "$APT_DIR/status"
  echo "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) sid main" >"$APT_DIR/etc/sources.list"
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$APT_DIR/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache" -o "Dir::State::status=$APT_DIR/status"
    -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false
  )
}

apt_update() {
  log "reading the Debian sid package index"
  apt-get "${APT_OPTS[@]}" -qq update >&2 || die "apt-get update (private sid index) failed"
}

# resolve prints name=version for every golang-* package the roots need, as sid has them now.
resolve() {
  apt-get "${APT_OPTS[@]}" install -s --no-install-recommends "${ROOTS[@]}" 2>/dev/null |
    awk '$1 == "Inst" && $2 ~ /^golang-/ { v = $3; gsub(/[()]/, "", v); print $2 "=" v }' | LC_ALL=C sort
}

# deb_present NAME=VERSION: whether apt-get download already fetched that package.
deb_present() {
  local name=${1%%=*} version=${1#*=}
  compgen -G "$DEB_DIR/${name}_${version//:/%3a}_*.deb" >/dev/null
}

all_present() {
  local pkg
  while read -r pkg; do deb_present "$pkg" || return 1; done <"$1"
}

# download LIST: fetches the missing .debs of LIST, four apt-get processes at a time.
download() {
  local list=$1 missing
  mkdir -p "$DEB_DIR"
  missing=$(while read -r pkg; do deb_present "$pkg" || echo "$pkg"; done <"$list")
  [ -n "$missing" ] || { log "all $(wc -l <"$list") Debian packages already downloaded"; return 0; }
  log "downloading $(echo "$missing" | wc -l) Debian packages (~330 MB when none are cached)"
  (cd "$DEB_DIR" && echo "$missing" | xargs -n 40 -P 4 apt-get "${APT_OPTS[@]}" -qq download >&2)
}

unpack() {
  local list=$1 stamp
  stamp=$(sha256_of "$list")
  if [ -f "$ROOT_DIR/.stamp" ] && [ "$(cat "$ROOT_DIR/.stamp")" = "$stamp" ]; then
    log "Debian packages already unpacked"
    return 0
  fi
  log "unpacking Debian packages"
  rm -rf "$ROOT_DIR.new"
  mkdir -p "$ROOT_DIR.new"
  while read -r pkg; do
    local name=${pkg%%=*} version=${pkg#*=}
    ls "$DEB_DIR/${name}_${version//:/%3a}"_*.deb
  done <"$list" | xargs -P 2 -I{} dpkg-deb -x {} "$ROOT_DIR.new"
  echo "$stamp" >"$ROOT_DIR.new/.stamp"
  rm -rf "$ROOT_DIR"
  mv "$ROOT_DIR.new" "$ROOT_DIR"
}

main() {
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "apt-get and dpkg-deb are needed (a Debian machine)"
  setup_apt
  if [ "${1:-}" = --resolve ]; then
    apt_update
    resolve
    return
  fi

  local list=$LOCK
  # Skip the index entirely when every pinned package is already here.
  if ! all_present "$LOCK"; then
    apt_update
    if ! timed "downloading" download "$LOCK"; then
      log "WARNING: Debian sid no longer has some pinned versions; using today's sid versions."
      log "WARNING: refresh the pin with tests/control-plane/update-lock.sh and commit it."
      list=$CACHE_DIR/debian-packages.resolved
      resolve >"$list"
      [ -s "$list" ] || die "could not resolve the Kubernetes Go packages in Debian sid"
      download "$list" || die "downloading Debian packages failed"
    fi
  fi
  timed "unpacking" unpack "$list"
  echo "$list"
}

main "$@"
