//! The credentials' lifecycle with the real binary: keys rotated in the Secret, keys refused
//! after a rotation, a Secret shared by several watches, and a watch stalled on its Secret. What
//! the operator reads is counted in the API server's audit log; which keys it signed with, at
//! the simulator.

use std::time::Duration;

use crate::support::operator::{
    condition, eventually, has_condition, request_refresh, wait_for_watch,
};
use crate::support::simulator::{self, AK, SK};
use crate::support::world::{SOON, World};
use poolwatch::simulator::{Api as SimulatorApi, Fault, KeyConfig, RequestFilter};
use serde_json::Value;

/// The README's reuse window: a Secret read serves every poll for 10 s.
const SECRET_REUSE: Duration = Duration::from_secs(10);
/// The README's re-check period of a watch stalled on its Secret.
const SECRET_RECHECK: Duration = Duration::from_secs(15);
/// A scheduled poll's latest moment: the 30 s interval plus its 10 % jitter, and some slack.
const NEXT_SCHEDULED_POLL: Duration = Duration::from_secs(45);

/// The rotated-to key.
const NEW_AK: &str = "TESTAKROTATED0000001";
const NEW_SK: &str = "rotated-secret-key-5e1f-never-print-me";

/// The simulator's keys: the test setup's, plus the rotated-to key; without [`AK`] once it is
/// `revoked`.
fn keys(world: &World, revoked: bool) {
    let mut setup = simulator::setup();
    setup.credentials.push(KeyConfig {
        access_key_id: NEW_AK.to_owned(),
        secret_access_key: NEW_SK.to_owned(),
        security_token: None,
    });
    if revoked {
        setup.credentials.retain(|k| k.access_key_id != AK);
    }
    world.simulator.replace_setup(setup);
}

/// Statistics requests signed with `access_key_id` that got `status`.
fn signed_with(world: &World, access_key_id: &str, status: u16) -> u64 {
    world.simulator.requests_served(&RequestFilter {
        access_key_id: Some(access_key_id.to_owned()),
        ..RequestFilter::api(SimulatorApi::Statistics).with_status(status)
    })
}

/// When the operator read Secret `name`, from the audit log (settled), oldest first (the log is
/// in the order requests completed).
async fn secret_reads(world: &World, name: &str) -> Vec<jiff::Timestamp> {
    let mut times: Vec<jiff::Timestamp> = world
        .namespace
        .settled_audit_events()
        .await
        .iter()
        .filter(|e| {
            e["objectRef"]["resource"] == "secrets"
                && e["objectRef"]["name"] == name
                && e["verb"] == "get"
                && e["stage"] == "ResponseComplete"
                && e["userAgent"]
                    .as_str()
                    .is_some_and(|agent| agent.starts_with("poolwatch/"))
        })
        .map(received_at)
        .collect();
    times.sort();
    times
}

fn received_at(event: &Value) -> jiff::Timestamp {
    event["requestReceivedTimestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("an audit event without a time: {event}"))
}

/// The gaps between consecutive times.
fn gaps(times: &[jiff::Timestamp]) -> Vec<Duration> {
    times
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]).unsigned_abs())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotated_in_the_secret_are_used_from_the_next_poll_on() {
    let world = World::running("rotate").await;
    keys(&world, false);
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;
    let with_old_key = signed_with(&world, AK, 200);
    assert!(with_old_key >= 1);

    world.create_secret("creds", NEW_AK, NEW_SK).await;
    eventually(
        "the next scheduled poll, with the rotated key",
        NEXT_SCHEDULED_POLL,
        || async { (signed_with(&world, NEW_AK, 200) >= 1).then_some(()) },
    )
    .await;
    assert_eq!(
        signed_with(&world, AK, 200),
        with_old_key,
        "a poll after the rotation still signed with the old key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_refused_after_a_rotation_make_the_operator_read_the_secret_again_at_once() {
    let world = World::running("rotate-401").await;
    keys(&world, false);
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;

    // A refresh reads the Secret (old keys) and meets a 503 that asks for a retry in 5 s,
    // which the client waits for and retries with the keys it has.
    world.simulator.inject(
        Fault::status(503)
            .for_workspace("0")
            .retry_after("5")
            .times(1),
    );
    request_refresh(&world.watches, "pools", "meet-503").await;
    eventually("the 503", SOON, || async {
        (world
            .simulator
            .requests_served(&RequestFilter::api(SimulatorApi::Statistics).with_status(503))
            >= 1)
            .then_some(())
    })
    .await;
    // Meanwhile the keys are rotated and the old one revoked.
    world.create_secret("creds", NEW_AK, NEW_SK).await;
    keys(&world, true);

    // The retry signs with the old keys, is refused, and the operator reads the Secret again
    // at once and polls with the new keys: the watch never stalls.
    eventually("a poll with the new keys", SOON, || async {
        (signed_with(&world, NEW_AK, 200) >= 1).then_some(())
    })
    .await;
    assert_eq!(
        signed_with(&world, AK, 401),
        1,
        "the retry did not use the old keys: the rotation came too late for this test"
    );
    let watch = world.watches.get("pools").await.expect("the watch");
    assert!(
        has_condition(&watch, "Ready", "True", "Synced"),
        "{:?}",
        watch.status
    );
    let metrics = world.operator().metrics().await;
    assert!(
        !metrics.contains(r#"poolwatch_polls_total{result="AuthenticationFailed"}"#),
        "the refused keys failed a poll instead of being replaced: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_sharing_a_secret_read_it_at_most_once_per_reuse_window() {
    let world = World::running("secret-reuse").await;
    let workspaces = ["0", "ws-partial", "r2", "r3", "r4"];
    for (i, workspace) in workspaces.iter().enumerate() {
        world.set_created(workspace, i as i64);
        world
            .create_watch(&format!("pools-{i}"), workspace, "creds")
            .await;
    }
    for i in 0..workspaces.len() {
        world.ready(&format!("pools-{i}")).await;
    }
    // New watches read the Secret for their first poll each; from now on only scheduled polls
    // run, which share reads.
    let first_polls: u64 = workspaces
        .iter()
        .map(|w| world.statistics_requests(w))
        .sum();
    let reads_before = secret_reads(&world, "creds").await.len();
    eventually(
        "every watch's next scheduled poll",
        NEXT_SCHEDULED_POLL,
        || async {
            workspaces
                .iter()
                .all(|w| world.statistics_requests(w) >= 2)
                .then_some(())
        },
    )
    .await;
    let polls: u64 = workspaces
        .iter()
        .map(|w| world.statistics_requests(w))
        .sum::<u64>()
        - first_polls;
    let reads = secret_reads(&world, "creds").await;
    let scheduled_reads = &reads[reads_before..];
    assert!(
        !scheduled_reads.is_empty(),
        "the scheduled polls read no Secret"
    );
    assert!(
        (scheduled_reads.len() as u64) < polls,
        "{} Secret reads for {polls} polls within one jitter window",
        scheduled_reads.len()
    );
    // Reads of one Secret are at least the reuse window apart (less the first read's own
    // latency, which the window starts after).
    for gap in gaps(scheduled_reads) {
        assert!(
            gap + Duration::from_millis(500) >= SECRET_REUSE,
            "Secret reads {gap:?} apart: {scheduled_reads:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_keys_stall_and_the_secret_is_rechecked_every_15_s_until_it_is_fixed() {
    let world = World::new("bad-keys").await;
    world.create_secret("creds", AK, "not-the-secret-key").await;
    let world = world.start_operator(&[]);
    world.create_watch("pools", "0", "creds").await;

    let watch = wait_for_watch(&world.watches, "pools", "stalled", SOON, |w| {
        has_condition(w, "Stalled", "True", "AuthenticationFailed")
    })
    .await;
    assert!(has_condition(
        &watch,
        "Ready",
        "False",
        "AuthenticationFailed"
    ));
    // Read for the poll, read again at once after the 401 (unchanged), then re-checked every
    // 15 s; no call with the refused keys meanwhile.
    let reads = eventually(
        "two re-checks of the Secret",
        SECRET_RECHECK * 3 + SOON,
        || async {
            let reads = secret_reads(&world, "creds").await;
            (reads.len() >= 4).then_some(reads)
        },
    )
    .await;
    let gaps = gaps(&reads);
    assert!(
        gaps[0] < Duration::from_secs(5),
        "the Secret was not read again at once after the 401: {reads:?}"
    );
    for gap in &gaps[1..] {
        assert!(
            *gap + Duration::from_millis(500) >= SECRET_RECHECK,
            "the stalled watch re-read its Secret {gap:?} after the last time: {reads:?}"
        );
    }
    assert_eq!(
        signed_with(&world, AK, 401),
        1,
        "refused keys were tried again without a change to the Secret"
    );

    world.create_secret("creds", AK, SK).await;
    wait_for_watch(
        &world.watches,
        "pools",
        "Ready with fixed keys",
        SECRET_RECHECK + SOON,
        |w| {
            has_condition(w, "Ready", "True", "Synced")
                && has_condition(w, "Stalled", "False", "Synced")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_stalls_until_it_is_created() {
    let world = World::new("no-secret").await.start_operator(&[]);
    world.create_watch("pools", "0", "creds").await;
    let watch = wait_for_watch(&world.watches, "pools", "stalled", SOON, |w| {
        has_condition(w, "Stalled", "True", "CredentialsNotFound")
    })
    .await;
    let (_, reason) = condition(&watch, "Ready").unwrap();
    assert_eq!(reason, "CredentialsNotFound");
    assert_eq!(world.statistics_requests("0"), 0);

    world.create_secret("creds", AK, SK).await;
    wait_for_watch(
        &world.watches,
        "pools",
        "Ready once the Secret exists",
        Duration::from_secs(40),
        |w| has_condition(w, "Ready", "True", "Synced"),
    )
    .await;
}
