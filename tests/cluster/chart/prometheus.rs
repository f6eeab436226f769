//! A real Prometheus (`tests/go/prometheus`) scraping a running operator the way the chart's
//! ServiceMonitor tells prometheus-operator to, with the shipped rules loaded: the failed-pools
//! alert fires and resolves, a deleted watch's series go stale, and every query of the shipped
//! dashboard returns data.
//!
//! The alerts' timing (each `for:` of minutes) is proven by promtool's unit tests
//! (`make alerts-check`); here Prometheus loads the rules twice: verbatim, which can only reach
//! `pending` in a test of seconds, and a copy whose every `for:` is [`FAST_FOR`], which fires and
//! resolves while the test watches.

use std::sync::Mutex;

use super::*;
use crate::support::metrics_reader::reader_token;
use crate::support::operator::eventually;
use crate::support::prometheus::{Prometheus, rule_file_of};
use crate::support::simulator::PROJECT;
use poolwatch::simulator::{SimulatedCounts, SimulatedPool};

/// The release whose ServiceMonitor is rendered, and its namespace: the target labels
/// prometheus-operator attaches name them, not the watches' namespace.
const RELEASE: &str = "poolwatch";
const RELEASE_NAMESPACE: &str = "monitoring";
/// The scrape interval and timeout (the chart's defaults are 30s and 10s) and the rules'
/// evaluation interval: short, so that the test takes seconds, and a scrape may still take 2 s
/// on loaded cores (a failed scrape marks every series stale and restarts each `for:`).
const SCRAPE: &str = "2s";
const EVALUATION: &str = "1s";
/// The `for:` of every rule in the fast copy.
const FAST_FOR: &str = "3s";
/// The rule files, as Prometheus' rules API names them.
const VERBATIM_RULES: &str = "poolwatch-alerts.rules.yaml";
const FAST_RULES: &str = "poolwatch-alerts-fast.rules.yaml";
/// The label that sets the fast copy's alerts apart from the verbatim ones.
const COPY_LABEL: &str = "rules_copy";
/// How long a change at the simulator may take to reach Prometheus' rules: a refresh, a poll,
/// a status write, a scrape, an evaluation (and a few seconds of `for:`), on 2 loaded cores.
const THROUGH_PROMETHEUS: Duration = Duration::from_secs(90);

/// An operator serving `/metrics` as the chart does by default (HTTPS, self-signed, every
/// reader's token reviewed), and a Prometheus scraping it with the shipped rules loaded.
struct Monitored {
    // Prometheus first: dropped (killed) before the operator it scrapes.
    prometheus: Prometheus,
    world: World,
}

impl Monitored {
    async fn start(test: &str, operator_flags: &[&str]) -> Self {
        let mut flags = vec!["--metrics-secure=true"];
        flags.extend_from_slice(operator_flags);
        let world = World::new(test)
            .await
            .with_credentials()
            .await
            .start_operator(&flags);
        let operator = world.operator();
        let address = operator
            .metrics_url
            .trim_start_matches("https://")
            .trim_end_matches("/metrics")
            .to_owned();
        let token = reader_token(&world.plane().kubeconfig);
        let config = json!({
            "global": {"scrape_interval": SCRAPE, "evaluation_interval": EVALUATION},
            "rule_files": [VERBATIM_RULES, FAST_RULES],
            "scrape_configs": [scrape_job_of_service_monitor(&address, "reader.token")],
        });
        let verbatim = rule_file_of(&read("deploy/prometheus/poolwatch-alerts.yaml"));
        let files = [
            (VERBATIM_RULES, verbatim.to_string()),
            (FAST_RULES, fast_copy(&verbatim).to_string()),
            ("reader.token", token),
        ];
        let prometheus = Prometheus::start(test, &config, &files).await;
        let monitored = Self { prometheus, world };
        monitored.wait_scraped().await;
        monitored
    }

    /// Waits until the target is up: the token and TLS settings work.
    async fn wait_scraped(&self) {
        let last = Mutex::new(Value::Null);
        let found = tokio::time::timeout(THROUGH_PROMETHEUS, async {
            loop {
                let targets = self.prometheus.active_targets().await;
                if targets.iter().any(|t| t["health"] == "up") {
                    return targets;
                }
                *last.lock().unwrap() = json!(targets);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        let targets = found.unwrap_or_else(|_| {
            panic!(
                "Prometheus never scraped the operator; its targets: {:#}",
                last.lock().unwrap()
            )
        });
        assert_eq!(targets.len(), 1, "{targets:#?}");
    }

    /// Waits until `expr` returns a series, returning what it returns.
    async fn wait_for_series(&self, what: &str, expr: &str) -> Vec<Value> {
        eventually(what, THROUGH_PROMETHEUS, || async {
            let result = self.prometheus.query(expr).await;
            (!result.is_empty()).then_some(result)
        })
        .await
    }

    /// The state of alert `alert` in each rule file: `inactive`, `pending` or `firing`.
    async fn alert_states(&self, alert: &str) -> BTreeMap<String, String> {
        self.prometheus
            .alerting_rules(alert)
            .await
            .into_iter()
            .map(|(file, rule)| (file, rule["state"].as_str().unwrap_or("?").to_owned()))
            .collect()
    }

    /// Waits until alert `alert` is in `verbatim` state in the verbatim rules and in `fast`
    /// state in the fast copy.
    async fn wait_for_alert(&self, alert: &str, verbatim: &str, fast: &str) {
        let expected = BTreeMap::from([
            (VERBATIM_RULES.to_owned(), verbatim.to_owned()),
            (FAST_RULES.to_owned(), fast.to_owned()),
        ]);
        let last = Mutex::new(BTreeMap::new());
        let reached = tokio::time::timeout(THROUGH_PROMETHEUS, async {
            loop {
                let states = self.alert_states(alert).await;
                if states == expected {
                    return;
                }
                *last.lock().unwrap() = states;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if reached.is_err() {
            panic!(
                "{alert}: expected {expected:?}, still {:?} after {THROUGH_PROMETHEUS:?}",
                last.lock().unwrap()
            );
        }
    }

    /// Asks the operator to poll watch `name` now.
    async fn refresh(&self, name: &str) {
        let token = format!("{}", fastrand::u64(..));
        request_refresh(&self.world.watches, name, &token).await;
    }
}

/// The scrape job prometheus-operator generates from the chart's ServiceMonitor (its default
/// values), for one pod of the release whose metrics port is at `address`, with `token_file`
/// holding the scraper's ServiceAccount token. Kubernetes service discovery is replaced by a
/// static target carrying the labels prometheus-operator's relabelling gives each target; the
/// rest is the endpoint's own settings, field by field. A field this translation does not know
/// fails the test, so that a change to the ServiceMonitor cannot go untested.
fn scrape_job_of_service_monitor(address: &str, token_file: &str) -> Value {
    let documents = render(
        RELEASE,
        RELEASE_NAMESPACE,
        &["metrics.serviceMonitor.enabled=true"],
    )
    .expect("the chart renders with its ServiceMonitor");
    let monitor = one(&documents, "ServiceMonitor");
    let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1, "{monitor:#}");
    let endpoint = &endpoints[0];
    let known = [
        "port",
        "path",
        "scheme",
        "honorLabels",
        "bearerTokenFile",
        "tlsConfig",
        "interval",
        "scrapeTimeout",
    ];
    for field in endpoint.as_object().expect("an endpoint").keys() {
        assert!(
            known.contains(&field.as_str()),
            "the scrape job does not translate the ServiceMonitor's `{field}`: {endpoint:#}"
        );
    }
    // Prometheus' own ServiceAccount token, which the chart's metrics-reader role must be bound
    // to: here a test ServiceAccount's token so bound.
    assert_eq!(
        endpoint["bearerTokenFile"], "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "{endpoint:#}"
    );
    // The operator's self-signed certificate: the chart's default.
    assert_eq!(
        endpoint["tlsConfig"],
        json!({"insecureSkipVerify": true}),
        "{endpoint:#}"
    );
    let port = endpoint["port"].as_str().expect("a port name");
    let service = of_kind(&documents, "Service")
        .into_iter()
        .find(|s| {
            s["spec"]["ports"]
                .as_array()
                .is_some_and(|ports| ports.iter().any(|p| p["name"] == port))
        })
        .unwrap_or_else(|| panic!("a Service with port {port}"));
    let service_name = service["metadata"]["name"].as_str().expect("a name");
    json!({
        "job_name": format!(
            "serviceMonitor/{RELEASE_NAMESPACE}/{}/0",
            monitor["metadata"]["name"].as_str().expect("a name")
        ),
        "honor_labels": endpoint["honorLabels"].as_bool().unwrap_or(false),
        "scheme": endpoint["scheme"],
        "metrics_path": endpoint["path"],
        // The endpoint's interval and scrapeTimeout, shortened for the test.
        "scrape_interval": SCRAPE,
        "scrape_timeout": SCRAPE,
        "authorization": {"type": "Bearer", "credentials_file": token_file},
        "tls_config": {"insecure_skip_verify": true},
        "static_configs": [{
            "targets": [address],
            "labels": {
                "namespace": RELEASE_NAMESPACE,
                "service": service_name,
                "endpoint": port,
                "pod": format!("{RELEASE}-0"),
                "container": "poolwatch",
                "job": service_name,
            },
        }],
    })
}

/// The rules with every `for:` set to [`FAST_FOR`] and a label saying so.
fn fast_copy(rules: &Value) -> Value {
    let mut copy = rules.clone();
    for group in copy["groups"].as_array_mut().expect("groups") {
        for rule in group["rules"].as_array_mut().expect("rules") {
            assert!(rule["for"].is_string(), "{rule}");
            rule["for"] = json!(FAST_FOR);
            rule["labels"][COPY_LABEL] = json!("fast");
        }
    }
    copy
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_fires_the_failed_pools_alert_while_the_simulator_reports_failed_pools() {
    let monitored = Monitored::start("prometheus-failed-pools", &[]).await;
    let world = &monitored.world;
    let namespace = world.namespace.name.clone();
    world
        .simulator
        .set_counts(PROJECT, "failing", SimulatedCounts::new(0, 3, 0, 0, 0));
    world.create_watch("pools", "failing", "creds").await;

    // Stored with the watch's own namespace: the ServiceMonitor honours the operator's labels,
    // else Prometheus renames them `exported_namespace` and puts the release's in their place,
    // and the alerts and the dashboard would speak of the operator's namespace.
    let series = monitored
        .wait_for_series(
            "the watch's failed count in Prometheus",
            r#"poolwatch_pools{state="failed", name="pools"}"#,
        )
        .await;
    let labels = &series[0]["metric"];
    assert_eq!(labels["namespace"], namespace.as_str(), "{labels}");
    assert!(labels["exported_namespace"].is_null(), "{labels}");
    assert_eq!(labels["pod"], format!("{RELEASE}-0"), "{labels}");
    assert_eq!(series[0]["value"][1], "0", "{series:?}");
    monitored
        .wait_for_alert("ModelArtsPoolsFailed", "inactive", "inactive")
        .await;

    // Two pools fail: the fast copy fires; the shipped rule, with its `for: 10m`, is pending.
    world
        .simulator
        .set_counts(PROJECT, "failing", SimulatedCounts::new(0, 3, 2, 0, 0));
    monitored.refresh("pools").await;
    monitored
        .wait_for_alert("ModelArtsPoolsFailed", "pending", "firing")
        .await;
    let firing = monitored
        .prometheus
        .query(r#"ALERTS{alertname="ModelArtsPoolsFailed", alertstate="firing"}"#)
        .await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    let labels = &firing[0]["metric"];
    assert_eq!(labels["namespace"], namespace.as_str(), "{labels}");
    assert_eq!(labels["name"], "pools", "{labels}");
    assert_eq!(labels[COPY_LABEL], "fast", "{labels}");
    assert_eq!(labels["severity"], "warning", "{labels}");

    // They clear: both resolve.
    world
        .simulator
        .set_counts(PROJECT, "failing", SimulatedCounts::new(0, 3, 0, 0, 0));
    monitored.refresh("pools").await;
    monitored
        .wait_for_alert("ModelArtsPoolsFailed", "inactive", "inactive")
        .await;
    let active = monitored
        .prometheus
        .query(r#"ALERTS{alertname="ModelArtsPoolsFailed"}"#)
        .await;
    assert!(active.is_empty(), "{active:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_watchs_series_go_stale_in_prometheus() {
    let monitored = Monitored::start("prometheus-stale", &[]).await;
    let world = &monitored.world;
    let namespace = world.namespace.name.clone();
    for name in ["kept", "deleted"] {
        world.create_watch(name, "0", "creds").await;
    }
    let of = |name: &str| {
        format!(r#"{{__name__=~"poolwatch_.+", namespace="{namespace}", name="{name}"}}"#)
    };
    for name in ["kept", "deleted"] {
        monitored
            .wait_for_series(&format!("the series of {name}"), &of(name))
            .await;
    }
    let before = monitored.prometheus.query(&of("deleted")).await;

    world
        .watches
        .delete("deleted", &Default::default())
        .await
        .expect("delete the watch");
    // Gone from an instant query at once (a stale marker from the first scrape without them),
    // not after the 5 minutes of lookback a series that merely stops has.
    eventually(
        "the deleted watch's series to go stale",
        THROUGH_PROMETHEUS,
        || async {
            monitored
                .prometheus
                .query(&of("deleted"))
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let kept = monitored.prometheus.query(&of("kept")).await;
    assert!(!kept.is_empty(), "the other watch's series went too");
    // They were there: stored, and now ended.
    let stored = monitored
        .prometheus
        .query(&format!("count_over_time({}[5m])", of("deleted")))
        .await;
    assert_eq!(stored.len(), before.len(), "{stored:?}");
}

/// Grafana's variables as the dashboard has them: `$namespace` one namespace selected (a
/// multi-value variable, matched with `=~`), `$watch` "All" (its `allValue`, `.*`), and
/// `$__rate_interval` 1m: Grafana makes it at least four scrape intervals; 1m holds two polls
/// of a watch (every 30s), so that the rates have something to say.
fn grafana_interpolated(expr: &str, namespace: &str) -> String {
    let expr = expr
        .replace("$namespace", namespace)
        .replace("$watch", ".*")
        .replace("$__rate_interval", "1m");
    assert!(!expr.contains('$'), "a variable left in {expr}");
    expr
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_returns_data_from_prometheus() {
    // A budget of one call per second, so that some polls wait for it.
    let monitored = Monitored::start(
        "prometheus-dashboard",
        &["--upstream-rate", "1", "--upstream-burst", "1"],
    )
    .await;
    let world = &monitored.world;
    let namespace = world.namespace.name.clone();
    let abnormal = SimulatedPool::running("pool-a", "modelarts.vm.cpu.8u", 2)
        .in_phase("Abnormal", "a node is down");
    let running = SimulatedPool::running("pool-b", "modelarts.vm.cpu.8u", 1);
    assert!(
        world
            .simulator
            .set_pools(PROJECT, "0", vec![abnormal, running])
    );
    world
        .create_watch_with("details", "0", "creds", json!({"poolDetails": true}))
        .await;
    world.create_watch("counts", "ws-partial", "creds").await;
    for name in ["details", "counts"] {
        world.ready(name).await;
    }
    monitored
        .wait_for_series(
            "the watches' series in Prometheus",
            &format!(r#"poolwatch_pool_phase{{namespace="{namespace}"}}"#),
        )
        .await;
    // A second poll of each inside the rate window.
    for name in ["details", "counts"] {
        monitored.refresh(name).await;
    }

    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/poolwatch-dashboard.json")).expect("JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            let expr = target["expr"].as_str().expect("an expr");
            queries.push((title, grafana_interpolated(expr, &namespace)));
        }
    }
    assert!(queries.len() >= 20, "{queries:?}");
    for (title, expr) in &queries {
        let result = eventually(
            &format!("panel {title}: {expr} to return a number"),
            THROUGH_PROMETHEUS,
            || async {
                let result = monitored.prometheus.query(expr).await;
                let numbers = result
                    .iter()
                    .any(|s| s["value"][1].as_str().is_some_and(|v| v != "NaN"));
                numbers.then_some(result)
            },
        )
        .await;
        eprintln!("{title}: {expr} -> {} series", result.len());
    }

    // The variables' queries: Grafana's label_values(selector, label) is the label values API.
    let namespaces = monitored
        .prometheus
        .label_values("namespace", "poolwatch_condition")
        .await;
    assert_eq!(namespaces, std::slice::from_ref(&namespace));
    let mut watches = monitored
        .prometheus
        .label_values(
            "name",
            &format!(r#"poolwatch_condition{{namespace=~"{namespace}"}}"#),
        )
        .await;
    watches.sort();
    assert_eq!(watches, ["counts", "details"]);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["definition"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        variables,
        [
            "label_values(poolwatch_condition, namespace)",
            r#"label_values(poolwatch_condition{namespace=~"$namespace"}, name)"#,
        ],
        "the variables this test reads"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_that_cannot_start_fails_the_test_with_its_own_last_lines() {
    let config = json!({"global": {"scrape_interval": "every-now-and-then"}});
    let started = tokio::spawn(async move {
        Prometheus::start("prometheus-bad-config", &config, &[]).await;
    })
    .await;
    let panic = started
        .expect_err("Prometheus started with a bad configuration")
        .into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("exited before it was ready"), "{message}");
    assert!(message.contains("every-now-and-then"), "{message}");
}
