//! Federation's blast radius: cluster-wide, the chart grants the operator `create` on
//! `serviceaccounts/token` in every namespace, so it refuses to without the admin's
//! acknowledgement and ships a ValidatingAdmissionPolicy that keeps the operator's tokens to the
//! namespaces the admin chose and to audiences that are not the API server's. What the operator's
//! ServiceAccount can do is tried with `kubectl create token --as` it (the admin impersonates it),
//! on a release helm installed.

use super::*;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};

/// The values that turn federation on cluster-wide, acknowledged.
const CLUSTER_WIDE_FEDERATION: [&str; 2] = [
    "federation.enabled=true",
    "federation.acknowledgeClusterWideTokens=true",
];
/// The label that allows a namespace by default (`federation.namespaceLabels`).
const FEDERATION_LABEL: &str = "poolwatch.io/federation=enabled";
/// An identity provider's client id: an audience the operator may ask for.
const GOOD_AUDIENCE: &str = "poolwatch-modelarts";

/// A release of the chart helm installed in a namespace of its own, named after it so that its
/// cluster-scoped objects are its own too. Uninstalled when dropped, so that no policy outlives
/// its test on the shared control plane.
struct Release {
    namespace: TestNamespace,
    /// The release's fullname: its objects' and its ServiceAccount's name.
    fullname: String,
}

impl Release {
    /// A namespace for the release; nothing installed yet.
    async fn new(test: &str) -> Self {
        let namespace = TestNamespace::new(test).await;
        let fullname = format!("{}-poolwatch", namespace.name);
        let fullname = fullname[..fullname.len().min(63)]
            .trim_end_matches('-')
            .to_owned();
        Self {
            namespace,
            fullname,
        }
    }

    /// `helm install` with `--set` values; helm's output, or why it failed.
    fn install(&self, set: &[&str]) -> Result<String, String> {
        let mut command = self.namespace.helm();
        command
            .args(["install", &self.namespace.name])
            .arg(repo_path(CHART));
        for value in set {
            command.args(["--set", value]);
        }
        run(&mut command)
    }

    /// `system:serviceaccount:NAMESPACE:NAME` of the operator's ServiceAccount.
    fn operator(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace.name, self.fullname
        )
    }

    /// The name of the chart's ValidatingAdmissionPolicy and of its binding.
    fn policy(&self) -> String {
        format!("{}-tokens", self.fullname)
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = run(self.namespace.helm().args([
            "uninstall",
            &self.namespace.name,
            "--ignore-not-found",
        ]));
    }
}

/// `kubectl create token ACCOUNT --namespace NAMESPACE [--audience AUDIENCE]` asked as `user`:
/// the token, or kubectl's error (the API server's message).
pub(super) fn create_token_as(
    user: &str,
    namespace: &str,
    account: &str,
    audience: Option<&str>,
) -> Result<String, String> {
    let mut command = control_plane().kubectl();
    command.args(["create", "token", account, "--namespace", namespace]);
    command.args(["--duration=10m", "--as", user]);
    if let Some(audience) = audience {
        command.args(["--audience", audience]);
    }
    run(&mut command).map(|token| token.trim().to_owned())
}

/// Waits until `policy` refuses `user` a token of `account` in `namespace` with no audience:
/// policies take effect a moment after they are created, once the API server has loaded them.
/// Returns the refusal.
pub(super) async fn enforced(user: &str, namespace: &str, account: &str, policy: &str) -> String {
    let by_policy = format!("ValidatingAdmissionPolicy '{policy}'");
    crate::support::operator::eventually(
        &format!("{policy} to refuse {user} a token in {namespace}"),
        SOON,
        || {
            let refused = create_token_as(user, namespace, account, None)
                .err()
                .filter(|refusal| refusal.contains(&by_policy));
            async move { refused }
        },
    )
    .await
}

/// Whom the API server takes `token` for, and for which of its audiences, if anyone (a
/// TokenReview with no audiences: the API server's own).
async fn api_server_identity(client: &kube::Client, token: &str) -> Option<(String, Vec<String>)> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let status = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a TokenReview")
        .status?;
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.and_then(|user| user.username)?;
    Some((user, status.audiences.unwrap_or_default()))
}

/// The audiences this control plane's API server accepts: its issuer (discovery document) and
/// those of a token requested with none (`--api-audiences`, which default to the issuer).
async fn api_server_audiences(namespace: &TestNamespace) -> BTreeSet<String> {
    namespace.default_service_account().await;
    let discovery = http::Request::get("/.well-known/openid-configuration")
        .body(Vec::new())
        .unwrap();
    let discovery: Value =
        serde_json::from_str(&namespace.client.request_text(discovery).await.unwrap()).unwrap();
    let issuer = discovery["issuer"].as_str().expect("an issuer").to_owned();
    let token = run(namespace
        .kubectl()
        .args(["create", "token", "default", "--duration=10m"]))
    .unwrap();
    let (_, audiences) = api_server_identity(&namespace.client, token.trim())
        .await
        .expect("a token with no audience is the API server's");
    audiences.into_iter().chain([issuer]).collect()
}

/// Whether RBAC lets `user` create ServiceAccount tokens in `namespace` (admission aside).
fn rbac_grants_tokens(user: &str, namespace: &str) -> bool {
    let answer = run(control_plane().kubectl().args([
        "auth",
        "can-i",
        "create",
        "serviceaccounts",
        "--subresource=token",
        "--namespace",
        namespace,
        "--as",
        user,
    ]));
    // `can-i` exits 1 when the answer is no.
    answer.is_ok_and(|answer| answer.trim() == "yes")
}

/// The policy's refusal of `user`: named in the API server's answer, with what to change.
fn assert_refused_by_policy(outcome: Result<String, String>, policy: &str, says: &[&str]) {
    let Err(refusal) = outcome else {
        panic!("a token was created where the policy must refuse it, saying {says:?}");
    };
    assert!(
        refusal.contains(&format!(
            "ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request"
        )),
        "the policy refused it: {refusal}"
    );
    for expected in says {
        assert!(refusal.contains(expected), "{expected:?} in: {refusal}");
    }
}

// ---------------------------------------------------------------------------------------------
// What helm renders and refuses

#[test]
fn cluster_wide_federation_is_refused_without_the_acknowledgement() {
    let refusal = render("poolwatch", "operators", &["federation.enabled=true"])
        .expect_err("cluster-wide federation without the acknowledgement");
    for expected in [
        "federation.acknowledgeClusterWideTokens=true",
        "every namespace, kube-system included",
        "watchNamespaces",
        "ValidatingAdmissionPolicy",
        "federation.namespaces",
        "federation.namespaceLabels",
        "federation.apiServerAudiences",
    ] {
        assert!(refusal.contains(expected), "{expected:?} in: {refusal}");
    }
    let documents = render("poolwatch", "operators", &CLUSTER_WIDE_FEDERATION).unwrap();
    assert_eq!(of_kind(&documents, "ValidatingAdmissionPolicy").len(), 1);
    assert_eq!(
        of_kind(&documents, "ValidatingAdmissionPolicyBinding").len(),
        1
    );

    // Namespaced mode grants tokens only in the watched namespaces: no acknowledgement, and the
    // policy allows those.
    let documents = render(
        "poolwatch",
        "operators",
        &["federation.enabled=true", "watchNamespaces={ml-team}"],
    )
    .unwrap();
    let policy = one(&documents, "ValidatingAdmissionPolicy");
    assert_eq!(variable(policy, "namespaces"), json!(["ml-team"]));

    for set in [&[][..], &["watchNamespaces={ml-team}"][..]] {
        let documents = render("poolwatch", "operators", set).unwrap();
        assert!(
            of_kind(&documents, "ValidatingAdmissionPolicy").is_empty(),
            "no policy without federation: {set:?}"
        );
    }
    for set in [
        &["federation.namespaces={ml-team,kube-system}"][..],
        &["watchNamespaces={kube-system}"][..],
    ] {
        let set: Vec<&str> = CLUSTER_WIDE_FEDERATION.iter().chain(set).copied().collect();
        let refusal = render("poolwatch", "operators", &set).expect_err("kube-system allowed");
        assert!(
            refusal.contains("never creates tokens in kube-system"),
            "{set:?}: {refusal}"
        );
    }
}

/// A variable of the policy, parsed (the chart renders lists and maps as CEL literals that are
/// JSON too).
fn variable(policy: &Value, name: &str) -> Value {
    let variables = policy["spec"]["variables"].as_array().expect("variables");
    let variable = variables
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variable {name}: {variables:?}"));
    serde_json::from_str(variable["expression"].as_str().unwrap()).expect("a JSON literal")
}

#[test]
fn the_token_policy_judges_only_the_operators_token_requests_and_denies() {
    let documents = render(
        "poolwatch",
        "operators",
        &[
            "federation.enabled=true",
            "federation.acknowledgeClusterWideTokens=true",
            "federation.namespaces={ml-team}",
            "serviceAccount.name=modelarts-operator",
        ],
    )
    .unwrap();
    let policy = one(&documents, "ValidatingAdmissionPolicy");
    let binding = one(&documents, "ValidatingAdmissionPolicyBinding");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    assert_eq!(
        policy["spec"]["matchConstraints"]["resourceRules"],
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["serviceaccounts/token"]}])
    );
    assert_eq!(
        policy["spec"]["matchConditions"][0]["expression"],
        r#"request.userInfo.username == "system:serviceaccount:operators:modelarts-operator""#
    );
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert!(binding["spec"]["matchResources"].is_null(), "{binding}");
    assert_eq!(variable(policy, "namespaces"), json!(["ml-team"]));
    assert_eq!(
        variable(policy, "namespaceLabels"),
        json!({"poolwatch.io/federation": "enabled"})
    );
    let values: Value = serde_norway::from_str(&read("charts/poolwatch/values.yaml")).unwrap();
    assert_eq!(
        variable(policy, "apiServerAudiences"),
        values["federation"]["apiServerAudiences"]
    );
    for validation in policy["spec"]["validations"].as_array().unwrap() {
        assert_eq!(validation["reason"], "Forbidden", "{validation}");
    }

    // With no labels, no namespace is allowed by label (an empty map's all() is true).
    let documents = render(
        "poolwatch",
        "operators",
        &[
            "federation.enabled=true",
            "federation.acknowledgeClusterWideTokens=true",
            "federation.namespaceLabels=null",
        ],
    )
    .unwrap();
    let policy = one(&documents, "ValidatingAdmissionPolicy");
    assert!(
        !policy.to_string().contains("namespaceLabels.all"),
        "{policy}"
    );
}

// ---------------------------------------------------------------------------------------------
// On the control plane, as the operator's ServiceAccount

/// The attack: whoever controls the operator of a cluster-wide release with federation asks, as
/// its ServiceAccount, for a token of a kube-system ServiceAccount with the API server's audience
/// (none given: the API server's own) and uses it against the API server. helm refuses the
/// release until the admin acknowledges cluster-wide tokens; then the policy refuses the token,
/// although RBAC grants it.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_cannot_mint_a_kube_system_token_for_the_api_server() {
    let release = Release::new("chart-token-attack").await;
    let refusal = release
        .install(&["federation.enabled=true"])
        .expect_err("cluster-wide federation without the acknowledgement is refused");
    assert!(
        refusal.contains("federation.acknowledgeClusterWideTokens=true"),
        "{refusal}"
    );
    let releases = run(release.namespace.helm().args(["list", "-q"])).unwrap();
    assert!(releases.trim().is_empty(), "nothing installed: {releases}");

    release
        .install(&CLUSTER_WIDE_FEDERATION)
        .unwrap_or_else(|e| panic!("{e}"));
    let operator = release.operator();
    let policy = release.policy();
    assert!(
        rbac_grants_tokens(&operator, "kube-system"),
        "RBAC grants tokens in kube-system"
    );
    let (user, client) = (&operator, &release.namespace.client);
    let refusal = crate::support::operator::eventually(
        "the operator's request for a kube-system token for the API server to be refused",
        SOON,
        move || async move {
            match create_token_as(user, "kube-system", "default", None) {
                Err(refusal) => Some(refusal),
                Ok(token) => {
                    // Before the API server has loaded the policy; shown if it never does.
                    let identity = api_server_identity(client, &token).await;
                    eprintln!(
                        "the operator's ServiceAccount got a kube-system token the API server \
                         takes for {identity:?}"
                    );
                    None
                }
            }
        },
    )
    .await;
    assert_refused_by_policy(Err(refusal), &policy, &["kube-system"]);
    for audience in api_server_audiences(&release.namespace).await {
        assert_refused_by_policy(
            create_token_as(&operator, "kube-system", "default", Some(&audience)),
            &policy,
            &["kube-system"],
        );
    }
}

/// With the policy in force, the operator's ServiceAccount gets tokens in a namespace the chart
/// names or that carries the label, for an identity provider's audience, and nothing else: not
/// in kube-system, not in another namespace, not for any audience of the API server, not
/// without an audience. Anyone else's requests are not the policy's business.
#[tokio::test(flavor = "multi_thread")]
async fn the_token_policy_allows_the_operator_only_chosen_namespaces_and_audiences() {
    let release = Release::new("chart-token-policy").await;
    let named = TestNamespace::new("chart-token-named").await;
    let labelled = TestNamespace::new("chart-token-labelled").await;
    let unlisted = TestNamespace::new("chart-token-unlisted").await;
    run(labelled
        .kubectl()
        .args(["label", "namespace", &labelled.name, FEDERATION_LABEL]))
    .unwrap();
    for namespace in [&named, &labelled, &unlisted] {
        namespace.default_service_account().await;
    }
    let named_value = format!("federation.namespaces={{{}}}", named.name);
    let set: Vec<&str> = CLUSTER_WIDE_FEDERATION
        .iter()
        .copied()
        .chain([named_value.as_str()])
        .collect();
    release.install(&set).unwrap_or_else(|e| panic!("{e}"));
    let operator = release.operator();
    let policy = release.policy();
    let client = &release.namespace.client;
    enforced(&operator, &unlisted.name, "default", &policy).await;

    for allowed in [&named, &labelled] {
        let token = create_token_as(&operator, &allowed.name, "default", Some(GOOD_AUDIENCE))
            .unwrap_or_else(|e| panic!("a token in {}: {e}", allowed.name));
        assert_eq!(
            api_server_identity(client, &token).await,
            None,
            "a token for {GOOD_AUDIENCE} is no login to the API server"
        );
    }
    assert_refused_by_policy(
        create_token_as(&operator, &unlisted.name, "default", Some(GOOD_AUDIENCE)),
        &policy,
        &[
            &unlisted.name,
            "add it to the chart value federation.namespaces",
            &format!("or label it {FEDERATION_LABEL}"),
        ],
    );
    assert_refused_by_policy(
        create_token_as(&operator, "kube-system", "default", Some(GOOD_AUDIENCE)),
        &policy,
        &["never create ServiceAccount tokens in kube-system"],
    );
    let audiences = api_server_audiences(&labelled).await;
    assert!(
        audiences.contains("https://kubernetes.default.svc.cluster.local"),
        "{audiences:?}"
    );
    for audience in &audiences {
        assert_refused_by_policy(
            create_token_as(&operator, &labelled.name, "default", Some(audience)),
            &policy,
            &[audience, "set spec.federation.audience"],
        );
    }
    // With no audience the API server gives its own: refused whether the policy sees the empty
    // list or the API server's audiences (1.33 to 1.37 fill them in before admission).
    assert_refused_by_policy(
        create_token_as(&operator, &labelled.name, "default", None),
        &policy,
        &["set spec.federation.audience"],
    );

    // The policy judges the operator's requests only.
    let admin = run(unlisted
        .kubectl()
        .args(["create", "token", "default", "--duration=10m"]));
    assert!(admin.is_ok(), "the admin is not the policy's: {admin:?}");
    assert!(
        rbac_grants_tokens(&operator, &unlisted.name),
        "RBAC alone would allow it"
    );

    // helm uninstall takes the policy away with the release.
    drop(release);
    for kind in [
        "validatingadmissionpolicy",
        "validatingadmissionpolicybinding",
    ] {
        let left = run(control_plane().kubectl().args([
            "get",
            kind,
            &policy,
            "--ignore-not-found",
            "-o",
            "name",
        ]))
        .unwrap();
        assert!(left.trim().is_empty(), "{kind} {policy} uninstalled");
    }
}
