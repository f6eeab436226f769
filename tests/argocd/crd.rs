//! The chart's CRD and a watch in one Application, on an API server that does not know the CRD
//! yet (a first sync): the controller applies both, and its comparison after it is Synced with
//! no "field not declared in schema".

use serde_json::json;

use crate::support::argocd::{ARGOCD_STEP, conditions, resource, synced_at};
use crate::support::fresh_crd::FreshCrd;
use crate::world::{ArgoWorld, CREDENTIALS, DiffMode, KIND};

/// What Argo CD says when it compares an object whose CRD it does not know (argo-cd 25064).
const NOT_IN_SCHEMA: &str = "not declared in schema";

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_syncs_the_charts_crd_and_a_watch_in_one_application() {
    let fx = ArgoWorld::new("argocd-crd").await;
    let mut previous: Vec<String> = Vec::new();
    for mode in [DiffMode::ServerSideApply, DiffMode::Legacy] {
        let crd = FreshCrd::new(&fx.world);
        let name = format!("pools-{}", format!("{mode:?}").to_ascii_lowercase());
        let (path, watch) = fx.watch_file(&name, "0", CREDENTIALS, json!({}));
        let watch = watch.replace(
            "apiVersion: poolwatch.io/v1alpha1",
            &format!("apiVersion: {}/v1alpha1", crd.group),
        );
        let revision = fx.commit(
            &[
                ("watches/crd.yaml".to_owned(), crd.yaml.clone()),
                (path.clone(), watch),
            ],
            &previous,
            &format!("The CRD and a watch ({mode:?})"),
        );
        let app = fx.apply_application(|a| mode.customise(a)).await;
        // No operator serves this group: the watch has no status, and the health script says so.
        let synced = app
            .wait(
                &format!("{mode:?}: synced, Synced, Progressing"),
                ARGOCD_STEP,
                |a| {
                    assert!(
                        !conditions(a).contains(NOT_IN_SCHEMA),
                        "{mode:?}: {:#}",
                        a["status"]
                    );
                    (synced_at(a, &revision, "Progressing")
                        && a["status"]["operationState"]["phase"] == "Succeeded")
                        .then(|| a.clone())
                },
            )
            .await;
        let state = &synced["status"]["operationState"];
        assert_eq!(state["phase"], "Succeeded", "{mode:?}: {state:#}");
        assert!(!state.to_string().contains(NOT_IN_SCHEMA), "{state:#}");
        let entry = resource(&synced, KIND, &name).expect("the watch in the Application");
        assert_eq!(
            entry["health"]["message"], "Waiting for the operator's first status",
            "{mode:?}: {entry:#}"
        );
        let crd_entry = resource(&synced, "CustomResourceDefinition", &crd.name())
            .expect("the CRD in the Application");
        assert_eq!(crd_entry["status"], "Synced", "{mode:?}: {crd_entry:#}");
        assert!(
            fx.argocd.controller_lines_with(NOT_IN_SCHEMA).is_empty(),
            "{mode:?}: {:#?}",
            fx.argocd.controller_lines_with(NOT_IN_SCHEMA)
        );
        // The Application goes first (it would sync the CRD back), then the CRD.
        drop(app);
        crd.remove(&fx.world).await;
        previous = vec![path];
    }
}
