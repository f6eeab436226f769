//! One Flux test's world: a namespace for the Flux objects (a cluster's `flux-system`) with
//! controllers of its own, a git repository on loopback holding an application namespace, a
//! credentials Secret and watches, and the operator watching that namespace against a simulator.

use std::time::Duration;

use poolwatch::simulator::SimulatedCounts;
use serde_json::{Value, json};

use crate::support::control_plane::{TestNamespace, control_plane};
use crate::support::flux::{self, Flux, PATH};
use crate::support::git_manifests::{self, yaml};
use crate::support::git_server::GitRepo;
use crate::support::simulator::{self, AK, PROJECT, SK};
use crate::support::world::World;

/// How long Flux gets for one step (fetch, apply, health check) on 2 loaded cores: its health
/// checks poll every 5 s.
pub const FLUX_STEP: Duration = Duration::from_secs(120);

/// The Secret the watches name, holding keys the simulator accepts.
pub const CREDENTIALS: &str = "creds";

/// The Flux controllers, the repository and the operator's world (the application namespace,
/// created by Flux from the repository, and the simulator).
pub struct FluxWorld {
    pub flux: Flux,
    pub repo: GitRepo,
    /// The application namespace; its operator, once started.
    pub world: World,
}

impl FluxWorld {
    /// Flux and an empty repository; the application namespace does not exist yet (the first
    /// [`FluxWorld::commit`] holds it), and no operator runs.
    pub async fn new(test: &str) -> Self {
        let system = TestNamespace::new(&format!("{test}-flux")).await;
        let flux = Flux::start(control_plane(), system.client.clone(), &system.name);
        let repo = GitRepo::serve(flux::bin_dir(), "watches");
        let apps = TestNamespace {
            name: format!("{}-apps", system.name),
            client: system.client.clone(),
            control_plane: system.control_plane,
        };
        let world = World::on(apps, simulator::start().await);
        Self { flux, repo, world }
    }

    /// The application namespace's name.
    pub fn apps(&self) -> &str {
        &self.world.namespace.name
    }

    /// Starts the operator for the application namespace.
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

    /// The repository files of the application namespace and of Secret `name` with `keys`
    /// (access key id, secret).
    pub fn base_files(&self, secrets: &[(&str, &str, &str)]) -> Vec<(String, String)> {
        let mut files = vec![(
            format!("{PATH}/namespace.yaml"),
            yaml(&json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.apps(), "labels": {"poolwatch.io/test": "true"}},
            })),
        )];
        for (name, access_key_id, secret_access_key) in secrets {
            files.push(git_manifests::secret_file(
                PATH,
                Some(self.apps()),
                name,
                access_key_id,
                secret_access_key,
            ));
        }
        files
    }

    /// [`FluxWorld::base_files`] with the Secret [`CREDENTIALS`] holding the simulator's key.
    pub fn files_with_credentials(&self) -> Vec<(String, String)> {
        self.base_files(&[(CREDENTIALS, AK, SK)])
    }

    /// The repository file of watch `name` of `workspace` with the credentials of `secret`,
    /// `overrides` merged into its spec (see [`World::watch_object`]).
    pub fn watch_file(
        &self,
        name: &str,
        workspace: &str,
        secret: &str,
        overrides: Value,
    ) -> (String, String) {
        git_manifests::watch_file(
            &self.world,
            PATH,
            Some(self.apps()),
            name,
            workspace,
            secret,
            overrides,
        )
    }

    /// Commits `files` (and the removal of `removed`) and returns the commit id.
    pub fn commit(&self, files: &[(String, String)], removed: &[String], message: &str) -> String {
        let files: Vec<(&str, String)> = files
            .iter()
            .map(|(path, text)| (path.as_str(), text.clone()))
            .collect();
        let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
        self.repo.commit(&files, &removed, message)
    }

    /// Applies the shipped GitRepository and Kustomization, following the test's repository.
    pub async fn apply_flux_objects(&self) {
        self.flux.apply_user_manifests(&self.repo.url, |_| {}).await;
    }

    /// Waits until the Kustomization is Ready for commit `revision`; returns it.
    pub async fn kustomization_ready_at(&self, revision: &str) -> Value {
        self.flux
            .wait_kustomization(&format!("Ready at {revision}"), FLUX_STEP, |k| {
                flux::ready_at(k, revision).then(|| k.clone())
            })
            .await
    }

    /// Asks source-controller to fetch the repository now (as `flux reconcile source git`) and
    /// waits until the Kustomization is Ready at `revision`.
    pub async fn reconcile_to(&self, revision: &str) -> Value {
        self.flux.request_reconcile("GitRepository").await;
        self.kustomization_ready_at(revision).await
    }

    /// Completed reads (get, list) of the application namespace's watches by kustomize-controller
    /// in the API server's audit log: its health checks poll so.
    pub async fn health_check_reads(&self) -> usize {
        self.world
            .namespace
            .settled_audit_events()
            .await
            .iter()
            .filter(|e| {
                e["objectRef"]["resource"] == "poolstatisticswatches"
                    && (e["verb"] == "get" || e["verb"] == "list")
                    && e["stage"] == "ResponseComplete"
                    && e["userAgent"]
                        .as_str()
                        .is_some_and(|agent| agent.starts_with("kustomize-controller"))
            })
            .count()
    }
}

/// The repository path of watch `name`.
pub fn watch_path(name: &str) -> String {
    git_manifests::watch_path(PATH, name)
}
