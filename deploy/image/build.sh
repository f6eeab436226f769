#!/usr/bin/env bash
# Builds the poolwatch container image from the Dockerfile at the repository's root, with no base
# image from any registry: the static (musl) binary, built --locked --release, and the CA bundle,
# FROM scratch. Writes, under target/image/:
#   poolwatch-<version>.oci.tar     the image as an OCI archive (push it with skopeo or podman)
#   poolwatch-<version>.cdx.json    the binary's software bill of materials (CycloneDX)
# and prints the image's size and the build's time. Needs buildah or podman, musl-gcc (Debian:
# musl-tools), the CA bundle (ca-certificates) and rustup; SBOM: cargo-cyclonedx (CARGO_CYCLONEDX).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

say() { printf '[image] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

TARGET=${TARGET:-x86_64-unknown-linux-musl}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
CARGO_CYCLONEDX=${CARGO_CYCLONEDX:-cargo-cyclonedx}
OUT=target/image

builder=$(command -v buildah || command -v podman || true)
[ -n "$builder" ] ||
  die "make image needs buildah or podman: sudo apt-get install buildah (Fedora: sudo dnf install buildah)"
case $TARGET in
  x86_64-unknown-linux-musl) cc_var=CC_x86_64_unknown_linux_musl cc=${MUSL_CC:-musl-gcc} ;;
  aarch64-unknown-linux-musl) cc_var=CC_aarch64_unknown_linux_musl cc=${MUSL_CC:-aarch64-linux-musl-gcc} ;;
  *) die "TARGET must be x86_64-unknown-linux-musl or aarch64-unknown-linux-musl, not $TARGET" ;;
esac
command -v "$cc" >/dev/null ||
  die "the static build needs a C compiler for musl ($cc): sudo apt-get install musl-tools"
[ -f "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE: sudo apt-get install ca-certificates"
command -v "$CARGO_CYCLONEDX" >/dev/null ||
  die "the SBOM needs cargo-cyclonedx: cargo install --locked cargo-cyclonedx (or set CARGO_CYCLONEDX)"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
revision=${POOLWATCH_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
source_url=$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
archive=$OUT/poolwatch-$version.oci.tar
sbom=$OUT/poolwatch-$version.cdx.json
started=$(date +%s)

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
  say "adding the Rust target $TARGET"
  rustup target add "$TARGET" >&2
fi
say "building the static binary for $TARGET (release, locked)"
env "$cc_var=$cc" POOLWATCH_REVISION="$revision" \
  cargo build --locked --release --target "$TARGET" --bin poolwatch >&2
mkdir -p "$OUT"
cp "$CA_BUNDLE" "$OUT/ca-certificates.crt"

say "building the image with $(basename "$builder")"
tag=localhost/poolwatch:$version
"$builder" build --quiet --layers=false --tag "$tag" \
  --build-arg "TARGET=$TARGET" --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" --build-arg "SOURCE=$source_url" \
  --file Dockerfile . >/dev/null
rm -f "$archive"
case $(basename "$builder") in
  buildah) buildah push --quiet "$tag" "oci-archive:$archive:poolwatch:$version" >&2 ;;
  podman) podman save --quiet --format oci-archive --output "$archive" "$tag" ;;
esac

say "writing the SBOM"
"$CARGO_CYCLONEDX" cyclonedx --format json --describe binaries --target "$TARGET" --quiet
mv poolwatch_bin.cdx.json "$sbom"

size=$(du -k "$archive" | cut -f1)
say "image $tag: $archive ($((size / 1024)) MiB), SBOM $sbom, built in $(($(date +%s) - started)) s"
echo "$archive"
