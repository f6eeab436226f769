//! The operator's own HTTP endpoints: `/metrics` for Prometheus (readers checked by
//! [`metrics_auth`](super::metrics_auth), over HTTPS unless turned off), and `/healthz` and
//! `/readyz` for the kubelet's probes, each on its own address as controller-runtime operators do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;

use super::metrics::render;
use super::metrics_auth::{METRICS_PATH, Readers, require_reader};
use crate::https::TlsListener;

/// Whether the operator is ready: the Kubernetes API server answered its latest check.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the operator ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the operator is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// An address the operator could not listen on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} ({flag}): {source}")]
pub struct BindError {
    /// The flag that gave the address.
    pub flag: &'static str,
    /// The address.
    pub address: SocketAddr,
    /// What the system said.
    pub source: std::io::Error,
}

/// Binds `address`, failing with an error that names the flag.
pub async fn bind(address: SocketAddr, flag: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| BindError {
            flag,
            address,
            source,
        })
}

/// `/metrics`, bound and with its TLS configuration, waiting for a client to review its readers.
pub struct MetricsEndpoint {
    /// Where it listens.
    pub listener: TcpListener,
    /// What it serves.
    pub registry: Arc<Registry>,
    /// HTTPS with this configuration; plain HTTP without.
    pub tls: Option<Arc<ServerConfig>>,
}

impl MetricsEndpoint {
    /// Serves `/metrics` to the callers `readers` allows until the process ends.
    pub async fn serve(self, readers: Arc<Readers>) -> std::io::Result<()> {
        let app = Router::new()
            .route(METRICS_PATH, get(metrics))
            .route_layer(middleware::from_fn_with_state(readers, require_reader))
            .with_state(self.registry);
        match self.tls {
            Some(config) => axum::serve(TlsListener::new(self.listener, config)?, app).await,
            None => axum::serve(self.listener, app).await,
        }
    }
}

/// Serves `/healthz` (alive) and `/readyz` (ready) until the process ends.
pub async fn serve_probes(listener: TcpListener, readiness: Readiness) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(readiness);
    axum::serve(listener, app).await
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&registry),
    )
}

async fn ready(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the Kubernetes API server does not answer",
        )
    }
}
