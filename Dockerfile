# The poolwatch container image: the static (musl) poolwatch binary and the CA certificates on an
# empty base. Nothing is pulled from any registry; the binary is built first, outside, with the
# locked dependencies. `make image` does all of it with buildah or podman; with Docker:
#
#   cargo build --locked --release --target x86_64-unknown-linux-musl --bin poolwatch
#   mkdir -p target/image && cp /etc/ssl/certs/ca-certificates.crt target/image/
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t poolwatch .
#
# For arm64, build the binary for aarch64-unknown-linux-musl and pass --build-arg
# TARGET=aarch64-unknown-linux-musl --platform linux/arm64.

FROM scratch
ARG TARGET=x86_64-unknown-linux-musl
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=https://github.com/poolwatch/poolwatch
LABEL org.opencontainers.image.title="poolwatch" \
      org.opencontainers.image.description="Kubernetes operator for Huawei Cloud ModelArts resource-pool statistics" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY target/${TARGET}/release/poolwatch /usr/local/bin/poolwatch
# The system trust store the binary reads (rustls-platform-verifier looks here on Linux).
COPY target/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Numeric, so that the kubelet's runAsNonRoot can verify it without an /etc/passwd.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/poolwatch"]
CMD ["run"]
