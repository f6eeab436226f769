//! The CRD and the tools users run, against upstream Kubernetes (the local control plane, `make
//! test-cluster`): the control plane is the pinned release, configured as the tests rely on (RBAC
//! enforced, tokens issued, a Ready node, an audit log); the CRD is served, its schema accepts and
//! rejects the spec fixtures as the API server says it, and kubectl prints its columns.

use std::time::Duration;

use crate::support::control_plane::{TestNamespace, control_plane, repo_path, run};
use crate::support::specs::{SpecFixture, spec_fixtures};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use serde_json::{Value, json};

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

    // kube-rs reads the legacy group list; kubectl the aggregated one. Both must show it. Only our
    // group is read: other tests add and delete CRDs of groups of their own meanwhile (Argo CD's
    // first sync), and a group deleted between the list and its read fails a whole discovery.
    let gvk = GroupVersionKind::gvk("poolwatch.io", "v1alpha1", "PoolStatisticsWatch");
    let legacy = Discovery::new(ns.client.clone())
        .filter(&["poolwatch.io"])
        .run()
        .await
        .expect("legacy discovery");
    assert!(
        legacy.resolve_gvk(&gvk).is_some(),
        "legacy discovery lacks {gvk:?}"
    );
    let aggregated = Discovery::new(ns.client.clone())
        .filter(&["poolwatch.io"])
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
    for column in ["PROJECT", "WORKSPACE", "CREDENTIALS", "DELETING", "REASON"] {
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
    // The controller manager writes into a new namespace too (its ServiceAccount, its CA bundle).
    let create = events
        .iter()
        .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "secrets")
        .unwrap();
    assert_eq!(create["user"]["username"], "kwok-admin");
    assert_eq!(create["objectRef"]["name"], "credentials");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert!(
        create.get("requestObject").is_none(),
        "Metadata level logs no bodies"
    );
}

/// The release `tests/go/kubernetes-MINOR/go.mod` pins, for the minor the control plane runs.
fn pinned_release() -> String {
    let minor = std::env::var("POOLWATCH_KUBE_MINOR").unwrap_or_else(|_| "1.37".to_owned());
    let go_mod = std::fs::read_to_string(repo_path(&format!("tests/go/kubernetes-{minor}/go.mod")))
        .expect("the pinned Kubernetes module");
    go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("k8s.io/kubernetes "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("go.mod requires k8s.io/kubernetes")
        .to_owned()
}

#[test]
fn the_server_and_kubectl_are_the_pinned_kubernetes_release() {
    let pinned = pinned_release();
    let version = run(control_plane().kubectl().args(["version", "-o", "json"])).unwrap();
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        pinned.as_str(),
        "{version}"
    );
    assert_eq!(
        version["clientVersion"]["gitVersion"],
        pinned.as_str(),
        "{version}"
    );
}

#[tokio::test]
async fn a_fake_node_runs_the_pods_of_a_deployment() {
    let ns = TestNamespace::new("node").await;
    ns.default_service_account().await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1",
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(ns.client.clone(), &ns.name)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create a Deployment");
    run(ns
        .kubectl()
        .args(["rollout", "status", "deployment/web", "--timeout=60s"]))
    .expect("the Deployment rolls out: its Pods are scheduled, run and are Ready");
    let pods = Api::<Pod>::namespaced(ns.client.clone(), &ns.name)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        assert!(
            pod.spec.as_ref().unwrap().node_name.is_some(),
            "scheduled: {pod:?}"
        );
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
    }
}

#[tokio::test]
async fn service_accounts_get_tokens_and_rbac_is_enforced() {
    let ns = TestNamespace::new("tokens").await;
    run(ns.kubectl().args(["create", "serviceaccount", "reader"])).unwrap();
    let token = run(ns.kubectl().args([
        "create",
        "token",
        "reader",
        "--audience",
        "iam.example",
        "--duration=10m",
    ]))
    .expect("the TokenRequest API issues a token");
    // The token is a JWT of the cluster's issuer for the requested audience.
    let claims = token.trim().split('.').nth(1).expect("a JWT");
    let claims = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
        .expect("base64url claims");
    let claims: Value = serde_json::from_slice(&claims).expect("JSON claims");
    assert_eq!(claims["aud"], json!(["iam.example"]), "{claims}");
    assert_eq!(
        claims["sub"],
        format!("system:serviceaccount:{}:reader", ns.name).as_str(),
        "{claims}"
    );
    // Its signing keys are published, as an identity provider reads them.
    let jwks: Value =
        serde_json::from_str(&run(ns.kubectl().args(["get", "--raw", "/openid/v1/jwks"])).unwrap())
            .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty(), "{jwks}");
    // With no Role bound, the ServiceAccount may do nothing in the namespace.
    let can = run(ns.kubectl().args([
        "auth",
        "can-i",
        "get",
        "secrets",
        "--as",
        &format!("system:serviceaccount:{}:reader", ns.name),
    ]));
    assert!(can.is_err(), "RBAC denies by default: {can:?}");
}

#[tokio::test]
async fn pod_security_admission_rejects_privileged_pods_in_restricted_namespaces() {
    let ns = TestNamespace::new("pod-security").await;
    ns.default_service_account().await;
    run(ns.kubectl().args([
        "label",
        "namespace",
        &ns.name,
        "pod-security.kubernetes.io/enforce=restricted",
    ]))
    .unwrap();
    let refused = run(ns
        .kubectl()
        .args(["run", "root", "--image=busybox", "--restart=Never"]))
    .expect_err("a Pod that runs as root is refused");
    assert!(
        refused.contains("violates PodSecurity \"restricted"),
        "{refused}"
    );
}

#[test]
fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    // etcd 3.7 sends the progress notifications that `sendInitialEvents` needs, so watch-list
    // clients get a list as a stream instead of falling back to list-then-watch.
    let stream = run(control_plane().kubectl().args([
        "get",
        "--raw",
        "/api/v1/namespaces?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan\
         &allowWatchBookmarks=true&timeoutSeconds=2",
    ]))
    .expect("a streaming list");
    let events: Vec<Value> = stream
        .lines()
        .map(|line| serde_json::from_str(line).expect("one watch event per line"))
        .collect();
    assert!(events.iter().any(|e| e["type"] == "ADDED"), "{stream}");
    assert!(
        events.iter().any(|e| e["type"] == "BOOKMARK"
            && e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"),
        "{stream}"
    );
}
