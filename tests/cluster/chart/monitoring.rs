//! The shipped Grafana dashboard and Prometheus alerts.

use super::*;
use crate::support::series::exposed_series;

// ---------------------------------------------------------------------------------------------
// Dashboard and alerts: every series they use is one a running operator exposes.

/// The `poolwatch_*` names an expression uses.
fn series_in(expression: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = expression.as_bytes();
    let mut i = 0;
    while let Some(at) = expression[i..].find("poolwatch_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            found.insert(expression[start..end].to_owned());
        }
        i = end;
    }
    found
}

fn expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) => out.push(s.clone()),
                    _ => expressions(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_pools_failures_polls_and_latency_from_real_series_only() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/poolwatch-dashboard.json")).expect("valid JSON");
    let known = exposed_series().await;
    let mut used = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut titles = Vec::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().expect("a title").to_owned();
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title} shows nothing");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let series = series_in(expr);
            assert!(
                !series.is_empty(),
                "{title}: {expr} uses no poolwatch series"
            );
            for name in &series {
                assert!(
                    known.contains(name),
                    "{title}: unknown series {name} in {expr}"
                );
            }
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
            used.extend(series);
        }
        titles.push(title);
    }
    let mut variables = Vec::new();
    expressions(&dashboard["templating"], &mut variables);
    for expr in &variables {
        for name in series_in(expr) {
            assert!(known.contains(&name), "variable query uses unknown {name}");
        }
    }
    for needed in [
        "poolwatch_pools",
        "poolwatch_condition",
        "poolwatch_polls_total",
        "poolwatch_upstream_request_duration_seconds_bucket",
        "poolwatch_leader",
        "poolwatch_pool_phase",
        "poolwatch_pool_nodes",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    assert!(
        titles.iter().any(|t| t.contains("Failed pools")),
        "{titles:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_alerts_cover_failed_and_abnormal_pools_unready_watches_and_the_operator() {
    let rule: Value =
        serde_norway::from_str(&read("deploy/prometheus/poolwatch-alerts.yaml")).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let known = exposed_series().await;
    let mut alerts = BTreeMap::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"]
                .as_str()
                .expect("alerting rules only")
                .to_owned();
            let expr = rule["expr"].as_str().unwrap();
            for series in series_in(expr) {
                assert!(known.contains(&series), "{name}: unknown series {series}");
            }
            assert!(rule["for"].is_string(), "{name} has a `for`");
            assert!(
                ["warning", "critical"]
                    .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{name} has a severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name} has a summary"
            );
            assert!(
                rule["annotations"]["description"].is_string(),
                "{name} has a description"
            );
            alerts.insert(name, expr.to_owned());
        }
    }
    let uses = |needle: &str| alerts.values().any(|e| e.contains(needle));
    assert!(
        uses(r#"poolwatch_pools{state="failed"}"#),
        "failed pools: {alerts:?}"
    );
    assert!(
        uses(r#"poolwatch_condition{type="Ready"}"#),
        "a watch not Ready: {alerts:?}"
    );
    assert!(
        uses("absent(poolwatch_leader)"),
        "the operator down: {alerts:?}"
    );
    assert!(uses("sum(poolwatch_leader) < 1"), "no leader: {alerts:?}");
    assert!(
        uses(r#"poolwatch_pool_phase{phase=~"Abnormal|Error"}"#),
        "a pool Abnormal or in Error: {alerts:?}"
    );
    let fors: BTreeMap<String, String> = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| {
            Some((
                r["alert"].as_str()?.to_owned(),
                r["for"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(
        fors.get("PoolwatchPoolAbnormal").map(String::as_str),
        Some("10m"),
        "{fors:?}"
    );
}
