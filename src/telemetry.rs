//! Structured logs: text for people, JSON lines for log pipelines. Every line logged during a
//! reconcile carries the watch's namespace and name through the reconcile span.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the current span's fields.
    Json,
}

/// Installs the global subscriber. `filter` uses the `RUST_LOG` syntax (`info`,
/// `poolwatch=debug,kube=warn`, …).
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| {
        format!("--log-level {filter:?} is not a valid filter ({e}): try info or poolwatch=debug")
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
    };
    result.map_err(|e| format!("could not install the logger: {e}"))
}
