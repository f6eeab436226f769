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

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `--log-level` is not a filter.
    #[error("--log-level {filter:?} is not a valid filter ({reason}): try info or poolwatch=debug")]
    InvalidFilter {
        /// What was given.
        filter: String,
        /// Why it is not a filter.
        reason: String,
    },
    /// A logger was installed already.
    #[error("could not install the logger: {0}")]
    Install(String),
}

/// Installs the global subscriber. `filter` uses the `RUST_LOG` syntax (`info`,
/// `poolwatch=debug,kube=warn`, …).
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let filter = EnvFilter::try_new(filter).map_err(|e| LoggingError::InvalidFilter {
        filter: filter.to_owned(),
        reason: e.to_string(),
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
    result.map_err(|e| LoggingError::Install(e.to_string()))
}
