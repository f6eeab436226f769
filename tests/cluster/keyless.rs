//! Keyless credentials end to end on the real API server: the operator requests tokens for a
//! watch's ServiceAccount through the TokenRequest API, the simulator's IAM checks them against
//! the API server's own published keys (`/openid/v1/jwks`, issuer from its discovery document)
//! and issues temporary keys that sign the ModelArts calls. Also the operator's own identity
//! (ECS metadata service, CCE Pod Identity), allowed only in the namespaces the admin lists.

use std::time::Duration;

use crate::support::control_plane::TestNamespace;
use crate::support::operator::{
    Operator, eventually, has_condition, request_refresh, wait_for_watch,
};
use crate::support::scratch::Scratch;
use crate::support::simulator::{self, AK, POD_IDENTITY_TOKEN, PROJECT};
use crate::support::world::{SOON, World};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{
    Api as SimulatorApi, FederationRule, IdentityProviderConfig, MetadataConfig, PodIdentityConfig,
    RequestFilter, SimulatorSetup,
};
use serde_json::{Value, json};

/// The identity provider the simulated IAM knows.
pub(crate) const IDP: &str = "cluster-oidc";
/// Its client id: the audience the operator requests tokens for.
pub(crate) const AUDIENCE: &str = "poolwatch-modelarts";
/// The ServiceAccount watches federate from.
pub(crate) const READER: &str = "modelarts-reader";

/// A JSON document the API server publishes at `path`.
async fn published(namespace: &TestNamespace, path: &str) -> Value {
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("a request");
    let text = namespace
        .client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("the API server's {path}: {e}"));
    serde_json::from_str(&text).expect("JSON")
}

/// The issuer of the cluster's ServiceAccount tokens, from its discovery document.
pub(crate) async fn cluster_issuer(namespace: &TestNamespace) -> String {
    let discovery = published(namespace, "/.well-known/openid-configuration").await;
    discovery["issuer"].as_str().expect("an issuer").to_owned()
}

/// An identity provider trusting the control plane's ServiceAccount tokens: its issuer and keys
/// as the API server publishes them, with `rules`.
pub(crate) async fn cluster_identity_provider(
    namespace: &TestNamespace,
    rules: Vec<FederationRule>,
) -> IdentityProviderConfig {
    let jwks = published(namespace, "/openid/v1/jwks").await;
    IdentityProviderConfig {
        id: IDP.to_owned(),
        issuer: cluster_issuer(namespace).await,
        client_id: AUDIENCE.to_owned(),
        jwks,
        rules,
    }
}

/// The rule admitting ServiceAccount `name` of `namespace` into the test project.
pub(crate) fn rule_for(namespace: &str, name: &str) -> FederationRule {
    FederationRule {
        subject: format!("system:serviceaccount:{namespace}:{name}"),
        projects: vec![PROJECT.to_owned()],
    }
}

pub(crate) async fn create_service_account(namespace: &TestNamespace, name: &str) {
    let accounts: Api<ServiceAccount> = Api::namespaced(namespace.client.clone(), &namespace.name);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a ServiceAccount");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create the ServiceAccount");
}

/// A world whose simulated IAM trusts the control plane, with `setup` besides, and whose
/// namespace has the ServiceAccount [`READER`] admitted by the identity provider.
async fn federated_world(test: &str, setup: SimulatorSetup) -> World {
    trust_the_cluster(World::new(test).await, setup).await
}

/// `world` with the simulated IAM trusting the control plane (and `setup` besides) and the
/// ServiceAccount [`READER`] in its namespace, admitted by the identity provider.
pub(crate) async fn trust_the_cluster(world: World, setup: SimulatorSetup) -> World {
    let provider = cluster_identity_provider(
        &world.namespace,
        vec![rule_for(&world.namespace.name, READER)],
    )
    .await;
    world.simulator.replace_setup(SimulatorSetup {
        identity_providers: vec![provider],
        ..setup
    });
    create_service_account(&world.namespace, READER).await;
    world
}

/// The spec overrides of a watch federating from `service_account` for `audience`.
pub(crate) fn federation(
    world: &World,
    service_account: &str,
    identity_provider: &str,
    audience: &str,
) -> Value {
    json!({
        "credentialsSecretRef": null,
        "iamEndpoint": world.simulator.base_url(),
        "federation": {
            "serviceAccountName": service_account,
            "identityProviderId": identity_provider,
            "audience": audience,
        },
    })
}

/// Answers of `api` with `status`.
fn served(world: &World, api: SimulatorApi, status: u16) -> u64 {
    world
        .simulator
        .requests_served(&RequestFilter::api(api).with_status(status))
}

/// Statistics answers that were not 200.
fn failed_statistics(world: &World) -> u64 {
    let all = world
        .simulator
        .requests_served(&RequestFilter::api(SimulatorApi::Statistics));
    all - served(world, SimulatorApi::Statistics, 200)
}

fn credentials_of(watch: &PoolStatisticsWatch) -> Option<String> {
    watch.status.as_ref()?.credentials.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_federated_from_its_own_service_account_is_ready_and_shares_its_keys() {
    let world = federated_world("federation", simulator::setup())
        .await
        .start_operator(&[]);
    let spec = federation(&world, READER, IDP, AUDIENCE);
    world
        .create_watch_with("first", "0", "-", spec.clone())
        .await;
    let first = world.ready("first").await;
    assert_eq!(
        credentials_of(&first).as_deref(),
        Some("ServiceAccount/modelarts-reader")
    );
    assert_eq!(served(&world, SimulatorApi::IdToken, 201), 1);
    assert_eq!(served(&world, SimulatorApi::SecurityToken, 201), 1);
    let permanent = world.simulator.requests_served(&RequestFilter {
        access_key_id: Some(AK.to_owned()),
        ..RequestFilter::default()
    });
    assert_eq!(permanent, 0, "no call signed with a permanent key");

    // A second watch on the same ServiceAccount uses the same temporary keys.
    world
        .create_watch_with("second", "ws-partial", "-", spec)
        .await;
    world.ready("second").await;
    assert_eq!(
        served(&world, SimulatorApi::SecurityToken, 201),
        1,
        "the second watch exchanged a token of its own"
    );

    // `kubectl get -o wide` names the ServiceAccount.
    let wide = crate::support::control_plane::run(
        world
            .namespace
            .kubectl()
            .args(["get", "psw", "first", "-o", "wide"]),
    )
    .expect("kubectl get");
    assert!(wide.contains("ServiceAccount/modelarts-reader"), "{wide}");
}

#[tokio::test(flavor = "multi_thread")]
async fn federated_keys_are_renewed_across_an_expiry_of_seconds_with_no_failed_poll() {
    // Keys live 20 s: renewed from 15 s on. Polls every 4 s or so (refresh requests) use each
    // set of keys several times, and no poll meets expired ones.
    let world = federated_world(
        "federation-renewal",
        SimulatorSetup {
            temporary_credentials_ttl: Some(Duration::from_secs(20)),
            ..simulator::setup()
        },
    )
    .await
    .start_operator(&[]);
    world
        .create_watch_with("pools", "0", "-", federation(&world, READER, IDP, AUDIENCE))
        .await;
    world.ready("pools").await;
    let mut polls = 1;
    let mut refresh = 0;
    while served(&world, SimulatorApi::SecurityToken, 201) < 3 {
        assert!(refresh < 40, "no third set of keys after {refresh} polls");
        refresh += 1;
        let token = format!("renewal-{refresh}");
        request_refresh(&world.watches, "pools", &token).await;
        world
            .wait("pools", "refreshed", SOON, |w| {
                w.status
                    .as_ref()
                    .and_then(|s| s.last_handled_refresh_request.as_deref())
                    == Some(token.as_str())
            })
            .await;
        polls += 1;
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let exchanges = served(&world, SimulatorApi::SecurityToken, 201);
    assert_eq!(
        failed_statistics(&world),
        0,
        "a poll failed across renewals"
    );

    // Every poll signed with keys younger than their renewal time (15 s of 20): renewed before
    // they expire, not merely once they have.
    let issued = world
        .simulator
        .request_times(&RequestFilter::api(SimulatorApi::SecurityToken).with_status(201));
    for polled in world
        .simulator
        .request_times(&RequestFilter::api(SimulatorApi::Statistics).with_status(200))
    {
        let keys_from = issued
            .iter()
            .filter(|at| **at <= polled)
            .max()
            .expect("keys issued before the poll");
        let age = polled - *keys_from;
        assert!(
            age < Duration::from_secs(16),
            "a poll signed with keys {age:?} old, past their renewal at 15 s"
        );
    }
    assert!(
        exchanges < polls,
        "{exchanges} exchanges for {polls} polls: keys were not reused"
    );
    let watch = world.ready("pools").await;
    assert!(has_condition(&watch, "Ready", "True", "Synced"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_can_use_only_service_accounts_of_its_own_namespace() {
    // The identity provider admits `modelarts-reader` of the first namespace only.
    let world = federated_world("federation-tenant-a", simulator::setup()).await;
    let other = TestNamespace::new("federation-tenant-b").await;
    let operator = world.spawn_operator(&["--watch-namespace", &other.name]);
    let other_watches = other.watches();
    let spec = federation(&world, READER, IDP, AUDIENCE);

    // The other namespace has no such ServiceAccount: the name does not reach across.
    other_watches
        .create(
            &PostParams::default(),
            &world.watch_object("borrow", "0", "-", spec),
        )
        .await
        .expect("create the watch");
    wait_for_watch(
        &other_watches,
        "borrow",
        "Stalled on its ServiceAccount",
        SOON,
        |w| has_condition(w, "Stalled", "True", "ServiceAccountNotFound"),
    )
    .await;

    // One of its own with the same name is a different identity, which IAM does not admit.
    create_service_account(&other, READER).await;
    wait_for_watch(
        &other_watches,
        "borrow",
        "Stalled on the exchange",
        Duration::from_secs(60),
        |w| has_condition(w, "Stalled", "True", "TokenExchangeRefused"),
    )
    .await;
    assert_eq!(served(&world, SimulatorApi::SecurityToken, 201), 0);
    assert_eq!(failed_statistics(&world), 0, "no ModelArts call at all");
    drop(operator);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_the_wrong_audience_or_an_unknown_provider_is_a_clear_condition() {
    let world = federated_world("federation-refused", simulator::setup())
        .await
        .start_operator(&[]);
    world
        .create_watch_with(
            "wrong-audience",
            "0",
            "-",
            federation(&world, READER, IDP, "someone-else"),
        )
        .await;
    world
        .create_watch_with(
            "unknown-provider",
            "0",
            "-",
            federation(&world, READER, "no-such-provider", AUDIENCE),
        )
        .await;
    let refused = world
        .wait("wrong-audience", "Stalled", SOON, |w| {
            has_condition(w, "Stalled", "True", "TokenExchangeRefused")
        })
        .await;
    world
        .wait("unknown-provider", "Stalled", SOON, |w| {
            has_condition(w, "Stalled", "True", "IdentityProviderNotFound")
        })
        .await;
    let message = refused
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("audience"), "{message}");
    // JWTs start with a base64url `{"` header: none may reach a status, log line or event.
    for text in [message, world.operator().logs().join("\n")] {
        assert!(!text.contains("eyJ"), "a token leaked: {text}");
    }
    assert_eq!(
        served(&world, SimulatorApi::IdToken, 401),
        1,
        "the refused token was exchanged again within a minute"
    );
}

/// A simulator setup serving the operator's identity through the metadata service and Pod
/// Identity.
fn operator_identity_setup() -> SimulatorSetup {
    SimulatorSetup {
        pod_identity: Some(PodIdentityConfig {
            authorization_token: POD_IDENTITY_TOKEN.to_owned(),
            projects: vec![PROJECT.to_owned()],
        }),
        metadata: Some(MetadataConfig {
            projects: vec![PROJECT.to_owned()],
            require_token: true,
        }),
        ..simulator::setup()
    }
}

const OPERATOR_IDENTITY: &str = r#"{"credentialsSecretRef": null, "operatorIdentity": {}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_identity_serves_only_the_namespaces_the_admin_allows() {
    let world = World::new("operator-identity").await;
    world.simulator.replace_setup(operator_identity_setup());
    let other = TestNamespace::new("operator-identity-denied").await;
    let other_watches = other.watches();
    let allowed = world.namespace.name.clone();
    let metadata = world.simulator.base_url();
    let operator = world.spawn_operator(&[
        "--watch-namespace",
        &other.name,
        "--operator-identity-namespace",
        &allowed,
        "--metadata-endpoint",
        &metadata,
    ]);
    let spec: Value = serde_json::from_str(OPERATOR_IDENTITY).expect("JSON");
    world.create_watch_with("own", "0", "-", spec.clone()).await;
    other_watches
        .create(
            &PostParams::default(),
            &world.watch_object("denied", "0", "-", spec),
        )
        .await
        .expect("create the watch");
    let own = world.ready("own").await;
    assert_eq!(credentials_of(&own).as_deref(), Some("OperatorIdentity"));
    assert_eq!(served(&world, SimulatorApi::MetadataToken, 200), 1);
    assert!(served(&world, SimulatorApi::Metadata, 200) >= 1);
    let denied = wait_for_watch(&other_watches, "denied", "Stalled", SOON, |w| {
        has_condition(w, "Stalled", "True", "OperatorIdentityNotAllowed")
    })
    .await;
    assert_eq!(credentials_of(&denied).as_deref(), Some("OperatorIdentity"));
    drop(operator);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_identity_comes_from_cce_pod_identity_when_the_pod_has_it() {
    let world = World::new("pod-identity").await;
    world.simulator.replace_setup(operator_identity_setup());
    let scratch = Scratch::new("pod-identity");
    let token_file = scratch.file("token", &format!("{POD_IDENTITY_TOKEN}\n"));
    let url = format!("{}/v1/pod-identity/credentials", world.simulator.base_url());
    let operator = Operator::start_with_env(
        &world.plane().kubeconfig,
        &[
            "--watch-namespace",
            &world.namespace.name,
            "--operator-identity-namespace",
            "*",
            &world.trusted_endpoint_flag(),
        ],
        &[
            ("HC_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
            ("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.as_str()),
        ],
    );
    let spec: Value = serde_json::from_str(OPERATOR_IDENTITY).expect("JSON");
    world.create_watch_with("own", "0", "-", spec).await;
    world.ready("own").await;
    eventually("a Pod Identity exchange", SOON, || async {
        (served(&world, SimulatorApi::PodIdentity, 200) == 1).then_some(())
    })
    .await;
    assert_eq!(
        world
            .simulator
            .requests_served(&RequestFilter::api(SimulatorApi::Metadata)),
        0,
        "the metadata service was asked although the pod has Pod Identity"
    );
    assert!(
        !operator.logs().join("\n").contains(POD_IDENTITY_TOKEN),
        "the Pod Identity token reached a log line"
    );
    drop(operator);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_keyless_secret_reaches_logs_events_statuses_or_metrics() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use poolwatch::simulator::Fault;

    let world = federated_world("keyless-no-leaks", operator_identity_setup()).await;
    world.set_created("expiry", 1);
    // A gateway that calls every key of one workspace expired: the operator renews, retries and
    // reports it, at trace level.
    world.simulator.inject(
        Fault::status(401)
            .error(
                "APIGW.0301",
                "Incorrect IAM authentication information: the security token has expired",
            )
            .for_workspace("expiry"),
    );
    let metadata = world.simulator.base_url();
    let operator = world.spawn_operator_logging(
        "trace",
        &[
            "--operator-identity-namespace",
            &world.namespace.name,
            "--metadata-endpoint",
            &metadata,
        ],
    );
    let federated = federation(&world, READER, IDP, AUDIENCE);
    world
        .create_watch_with("federated", "0", "-", federated.clone())
        .await;
    world
        .create_watch_with("expiry", "expiry", "-", federated)
        .await;
    let own: Value = serde_json::from_str(OPERATOR_IDENTITY).expect("JSON");
    world.create_watch_with("own", "0", "-", own).await;
    world.ready("federated").await;
    world.ready("own").await;
    world
        .wait("expiry", "failing as expired", SOON, |w| {
            w.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.reason == "TemporaryCredentialsExpired")
            })
        })
        .await;

    let mut produced = vec![
        ("logs", operator.logs().join("\n")),
        ("metrics", operator.metrics().await),
    ];
    for kind in ["psw", "events"] {
        let text = crate::support::control_plane::run(
            world.namespace.kubectl().args(["get", kind, "-o", "json"]),
        )
        .expect("kubectl get");
        produced.push((kind, text));
    }
    assert!(
        produced[0].1.contains("\"level\":\"TRACE\""),
        "the operator logged at trace level"
    );
    let secrets = world.simulator.issued_secrets();
    assert!(
        secrets.len() >= 6,
        "expected the IAM token, two sets of keys and a metadata token: {} secrets",
        secrets.len()
    );
    for secret in secrets {
        let encoded = STANDARD.encode(secret.as_bytes());
        for (what, text) in &produced {
            assert!(!text.contains(&secret), "{what} holds an issued secret");
            assert!(
                !text.contains(&encoded),
                "{what} holds a base64 issued secret"
            );
        }
    }
    // The ServiceAccount tokens themselves: JWTs start with a base64url `{"`.
    for (what, text) in &produced {
        assert!(!text.contains("eyJ"), "{what} holds a JWT");
    }
}
