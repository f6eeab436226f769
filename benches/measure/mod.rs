//! Measurement helpers shared by the benchmarks (`make bench`, `make bench-peers`): everything is
//! read from outside the measured process: `/proc` for CPU time and memory, the API server's
//! audit log for requests, Prometheus text for histograms.

#![allow(dead_code)] // each bench uses a different part of this module

pub mod fleet;

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Clock ticks per second of `/proc/PID/stat`'s times (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// An unsigned setting from the environment, or `default` when unset or not a number.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How long to wait after all objects are ready, and how long to measure then.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Wait after all are ready before measuring: at least one interval, so that every object's
    /// first scheduled refresh falls before the window.
    pub settle: Duration,
    /// The steady-state window.
    pub steady: Duration,
}

impl Timing {
    /// `SETTLE_SECONDS` (default 35: one 30 s interval and some slack) and `STEADY_SECONDS`
    /// (default 90: three intervals).
    pub fn from_env() -> Self {
        Self {
            settle: Duration::from_secs(setting("SETTLE_SECONDS", 35)),
            steady: Duration::from_secs(setting("STEADY_SECONDS", 90)),
        }
    }
}

/// Rounds to two decimals, for tables that stay readable.
pub fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// User plus system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Peak (`VmHWM`) and current (`VmRSS`) resident memory of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU use of one process over a window, as a share of one core in percent.
pub struct CpuWindow {
    pid: u32,
    ticks: u64,
    started: std::time::Instant,
}

impl CpuWindow {
    /// Starts the window now.
    pub fn start(pid: u32) -> Self {
        Self {
            pid,
            ticks: cpu_ticks(pid),
            started: std::time::Instant::now(),
        }
    }

    /// Ends the window: its length and the CPU share (percent of one core) in it.
    pub fn finish(self) -> (Duration, f64) {
        let ticks = cpu_ticks(self.pid) - self.ticks;
        let window = self.started.elapsed();
        let percent = ticks as f64 / TICKS_PER_SECOND / window.as_secs_f64() * 100.0;
        (window, percent)
    }
}

/// The current length of the audit log: a mark to read the requests logged after it.
pub fn audit_offset(audit_log: &Path) -> u64 {
    std::fs::metadata(audit_log)
        .unwrap_or_else(|e| panic!("reading {}: {e}", audit_log.display()))
        .len()
}

/// The audit events logged between two marks of [`audit_offset`] (a line being written at the
/// end is skipped; a line cut at the start is not JSON and is skipped too).
pub fn audit_events_between(audit_log: &Path, from: u64, to: u64) -> Vec<Value> {
    let mut file = std::fs::File::open(audit_log)
        .unwrap_or_else(|e| panic!("reading {}: {e}", audit_log.display()));
    file.seek(SeekFrom::Start(from))
        .expect("seek the audit log");
    let mut reader = BufReader::new(file);
    let mut events = Vec::new();
    let mut read = from;
    let mut line = String::new();
    while read < to {
        line.clear();
        let n = reader.read_line(&mut line).expect("read the audit log");
        if n == 0 {
            break;
        }
        read += n as u64;
        if let Ok(event) = serde_json::from_str(&line) {
            events.push(event);
        }
    }
    events
}

/// Requests to the API server by one client, as the audit log tells them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct RequestCounts {
    /// Every request, any verb (watches included), counted once each.
    pub requests: usize,
    /// Writes: `create`, `update` and `patch`, subresources (`/status`) included.
    pub writes: usize,
}

/// Counts the requests among `events` whose User-Agent starts with `agent_prefix`. A request
/// can have two events (a watch logs `ResponseStarted`, then `ResponseComplete`): each
/// `auditID` counts once.
pub fn count_requests(events: &[Value], agent_prefix: &str) -> RequestCounts {
    let mut seen = std::collections::HashSet::new();
    let mut counts = RequestCounts::default();
    for event in events {
        let agent = event["userAgent"].as_str().unwrap_or("");
        if !agent.starts_with(agent_prefix) {
            continue;
        }
        let id = event["auditID"].as_str().unwrap_or("").to_owned();
        if !seen.insert(id) {
            continue;
        }
        counts.requests += 1;
        if matches!(event["verb"].as_str(), Some("create" | "update" | "patch")) {
            counts.writes += 1;
        }
    }
    counts
}

/// The requests among `events` whose User-Agent starts with `agent_prefix`, counted once each by
/// `verb resource[/subresource]`: what a client spends its requests on.
pub fn requests_by_kind(
    events: &[Value],
    agent_prefix: &str,
) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::HashSet::new();
    let mut kinds = std::collections::BTreeMap::new();
    for event in events {
        let agent = event["userAgent"].as_str().unwrap_or("");
        let id = event["auditID"].as_str().unwrap_or("");
        if !agent.starts_with(agent_prefix) || !seen.insert(id.to_owned()) {
            continue;
        }
        let object = &event["objectRef"];
        let subresource = object["subresource"]
            .as_str()
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        // Requests that name no resource (`/readyz`, discovery) go by their path.
        let target = object["resource"].as_str().unwrap_or_else(|| {
            let uri = event["requestURI"].as_str().unwrap_or("?");
            uri.split('?').next().unwrap_or(uri)
        });
        let kind = format!(
            "{} {target}{subresource}",
            event["verb"].as_str().unwrap_or("?")
        );
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// A histogram's cumulative buckets `(upper bound, count)` from Prometheus text.
pub fn histogram(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"}")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of a cumulative histogram, interpolated within its bucket as Prometheus'
/// `histogram_quantile` does.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    if total == 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let width = count - lower.1;
            let fraction = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return lower.0 + (bound - lower.0) * fraction;
        }
        lower = (bound, count);
    }
    lower.0
}

/// Writes `contents` to `path` through a temporary file beside it and a rename, so that a reader
/// (or an interrupted run) never sees half a file.
pub fn write_atomically(path: &Path, contents: &str) {
    let temp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&temp, contents).unwrap_or_else(|e| panic!("writing {}: {e}", temp.display()));
    std::fs::rename(&temp, path)
        .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", temp.display(), path.display()));
}

/// Resolves when the process is asked to stop (SIGINT, as Ctrl-C sends, or SIGTERM); says which.
/// A benchmark races its run against this so that an interruption drops the run's future, and with
/// it every process the run started.
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = interrupt.recv() => "interrupted (SIGINT)",
        _ = terminate.recv() => "terminated (SIGTERM)",
    }
}
