//! Tenant safety on the real API server: what a tenant who may only create watches and Secrets
//! in one namespace can make the operator do. Each test is the attack, with the operator's
//! answer: keyless credentials never go to a host the admin does not trust, no ServiceAccount
//! token is minted for the API server's own audiences, one namespace's hung endpoints do not
//! starve another's watches, and spec edits that cycle through hosts and keys leave nothing
//! behind.

use std::time::{Duration, Instant};

use poolwatch::simulator::{
    Api as SimulatorApi, Fault, FaultKind, KeyConfig, RequestFilter, SimulatorSetup,
};
use serde_json::{Value, json};

use crate::keyless::{AUDIENCE, IDP, READER, cluster_issuer, federation, trust_the_cluster};
use crate::support::faults::IsolatedControlPlane;
use crate::support::operator::{Operator, condition_message, eventually, has_condition};
use crate::support::simulator;
use crate::support::world::{SOON, World};

/// The watch's events in the audit log that asked for a token of ServiceAccount `name`.
fn token_requests(events: &[Value], name: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["objectRef"]["resource"] == "serviceaccounts"
                && e["objectRef"]["subresource"] == "token"
                && e["objectRef"]["name"] == name
                && e["verb"] == "create"
                && e["stage"] == "ResponseComplete"
        })
        .count()
}

/// Every request an untrusted host received.
fn received(host: &poolwatch::simulator::SimulatorHandle) -> u64 {
    host.stats().total
}

/// A keyless watch's spec pointing its token exchange, or its statistics call, at a host the
/// admin does not trust: the watch is Stalled `EndpointNotTrusted`, naming the flag; the host
/// receives nothing; no token is requested (the audit log has no TokenRequest).
#[tokio::test(flavor = "multi_thread")]
async fn keyless_credentials_are_never_sent_to_a_host_the_admin_does_not_trust() {
    let world = trust_the_cluster(World::new("untrusted-host").await, simulator::setup())
        .await
        .start_operator(&["--operator-identity-namespace", "*"]);
    // The attacker's host: it would log every token and key it receives.
    let attacker = simulator::start().await;
    let attacks = [
        (
            "token-to-attacker",
            json!({"iamEndpoint": attacker.base_url()}),
            "iamEndpoint",
        ),
        (
            "keys-to-attacker",
            json!({"endpoint": attacker.base_url()}),
            "endpoint",
        ),
    ];
    for (name, redirect, field) in &attacks {
        let mut spec = federation(&world, READER, IDP, AUDIENCE);
        for (key, value) in redirect.as_object().expect("an object") {
            spec[key] = value.clone();
        }
        world.create_watch_with(name, "0", "-", spec).await;
        let stalled = world
            .wait(name, "Stalled EndpointNotTrusted", SOON, |w| {
                has_condition(w, "Stalled", "True", "EndpointNotTrusted")
            })
            .await;
        let message = condition_message(&stalled, "Stalled");
        assert!(
            message.contains(&format!("spec.{field}")) && message.contains("--trusted-endpoint"),
            "{message}"
        );
    }
    // The operator's own identity, to the attacker's statistics endpoint.
    world
        .create_watch_with(
            "own-keys-to-attacker",
            "0",
            "-",
            json!({"credentialsSecretRef": null, "operatorIdentity": {}, "endpoint": attacker.base_url()}),
        )
        .await;
    world
        .wait(
            "own-keys-to-attacker",
            "Stalled EndpointNotTrusted",
            SOON,
            |w| has_condition(w, "Stalled", "True", "EndpointNotTrusted"),
        )
        .await;

    // A trusted watch of the same ServiceAccount still works: the refusals are per watch.
    world
        .create_watch_with(
            "trusted",
            "0",
            "-",
            federation(&world, READER, IDP, AUDIENCE),
        )
        .await;
    world.ready("trusted").await;
    assert_eq!(
        received(&attacker),
        0,
        "the untrusted host received requests"
    );
    let events = world.namespace.settled_audit_events().await;
    assert_eq!(
        token_requests(&events, READER),
        1,
        "tokens were requested for watches that may not send them"
    );
    assert_eq!(
        world
            .simulator
            .requests_served(&RequestFilter::api(SimulatorApi::Metadata)),
        0,
        "the operator's own keys were fetched for a watch that may not send them"
    );
}

/// `spec.federation.audience` set to the cluster's own issuer (as its discovery document
/// gives it), with the token exchange at a trusted host: no token is requested at all, the
/// watch is Stalled `AudienceNotAllowed`, and IAM receives nothing.
#[tokio::test(flavor = "multi_thread")]
async fn no_token_is_requested_for_the_api_servers_own_audience() {
    let world = trust_the_cluster(World::new("api-audience").await, simulator::setup())
        .await
        .start_operator(&[]);
    let issuer = cluster_issuer(&world.namespace).await;
    world
        .create_watch_with(
            "issuer-audience",
            "0",
            "-",
            federation(&world, READER, IDP, &issuer),
        )
        .await;
    let stalled = world
        .wait("issuer-audience", "Stalled AudienceNotAllowed", SOON, |w| {
            has_condition(w, "Stalled", "True", "AudienceNotAllowed")
        })
        .await;
    let message = condition_message(&stalled, "Stalled");
    assert!(
        message.contains("spec.federation.audience") && message.contains(&issuer),
        "{message}"
    );
    // A refresh asks again: still nothing.
    crate::support::operator::request_refresh(&world.watches, "issuer-audience", "again").await;
    world
        .wait("issuer-audience", "the refresh answered", SOON, |w| {
            w.status
                .as_ref()
                .and_then(|s| s.last_handled_refresh_request.as_deref())
                == Some("again")
        })
        .await;
    let events = world.namespace.settled_audit_events().await;
    assert_eq!(token_requests(&events, READER), 0, "a token was requested");
    assert_eq!(
        world
            .simulator
            .requests_served(&RequestFilter::api(SimulatorApi::IdToken)),
        0,
        "a token reached IAM"
    );
}

/// An audience the API server accepts that no document publishes (`--api-audiences` of the
/// test control plane lists `kubernetes.default.svc` beside the issuer): its one token is
/// reviewed before it leaves and dropped, the watch is Stalled `AudienceNotAllowed`, IAM
/// receives nothing, and the audience is never requested again.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_api_server_accepts_is_dropped_before_it_leaves_and_never_requested_again() {
    let world = trust_the_cluster(World::new("api-audience-review").await, simulator::setup())
        .await
        .start_operator(&[]);
    world
        .create_watch_with(
            "service-audience",
            "0",
            "-",
            federation(&world, READER, IDP, "kubernetes.default.svc"),
        )
        .await;
    world
        .wait(
            "service-audience",
            "Stalled AudienceNotAllowed",
            SOON,
            |w| has_condition(w, "Stalled", "True", "AudienceNotAllowed"),
        )
        .await;
    for token in ["once", "twice"] {
        crate::support::operator::request_refresh(&world.watches, "service-audience", token).await;
        world
            .wait("service-audience", "the refresh answered", SOON, |w| {
                w.status
                    .as_ref()
                    .and_then(|s| s.last_handled_refresh_request.as_deref())
                    == Some(token)
            })
            .await;
    }
    let events = world.namespace.settled_audit_events().await;
    assert_eq!(
        token_requests(&events, READER),
        1,
        "the audience was requested again after the review refused it"
    );
    assert_eq!(
        world
            .simulator
            .requests_served(&RequestFilter::api(SimulatorApi::IdToken)),
        0,
        "a token the API server accepts reached IAM"
    );
}

/// How long a watch may take from its creation to Ready: one poll of a simulator that answers
/// at once and one status write, with room for a loaded machine; far less than the 30 s an
/// upstream call takes to time out.
const FIRST_POLL: Duration = Duration::from_secs(10);

/// The attack of one namespace on all: eight made-up keys times ten watches (each its own
/// workspace, so no two share a call) on an endpoint that accepts connections and never
/// answers, created first, on an operator watching every namespace (one controller, one set of
/// reconcile slots). Ten watches of another namespace are then each Ready within a first poll's
/// time of their creation and keep their 30 s interval, as the healthy simulator's answer times
/// show.
#[tokio::test(flavor = "multi_thread")]
async fn one_namespaces_hung_endpoints_do_not_starve_another_namespaces_watches() {
    let plane = IsolatedControlPlane::start("fair-share");
    // The tenant's own endpoint: it knows the eight keys (so every request is signed right) and
    // never answers.
    let keys: Vec<KeyConfig> = (0..8)
        .map(|key| KeyConfig {
            access_key_id: format!("MADEUPKEY{key:011}"),
            secret_access_key: format!("made-up-secret-{key}"),
            security_token: None,
        })
        .collect();
    let hung = simulator::start().await;
    hung.replace_setup(SimulatorSetup {
        credentials: keys.clone(),
        ..simulator::setup()
    });
    hung.inject(Fault::new(FaultKind::Hang));
    let noisy = World::on(plane.namespace("noisy").await, hung);
    for (index, key) in keys.iter().enumerate() {
        noisy
            .create_secret(
                &format!("key-{index}"),
                &key.access_key_id,
                &key.secret_access_key,
            )
            .await;
    }
    let _operator = Operator::start_with(&plane.plane.kubeconfig, "poolwatch=debug,info", &[]);
    for watch in 0..80 {
        noisy
            .create_watch(
                &format!("hung-{watch}"),
                &format!("hung-{watch}"),
                &format!("key-{}", watch % 8),
            )
            .await;
    }
    // At least the namespace's share of calls hangs before the other namespace's watches appear
    // (without a share of its own, eight budgets of eight calls: all 64 reconcile slots).
    eventually("the noisy namespace's calls hanging", SOON, || async {
        let hanging = noisy
            .simulator
            .requests_served(&RequestFilter::api(SimulatorApi::Statistics).with_status(0));
        (hanging >= 16).then_some(())
    })
    .await;

    let quiet = World::on(plane.namespace("quiet").await, simulator::start().await)
        .with_credentials()
        .await;
    let started = Instant::now();
    for watch in 0..10 {
        quiet.set_created(&format!("ws-{watch}"), watch);
    }
    let creations: Vec<Instant> = {
        let mut creations = Vec::new();
        for watch in 0..10 {
            creations.push(Instant::now());
            quiet
                .create_watch(&format!("fine-{watch}"), &format!("ws-{watch}"), "creds")
                .await;
        }
        creations
    };
    // Each Ready within a first poll's time of its creation (when first seen Ready, looking
    // every 100 ms)...
    let mut ready_at: Vec<Option<Instant>> = vec![None; 10];
    let give_up = Instant::now() + Duration::from_secs(120);
    while ready_at.iter().any(Option::is_none) && Instant::now() < give_up {
        let listed = quiet
            .watches
            .list(&Default::default())
            .await
            .expect("list the watches");
        for watch in listed {
            let name = watch.metadata.name.clone().unwrap_or_default();
            let Some(index) = name
                .strip_prefix("fine-")
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if ready_at[index].is_none() && has_condition(&watch, "Ready", "True", "Synced") {
                ready_at[index] = Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took: Vec<Option<Duration>> = ready_at
        .iter()
        .zip(&creations)
        .map(|(ready, created)| ready.map(|at| at - *created))
        .collect();
    eprintln!("from creation to Ready, per quiet watch: {took:?}");
    assert!(
        took.iter().all(|t| t.is_some_and(|t| t <= FIRST_POLL)),
        "from creation to Ready, per quiet watch: {took:?} (a first poll's time: {FIRST_POLL:?})"
    );
    let first_polls = started.elapsed();
    // ...and polled again every 30 s (±10 % jitter), not whenever a slot frees up.
    let times = eventually(
        "three polls of every quiet watch",
        Duration::from_secs(120),
        || async {
            let times: Vec<Vec<std::time::Instant>> = (0..10)
                .map(|watch| {
                    quiet.simulator.request_times(
                        &RequestFilter::api(SimulatorApi::Statistics)
                            .with_workspace(format!("ws-{watch}")),
                    )
                })
                .collect();
            times.iter().all(|t| t.len() >= 3).then_some(times)
        },
    )
    .await;
    for (watch, answers) in times.iter().enumerate() {
        for pair in answers.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                (Duration::from_secs(25)..=Duration::from_secs(40)).contains(&gap),
                "watch fine-{watch} was polled {gap:?} after its previous poll (all: {answers:?}); \
                 its first polls took {first_polls:?}"
            );
        }
    }
}

/// Series of the upstream request histogram on the metrics page: one per host and code.
fn request_series(page: &str) -> usize {
    page.lines()
        .filter(|line| line.starts_with("poolwatch_upstream_request_duration_seconds_count{"))
        .count()
}

/// A tenant editing one watch a thousand times, cycling through new endpoint hosts, new
/// audiences and new keys, leaves the operator as it found it: the request series per host,
/// the upstream budgets and the federated keys go with the spec that used them, so the number
/// of series and the operator's memory stay flat.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_spec_edits_cycling_hosts_audiences_and_keys_leave_nothing_behind() {
    use crate::support::faults::resident_kib;

    let world = trust_the_cluster(World::new("spec-cycling").await, simulator::setup())
        .await
        .with_credentials()
        .await
        .start_operator(&[]);
    world.create_watch("cycling", "0", "creds").await;
    world.ready("cycling").await;
    // Loopback ports nothing listens on: each a host of its own, refused at once.
    let closed = crate::support::operator::free_address();
    let closed_port: u16 = closed
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let mut measured = Vec::new();
    for edit in 1..=1000u32 {
        let spec = match edit % 3 {
            0 => json!({
                "endpoint": format!("http://127.0.0.{}:{closed_port}", edit % 250 + 2),
                "credentialsSecretRef": {"name": "creds"},
                "federation": null,
            }),
            1 => {
                let mut spec = federation(&world, READER, IDP, &format!("audience-{edit}"));
                spec["endpoint"] = json!(world.simulator.base_url());
                spec
            }
            _ => {
                let secret = format!("key-{}", edit % 2);
                world
                    .create_secret(&secret, &format!("CYCLINGKEY{edit:010}"), "made-up")
                    .await;
                json!({
                    "endpoint": world.simulator.base_url(),
                    "credentialsSecretRef": {"name": secret},
                    "federation": null,
                })
            }
        };
        world.patch_spec("cycling", spec).await;
        let generation = world
            .watches
            .get("cycling")
            .await
            .expect("the watch")
            .metadata
            .generation;
        world
            .wait("cycling", "polled for its new spec", SOON, |w| {
                w.status.as_ref().and_then(|s| s.observed_generation) == generation
                    && !has_condition(w, "Reconciling", "True", "Progressing")
            })
            .await;
        if edit == 200 || edit == 1000 {
            // The deletion sweep (every 2 s) forgets unused budgets; let it run once.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let page = world.operator().metrics().await;
            measured.push((request_series(&page), resident_kib(world.operator().pid())));
        }
    }
    let [(series_at_200, rss_at_200), (series_at_1000, rss_at_1000)] = measured[..] else {
        panic!("{measured:?}")
    };
    assert!(
        series_at_1000 <= series_at_200,
        "request series grew from {series_at_200} to {series_at_1000} over 800 edits"
    );
    assert!(
        series_at_1000 <= 6,
        "{series_at_1000} request series for one watch's current hosts"
    );
    // 800 edits of leaked state (a histogram per host, a budget per key, keys per audience)
    // would be megabytes; allocator noise is not.
    assert!(
        rss_at_1000 <= rss_at_200 + 4 * 1024,
        "resident memory grew from {rss_at_200} KiB to {rss_at_1000} KiB over 800 edits"
    );
}
