//! The chart's RBAC, enforced: the operator authenticates as the chart's ServiceAccount, every
//! rule it needs is granted and none is spare.

use super::*;

// ---------------------------------------------------------------------------------------------
// RBAC, enforced: the operator authenticates as the chart's ServiceAccount

/// The kinds of the chart that grant the operator its rights, or narrow them.
const RBAC_KINDS: [&str; 7] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

/// The chart's ServiceAccount and RBAC objects (and its token policy) for a release, applied to
/// a control plane as helm would apply them, and a kubeconfig that authenticates as that
/// ServiceAccount with a token from the TokenRequest API.
pub(super) struct ChartIdentity {
    /// `system:serviceaccount:NAMESPACE:NAME`, as the audit log names the user.
    user: String,
    /// The ServiceAccount's token, from the TokenRequest API.
    pub(super) token: String,
    kubeconfig: std::path::PathBuf,
    documents: Vec<Value>,
}

impl ChartIdentity {
    /// Applies the RBAC objects of `documents` (after `edit`) in `namespace` and requests a
    /// token for the ServiceAccount.
    pub(super) fn apply(
        namespace: &TestNamespace,
        documents: &[Value],
        edit: impl Fn(&mut Value),
    ) -> Self {
        let mut rbac: Vec<Value> = documents
            .iter()
            .filter(|d| RBAC_KINDS.iter().any(|kind| d["kind"] == *kind))
            .cloned()
            .collect();
        rbac.iter_mut().for_each(&edit);
        // Cluster-scoped objects get this namespace in their names: tests that render the same
        // release in other namespaces run at the same time, and would rebind them to theirs.
        for document in &mut rbac {
            if document["kind"] == "ClusterRole" || document["kind"] == "ClusterRoleBinding" {
                let name = format!(
                    "{}-{}",
                    document["metadata"]["name"].as_str().unwrap(),
                    namespace.name
                );
                document["metadata"]["name"] = json!(name);
            }
            if document["roleRef"]["kind"] == "ClusterRole" {
                let name = format!(
                    "{}-{}",
                    document["roleRef"]["name"].as_str().unwrap(),
                    namespace.name
                );
                document["roleRef"]["name"] = json!(name);
            }
        }
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
        let cluster = namespace.control_plane.admin_cluster();
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
            token: token.trim().to_owned(),
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
            .filter(|a| {
                ["--leader-elect", "--watch-namespace", "--trusted-endpoint"]
                    .iter()
                    .any(|flag| a.starts_with(flag))
            })
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
/// series, a missing Secret, a deleted watch, a metrics reader reviewed, and SIGTERM (the Lease
/// released).
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
    // A reader's token reviewed and its access checked, as the operator's ServiceAccount.
    operator.metrics().await;
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
    crate::support::operator::eventually(description, Duration::from_secs(60), || {
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
        ("create", "tokenreviews", None),
        ("create", "subjectaccessreviews", None),
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
        crate::support::simulator::start().await,
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
    // Cluster-wide only what no Role can grant: the reviews of /metrics readers, and the readers'
    // role.
    let cluster_roles: BTreeSet<&str> = of_kind(&documents, "ClusterRole")
        .iter()
        .map(|role| role["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cluster_roles,
        BTreeSet::from(["poolwatch-metrics-auth", "poolwatch-metrics-reader"])
    );
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

/// Namespaced mode, federation enabled and not: the chart grants `create` on
/// `serviceaccounts/token` only when asked, only in the watched namespaces, and a federated
/// watch works with it (and with the chart's token policy in force) and says what to grant
/// without it.
#[tokio::test(flavor = "multi_thread")]
async fn the_chart_grants_service_account_tokens_only_with_federation_enabled() {
    use crate::keyless::{AUDIENCE, IDP, READER, federation, trust_the_cluster};

    let token_rules = |documents: &[Value]| -> usize {
        documents
            .iter()
            .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
            .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
            .filter(|rule| {
                strings(&rule["resources"]).contains(&"serviceaccounts/token".to_owned())
            })
            .count()
    };
    for set in [&[][..], &["watchNamespaces={a,b}"][..]] {
        assert_eq!(
            token_rules(&render("poolwatch", "poolwatch", set).unwrap()),
            0
        );
        let enabled: Vec<&str> = set
            .iter()
            .copied()
            .chain(["federation.enabled=true"])
            .chain(
                set.is_empty()
                    .then_some("federation.acknowledgeClusterWideTokens=true"),
            )
            .collect();
        let documents = render("poolwatch", "poolwatch", &enabled).unwrap();
        let expected = if set.is_empty() { 1 } else { 2 };
        assert_eq!(token_rules(&documents), expected, "{enabled:?}");
    }

    for enabled in [true, false] {
        let world = trust_the_cluster(
            World::new(&format!("chart-federation-{enabled}")).await,
            crate::support::simulator::setup(),
        )
        .await;
        let namespace = world.namespace.name.clone();
        let mut set = vec![
            format!("watchNamespaces={{{namespace}}}"),
            format!("trustedEndpoints={{{}}}", world.simulator.base_url()),
        ];
        if enabled {
            set.push("federation.enabled=true".to_owned());
        }
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        // Released as the namespace: the token policy is cluster-scoped, and named after it.
        let documents = render(&namespace, &namespace, &set).unwrap();
        let identity = ChartIdentity::apply(&world.namespace, &documents, |_| {});
        let policy = of_kind(&documents, "ValidatingAdmissionPolicy")
            .first()
            .map(|policy| policy["metadata"]["name"].as_str().unwrap().to_owned());
        assert_eq!(policy.is_some(), enabled);
        if let Some(policy) = &policy {
            super::federation::enforced(&identity.user, &namespace, READER, policy).await;
        }
        let flags = identity.operator_flags();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let operator = Operator::start_with(&identity.kubeconfig, "poolwatch=debug,info", &flags);
        world
            .create_watch_with(
                "federated",
                "0",
                "-",
                federation(&world, READER, IDP, AUDIENCE),
            )
            .await;
        if enabled {
            world.ready("federated").await;
            audited(&world, &identity, "a token requested", |e| {
                is(e, "create", "serviceaccounts", Some("token"), 201)
            })
            .await;
        } else {
            let stalled = world
                .until("federated", "Stalled", |w| {
                    has_condition(w, "Stalled", "True", "CredentialsForbidden")
                })
                .await;
            let message = stalled["status"].to_string();
            assert!(message.contains("federation.enabled=true"), "{message}");
            audited(&world, &identity, "a token refused", |e| {
                is(e, "create", "serviceaccounts", Some("token"), 403)
            })
            .await;
        }
        drop(operator);
        if let Some(policy) = &policy {
            run(control_plane().kubectl().args([
                "delete",
                "validatingadmissionpolicybinding,validatingadmissionpolicy",
                policy,
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// One rule of the chart taken away, and how the operator must show it.
struct MissingRule {
    /// The rendered Role or ClusterRole the rule is taken from (`leader-election`,
    /// `metrics-auth` or the watch Role).
    role_suffix: &'static str,
    /// The rule's resource and verb, as rendered.
    resource: &'static str,
    verb: &'static str,
    /// The request the API server then refuses.
    refused: (&'static str, &'static str, Option<&'static str>),
    /// What the operator's log line about it says, beside the resource.
    says: &'static str,
}

const MISSING_RULES: [MissingRule; 8] = [
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
    MissingRule {
        role_suffix: "-metrics-auth",
        resource: "tokenreviews",
        verb: "create",
        refused: ("create", "tokenreviews", None),
        says: "poolwatch needs create on tokenreviews",
    },
    MissingRule {
        role_suffix: "-metrics-auth",
        resource: "subjectaccessreviews",
        verb: "create",
        refused: ("create", "subjectaccessreviews", None),
        says: "poolwatch needs create on subjectaccessreviews",
    },
];

/// Removes the rule that grants `missing.verb` on `missing.resource` from the Role it is in.
fn without(missing: &'static MissingRule, release_fullname: &str) -> impl Fn(&mut Value) + 'static {
    let role = format!("{release_fullname}{}", missing.role_suffix);
    move |document: &mut Value| {
        let is_role = document["kind"] == "Role" || document["kind"] == "ClusterRole";
        if !is_role || document["metadata"]["name"] != role.as_str() {
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
        if missing.role_suffix == "-metrics-auth" {
            // A metrics reader, whose review needs the missing rule: the operator answers 500.
            let (code, body) = crate::support::operator::eventually(
                "/metrics to answer",
                crate::support::operator::STARTUP,
                || async { operator.read_metrics().await.ok() },
            )
            .await;
            assert_eq!(code, 500, "{body}");
        }
        let (verb, resource, subresource) = missing.refused;
        audited(
            &world,
            &identity,
            &format!("{verb} {resource} refused"),
            |e| is(e, verb, resource, subresource, 403),
        )
        .await;
        let line = crate::support::operator::eventually(
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
