//! End to end: the real `poolwatch run` binary against the local Kubernetes control plane and the
//! ModelArts simulator. Each test has its own namespace, simulator and operator process.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::control_plane::{repo_path, run, summarise};
use crate::support::operator::{
    LEASE, Operator, eventually, has_condition, leader_election_flags, lease_holder,
    request_refresh, wait_for_watch,
};
use crate::support::series::{exposed_series, family};
use crate::support::simulator::{AK, OPERATION_TIME, PROJECT, SK};
use crate::support::world::{ANY_WATCH, SOON, World, counts, example_counts};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use poolwatch::simulator::{Api as SimulatorApi, Fault, RequestFilter, SimulatedCounts};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_becomes_ready_with_the_counts_and_kubectl_shows_and_waits_for_it() {
    let world = World::running("ready").await;
    world.create_watch("pools", "0", "creds").await;

    run(world.namespace.kubectl().args([
        "wait",
        "--for=condition=Ready",
        "--timeout=30s",
        "psw/pools",
    ]))
    .expect("kubectl wait succeeds");
    let watch = world.watches.get("pools").await.unwrap();
    let status = watch.status.clone().expect("a status");
    assert_eq!(status.pools, Some(example_counts()));
    assert_eq!(status.operation_time.as_deref(), Some(OPERATION_TIME));
    assert_eq!(status.project_id.as_deref(), Some(PROJECT));
    assert_eq!(status.observed_generation, Some(1));
    assert!(has_condition(&watch, "Stalled", "False", "Synced"));
    assert!(has_condition(&watch, "Reconciling", "False", "Synced"));
    assert!(has_condition(
        &watch,
        "PoolsHealthy",
        "True",
        "NoFailedPools"
    ));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );

    let table = run(world.namespace.kubectl().args(["get", "psw", "-o", "wide"])).unwrap();
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..6], ["pools", "True", "9", "0", "0", "0"], "{table}");
    assert!(
        table.contains(PROJECT) && table.contains("Synced"),
        "{table}"
    );

    let metrics = eventually("the pool series", SOON, || async {
        let text = world.operator().metrics().await;
        text.contains(r#"state="created"} 9"#).then_some(text)
    })
    .await;
    let series = format!(
        r#"poolwatch_pools{{namespace="{}",name="pools",state="deleting"}} 1"#,
        world.namespace.name
    );
    assert!(metrics.contains(&series), "{metrics}");
    assert!(
        metrics.contains(r#"poolwatch_polls_total{result="success"}"#),
        "{metrics}"
    );

    // `kubectl describe` finds the watch's events by field selector, as in any cluster.
    let described = eventually(
        "the first-success event in kubectl describe",
        SOON,
        || async {
            let text = run(world.namespace.kubectl().args(["describe", "psw", "pools"])).unwrap();
            let events = text
                .split_once("\nEvents:")
                .map(|(_, events)| events.to_owned())?;
            events.contains("FirstSync").then_some(text)
        },
    )
    .await;
    assert!(described.contains("Normal"), "{described}");
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_changing_upstream_reach_the_status_and_unchanged_counts_write_nothing() {
    let world = World::running("counts-change").await;
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;
    world
        .simulator
        .set_counts(PROJECT, "0", SimulatedCounts::new(1, 9, 2, 0, 1));

    // The scheduled poll (30 s ± 10 %) brings the new counts.
    let watch = wait_for_watch(
        &world.watches,
        "pools",
        "updated",
        Duration::from_secs(45),
        |w| counts(w).and_then(|c| c.failed) == Some(2),
    )
    .await;
    assert!(has_condition(
        &watch,
        "PoolsHealthy",
        "False",
        "PoolsFailed"
    ));
    // Users see it in `kubectl get events` too, as a Warning about the watch.
    let event = eventually("the PoolsFailed event", SOON, || async {
        let text = run(world.namespace.kubectl().args([
            "get",
            "events",
            "--field-selector",
            "reason=PoolsFailed",
            "-o",
            "json",
        ]))
        .ok()?;
        let list: serde_json::Value = serde_json::from_str(&text).ok()?;
        list["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(event["type"], "Warning", "{event}");
    assert_eq!(event["involvedObject"]["name"], "pools", "{event}");
    assert_eq!(
        event["involvedObject"]["kind"], "PoolStatisticsWatch",
        "{event}"
    );
    let version = watch.metadata.resource_version.clone();
    let writes = world.status_writes("pools").await;
    let polls = world.statistics_requests("0");

    // The next scheduled poll finds the same counts: no status write, same resourceVersion.
    eventually(
        "another scheduled poll",
        Duration::from_secs(45),
        || async { (world.statistics_requests("0") > polls).then_some(()) },
    )
    .await;
    // Whatever that poll led to has reached the audit log once the count has settled.
    let writes_after = world.status_writes("pools").await;
    let after = world.watches.get("pools").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, version,
        "an unchanged poll rewrote the object"
    );
    assert_eq!(
        writes_after,
        writes,
        "{}",
        summarise(&world.namespace.audit_events())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_refresh_annotation_and_spec_changes_poll_at_once() {
    let world = World::running("refresh").await;
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;

    world
        .simulator
        .set_counts(PROJECT, "0", SimulatedCounts::new(0, 10, 0, 0, 0));
    request_refresh(&world.watches, "pools", "first").await;
    wait_for_watch(&world.watches, "pools", "refreshed", SOON, |w| {
        counts(w).and_then(|c| c.created) == Some(10)
    })
    .await;

    world
        .patch_spec("pools", json!({"workspaceId": "ws-partial"}))
        .await;
    // Done with the new generation: Reconciling False (while it is True, Ready may still show
    // the old workspace's answer).
    let watch = wait_for_watch(&world.watches, "pools", "on the new workspace", SOON, |w| {
        w.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
            && has_condition(w, "Reconciling", "False", "Synced")
            && has_condition(w, "Ready", "True", "Synced")
    })
    .await;
    let pools = counts(&watch).unwrap();
    assert_eq!(
        (pools.created, pools.failed, pools.creating),
        (Some(3), Some(2), None),
        "absent counts stay absent"
    );
    assert!(has_condition(&watch, "Reconciling", "False", "Synced"));
    assert!(
        watch
            .status
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_keep_ready_and_the_last_counts() {
    let world = World::running("transient").await;
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;

    world.simulator.inject(Fault::status(500).times(100));
    request_refresh(&world.watches, "pools", "during-5xx").await;
    let watch = wait_for_watch(&world.watches, "pools", "showing the failure", SOON, |w| {
        has_condition(w, "Ready", "True", "UpstreamUnavailable")
    })
    .await;
    assert_eq!(
        counts(&watch),
        Some(example_counts()),
        "the last good counts stay"
    );
    assert!(has_condition(
        &watch,
        "Stalled",
        "False",
        "UpstreamUnavailable"
    ));

    world.simulator.clear_faults();
    request_refresh(&world.watches, "pools", "after-5xx").await;
    world.ready("pools").await;
    let events = run(world
        .namespace
        .kubectl()
        .args(["get", "events", "-o", "json"]))
    .unwrap();
    assert!(events.contains("Recovered"), "a recovery event: {events}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_with_retry_after_is_honoured() {
    let world = World::running("throttled").await;
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;

    world.simulator.inject(Fault::status(429).retry_after("25"));
    request_refresh(&world.watches, "pools", "throttled").await;
    wait_for_watch(&world.watches, "pools", "throttled", SOON, |w| {
        has_condition(w, "Ready", "True", "Throttled")
    })
    .await;
    // The retry waits for the whole Retry-After (25 s, longer than any backoff), and not
    // much more: measured between the simulator's own answers.
    let throttled = RequestFilter::api(SimulatorApi::Statistics)
        .with_workspace("0")
        .with_status(429);
    let times = eventually(
        "the retry after Retry-After",
        Duration::from_secs(45),
        || async {
            let times = world.simulator.request_times(&throttled);
            (times.len() >= 2).then_some(times)
        },
    )
    .await;
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_millis(24_950) && gap <= Duration::from_secs(35),
        "the retry came {gap:?} after a 429 with Retry-After: 25"
    );
    world.simulator.clear_faults();
    wait_for_watch(
        &world.watches,
        "pools",
        "recovered",
        Duration::from_secs(40),
        |w| has_condition(w, "Ready", "True", "Synced"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_stops_polling_and_keeps_the_counts() {
    let world = World::running("suspend").await;
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;

    world.patch_spec("pools", json!({"suspend": true})).await;
    let watch = wait_for_watch(&world.watches, "pools", "suspended", SOON, |w| {
        has_condition(w, "Ready", "False", "Suspended")
    })
    .await;
    assert_eq!(counts(&watch), Some(example_counts()));
    let polls = world.statistics_requests("0");
    request_refresh(&world.watches, "pools", "while-suspended").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        world.statistics_requests("0"),
        polls,
        "a suspended watch polled"
    );

    world.patch_spec("pools", json!({"suspend": false})).await;
    world.ready("pools").await;
    assert!(world.statistics_requests("0") > polls);
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_of_one_target_share_one_call() {
    let world = World::running("shared").await;
    world.create_watch("first", "0", "creds").await;
    world.create_watch("second", "0", "creds").await;
    world.ready("first").await;
    world.ready("second").await;
    let start = world.statistics_requests("0");
    assert!(start <= 2, "first polls: {start}");

    // One interval later both are due; one call serves both.
    eventually("a scheduled poll", Duration::from_secs(45), || async {
        (world.statistics_requests("0") > start).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        world.statistics_requests("0"),
        start + 1,
        "two watches of one target called twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_watch_stops_its_polls_and_removes_its_metrics() {
    let world = World::running("delete").await;
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;
    let name_label = r#"name="pools""#;
    eventually("its series", SOON, || async {
        world
            .operator()
            .metrics()
            .await
            .contains(name_label)
            .then_some(())
    })
    .await;

    world
        .watches
        .delete("pools", &DeleteParams::default())
        .await
        .unwrap();
    eventually("its series gone", SOON, || async {
        (!world.operator().metrics().await.contains(name_label)).then_some(())
    })
    .await;
    let polls = world.statistics_requests("0");
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(
        world.statistics_requests("0"),
        polls,
        "a deleted watch was polled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_operator_writes_nothing_and_spreads_the_polls_of_current_watches() {
    const WATCHES: usize = 50;
    let world = World::new("restart-spread").await.with_credentials().await;
    let mut first = world.spawn_operator(&[]);
    let workspaces: Vec<String> = (0..WATCHES).map(|i| format!("w{i}")).collect();
    for (i, workspace) in workspaces.iter().enumerate() {
        world.set_created(workspace, i as i64);
        world
            .create_watch(&format!("pools-{i}"), workspace, "creds")
            .await;
    }
    for i in 0..WATCHES {
        world.ready(&format!("pools-{i}")).await;
    }
    first.signal("TERM");
    assert!(first.wait_exit(Duration::from_secs(10)));

    let restarted = world.spawn_operator(&[]);
    // The restarted replica's first poll of each watch, timed by the simulator.
    let first_polls = eventually(
        "every watch polled by the restarted operator",
        Duration::from_secs(90),
        || async {
            let mut firsts = Vec::new();
            for workspace in &workspaces {
                let filter = RequestFilter::api(SimulatorApi::Statistics)
                    .with_workspace(workspace.as_str())
                    .with_user_agent_containing(restarted.agent_marker());
                firsts.push(*world.simulator.request_times(&filter).first()?);
            }
            firsts.sort();
            Some(firsts)
        },
    )
    .await;
    // Spread over one interval (30 s) from when the operator looked at them, not all at once:
    // uniform over 30 s, a 6 s window holds 10 of the 50 on average; a burst holds all 50.
    let span = first_polls[WATCHES - 1] - first_polls[0];
    assert!(
        span <= Duration::from_secs(35),
        "the first polls after the restart spread over {span:?}, more than one interval"
    );
    let busiest = first_polls
        .iter()
        .map(|start| {
            first_polls
                .iter()
                .filter(|at| **at >= *start && **at - *start <= Duration::from_secs(6))
                .count()
        })
        .max()
        .unwrap_or_default();
    assert!(
        busiest <= 25,
        "{busiest} of {WATCHES} first polls fell within 6 s of each other (span {span:?})"
    );
    assert_eq!(
        world.status_writes_from(ANY_WATCH, &restarted).await,
        0,
        "the restarted operator rewrote statuses that were current"
    );
}

/// Who holds the leader Lease of `world`'s namespace, as the API server says, once someone does.
async fn holder(world: &World) -> String {
    eventually("a holder of the leader Lease", SOON, || async {
        lease_holder(&world.namespace.client, &world.namespace.name)
            .await
            .filter(|h| !h.is_empty())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_lease_holder_polls_and_writes_and_a_lease_taken_over_through_the_api_stops_it() {
    let world = World::new("leader").await;
    world.create_secret("creds", AK, SK).await;
    let namespace = world.namespace.name.clone();
    let flags = leader_election_flags(&namespace, "6s");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let first = Operator::start(&namespace, &flags);
    let second = Operator::start(&namespace, &flags);
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;

    // The leader is whom the Lease names, read from the API server, not what a replica says.
    let holder_identity = holder(&world).await;
    let (mut leader, standby) = match (first.is(&holder_identity), second.is(&holder_identity)) {
        (true, false) => (first, second),
        (false, true) => (second, first),
        _ => panic!("the Lease names {holder_identity:?}, neither replica"),
    };
    for token in ["one", "two", "three"] {
        request_refresh(&world.watches, "pools", token).await;
        wait_for_handled_refresh(&world, token);
    }
    // Each answer echoed its request into the status: three writes at least, by the leader.
    assert!(world.status_writes_from("pools", &leader).await >= 3);
    assert!(world.statistics_requests_from("0", &leader) >= 4);
    assert_eq!(
        world.statistics_requests_from("0", &standby),
        0,
        "the standby called ModelArts"
    );
    assert_eq!(
        world.status_writes_from("pools", &standby).await,
        0,
        "the standby wrote a status"
    );

    // Someone takes the Lease over through the API (a failover drill, a replacement that
    // believes the leader is stuck): the leader must notice, stop polling and exit.
    let leases = Api::<Lease>::namespaced(world.namespace.client.clone(), &namespace);
    let now = MicroTime(jiff::Timestamp::now());
    let takeover = json!({"spec": {
        "holderIdentity": "someone-else",
        "acquireTime": now,
        "renewTime": now,
        "leaseDurationSeconds": 6,
    }});
    leases
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&takeover))
        .await
        .expect("taking the Lease over");
    let taken = std::time::Instant::now();
    assert!(
        leader.wait_exit(Duration::from_secs(15)),
        "the leader kept running 15 s after its Lease was taken over"
    );
    let status = leader.exit_status().expect("exited");
    assert!(
        !status.success(),
        "a replica that loses its Lease exits non-zero: {status}"
    );
    let lost_after = taken.elapsed();
    let polls_of_old_leader = world.statistics_requests_from("0", &leader);

    // The usurper never renews; the standby takes the Lease once it expires, and polls.
    let new_holder = eventually("the standby to hold the Lease", SOON, || async {
        lease_holder(&world.namespace.client, &namespace)
            .await
            .filter(|h| standby.is(h))
    })
    .await;
    world
        .simulator
        .set_counts(PROJECT, "0", SimulatedCounts::new(0, 11, 0, 0, 0));
    request_refresh(&world.watches, "pools", "after-takeover").await;
    wait_for_handled_refresh(&world, "after-takeover");
    assert!(
        world.statistics_requests_from("0", &standby) >= 1,
        "{new_holder} leads but did not poll"
    );
    assert_eq!(
        world.statistics_requests_from("0", &leader),
        polls_of_old_leader,
        "the replica that lost the Lease (exited {lost_after:?} after the takeover) polled again"
    );
    let watch = world.watches.get("pools").await.expect("the watch");
    assert_eq!(counts(&watch).and_then(|c| c.created), Some(11));
}

/// `kubectl wait` until the watch's status says refresh request `token` was answered: what a
/// script does after `kubectl annotate`.
fn wait_for_handled_refresh(world: &World, token: &str) {
    run(world.namespace.kubectl().args([
        "wait",
        &format!("--for=jsonpath={{.status.lastHandledRefreshRequest}}={token}"),
        "--timeout=20s",
        "psw/pools",
    ]))
    .unwrap_or_else(|e| panic!("refresh request {token} was not answered: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_request_survives_sigterm_and_sigkill_failovers_and_a_restart() {
    let world = World::new("refresh-failover").await;
    world.create_secret("creds", AK, SK).await;
    let namespace = world.namespace.name.clone();
    let flags = leader_election_flags(&namespace, "4s");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut leader = Operator::start(&namespace, &flags);
    // A long interval: only the refresh request itself can explain a poll within the wait.
    world
        .create_watch_with("pools", "0", "creds", json!({"interval": "10m"}))
        .await;
    world.ready("pools").await;

    for (token, signal) in [("after-sigterm", "TERM"), ("after-sigkill", "KILL")] {
        let standby = Operator::start(&namespace, &flags);
        eventually("the standby to be up", SOON, || async {
            standby.read_metrics().await.ok().map(|_| ())
        })
        .await;
        assert!(!standby.leads().await, "the standby waits");
        let polls_before = world.statistics_requests("0");
        // Asked right after the leader got its signal: whoever leads next must answer it.
        leader.signal(signal);
        request_refresh(&world.watches, "pools", token).await;
        wait_for_handled_refresh(&world, token);
        assert!(
            world.statistics_requests("0") > polls_before,
            "{token}: answered by a poll"
        );
        assert!(
            leader.wait_exit(Duration::from_secs(10)),
            "{token}: the old leader exited"
        );
        eventually("the standby to lead", SOON, || async {
            standby.leads().await.then_some(())
        })
        .await;
        leader = standby;
    }

    // Asked while no operator runs at all: the restarted one answers it at once.
    leader.signal("TERM");
    assert!(leader.wait_exit(Duration::from_secs(10)));
    request_refresh(&world.watches, "pools", "while-stopped").await;
    let polls_before = world.statistics_requests("0");
    let _restarted = Operator::start(&namespace, &flags);
    wait_for_handled_refresh(&world, "while-stopped");
    assert!(world.statistics_requests("0") > polls_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_documents_exactly_the_series_a_running_operator_exposes() {
    let exposed: BTreeSet<String> = exposed_series()
        .await
        .iter()
        .map(|sample| family(sample).to_owned())
        .collect();
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("the README");
    let documented: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `poolwatch_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("poolwatch_{name}"))
        .collect();
    assert_eq!(
        documented, exposed,
        "the README's Metrics table and a running operator's /metrics differ"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_for_one_namespace_ignores_watches_elsewhere() {
    // Created first, so the operator's first list would include it if it looked there.
    let elsewhere = World::new("elsewhere").await.with_credentials().await;
    elsewhere.create_watch("pools", "0", "creds").await;
    request_refresh(&elsewhere.watches, "pools", "ignored").await;
    let world = World::running("watched").await;
    world.create_watch("pools", "0", "creds").await;
    world.ready("pools").await;
    request_refresh(&world.watches, "pools", "answered").await;
    wait_for_watch(&world.watches, "pools", "answered", SOON, |w| {
        w.status
            .as_ref()
            .and_then(|s| s.last_handled_refresh_request.as_deref())
            == Some("answered")
    })
    .await;

    let ignored = elsewhere.watches.get("pools").await.expect("the watch");
    assert!(ignored.status.is_none(), "{:?}", ignored.status);
    assert_eq!(
        elsewhere.simulator.stats().total,
        0,
        "ModelArts was called for a watch outside --watch-namespace"
    );
}
