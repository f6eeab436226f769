//! `spec.poolDetails` end to end: the real operator lists the simulator's pools (signed, through
//! the shared calls and the budget), shows them in the status, names the unhealthy ones in
//! `PoolsHealthy`, publishes per-pool events users read with `kubectl describe`, exports per-pool
//! series, and keeps the counts whatever the pool list does.

use std::time::Duration;

use poolwatch::api::{PoolPhase, PoolStatisticsWatch};
use poolwatch::simulator::{
    Api as SimulatorApi, FAILED_PHASE, Fault, FaultKind, RequestFilter, SimulatedCounts,
    SimulatedPool,
};
use serde_json::json;

use crate::support::control_plane::run;
use crate::support::gitops;
use crate::support::operator::{
    condition, condition_message, eventually, has_condition, request_refresh,
};
use crate::support::simulator::PROJECT;
use crate::support::world::{SOON, World, counts};

/// The workspace's pools at first: one Running, one Abnormal, one that failed to be created.
fn first_pools() -> Vec<SimulatedPool> {
    vec![
        SimulatedPool {
            display_name: Some("inference".to_owned()),
            ..SimulatedPool::running("pool-a", "modelarts.vm.gpu.8ant8", 4)
        },
        SimulatedPool {
            display_name: Some("training".to_owned()),
            ..SimulatedPool::running("pool-b", "modelarts.vm.gpu.8ant8", 4)
                .in_phase("Abnormal", "2 nodes are NotReady")
        },
        SimulatedPool::running("pool-c", "modelarts.vm.cpu.8u", 2).in_phase(
            FAILED_PHASE,
            "Insufficient quota for flavor modelarts.vm.cpu.8u",
        ),
    ]
}

fn details_watch() -> serde_json::Value {
    json!({"poolDetails": true})
}

fn phase_of(watch: &PoolStatisticsWatch, pool: &str) -> Option<PoolPhase> {
    watch
        .status
        .as_ref()?
        .pool_details
        .iter()
        .find(|p| p.name == pool)
        .map(|p| p.phase)
}

/// ListPools requests the simulator served for workspace `0` of the project.
fn list_requests(world: &World) -> u64 {
    world.simulator.requests_served(
        &RequestFilter::api(SimulatorApi::ListPools)
            .with_project(PROJECT)
            .with_workspace("0"),
    )
}

/// The text of `kubectl describe psw NAME` once its events hold every one of `reasons`.
async fn described_with(world: &World, name: &str, reasons: &[&str]) -> String {
    eventually("the events in kubectl describe", SOON, || async {
        let text = run(world.namespace.kubectl().args(["describe", "psw", name])).ok()?;
        let events = text.split_once("\nEvents:")?.1.to_owned();
        reasons.iter().all(|r| events.contains(r)).then_some(text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_details_name_the_unhealthy_pools_and_follow_one_back_to_running() {
    let world = World::running("pool-details").await;
    world
        .simulator
        .set_counts(PROJECT, "0", SimulatedCounts::new(0, 2, 1, 0, 0));
    assert!(world.simulator.set_pools(PROJECT, "0", first_pools()));
    world
        .create_watch_with("pools", "0", "creds", details_watch())
        .await;

    let watch = world
        .wait("pools", "the pools named", SOON, |w| {
            has_condition(w, "PoolsHealthy", "False", "PoolsAbnormal")
                && has_condition(w, "PoolDetailsSynced", "True", "Synced")
        })
        .await;
    let status = watch.status.clone().unwrap_or_default();
    let names: Vec<&str> = status
        .pool_details
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["pool-a", "pool-b", "pool-c"], "sorted by name");
    assert_eq!(phase_of(&watch, "pool-c"), Some(PoolPhase::Failed));
    let b = &status.pool_details[1];
    assert_eq!(b.display_name.as_deref(), Some("training"));
    assert_eq!(b.message.as_deref(), Some("2 nodes are NotReady"));
    assert_eq!(b.pool_type.as_deref(), Some("Dedicate"));
    assert_eq!(b.flavors.len(), 1);
    assert_eq!(
        (
            b.flavors[0].count,
            b.flavors[0].max_count,
            b.flavors[0].available
        ),
        (Some(4), Some(8), Some(4))
    );
    assert_eq!(
        condition_message(&watch, "PoolsHealthy"),
        "pool-b (training) Abnormal: 2 nodes are NotReady; pool-c Failed: Insufficient quota for flavor modelarts.vm.cpu.8u",
        "worst first, with ModelArts' words"
    );
    assert!(has_condition(&watch, "Ready", "True", "Synced"));

    // Users read them in `kubectl describe` (and `get -o wide` keeps the counts together).
    let described = described_with(&world, "pools", &["PoolAbnormal", "PoolFailed"]).await;
    assert!(described.contains("2 nodes are NotReady"), "{described}");
    let wide = run(world
        .namespace
        .kubectl()
        .args(["get", "psw", "pools", "-o", "wide"]))
    .unwrap();
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        &header[..8],
        [
            "NAME", "READY", "CREATED", "CREATING", "FAILED", "PENDING", "DELETING", "AGE"
        ],
        "{wide}"
    );

    // GitOps readers: the watch works, so it is Current and Healthy; Argo CD names the pools.
    let object = serde_json::to_value(&watch).unwrap();
    let reading = gitops::read(&object);
    assert_eq!(reading.kstatus.status, "Current", "{reading:?}");
    assert_eq!(reading.argocd.status, "Healthy", "{reading:?}");
    assert!(
        reading
            .argocd
            .message
            .contains("PoolsHealthy is False: PoolsAbnormal: pool-b (training) Abnormal"),
        "{reading:?}"
    );

    // Per-pool series.
    let namespace = world.namespace.name.clone();
    let abnormal = format!(
        r#"poolwatch_pool_phase{{namespace="{namespace}",name="pools",pool="pool-b",phase="Abnormal"}} 1"#
    );
    let metrics = eventually("the pool series", SOON, || async {
        let text = world.operator().metrics().await;
        text.contains(&abnormal).then_some(text)
    })
    .await;
    assert!(
        metrics.contains(&format!(
            r#"poolwatch_pool_nodes{{namespace="{namespace}",name="pools",pool="pool-a",state="available"}} 4"#
        )),
        "{metrics}"
    );

    // pool-b recovers and pool-c's three days are over: a refresh shows it, with one event.
    let mut recovered = first_pools();
    recovered.truncate(2);
    recovered[1] = recovered[1].clone().in_phase("Running", "");
    assert!(world.simulator.set_pools(PROJECT, "0", recovered));
    world
        .simulator
        .set_counts(PROJECT, "0", SimulatedCounts::new(0, 2, 0, 0, 0));
    request_refresh(&world.watches, "pools", "recovered").await;
    // The README's recipe, with the real kubectl.
    let waited = run(world.namespace.kubectl().args([
        "wait",
        "psw/pools",
        "--timeout=20s",
        "--for=jsonpath={.status.conditions[?(@.type==\"PoolsHealthy\")].reason}=AllPoolsRunning",
    ]));
    assert!(waited.is_ok(), "{waited:?}");
    let watch = world.ready("pools").await;
    assert_eq!(
        condition(&watch, "PoolsHealthy"),
        Some(("True".to_owned(), "AllPoolsRunning".to_owned()))
    );
    assert_eq!(phase_of(&watch, "pool-c"), None, "no longer listed");
    described_with(&world, "pools", &["PoolRecovered"]).await;
    let metrics = eventually("the old series gone", SOON, || async {
        let text = world.operator().metrics().await;
        (!text.contains(&abnormal)).then_some(text)
    })
    .await;
    assert!(!metrics.contains(r#"pool="pool-c""#), "{metrics}");
    assert!(
        metrics.contains(r#"pool="pool-b",phase="Running"} 1"#),
        "{metrics}"
    );

    // Nothing changes upstream: scheduled polls list the pools again and write nothing.
    let writes = world.status_writes("pools").await;
    let lists = list_requests(&world);
    eventually(
        "two more scheduled polls",
        Duration::from_secs(80),
        || async { (list_requests(&world) >= lists + 4).then_some(()) },
    )
    .await;
    assert_eq!(
        world.status_writes("pools").await,
        writes,
        "no write per poll"
    );

    // Turning details off removes them, their condition and their series.
    world
        .patch_spec("pools", json!({"poolDetails": false}))
        .await;
    let watch = world
        .wait("pools", "details gone", SOON, |w| {
            w.status
                .as_ref()
                .is_some_and(|s| s.pool_details.is_empty() && s.observed_generation == Some(2))
                && condition(w, "PoolDetailsSynced").is_none()
        })
        .await;
    assert_eq!(
        condition(&watch, "PoolsHealthy"),
        Some(("True".to_owned(), "NoFailedPools".to_owned()))
    );
    eventually("the pool series gone", SOON, || async {
        let text = world.operator().metrics().await;
        (!text.contains("poolwatch_pool_phase{")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_pool_list_names_the_permission_and_the_counts_still_update() {
    let world = World::running("pool-list-refused").await;
    assert!(world.simulator.set_pools(PROJECT, "0", first_pools()));
    world.simulator.inject(
        Fault::status(403)
            .error(
                "ModelArts.0204",
                "Policy doesn't allow modelarts:pool:list to be performed.",
            )
            .on(SimulatorApi::ListPools),
    );
    world
        .create_watch_with("pools", "0", "creds", details_watch())
        .await;
    let watch = world
        .wait("pools", "the list refused", SOON, |w| {
            has_condition(w, "PoolDetailsSynced", "False", "AccessDenied")
        })
        .await;
    assert!(
        has_condition(&watch, "Ready", "True", "Synced"),
        "the counts are shown"
    );
    assert!(
        has_condition(&watch, "Stalled", "False", "Synced"),
        "nothing stalls"
    );
    assert_eq!(counts(&watch).and_then(|c| c.created), Some(9));
    let message = condition_message(&watch, "PoolDetailsSynced");
    for words in [
        "modelarts:pool:list",
        "spec.poolDetails",
        "no pool details yet",
    ] {
        assert!(message.contains(words), "{message}");
    }
    described_with(&world, "pools", &["PoolListFailed"]).await;

    // The counts keep updating while the list is refused.
    world.set_created("0", 11);
    request_refresh(&world.watches, "pools", "more").await;
    world
        .wait("pools", "new counts", SOON, |w| {
            counts(w).and_then(|c| c.created) == Some(11)
        })
        .await;

    // Once allowed, the pools appear and the condition turns True.
    world.simulator.clear_faults();
    request_refresh(&world.watches, "pools", "allowed").await;
    world
        .wait("pools", "the pools listed", SOON, |w| {
            has_condition(w, "PoolDetailsSynced", "True", "Synced")
                && w.status.as_ref().is_some_and(|s| s.pool_details.len() == 3)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_of_one_target_share_the_pool_lists() {
    let world = World::running("pool-lists-shared").await;
    assert!(world.simulator.set_pools(PROJECT, "0", first_pools()));
    for name in ["first", "second", "third"] {
        world
            .create_watch_with(name, "0", "creds", details_watch())
            .await;
    }
    for name in ["first", "second", "third"] {
        world
            .wait(name, "the pools listed", SOON, |w| {
                w.status.as_ref().is_some_and(|s| s.pool_details.len() == 3)
            })
            .await;
    }
    // One statistics call and one list of each kind (current, failed) served all three.
    assert_eq!(world.statistics_requests("0"), 1);
    let filter = RequestFilter::api(SimulatorApi::ListPools).with_workspace("0");
    assert_eq!(world.simulator.requests_served(&filter), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_pool_lists_give_bounded_details_and_never_cost_the_counts() {
    let world = World::running("pool-list-hostile").await;
    // 1,000 pools (the status shows 50, the worst), one with a 100 KB message, one in a phase
    // nobody knows, and a duplicate name: about half of the 1 MiB the client reads.
    let mut pools: Vec<SimulatedPool> = (0..1000)
        .map(|i| SimulatedPool::running(&format!("p{i:04}"), "f", 1))
        .collect();
    pools[500] = pools[500]
        .clone()
        .in_phase("Abnormal", &"m".repeat(100_000));
    pools[501] = pools[501].clone().in_phase("Hibernating", "a new phase");
    pools.push(SimulatedPool::running("p0000", "f", 1).in_phase("Error", "duplicate"));
    assert!(world.simulator.set_pools(PROJECT, "0", pools));
    world
        .create_watch_with("pools", "0", "creds", details_watch())
        .await;
    let watch = world
        .wait("pools", "bounded details", SOON, |w| {
            has_condition(w, "PoolDetailsSynced", "True", "Synced")
        })
        .await;
    let status = watch.status.clone().unwrap_or_default();
    assert_eq!(status.pool_details.len(), 50);
    assert_eq!(status.pool_details_omitted, Some(950));
    assert!(condition_message(&watch, "PoolDetailsSynced").contains("1 item(s)"));
    assert_eq!(
        phase_of(&watch, "p0500"),
        Some(PoolPhase::Abnormal),
        "the worst kept"
    );
    assert_eq!(phase_of(&watch, "p0501"), Some(PoolPhase::Other));
    let json = serde_json::to_string(&status).unwrap();
    assert!(json.len() < 48 * 1024, "{} bytes", json.len());
    let message = status
        .pool_details
        .iter()
        .find(|p| p.name == "p0500")
        .and_then(|p| p.message.clone())
        .unwrap_or_default();
    assert!(
        message.len() <= 256 && message.ends_with('…'),
        "{}",
        message.len()
    );
    assert!(condition_message(&watch, "PoolsHealthy").len() <= 1024);

    // A body that is not a pool list: the last good details stay, the reason says so, and the
    // counts still update.
    world
        .simulator
        .inject(Fault::new(FaultKind::WrongShape).on(SimulatorApi::ListPools));
    world.set_created("0", 12);
    request_refresh(&world.watches, "pools", "wrong-shape").await;
    let watch = world
        .wait("pools", "the wrong shape reported", SOON, |w| {
            has_condition(w, "PoolDetailsSynced", "False", "InvalidResponse")
        })
        .await;
    assert_eq!(counts(&watch).and_then(|c| c.created), Some(12));
    let kept = watch.status.clone().unwrap_or_default();
    assert_eq!(
        kept.pool_details, status.pool_details,
        "the last good details"
    );
    assert!(
        condition_message(&watch, "PoolDetailsSynced").contains("last good list"),
        "{watch:?}"
    );
}
