//! The readers GitOps tools run on a watch's status, run for real: kstatus
//! (`sigs.k8s.io/cli-utils`, the library Flux and `kubectl wait`-style tools use) and Argo CD's own
//! resource health evaluation (its `util/lua` package on gopher-lua), with the health script
//! registered as the argocd-cm customization for `poolwatch.io/PoolStatisticsWatch`. And
//! [`Application`]: Argo CD's sync and its application controller's comparison of manifests "in
//! git" with the control plane, in each [`DiffMode`]. All live in the Go program
//! `tests/go/gitops-readers` (Argo CD 3.6.2), built once into the cache from its pinned module.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use super::control_plane::{component_bin, repo_path};

/// The Argo CD health script the project ships.
pub const HEALTH_LUA: &str = "deploy/argocd/health.lua";

/// What one reader made of an object.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    /// kstatus: `Current`, `InProgress`, `Failed`, `Terminating`, `NotFound`, `Unknown`.
    /// Argo CD: `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`, `Unknown`.
    pub status: String,
    pub message: String,
}

/// What both readers made of an object.
#[derive(Debug, Clone, Deserialize)]
pub struct Reading {
    pub kstatus: Verdict,
    pub argocd: Verdict,
}

/// The built `gitops-readers` binary (built on first use; minutes on a cold machine).
fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| component_bin("gitops-readers").join("gitops-readers"))
}

/// What kstatus and Argo CD (with the shipped health script) make of each object.
pub fn read_all(objects: &[Value]) -> Vec<Reading> {
    let mut child = Command::new(binary())
        .arg(repo_path(HEALTH_LUA))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gitops-readers starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for object in objects {
            writeln!(stdin, "{object}").expect("write an object");
        }
    }
    let output = child.wait_with_output().expect("gitops-readers runs");
    assert!(
        output.status.success(),
        "gitops-readers failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let readings: Vec<Reading> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a reading"))
        .collect();
    assert_eq!(readings.len(), objects.len(), "one reading per object");
    readings
}

/// What kstatus and Argo CD make of `object`.
pub fn read(object: &Value) -> Reading {
    read_all(std::slice::from_ref(object)).remove(0)
}

/// The diff modes Argo CD users run: how an Application syncs (its `syncOptions`) and how its
/// controller then compares git with the cluster (the `argocd.argoproj.io/compare-options`
/// annotation; Argo CD 3.6 makes `ServerSideApply=true` imply server-side diff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffMode {
    /// Argo CD's default: client-side apply (with the last-applied annotation) and the three-way
    /// diff against that annotation.
    Legacy,
    /// `ServerSideApply=true`: server-side apply as field manager `argocd-controller`, compared
    /// by server-side diff.
    ServerSideApply,
    /// `ServerSideApply=true` with `ServerSideDiff=false`: server-side apply compared by the
    /// client-side diff (no last-applied annotation, so two-way).
    ServerSideApplyClientSideDiff,
    /// `ServerSideDiff=true` with client-side apply: the comparison is a dry-run server-side
    /// apply against the API server.
    ServerSideDiff,
}

impl DiffMode {
    /// Every mode, for tests that run each.
    pub const ALL: [DiffMode; 4] = [
        DiffMode::Legacy,
        DiffMode::ServerSideApply,
        DiffMode::ServerSideApplyClientSideDiff,
        DiffMode::ServerSideDiff,
    ];

    fn sync_options(self) -> Vec<&'static str> {
        match self {
            DiffMode::Legacy | DiffMode::ServerSideDiff => vec![],
            DiffMode::ServerSideApply | DiffMode::ServerSideApplyClientSideDiff => {
                vec!["ServerSideApply=true"]
            }
        }
    }

    fn compare_options(self) -> Option<&'static str> {
        match self {
            DiffMode::Legacy | DiffMode::ServerSideApply => None,
            DiffMode::ServerSideApplyClientSideDiff => Some("ServerSideDiff=false"),
            DiffMode::ServerSideDiff => Some("ServerSideDiff=true"),
        }
    }

    /// Whether Argo CD compares by a dry-run apply in this mode.
    pub fn server_side_diff(self) -> bool {
        matches!(self, DiffMode::ServerSideApply | DiffMode::ServerSideDiff)
    }
}

/// How a sync operation ended (`gitops-readers argocd sync`).
#[derive(Debug, Clone, Deserialize)]
pub struct SyncOperation {
    /// `Succeeded`, `Failed`, `Error` (or `Running` when it did not complete in time).
    pub phase: String,
    pub message: String,
    pub resources: Vec<SyncedResource>,
}

/// One resource of a sync operation.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncedResource {
    pub kind: String,
    pub name: String,
    /// `Synced`, `SyncFailed`, `Pruned`, `PruneSkipped`.
    pub status: String,
    pub message: String,
}

/// What Argo CD shows for an Application (`gitops-readers argocd compare`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// `Synced`, `OutOfSync`, or `Unknown` when the comparison failed.
    pub sync: String,
    /// The comparison error, as the Application's ComparisonError condition says it.
    #[serde(default)]
    pub error: Option<String>,
    pub server_side_diff: bool,
    pub resources: Vec<ComparedResource>,
}

/// One resource of an Application as Argo CD shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparedResource {
    pub kind: String,
    pub name: String,
    /// `Synced` or `OutOfSync`.
    pub status: String,
    /// Argo CD's health: `Healthy`, `Progressing`, ..., empty for kinds it has no check for.
    pub health: String,
    pub health_message: String,
    /// Both sides of Argo CD's diff view, when OutOfSync.
    #[serde(default)]
    pub normalized_live: Option<Value>,
    #[serde(default)]
    pub predicted_live: Option<Value>,
}

impl Comparison {
    /// The resource of `kind` named `name`; panics with the comparison if there is none.
    pub fn resource(&self, kind: &str, name: &str) -> &ComparedResource {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.name == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {self:#?}"))
    }
}

/// An Argo CD Application of the manifests "in git" (rendered YAML, as the repo-server hands
/// them to the controller) with destination `namespace` on the control plane, synced and compared
/// by Argo CD's own code with the project's health script registered in argocd-cm.
pub struct Application {
    pub mode: DiffMode,
    kubeconfig: PathBuf,
    files: super::scratch::Scratch,
}

impl Application {
    /// An Application named `poolwatch-watches` in `argocd`, syncing into `namespace`.
    pub fn new(kubeconfig: &std::path::Path, namespace: &str, mode: DiffMode) -> Self {
        let files = super::scratch::Scratch::new("argocd");
        let mut annotations = serde_json::Map::new();
        if let Some(options) = mode.compare_options() {
            annotations.insert("argocd.argoproj.io/compare-options".into(), options.into());
        }
        let application = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "poolwatch-watches", "namespace": "argocd", "annotations": annotations},
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example/watches.git", "path": "watches", "targetRevision": "main"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
                "syncPolicy": {"automated": {}, "syncOptions": mode.sync_options()},
            },
        });
        files.file("application.json", &application.to_string());
        Self {
            mode,
            kubeconfig: kubeconfig.to_owned(),
            files,
        }
    }

    /// One sync operation of `manifests`, as the automated sync runs it.
    pub async fn sync(&self, manifests: &str) -> SyncOperation {
        self.run("sync", manifests).await
    }

    /// The Application's sync status and health with `manifests` in git.
    pub async fn compare(&self, manifests: &str) -> Comparison {
        self.run("compare", manifests).await
    }

    async fn run<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        verb: &'static str,
        manifests: &str,
    ) -> T {
        let manifests = self.files.file("manifests.yaml", manifests);
        let mut command = Command::new(binary());
        command
            .args(["argocd", verb, "-kubeconfig"])
            .arg(&self.kubeconfig)
            .args([
                "-application",
                &format!("{}/application.json", self.files.path()),
            ])
            .args(["-manifests", &manifests, "-health-lua"])
            .arg(repo_path(HEALTH_LUA));
        // The sync calls the API server for up to a minute and a half: off the test's workers.
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the gitops-readers thread")
            .expect("gitops-readers runs");
        assert!(
            output.status.success(),
            "gitops-readers argocd {verb} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "gitops-readers argocd {verb} printed no verdict ({e}):\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}
