//! A real Prometheus (`prometheus` of `tests/go/prometheus`, built once into the cache) as a child
//! process on a free loopback port, with its configuration, rule files and TSDB in a scratch
//! directory removed afterwards; and the reads of its HTTP API the tests wait on.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::control_plane::component_bin;
use super::daemon::Daemon;
use super::operator::free_address;
use super::scratch::Scratch;

/// How long Prometheus may take to load its configuration and TSDB and say it is ready.
const START: Duration = Duration::from_secs(60);

/// The folder of the built `prometheus` and `promtool` (built on first use; minutes cold).
pub fn binaries() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| component_bin("prometheus"))
}

/// The PrometheusRule's rule groups (`spec.groups`) as a plain Prometheus rule file, the form
/// `rule_files` loads.
pub fn rule_file_of(prometheus_rule: &str) -> Value {
    let rule: Value = serde_norway::from_str(prometheus_rule).expect("a PrometheusRule");
    assert_eq!(rule["kind"], "PrometheusRule", "{prometheus_rule}");
    serde_json::json!({"groups": rule["spec"]["groups"].clone()})
}

/// A running Prometheus. Killed, and its files removed, when dropped.
pub struct Prometheus {
    /// Stopped (TERM, then KILL) when dropped, before `dir` goes.
    process: Daemon,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    client: reqwest::Client,
    /// Configuration, rule files and TSDB; dropped after the process is gone.
    dir: Scratch,
}

impl Prometheus {
    /// Starts Prometheus with `config` (`prometheus.yml`) and `files` (name, contents) beside
    /// it, so that the configuration names them by relative path; waits until it is ready.
    pub async fn start(test: &str, config: &Value, files: &[(&str, String)]) -> Self {
        let dir = Scratch::new(&format!("prometheus-{test}"));
        let config_file = dir.file("prometheus.yml", &config.to_string());
        for (name, contents) in files {
            dir.file(name, contents);
        }
        let address = free_address();
        let mut command = Command::new(binaries().join("prometheus"));
        command
            .arg(format!("--config.file={config_file}"))
            .arg(format!("--storage.tsdb.path={}/data", dir.path()))
            .arg(format!("--web.listen-address={address}"))
            .current_dir(dir.path());
        let process = Daemon::spawn("prometheus", command);
        let mut prometheus = Self {
            process,
            url: format!("http://{address}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            dir,
        };
        prometheus.wait_ready().await;
        prometheus
    }

    /// Waits for `/-/ready`; fails with Prometheus' last lines if it exits or takes too long.
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if let Ok(response) = self
                .client
                .get(format!("{}/-/ready", self.url))
                .send()
                .await
                && response.status().is_success()
            {
                return;
            }
            let exited = self.process.exited().is_some();
            if exited || tokio::time::Instant::now() > deadline {
                let what = if exited {
                    "exited before it was ready".to_owned()
                } else {
                    format!("was not ready after {START:?}")
                };
                panic!(
                    "Prometheus {what}; its last lines:\n{}",
                    self.last_lines(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its last `n` log lines.
    pub fn last_lines(&self, n: usize) -> String {
        self.process.last_lines(n)
    }

    /// `GET /api/v1/<path>` with `query` parameters: its `data`, or why there is none.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let url = url::Url::parse_with_params(&format!("{}/api/v1/{path}", self.url), query)
            .map_err(|e| format!("{path}: {e}"))?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let body: Value = serde_json::from_str(&response.text().await.unwrap_or_default())
            .map_err(|e| format!("{path}: not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("{path} {query:?}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// The instant vector `expr` evaluates to now: one `{metric, value}` per series (an error
    /// fails the test: the expressions under test must parse).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self
            .api("query", &[("query", expr)])
            .await
            .unwrap_or_else(|e| panic!("querying {expr}: {e}"));
        match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![serde_json::json!({"metric": {}, "value": data["result"]})],
            other => panic!("{expr}: unexpected result type {other:?}: {data}"),
        }
    }

    /// The values of label `label` on series that `selector` matches.
    pub async fn label_values(&self, label: &str, selector: &str) -> Vec<String> {
        let data = self
            .api(&format!("label/{label}/values"), &[("match[]", selector)])
            .await
            .unwrap_or_else(|e| panic!("label values of {label} for {selector}: {e}"));
        serde_json::from_value(data).expect("a list of strings")
    }

    /// The alerting rules named `alert` Prometheus evaluates, with the rule file each comes from
    /// (`/api/v1/rules`: its state, `inactive`, `pending` or `firing`, and its active alerts).
    pub async fn alerting_rules(&self, alert: &str) -> Vec<(String, Value)> {
        let data = self
            .api("rules", &[("type", "alert")])
            .await
            .unwrap_or_else(|e| panic!("the rules: {e}"));
        let mut found = Vec::new();
        for group in data["groups"].as_array().into_iter().flatten() {
            let file = group["file"].as_str().unwrap_or_default();
            let file = file.rsplit('/').next().unwrap_or(file).to_owned();
            for rule in group["rules"].as_array().into_iter().flatten() {
                if rule["name"] == alert {
                    found.push((file.clone(), rule.clone()));
                }
            }
        }
        found
    }

    /// The scrape targets, as `/api/v1/targets` has them (`health`, `lastError`, `labels`).
    pub async fn active_targets(&self) -> Vec<Value> {
        let data = self
            .api("targets", &[("state", "active")])
            .await
            .unwrap_or_else(|e| panic!("the targets: {e}"));
        data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("Prometheus' last lines:\n{}", self.last_lines(20));
        }
    }
}
