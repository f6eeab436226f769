//! A real Kubernetes API server for integration tests: started once per test run, shared by every
//! test binary, with a fresh namespace per test.
//!
//! The control plane is the one `make test-cluster` runs (`tests/control-plane/up.sh`: upstream
//! Kubernetes built from source and a kwok node, run by kwokctl; see
//! `tests/control-plane/README.md`). The script is idempotent and serialises concurrent starts with
//! a lock, so every test process simply calls it once. If it cannot start, the calling test fails
//! with the script's explanation.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// The project's CRD, applied to the control plane before any test uses it.
pub const CRD_FILE: &str = "crds/poolstatisticswatches.poolwatch.io.yaml";
/// The field manager the tests apply the CRD with.
const CRD_MANAGER: &str = "poolwatch-tests";

/// The running control plane: where its kubeconfig, tools and audit log are.
#[derive(Debug)]
pub struct ControlPlane {
    pub repo_root: PathBuf,
    pub state_dir: PathBuf,
    /// Admin kubeconfig (client certificate `kwok-admin` in group `system:masters`).
    pub kubeconfig: PathBuf,
    /// kubectl of the control plane's own release, not whatever the machine has.
    pub kubectl_path: PathBuf,
    /// helm 4.
    pub helm_path: PathBuf,
    /// The API server's audit log: one JSON object per request, at Metadata level.
    pub audit_log: PathBuf,
}

/// Starts the control plane (or finds the running one) and applies the CRD, once per process.
/// Panics, and so fails the test, with the reason when that is impossible.
pub fn control_plane() -> &'static ControlPlane {
    static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();
    CONTROL_PLANE.get_or_init(|| {
        let control_plane = ControlPlane::start().unwrap_or_else(|reason| panic!("{reason}"));
        control_plane
            .apply_crd()
            .unwrap_or_else(|reason| panic!("{reason}"));
        control_plane
    })
}

impl ControlPlane {
    fn start() -> Result<Self, String> {
        let state_dir = std::env::var_os("POOLWATCH_TEST_CLUSTER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_path("target/test-cluster"));
        Self::start_in(state_dir)
    }

    /// Starts (or finds) the control plane whose state is in `state_dir` (`up.sh` with
    /// `POOLWATCH_TEST_CLUSTER_DIR`); the CRD is not applied.
    pub fn start_in(state_dir: PathBuf) -> Result<Self, String> {
        let repo_root = repo_path("");
        let script = repo_root.join("tests/control-plane/up.sh");
        let started = Instant::now();
        let output = Command::new(&script)
            .current_dir(&repo_root)
            .env("POOLWATCH_TEST_CLUSTER_DIR", &state_dir)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!(
                "the local control plane in {} did not start ({}, after {:.0?}); its log:\n{log}",
                state_dir.display(),
                output.status,
                started.elapsed()
            ));
        }
        // Shown only for failing tests (or with --nocapture): where the cluster is, how to use it.
        eprintln!("{log}");
        let bin = state_dir.join("bin");
        Ok(Self {
            kubeconfig: state_dir.join("kubeconfig"),
            kubectl_path: bin.join("kubectl"),
            helm_path: bin.join("helm"),
            audit_log: state_dir.join("audit.log"),
            repo_root,
            state_dir,
        })
    }

    /// Server-side applies the CRD and waits until it is Established (served).
    pub fn apply_crd(&self) -> Result<(), String> {
        let crd = self.repo_root.join(CRD_FILE);
        run(self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts"])
            .args(["--field-manager", CRD_MANAGER, "-f"])
            .arg(&crd))?;
        run(self
            .kubectl()
            .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
            .arg(&crd))?;
        Ok(())
    }

    /// A `kubectl` command aimed at the control plane.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(&self.kubectl_path);
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// A `helm` command aimed at the control plane, with its state kept under the state dir.
    /// Helm stores releases as Secrets (its default driver), as in a cluster.
    pub fn helm(&self) -> Command {
        let mut command = Command::new(&self.helm_path);
        let home = self.state_dir.join("helm");
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("HELM_DRIVER");
        command
    }

    /// A client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("the test kubeconfig is valid");
        kube::Client::try_from(config).expect("a client from the test kubeconfig")
    }

    /// The `cluster` entry of the admin kubeconfig: `server` and `certificate-authority-data`.
    pub fn admin_cluster(&self) -> Value {
        let text = std::fs::read_to_string(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let admin: Value = serde_norway::from_str(&text).expect("the admin kubeconfig is YAML");
        admin["clusters"][0]["cluster"].clone()
    }

    /// Every audit event logged so far, oldest first.
    pub fn audit_events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit_log)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.audit_log.display()));
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok()) // a line being written is skipped
            .collect()
    }
}

/// A fresh namespace of its own for one test, and a client for it.
pub struct TestNamespace {
    pub name: String,
    pub client: kube::Client,
    pub control_plane: &'static ControlPlane,
}

impl TestNamespace {
    /// Creates a namespace named after `test` plus a unique suffix.
    pub async fn new(test: &str) -> Self {
        Self::on(control_plane(), test).await
    }

    /// Creates a namespace named after `test` plus a unique suffix on `control_plane`.
    pub async fn on(control_plane: &'static ControlPlane, test: &str) -> Self {
        let client = control_plane.client().await;
        let name = unique_name(test);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("poolwatch.io/test".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        Self {
            name,
            client,
            control_plane,
        }
    }

    /// The PoolStatisticsWatches of this namespace.
    pub fn watches(&self) -> Api<poolwatch::api::PoolStatisticsWatch> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Waits until the namespace's `default` ServiceAccount exists: the controller manager makes
    /// it just after the namespace, and no Pod is admitted before.
    pub async fn default_service_account(&self) {
        let accounts = Api::<ServiceAccount>::namespaced(self.client.clone(), &self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        while accounts.get_opt("default").await.ok().flatten().is_none() {
            assert!(
                Instant::now() < deadline,
                "no default ServiceAccount in {} after 30 s: is the controller manager running?",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A `kubectl` command in this namespace.
    pub fn kubectl(&self) -> Command {
        let mut command = self.control_plane.kubectl();
        command.args(["--namespace", &self.name]);
        command
    }

    /// A `helm` command in this namespace.
    pub fn helm(&self) -> Command {
        let mut command = self.control_plane.helm();
        command.args(["--namespace", &self.name]);
        command
    }

    /// The audit events of requests on objects in this namespace, oldest first.
    pub fn audit_events(&self) -> Vec<Value> {
        self.control_plane
            .audit_events()
            .into_iter()
            .filter(|event| event["objectRef"]["namespace"] == self.name.as_str())
            .collect()
    }

    /// This namespace's audit events once every request completed before this call has its
    /// line. A request's line is written just after its response, so a count read at once can
    /// miss the write that was just seen; this sends a marker request (a GET of a ConfigMap
    /// that does not exist) and waits for the marker's line first.
    pub async fn settled_audit_events(&self) -> Vec<Value> {
        let marker = unique_name("audit-marker");
        let _ = Api::<ConfigMap>::namespaced(self.client.clone(), &self.name)
            .get_opt(&marker)
            .await;
        self.audit_events_until(Duration::from_secs(20), |events| {
            events.iter().any(|e| {
                e["objectRef"]["name"] == marker.as_str() && e["stage"] == "ResponseComplete"
            })
        })
        .await
    }

    /// Polls this namespace's audit events until `done` holds for them (a request's line is
    /// written just after its response) and returns them; panics after `timeout`.
    pub async fn audit_events_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.audit_events();
            if done(&events) {
                return events;
            }
            if Instant::now() > deadline {
                panic!(
                    "the audit log did not show the expected requests in {timeout:?}; it has:\n{}",
                    summarise(&events)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `verb resource[/subresource] name (code)` per event: readable failure messages.
pub fn summarise(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            let object = &e["objectRef"];
            let subresource = object["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            format!(
                "{} {}{} {} ({})",
                e["verb"].as_str().unwrap_or("?"),
                object["resource"].as_str().unwrap_or("?"),
                subresource,
                object["name"].as_str().unwrap_or(""),
                e["responseStatus"]["code"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a command to completion; its output is returned, or the failure explained.
pub fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A DNS-label namespace name: `test` cleaned up, plus a suffix unique across processes and runs.
fn unique_name(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut base: String = test
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(40);
    let base = base.trim_matches('-');
    format!(
        "{base}-{:x}{}",
        fastrand::u32(..) & 0xfffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The path of a file in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The folder of the binaries of the Go module `tests/go/<name>`, built into the cache on first
/// use (`build-components.sh`; minutes on a cold machine). A failed build fails the test with the
/// build's last lines.
pub fn component_bin(name: &str) -> PathBuf {
    let output = Command::new(repo_path("tests/control-plane/build-components.sh"))
        .arg(name)
        .output()
        .expect("run build-components.sh");
    assert!(
        output.status.success(),
        "building tests/go/{name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).expect("a path").trim())
}

/// Where Go's module cache holds `module` at the version that the Go module in `folder` (a path
/// in the repository, such as `tests/go/flux`) pins; `go mod download` fetches it if the cache
/// lacks it. The tests read upstream CRDs there rather than copies in the project.
pub fn go_module_dir(folder: &str, module: &str) -> PathBuf {
    let mut go = Command::new("go");
    go.current_dir(repo_path(folder))
        .env("GOFLAGS", "-mod=readonly")
        .args(["mod", "download", "-json", module]);
    // A module that needs a newer Go than the machine's names it in a `toolchain` line, which
    // build-components.sh passes as GOTOOLCHAIN: so here.
    let go_mod = std::fs::read_to_string(repo_path(folder).join("go.mod")).expect("go.mod");
    if let Some(toolchain) = go_mod.lines().find_map(|l| l.strip_prefix("toolchain ")) {
        go.env("GOTOOLCHAIN", toolchain.trim());
    }
    let output = run(&mut go).unwrap_or_else(|e| panic!("{e}"));
    let info: Value = serde_json::from_str(&output).expect("go mod download -json prints JSON");
    PathBuf::from(
        info["Dir"]
            .as_str()
            .unwrap_or_else(|| panic!("go mod download names no folder for {module}: {info}")),
    )
}
