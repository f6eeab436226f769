//! The chart's CRD under an API group no other test uses, for tests of a first sync of the CRD
//! and its watches together (Argo CD's libraries in `make test`, its controller in
//! `make test-gitops`).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams};

use super::control_plane::{CRD_FILE, ControlPlane, repo_path};
use super::operator::eventually;
use super::world::World;

/// The parent domain of the renamed CRDs' groups: `<namespace>.poolwatch.test`.
pub const FRESH_CRD_GROUPS: &str = "poolwatch.test";

/// The chart's CRD under a group of its own (so the API server does not know it yet, as on a first
/// sync, and no other test sees it), deleted when dropped, also when the test fails.
pub struct FreshCrd {
    /// Its API group, `<namespace>.poolwatch.test`.
    pub group: String,
    /// The CRD as YAML, to commit or apply.
    pub yaml: String,
    plane: &'static ControlPlane,
}

impl FreshCrd {
    /// The chart's CRD renamed into a group named after `world`'s namespace.
    pub fn new(world: &World) -> Self {
        let chart_crd = std::fs::read_to_string(repo_path(
            "charts/poolwatch/crds/poolstatisticswatches.poolwatch.io.yaml",
        ))
        .expect("the chart's CRD");
        let project_crd = std::fs::read_to_string(repo_path(CRD_FILE)).expect("the CRD");
        assert_eq!(
            chart_crd, project_crd,
            "the chart ships the CRD of `make crd`"
        );
        let group = format!("{}.{FRESH_CRD_GROUPS}", world.namespace.name);
        let yaml = chart_crd
            .replace(
                "name: poolstatisticswatches.poolwatch.io",
                &format!("name: poolstatisticswatches.{group}"),
            )
            .replace("group: poolwatch.io", &format!("group: {group}"))
            // Without its short name and category, so that `kubectl get psw` in the tests that
            // run meanwhile (and kubectl's discovery cache after) still means the real one.
            .replace("    categories:\n    - modelarts\n", "")
            .replace("    shortNames:\n    - psw\n", "");
        assert!(!yaml.contains("psw\n"), "no short name left: {yaml}");
        Self {
            group,
            yaml,
            plane: world.plane(),
        }
    }
}

impl FreshCrd {
    /// The CRD's name.
    pub fn name(&self) -> String {
        format!("poolstatisticswatches.{}", self.group)
    }

    /// Deletes the CRD (and so its watches) and waits until it is gone, so that the next sync
    /// meets an API server that does not know the group again.
    pub async fn remove(&self, world: &World) {
        let crds: Api<CustomResourceDefinition> = Api::all(world.namespace.client.clone());
        let name = self.name();
        let _ = crds.delete(&name, &DeleteParams::default()).await;
        eventually("the CRD deleted", Duration::from_secs(60), || async {
            crds.get_opt(&name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
}

impl Drop for FreshCrd {
    fn drop(&mut self) {
        let _ = self
            .plane
            .kubectl()
            .args([
                "delete",
                "crd",
                &self.name(),
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
}
