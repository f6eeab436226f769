//! Flux for real: source-controller and kustomize-controller, built from their modules in
//! `tests/go/flux`, run as processes against the test control plane with a kubeconfig (as they
//! run in a cluster, minus the Pod), each limited to one test's namespace. Their CRDs
//! (GitRepository, Kustomization) come from the same module versions, read from Go's module
//! cache, never copied into the project. The Flux objects a test applies are the ones the
//! project ships for users, `deploy/flux/poolwatch-watches.yaml`, pointed at the test's
//! repository.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::control_plane::{ControlPlane, component_bin, go_module_dir, repo_path, run};
use super::daemon::Daemon;
use super::faults::scratch_dir;
use super::operator::free_address;

/// The Flux objects users copy: a GitRepository and a Kustomization.
pub const USER_MANIFESTS: &str = "deploy/flux/poolwatch-watches.yaml";
/// The name of both objects in [`USER_MANIFESTS`].
pub const NAME: &str = "poolwatch-watches";
/// Where in the repository [`USER_MANIFESTS`] looks for the watches.
pub const PATH: &str = "watches";
/// The field manager kustomize-controller applies with.
pub const KUSTOMIZE_MANAGER: &str = "kustomize-controller";
/// The annotation `flux reconcile` sets to ask for a reconciliation now.
const RECONCILE_REQUESTED: &str = "reconcile.fluxcd.io/requestedAt";

/// The modules of `tests/go/flux` whose CRDs (every file in `config/crd/bases`) are applied: each
/// controller refuses to start without the CRDs of every kind it serves or reads (source-controller
/// its OCIRepository, HelmChart, Bucket...; kustomize-controller all the sources).
const CRD_MODULES: &[&str] = &[
    "github.com/fluxcd/source-controller",
    "github.com/fluxcd/kustomize-controller",
];
/// Where a controller module keeps its CRDs.
const CRD_FOLDER: &str = "config/crd/bases";

/// The folder of the built Flux programs (`source-controller`, `kustomize-controller`,
/// `gitserver`); built on first use (minutes on a cold machine).
pub fn bin_dir() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| component_bin("flux"))
}

/// Applies the CRDs of the pinned releases (GitRepository, Kustomization and the other kinds the
/// controllers serve), once per process, and waits until they are served.
pub fn install_crds(plane: &ControlPlane) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        for module in CRD_MODULES {
            let crds = go_module_dir("tests/go/flux", module).join(CRD_FOLDER);
            for args in [
                vec!["apply", "--server-side", "--force-conflicts", "-f"],
                vec!["wait", "--for=condition=Established", "--timeout=60s", "-f"],
            ] {
                run(plane.kubectl().args(args).arg(&crds)).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    });
}

/// source-controller and kustomize-controller, reconciling the Flux objects of one namespace.
/// Both stop when dropped.
pub struct Flux {
    controllers: Mutex<Vec<Daemon>>,
    client: kube::Client,
    /// The namespace of the Flux objects (a cluster's `flux-system`).
    pub namespace: String,
}

impl Flux {
    /// Starts both controllers for the Flux objects of `namespace` on `plane`.
    pub fn start(plane: &ControlPlane, client: kube::Client, namespace: &str) -> Self {
        install_crds(plane);
        let bin = bin_dir();
        let storage = scratch_dir("flux-storage");
        let storage_addr = free_address();
        let source = controller(
            plane,
            bin,
            namespace,
            "source-controller",
            &[
                format!("--storage-path={}", storage.display()),
                format!("--storage-addr={storage_addr}"),
                // kustomize-controller fetches artifacts from the address advertised here.
                format!("--storage-adv-addr={storage_addr}"),
            ],
        );
        let kustomize = controller(plane, bin, namespace, "kustomize-controller", &[]);
        Self {
            controllers: Mutex::new(vec![source, kustomize]),
            client,
            namespace: namespace.to_owned(),
        }
    }

    /// Panics with a controller's last lines if one has exited.
    pub fn assert_running(&self) {
        for controller in self.controllers.lock().unwrap().iter_mut() {
            controller.assert_running();
        }
    }

    /// The last lines of both controllers, for failure messages.
    pub fn last_lines(&self) -> String {
        self.controllers
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.last_lines(15))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Applies [`USER_MANIFESTS`] into this namespace, following `url`, with `customise` run on
    /// each object first.
    pub async fn apply_user_manifests(&self, url: &str, customise: impl Fn(&mut Value)) {
        for mut object in user_manifests() {
            object["metadata"]["namespace"] = json!(self.namespace);
            if object["kind"] == "GitRepository" {
                object["spec"]["url"] = json!(url);
            }
            customise(&mut object);
            let name = object["metadata"]["name"]
                .as_str()
                .expect("a name")
                .to_owned();
            self.api(object["kind"].as_str().expect("a kind"))
                .patch(
                    &name,
                    &PatchParams::apply("poolwatch-tests").force(),
                    &Patch::Apply(&object),
                )
                .await
                .unwrap_or_else(|e| panic!("applying {}: {e}", object["kind"]));
        }
    }

    /// The Flux objects of `kind` (`GitRepository`, `Kustomization`) in this namespace.
    pub fn api(&self, kind: &str) -> Api<DynamicObject> {
        let (group, version) = match kind {
            "GitRepository" => ("source.toolkit.fluxcd.io", "v1"),
            "Kustomization" => ("kustomize.toolkit.fluxcd.io", "v1"),
            other => panic!("no Flux kind {other} here"),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    /// The Kustomization of [`USER_MANIFESTS`], as JSON.
    pub async fn kustomization(&self) -> Value {
        let object = self
            .api("Kustomization")
            .get(NAME)
            .await
            .unwrap_or_else(|e| panic!("reading Kustomization {NAME}: {e}"));
        serde_json::to_value(object).expect("JSON")
    }

    /// Polls the Kustomization every 100 ms until `check` returns `Some`; panics after
    /// `timeout` with its status and the controllers' last lines, or at once when a controller
    /// has died.
    pub async fn wait_kustomization<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.assert_running();
            let kustomization = self.kustomization().await;
            if let Some(value) = check(&kustomization) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for the Kustomization to be {what}; its \
                     status: {:#}\nthe controllers' last lines:\n{}",
                    kustomization["status"],
                    self.last_lines()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks for a reconciliation of `kind` now, as `flux reconcile` does; returns the token,
    /// which the object's `status.lastHandledReconcileAt` shows once handled.
    pub async fn request_reconcile(&self, kind: &str) -> String {
        let token = format!("{}", fastrand::u64(..));
        let patch = json!({"metadata": {"annotations": {RECONCILE_REQUESTED: token}}});
        self.api(kind)
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("annotating {kind} {NAME}: {e}"));
        token
    }
}

/// Starts one controller for the Flux objects of `namespace`, listening on loopback only.
fn controller(
    plane: &ControlPlane,
    bin: &Path,
    namespace: &str,
    name: &str,
    extra: &[String],
) -> Daemon {
    let mut command = Command::new(bin.join(name));
    command
        .env("KUBECONFIG", &plane.kubeconfig)
        // With --watch-all-namespaces=false a controller reconciles its own namespace only, so
        // tests running side by side each have controllers of their own.
        .env("RUNTIME_NAMESPACE", namespace)
        .arg("--watch-all-namespaces=false")
        .arg(format!("--metrics-addr={}", free_address()))
        .arg(format!("--health-addr={}", free_address()))
        .args(["--log-level=debug", "--log-encoding=json"])
        .args(extra);
    Daemon::spawn(name, command)
}

/// The objects of [`USER_MANIFESTS`].
pub fn user_manifests() -> Vec<Value> {
    let path = repo_path(USER_MANIFESTS);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("YAML"))
        .filter(|object: &Value| !object.is_null())
        .collect()
}

/// The condition `type_` of a Flux object: its status, reason and message.
pub fn flux_condition(object: &Value, type_: &str) -> Option<(String, String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
            (text("status"), text("reason"), text("message"))
        })
}

/// Whether the Kustomization is Ready for the commit `revision` (a commit id).
pub fn ready_at(kustomization: &Value, revision: &str) -> bool {
    flux_condition(kustomization, "Ready").is_some_and(|(status, _, _)| status == "True")
        && applied_revision(kustomization).ends_with(revision)
}

/// The revision the Kustomization last applied successfully (`main@sha1:ID`).
pub fn applied_revision(kustomization: &Value) -> String {
    kustomization["status"]["lastAppliedRevision"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
