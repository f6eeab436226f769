//! Argo CD for real: its application controller and repo-server (one binary built from
//! `tests/go/argocd`, Argo CD 3.6.2) and a Redis, run as processes against the test control plane
//! (the controller with a kubeconfig, as its in-cluster configuration outside a Pod), with the
//! Application and AppProject CRDs and the default configuration (`manifests/crds`,
//! `manifests/base/config`) of the same module version read from Go's module cache, never copied
//! into the project. The project's health script (`deploy/argocd/argocd-cm.yaml`) is merged into
//! that argocd-cm, and the Applications the tests apply are the one the project ships for users,
//! `deploy/argocd/poolwatch-watches.yaml`, pointed at the test's repository and namespace.
//!
//! One Argo CD serves a whole test binary (its Applications live in one namespace; each test has
//! Applications of its own): see [`ArgoCd::shared`].

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::control_plane::{
    ControlPlane, component_bin, control_plane, go_module_dir, repo_path, run,
};
use super::daemon::Daemon;
use super::faults::scratch_dir;
use super::fresh_crd::FRESH_CRD_GROUPS;
use super::operator::free_address;

/// The Application users copy.
pub const USER_APPLICATION: &str = "deploy/argocd/poolwatch-watches.yaml";
/// The argocd-cm entries users merge: the watches' health script.
pub const USER_ARGOCD_CM: &str = "deploy/argocd/argocd-cm.yaml";
/// The key of the health script in [`USER_ARGOCD_CM`].
const HEALTH_KEY: &str = "resource.customizations.health.poolwatch.io_PoolStatisticsWatch";
/// Where in the repository [`USER_APPLICATION`] looks for the watches.
pub const PATH: &str = "watches";
/// The field manager of Argo CD's server-side apply.
pub const ARGOCD_MANAGER: &str = "argocd-controller";
/// The annotation `argocd app get --refresh` sets; the controller removes it once refreshed.
const REFRESH: &str = "argocd.argoproj.io/refresh";
/// The Argo CD module, for its CRDs and default configuration.
const MODULE: &str = "github.com/argoproj/argo-cd/v3";
/// The folder of this project's Go module that pins [`MODULE`].
const MODULE_FOLDER: &str = "tests/go/argocd";

/// How long the controller gets for one step (a refresh, a sync, a health change) on 2 loaded
/// cores; one takes 1 to 2 s alone.
pub const ARGOCD_STEP: Duration = Duration::from_secs(90);

/// The folder of the built `argocd` binary (the controller, the repo-server and git's ask-pass
/// helper, chosen by `ARGOCD_BINARY_NAME`); built on first use (minutes on a cold machine).
pub fn bin_dir() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| component_bin("argocd"))
}

/// Redis, the repo-server and the application controller, reconciling the Applications of one
/// namespace (a cluster's `argocd`) into any namespace of the control plane.
pub struct ArgoCd {
    daemons: Mutex<Vec<Daemon>>,
    /// The namespace of the Applications, the AppProject and Argo CD's configuration.
    pub namespace: String,
}

impl ArgoCd {
    /// The test binary's Argo CD, started on first use. Its processes stop when the test binary
    /// exits (see [`Daemon::spawn_for_the_binary`]); its namespace stays, like every test's.
    pub fn shared() -> &'static ArgoCd {
        static SHARED: OnceLock<ArgoCd> = OnceLock::new();
        SHARED.get_or_init(|| ArgoCd::start(control_plane()))
    }

    fn start(plane: &ControlPlane) -> Self {
        install_crds(plane);
        let namespace = format!(
            "argocd-{}-{:x}",
            std::process::id(),
            fastrand::u32(..) & 0xfffff
        );
        let scratch = scratch_dir("argocd");
        configure(plane, &namespace, &scratch);
        let bin = bin_dir();

        let redis_address = free_address();
        let (redis_host, redis_port) = redis_address.split_once(':').expect("host:port");
        let mut command = Command::new("redis-server");
        command.args([
            "--bind",
            redis_host,
            "--port",
            redis_port,
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        let mut redis = Daemon::spawn_for_the_binary("redis", command);
        redis.wait_for_line(Duration::from_secs(30), |l| {
            l.contains("Ready to accept connections")
        });

        let repo_server_address = free_address();
        let (host, port) = repo_server_address.split_once(':').expect("host:port");
        let metrics = free_address();
        let (metrics_host, metrics_port) = metrics.split_once(':').expect("host:port");
        let mut command = argocd(bin, "argocd-repo-server", &scratch);
        command.args([
            "--disable-tls",
            // No client certificate to ask for (the default path is a Pod's mounted Secret).
            "--client-ca-path=",
            "--redis",
            &redis_address,
            "--address",
            host,
            "--port",
            port,
            "--metrics-address",
            metrics_host,
            "--metrics-port",
            metrics_port,
            "--loglevel=debug",
        ]);
        let mut repo_server = Daemon::spawn_for_the_binary("argocd-repo-server", command);
        repo_server.wait_for_line(Duration::from_secs(60), |l| {
            l.contains(&format!(
                "argocd-repo-server is listening on {repo_server_address}"
            ))
        });

        let mut command = argocd(bin, "argocd-application-controller", &scratch);
        command
            // The controller's in-cluster configuration is the kubeconfig here: it manages the
            // control plane as `https://kubernetes.default.svc`, as in a cluster.
            .env("ARGOCD_FAKE_IN_CLUSTER", "true")
            // ... which it reads from KUBECONFIG; its own client from --kubeconfig.
            .env("KUBECONFIG", &plane.kubeconfig)
            .arg("--kubeconfig")
            .arg(&plane.kubeconfig)
            .args([
                "--namespace",
                &namespace,
                "--redis",
                &redis_address,
                "--repo-server",
                &repo_server_address,
                "--repo-server-plaintext",
                // Its metrics server listens on every interface (Argo CD hard-codes 0.0.0.0):
                // a free port at least.
                "--metrics-port",
                free_address().rsplit_once(':').expect("host:port").1,
                // Each resource's health (and its message) in the Application's status, where
                // the tests read it; without it, only the UI and CLI show it, from Redis.
                "--persist-resource-health",
                "--loglevel=debug",
            ]);
        let controller = Daemon::spawn_for_the_binary("argocd-application-controller", command);
        Self {
            daemons: Mutex::new(vec![redis, repo_server, controller]),
            namespace,
        }
    }

    /// Panics with a process's last lines if one has exited.
    pub fn assert_running(&self) {
        for daemon in self.daemons.lock().unwrap().iter_mut() {
            daemon.assert_running();
        }
    }

    /// The last lines of the controller and the repo-server, for failure messages.
    pub fn last_lines(&self) -> String {
        self.daemons
            .lock()
            .unwrap()
            .iter()
            .skip(1)
            .map(|d| d.last_lines(15))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The controller's lines of output so far that mention `text`.
    pub fn controller_lines_with(&self, text: &str) -> Vec<String> {
        self.daemons.lock().unwrap()[2]
            .lines()
            .into_iter()
            .filter(|l| l.contains(text))
            .collect()
    }

    /// The Applications, through `client` (a test's own).
    pub fn applications(&self, client: &kube::Client) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "argoproj.io",
            "v1alpha1",
            "Application",
        ));
        Api::namespaced_with(client.clone(), &self.namespace, &resource)
    }
}

/// One test's Application: [`USER_APPLICATION`] under a name of its own.
pub struct Application {
    pub argocd: &'static ArgoCd,
    pub api: Api<DynamicObject>,
    pub name: String,
}

impl Application {
    /// Applies [`USER_APPLICATION`] as `name`, following `repo_url`, into `destination`, with
    /// `customise` run on it first.
    pub async fn apply(
        client: &kube::Client,
        name: &str,
        repo_url: &str,
        destination: &str,
        customise: impl Fn(&mut Value),
    ) -> Self {
        let argocd = ArgoCd::shared();
        let api = argocd.applications(client);
        let mut object = user_application();
        object["metadata"]["name"] = json!(name);
        object["metadata"]["namespace"] = json!(argocd.namespace);
        object["spec"]["source"]["repoURL"] = json!(repo_url);
        object["spec"]["destination"]["namespace"] = json!(destination);
        customise(&mut object);
        api.patch(
            name,
            &PatchParams::apply("poolwatch-tests").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying Application {name}: {e}"));
        Self {
            argocd,
            api,
            name: name.to_owned(),
        }
    }

    /// The Application as JSON.
    pub async fn get(&self) -> Value {
        let object = self
            .api
            .get(&self.name)
            .await
            .unwrap_or_else(|e| panic!("reading Application {}: {e}", self.name));
        serde_json::to_value(object).expect("JSON")
    }

    /// Polls the Application every 100 ms until `check` returns `Some`; panics after `timeout`
    /// with its status and Argo CD's last lines, or at once when a process of Argo CD has died.
    pub async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.argocd.assert_running();
            let application = self.get().await;
            if let Some(value) = check(&application) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for Application {} to be {what}; its \
                     status: {:#}\nArgo CD's last lines:\n{}",
                    self.name,
                    application["status"],
                    self.argocd.last_lines()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks for a refresh, as `argocd app get --refresh` does (git's newest commit, a new
    /// comparison), and waits until the controller has done it; returns the Application then.
    pub async fn refresh(&self) -> Value {
        let patch = json!({"metadata": {"annotations": {REFRESH: "normal"}}});
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("annotating Application {}: {e}", self.name));
        // The controller removes the annotation once it has persisted the refreshed status.
        self.wait("refreshed", ARGOCD_STEP, |app| {
            app["metadata"]["annotations"][REFRESH]
                .is_null()
                .then(|| app.clone())
        })
        .await
    }

    /// Starts a sync of `revision`, as `argocd app sync` does (an `operation` on the Application),
    /// and waits until it has succeeded; returns the Application then.
    pub async fn sync(&self, revision: &str) -> Value {
        let patch = json!({"operation": {
            "initiatedBy": {"username": "poolwatch-tests"},
            "sync": {"revision": revision},
        }});
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("starting a sync of Application {}: {e}", self.name));
        self.wait(&format!("synced to {revision}"), ARGOCD_STEP, |app| {
            let state = &app["status"]["operationState"];
            assert_ne!(state["phase"], "Failed", "the sync failed: {state:#}");
            assert_ne!(state["phase"], "Error", "the sync failed: {state:#}");
            (app["operation"].is_null()
                && state["phase"] == "Succeeded"
                && state["syncResult"]["revision"] == revision)
                .then(|| app.clone())
        })
        .await
    }
}

impl Drop for Application {
    /// Deletes the Application (not what it synced: it has no resources finalizer), also when the
    /// test fails, so that the shared controller stops reconciling it.
    fn drop(&mut self) {
        let _ = control_plane()
            .kubectl()
            .args(["delete", "applications.argoproj.io", &self.name])
            .args(["--namespace", &self.argocd.namespace])
            .args(["--ignore-not-found", "--wait=false"])
            .output();
    }
}

/// The Application's sync status and the revision it compared.
pub fn sync_status(app: &Value) -> (&str, &str) {
    let sync = &app["status"]["sync"];
    (
        sync["status"].as_str().unwrap_or_default(),
        sync["revision"].as_str().unwrap_or_default(),
    )
}

/// The Application's health status.
pub fn health(app: &Value) -> &str {
    app["status"]["health"]["status"]
        .as_str()
        .unwrap_or_default()
}

/// Whether the Application is Synced at `revision` and its health is `health`.
pub fn synced_at(app: &Value, revision: &str, health_status: &str) -> bool {
    sync_status(app) == ("Synced", revision) && health(app) == health_status
}

/// The Application's entry for resource `kind`/`name` (sync status, health, its message).
pub fn resource<'v>(app: &'v Value, kind: &str, name: &str) -> Option<&'v Value> {
    app["status"]["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
}

/// The Application's conditions (errors and warnings), as text.
pub fn conditions(app: &Value) -> String {
    app["status"]["conditions"].to_string()
}

/// How many syncs of a new revision the Application has recorded (automated or asked for).
pub fn syncs(app: &Value) -> usize {
    app["status"]["history"].as_array().map_or(0, Vec::len)
}

/// The object of [`USER_APPLICATION`].
pub fn user_application() -> Value {
    let objects = yaml_documents(&repo_path(USER_APPLICATION));
    assert_eq!(objects.len(), 1, "{USER_APPLICATION} holds one Application");
    objects.into_iter().next().expect("one")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("YAML"))
        .filter(|object: &Value| !object.is_null())
        .collect()
}

/// A command running Argo CD's program `name`, with its scratch files under `scratch`.
fn argocd(bin: &Path, name: &str, scratch: &Path) -> Command {
    let mut command = Command::new(bin.join("argocd"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.to_path_buf(), helpers(scratch)];
    dirs.extend(std::env::split_paths(&path));
    command
        .env("ARGOCD_BINARY_NAME", name)
        // git runs `argocd` (as its ask-pass helper) from PATH.
        .env("PATH", std::env::join_paths(dirs).expect("a PATH"))
        // Its socket, by default at a fixed path in /tmp, which would allow one repo-server per
        // machine.
        .env(
            "ARGOCD_ASK_PASS_SOCK",
            scratch.join(format!("{name}-ask-pass.sock")),
        )
        // Clones and manifests go to the temporary folder.
        .env("TMPDIR", scratch)
        // No signed commits here: no GnuPG keyring to set up.
        .env("ARGOCD_GPG_ENABLED", "false")
        .env("ARGOCD_LOG_FORMAT", "json");
    command
}

/// A folder holding `git-verify-wrapper.sh` (executable) from the pinned release: the
/// repo-server of 3.6.2 runs it from PATH for every revision it renders, even with GnuPG
/// disabled (as Argo CD's image ships it), and fails with "permission denied" without it.
fn helpers(scratch: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch.join("helpers");
    let wrapper = dir.join("git-verify-wrapper.sh");
    if !wrapper.exists() {
        std::fs::create_dir_all(&dir).expect("create the helpers folder");
        let source = go_module_dir(MODULE_FOLDER, MODULE).join("hack/git-verify-wrapper.sh");
        std::fs::copy(&source, &wrapper)
            .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("make the wrapper executable");
    }
    dir
}

/// Applies the Application and AppProject CRDs of the pinned release, once per process, and
/// waits until they are served.
fn install_crds(plane: &ControlPlane) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let crds = go_module_dir(MODULE_FOLDER, MODULE).join("manifests/crds");
        for file in ["application-crd.yaml", "appproject-crd.yaml"] {
            let file = crds.join(file);
            for args in [
                vec!["apply", "--server-side", "--force-conflicts", "-f"],
                vec!["wait", "--for=condition=Established", "--timeout=60s", "-f"],
            ] {
                run(plane.kubectl().args(args).arg(&file)).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    });
}

/// Creates `namespace` with Argo CD's default configuration of the pinned release, the project's
/// health script merged into its argocd-cm, and the `default` AppProject (which argocd-server
/// would create, allowing any repository and destination).
fn configure(plane: &ControlPlane, namespace: &str, scratch: &Path) {
    let kubectl = |args: &[&str]| {
        run(plane.kubectl().args(args)).unwrap_or_else(|e| panic!("{e}"));
    };
    let defaults = go_module_dir(MODULE_FOLDER, MODULE).join("manifests/base/config");
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"poolwatch.io/test": "true"}},
    })];
    for file in [
        "argocd-cm.yaml",
        "argocd-cmd-params-cm.yaml",
        "argocd-rbac-cm.yaml",
        "argocd-secret.yaml",
        "argocd-gpg-keys-cm.yaml",
        "argocd-ssh-known-hosts-cm.yaml",
        "argocd-tls-certs-cm.yaml",
    ] {
        objects.extend(yaml_documents(&defaults.join(file)));
    }
    let health = yaml_documents(&repo_path(USER_ARGOCD_CM));
    for object in &mut objects {
        if object["kind"] != "Namespace" {
            object["metadata"]["namespace"] = json!(namespace);
        }
        if object["metadata"]["name"] == "argocd-cm" {
            for (key, value) in health[0]["data"].as_object().expect("argocd-cm data") {
                object["data"][key] = value.clone();
            }
            // The same script for the groups of the tests' renamed CRDs (see FreshCrd): a
            // wildcard group, which only argocd-cm's block form of customizations allows.
            let script = &health[0]["data"][HEALTH_KEY];
            assert!(script.is_string(), "{USER_ARGOCD_CM} has no {HEALTH_KEY}");
            let block = json!({
                format!("*.{FRESH_CRD_GROUPS}/PoolStatisticsWatch"): {"health.lua": script},
            });
            object["data"]["resource.customizations"] =
                json!(serde_norway::to_string(&block).expect("YAML"));
        }
    }
    objects.push(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }));
    let file = scratch.join("configuration.json");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(&file, list.to_string()).expect("write Argo CD's configuration");
    kubectl(&[
        "apply",
        "--server-side",
        "-f",
        file.to_str().expect("a UTF-8 path"),
    ]);
}
