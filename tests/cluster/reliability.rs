//! Reliability and security end to end: the real `poolwatch run` binary against Kubernetes
//! faults (API server restarts and outages, a killed leader), upstream faults (refused, hung,
//! slow, 5xx, 429, bad bodies, untrusted TLS, clock skew), specs that pass the schema but cannot
//! work, and secrets that must never show up anywhere.
//!
//! Tests that stop the API server use a control plane of their own
//! (`support::faults::IsolatedControlPlane`), so the other tests never see the outage.

use std::time::{Duration, Instant};

use crate::support::control_plane::{TestNamespace, run};
use crate::support::faults::{
    IsolatedControlPlane, TestPki, peak_resident_kib, reset_peak_resident, resident_kib,
    scratch_dir,
};
use crate::support::operator::{
    LEASE, Operator, condition, condition_message as message, eventually, has_condition,
    leader_election_flags, lease_holder, request_refresh,
};
use crate::support::simulator::{self, AK, PROJECT, SK, TEMP_AK, TEMP_SK, TOKEN};
use crate::support::webhook::StatusWriteFaults;
use crate::support::world::{World, counts, created, put_secret};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{
    Api as SimulatorApi, Fault, FaultKind, RequestFilter, SimulatorConfig, SimulatorHandle,
};
use serde_json::{Value, json};

/// Generous bound for things that happen "at once": a poll and a status write.
const SOON: Duration = Duration::from_secs(25);

/// A world on the shared control plane with the Secret `creds` holding the permanent key.
async fn new_scene(test: &str) -> World {
    World::new(test).await.within(SOON).with_credentials().await
}

/// A world in `namespace` around `simulator`, with the Secret `creds`.
async fn scene_on(namespace: TestNamespace, simulator: SimulatorHandle) -> World {
    World::on(namespace, simulator)
        .within(SOON)
        .with_credentials()
        .await
}

/// Ready True with `reason`: a transient failure that kept the last good counts.
fn kept_counts_with(watch: &PoolStatisticsWatch, reason: &str, created_count: i64) -> bool {
    has_condition(watch, "Ready", "True", reason)
        && has_condition(watch, "Stalled", "False", reason)
        && created(watch) == Some(created_count)
}

/// The value of a counter or gauge line `series` on a metrics page (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

// ---- Kubernetes faults ----------------------------------------------------------------------

/// The longest a watch stream takes to come back after an API server outage: the watcher's
/// largest backoff (30 s) plus a poll.
const WATCHER_RECONNECT: Duration = Duration::from_secs(45);

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_restart_is_survived_without_restarting_or_rewriting_statuses() {
    let isolated = IsolatedControlPlane::start("reliability-restart");
    let scene = scene_on(
        isolated.namespace("restart").await,
        simulator::start().await,
    )
    .await;
    scene.set_created("m", 1);
    scene.set_created("fresh", 3);
    // Long intervals: within the test, any poll of a steady watch would be an extra one.
    for (name, workspace) in [
        ("steady-a", "0"),
        ("steady-b", "ws-partial"),
        ("moving", "m"),
    ] {
        scene
            .create_watch_with(name, workspace, "creds", json!({"interval": "1h"}))
            .await;
    }
    let mut operator = scene.spawn_operator(&[]);
    for name in ["steady-a", "steady-b", "moving"] {
        scene.ready(name).await;
    }
    let pid = operator.pid();
    let mut writes_before = Vec::new();
    for name in ["steady-a", "steady-b"] {
        writes_before.push(scene.successful_status_writes(name).await);
    }
    let polls_before: Vec<u64> = ["0", "ws-partial"]
        .iter()
        .map(|workspace| scene.statistics_requests(workspace))
        .collect();

    isolated.stop_api_server();
    tokio::time::sleep(Duration::from_secs(6)).await;
    isolated.start_api_server();

    // The watch streams are back: a new object, a refresh request and new counts all arrive.
    // The watcher reconnects on its own backoff, which grew during the outage (kube-runtime's,
    // as client-go's: up to 30 s), so the first event may take that long.
    scene.create_watch("after-restart", "fresh", "creds").await;
    scene
        .wait("after-restart", "Ready", WATCHER_RECONNECT, |w| {
            has_condition(w, "Ready", "True", "Synced")
        })
        .await;
    scene.set_created("m", 2);
    request_refresh(&scene.watches, "moving", "after-restart").await;
    scene
        .wait("moving", "showing the new counts", SOON, |w| {
            created(w) == Some(2)
        })
        .await;

    assert!(
        !operator.wait_exit(Duration::from_millis(100)),
        "the operator exited"
    );
    assert_eq!(operator.pid(), pid);
    let mut writes_after = Vec::new();
    for name in ["steady-a", "steady-b"] {
        writes_after.push(scene.successful_status_writes(name).await);
    }
    assert_eq!(
        writes_before, writes_after,
        "unchanged statuses were written again after the API server restart"
    );
    let polls_after: Vec<u64> = ["0", "ws-partial"]
        .iter()
        .map(|workspace| scene.statistics_requests(workspace))
        .collect();
    assert_eq!(
        polls_before, polls_after,
        "the API server restart made the operator poll watches that were not due"
    );
    // kube's client logs its failed connections at ERROR during the outage; poolwatch itself
    // reports nothing worse than a warning.
    let errors: Vec<String> = operator
        .logs()
        .into_iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("\"target\":\"poolwatch"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_status_write_that_fails_is_kept_and_retried_until_it_lands() {
    let isolated = IsolatedControlPlane::start("reliability-writes");
    let scene = scene_on(isolated.namespace("writes").await, simulator::start().await).await;
    scene.set_created("w", 1);
    scene.create_watch("pools", "w", "creds").await;
    let operator = scene.spawn_operator(&[]);
    scene.ready("pools").await;

    // New counts upstream, answered slowly: the API server goes away while the poll is in
    // flight (after the Secret was read), so the status write that follows fails.
    scene.set_created("w", 2);
    scene.simulator.inject(
        Fault::new(FaultKind::Latency { millis: 5000 })
            .times(1)
            .for_workspace("w"),
    );
    let served = scene.statistics_requests("w");
    request_refresh(&scene.watches, "pools", "during-outage").await;
    eventually("the poll in flight", SOON, || async {
        (scene.simulator.stats().in_flight > 0).then_some(())
    })
    .await;
    isolated.stop_api_server();
    eventually("the slow answer", SOON, || async {
        (scene.statistics_requests("w") > served).then_some(())
    })
    .await;
    // The answer's status write fails while the API server is down (the poll ran in a task of
    // its own, which wakes the watch when it answers): wait for that, not for a fixed time.
    eventually("a failed status write", SOON, || async {
        operator
            .logs()
            .iter()
            .any(|line| line.contains("writing the status of"))
            .then_some(())
    })
    .await;
    isolated.start_api_server();

    let watch = scene
        .wait(
            "pools",
            "showing the counts polled during the outage",
            Duration::from_secs(40),
            |w| created(w) == Some(2),
        )
        .await;
    assert!(
        has_condition(&watch, "Ready", "True", "Synced"),
        "{:#?}",
        watch.status
    );
    assert_eq!(
        scene.statistics_requests("w"),
        served + 1,
        "a failed status write must not cause another upstream call"
    );
    let metrics = operator.metrics().await;
    assert!(
        metric(&metrics, r#"poolwatch_status_writes_total{result="error"}"#) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_writes_answered_with_500_and_409_are_retried_and_lose_no_counts() {
    let scene = new_scene("write-errors").await;
    scene.set_created("w", 1);
    scene.create_watch("pools", "w", "creds").await;
    let operator = scene.spawn_operator(&[]);
    scene.ready("pools").await;
    let faults = StatusWriteFaults::install(&scene.namespace, "pools").await;

    faults.refuse_next(&[500, 409]);
    scene.set_created("w", 2);
    let served = scene.statistics_requests("w");
    request_refresh(&scene.watches, "pools", "through-errors").await;
    let watch = scene
        .wait("pools", "showing the new counts", SOON, |w| {
            created(w) == Some(2)
        })
        .await;
    assert!(has_condition(&watch, "Ready", "True", "Synced"));
    assert_eq!(faults.refused(), 2, "the API server refused two writes");
    assert_eq!(
        scene.statistics_requests("w"),
        served + 1,
        "a refused status write must not cause another upstream call"
    );
    let metrics = operator.metrics().await;
    for result in ["error", "conflict", "success"] {
        let series = format!(r#"poolwatch_status_writes_total{{result="{result}"}}"#);
        assert!(metric(&metrics, &series) >= 1.0, "{series}:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_api_server_makes_the_operator_unready_and_loses_no_counts() {
    let isolated = IsolatedControlPlane::start("reliability-freeze");
    let scene = scene_on(isolated.namespace("freeze").await, simulator::start().await).await;
    scene.set_created("f", 1);
    scene.create_watch("pools", "f", "creds").await;
    let mut operator = scene.spawn_operator(&[]);
    scene.ready("pools").await;
    let ok = (200, "ok".to_owned());
    assert_eq!(operator.probe("healthz").await, ok);
    assert_eq!(operator.probe("readyz").await, ok);

    // New counts, answered slowly: the API server freezes while the poll is in flight, so
    // the status write that follows hangs.
    scene.set_created("f", 2);
    scene.simulator.inject(
        Fault::new(FaultKind::Latency { millis: 3000 })
            .times(1)
            .for_workspace("f"),
    );
    let served = scene.statistics_requests("f");
    request_refresh(&scene.watches, "pools", "during-freeze").await;
    eventually("the poll in flight", SOON, || async {
        (scene.simulator.stats().in_flight > 0).then_some(())
    })
    .await;
    let frozen = isolated.freeze_api_server();
    eventually("the slow answer", SOON, || async {
        (scene.statistics_requests("f") > served).then_some(())
    })
    .await;
    let (code, body) = eventually("/readyz to fail", SOON, || async {
        let answer = operator.probe("readyz").await;
        (answer.0 == 503).then_some(answer)
    })
    .await;
    assert!(body.contains("API server"), "{code} {body}");
    assert_eq!(operator.probe("healthz").await, ok, "alive while frozen");
    drop(frozen);

    let watch = scene
        .wait(
            "pools",
            "showing the counts polled while frozen",
            WATCHER_RECONNECT * 2,
            |w| created(w) == Some(2),
        )
        .await;
    assert!(
        has_condition(&watch, "Ready", "True", "Synced"),
        "{:#?}",
        watch.status
    );
    eventually("/readyz to recover", SOON, || async {
        (operator.probe("readyz").await == ok).then_some(())
    })
    .await;
    assert_eq!(
        scene.statistics_requests("f"),
        served + 1,
        "the hung write must not cause another upstream call"
    );
    assert!(
        !operator.wait_exit(Duration::from_millis(100)),
        "the operator exited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_leader_is_replaced_within_the_lease_duration_and_sigterm_releases_the_lease() {
    let scene = new_scene("leader-kill").await;
    scene.create_watch("pools", "0", "creds").await;
    let flags = leader_election_flags(&scene.namespace.name, "6s");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let first = scene.spawn_operator(&flags);
    let second = scene.spawn_operator(&flags);
    let client = scene.namespace.client.clone();
    let namespace = scene.namespace.name.clone();
    let holder = || lease_holder(&client, &namespace);
    let first_holder = eventually("a holder of the Lease", SOON, || async {
        holder().await.filter(|h| !h.is_empty())
    })
    .await;
    scene.ready("pools").await;
    let (mut leader, mut standby) = if first.is(&first_holder) {
        (first, second)
    } else {
        (second, first)
    };
    assert!(leader.is(&first_holder), "the Lease names {first_holder:?}");

    leader.signal("KILL");
    assert!(leader.wait_exit(Duration::from_secs(5)));
    let killed = Instant::now();
    // Bounded by what the standby can know: the Lease it last saw expires 6 s after its last
    // renewal, and the standby retries every 2 s (a third of it). Load can only delay when the
    // API server answers, which the 20 s wait absorbs; the Lease's own times are the measure.
    let new_holder = eventually("the standby to hold the Lease", SOON, || async {
        holder().await.filter(|h| standby.is(h))
    })
    .await;
    let lease = Api::<Lease>::namespaced(client.clone(), &namespace)
        .get(LEASE)
        .await
        .expect("the Lease");
    let spec = lease.spec.expect("a Lease spec");
    let acquired = spec.acquire_time.expect("acquireTime").0;
    let killed_at = jiff::Timestamp::now() - killed.elapsed();
    let gap = acquired.duration_since(killed_at);
    assert!(
        gap <= jiff::SignedDuration::from_secs(6 + 2 + 1),
        "{new_holder} acquired the Lease {gap:?} after the leader was killed; it lasts 6 s"
    );
    // The new leader polls.
    scene.set_created("0", 42);
    request_refresh(&scene.watches, "pools", "new-leader").await;
    scene
        .wait("pools", "polled by the new leader", SOON, |w| {
            created(w) == Some(42)
        })
        .await;
    assert!(scene.statistics_requests_from("0", &standby) >= 1);

    // SIGTERM: gone within 10 s, the Lease released.
    standby.signal("TERM");
    assert!(
        standby.wait_exit(Duration::from_secs(10)),
        "the leader did not stop within 10 s of SIGTERM"
    );
    let after = holder().await.unwrap_or_default();
    assert!(
        after.is_empty(),
        "the Lease is still held by {after:?} after SIGTERM"
    );
}

// ---- Upstream faults ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn refused_connections_keep_the_counts_then_turn_ready_false_and_recover() {
    let scene = new_scene("refused").await;
    let upstream = simulator::start().await;
    let addr = upstream.addr();
    scene
        .create_watch_with(
            "pools",
            "0",
            "creds",
            json!({"endpoint": upstream.base_url()}),
        )
        .await;
    let operator = scene.spawn_operator(&["--upstream-timeout", "3s"]);
    scene.ready("pools").await;
    upstream.shutdown().await;
    // The operator's own record of its last success, from a running operator.
    let series = format!(
        r#"poolwatch_last_success_timestamp_seconds{{namespace="{}",name="pools"}}"#,
        scene.namespace.name
    );
    let last_success = metric(&operator.metrics().await, &series);
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    assert!(
        last_success > now - 60.0 && last_success <= now,
        "{series} is {last_success}, now is {now}"
    );

    // Within the freshness window (3 intervals = 90 s) the last counts stay, Ready True.
    scene
        .wait(
            "pools",
            "NetworkError with the counts kept",
            Duration::from_secs(45),
            |w| kept_counts_with(w, "NetworkError", 9),
        )
        .await;
    // After it, Ready False with the reason, and still the last counts.
    let stale = scene
        .wait(
            "pools",
            "Ready False after 3 intervals",
            Duration::from_secs(120),
            |w| has_condition(w, "Ready", "False", "NetworkError"),
        )
        .await;
    assert_eq!(created(&stale), Some(9));
    assert!(has_condition(&stale, "Stalled", "False", "NetworkError"));
    // When it turned False, by the operator's own clock: three intervals (90 s) after the last
    // success, not before, and not as late as the next retry (up to an interval later).
    let flipped = stale
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == "Ready")
        .map(|c| c.last_transition_time.0.as_second() as f64)
        .expect("a Ready condition");
    let after = flipped - last_success;
    assert!(
        (89.0..=95.0).contains(&after),
        "Ready turned False {after:.1} s after the last success; three intervals are 90 s"
    );

    let mut config = SimulatorConfig::new(simulator::setup());
    config.listen = addr;
    let _back = simulator::start_with(config).await;
    // Backoff is capped at the interval (30 s ± 10%).
    scene
        .wait("pools", "Ready again", Duration::from_secs(45), |w| {
            has_condition(w, "Ready", "True", "Synced")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_upstream_times_out_without_delaying_other_watches_and_slow_answers_succeed() {
    let scene = new_scene("hung").await;
    scene.set_created("hung", 5);
    scene.set_created("slow", 6);
    for (name, workspace) in [("hung", "hung"), ("slow", "slow"), ("fine", "0")] {
        scene.create_watch(name, workspace, "creds").await;
    }
    // Long enough that the hung request is surely still in flight when the other watches
    // are answered, however loaded the machine.
    let _operator = scene.spawn_operator(&["--upstream-timeout", "8s"]);
    for name in ["hung", "slow", "fine"] {
        scene.ready(name).await;
    }
    scene
        .simulator
        .inject(Fault::new(FaultKind::Hang).for_workspace("hung"));
    scene
        .simulator
        .inject(Fault::new(FaultKind::Latency { millis: 2200 }).for_workspace("slow"));
    scene.set_created("0", 10);
    scene.set_created("slow", 11);

    for name in ["hung", "slow", "fine"] {
        request_refresh(&scene.watches, name, "now").await;
    }
    scene
        .wait("fine", "showing new counts", SOON, |w| {
            created(w) == Some(10)
        })
        .await;
    // Answered while the hung call still waits for its timeout: nothing queued behind it.
    let hung = scene.watches.get("hung").await.expect("the hung watch");
    assert!(
        has_condition(&hung, "Ready", "True", "Synced") && scene.simulator.stats().in_flight >= 1,
        "a hung upstream delayed another watch: it had already timed out ({:?})",
        hung.status
    );
    let slow = scene
        .wait("slow", "showing new counts", SOON, |w| {
            created(w) == Some(11)
        })
        .await;
    assert!(has_condition(&slow, "Ready", "True", "Synced"));
    let hung = scene
        .wait(
            "hung",
            "Timeout with the counts kept",
            Duration::from_secs(40),
            |w| kept_counts_with(w, "Timeout", 5),
        )
        .await;
    assert!(message(&hung, "Ready").contains("last good counts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bursts_and_throttling_storms_keep_the_counts_and_honour_retry_after() {
    let scene = new_scene("storms").await;
    for ws in ["burst", "storm", "storm-ra"] {
        scene.set_created(ws, 7);
        scene.create_watch(ws, ws, "creds").await;
    }
    let _operator = scene.spawn_operator(&[]);
    for ws in ["burst", "storm", "storm-ra"] {
        scene.ready(ws).await;
    }
    scene
        .simulator
        .inject(Fault::status(503).times(4).for_workspace("burst"));
    scene
        .simulator
        .inject(Fault::status(502).times(4).for_workspace("burst"));
    scene
        .simulator
        .inject(Fault::status(429).for_workspace("storm"));
    scene.simulator.inject(
        Fault::status(429)
            .retry_after("40")
            .for_workspace("storm-ra"),
    );
    for ws in ["burst", "storm", "storm-ra"] {
        request_refresh(&scene.watches, ws, "storm").await;
    }

    scene
        .wait(
            "burst",
            "UpstreamUnavailable with the counts kept",
            SOON,
            |w| kept_counts_with(w, "UpstreamUnavailable", 7),
        )
        .await;
    scene
        .wait("storm", "Throttled with the counts kept", SOON, |w| {
            kept_counts_with(w, "Throttled", 7)
        })
        .await;
    scene
        .wait("storm-ra", "Throttled with the counts kept", SOON, |w| {
            kept_counts_with(w, "Throttled", 7)
        })
        .await;

    // With Retry-After: 40 s, the whole window passes before the next request (the
    // simulator's own answer times).
    let throttled = |workspace: &str| {
        RequestFilter::api(SimulatorApi::Statistics)
            .with_workspace(workspace)
            .with_status(429)
    };
    let storm_ra = eventually(
        "the retry after Retry-After: 40",
        Duration::from_secs(60),
        || async {
            let times = scene.simulator.request_times(&throttled("storm-ra"));
            (times.len() >= 2).then_some(times)
        },
    )
    .await;
    let gap = storm_ra[1] - storm_ra[0];
    assert!(
        gap >= Duration::from_millis(39_950),
        "Retry-After: 40 was not honoured: the next request came {gap:?} later"
    );
    // Without Retry-After: exponential backoff (5 s, 10 s, …), each poll at most 3 attempts,
    // so at most three polls in the storm's first 20 s; a retry loop would make dozens.
    let storm = scene.simulator.request_times(&throttled("storm"));
    let first_20_s = storm
        .iter()
        .filter(|at| **at - storm[0] <= Duration::from_secs(20))
        .count();
    assert!(
        first_20_s <= 9,
        "{first_20_s} requests in the first 20 s of a 429 storm: no backoff"
    );

    // The burst is over by itself (8 failed answers); the next poll recovers.
    scene.set_created("burst", 8);
    scene
        .wait(
            "burst",
            "recovered with new counts",
            Duration::from_secs(45),
            |w| has_condition(w, "Ready", "True", "Synced") && created(w) == Some(8),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_keep_the_counts_and_a_32_mib_body_is_never_held_whole() {
    let scene = new_scene("bodies").await;
    let cases = ["truncated", "oversized", "invalid-json", "wrong-shape"];
    for ws in cases {
        scene.set_created(ws, 3);
        scene.create_watch(ws, ws, "creds").await;
    }
    let operator = scene.spawn_operator(&[]);
    for ws in cases {
        scene.ready(ws).await;
    }
    let faults = [
        FaultKind::Truncated,
        FaultKind::Oversized { bytes: 32 << 20 },
        FaultKind::InvalidJson,
        FaultKind::WrongShape,
    ];
    for (ws, kind) in cases.iter().zip(faults) {
        scene.simulator.inject(Fault::new(kind).for_workspace(*ws));
    }
    // The peak from here on: a 32 MiB body read whole would raise it by 32 MiB or more; read
    // up to the 16 KiB limit of a statistics answer, by a little (0.1 MiB measured, buffers and
    // JSON included; 3 MiB when the limit was 1 MiB).
    let memory_before = resident_kib(operator.pid());
    reset_peak_resident(operator.pid());
    let invalid = r#"poolwatch_polls_total{result="InvalidResponse"}"#;
    for round in 0..4 {
        let before = metric(&operator.metrics().await, invalid);
        for ws in cases {
            request_refresh(&scene.watches, ws, &format!("bad-{round}")).await;
        }
        eventually("four invalid answers", SOON, || async {
            (metric(&operator.metrics().await, invalid) >= before + 4.0).then_some(())
        })
        .await;
    }
    for ws in cases {
        let watch = scene
            .wait(ws, "InvalidResponse with the counts kept", SOON, |w| {
                kept_counts_with(w, "InvalidResponse", 3)
            })
            .await;
        assert!(!message(&watch, "Ready").is_empty());
    }
    let peak = peak_resident_kib(operator.pid());
    assert!(
        peak < memory_before + 2 * 1024,
        "memory peaked at {peak} KiB from {memory_before} KiB on 32 MiB bodies: read whole?"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_is_refused_unless_its_ca_is_configured() {
    let pki = TestPki::new();
    let mut config = SimulatorConfig::new(simulator::setup());
    config.tls = Some(pki.server.clone());
    let tls_simulator = simulator::start_with(config).await;
    assert!(tls_simulator.base_url().starts_with("https://"));
    let scene = scene_on(TestNamespace::new("tls").await, tls_simulator).await;
    scene.create_watch("pools", "0", "creds").await;

    let untrusting = scene.spawn_operator(&[]);
    let refused = scene
        .wait("pools", "refused over TLS", SOON, |w| {
            has_condition(w, "Ready", "False", "NetworkError")
        })
        .await;
    let text = message(&refused, "Ready").to_lowercase();
    assert!(
        text.contains("certificate"),
        "the condition should say the certificate is not trusted: {text}"
    );
    assert_eq!(counts(&refused), None);
    drop(untrusting);

    let dir = scratch_dir("tls");
    let ca = pki.write_ca(&dir);
    let _trusting = scene.spawn_operator(&["--ca-bundle", ca.to_str().expect("a UTF-8 path")]);
    scene
        .wait(
            "pools",
            "Ready with the CA configured",
            Duration::from_secs(45),
            |w| has_condition(w, "Ready", "True", "Synced"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clock_skew_refusal_stalls_with_a_reason_that_names_the_clock() {
    let mut config = SimulatorConfig::new(simulator::setup());
    config.clock = poolwatch::modelarts::Clock::from_fn(|| {
        std::time::SystemTime::now() + Duration::from_secs(3600)
    });
    let scene = scene_on(
        TestNamespace::new("skew").await,
        simulator::start_with(config).await,
    )
    .await;
    scene.create_watch("pools", "0", "creds").await;
    let _operator = scene.spawn_operator(&[]);
    let watch = scene
        .wait("pools", "Stalled on clock skew", SOON, |w| {
            has_condition(w, "Stalled", "True", "ClockSkew")
        })
        .await;
    assert!(has_condition(&watch, "Ready", "False", "ClockSkew"));
    assert!(
        message(&watch, "Stalled").to_lowercase().contains("clock"),
        "{:?}",
        message(&watch, "Stalled")
    );
}

// ---- Bad input ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn specs_the_schema_accepts_but_cannot_work_stall_naming_the_field() {
    let scene = new_scene("wrong-specs").await;
    scene
        .create_watch_with(
            "unknown-region",
            "0",
            "creds",
            json!({"endpoint": null, "projectId": null, "region": "xx-nowhere-9"}),
        )
        .await;
    scene
        .create_watch_with(
            "endpoint-path",
            "0",
            "creds",
            json!({"endpoint": "https://modelarts.example.internal/v2/pools"}),
        )
        .await;
    let mut operator = scene.spawn_operator(&[]);
    for (name, field) in [
        ("unknown-region", "spec.region"),
        ("endpoint-path", "spec.endpoint"),
    ] {
        let watch = scene
            .wait(name, "Stalled InvalidSpec", SOON, |w| {
                has_condition(w, "Stalled", "True", "InvalidSpec")
            })
            .await;
        assert!(has_condition(&watch, "Ready", "False", "InvalidSpec"));
        let text = message(&watch, "Stalled");
        assert!(text.contains(field), "{name}: {text:?} should name {field}");
    }
    assert!(
        !operator.wait_exit(Duration::from_millis(100)),
        "the operator exited"
    );
    assert_eq!(
        scene.simulator.stats().total,
        0,
        "no upstream call for bad specs"
    );
}

// ---- Security -------------------------------------------------------------------------------

/// A secret key the simulator does not know for `AK`: refused with 401.
const WRONG_SK: &str = "wrong-secret-key-5e5e-never-print-me-a1a1";

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_logs_events_statuses_errors_or_metrics() {
    let scene = new_scene("no-leaks").await;
    scene
        .create_secret_with(
            "wrong",
            &[("accessKeyId", AK), ("secretAccessKey", WRONG_SK)],
        )
        .await;
    scene
        .create_secret_with(
            "temporary",
            &[
                ("accessKeyId", TEMP_AK),
                ("secretAccessKey", TEMP_SK),
                ("securityToken", TOKEN),
            ],
        )
        .await;
    scene.set_created("echo", 1);
    scene.set_created("temp-echo", 1);
    // A gateway that echoes what it got, the request's own secrets included, in its 401 and
    // 5xx bodies.
    let echo = |ak: &str, sk: &str, token: &str| {
        format!(
            "verify aksk signature fail: Authorization SDK-HMAC-SHA256 Access={ak}, \
             Signature=abc; sk={sk}; X-Security-Token: {token}"
        )
    };
    scene.simulator.inject(
        Fault::status(401)
            .error("APIGW.0301", echo(AK, SK, ""))
            .for_workspace("echo"),
    );
    scene.simulator.inject(
        Fault::status(500)
            .error("ModelArts.0001", echo(TEMP_AK, TEMP_SK, TOKEN))
            .for_workspace("temp-echo"),
    );
    scene.create_watch("good", "0", "creds").await;
    scene.create_watch("refused", "0", "wrong").await;
    scene.create_watch("temporary", "0", "temporary").await;
    scene.create_watch("echo", "echo", "creds").await;
    scene
        .create_watch("temp-echo", "temp-echo", "temporary")
        .await;
    let operator = scene.spawn_operator_logging("trace", &[]);
    scene.ready("good").await;
    scene.ready("temporary").await;
    scene
        .wait("refused", "Stalled", SOON, |w| {
            has_condition(w, "Stalled", "True", "AuthenticationFailed")
        })
        .await;
    scene
        .wait("echo", "Stalled", SOON, |w| {
            has_condition(w, "Stalled", "True", "AuthenticationFailed")
        })
        .await;
    scene
        .wait("temp-echo", "failing", SOON, |w| {
            condition(w, "Ready").is_some_and(|(_, reason)| reason == "UpstreamUnavailable")
        })
        .await;

    let mut produced = vec![
        ("logs", operator.logs().join("\n")),
        ("metrics", operator.metrics().await),
    ];
    for kind in ["psw", "events"] {
        let text =
            run(scene.namespace.kubectl().args(["get", kind, "-o", "json"])).expect("kubectl get");
        produced.push((kind, text));
    }
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["fetch", "--endpoint", &scene.simulator.base_url()])
        .args(["--project-id", PROJECT, "--workspace-id", "temp-echo"])
        .env("HUAWEICLOUD_SDK_AK", TEMP_AK)
        .env("HUAWEICLOUD_SDK_SK", TEMP_SK)
        .env("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN)
        .output()
        .expect("poolwatch fetch runs");
    produced.push((
        "fetch output",
        format!(
            "{}{}",
            String::from_utf8_lossy(&cli.stdout),
            String::from_utf8_lossy(&cli.stderr)
        ),
    ));
    assert!(
        produced[0].1.contains("\"level\":\"TRACE\""),
        "the operator logged at trace level"
    );
    for secret in [SK, TEMP_SK, TOKEN, WRONG_SK] {
        let encoded = STANDARD.encode(secret.as_bytes());
        for (what, text) in &produced {
            assert!(!text.contains(secret), "{what} holds a secret:\n{text}");
            assert!(
                !text.contains(&encoded),
                "{what} holds a base64 secret:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_cannot_read_a_secret_of_another_namespace() {
    let scene = new_scene("secret-scope").await;
    let other = TestNamespace::new("secret-scope-other").await;
    put_secret(
        &other,
        "elsewhere",
        &[("accessKeyId", AK), ("secretAccessKey", SK)],
    )
    .await;
    scene.create_watch("pools", "0", "elsewhere").await;
    let namespaces = format!("{},{}", scene.namespace.name, other.name);
    let _operator = Operator::start_on(
        &scene.plane().kubeconfig,
        &namespaces,
        "poolwatch=debug,info",
        &[],
    );
    scene
        .wait("pools", "Stalled CredentialsNotFound", SOON, |w| {
            has_condition(w, "Stalled", "True", "CredentialsNotFound")
        })
        .await;
    let own = scene
        .namespace
        .audit_events_until(Duration::from_secs(10), |events| {
            events.iter().any(|e| {
                e["objectRef"]["resource"] == "secrets" && e["objectRef"]["name"] == "elsewhere"
            })
        })
        .await;
    assert!(own.iter().any(|e| {
        e["objectRef"]["resource"] == "secrets"
            && e["verb"] == "get"
            && e["responseStatus"]["code"] == 404
    }));
    let read_elsewhere: Vec<Value> = other
        .settled_audit_events()
        .await
        .into_iter()
        .filter(|e| {
            e["objectRef"]["resource"] == "secrets"
                && e["userAgent"]
                    .as_str()
                    .is_some_and(|agent| agent.starts_with("poolwatch/"))
        })
        .collect();
    assert!(
        read_elsewhere.is_empty(),
        "the operator read Secrets of another namespace: {read_elsewhere:?}"
    );
    assert_eq!(scene.simulator.stats().total, 0);
}
