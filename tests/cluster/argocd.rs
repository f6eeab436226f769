//! Argo CD's own sync and comparison of watches as committed to git, against what the API server
//! made of them (defaults filled in) and the operator wrote (status), in each diff mode users run:
//! Synced and Healthy once synced, OutOfSync only for a real change in git, never for the
//! operator's status. And the chart's CRD shipped with a watch in one Application. The Argo CD code
//! is v3.6.2's (`tests/go/gitops-readers`, see `support::gitops`).

use std::time::Duration;

use poolwatch::api::PoolStatisticsWatch;
use serde_json::{Value, json};

use crate::support::control_plane::run;
use crate::support::fresh_crd::FreshCrd;
use crate::support::gitops::{Application, Comparison, DiffMode};
use crate::support::operator::has_condition;
use crate::support::simulator::PROJECT;
use crate::support::world::{SOON, World, created};

const KIND: &str = "PoolStatisticsWatch";

/// The committed watches' interval, the shortest the CRD accepts.
const POLL_INTERVAL: Duration = Duration::from_secs(30);

/// A watch as a user commits it: only what they choose. The workspace (`0`), `poolDetails` and
/// `suspend` are left to the CRD's defaults, and the namespace to the Application's destination.
fn committed_watch(world: &World, name: &str, interval: &str) -> String {
    format!(
        r#"apiVersion: poolwatch.io/v1alpha1
kind: PoolStatisticsWatch
metadata:
  name: {name}
  labels:
    team: ml
spec:
  endpoint: {endpoint}
  projectId: "{PROJECT}"
  credentialsSecretRef:
    name: creds
  interval: {interval}
"#,
        endpoint = world.simulator.base_url(),
    )
}

/// Asserts the Application is Synced and the watch Healthy; shows Argo CD's diff when not.
fn assert_synced_and_healthy(comparison: &Comparison, name: &str, when: &str) {
    let watch = comparison.resource(KIND, name);
    assert_eq!(
        comparison.sync, "Synced",
        "{when}: Argo CD must show Synced: {comparison:#?}"
    );
    assert_eq!(watch.status, "Synced", "{when}: {watch:#?}");
    assert_eq!(watch.health, "Healthy", "{when}: {watch:#?}");
}

async fn synced_healthy_and_out_of_sync_only_for_git(mode: DiffMode, test: &str) {
    let world = World::running(test).await;
    let app = Application::new(&world.plane().kubeconfig, &world.namespace.name, mode);
    let git = committed_watch(&world, "pools", "30s");

    let sync = app.sync(&git).await;
    assert_eq!(sync.phase, "Succeeded", "{sync:#?}");
    let watch = world.ready("pools").await;
    let live = live_object(&world, "pools");
    for (field, default) in [("workspaceId", json!("0")), ("poolDetails", json!(false))] {
        assert_eq!(
            live["spec"][field], default,
            "the API server fills the CRD's default of {field}: {live:#}"
        );
    }

    let comparison = app.compare(&git).await;
    assert_eq!(comparison.error, None, "{comparison:#?}");
    assert_eq!(comparison.server_side_diff, mode.server_side_diff());
    assert_synced_and_healthy(&comparison, "pools", "after the sync and the first poll");
    if mode == DiffMode::ServerSideApply {
        assert!(
            owns_spec(&watch, "argocd-controller"),
            "server-side apply as argocd-controller: {:#?}",
            watch.metadata.managed_fields
        );
    }

    // The operator's status changes: new counts in the status, at the next poll, are no change
    // in git.
    world.set_created("0", 7);
    world
        .wait("pools", "the new counts", POLL_INTERVAL + SOON, |w| {
            created(w) == Some(7)
        })
        .await;
    assert_synced_and_healthy(&app.compare(&git).await, "pools", "after new counts");

    // A real change in git: OutOfSync, and Argo CD's diff shows the interval.
    let changed = committed_watch(&world, "pools", "45s");
    let comparison = app.compare(&changed).await;
    assert_eq!(comparison.sync, "OutOfSync", "{comparison:#?}");
    let resource = comparison.resource(KIND, "pools");
    assert_eq!(resource.status, "OutOfSync", "{resource:#?}");
    assert_eq!(
        resource
            .predicted_live
            .as_ref()
            .map(|p| &p["spec"]["interval"]),
        Some(&Value::from("45s")),
        "{resource:#?}"
    );
    assert_eq!(
        resource
            .normalized_live
            .as_ref()
            .map(|l| &l["spec"]["interval"]),
        Some(&Value::from("30s")),
        "{resource:#?}"
    );

    // Synced again: the operator polls the new generation and Argo CD is back to Synced, Healthy.
    let sync = app.sync(&changed).await;
    assert_eq!(sync.phase, "Succeeded", "{sync:#?}");
    world
        .wait("pools", "the new generation polled", SOON, |w| {
            w.spec.interval == "45s" && has_condition(w, "Ready", "True", "Synced")
        })
        .await;
    assert_synced_and_healthy(&app.compare(&changed).await, "pools", "after the change");
}

/// Watch `name` as the API server stores it (not through the Rust types, whose serde defaults
/// would hide a missing CRD default).
fn live_object(world: &World, name: &str) -> Value {
    let text = run(world.namespace.kubectl().args([
        "get",
        "poolstatisticswatches.poolwatch.io",
        name,
        "-o",
        "json",
    ]))
    .expect("kubectl get the watch");
    serde_json::from_str(&text).expect("a watch as JSON")
}

/// Whether `manager` owns `spec.interval` of the watch.
fn owns_spec(watch: &PoolStatisticsWatch, manager: &str) -> bool {
    watch
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.manager.as_deref() == Some(manager) && f.subresource.is_none())
        .filter_map(|f| f.fields_v1.as_ref())
        .any(|fields| fields.0["f:spec"]["f:interval"].is_object())
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_legacy_diff_synced_and_healthy_out_of_sync_only_for_git() {
    synced_healthy_and_out_of_sync_only_for_git(DiffMode::Legacy, "argocd-legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_server_side_apply_synced_and_healthy_out_of_sync_only_for_git() {
    synced_healthy_and_out_of_sync_only_for_git(DiffMode::ServerSideApply, "argocd-ssa").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_server_side_apply_client_side_diff_synced_and_healthy_out_of_sync_only_for_git() {
    synced_healthy_and_out_of_sync_only_for_git(
        DiffMode::ServerSideApplyClientSideDiff,
        "argocd-ssa-csd",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_server_side_diff_synced_and_healthy_out_of_sync_only_for_git() {
    synced_healthy_and_out_of_sync_only_for_git(DiffMode::ServerSideDiff, "argocd-ssd").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_syncs_the_charts_crd_and_a_watch_in_one_application() {
    let world = World::new("argocd-crd").await;
    for mode in DiffMode::ALL {
        let crd = FreshCrd::new(&world);
        let watch = committed_watch(&world, "pools", "30s").replace(
            "apiVersion: poolwatch.io/v1alpha1",
            &format!("apiVersion: {}/v1alpha1", crd.group),
        );
        let git = format!("{}\n---\n{watch}", crd.yaml);
        let app = Application::new(&world.plane().kubeconfig, &world.namespace.name, mode);

        let before = app.compare(&git).await;
        assert_eq!(
            before.error, None,
            "{mode:?}: before the first sync: {before:#?}"
        );
        assert_eq!(before.sync, "OutOfSync", "{mode:?}: nothing is there yet");

        let sync = app.sync(&git).await;
        assert_eq!(sync.phase, "Succeeded", "{mode:?}: {sync:#?}");
        let comparison = app.compare(&git).await;
        assert_eq!(comparison.error, None, "{mode:?}: {comparison:#?}");
        assert_eq!(comparison.sync, "Synced", "{mode:?}: {comparison:#?}");
        // No operator serves this group: the watch has no status, and the health script says so.
        let watch = comparison.resource(KIND, "pools");
        assert_eq!(
            (watch.health.as_str(), watch.health_message.as_str()),
            ("Progressing", "Waiting for the operator's first status"),
            "{mode:?}: {watch:#?}"
        );
        crd.remove(&world).await;
    }
}
