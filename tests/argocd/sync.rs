//! Sync status and health as the application controller computes them: Synced and Healthy only
//! after the operator's first status (a slow first poll keeps the Application Progressing), in
//! each diff mode, and staying Synced, with no new sync, while the operator writes status over
//! the defaults the API server filled in; OutOfSync only for a change in git.

use std::cell::Cell;
use std::time::Duration;

use serde_json::json;

use crate::support::argocd::{ARGOCD_STEP, health, resource, sync_status, synced_at, syncs};
use crate::support::operator::{eventually, has_condition};
use crate::support::world::{SOON, created, ready_now};
use crate::world::{ArgoWorld, CREDENTIALS, DiffMode, KIND};

/// How long the simulator holds the slow watch's first answer: long enough to see the
/// Application wait for it, well within the operator's 30 s upstream timeout.
const SLOW_FIRST_POLL: Duration = Duration::from_secs(12);

/// The operator's poll interval in these tests, with room for a loaded machine.
const POLL: Duration = Duration::from_secs(30);

async fn synced_and_healthy_only_after_the_operators_first_status(mode: DiffMode, test: &str) {
    let fx = ArgoWorld::new(test).await;
    fx.workspace("fast", 3);
    fx.workspace("slow", 5);
    let files = [
        fx.credentials_file(),
        fx.watch_file("fast", "fast", CREDENTIALS, json!({})),
        fx.watch_file("slow", "slow", CREDENTIALS, json!({})),
    ];
    let revision = fx.commit(&files, &[], "Two watches");
    let app = fx.apply_application(|a| mode.customise(a)).await;

    // No operator yet: Argo CD synced the watches, and they have no status: Progressing, across
    // refreshes.
    let synced = fx.synced(&app, &revision, "Progressing").await;
    for name in ["fast", "slow"] {
        let entry = resource(&synced, KIND, name).expect("the watch in the Application");
        assert_eq!(entry["status"], "Synced", "{entry:#}");
        assert_eq!(
            entry["health"]["message"], "Waiting for the operator's first status",
            "{entry:#}"
        );
        assert!(fx.watch(name).await.status.is_none());
    }
    for _ in 0..2 {
        let refreshed = app.refresh().await;
        assert!(
            synced_at(&refreshed, &revision, "Progressing"),
            "{mode:?}: {:#}",
            refreshed["status"]
        );
    }

    // The operator starts; the slow watch's first answer takes a while.
    fx.world.slow_first_poll("slow", SLOW_FIRST_POLL);
    let fx = fx.start_operator();
    let waited_for_slow = Cell::new(false);
    let healthy = eventually("the Application to be Healthy", ARGOCD_STEP, || async {
        fx.argocd.assert_running();
        let application = app.get().await;
        let fast = fx.watch("fast").await;
        let slow = fx.watch("slow").await;
        let is_healthy = health(&application) == "Healthy";
        assert!(
            !is_healthy || (ready_now(&fast) && ready_now(&slow)),
            "{mode:?}: the Application is Healthy while a watch is not: fast {:?}, slow {:?}",
            fast.status,
            slow.status
        );
        if health(&application) == "Progressing"
            && ready_now(&fast)
            && has_condition(&slow, "Reconciling", "True", "Progressing")
        {
            waited_for_slow.set(true);
        }
        is_healthy.then_some(application)
    })
    .await;
    assert!(
        waited_for_slow.get(),
        "{mode:?}: never saw the Application Progressing for the slow watch's first poll (the \
         fast one Ready, the slow one Reconciling)"
    );
    assert!(
        synced_at(&healthy, &revision, "Healthy"),
        "{:#}",
        healthy["status"]
    );
    let syncs_so_far = syncs(&healthy);

    // The API server filled the CRD's defaults the commit leaves out.
    let live = serde_json::to_value(fx.watch("fast").await).expect("JSON");
    for (field, default) in [("poolDetails", json!(false)), ("suspend", json!(false))] {
        assert_eq!(live["spec"][field], default, "{live:#}");
    }

    // The operator writes new counts; Argo CD stays Synced and Healthy, and syncs nothing.
    for count in [7, 8] {
        fx.workspace("fast", count);
        fx.world
            .wait("fast", "the new counts", POLL + SOON, |w| {
                created(w) == Some(count)
            })
            .await;
        let refreshed = app.refresh().await;
        assert!(
            synced_at(&refreshed, &revision, "Healthy"),
            "{mode:?}: after the operator wrote {count} pools: {:#}",
            refreshed["status"]
        );
        assert_eq!(
            syncs(&refreshed),
            syncs_so_far,
            "{mode:?}: Argo CD synced again after a status write: {:#}",
            refreshed["status"]["history"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_diff_synced_and_healthy_only_after_the_operators_first_status() {
    synced_and_healthy_only_after_the_operators_first_status(DiffMode::Legacy, "argocd-legacy")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_synced_and_healthy_only_after_the_operators_first_status() {
    synced_and_healthy_only_after_the_operators_first_status(
        DiffMode::ServerSideApply,
        "argocd-ssa",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_diff_synced_and_healthy_only_after_the_operators_first_status() {
    synced_and_healthy_only_after_the_operators_first_status(
        DiffMode::ServerSideDiff,
        "argocd-ssd",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_sync_for_a_spec_change_in_git_never_for_the_operators_status() {
    let fx = ArgoWorld::new("argocd-out-of-sync").await.start_operator();
    let files = [
        fx.credentials_file(),
        fx.watch_file("pools", "0", CREDENTIALS, json!({"interval": "30s"})),
    ];
    let first = fx.commit(&files, &[], "A watch");
    // Without automated sync, so that an OutOfSync stays for the test to see.
    let app = fx
        .apply_application(|a| {
            if let Some(policy) = a["spec"]["syncPolicy"].as_object_mut() {
                policy.remove("automated");
            }
        })
        .await;
    app.wait("OutOfSync before the first sync", ARGOCD_STEP, |a| {
        (sync_status(a) == ("OutOfSync", first.as_str())).then_some(())
    })
    .await;
    app.sync(&first).await;
    fx.synced(&app, &first, "Healthy").await;

    // Status writes of the operator: still Synced.
    fx.workspace("0", 4);
    fx.world
        .wait("pools", "the new counts", POLL + SOON, |w| {
            created(w) == Some(4)
        })
        .await;
    let refreshed = app.refresh().await;
    assert!(
        synced_at(&refreshed, &first, "Healthy"),
        "{:#}",
        refreshed["status"]
    );

    // A commit changing the interval: OutOfSync, the watch named, the cluster unchanged.
    let second = fx.commit(
        &[fx.watch_file("pools", "0", CREDENTIALS, json!({"interval": "1m"}))],
        &[],
        "Poll every minute",
    );
    app.refresh().await;
    let out_of_sync = app
        .wait("OutOfSync at the new commit", ARGOCD_STEP, |a| {
            (sync_status(a) == ("OutOfSync", second.as_str())).then(|| a.clone())
        })
        .await;
    let entry = resource(&out_of_sync, KIND, "pools").expect("the watch in the Application");
    assert_eq!(entry["status"], "OutOfSync", "{entry:#}");
    let secret = resource(&out_of_sync, "Secret", CREDENTIALS).expect("the Secret");
    assert_eq!(secret["status"], "Synced", "{secret:#}");
    assert_eq!(fx.watch("pools").await.spec.interval, "30s");

    // Synced, it turns Healthy once the operator has polled the new generation.
    app.sync(&second).await;
    fx.synced(&app, &second, "Healthy").await;
    let watch = fx.watch("pools").await;
    assert_eq!(watch.spec.interval, "1m");
    assert!(ready_now(&watch), "{:?}", watch.status);
}
