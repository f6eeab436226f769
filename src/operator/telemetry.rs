//! Structured logs: text for people, JSON lines for log pipelines. Every line logged during a
//! reconcile carries the watch's namespace and name through the reconcile span, and no line is
//! longer than [`MAX_LINE_BYTES`].

use std::io::{self, Write};

use serde_json::Value;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::modelarts::bounded;

/// The longest log line written, newline included. What upstream sends is cut where it is
/// read (`modelarts::bounded`); this is the backstop for whatever a field may hold one day, so
/// that one line can never flood a log pipeline or the node's disk.
pub const MAX_LINE_BYTES: usize = 16 << 10;

/// How long a cut JSON line's string values may stay, tried in turn until the line fits.
const JSON_VALUE_BUDGETS: [usize; 4] = [4096, 1024, 256, 64];

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
    let stdout = move || CappedLines::new(io::stdout(), format);
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(stdout),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(stdout),
            )
            .try_init(),
    };
    result.map_err(|e| LoggingError::Install(e.to_string()))
}

/// A writer that passes each log line on, cut to [`MAX_LINE_BYTES`] when longer. The fmt layer
/// writes every line with a single `write_all`, so each `write` is one whole line.
pub struct CappedLines<W> {
    inner: W,
    format: LogFormat,
}

impl<W: Write> CappedLines<W> {
    /// Lines of `format` written to `inner`.
    pub fn new(inner: W, format: LogFormat) -> Self {
        Self { inner, format }
    }
}

impl<W: Write> Write for CappedLines<W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if line.len() <= MAX_LINE_BYTES {
            self.inner.write_all(line)?;
        } else {
            self.inner.write_all(&cap_line(line, self.format))?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `line` (longer than [`MAX_LINE_BYTES`]) made to fit. A JSON line stays one valid JSON object
/// with every field (in another order): its long string values are cut, shorter and shorter
/// until it fits (one too long even so becomes a note of its time, level and length). A text
/// line is cut at the end.
fn cap_line(line: &[u8], format: LogFormat) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if format == LogFormat::Json
        && let Ok(value) = serde_json::from_str::<Value>(text)
    {
        for budget in JSON_VALUE_BUDGETS {
            let mut cut = value.clone();
            cut_strings(&mut cut, budget);
            let mut out = serde_json::to_vec(&cut).unwrap_or_default();
            if !out.is_empty() && out.len() < MAX_LINE_BYTES {
                out.push(b'\n');
                return out;
            }
        }
        let mut out =
            serde_json::to_vec(&too_long_for_json(&value, text.len())).unwrap_or_default();
        out.push(b'\n');
        return out;
    }
    let room = MAX_LINE_BYTES - 1;
    let mut out = bounded::cut(text, room).into_owned().into_bytes();
    out.push(b'\n');
    out
}

/// Cuts every string in `value`, keys excepted, to `budget` bytes.
fn cut_strings(value: &mut Value, budget: usize) {
    match value {
        Value::String(s) if s.len() > budget => {
            *s = bounded::cut_owned(std::mem::take(s), budget);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, budget)),
        Value::Object(map) => map.values_mut().for_each(|v| cut_strings(v, budget)),
        _ => {}
    }
}

/// What is left of a JSON line too long even with every value cut short (thousands of fields):
/// its time and level, and a message saying so.
fn too_long_for_json(value: &Value, bytes: usize) -> Value {
    let mut kept = serde_json::Map::new();
    for key in ["timestamp", "level"] {
        if let Some(Value::String(s)) = value.get(key) {
            kept.insert(
                key.to_owned(),
                Value::String(bounded::cut_owned(s.clone(), 64)),
            );
        }
    }
    kept.insert(
        "message".to_owned(),
        Value::String(format!(
            "a log line of {bytes} bytes was dropped: longer than {MAX_LINE_BYTES} bytes even with its values cut"
        )),
    );
    Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// A writer into a shared buffer, for reading back what the logger wrote.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The lines a logger of `format` writes for one event with a 1 MB field and a 1 MB message.
    fn log_huge_event(format: LogFormat) -> Vec<String> {
        let buffer = Buffer::default();
        let writer = {
            let buffer = buffer.clone();
            move || CappedLines::new(buffer.clone(), format)
        };
        let huge = "é".repeat(500_000);
        let layer = tracing_subscriber::fmt::layer().with_ansi(false);
        let subscriber = tracing_subscriber::registry();
        match format {
            LogFormat::Text => tracing::subscriber::with_default(
                subscriber.with(layer.with_writer(writer)),
                || tracing::warn!(code = %huge, reason = "X", "poll failed: {huge}"),
            ),
            LogFormat::Json => tracing::subscriber::with_default(
                subscriber.with(layer.json().flatten_event(true).with_writer(writer)),
                || tracing::warn!(code = %huge, reason = "X", "poll failed: {huge}"),
            ),
        }
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_huge_json_line_stays_one_valid_object_with_every_field() {
        let lines = log_huge_event(LogFormat::Json);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.len() < MAX_LINE_BYTES, "{} bytes", line.len());
        let value: Value = serde_json::from_str(line).unwrap_or_default();
        assert_eq!(value["level"], "WARN");
        assert_eq!(value["reason"], "X");
        for field in ["code", "message"] {
            let text = value[field].as_str().unwrap_or_default();
            assert!(text.ends_with(bounded::MARKER), "{field}: {text}");
        }
        assert!(
            value["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("poll failed: é"))
        );
    }

    #[test]
    fn a_huge_text_line_is_cut_at_the_end() {
        let lines = log_huge_event(LogFormat::Text);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].len() < MAX_LINE_BYTES, "{} bytes", lines[0].len());
        assert!(lines[0].contains("poll failed: é"));
        assert!(lines[0].ends_with(bounded::MARKER));
    }

    #[test]
    fn short_lines_pass_unchanged_and_too_many_fields_leave_a_note() {
        let mut out = Vec::new();
        let line = b"{\"level\":\"INFO\",\"message\":\"hello\"}\n";
        CappedLines::new(&mut out, LogFormat::Json)
            .write_all(line)
            .unwrap_or_default();
        assert_eq!(out, line);

        let fields: serde_json::Map<String, Value> = (0..5000)
            .map(|i| (format!("field{i}"), Value::String("v".repeat(100))))
            .chain([("level".to_owned(), Value::String("WARN".to_owned()))])
            .collect();
        let line = serde_json::to_vec(&Value::Object(fields)).unwrap_or_default();
        let capped = cap_line(&line, LogFormat::Json);
        assert!(capped.len() <= MAX_LINE_BYTES);
        let value: Value = serde_json::from_slice(&capped).unwrap_or_default();
        assert_eq!(value["level"], "WARN");
        assert!(
            value["message"]
                .as_str()
                .is_some_and(|m| m.contains("dropped")),
            "{value}"
        );
    }
}
