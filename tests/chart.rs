//! The Helm chart, the container image and the GitOps pieces: what the chart renders, that the
//! API server accepts it through install, upgrade and uninstall, that its RBAC is exactly what the
//! real operator uses (proven from the audit log), and that kstatus and the Argo CD health check
//! read real statuses as documented.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use poolwatch::resource::PoolStatisticsWatch;
use poolwatch::simulator::{Fault, FaultKind};
use serde::Deserialize;
use serde_json::{Value, json};
use support::control_plane::{TestNamespace, control_plane, repo_path, run, summarise};
use support::operator::{Operator, has_condition, request_refresh, wait_for_watch};
use support::simulator::{AK, SK};
use support::world::World;

const CHART: &str = "charts/poolwatch";
/// Generous bound for things that happen "at once": a poll and a status write.
const SOON: Duration = Duration::from_secs(20);
/// The user agent of the operator's Kubernetes client (src/operator.rs).
const OPERATOR_USER_AGENT: &str = concat!("poolwatch/", env!("CARGO_PKG_VERSION"));

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

const HEALTH_LUA: &str = "deploy/argocd/health.lua";
const HEALTH_KEY: &str = "resource.customizations.health.poolwatch.io_PoolStatisticsWatch: |";

/// Runs the Argo CD health script on `object` as Argo CD does (`obj` global, JSON null as nil);
/// returns its status and message.
fn argo_health(object: &Value) -> (String, String) {
    use mlua::LuaSerdeExt;
    let lua = mlua::Lua::new();
    let options = mlua::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(object, options).unwrap();
    lua.globals().set("obj", obj).unwrap();
    let hs: mlua::Table = lua
        .load(read(HEALTH_LUA))
        .set_name(HEALTH_LUA)
        .eval()
        .unwrap_or_else(|e| panic!("the health script fails on {object}: {e}"));
    let status: String = hs.get("status").expect("hs.status");
    let message: String = hs.get("message").expect("hs.message");
    assert!(
        [
            "Healthy",
            "Progressing",
            "Degraded",
            "Suspended",
            "Missing",
            "Unknown"
        ]
        .contains(&status.as_str()),
        "{status} is an Argo CD health status"
    );
    (status, message)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KStatus {
    Current,
    InProgress,
    Failed,
    Terminating,
}

/// kstatus' rules for a resource with standard conditions, in its order.
fn kstatus(object: &Value) -> KStatus {
    if !object["metadata"]["deletionTimestamp"].is_null() {
        return KStatus::Terminating;
    }
    let observed = &object["status"]["observedGeneration"];
    if !observed.is_null() && observed != &object["metadata"]["generation"] {
        return KStatus::InProgress;
    }
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let status = |kind: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind)
            .map(|c| c["status"].as_str().unwrap_or("").to_owned())
    };
    if status("Reconciling").as_deref() == Some("True") {
        return KStatus::InProgress;
    }
    if status("Stalled").as_deref() == Some("True") {
        return KStatus::Failed;
    }
    match status("Ready").as_deref() {
        Some("True") => KStatus::Current,
        Some(_) => KStatus::InProgress,
        None => KStatus::Current,
    }
}

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

#[test]
fn the_argo_cd_health_check_reads_sample_statuses() {
    let ready = [
        ("Ready", "True", "Synced"),
        ("Stalled", "False", "Synced"),
        ("Reconciling", "False", "Synced"),
    ];
    let cases = [
        (sample(1, Some(1), &ready), "Healthy", "Synced"),
        (sample(2, Some(1), &ready), "Progressing", "generation 2"),
        (sample(1, None, &[]), "Progressing", "first poll"),
        (
            sample(
                2,
                Some(2),
                &[
                    ("Ready", "True", "Synced"),
                    ("Reconciling", "True", "Progressing"),
                ],
            ),
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
            "Progressing",
            "Progressing",
        ),
    ];
    for (object, status, message) in &cases {
        let (got, text) = argo_health(object);
        assert_eq!(&got, status, "{object}");
        assert!(text.contains(message), "{text:?} mentions {message:?}");
    }

    let mut no_status = sample(1, None, &[]);
    no_status.as_object_mut().unwrap().remove("status");
    assert_eq!(argo_health(&no_status).0, "Progressing");
    let mut null_status = sample(1, None, &[]);
    null_status["status"] = Value::Null;
    assert_eq!(argo_health(&null_status).0, "Progressing");
    let mut suspended = sample(
        2,
        Some(2),
        &[
            ("Ready", "False", "Suspended"),
            ("Stalled", "False", "Suspended"),
        ],
    );
    suspended["spec"]["suspend"] = json!(true);
    assert_eq!(argo_health(&suspended).0, "Suspended");
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
    let script = read(HEALTH_LUA);
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

#[tokio::test(flavor = "multi_thread")]
async fn real_statuses_read_as_kstatus_and_the_argo_cd_health_check_document() {
    let world = World::new("chart-kstatus").await;
    world.create_secret("creds", AK, SK).await;
    // A key the simulator does not know (the known key with a wrong secret would share the
    // other watch's recent answer: calls are shared per access key id).
    world
        .create_secret("refused", "TESTAKUNKNOWN0000001", "not-the-secret-key")
        .await;
    let _operator = Operator::start(&world.namespace.name, &[]);

    // Ready → Current, Healthy.
    world.watch("pools", "creds").await;
    let ready = world
        .until("pools", "Ready", |w| {
            has_condition(w, "Ready", "True", "Synced")
        })
        .await;
    assert_eq!(kstatus(&ready), KStatus::Current, "{ready}");
    assert_eq!(argo_health(&ready).0, "Healthy", "{ready}");

    // A new generation, until its (slow) poll answers → InProgress, Progressing; then Current.
    world
        .simulator
        .inject(Fault::new(FaultKind::Latency { millis: 4000 }).times(1));
    world
        .patch_spec("pools", json!({"workspaceId": "ws-partial"}))
        .await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + SOON;
    let current = loop {
        let object = world.object("pools").await;
        let watch: PoolStatisticsWatch = serde_json::from_value(object.clone()).unwrap();
        let synced = object["status"]["observedGeneration"] == 2
            && has_condition(&watch, "Ready", "True", "Synced")
            && has_condition(&watch, "Reconciling", "False", "Synced");
        if synced {
            break object;
        }
        if seen.last() != Some(&object["status"]) {
            assert_eq!(kstatus(&object), KStatus::InProgress, "{object}");
            assert_eq!(argo_health(&object).0, "Progressing", "{object}");
            seen.push(object["status"].clone());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new generation never became Ready: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !seen.is_empty(),
        "no status was seen before the new generation's poll answered"
    );
    assert_eq!(current["metadata"]["generation"], 2);
    assert_eq!(kstatus(&current), KStatus::Current, "{current}");
    assert_eq!(argo_health(&current).0, "Healthy");

    // Refused keys → Failed (Stalled), Degraded.
    world.watch("refused", "refused").await;
    let refused = world
        .until("refused", "Stalled", |w| {
            has_condition(w, "Stalled", "True", "AuthenticationFailed")
        })
        .await;
    assert_eq!(kstatus(&refused), KStatus::Failed, "{refused}");
    let (health, message) = argo_health(&refused);
    assert_eq!(health, "Degraded", "{refused}");
    assert!(message.starts_with("AuthenticationFailed"), "{message}");
    assert!(!message.contains(SK) && !message.contains("not-the-secret-key"));

    // Suspended → InProgress for kstatus (not Ready), Suspended for Argo CD.
    world.patch_spec("pools", json!({"suspend": true})).await;
    let suspended = world
        .until("pools", "suspended", |w| {
            has_condition(w, "Ready", "False", "Suspended")
        })
        .await;
    assert_eq!(kstatus(&suspended), KStatus::InProgress);
    assert_eq!(argo_health(&suspended).0, "Suspended", "{suspended}");
}

// ---------------------------------------------------------------------------------------------
// RBAC: the chart's rules, evaluated as Kubernetes does, against what the operator really did

/// One request as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    verb: String,
    api_group: String,
    resource: String,
    subresource: String,
    /// Empty for cluster-scoped requests.
    namespace: String,
    /// Empty when the request names no object (create, list, watch).
    name: String,
}

impl Request {
    fn from_audit(event: &Value) -> Option<Self> {
        let object = event.get("objectRef")?;
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let verb = text(&event["verb"]);
        Some(Self {
            // A create's name is in its body, which RBAC never sees.
            name: if verb == "create" {
                String::new()
            } else {
                text(&object["name"])
            },
            verb,
            api_group: text(&object["apiGroup"]),
            resource: text(&object["resource"]),
            subresource: text(&object["subresource"]),
            namespace: text(&object["namespace"]),
        })
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        let sub = if self.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", self.subresource)
        };
        let scope = if self.namespace.is_empty() {
            "cluster".to_owned()
        } else {
            format!("ns {}", self.namespace)
        };
        write!(
            f,
            "{} {group}/{}{sub} {:?} in {scope}",
            self.verb, self.resource, self.name
        )
    }
}

/// A PolicyRule.
#[derive(Debug, Clone)]
struct Rule {
    /// Where it came from, for messages.
    origin: String,
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

impl Rule {
    /// RBAC's rule matching (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac): verb, API group,
    /// resource (`resource/subresource`, `*`, `*/subresource`) and resourceNames.
    fn allows(&self, request: &Request) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == request.verb);
        let group = self
            .api_groups
            .iter()
            .any(|g| g == "*" || *g == request.api_group);
        let combined = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!request.subresource.is_empty() && *r == format!("*/{}", request.subresource))
        });
        let name = self.resource_names.is_empty()
            || (!request.name.is_empty() && self.resource_names.contains(&request.name));
        verb && group && resource && name
    }

    /// Every (group, resource, verb) the rule grants, for the unused-grant check.
    fn grants(&self) -> Vec<(String, String, String)> {
        let mut grants = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    grants.push((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
        grants
    }
}

/// The rules a ServiceAccount gets from rendered manifests: each with the namespace it applies
/// to (empty: every namespace and cluster scope).
fn bound_rules(documents: &[Value], service_account: &str, namespace: &str) -> Vec<(String, Rule)> {
    let roles = |kind: &str| -> BTreeMap<(String, String), Vec<Rule>> {
        of_kind(documents, kind)
            .into_iter()
            .map(|role| {
                let (name, ns) = (
                    role["metadata"]["name"].as_str().unwrap().to_owned(),
                    role["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
                let rules = role["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        assert!(
                            r.get("nonResourceURLs").is_none(),
                            "{kind} {name}: no nonResourceURLs"
                        );
                        Rule {
                            origin: format!("{kind} {ns}/{name}"),
                            api_groups: strings(&r["apiGroups"]),
                            resources: strings(&r["resources"]),
                            verbs: strings(&r["verbs"]),
                            resource_names: strings(&r["resourceNames"]),
                        }
                    })
                    .collect();
                ((ns, name), rules)
            })
            .collect()
    };
    let (cluster_roles, namespaced_roles) = (roles("ClusterRole"), roles("Role"));
    let mut bound = Vec::new();
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for binding in of_kind(documents, kind) {
            let binds_us = binding["subjects"].as_array().unwrap().iter().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == service_account
                    && s["namespace"] == namespace
            });
            if !binds_us {
                continue;
            }
            let scope = binding["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let role_name = binding["roleRef"]["name"].as_str().unwrap().to_owned();
            let rules = match binding["roleRef"]["kind"].as_str().unwrap() {
                "ClusterRole" => cluster_roles.get(&(String::new(), role_name.clone())),
                _ => namespaced_roles.get(&(scope.clone(), role_name.clone())),
            }
            .unwrap_or_else(|| panic!("{kind} refers to a missing role {role_name}"));
            bound.extend(rules.iter().map(|r| (scope.clone(), r.clone())));
        }
    }
    bound
}

/// Whether `bound` allows `request`; the rule that does.
fn authorize<'a>(bound: &'a [(String, Rule)], request: &Request) -> Option<&'a Rule> {
    bound
        .iter()
        .find(|(scope, rule)| {
            (scope.is_empty() || *scope == request.namespace) && rule.allows(request)
        })
        .map(|(_, rule)| rule)
}

/// Non-resource paths every authenticated client may read through Kubernetes' default
/// `system:discovery` and `system:public-info-viewer` ClusterRoles: the chart need not grant them.
fn default_non_resource_path(uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or(uri);
    [
        "/version", "/api", "/apis", "/healthz", "/livez", "/readyz", "/openapi",
    ]
    .iter()
    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_the_operator_makes_is_allowed_by_the_chart_rbac_and_every_rule_is_used() {
    let world = World::new("chart-rbac").await;
    let namespace = world.namespace.name.clone();
    let cluster_wide = render("poolwatch", &namespace, &[]).unwrap();
    let namespaced = render(
        "poolwatch",
        &namespace,
        &[&format!("watchNamespaces={{{namespace}}}")],
    )
    .unwrap();

    // The operator runs with the chart's leader-election flags (the chart's --watch-namespace is
    // the one Operator::start gives it).
    let leader_flags: Vec<String> = args(&namespaced)
        .into_iter()
        .filter(|a| a.starts_with("--leader-elect"))
        .collect();
    assert_eq!(leader_flags.len(), 4, "{leader_flags:?}");
    let flags: Vec<&str> = leader_flags.iter().map(String::as_str).collect();
    let since = jiff::Timestamp::now();
    world.create_secret("creds", AK, SK).await;
    let operator = Operator::start(&namespace, &flags);

    // A watch becomes Ready, fails, recovers, fails and recovers again (events created, then
    // patched as a series); another waits for a Secret that does not exist.
    world.watch("pools", "creds").await;
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
    world.watch("lost", "no-such-secret").await;
    world
        .until("lost", "Stalled", |w| {
            has_condition(w, "Stalled", "True", "CredentialsNotFound")
        })
        .await;
    let ours =
        |e: &Value| e["userAgent"] == OPERATOR_USER_AGENT && e["stage"] == "ResponseComplete";
    world
        .namespace
        .audit_events_until(Duration::from_secs(30), |events| {
            let seen = |verb: &str, resource: &str| {
                events
                    .iter()
                    .any(|e| ours(e) && e["verb"] == verb && e["objectRef"]["resource"] == resource)
            };
            seen("patch", "events") && seen("patch", "leases")
        })
        .await;
    drop(operator); // SIGTERM: the leader releases its Lease (a patch)
    tokio::time::sleep(Duration::from_secs(1)).await;

    let audit = world.control_plane_events(since);
    let mut requests: Vec<Request> = Vec::new();
    let mut non_resource = BTreeSet::new();
    for event in audit.iter().filter(|e| ours(e)) {
        match Request::from_audit(event) {
            Some(request) if request.namespace == namespace => requests.push(request),
            // Other operators (other tests) share the user agent; only this namespace is ours.
            Some(_) => {}
            None => {
                non_resource.insert(event["requestURI"].as_str().unwrap_or("").to_owned());
            }
        }
    }
    requests.sort();
    requests.dedup();
    assert!(
        requests.len() >= 8,
        "the operator's requests were found in the audit log: {requests:#?}"
    );
    for uri in &non_resource {
        assert!(
            default_non_resource_path(uri),
            "{uri} is not granted to every client"
        );
    }
    // Leader election really went through the Lease in the release namespace.
    for verb in ["create", "get", "patch"] {
        assert!(
            requests
                .iter()
                .any(|r| r.resource == "leases" && r.verb == verb),
            "{verb} leases: {requests:#?}"
        );
    }

    for (mode, documents) in [("cluster-wide", &cluster_wide), ("namespaced", &namespaced)] {
        let service_account = one(documents, "ServiceAccount")["metadata"]["name"]
            .as_str()
            .unwrap();
        let bound = bound_rules(documents, service_account, &namespace);
        // In cluster-wide mode the operator lists and watches at cluster scope instead.
        let mut asked = requests.clone();
        if mode == "cluster-wide" {
            asked.extend(
                requests
                    .iter()
                    .filter(|r| r.verb == "list" || r.verb == "watch")
                    .map(|r| Request {
                        namespace: String::new(),
                        ..r.clone()
                    }),
            );
        }
        let denied: Vec<String> = asked
            .iter()
            .filter(|r| authorize(&bound, r).is_none())
            .map(ToString::to_string)
            .collect();
        assert!(
            denied.is_empty(),
            "{mode}: the chart's RBAC denies:\n{}",
            denied.join("\n")
        );

        // No unused grants: each (group, resource, verb) of each rule served some request.
        let mut unused = Vec::new();
        for (scope, rule) in &bound {
            for (group, resource, verb) in rule.grants() {
                let single = Rule {
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    verbs: vec![verb.clone()],
                    ..rule.clone()
                };
                let used = asked
                    .iter()
                    .any(|r| (scope.is_empty() || *scope == r.namespace) && single.allows(r));
                if !used {
                    unused.push(format!("{}: {verb} {group}/{resource}", rule.origin));
                }
            }
        }
        assert!(
            unused.is_empty(),
            "{mode}: grants no request used:\n{}",
            unused.join("\n")
        );
    }

    // Secrets are only ever read by name.
    assert!(
        requests
            .iter()
            .filter(|r| r.resource == "secrets")
            .all(|r| r.verb == "get" && !r.name.is_empty()),
        "{}",
        summarise(
            &audit
                .iter()
                .filter(|e| ours(e) && e["objectRef"]["resource"] == "secrets")
                .cloned()
                .collect::<Vec<_>>()
        )
    );
}

impl World {
    /// Every audit event received since `since`.
    fn control_plane_events(&self, since: jiff::Timestamp) -> Vec<Value> {
        self.namespace
            .control_plane
            .audit_events()
            .into_iter()
            .filter(|e| {
                e["requestReceivedTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| t >= since)
            })
            .collect()
    }
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

#[tokio::test(flavor = "multi_thread")]
async fn helm_installs_upgrades_and_uninstalls_the_cluster_wide_chart() {
    let namespace = TestNamespace::new("chart-install-cluster").await;
    let release = namespace.name.clone();
    let chart = chart_path();
    let fullname = format!("{release}-poolwatch");
    let fullname = &fullname[..fullname.len().min(63)]
        .trim_end_matches('-')
        .to_owned();

    let notes = helm(&namespace, &["install", &release, &chart]);
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
    let deployment = get_json(&namespace, "deployment", fullname);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    helm(
        &namespace,
        &[
            "upgrade",
            &release,
            &chart,
            "--reuse-values",
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
    assert_eq!(
        get_json(&namespace, "deployment", fullname)["spec"]["replicas"],
        3
    );
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

    helm(&namespace, &["uninstall", &release]);
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
    assert!(
        exists(None, "crd", "poolstatisticswatches.poolwatch.io"),
        "helm never deletes CRDs"
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

    let notes = helm(&namespace, &["install", &release, &chart, "--set", &both]);
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

#[test]
fn the_rbac_evaluator_denies_what_kubernetes_denies() {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]| Rule {
        origin: "test".to_owned(),
        api_groups: groups.iter().map(|s| s.to_string()).collect(),
        resources: resources.iter().map(|s| s.to_string()).collect(),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
    };
    let request =
        |verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str| Request {
            verb: verb.to_owned(),
            api_group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: sub.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
        };
    let status = rule(
        &["poolwatch.io"],
        &["poolstatisticswatches/status"],
        &["patch"],
        &[],
    );
    assert!(status.allows(&request(
        "patch",
        "poolwatch.io",
        "poolstatisticswatches",
        "status",
        "a",
        "w"
    )));
    assert!(!status.allows(&request(
        "patch",
        "poolwatch.io",
        "poolstatisticswatches",
        "",
        "a",
        "w"
    )));
    assert!(!status.allows(&request(
        "update",
        "poolwatch.io",
        "poolstatisticswatches",
        "status",
        "a",
        "w"
    )));
    let watches = rule(
        &["poolwatch.io"],
        &["poolstatisticswatches"],
        &["list"],
        &[],
    );
    assert!(!watches.allows(&request(
        "list",
        "poolwatch.io",
        "poolstatisticswatches",
        "status",
        "a",
        ""
    )));
    assert!(!watches.allows(&request("list", "", "poolstatisticswatches", "", "a", "")));
    let lease = rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "patch", "create"],
        &["leader"],
    );
    assert!(lease.allows(&request(
        "patch",
        "coordination.k8s.io",
        "leases",
        "",
        "a",
        "leader"
    )));
    assert!(!lease.allows(&request(
        "patch",
        "coordination.k8s.io",
        "leases",
        "",
        "a",
        "other"
    )));
    assert!(
        !lease.allows(&request(
            "create",
            "coordination.k8s.io",
            "leases",
            "",
            "a",
            ""
        )),
        "a create names nothing"
    );
    let any_scale = rule(&["*"], &["*/scale"], &["*"], &[]);
    assert!(any_scale.allows(&request("get", "apps", "deployments", "scale", "a", "d")));
    assert!(!any_scale.allows(&request("get", "apps", "deployments", "", "a", "d")));

    // Bindings scope the rules: a Role in namespace a says nothing about namespace b or the cluster.
    let bound = vec![("a".to_owned(), rule(&[""], &["secrets"], &["get"], &[]))];
    assert!(authorize(&bound, &request("get", "", "secrets", "", "a", "s")).is_some());
    assert!(authorize(&bound, &request("get", "", "secrets", "", "b", "s")).is_none());
    assert!(authorize(&bound, &request("list", "", "secrets", "", "a", "")).is_none());
    let cluster = vec![(
        String::new(),
        rule(
            &["poolwatch.io"],
            &["poolstatisticswatches"],
            &["list"],
            &[],
        ),
    )];
    assert!(
        authorize(
            &cluster,
            &request("list", "poolwatch.io", "poolstatisticswatches", "", "", "")
        )
        .is_some()
    );
}
