//! Changes after the first sync: an edit of a watch in the cluster (selfHeal reverts it; the
//! operator's status and field ownership survive), and a watch removed from git (pruned; the
//! operator forgets it).

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::argocd::PATH;
use crate::support::argocd::{ARGOCD_MANAGER, ARGOCD_STEP, conditions};
use crate::support::git_manifests::watch_path;
use crate::support::operator::eventually;
use crate::support::world::{managed_fields, ready_now};
use crate::world::{ArgoWorld, CREDENTIALS};

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_of_a_watch_spec_is_reverted_by_self_heal_and_the_operator_status_survives() {
    let fx = ArgoWorld::new("argocd-drift").await.start_operator();
    let files = [
        fx.credentials_file(),
        fx.watch_file("pools", "0", CREDENTIALS, json!({"interval": "30s"})),
    ];
    let revision = fx.commit(&files, &[], "A watch");
    let app = fx.apply_application(|_| {}).await;
    fx.synced(&app, &revision, "Healthy").await;
    let before = fx.watch("pools").await;
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

    // selfHeal: the controller sees the change in its cluster cache and syncs it back.
    let reverted = fx
        .world
        .wait("pools", "reverted to 30s", ARGOCD_STEP, |w| {
            w.spec.interval == "30s" && w.metadata.generation > before.metadata.generation
        })
        .await;
    assert_eq!(reverted.status.as_ref().and_then(|s| s.pools), counts);
    let after = fx
        .world
        .wait(
            "pools",
            "Ready for the reverted generation",
            ARGOCD_STEP,
            ready_now,
        )
        .await;
    assert_eq!(after.status.as_ref().and_then(|s| s.pools), counts);
    // (Who reverted it is in the field managers below: Argo CD's apply owns the interval again.)
    let healed = fx.synced(&app, &revision, "Healthy").await;

    // Argo CD's server-side apply owns the spec, the operator the status, nobody else the
    // interval.
    let object = serde_json::to_value(&after).expect("JSON");
    let entries = managed_fields(&object);
    let spec_owners: Vec<&str> = entries
        .iter()
        .filter(|(_, _, _, fields)| !fields["f:spec"]["f:interval"].is_null())
        .map(|(manager, ..)| manager.as_str())
        .collect();
    assert_eq!(spec_owners, [ARGOCD_MANAGER], "{entries:#?}");
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
    // Neither side ever met a conflict.
    let logs = fx.world.operator().logs().join("\n");
    assert!(
        !logs.contains("onflict"),
        "the operator met a conflict:\n{logs}"
    );
    assert!(
        !conditions(&healed).contains("onflict")
            && !healed["status"]["operationState"]
                .to_string()
                .contains("onflict"),
        "{:#}",
        healed["status"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_removed_from_git_is_pruned_and_the_operator_forgets_it() {
    let fx = ArgoWorld::new("argocd-prune").await.start_operator();
    fx.workspace("kept", 2);
    fx.workspace("removed", 4);
    let files = [
        fx.credentials_file(),
        fx.watch_file("kept", "kept", CREDENTIALS, json!({"interval": "30s"})),
        fx.watch_file(
            "removed",
            "removed",
            CREDENTIALS,
            json!({"interval": "30s"}),
        ),
    ];
    let first = fx.commit(&files, &[], "Two watches");
    let app = fx.apply_application(|_| {}).await;
    fx.synced(&app, &first, "Healthy").await;
    let operator = fx.world.operator();
    let series = format!(r#"namespace="{}",name="removed""#, fx.world.namespace.name);
    eventually("the removed watch's series", ARGOCD_STEP, || async {
        operator.metrics().await.contains(&series).then_some(())
    })
    .await;

    let second = fx.commit(&[], &[watch_path(PATH, "removed")], "Remove a watch");
    app.refresh().await;
    fx.synced(&app, &second, "Healthy").await;
    fx.world
        .assert_pruned_watch_forgotten(&series, ARGOCD_STEP, || fx.argocd.assert_running())
        .await;
}
