# syntax=docker/dockerfile:1
#
# The poolwatch container image: a static (musl) binary on distroless/static, which holds CA
# certificates, /etc/passwd with the `nonroot` user (65532) and tzdata: no shell, no package
# manager, no libc. Built with the locked dependencies (`--locked`).
#
#   docker build -t poolwatch:0.1.0 .
#
# Multi-arch: `docker buildx build --platform linux/amd64,linux/arm64 .` builds each natively
# (or emulated). The base images are pinned by tag; pin them by digest in your registry mirror
# (e.g. with Renovate) for reproducible builds.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_SUITE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS build
ARG TARGETARCH
# musl-tools: the C compiler for aws-lc-sys (rustls' crypto) against musl; cmake for its build.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools cmake make \
    && rm -rf /var/lib/apt/lists/*
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-musl > /rust-target ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
    && rustup target add "$(cat /rust-target)"
WORKDIR /src
# Dependencies first (a layer that changes only with Cargo.lock), then the sources.
# (Stub targets only so that cargo can read the manifest.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs && cp src/main.rs benches/scale.rs \
    && cargo fetch --locked --target "$(cat /rust-target)" \
    && rm -rf src benches
COPY . .
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --offline --bin poolwatch --target "$(cat /rust-target)" \
    && install -D -m 0755 "target/$(cat /rust-target)/release/poolwatch" /out/poolwatch

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="poolwatch" \
      org.opencontainers.image.description="Kubernetes operator for Huawei Cloud ModelArts resource-pool statistics" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/poolwatch /usr/local/bin/poolwatch
# The distroless `nonroot` user, numerically, so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/poolwatch"]
CMD ["run"]
