//! The real `poolwatch run` binary as a child process, aimed at the test control plane and
//! watching one test namespace, plus the waits the end-to-end tests need. Its metrics are read
//! as Prometheus would ([`metrics_reader`]).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use poolwatch::api::PoolStatisticsWatch;
use serde_json::json;

use super::control_plane::control_plane;
use super::daemon::Daemon;
use super::metrics_reader::{self, Trust};

/// A running operator. Stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Operator {
    process: Daemon,
    /// The URL of its metrics endpoint.
    pub metrics_url: String,
    /// How its metrics certificate is trusted.
    pub metrics_trust: Trust,
    /// The kubeconfig it runs with, on the control plane whose reader token reads its metrics.
    kubeconfig: std::path::PathBuf,
    /// Base URL of its probes.
    pub probes_url: String,
}

impl Operator {
    /// Starts `poolwatch run` for `namespace` with JSON logs; `extra` flags are appended. Unless
    /// they say otherwise (`--metrics-secure=false`, `--metrics-cert-dir`), `/metrics` is served
    /// over HTTPS with [`metrics_reader::test_cert_dir`]'s certificate.
    pub fn start(namespace: &str, extra: &[&str]) -> Self {
        Self::start_on(
            &control_plane().kubeconfig,
            namespace,
            "poolwatch=debug,info",
            extra,
        )
    }

    /// Starts `poolwatch run` for `namespace` against the API server of `kubeconfig`, logging
    /// at `log_level`.
    pub fn start_on(
        kubeconfig: &std::path::Path,
        namespace: &str,
        log_level: &str,
        extra: &[&str],
    ) -> Self {
        let mut flags = vec!["--watch-namespace", namespace];
        flags.extend_from_slice(extra);
        Self::start_with(kubeconfig, log_level, &flags)
    }

    /// Starts `poolwatch run` with `flags` only (no namespace: every namespace unless `flags`
    /// name some) against the API server of `kubeconfig`, logging at `log_level`.
    pub fn start_with(kubeconfig: &std::path::Path, log_level: &str, flags: &[&str]) -> Self {
        Self::start_logging_with_env(kubeconfig, log_level, flags, &[])
    }

    /// [`Operator::start_with`] at debug level with `env` set (CCE Pod Identity's variables,
    /// say).
    pub fn start_with_env(
        kubeconfig: &std::path::Path,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_logging_with_env(kubeconfig, "poolwatch=debug,info", flags, env)
    }

    fn start_logging_with_env(
        kubeconfig: &std::path::Path,
        log_level: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let (metrics, probes) = (free_address(), free_address());
        let mut args: Vec<String> = ["run", "--metrics-bind-address", &metrics]
            .into_iter()
            .chain(["--health-probe-bind-address", &probes])
            .chain(["--log-format", "json", "--log-level", log_level])
            .map(str::to_owned)
            .collect();
        if !flags
            .iter()
            .any(|f| f.starts_with("--metrics-secure") || f.starts_with("--metrics-cert-dir"))
        {
            let dir = &metrics_reader::test_cert_dir().0;
            args.push(format!("--metrics-cert-dir={}", dir.display()));
        }
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::spawn(kubeconfig, &args, &env, &metrics, &probes)
    }

    /// Starts the binary with exactly `args` and `env` (plus `KUBECONFIG`); `metrics` and
    /// `probes` are the addresses those arguments make it listen on.
    pub fn spawn(
        kubeconfig: &std::path::Path,
        args: &[String],
        env: &[(String, String)],
        metrics: &str,
        probes: &str,
    ) -> Self {
        // `POOLWATCH_BENCH_BINARY` runs another build (one with symbols, to profile a benchmark).
        let binary = std::env::var_os("POOLWATCH_BENCH_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_poolwatch").into());
        let mut command = Command::new(binary);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG");
        let process = Daemon::spawn("poolwatch", command);
        let metrics_trust = metrics_trust(args);
        Self {
            process,
            metrics_url: format!("{}://{metrics}/metrics", metrics_trust.scheme()),
            metrics_trust,
            kubeconfig: kubeconfig.to_path_buf(),
            probes_url: format!("http://{probes}"),
        }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.process.lines()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// Whether `holder` (a Lease's `holderIdentity`) names this replica: a replica's identity
    /// ends with its PID.
    pub fn is(&self, holder: &str) -> bool {
        holder.ends_with(&format!("-{}", self.pid()))
    }

    /// Text that only this replica's User-Agent (`poolwatch/<version> (<identity>)`) contains,
    /// in the audit log and at the simulator.
    pub fn agent_marker(&self) -> String {
        format!("-{})", self.pid())
    }

    /// How the process ended, once it has; its last log lines are then all in [`Operator::logs`].
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// Waits for the process to exit, up to `timeout`; returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        self.process.wait_exit(timeout)
    }

    /// Whether it holds the leader Lease, as its `poolwatch_leader` gauge says.
    pub async fn leads(&self) -> bool {
        self.metrics()
            .await
            .lines()
            .any(|line| line == "poolwatch_leader 1")
    }

    /// `GET` of a probe (`healthz`, `readyz`): its status code and body; `(0, why)` while
    /// nothing answers (the process is still starting, or gone).
    pub async fn probe(&self, path: &str) -> (u16, String) {
        match reqwest::get(format!("{}/{path}", self.probes_url)).await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(e) => (0, format!("/{path} does not answer: {e}")),
        }
    }

    /// The metrics page, read as a reader bound to the chart's metrics-reader ClusterRole.
    pub async fn metrics(&self) -> String {
        // A process just started may not listen yet: wait for it to, not for a fixed time.
        let deadline = std::time::Instant::now() + STARTUP;
        loop {
            match self.read_metrics().await {
                Ok((200, page)) => return page,
                Ok((code, body)) => panic!("the metrics endpoint answered {code}: {body}"),
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("the metrics endpoint does not answer: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `GET` of the metrics page as the chart's reader: its status code and body, or why nothing
    /// answered. The first call on a control plane sets the reader up (kubectl, blocking).
    pub async fn read_metrics(&self) -> Result<(u16, String), String> {
        let token = metrics_reader::reader_token(&self.kubeconfig);
        self.read_metrics_as(Some(&token)).await
    }

    /// `GET` of the metrics page with `token` (`None`: anonymous).
    pub async fn read_metrics_as(&self, token: Option<&str>) -> Result<(u16, String), String> {
        metrics_reader::get(&self.metrics_trust, &self.metrics_url, token).await
    }
}

/// How the metrics certificate of an operator started with `args` is trusted: plain HTTP with
/// `--metrics-secure=false`, the test CA with the test certificate directory, else (the chart's
/// default) its self-signed certificate.
fn metrics_trust(args: &[String]) -> Trust {
    // The last value of `flag`, as clap takes it.
    let value = |flag: &str| {
        args.iter()
            .enumerate()
            .filter_map(|(i, arg)| {
                let rest = arg.strip_prefix(flag)?;
                match rest.strip_prefix('=') {
                    Some(value) => Some(value.to_owned()),
                    None if rest.is_empty() => Some(args.get(i + 1).cloned().unwrap_or_default()),
                    None => None,
                }
            })
            .next_back()
    };
    let (test_dir, test_ca) = metrics_reader::test_cert_dir();
    if value("--metrics-secure").as_deref() == Some("false") {
        Trust::Plain
    } else if value("--metrics-cert-dir").is_some_and(|dir| Path::new(&dir) == test_dir) {
        Trust::Ca(test_ca.clone())
    } else {
        Trust::SelfSigned
    }
}

/// The leader Lease's name (`--leader-election-id`'s default).
pub const LEASE: &str = "poolwatch-leader";

/// The holder of the leader Lease in `namespace` as the API server has it: `None` before the
/// Lease exists, `Some("")` once released.
pub async fn lease_holder(client: &kube::Client, namespace: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt(LEASE)
        .await
        .unwrap_or_else(|e| panic!("reading Lease {namespace}/{LEASE}: {e}"))?;
    Some(
        lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default(),
    )
}

/// The flags of a replica that elects a leader through a Lease in `namespace` lasting `lease`.
pub fn leader_election_flags(namespace: &str, lease: &str) -> Vec<String> {
    [
        "--leader-elect",
        "--leader-election-namespace",
        namespace,
        "--leader-election-lease-duration",
        lease,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A loopback address with a port nobody listens on now.
pub fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").to_string()
}

/// How long a just-started operator may take to answer on its metrics port: a debug binary
/// starting beside 16 test threads (and, in the chart tests, several other operators) on two
/// busy cores once gave no answer within 20 s in a full `make test`.
pub const STARTUP: Duration = Duration::from_secs(60);

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the watch satisfies `condition`, returning it.
pub async fn wait_for_watch(
    api: &Api<PoolStatisticsWatch>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&PoolStatisticsWatch) -> bool,
) -> PoolStatisticsWatch {
    let mut last = None;
    let result = tokio::time::timeout(timeout, async {
        loop {
            if let Ok(watch) = api.get(name).await {
                if condition(&watch) {
                    return watch;
                }
                last = Some(watch);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    match result {
        Ok(watch) => watch,
        Err(_) => panic!(
            "timed out after {timeout:?} waiting for {name} to be {what}; last seen status: {:#?}",
            last.and_then(|w| w.status)
        ),
    }
}

/// The message of condition `type_`, or nothing.
pub fn condition_message(watch: &PoolStatisticsWatch, type_: &str) -> String {
    watch
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The status of condition `type_`, and its reason.
pub fn condition(watch: &PoolStatisticsWatch, type_: &str) -> Option<(String, String)> {
    watch
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether condition `type_` has `status` and `reason`.
pub fn has_condition(watch: &PoolStatisticsWatch, type_: &str, status: &str, reason: &str) -> bool {
    condition(watch, type_) == Some((status.to_owned(), reason.to_owned()))
}

/// Asks for a poll now through the refresh annotation.
pub async fn request_refresh(api: &Api<PoolStatisticsWatch>, name: &str, token: &str) {
    let patch = json!({"metadata": {"annotations": {"poolwatch.io/refresh-requested-at": token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the watch");
}
