//! What the chart renders with its defaults and in every mode, checked without installing it.

use super::*;
use crate::support::rendered::RenderedContainer;

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
    // The operator's role, its right to review /metrics readers, and the readers' role (bound to
    // nobody until metrics.reader.subjects names someone).
    assert_eq!(
        names(&documents, "ClusterRole"),
        [
            "poolwatch",
            "poolwatch-metrics-auth",
            "poolwatch-metrics-reader"
        ]
    );
    assert_eq!(
        names(&documents, "ClusterRoleBinding"),
        ["poolwatch", "poolwatch-metrics-auth"]
    );
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
fn namespaced_mode_renders_a_role_per_namespace_and_cluster_roles_for_metrics_only() {
    let documents = render(
        "poolwatch",
        "operators",
        &["watchNamespaces={ml-team,ml-research}"],
    )
    .unwrap();
    // TokenReviews, SubjectAccessReviews and non-resource URLs are cluster-scoped: no Role
    // grants them.
    assert_eq!(
        names(&documents, "ClusterRole"),
        ["poolwatch-metrics-auth", "poolwatch-metrics-reader"]
    );
    assert_eq!(
        names(&documents, "ClusterRoleBinding"),
        ["poolwatch-metrics-auth"]
    );
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
        (
            "federation.acknowledgeClusterWideTokens=yes please",
            "acknowledgeClusterWideTokens",
        ),
        ("federation.namespaces={ML_Team}", "namespaces"),
        ("federation.namespaceLabels.team=1", "namespaceLabels"),
        ("federation.apiServerAudiences={}", "apiServerAudiences"),
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

/// The names of the objects of `kind`, sorted.
fn names(documents: &[Value], kind: &str) -> Vec<String> {
    let mut names: Vec<String> = of_kind(documents, kind)
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Secure metrics as the chart renders them: HTTPS with a self-signed certificate by default and
/// a ServiceMonitor that sends Prometheus' token and skips verifying it; a cert-manager Secret
/// mounted and verified against its CA; plain HTTP on request; the operator granted the reviews,
/// the reader role bound to whom the values name.
#[test]
fn metrics_are_secure_by_default_and_the_service_monitor_authenticates() {
    let rbac_rules = |documents: &[Value], name: &str| {
        of_kind(documents, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("ClusterRole {name}"))["rules"]
            .clone()
    };
    let monitor_on = ["metrics.serviceMonitor.enabled=true"];
    let defaults = render("poolwatch", "operators", &monitor_on).unwrap();
    let rendered = args(&defaults);
    assert!(
        rendered.contains(&"--metrics-secure=true".to_owned()),
        "{rendered:?}"
    );
    assert!(
        !rendered.iter().any(|a| a.starts_with("--metrics-cert-dir")),
        "{rendered:?}"
    );
    assert_eq!(
        rbac_rules(&defaults, "poolwatch-metrics-auth"),
        json!([
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        ])
    );
    assert_eq!(
        rbac_rules(&defaults, "poolwatch-metrics-reader"),
        json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    let endpoint = &one(&defaults, "ServiceMonitor")["spec"]["endpoints"][0];
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        endpoint["honorLabels"], true,
        "the watches' namespace label kept"
    );
    assert_eq!(
        endpoint["bearerTokenFile"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert_eq!(endpoint["tlsConfig"], json!({"insecureSkipVerify": true}));

    let with_secret = render(
        "poolwatch",
        "operators",
        &[
            monitor_on[0],
            "metrics.certSecretName=poolwatch-metrics-cert",
            "metrics.reader.subjects[0].kind=ServiceAccount",
            "metrics.reader.subjects[0].name=prometheus",
            "metrics.reader.subjects[0].namespace=monitoring",
            "metrics.serviceMonitor.authorization.credentials.name=scraper",
            "metrics.serviceMonitor.authorization.credentials.key=token",
        ],
    )
    .unwrap();
    let container = RenderedContainer::of(&with_secret);
    let mounted = container
        .mounts
        .get("/etc/poolwatch/metrics-tls")
        .expect("the certificate mounted");
    assert!(
        container
            .args
            .contains(&"--metrics-cert-dir=/etc/poolwatch/metrics-tls".to_owned())
    );
    let volume = one(&with_secret, "Deployment")["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mounted.as_str())
        .cloned()
        .expect("the certificate's volume");
    assert_eq!(volume["secret"]["secretName"], "poolwatch-metrics-cert");
    let endpoint = &one(&with_secret, "ServiceMonitor")["spec"]["endpoints"][0];
    assert_eq!(
        endpoint["tlsConfig"],
        json!({"serverName": "poolwatch-metrics.operators.svc",
               "ca": {"secret": {"name": "poolwatch-metrics-cert", "key": "ca.crt"}}})
    );
    assert_eq!(
        endpoint["authorization"],
        json!({"credentials": {"name": "scraper", "key": "token"}})
    );
    assert!(endpoint["bearerTokenFile"].is_null());
    let binding = of_kind(&with_secret, "ClusterRoleBinding")
        .into_iter()
        .find(|b| b["metadata"]["name"] == "poolwatch-metrics-reader")
        .expect("the readers bound");
    assert_eq!(binding["roleRef"]["name"], "poolwatch-metrics-reader");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}])
    );

    let plain = render(
        "poolwatch",
        "operators",
        &[
            monitor_on[0],
            "metrics.secure=false",
            "networkPolicy.enabled=true",
        ],
    )
    .unwrap();
    assert!(args(&plain).contains(&"--metrics-secure=false".to_owned()));
    let endpoint = &one(&plain, "ServiceMonitor")["spec"]["endpoints"][0];
    assert_eq!(endpoint["scheme"], "http");
    assert!(endpoint["tlsConfig"].is_null());
    assert!(
        endpoint["bearerTokenFile"].is_string(),
        "readers are checked over HTTP too"
    );
    assert_eq!(
        of_kind(&plain, "NetworkPolicy").len(),
        1,
        "the NetworkPolicy stays available"
    );
}
