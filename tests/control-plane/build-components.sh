#!/usr/bin/env bash
# Builds the Go programs the tests run (the upstream components of the local control plane, the
# GitOps readers) from their modules under tests/go/, once, into the cache, and prints the folder
# holding the binaries. Each module pins its versions in
# go.mod and their checksums in go.sum; the cache key is a hash of both, of the module's own Go
# files, of the build flags and of the Go version, so a change to any of them builds afresh and an
# unchanged one costs nothing.
#   build-components.sh kubernetes-1.37   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#   build-components.sh kwok              kwok (the fake node's controller) and kwokctl (runs the cluster)
#   build-components.sh etcd              etcd
#   build-components.sh gitops-readers    kstatus, and Argo CD's sync, diff and health (tests/go/gitops-readers)
#   build-components.sh actionlint        the GitHub Actions linter (tests/go/actionlint)
#   build-components.sh prometheus        prometheus and promtool (tests/go/prometheus), without the
#                                         cloud service discoveries (build tag remove_all_sd)
#   build-components.sh flux              Flux's source-controller, kustomize-controller and a loopback git server (tests/go/flux)
#   build-components.sh argocd            Argo CD's application controller and repo-server, one binary (tests/go/argocd)
#   build-components.sh --key-only NAME   the folder it would print, without building
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

key_only=false
if [ "${1:-}" = --key-only ]; then key_only=true; shift; fi
name=${1:?usage: build-components.sh [--key-only] kubernetes-MINOR|kwok|etcd}
module=$REPO_ROOT/tests/go/$name
[ -f "$module/go.mod" ] || die "no Go module $module (known: $(ls "$REPO_ROOT/tests/go" | grep -v '\.sh$' | tr '\n' ' '))"
command -v go >/dev/null || die "Go is needed to build $name (https://go.dev/doc/install; 1.26 or newer)"

# The module's tools (the `tool` lines of its go.mod, Go's `tool` pattern), or the module's own
# program; for Kubernetes, the version stamps that a release build sets (else the binaries report
# v0.0.0 and kwokctl cannot pick their flags).
targets=.
grep -qE '^tool[[:space:](]' "$module/go.mod" && targets=tool  # not `toolchain`
ldflags="-s -w"
tags=""
stamped=()
case $name in
  kubernetes-*)
    version=$(sed -nE 's/^\s*(require )?k8s\.io\/kubernetes (v[0-9.]+).*/\2/p' "$module/go.mod")
    [ -n "$version" ] || die "$module/go.mod requires no k8s.io/kubernetes release"
    major=${version#v}; major=${major%%.*}
    minor=${version#v*.}; minor=${minor%%.*}
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    ;;
  prometheus)
    # Prometheus' own tag leaves out every service discovery but file, HTTP and static targets
    # (its plugins/ folder): the tests scrape a static target, and the cloud SDKs are most of the
    # build. The version stamp is what `prometheus --version` and its build_info report.
    version=$(sed -nE 's/^\s*github\.com\/prometheus\/prometheus v0\.([0-9]+)\.([0-9]+).*/\1 \2/p' "$module/go.mod")
    [ -n "$version" ] || die "$module/go.mod requires no github.com/prometheus/prometheus release"
    read -r minor patch <<<"$version"
    # Module v0.MNN.P is release M.NN.P: v0.316.0 is 3.16.0, v0.301.0 is 3.1.0.
    release=$((10#$minor / 100)).$((10#$minor % 100)).$patch
    ldflags+=" -X github.com/prometheus/common/version.Version=$release"
    stamped=(prometheus "prometheus, version $release ")
    tags=remove_all_sd
    ;;
  argocd)
    # Argo CD's release stamp (its Makefile's), which the controller and repo-server log at start;
    # without it they report 99.99.99.
    version=$(sed -nE 's/^\s*github\.com\/argoproj\/argo-cd\/v3 v([0-9.]+).*/\1/p' "$module/go.mod")
    [ -n "$version" ] || die "$module/go.mod requires no github.com/argoproj/argo-cd/v3 release"
    ldflags+=" -X github.com/argoproj/argo-cd/v3/common.version=$version"
    ;;
esac
build=(go build -trimpath -ldflags "$ldflags")
if [ -n "$tags" ]; then build+=(-tags "$tags"); fi

# A module that needs a newer Go than the machine's names it in a `toolchain` line (Argo CD 3.6
# declares go 1.27): the go command fetches that toolchain from the module proxy like a module,
# once per machine. The others build with the installed Go, as before.
toolchain=$(sed -nE 's/^toolchain (go[0-9.]+)$/\1/p' "$module/go.mod")
export GOTOOLCHAIN=${toolchain:-local}

# The module's own Go files count too (the GitOps readers', the Flux git server's): an edit rebuilds.
mapfile -t sources < <(find "$module" -name '*.go' | sort)
key=$(cat "$module/go.mod" "$module/go.sum" "${sources[@]}" <(go version; echo "${build[*]} $targets") |
  sha256sum | cut -c1-16)
out=$CACHE_DIR/components/$name-$key
if $key_only || [ -f "$out/.built" ]; then
  echo "$out/bin"
  exit 0
fi

# One build per component at a time, even across checkouts sharing the cache.
mkdir -p "$CACHE_DIR/components"
exec 8>"$CACHE_DIR/components/.$name.lock"
flock 8
if [ -f "$out/.built" ]; then echo "$out/bin"; exit 0; fi

log "building $name from $module (cold: minutes on 2 cores; cached afterwards in $out)"
rm -rf "$out.tmp"
mkdir -p "$out.tmp/bin"
build_log=$out.tmp/build.log
start=$EPOCHREALTIME
(cd "$module" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
  "${build[@]}" -o "$out.tmp/bin/" "$targets") >"$build_log" 2>&1 &
build_pid=$!
# A cold build is silent for minutes: say that it is still going.
seconds=0
while kill -0 "$build_pid" 2>/dev/null; do
  sleep 1
  seconds=$((seconds + 1))
  [ $((seconds % 30)) = 0 ] && log "still building $name (${seconds}s)"
done
if ! wait "$build_pid"; then
  tail -n 30 "$build_log" >&2
  die "building $name failed (full log: $build_log)"
fi
log "built $name in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0fs", b - a }')"
# A stamp that did not take (a renamed variable upstream) would pass unseen: look at it.
if [ ${#stamped[@]} = 2 ] && ! "$out.tmp/bin/${stamped[0]}" --version 2>&1 | grep -qF "${stamped[1]}"; then
  "$out.tmp/bin/${stamped[0]}" --version >&2
  die "${stamped[0]} --version does not say \"${stamped[1]}\""
fi
# Go names a program after its package path's last element, "server" for etcd's (server/v3).
[ "$name" = etcd ] && mv "$out.tmp/bin/server" "$out.tmp/bin/etcd"
touch "$out.tmp/.built"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out/bin"
