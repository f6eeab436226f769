//! The Helm chart, the container image and the GitOps pieces: what the chart renders, that the
//! API server accepts it through install, upgrade and uninstall, that its RBAC is exactly what the
//! real operator uses (proven from the audit log), and that kstatus and the Argo CD health check
//! read real statuses as documented.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use std::time::Duration;

use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{Fault, FaultKind};
use serde::Deserialize;
use serde_json::{Value, json};
use support::control_plane::{
    ControlPlane, TestNamespace, control_plane, repo_path, run, summarise,
};
use support::faults::IsolatedControlPlane;
use support::gitops;
use support::operator::{Operator, has_condition, request_refresh, wait_for_watch};
use support::simulator::{AK, SK};
use support::world::{World, put_secret};

const CHART: &str = "charts/poolwatch";
/// Generous bound for things that happen "at once": a poll and a status write.
const SOON: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Rendering

/// `helm template` of the chart as release `release` in `namespace`, with `--set` values; the
/// documents parsed.
fn render(release: &str, namespace: &str, set: &[&str]) -> Result<Vec<Value>, String> {
    let mut command = control_plane().helm();
    command
        .args(["template", release])
        .arg(repo_path(CHART))
        .args(["--namespace", namespace]);
    for value in set {
        command.args(["--set", value]);
    }
    run(&mut command).map(|text| parse_documents(&text))
}

fn parse_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("helm renders YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "one {kind} expected, got {}", found.len());
    found[0]
}

fn container(documents: &[Value]) -> &Value {
    &one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(documents: &[Value]) -> Vec<String> {
    container(documents)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

fn chart_app_version() -> String {
    let chart: Value = serde_norway::from_str(&read("charts/poolwatch/Chart.yaml")).unwrap();
    chart["appVersion"].as_str().expect("appVersion").to_owned()
}

// ---------------------------------------------------------------------------------------------
// What the chart renders

#[test]
fn the_chart_ships_the_top_level_crds_and_deploy_files_byte_for_byte() {
    let top: BTreeSet<String> = std::fs::read_dir(repo_path("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let chart: BTreeSet<String> = std::fs::read_dir(repo_path("charts/poolwatch/crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        top, chart,
        "crds/ and the chart's crds/ hold different files"
    );
    for file in &top {
        assert!(
            read(&format!("crds/{file}")) == read(&format!("charts/poolwatch/crds/{file}")),
            "charts/poolwatch/crds/{file} differs from crds/{file}: copy it"
        );
    }
    for (deploy, chart) in [
        (
            "deploy/grafana/poolwatch-dashboard.json",
            "charts/poolwatch/files/grafana-dashboard.json",
        ),
        (
            "deploy/prometheus/poolwatch-alerts.yaml",
            "charts/poolwatch/files/prometheus-alerts.yaml",
        ),
    ] {
        assert!(
            read(deploy) == read(chart),
            "{chart} differs from {deploy}: copy it"
        );
    }
    assert_eq!(
        chart_app_version(),
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml's appVersion is the crate's version"
    );
}

#[test]
fn defaults_render_a_restricted_two_replica_leader_elected_operator() {
    let documents = render("poolwatch", "operators", &[]).unwrap();
    let deployment = one(&documents, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = container(&documents);
    assert_eq!(deployment["spec"]["replicas"], 2);

    // The image is pinned to the chart's appVersion.
    assert_eq!(
        container["image"],
        format!("ghcr.io/poolwatch/poolwatch:{}", chart_app_version())
    );
    let digest = "sha256:".to_owned() + &"ab".repeat(32);
    let pinned = render(
        "poolwatch",
        "operators",
        &[&format!("image.digest={digest}")],
    )
    .unwrap();
    assert_eq!(
        self::container(&pinned)["image"],
        format!("ghcr.io/poolwatch/poolwatch@{digest}")
    );

    // Restricted pod security.
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert!(pod_security["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(security["capabilities"].get("add").is_none());
    assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());

    // Requests, limits and probes.
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource} is set"
            );
        }
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let ports: BTreeMap<&str, u64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, BTreeMap::from([("metrics", 8080), ("probes", 8081)]));

    // Leader election in the release namespace, every namespace watched.
    let args = args(&documents);
    for expected in [
        "run",
        "--leader-elect",
        "--leader-election-namespace=operators",
        "--leader-election-id=poolwatch-leader",
        "--metrics-bind-address=0.0.0.0:8080",
        "--health-probe-bind-address=0.0.0.0:8081",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--watch-namespace")));
    assert_eq!(of_kind(&documents, "ClusterRole").len(), 1);
    assert_eq!(of_kind(&documents, "ClusterRoleBinding").len(), 1);
    assert_eq!(
        of_kind(&documents, "Role").len(),
        1,
        "only the Lease's Role"
    );

    // The metrics Service selects the pods; the PDB keeps one through drains.
    let service = one(&documents, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[key], value);
    }
    assert_eq!(
        one(&documents, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );

    // The optional objects are off by default.
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ConfigMap",
    ] {
        assert!(
            of_kind(&documents, kind).is_empty(),
            "{kind} rendered by default"
        );
    }
}

#[test]
fn namespaced_mode_renders_a_role_per_namespace_and_no_cluster_role() {
    let documents = render(
        "poolwatch",
        "operators",
        &["watchNamespaces={ml-team,ml-research}"],
    )
    .unwrap();
    assert!(of_kind(&documents, "ClusterRole").is_empty());
    assert!(of_kind(&documents, "ClusterRoleBinding").is_empty());
    let namespaces = |kind: &str| -> BTreeSet<String> {
        of_kind(&documents, kind)
            .iter()
            .filter(|o| {
                !o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-leader-election")
            })
            .map(|o| o["metadata"]["namespace"].as_str().unwrap().to_owned())
            .collect()
    };
    let watched = BTreeSet::from(["ml-team".to_owned(), "ml-research".to_owned()]);
    assert_eq!(namespaces("Role"), watched);
    assert_eq!(namespaces("RoleBinding"), watched);
    for binding in of_kind(&documents, "RoleBinding") {
        assert_eq!(binding["subjects"][0]["namespace"], "operators");
    }
    let args = args(&documents);
    assert!(
        args.contains(&"--watch-namespace=ml-team".to_owned()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--watch-namespace=ml-research".to_owned()),
        "{args:?}"
    );
}

#[test]
fn the_values_schema_rejects_wrong_values() {
    for (set, field) in [
        ("replicaCount=two", "replicaCount"),
        ("image.tag=latest", "tag"),
        ("image.digest=abc", "digest"),
        ("watchNamespaces=ml-team", "watchNamespaces"),
        ("watchNamespaces={ML_Team}", "watchNamespaces"),
        ("leaderElection.enabled=yes please", "enabled"),
        ("leaderElection.leaseDuration=soon", "leaseDuration"),
        ("operator.logFormat=yaml", "logFormat"),
        ("operator.upstreamRate=0", "upstreamRate"),
        ("metrics.port=70000", "port"),
        ("resources.limits=big", "limits"),
        ("replicas=2", "replicas"),
        ("metrics.serviceMonitor.enable=true", "enable"),
    ] {
        let error = render("poolwatch", "operators", &[set])
            .err()
            .unwrap_or_else(|| panic!("--set {set} was accepted"));
        assert!(
            error.contains("schema") && error.contains(field),
            "--set {set}: the error names the schema and {field}:\n{error}"
        );
    }
    for set in [
        "replicaCount=1",
        "image.tag=0.2.0-rc.1",
        "watchNamespaces={a,b-c}",
        "leaderElection.leaseDuration=1m30s",
        "podDisruptionBudget.maxUnavailable=50%",
    ] {
        render("poolwatch", "operators", &[set]).unwrap_or_else(|e| panic!("--set {set}: {e}"));
    }
}

#[test]
fn optional_objects_render_when_enabled_and_carry_the_shipped_dashboard_and_alerts() {
    let documents = render(
        "poolwatch",
        "operators",
        &[
            "metrics.serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "grafanaDashboard.enabled=true",
            "prometheusRule.enabled=true",
        ],
    )
    .unwrap();
    let monitor = one(&documents, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let service = one(&documents, "Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key], value);
    }
    let policy = one(&documents, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));

    let dashboard = one(&documents, "ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value =
        serde_json::from_str(&read("deploy/grafana/poolwatch-dashboard.json")).unwrap();
    let embedded: Value =
        serde_json::from_str(dashboard["data"]["poolwatch.json"].as_str().unwrap()).unwrap();
    assert_eq!(embedded, shipped);

    let rule = one(&documents, "PrometheusRule");
    let shipped: Value =
        serde_norway::from_str(&read("deploy/prometheus/poolwatch-alerts.yaml")).unwrap();
    assert_eq!(
        rule["spec"], shipped["spec"],
        "the chart's alerts are deploy/prometheus's"
    );
}

#[test]
fn notes_say_what_to_do_next() {
    let mut command = control_plane().helm();
    command
        .args(["install", "poolwatch", "--dry-run=client"])
        .arg(repo_path(CHART))
        .args(["--namespace", "operators"]);
    let output = run(&mut command).unwrap();
    for expected in [
        "create secret generic",
        "kind: PoolStatisticsWatch",
        "wait --for=condition=Ready",
        "kubectl apply --server-side -f",
        "get lease poolwatch-leader",
    ] {
        assert!(
            output.contains(expected),
            "NOTES.txt mentions {expected}:\n{output}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboard, alerts, image

/// Every series poolwatch exports (README "Metrics"), with the suffixes Prometheus gives them.
fn known_series() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    for gauge in [
        "poolwatch_pools",
        "poolwatch_last_success_timestamp_seconds",
        "poolwatch_condition",
        "poolwatch_leader",
    ] {
        known.insert(gauge.to_owned());
    }
    for counter in [
        "poolwatch_polls",
        "poolwatch_status_writes",
        "poolwatch_rate_limit_waits",
    ] {
        known.insert(format!("{counter}_total"));
    }
    for histogram in [
        "poolwatch_upstream_request_duration_seconds",
        "poolwatch_reconcile_duration_seconds",
    ] {
        for suffix in ["_bucket", "_count", "_sum"] {
            known.insert(format!("{histogram}{suffix}"));
        }
    }
    known
}

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

#[test]
fn the_dashboard_shows_pools_failures_polls_and_latency_from_real_series_only() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/poolwatch-dashboard.json")).expect("valid JSON");
    let known = known_series();
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

#[test]
fn the_example_alerts_cover_failed_pools_unready_watches_and_the_operator() {
    let rule: Value =
        serde_norway::from_str(&read("deploy/prometheus/poolwatch-alerts.yaml")).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let known = known_series();
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
}

#[test]
fn the_dockerfile_builds_a_locked_static_non_root_image_by_construction() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = instructions
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    for from in &froms {
        let image = from.split_whitespace().nth(1).unwrap();
        assert!(
            image.contains(':') || image.contains('@'),
            "{image} is pinned"
        );
        assert!(!image.ends_with(":latest"), "{image} is not latest");
    }
    assert!(froms[0].ends_with(" AS build"));
    assert!(
        froms[1] == "FROM gcr.io/distroless/static-debian12:nonroot",
        "distroless static (CA certificates, no shell, no libc): {}",
        froms[1]
    );
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("cargo fetch --locked"));
    assert!(
        dockerfile.contains("-unknown-linux-musl"),
        "a static binary"
    );
    let last_user = instructions
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER");
    assert_eq!(*last_user, "USER 65532:65532");
    let uid = |values: &str| -> Value {
        serde_norway::from_str::<Value>(values).unwrap()["securityContext"]["runAsUser"].clone()
    };
    assert_eq!(
        uid(&read("charts/poolwatch/values.yaml")),
        65532,
        "the chart runs the image's user"
    );
    assert!(instructions.last().unwrap().starts_with("CMD [\"run\"]"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/poolwatch\"]"));
    let ignore = read(".dockerignore");
    for excluded in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l == excluded),
            ".dockerignore leaves out {excluded}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Argo CD health check and kstatus

const HEALTH_KEY: &str = "resource.customizations.health.poolwatch.io_PoolStatisticsWatch: |";

fn sample(generation: i64, observed: Option<i64>, conditions: &[(&str, &str, &str)]) -> Value {
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(kind, status, reason)| {
            json!({"type": kind, "status": status, "reason": reason, "message": format!("{reason} message"),
                   "observedGeneration": observed, "lastTransitionTime": "2025-03-27T11:48:55Z"})
        })
        .collect();
    json!({
        "apiVersion": "poolwatch.io/v1alpha1",
        "kind": "PoolStatisticsWatch",
        "metadata": {"name": "pools", "namespace": "ml-team", "generation": generation},
        "spec": {"region": "cn-north-4", "credentialsSecretRef": {"name": "creds"}},
        "status": {"observedGeneration": observed, "conditions": conditions},
    })
}

/// Statuses the operator can write, and a few it never writes (no status, a null one), as kstatus
/// and Argo CD's own health evaluation read them.
#[test]
fn kstatus_and_argo_cd_read_sample_statuses() {
    let ready = [
        ("Ready", "True", "Synced"),
        ("Stalled", "False", "Synced"),
        ("Reconciling", "False", "Synced"),
    ];
    let mut suspended = sample(
        2,
        Some(2),
        &[
            ("Ready", "False", "Suspended"),
            ("Stalled", "False", "Suspended"),
        ],
    );
    suspended["spec"]["suspend"] = json!(true);
    let mut no_status = sample(1, None, &[]);
    no_status.as_object_mut().unwrap().remove("status");
    let mut null_status = sample(1, None, &[]);
    null_status["status"] = Value::Null;
    // (object, kstatus, Argo CD health, words Argo CD's message holds)
    let cases = [
        (sample(1, Some(1), &ready), "Current", "Healthy", "Synced"),
        (
            sample(2, Some(1), &ready),
            "InProgress",
            "Progressing",
            "generation 2",
        ),
        (
            sample(
                2,
                Some(2),
                &[
                    ("Ready", "True", "Synced"),
                    ("Reconciling", "True", "Progressing"),
                ],
            ),
            "InProgress",
            "Progressing",
            "Progressing",
        ),
        (
            sample(
                1,
                Some(1),
                &[
                    ("Ready", "True", "Throttled"),
                    ("Stalled", "False", "Throttled"),
                ],
            ),
            "Current",
            "Healthy",
            "Throttled",
        ),
        (
            sample(
                1,
                Some(1),
                &[
                    ("Ready", "False", "UpstreamUnavailable"),
                    ("Stalled", "False", "UpstreamUnavailable"),
                ],
            ),
            "InProgress",
            "Progressing",
            "UpstreamUnavailable",
        ),
        (
            sample(
                3,
                Some(3),
                &[
                    ("Ready", "False", "AuthenticationFailed"),
                    ("Stalled", "True", "AuthenticationFailed"),
                ],
            ),
            "Failed",
            "Degraded",
            "AuthenticationFailed: AuthenticationFailed message",
        ),
        (
            sample(
                1,
                Some(1),
                &[
                    ("Reconciling", "True", "Progressing"),
                    ("Ready", "Unknown", "Progressing"),
                ],
            ),
            "InProgress",
            "Progressing",
            "Progressing",
        ),
        (suspended, "InProgress", "Suspended", "spec.suspend"),
        // kstatus reads a custom resource without conditions as Current: nothing poolwatch
        // writes (its first write carries Reconciling), but Argo CD must not call it Healthy.
        (no_status, "Current", "Progressing", "first status"),
        (null_status, "Current", "Progressing", "first status"),
    ];
    let objects: Vec<Value> = cases.iter().map(|case| case.0.clone()).collect();
    for ((object, kstatus, health, words), reading) in cases.iter().zip(gitops::read_all(&objects))
    {
        assert_eq!(
            reading.kstatus.status, *kstatus,
            "kstatus of {object}: {reading:?}"
        );
        assert_eq!(
            reading.argocd.status, *health,
            "Argo CD health of {object}: {reading:?}"
        );
        assert!(
            reading.argocd.message.contains(words),
            "{:?} mentions {words:?}",
            reading.argocd.message
        );
    }
}

/// The text under the argocd-cm key in `document`, dedented.
fn embedded_health_script(document: &str) -> String {
    let mut lines = document
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(HEALTH_KEY));
    let key = lines
        .next()
        .unwrap_or_else(|| panic!("{HEALTH_KEY} is not in the document"));
    let key_indent = key.len() - key.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut text: String = body
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                ""
            } else {
                &l[indent..]
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
}

#[test]
fn the_argocd_cm_snippets_embed_the_tested_health_script() {
    let script = read(gitops::HEALTH_LUA);
    assert_eq!(
        embedded_health_script(&read("deploy/argocd/argocd-cm.yaml")),
        script
    );
    assert_eq!(
        embedded_health_script(&read("README.md")),
        script,
        "README's argocd-cm snippet"
    );
    let snippet: Value = serde_norway::from_str(&read("deploy/argocd/argocd-cm.yaml")).unwrap();
    assert_eq!(
        snippet["data"]["resource.customizations.health.poolwatch.io_PoolStatisticsWatch"],
        script.as_str()
    );
}

// ---------------------------------------------------------------------------------------------
// Against the control plane: a world with an operator

impl World {
    /// A watch of the simulator's project with no `workspaceId` (the default applies).
    async fn watch(&self, name: &str, secret: &str) {
        self.create_watch_with(name, "0", secret, json!({"workspaceId": null}))
            .await;
    }

    /// The watch as JSON, as GitOps tools read it.
    async fn object(&self, name: &str) -> Value {
        serde_json::to_value(self.watches.get(name).await.unwrap()).unwrap()
    }

    async fn until(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&PoolStatisticsWatch) -> bool,
    ) -> Value {
        let watch = wait_for_watch(&self.watches, name, what, SOON, check).await;
        serde_json::to_value(watch).unwrap()
    }
}

impl World {
    /// Reads the watch until `done` holds, checking that kstatus and Argo CD read every distinct
    /// status seen before then as `(kstatus, health)`; returns the final object. Panics if no
    /// status was seen before `done`, so the in-between state really was observed.
    async fn read_until(
        &self,
        name: &str,
        in_between: (&str, &str),
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut seen: Vec<Value> = Vec::new();
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let object = self.object(name).await;
            if done(&object) {
                assert!(
                    !seen.is_empty(),
                    "no status was seen before {name} was done"
                );
                return object;
            }
            if !object["status"].is_null() && seen.last() != Some(&object["status"]) {
                let reading = gitops::read(&object);
                assert_eq!(
                    (
                        reading.kstatus.status.as_str(),
                        reading.argocd.status.as_str()
                    ),
                    in_between,
                    "{object}"
                );
                seen.push(object["status"].clone());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never got done: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn synced_at(generation: i64) -> impl Fn(&Value) -> bool {
    move |object| {
        let watch: PoolStatisticsWatch = serde_json::from_value(object.clone()).unwrap();
        object["status"]["observedGeneration"] == generation
            && has_condition(&watch, "Ready", "True", "Synced")
            && has_condition(&watch, "Reconciling", "False", "Synced")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_statuses_read_as_kstatus_and_argo_cd_document() {
    let world = World::new("chart-kstatus").await;
    world.create_secret("creds", AK, SK).await;
    // A key the simulator does not know (the known key with a wrong secret would share the
    // other watch's recent answer: calls are shared per access key id).
    world
        .create_secret("refused", "TESTAKUNKNOWN0000001", "not-the-secret-key")
        .await;
    let _operator = Operator::start(&world.namespace.name, &[]);

    // Before the (slow) first poll answers → InProgress, Progressing; then Ready → Current, Healthy.
    world
        .simulator
        .inject(Fault::new(FaultKind::Latency { millis: 4000 }).times(1));
    world.watch("pools", "creds").await;
    let ready = world
        .read_until("pools", ("InProgress", "Progressing"), synced_at(1))
        .await;
    let reading = gitops::read(&ready);
    assert_eq!(reading.kstatus.status, "Current", "{ready}");
    assert_eq!(reading.argocd.status, "Healthy", "{ready}");

    // A new generation, until its (slow) poll answers → InProgress, Progressing; then Current.
    world
        .simulator
        .inject(Fault::new(FaultKind::Latency { millis: 4000 }).times(1));
    world
        .patch_spec("pools", json!({"workspaceId": "ws-partial"}))
        .await;
    let current = world
        .read_until("pools", ("InProgress", "Progressing"), synced_at(2))
        .await;
    assert_eq!(current["metadata"]["generation"], 2);
    let reading = gitops::read(&current);
    assert_eq!(reading.kstatus.status, "Current", "{current}");
    assert_eq!(reading.argocd.status, "Healthy", "{current}");

    // Refused keys → Failed (Stalled), Degraded.
    world.watch("refused", "refused").await;
    let refused = world
        .until("refused", "Stalled", |w| {
            has_condition(w, "Stalled", "True", "AuthenticationFailed")
        })
        .await;
    let reading = gitops::read(&refused);
    assert_eq!(reading.kstatus.status, "Failed", "{refused}");
    assert_eq!(reading.argocd.status, "Degraded", "{refused}");
    assert!(
        reading.argocd.message.starts_with("AuthenticationFailed"),
        "{reading:?}"
    );
    assert!(
        !reading.argocd.message.contains(SK)
            && !reading.argocd.message.contains("not-the-secret-key")
    );

    // Suspended → InProgress for kstatus (not Ready), Suspended for Argo CD.
    world.patch_spec("pools", json!({"suspend": true})).await;
    let suspended = world
        .until("pools", "suspended", |w| {
            has_condition(w, "Ready", "False", "Suspended")
        })
        .await;
    let reading = gitops::read(&suspended);
    assert_eq!(reading.kstatus.status, "InProgress", "{suspended}");
    assert_eq!(reading.argocd.status, "Suspended", "{suspended}");
}

// ---------------------------------------------------------------------------------------------
// RBAC, enforced: the operator authenticates as the chart's ServiceAccount

/// The kinds of the chart that grant the operator its rights.
const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// The chart's ServiceAccount and RBAC objects for a release, applied to a control plane as helm
/// would apply them, and a kubeconfig that authenticates as that ServiceAccount with a token from
/// the TokenRequest API.
struct ChartIdentity {
    /// `system:serviceaccount:NAMESPACE:NAME`, as the audit log names the user.
    user: String,
    kubeconfig: std::path::PathBuf,
    documents: Vec<Value>,
}

impl ChartIdentity {
    /// Applies the RBAC objects of `documents` (after `edit`) in `namespace` and requests a
    /// token for the ServiceAccount.
    fn apply(namespace: &TestNamespace, documents: &[Value], edit: impl Fn(&mut Value)) -> Self {
        let mut rbac: Vec<Value> = documents
            .iter()
            .filter(|d| RBAC_KINDS.iter().any(|kind| d["kind"] == *kind))
            .cloned()
            .collect();
        rbac.iter_mut().for_each(&edit);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": rbac});
        let manifest = namespace
            .control_plane
            .state_dir
            .join(format!("{}-rbac.json", namespace.name));
        std::fs::write(&manifest, list.to_string()).unwrap();
        run(namespace
            .kubectl()
            .args(["apply", "--server-side", "--field-manager", "helm", "-f"])
            .arg(&manifest))
        .unwrap_or_else(|e| panic!("{e}"));
        let service_account = one(documents, "ServiceAccount")["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let token =
            run(namespace
                .kubectl()
                .args(["create", "token", &service_account, "--duration=1h"]))
            .unwrap_or_else(|e| panic!("the TokenRequest API gives no token: {e}"));
        let admin: Value = serde_norway::from_str(
            &std::fs::read_to_string(&namespace.control_plane.kubeconfig).unwrap(),
        )
        .unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": service_account, "user": {"token": token.trim()}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": service_account}}],
            "current-context": "test",
        });
        let path = namespace
            .control_plane
            .state_dir
            .join(format!("{}-{service_account}.kubeconfig", namespace.name));
        std::fs::write(&path, kubeconfig.to_string()).unwrap();
        Self {
            user: format!("system:serviceaccount:{}:{service_account}", namespace.name),
            kubeconfig: path,
            documents: documents.to_vec(),
        }
    }

    /// A kubectl that authenticates as the ServiceAccount.
    fn kubectl(&self, plane: &ControlPlane) -> Command {
        let mut command = Command::new(&plane.kubectl_path);
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// The operator's flags the chart renders that matter to RBAC: leader election (the Lease's
    /// namespace and name) and the watched namespaces.
    fn operator_flags(&self) -> Vec<String> {
        args(&self.documents)
            .into_iter()
            .filter(|a| a.starts_with("--leader-elect") || a.starts_with("--watch-namespace"))
            .collect()
    }

    /// The audit events of requests this ServiceAccount made.
    fn requests(&self, plane: &ControlPlane) -> Vec<Value> {
        plane
            .audit_events()
            .into_iter()
            .filter(|e| {
                e["user"]["username"] == self.user.as_str() && e["stage"] == "ResponseComplete"
            })
            .collect()
    }
}

/// Starts the operator as `identity` with the chart's flags (and the world's namespace watched,
/// which the cluster-wide chart does not say), and drives it through everything it asks the API
/// server for: leader election, status writes, Secret reads, events created and then patched as a
/// series, a missing Secret, a deleted watch, and SIGTERM (the Lease released).
async fn exercise(world: &World, identity: &ChartIdentity, expect_success: bool) -> Operator {
    let flags = identity.operator_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operator = Operator::start_with(&identity.kubeconfig, "poolwatch=debug,info", &flags);
    world.create_secret("creds", AK, SK).await;
    world.watch("pools", "creds").await;
    world.watch("lost", "no-such-secret").await;
    world.watch("short-lived", "creds").await;
    if !expect_success {
        return operator;
    }
    world
        .until("pools", "Ready", |w| {
            has_condition(w, "Ready", "True", "Synced")
        })
        .await;
    for round in ["first", "second"] {
        world.simulator.inject(Fault::status(500).times(1000));
        request_refresh(&world.watches, "pools", &format!("{round}-failure")).await;
        world
            .until("pools", "failing", |w| {
                has_condition(w, "Ready", "True", "UpstreamUnavailable")
            })
            .await;
        world.simulator.clear_faults();
        request_refresh(&world.watches, "pools", &format!("{round}-recovery")).await;
        world
            .until("pools", "Ready", |w| {
                has_condition(w, "Ready", "True", "Synced")
            })
            .await;
    }
    world
        .until("lost", "Stalled", |w| {
            has_condition(w, "Stalled", "True", "CredentialsNotFound")
        })
        .await;
    world
        .until("short-lived", "Ready", |w| {
            has_condition(w, "Ready", "True", "Synced")
        })
        .await;
    world
        .watches
        .delete("short-lived", &Default::default())
        .await
        .expect("delete a watch");
    operator
}

/// Waits until the audit log shows a request of `identity` that matches `what`.
async fn audited(
    world: &World,
    identity: &ChartIdentity,
    description: &str,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let plane = world.plane();
    support::operator::eventually(description, Duration::from_secs(60), || {
        let found = identity.requests(plane).into_iter().find(&what);
        async move { found }
    })
    .await
}

/// Whether the audited request is `verb` on `resource[/subresource]`.
fn request_is(event: &Value, verb: &str, resource: &str, subresource: Option<&str>) -> bool {
    event["verb"] == verb
        && event["objectRef"]["resource"] == resource
        && event["objectRef"]["subresource"].as_str() == subresource
}

/// [`request_is`], answered with HTTP `code`.
fn is(event: &Value, verb: &str, resource: &str, subresource: Option<&str>, code: u16) -> bool {
    request_is(event, verb, resource, subresource) && event["responseStatus"]["code"] == code
}

async fn rbac_is_sufficient(world: &World, identity: &ChartIdentity) {
    let plane = world.plane();
    let mut operator = exercise(world, identity, true).await;
    // Events are created, then patched as a series; the Lease is created, then renewed.
    audited(world, identity, "an event patched", |e| {
        is(e, "patch", "events", None, 200)
    })
    .await;
    audited(world, identity, "the Lease renewed", |e| {
        is(e, "patch", "leases", None, 200)
    })
    .await;
    operator.signal("TERM");
    assert!(
        operator.wait_exit(Duration::from_secs(10)),
        "the operator stops on SIGTERM"
    );
    let requests = identity.requests(plane);
    let refused: Vec<&Value> = requests
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused the operator:\n{}",
        summarise(&refused.into_iter().cloned().collect::<Vec<_>>())
    );
    for (verb, resource, subresource) in [
        ("list", "poolstatisticswatches", None),
        ("watch", "poolstatisticswatches", None),
        ("patch", "poolstatisticswatches", Some("status")),
        ("get", "secrets", None),
        ("create", "events", None),
        ("patch", "events", None),
        ("create", "leases", None),
        ("get", "leases", None),
        ("patch", "leases", None),
    ] {
        assert!(
            requests
                .iter()
                .any(|e| request_is(e, verb, resource, subresource)),
            "the scenario made no {verb} {resource}: {}",
            summarise(&requests)
        );
    }
    assert!(
        requests
            .iter()
            .filter(|e| e["objectRef"]["resource"] == "secrets")
            .all(|e| e["verb"] == "get" && e["objectRef"]["name"].is_string()),
        "Secrets are only read by name: {}",
        summarise(&requests)
    );
}

/// The chart as release `poolwatch` in `namespace`, in namespaced mode watching `namespace`.
fn render_watching_own_namespace(namespace: &str) -> Vec<Value> {
    render(
        "poolwatch",
        namespace,
        &[&format!("watchNamespaces={{{namespace}}}")],
    )
    .unwrap()
}

/// What the ServiceAccount may not do, whatever the mode: list Secrets anywhere.
fn assert_cannot_list_secrets(identity: &ChartIdentity, plane: &ControlPlane, namespace: &str) {
    let refused = run(identity
        .kubectl(plane)
        .args(["get", "secrets", "--namespace", namespace]))
    .expect_err("listing Secrets is refused");
    assert!(
        refused.contains("Forbidden") || refused.contains("forbidden"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_wide_chart_rbac_is_enforced_and_sufficient() {
    // Cluster-wide, the operator lists and watches every namespace: on a control plane of its own
    // it disturbs no other test.
    let isolated = IsolatedControlPlane::start("chart-rbac");
    let world = World::on(
        isolated.namespace("chart-rbac-cluster").await,
        support::simulator::start().await,
    );
    let documents = render("poolwatch", &world.namespace.name, &[]).unwrap();
    assert!(!of_kind(&documents, "ClusterRole").is_empty());
    let identity = ChartIdentity::apply(&world.namespace, &documents, |_| {});
    rbac_is_sufficient(&world, &identity).await;
    let requests = identity.requests(world.plane());
    assert!(
        requests.iter().any(|e| e["verb"] == "watch"
            && e["objectRef"]["resource"] == "poolstatisticswatches"
            && e["objectRef"]["namespace"].is_null()),
        "the cluster-wide operator watches at cluster scope: {}",
        summarise(&requests)
    );
    assert_cannot_list_secrets(&identity, world.plane(), &world.namespace.name);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_namespaced_chart_rbac_is_enforced_and_sufficient() {
    let world = World::new("chart-rbac-namespaced").await;
    let elsewhere = TestNamespace::new("chart-rbac-elsewhere").await;
    put_secret(
        &elsewhere,
        "creds",
        &[("accessKeyId", AK), ("secretAccessKey", SK)],
    )
    .await;
    let namespace = world.namespace.name.clone();
    let documents = render_watching_own_namespace(&namespace);
    assert!(of_kind(&documents, "ClusterRole").is_empty());
    let identity = ChartIdentity::apply(&world.namespace, &documents, |_| {});
    rbac_is_sufficient(&world, &identity).await;
    let plane = world.plane();
    assert_cannot_list_secrets(&identity, plane, &namespace);
    let refused = run(identity.kubectl(plane).args([
        "get",
        "secret",
        "creds",
        "--namespace",
        &elsewhere.name,
    ]))
    .expect_err("a Secret of an unwatched namespace is refused");
    assert!(
        refused.contains("Forbidden") || refused.contains("forbidden"),
        "{refused}"
    );
}

/// One rule of the chart taken away, and how the operator must show it.
struct MissingRule {
    /// The rendered Role the rule is taken from (`leader-election` or the watch Role).
    role_suffix: &'static str,
    /// The rule's resource and verb, as rendered.
    resource: &'static str,
    verb: &'static str,
    /// The request the API server then refuses.
    refused: (&'static str, &'static str, Option<&'static str>),
    /// What the operator's log line about it says, beside the resource.
    says: &'static str,
}

const MISSING_RULES: [MissingRule; 6] = [
    MissingRule {
        role_suffix: "",
        resource: "poolstatisticswatches",
        verb: "list",
        refused: ("list", "poolstatisticswatches", None),
        says: "grant it list and watch on poolstatisticswatches",
    },
    MissingRule {
        role_suffix: "",
        resource: "poolstatisticswatches/status",
        verb: "patch",
        refused: ("patch", "poolstatisticswatches", Some("status")),
        says: "cannot patch resource",
    },
    MissingRule {
        role_suffix: "",
        resource: "secrets",
        verb: "get",
        refused: ("get", "secrets", None),
        says: "grant it get on secrets",
    },
    MissingRule {
        role_suffix: "",
        resource: "events",
        verb: "create",
        refused: ("create", "events", None),
        says: "cannot create resource",
    },
    MissingRule {
        role_suffix: "-leader-election",
        resource: "leases",
        verb: "create",
        refused: ("create", "leases", None),
        says: "cannot create resource",
    },
    MissingRule {
        role_suffix: "-leader-election",
        resource: "leases",
        verb: "get",
        refused: ("get", "leases", None),
        says: "cannot get resource",
    },
];

/// Removes the rule that grants `missing.verb` on `missing.resource` from the Role it is in.
fn without(missing: &'static MissingRule, release_fullname: &str) -> impl Fn(&mut Value) + 'static {
    let role = format!("{release_fullname}{}", missing.role_suffix);
    move |document: &mut Value| {
        if document["kind"] != "Role" || document["metadata"]["name"] != role.as_str() {
            return;
        }
        let rules = document["rules"].as_array_mut().unwrap();
        let before = rules.len();
        rules.retain(|rule| {
            !(strings(&rule["resources"])
                .iter()
                .any(|r| r == missing.resource)
                && strings(&rule["verbs"]).iter().any(|v| v == missing.verb))
        });
        assert_eq!(
            rules.len(),
            before - 1,
            "one rule of {role} grants {} {}",
            missing.verb,
            missing.resource
        );
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// With any one rule of the chart's Roles removed, the API server refuses the operator, and the
/// operator says so: in its log, naming the resource, and (where a status can still be written)
/// in the watch's conditions.
#[tokio::test(flavor = "multi_thread")]
async fn every_rule_of_the_chart_rbac_is_needed_and_its_absence_is_reported() {
    let checks = MISSING_RULES.iter().map(|missing| async move {
        let world = World::new(&format!(
            "chart-rbac-no-{}-{}",
            missing.verb, missing.refused.1
        ))
        .await;
        let documents = render_watching_own_namespace(&world.namespace.name);
        let fullname = one(&documents, "Deployment")["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let identity =
            ChartIdentity::apply(&world.namespace, &documents, without(missing, &fullname));
        let operator = exercise(&world, &identity, false).await;
        let (verb, resource, subresource) = missing.refused;
        audited(
            &world,
            &identity,
            &format!("{verb} {resource} refused"),
            |e| is(e, verb, resource, subresource, 403),
        )
        .await;
        let line = support::operator::eventually(
            &format!("the operator's log to report that {verb} {resource} was refused"),
            Duration::from_secs(30),
            || {
                let found = operator
                    .logs()
                    .into_iter()
                    .find(|line| line.contains(missing.says) && line.contains(resource));
                async move { found }
            },
        )
        .await;
        assert!(!line.contains(SK), "{line}");
        eprintln!(
            "without {} {}: the operator logged {line}",
            missing.verb, missing.resource
        );
        if resource == "secrets" {
            let stalled = world
                .until("pools", "Stalled", |w| {
                    has_condition(w, "Stalled", "True", "CredentialsForbidden")
                })
                .await;
            assert!(
                stalled.to_string().contains("grant it get on secrets"),
                "{stalled}"
            );
        }
    });
    futures::future::join_all(checks).await;
}

// ---------------------------------------------------------------------------------------------
// helm install, upgrade, uninstall

fn helm(namespace: &TestNamespace, args: &[&str]) -> String {
    let mut command = namespace.helm();
    command.args(args);
    run(&mut command).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `kubectl get kind name` finds the object (in `namespace`, or cluster-scoped).
fn exists(namespace: Option<&TestNamespace>, kind: &str, name: &str) -> bool {
    let mut command: Command = match namespace {
        Some(namespace) => namespace.kubectl(),
        None => control_plane().kubectl(),
    };
    command.args(["get", kind, name, "--ignore-not-found", "-o", "name"]);
    !run(&mut command)
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .is_empty()
}

fn get_json(namespace: &TestNamespace, kind: &str, name: &str) -> Value {
    let text = run(namespace.kubectl().args(["get", kind, name, "-o", "json"]))
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap()
}

fn chart_path() -> String {
    repo_path(CHART).to_string_lossy().into_owned()
}

/// The release's Pods: scheduled on the fake node, Running and Ready; returns their names.
async fn running_pods(
    namespace: &TestNamespace,
    deployment: &Value,
    replicas: usize,
) -> Vec<String> {
    let selector = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(namespace.client.clone(), &namespace.name);
    support::operator::eventually(
        &format!("{replicas} Pods of the release scheduled, Running and Ready"),
        SOON,
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                let ready: Vec<String> = list
                    .items
                    .iter()
                    .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                    .filter(|pod| {
                        let status = pod.status.as_ref();
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_ref())
                            .is_some()
                            && status.and_then(|s| s.phase.as_deref()) == Some("Running")
                            && status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .map(|pod| pod.metadata.name.clone().unwrap())
                    .collect();
                (ready.len() == replicas && list.items.len() == replicas).then_some(ready)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_installs_upgrades_and_uninstalls_the_cluster_wide_chart() {
    let namespace = TestNamespace::new("chart-install-cluster").await;
    // Where users put operators: the restricted Pod Security profile, enforced at admission.
    run(namespace.kubectl().args([
        "label",
        "namespace",
        &namespace.name,
        "pod-security.kubernetes.io/enforce=restricted",
    ]))
    .unwrap();
    let release = namespace.name.clone();
    let chart = chart_path();
    let fullname = format!("{release}-poolwatch");
    let fullname = &fullname[..fullname.len().min(63)]
        .trim_end_matches('-')
        .to_owned();

    let notes = helm(
        &namespace,
        &["install", &release, &chart, "--wait", "--timeout=2m"],
    );
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(notes.contains("every namespace"), "{notes}");
    let namespaced = [
        ("deployment", fullname.clone()),
        ("serviceaccount", fullname.clone()),
        ("service", format!("{fullname}-metrics")),
        ("poddisruptionbudget", fullname.clone()),
        ("role", format!("{fullname}-leader-election")),
        ("rolebinding", format!("{fullname}-leader-election")),
    ];
    let cluster = [
        ("clusterrole", fullname.clone()),
        ("clusterrolebinding", fullname.clone()),
    ];
    for (kind, name) in &namespaced {
        assert!(
            exists(Some(&namespace), kind, name),
            "{kind} {name} installed"
        );
    }
    for (kind, name) in &cluster {
        assert!(exists(None, kind, name), "{kind} {name} installed");
    }

    // The Pods were admitted under the restricted profile, scheduled on the kwok node and are
    // Ready; the rollout is complete; the PodDisruptionBudget and the Service select them.
    let deployment = get_json(&namespace, "deployment", fullname);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pods = running_pods(&namespace, &deployment, 2).await;
    run(namespace.kubectl().args([
        "rollout",
        "status",
        &format!("deployment/{fullname}"),
        "--timeout=60s",
    ]))
    .expect("kubectl rollout status completes");
    let budget =
        support::operator::eventually("the PodDisruptionBudget counts the Pods", SOON, || {
            let budget = get_json(&namespace, "poddisruptionbudget", fullname);
            async move {
                (budget["status"]["expectedPods"] == 2 && budget["status"]["currentHealthy"] == 2)
                    .then_some(budget)
            }
        })
        .await;
    assert_eq!(budget["status"]["disruptionsAllowed"], 1, "{budget}");
    let endpoints = support::operator::eventually("the metrics Service's endpoints", SOON, || {
        let slices = run(namespace.kubectl().args([
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={fullname}-metrics"),
            "-o",
            "json",
        ]))
        .unwrap();
        let slices: Value = serde_json::from_str(&slices).unwrap();
        let targets: BTreeSet<String> = slices["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["targetRef"]["name"].as_str().map(str::to_owned))
            .collect();
        async move { (targets.len() == 2).then_some(targets) }
    })
    .await;
    assert_eq!(endpoints, pods.iter().cloned().collect::<BTreeSet<_>>());

    // A watch a user made while the operator was installed.
    let watches = Api::<PoolStatisticsWatch>::namespaced(namespace.client.clone(), &namespace.name);
    let watch: PoolStatisticsWatch = serde_json::from_value(json!({
        "apiVersion": "poolwatch.io/v1alpha1",
        "kind": "PoolStatisticsWatch",
        "metadata": {"name": "kept"},
        "spec": {"region": "cn-north-4", "projectId": "p", "credentialsSecretRef": {"name": "creds"}},
    }))
    .unwrap();
    watches
        .create(&PostParams::default(), &watch)
        .await
        .unwrap();

    helm(
        &namespace,
        &[
            "upgrade",
            &release,
            &chart,
            "--reuse-values",
            "--wait",
            "--timeout=2m",
            "--set",
            "replicaCount=3",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "podDisruptionBudget.enabled=false",
        ],
    );
    let deployment = get_json(&namespace, "deployment", fullname);
    assert_eq!(deployment["spec"]["replicas"], 3);
    running_pods(&namespace, &deployment, 3).await;
    assert!(exists(Some(&namespace), "networkpolicy", fullname));
    assert!(exists(
        Some(&namespace),
        "configmap",
        &format!("{fullname}-dashboard")
    ));
    assert!(
        !exists(Some(&namespace), "poddisruptionbudget", fullname),
        "removed by the upgrade"
    );
    let history = helm(&namespace, &["history", &release, "-o", "json"]);
    let history: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);

    // Uninstall removes everything but the CRD and the watches; the Pods go with their
    // Deployment (garbage collection).
    helm(
        &namespace,
        &["uninstall", &release, "--wait", "--timeout=2m"],
    );
    for (kind, name) in namespaced
        .iter()
        .chain([("networkpolicy", fullname.clone())].iter())
    {
        assert!(
            !exists(Some(&namespace), kind, name),
            "{kind} {name} uninstalled"
        );
    }
    for (kind, name) in &cluster {
        assert!(!exists(None, kind, name), "{kind} {name} uninstalled");
    }
    support::operator::eventually("the Pods to be deleted with their Deployment", SOON, || {
        let pods = Api::<Pod>::namespaced(namespace.client.clone(), &namespace.name);
        async move {
            pods.list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    assert!(
        exists(None, "crd", "poolstatisticswatches.poolwatch.io"),
        "helm never deletes CRDs"
    );
    assert!(
        watches.get_opt("kept").await.unwrap().is_some(),
        "the watches stay"
    );

    // Deleting the namespace deletes its watches (the namespace controller).
    Api::<Namespace>::all(namespace.client.clone())
        .delete(&namespace.name, &Default::default())
        .await
        .unwrap();
    support::operator::eventually(
        "the namespace and its watch to be deleted",
        Duration::from_secs(60),
        || {
            let namespaces = Api::<Namespace>::all(namespace.client.clone());
            let name = namespace.name.clone();
            async move {
                namespaces
                    .get_opt(&name)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(
        watches.get_opt("kept").await.unwrap().is_none(),
        "no watch of the deleted namespace is left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_installs_upgrades_and_uninstalls_the_namespaced_chart() {
    let namespace = TestNamespace::new("chart-install-namespaced").await;
    let team_a = TestNamespace::new("chart-team-a").await;
    let team_b = TestNamespace::new("chart-team-b").await;
    let release = namespace.name.clone();
    let chart = chart_path();
    let fullname = format!("{release}-poolwatch");
    let fullname = &fullname[..fullname.len().min(63)]
        .trim_end_matches('-')
        .to_owned();
    let both = format!("watchNamespaces={{{},{}}}", team_a.name, team_b.name);

    let notes = helm(
        &namespace,
        &[
            "install",
            &release,
            &chart,
            "--set",
            &both,
            "--wait",
            "--timeout=2m",
        ],
    );
    assert!(
        notes.contains(&team_a.name) && notes.contains(&team_b.name),
        "{notes}"
    );
    for team in [&team_a, &team_b] {
        assert!(exists(Some(team), "role", fullname));
        assert!(exists(Some(team), "rolebinding", fullname));
    }
    assert!(!exists(None, "clusterrole", fullname));
    let args = get_json(&namespace, "deployment", fullname)["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!(format!("--watch-namespace={}", team_b.name)))
    );

    // Watching one namespace fewer takes its Role away.
    let only_a = format!("watchNamespaces={{{}}}", team_a.name);
    helm(&namespace, &["upgrade", &release, &chart, "--set", &only_a]);
    assert!(exists(Some(&team_a), "role", fullname));
    assert!(!exists(Some(&team_b), "role", fullname));
    assert!(!exists(Some(&team_b), "rolebinding", fullname));

    helm(&namespace, &["uninstall", &release]);
    assert!(!exists(Some(&team_a), "role", fullname));
    assert!(!exists(Some(&team_a), "rolebinding", fullname));
    assert!(!exists(Some(&namespace), "deployment", fullname));
    assert!(!exists(
        Some(&namespace),
        "role",
        &format!("{fullname}-leader-election")
    ));
}
