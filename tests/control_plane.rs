//! The CRD and the tools users run, against a real Kubernetes API server (the local control plane,
//! `make test-cluster`): the CRD is served, its schema accepts and rejects the spec fixtures as the
//! API server says it, kubectl prints its columns, helm installs a chart with helm's default
//! storage, and the built-in kinds behave as in a cluster where poolwatch relies on it.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event as EventsV1Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use serde_json::{Value, json};
use support::control_plane::{TestNamespace, control_plane, repo_path, run};
use support::specs::{SpecFixture, spec_fixtures};

const CRD_NAME: &str = "poolstatisticswatches.poolwatch.io";

fn psw_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("poolwatch.io", "v1alpha1", "PoolStatisticsWatch"),
        "poolstatisticswatches",
    )
}

/// Creates a fixture's object in `ns`; the name comes from the file, so fixtures never clash.
async fn create_fixture(
    ns: &TestNamespace,
    fixture: &SpecFixture,
) -> Result<DynamicObject, kube::Error> {
    let mut manifest = fixture.manifest.clone();
    let stem = fixture
        .path
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    manifest["metadata"]["name"] = json!(stem);
    manifest["metadata"]["namespace"] = json!(ns.name);
    let object: DynamicObject = serde_json::from_value(manifest).expect("fixture is an object");
    Api::<DynamicObject>::namespaced_with(ns.client.clone(), &ns.name, &psw_resource())
        .create(&PostParams::default(), &object)
        .await
}

#[tokio::test]
async fn crd_is_established_and_discoverable() {
    let ns = TestNamespace::new("crd-established").await;
    let crd = Api::<CustomResourceDefinition>::all(ns.client.clone())
        .get(CRD_NAME)
        .await
        .expect("the CRD exists");
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "{CRD_NAME} is not Established");

    // kube-rs reads the legacy group list; kubectl 1.35 the aggregated one. Both must show it.
    let gvk = GroupVersionKind::gvk("poolwatch.io", "v1alpha1", "PoolStatisticsWatch");
    let legacy = Discovery::new(ns.client.clone())
        .run()
        .await
        .expect("legacy discovery");
    assert!(
        legacy.resolve_gvk(&gvk).is_some(),
        "legacy discovery lacks {gvk:?}"
    );
    let aggregated = Discovery::new(ns.client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(
        aggregated.resolve_gvk(&gvk).is_some(),
        "aggregated discovery lacks {gvk:?}"
    );

    let groups = run(ns.kubectl().args(["get", "--raw", "/apis"])).unwrap();
    let groups: Value = serde_json::from_str(&groups).unwrap();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for group in [
        "poolwatch.io",
        "apps",
        "apiextensions.k8s.io",
        "events.k8s.io",
        "coordination.k8s.io",
    ] {
        assert!(names.contains(&group), "/apis lacks {group}: {names:?}");
    }
    let resources =
        run(ns
            .kubectl()
            .args(["api-resources", "--api-group=poolwatch.io", "-o", "name"]))
        .unwrap();
    assert!(
        resources.contains(CRD_NAME),
        "kubectl api-resources: {resources}"
    );
}

#[tokio::test]
async fn good_specs_are_accepted() {
    let ns = TestNamespace::new("good-specs").await;
    let mut failures = Vec::new();
    for fixture in spec_fixtures("good") {
        if let Err(e) = create_fixture(&ns, &fixture).await {
            failures.push(format!("{}: {e}", fixture.path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "the API server rejected good specs:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn bad_specs_are_rejected_with_the_expected_message() {
    let ns = TestNamespace::new("bad-specs").await;
    let mut failures = Vec::new();
    for fixture in spec_fixtures("bad") {
        let name = fixture.path.display();
        let expect = fixture
            .expect
            .as_deref()
            .unwrap_or_else(|| panic!("{name} has no `# expect: ` line"));
        match create_fixture(&ns, &fixture).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expect) => {}
            Err(kube::Error::Api(status)) => failures.push(format!(
                "{name}: rejected ({}) without {expect:?}: {}",
                status.code, status.message
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "bad specs not rejected as expected:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn kubectl_prints_the_printer_columns() {
    let ns = TestNamespace::new("printer-columns").await;
    let fixture = spec_fixtures("good").into_iter().next().unwrap();
    create_fixture(&ns, &fixture)
        .await
        .expect("a good spec is accepted");

    let header = |output: &str| -> Vec<String> {
        output
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let narrow = header(&run(ns.kubectl().args(["get", "psw"])).unwrap());
    let wide = header(&run(ns.kubectl().args(["get", "psw", "-o", "wide"])).unwrap());
    for column in [
        "NAME", "READY", "CREATED", "CREATING", "FAILED", "PENDING", "AGE",
    ] {
        assert!(
            narrow.iter().any(|c| c == column),
            "`kubectl get psw` lacks {column}: {narrow:?}"
        );
        assert!(
            wide.iter().any(|c| c == column),
            "`kubectl get psw -o wide` lacks {column}: {wide:?}"
        );
    }
    for column in ["PROJECT", "WORKSPACE", "DELETING", "REASON"] {
        assert!(
            !narrow.iter().any(|c| c == column),
            "`kubectl get psw` shows wide column {column}"
        );
        assert!(
            wide.iter().any(|c| c == column),
            "`kubectl get psw -o wide` lacks {column}: {wide:?}"
        );
    }
    // The short name and the category resolve too.
    run(ns.kubectl().args(["get", "modelarts"])).expect("the modelarts category resolves");
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_a_chart() {
    let ns = TestNamespace::new("helm").await;
    let chart = repo_path("tests/fixtures/charts/smoke");
    let release = "smoke";
    let cluster_name = format!("{}-{release}", ns.name);

    run(ns.helm().args(["install", release]).arg(&chart)).expect("helm install");
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let deployment = deployments
        .get(release)
        .await
        .expect("the Deployment exists");
    assert_eq!(deployment.spec.replicas, Some(1));
    Api::<ServiceAccount>::namespaced(ns.client.clone(), &ns.name)
        .get(release)
        .await
        .expect("ServiceAccount");
    Api::<Service>::namespaced(ns.client.clone(), &ns.name)
        .get(release)
        .await
        .expect("Service");
    Api::<PodDisruptionBudget>::namespaced(ns.client.clone(), &ns.name)
        .get(release)
        .await
        .expect("PDB");
    Api::<Role>::namespaced(ns.client.clone(), &ns.name)
        .get(release)
        .await
        .expect("Role");
    Api::<RoleBinding>::namespaced(ns.client.clone(), &ns.name)
        .get(release)
        .await
        .expect("RoleBinding");
    Api::<ClusterRole>::all(ns.client.clone())
        .get(&cluster_name)
        .await
        .expect("ClusterRole");
    Api::<ClusterRoleBinding>::all(ns.client.clone())
        .get(&cluster_name)
        .await
        .expect("ClusterRoleBinding");
    Api::<CustomResourceDefinition>::all(ns.client.clone())
        .get("gadgets.smoke.poolwatch.io")
        .await
        .expect("the chart's CRD");

    // Helm keeps its release records as Secrets (its default driver), one per revision.
    let releases = || async {
        Api::<Secret>::namespaced(ns.client.clone(), &ns.name)
            .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
            .await
            .expect("listing release Secrets")
            .items
            .len()
    };
    assert_eq!(releases().await, 1, "one release Secret after install");

    run(ns
        .helm()
        .args(["upgrade", release])
        .arg(&chart)
        .args(["--set", "replicas=3"]))
    .expect("helm upgrade");
    let deployment = deployments.get(release).await.unwrap();
    assert_eq!(deployment.spec.replicas, Some(3));
    assert_eq!(
        deployment.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );
    assert_eq!(releases().await, 2, "two release Secrets after an upgrade");
    let list = run(ns.helm().args(["list", "-o", "json"])).unwrap();
    assert!(list.contains("\"revision\":\"2\""), "helm list: {list}");

    run(ns.helm().args(["uninstall", release])).expect("helm uninstall");
    assert!(
        deployments.get_opt(release).await.unwrap().is_none(),
        "uninstall deletes the Deployment"
    );
    assert!(
        Api::<ClusterRole>::all(ns.client.clone())
            .get_opt(&cluster_name)
            .await
            .unwrap()
            .is_none(),
        "uninstall deletes the ClusterRole"
    );
    assert_eq!(releases().await, 0, "uninstall deletes the release records");
}

#[tokio::test]
async fn writing_into_a_missing_namespace_fails() {
    let ns = TestNamespace::new("missing-namespace").await;
    let missing = format!("{}-absent", ns.name);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("credentials".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let error = Api::<Secret>::namespaced(ns.client.clone(), &missing)
        .create(&PostParams::default(), &secret)
        .await
        .expect_err("a Secret in a missing namespace is refused");
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 404, "{status:?}");
            assert!(
                status
                    .message
                    .contains(&format!("namespaces \"{missing}\" not found")),
                "{status:?}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn secret_string_data_is_stored_as_data() {
    let ns = TestNamespace::new("string-data").await;
    let secrets = Api::<Secret>::namespaced(ns.client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "credentials"},
        "stringData": {"accessKeyId": "AK", "secretAccessKey": "SK"},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");
    let stored = secrets.get("credentials").await.expect("get");
    assert!(stored.string_data.is_none(), "stringData is write-only");
    let data = stored.data.expect("data");
    assert_eq!(data["accessKeyId"].0, b"AK");
    assert_eq!(data["secretAccessKey"].0, b"SK");
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn server_side_apply_reports_conflicts_between_managers() {
    let ns = TestNamespace::new("apply-conflict").await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let manifest = |replicas: i32| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    };
    deployments
        .patch(
            "web",
            &PatchParams::apply("first"),
            &Patch::Apply(manifest(1)),
        )
        .await
        .expect("the first manager applies");
    let error = deployments
        .patch(
            "web",
            &PatchParams::apply("second"),
            &Patch::Apply(manifest(2)),
        )
        .await
        .expect_err("a second manager changing an owned field conflicts");
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409, "{status:?}");
            assert!(status.message.contains(".spec.replicas"), "{status:?}");
            assert!(status.message.contains("first"), "{status:?}");
        }
        other => panic!("unexpected error: {other}"),
    }
    // Forcing takes the field over; list-map keys merge as in a cluster (container by name).
    let forced = deployments
        .patch(
            "web",
            &PatchParams::apply("second").force(),
            &Patch::Apply(manifest(2)),
        )
        .await
        .expect("a forced apply succeeds");
    assert_eq!(forced.spec.replicas, Some(2));
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"first".to_owned()) && managers.contains(&"second".to_owned()),
        "{managers:?}"
    );
}

#[tokio::test]
async fn events_k8s_io_events_are_core_events() {
    let ns = TestNamespace::new("events").await;
    let event: EventsV1Event = serde_json::from_value(json!({
        "metadata": {"name": "training-pools.1", "namespace": ns.name},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "poolwatch.io/controller",
        "reportingInstance": "poolwatch-0",
        "action": "Poll",
        "reason": "PoolsFailed",
        "note": "2 pools failed",
        "type": "Warning",
        "regarding": {"apiVersion": "poolwatch.io/v1alpha1", "kind": "PoolStatisticsWatch",
                      "namespace": ns.name, "name": "training-pools"}
    }))
    .unwrap();
    Api::<EventsV1Event>::namespaced(ns.client.clone(), &ns.name)
        .create(&PostParams::default(), &event)
        .await
        .expect("an events.k8s.io Event is created");

    let core = Api::<Event>::namespaced(ns.client.clone(), &ns.name)
        .get("training-pools.1")
        .await
        .expect("the same Event read as core/v1");
    assert_eq!(core.message.as_deref(), Some("2 pools failed"));
    assert_eq!(core.reason.as_deref(), Some("PoolsFailed"));
    assert_eq!(core.involved_object.name.as_deref(), Some("training-pools"));
    assert_eq!(
        core.reporting_component.as_deref(),
        Some("poolwatch.io/controller")
    );

    let printed = run(ns.kubectl().args(["get", "events"])).unwrap();
    assert!(
        printed.contains("PoolsFailed") && printed.contains("poolstatisticswatch/training-pools"),
        "kubectl get events:\n{printed}"
    );
}

#[tokio::test]
async fn kube_runtime_recorder_events_are_listed_by_kubectl() {
    use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
    let ns = TestNamespace::new("recorder").await;
    let reporter = Reporter {
        controller: "poolwatch".into(),
        instance: Some("poolwatch-0".into()),
    };
    let recorder = Recorder::new(ns.client.clone(), reporter);
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("poolwatch.io/v1alpha1".into()),
        kind: Some("PoolStatisticsWatch".into()),
        namespace: Some(ns.name.clone()),
        name: Some("training-pools".into()),
        ..Default::default()
    };
    let event = RecorderEvent {
        type_: EventType::Warning,
        reason: "UpstreamUnavailable".into(),
        note: Some("ModelArts answered 503".into()),
        action: "Poll".into(),
        secondary: None,
    };
    // The first publish creates an events.k8s.io Event, the second merge-patches its series.
    recorder
        .publish(&event, &regarding)
        .await
        .expect("first publish");
    recorder
        .publish(&event, &regarding)
        .await
        .expect("repeated publish");

    let core = Api::<Event>::namespaced(ns.client.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(core.len(), 1, "{core:?}");
    assert_eq!(
        core[0].series.as_ref().and_then(|s| s.count),
        Some(2),
        "{core:?}"
    );
    let printed = run(ns.kubectl().args(["get", "events"])).unwrap();
    assert!(
        printed.contains("UpstreamUnavailable"),
        "kubectl get events:\n{printed}"
    );
}

#[tokio::test]
async fn the_audit_log_lists_a_clients_requests() {
    let ns = TestNamespace::new("audit").await;
    let secrets: Api<Secret> = Api::namespaced(ns.client.clone(), &ns.name);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("credentials".into()),
            ..Default::default()
        },
        string_data: Some([("accessKeyId".to_owned(), "AK".to_owned())].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    secrets.get("credentials").await.unwrap();

    let events = ns
        .audit_events_until(Duration::from_secs(5), |events| {
            ["create", "get"].iter().all(|verb| {
                events
                    .iter()
                    .any(|e| e["verb"] == *verb && e["objectRef"]["resource"] == "secrets")
            })
        })
        .await;
    let create = events.iter().find(|e| e["verb"] == "create").unwrap();
    assert_eq!(create["user"]["username"], "poolwatch-admin");
    assert_eq!(create["objectRef"]["name"], "credentials");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert!(
        create.get("requestObject").is_none(),
        "Metadata level logs no bodies"
    );
}

#[test]
fn the_server_reports_the_kubernetes_version_of_its_libraries() {
    let version = run(control_plane().kubectl().args(["version", "-o", "json"])).unwrap();
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.36.4",
        "{version}"
    );
    assert!(
        version["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.35."),
        "the pinned kubectl: {version}"
    );
}
