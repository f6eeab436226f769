//! `poolwatch run`: the operator.
//!
//! - [`wiring`] builds the clients, the controllers, leader election and the HTTP endpoints
//!   ([`endpoints`]: `/metrics`, `/healthz`, `/readyz`; [`metrics_auth`] checks who reads
//!   `/metrics`, [`metrics_tls`] holds its certificate), with logging from [`telemetry`].
//! - [`reconciler`] reconciles one watch, holding its [`memory`] and the shared [`context`]: it
//!   asks the pure decisions of [`schedule`] (when to poll) and [`status`] (what to show, with
//!   [`pool_details`] for the per-pool part), and
//!   [`poll`]s through [`target`] (what a spec names), [`secrets`] (the credentials) and
//!   [`upstream`] (the call budget and shared calls).
//! - Every failure of a poll is a [`failure::Failure`]; every reason word is in [`reasons`] (or
//!   is the ModelArts client's classification); [`metrics`] exports what happened.
//!
//! Only the reconciler, the secrets reader and the wiring talk to Kubernetes; none of it builds
//! an HTTP request to ModelArts, which is the `modelarts` client's job.

pub(crate) mod audiences;
pub(crate) mod background;
pub(crate) mod context;
pub(crate) mod credentials;
pub(crate) mod endpoints;
pub(crate) mod failure;
pub(crate) mod fairness;
pub(crate) mod keyless;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod metrics_auth;
pub(crate) mod metrics_tls;
pub(crate) mod poll;
pub(crate) mod pool_details;
pub(crate) mod reads;
pub(crate) mod reasons;
pub(crate) mod reconciler;
pub(crate) mod schedule;
pub(crate) mod secrets;
pub(crate) mod status;
pub mod target;
pub(crate) mod telemetry;
#[cfg(test)]
pub(crate) mod testing;
pub mod trust;
pub(crate) mod upstream;
pub(crate) mod users;
pub(crate) mod wiring;

pub use telemetry::LoggingError;
pub use wiring::{RunArgs, StartupError, run};
