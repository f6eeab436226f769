//! Changes after the first apply: a commit that changes a watch (Flux waits for the operator to
//! observe the new generation), an edit in the cluster (Flux reverts it; the operator's status
//! and field ownership survive), and a watch removed from git (pruned; the operator forgets it).

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::flux::{self, KUSTOMIZE_MANAGER};
use crate::support::operator::{eventually, has_condition};
use crate::support::world::{managed_fields, ready_now};
use crate::wait::health_checked_twice;
use crate::world::{CREDENTIALS, FLUX_STEP, FluxWorld, watch_path};

/// Sends SIGCONT to the operator when dropped, so that a test failing while it is stopped still
/// lets it shut down.
struct Frozen<'a>(&'a crate::support::operator::Operator);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.signal("CONT");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_that_changes_an_interval_is_ready_only_once_the_new_generation_is_observed() {
    let fx = FluxWorld::new("flux-interval").await.start_operator();
    let mut files = fx.files_with_credentials();
    files.push(fx.watch_file("pools", "0", CREDENTIALS, json!({"interval": "30s"})));
    let first = fx.commit(&files, &[], "A watch");
    fx.apply_flux_objects().await;
    fx.kustomization_ready_at(&first).await;
    let before = fx.world.watches.get("pools").await.expect("read pools");
    assert!(
        has_condition(&before, "Ready", "True", "Synced"),
        "{:?}",
        before.status
    );

    // The operator is stopped: the new generation stays unobserved, with the old Ready status.
    let frozen = Frozen(fx.world.operator());
    frozen.0.signal("STOP");
    let second = fx.commit(
        &[fx.watch_file("pools", "0", CREDENTIALS, json!({"interval": "1m"}))],
        &[],
        "Poll every minute",
    );
    fx.flux.request_reconcile("GitRepository").await;
    health_checked_twice(&fx, &second).await;
    let kustomization = fx.flux.kustomization().await;
    assert!(
        !flux::ready_at(&kustomization, &second),
        "Flux took the old generation's Ready for the new one: {:#}",
        kustomization["status"]
    );
    let unobserved = fx.world.watches.get("pools").await.expect("read pools");
    assert_eq!(unobserved.spec.interval, "1m");
    assert!(unobserved.metadata.generation > before.metadata.generation);
    assert_eq!(
        unobserved
            .status
            .as_ref()
            .and_then(|s| s.observed_generation),
        before.metadata.generation,
        "the stopped operator wrote a status"
    );

    drop(frozen);
    fx.kustomization_ready_at(&second).await;
    let after = fx.world.watches.get("pools").await.expect("read pools");
    assert!(ready_now(&after), "{:?}", after.status);
    assert_eq!(after.metadata.generation, unobserved.metadata.generation);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_of_a_watch_spec_is_reverted_by_flux_and_the_operator_status_survives() {
    let fx = FluxWorld::new("flux-drift").await.start_operator();
    let mut files = fx.files_with_credentials();
    files.push(fx.watch_file("pools", "0", CREDENTIALS, json!({"interval": "30s"})));
    let revision = fx.commit(&files, &[], "A watch");
    fx.apply_flux_objects().await;
    fx.kustomization_ready_at(&revision).await;
    let before = fx.world.watches.get("pools").await.expect("read pools");
    assert!(ready_now(&before), "{:?}", before.status);
    let counts = before.status.as_ref().and_then(|s| s.pools);
    assert!(counts.is_some(), "{:?}", before.status);

    // What `kubectl edit` sends: a patch under its own field manager.
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".to_owned()),
        ..PatchParams::default()
    };
    fx.world
        .watches
        .patch(
            "pools",
            &edit,
            &Patch::Merge(&json!({"spec": {"interval": "45s"}})),
        )
        .await
        .expect("edit the watch");

    // Flux reverts it on its next reconciliation (asked for now, as `flux reconcile ks` does).
    let token = fx.flux.request_reconcile("Kustomization").await;
    fx.flux
        .wait_kustomization("Ready after the requested reconciliation", FLUX_STEP, |k| {
            (k["status"]["lastHandledReconcileAt"] == token.as_str()
                && flux::ready_at(k, &revision))
            .then_some(())
        })
        .await;
    let reverted = fx
        .world
        .wait("pools", "reverted to 30s", FLUX_STEP, |w| {
            w.spec.interval == "30s"
        })
        .await;
    assert!(reverted.metadata.generation > before.metadata.generation);
    // Flux's apply leaves the status alone: the counts are still there.
    assert_eq!(reverted.status.as_ref().and_then(|s| s.pools), counts);
    let after = fx
        .world
        .wait(
            "pools",
            "Ready for the reverted generation",
            FLUX_STEP,
            ready_now,
        )
        .await;
    assert_eq!(after.status.as_ref().and_then(|s| s.pools), counts);

    // kustomize-controller owns the spec, the operator the status, nobody else the interval.
    let object = serde_json::to_value(&after).expect("JSON");
    let entries = managed_fields(&object);
    let spec_owners: Vec<&str> = entries
        .iter()
        .filter(|(_, _, _, fields)| !fields["f:spec"]["f:interval"].is_null())
        .map(|(manager, ..)| manager.as_str())
        .collect();
    assert_eq!(spec_owners, [KUSTOMIZE_MANAGER], "{entries:#?}");
    let status_owners: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|(_, _, _, fields)| !fields["f:status"].is_null())
        .map(|(manager, operation, subresource, _)| {
            (manager.as_str(), operation.as_str(), subresource.as_str())
        })
        .collect();
    assert_eq!(
        status_owners,
        [("poolwatch", "Apply", "status")],
        "{entries:#?}"
    );
    assert!(
        entries
            .iter()
            .any(|(m, op, sub, _)| m == KUSTOMIZE_MANAGER && op == "Apply" && sub.is_empty()),
        "{entries:#?}"
    );
    // Neither side ever met a conflict.
    let logs = fx.world.operator().logs().join("\n");
    assert!(
        !logs.contains("onflict"),
        "the operator met a conflict:\n{logs}"
    );
    let kustomization = fx.flux.kustomization().await;
    assert!(
        !kustomization["status"].to_string().contains("onflict"),
        "{:#}",
        kustomization["status"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_removed_from_git_is_pruned_and_the_operator_forgets_it() {
    let fx = FluxWorld::new("flux-prune").await.start_operator();
    fx.workspace("kept", 2);
    fx.workspace("removed", 4);
    let mut files = fx.files_with_credentials();
    files.push(fx.watch_file("kept", "kept", CREDENTIALS, json!({"interval": "30s"})));
    files.push(fx.watch_file(
        "removed",
        "removed",
        CREDENTIALS,
        json!({"interval": "30s"}),
    ));
    let first = fx.commit(&files, &[], "Two watches");
    fx.apply_flux_objects().await;
    fx.kustomization_ready_at(&first).await;
    let operator = fx.world.operator();
    let series = format!(r#"namespace="{}",name="removed""#, fx.apps());
    eventually("the removed watch's series", FLUX_STEP, || async {
        operator.metrics().await.contains(&series).then_some(())
    })
    .await;

    let second = fx.commit(&[], &[watch_path("removed")], "Remove a watch");
    fx.reconcile_to(&second).await;
    fx.world
        .assert_pruned_watch_forgotten(&series, FLUX_STEP, || {})
        .await;
}
