//! One Argo CD test's world: the test binary's Argo CD, a git repository on loopback holding a
//! credentials Secret and watches, a destination namespace with a simulator (and the operator,
//! once started), and the test's Application of the repository.

use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::SimulatedCounts;
use serde_json::{Value, json};

use crate::support::argocd::{ARGOCD_STEP, Application, ArgoCd, PATH, synced_at};
use crate::support::flux;
use crate::support::git_manifests::{self, File};
use crate::support::git_server::GitRepo;
use crate::support::simulator::{AK, PROJECT, SK};
use crate::support::world::World;

/// The kind of the watches in the Applications' resources.
pub const KIND: &str = "PoolStatisticsWatch";

/// The Secret the watches name, holding keys the simulator accepts.
pub const CREDENTIALS: &str = "creds";

/// How Argo CD applies and compares: the diff modes users run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffMode {
    /// No options: client-side apply (with the last-applied annotation), three-way diff.
    Legacy,
    /// `ServerSideApply=true`, as shipped (Argo CD 3.6 then compares by server-side diff).
    ServerSideApply,
    /// Client-side apply, compared by a server-side dry run
    /// (`argocd.argoproj.io/compare-options: ServerSideDiff=true`).
    ServerSideDiff,
}

impl DiffMode {
    /// Makes the shipped Application use this mode.
    pub fn customise(self, application: &mut Value) {
        if self != DiffMode::ServerSideApply {
            application["spec"]["syncPolicy"]["syncOptions"] = json!([]);
        }
        if self == DiffMode::ServerSideDiff {
            application["metadata"]["annotations"] =
                json!({"argocd.argoproj.io/compare-options": "ServerSideDiff=true"});
        }
    }
}

/// Argo CD, the repository and the operator's world (the destination namespace and the
/// simulator).
pub struct ArgoWorld {
    pub argocd: &'static ArgoCd,
    pub repo: GitRepo,
    /// The destination namespace; its operator, once started.
    pub world: World,
}

impl ArgoWorld {
    /// Argo CD, an empty repository and a destination namespace; no operator runs.
    pub async fn new(test: &str) -> Self {
        let world = World::new(test).await;
        let argocd = ArgoCd::shared();
        let repo = GitRepo::serve(flux::bin_dir(), "watches");
        Self {
            argocd,
            repo,
            world,
        }
    }

    /// Starts the operator for the destination namespace.
    pub fn start_operator(mut self) -> Self {
        self.world = self.world.start_operator(&[]);
        self
    }

    /// Gives simulated workspace `workspace` of the project `created` created pools.
    pub fn workspace(&self, workspace: &str, created: i64) {
        self.world.simulator.set_counts(
            PROJECT,
            workspace,
            SimulatedCounts::new(0, created, 0, 0, 0),
        );
    }

    /// The repository file of Secret `name` with an access key id and a secret.
    pub fn secret_file(&self, name: &str, access_key_id: &str, secret: &str) -> File {
        git_manifests::secret_file(PATH, None, name, access_key_id, secret)
    }

    /// The repository file of Secret [`CREDENTIALS`] holding the simulator's key.
    pub fn credentials_file(&self) -> File {
        self.secret_file(CREDENTIALS, AK, SK)
    }

    /// The repository file of watch `name` of `workspace` with the credentials of `secret`,
    /// `overrides` merged into its spec; without a namespace, as the Application's destination
    /// fills it in.
    pub fn watch_file(&self, name: &str, workspace: &str, secret: &str, overrides: Value) -> File {
        git_manifests::watch_file(&self.world, PATH, None, name, workspace, secret, overrides)
    }

    /// Commits `files` (and the removal of `removed`) and returns the commit id.
    pub fn commit(&self, files: &[File], removed: &[String], message: &str) -> String {
        let files: Vec<(&str, String)> = files
            .iter()
            .map(|(path, text)| (path.as_str(), text.clone()))
            .collect();
        let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
        self.repo.commit(&files, &removed, message)
    }

    /// Applies the shipped Application (named after the destination namespace), following the
    /// test's repository into the destination namespace, with `customise` run on it first.
    pub async fn apply_application(&self, customise: impl Fn(&mut Value)) -> Application {
        Application::apply(
            &self.world.namespace.client,
            &self.world.namespace.name,
            &self.repo.url,
            &self.world.namespace.name,
            customise,
        )
        .await
    }

    /// Waits until `app` is Synced at `revision` with health `health`; returns it.
    pub async fn synced(&self, app: &Application, revision: &str, health: &str) -> Value {
        app.wait(
            &format!("Synced at {revision} and {health}"),
            ARGOCD_STEP,
            |a| synced_at(a, revision, health).then(|| a.clone()),
        )
        .await
    }

    /// Watch `name`, which must exist.
    pub async fn watch(&self, name: &str) -> PoolStatisticsWatch {
        self.world
            .watches
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading watch {name}: {e}"))
    }
}
