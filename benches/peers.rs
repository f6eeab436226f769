//! `make bench-peers`: poolwatch side by side with External Secrets Operator (ESO), another
//! controller that refreshes N objects from an external system on an interval and writes what it
//! finds into Kubernetes. Both run with N objects on a 30 s interval, one after the other, each on
//! a control plane of its own started empty, and are measured from outside their processes: the
//! API server's audit log (requests and writes by User-Agent) and `/proc` (CPU time, memory).
//!
//! - poolwatch: N `PoolStatisticsWatch`es of distinct workspaces on one access key, against the
//!   in-process ModelArts simulator, exactly as `make bench` runs them. Ready: `Ready=True`,
//!   reason `Synced`.
//! - ESO: its controller only (no webhook, no cert controller), built from the Go module
//!   `tests/go/external-secrets` into the cache; one `SecretStore` of the `fake` provider and N
//!   `ExternalSecret`s (`refreshInterval: 30s`), each syncing one key into a Secret of its own.
//!   Ready: `Ready=True` and the target Secret exists.
//!
//! Figures per tool and N: time until all are ready, API-server writes (create, update, patch,
//! subresources included) and requests (any verb) per object per interval in steady state, peak
//! and steady RSS, CPU per 1,000 objects. Steady state as in `make bench`: `SETTLE_SECONDS`
//! (default 35) after all are ready, then a window of `STEADY_SECONDS` (default 90).
//!
//! Settings (environment): `PEERS_N` (comma-separated sizes, default `500,2000`), `PEERS_TOOLS`
//! (`poolwatch,eso`, the default, or either alone: to profile one),
//! `POOLWATCH_BENCH_CLUSTER_DIR` (the control plane's state directory, default
//! `target/bench-peers-cluster`; never the shared `target/test-cluster`, which this bench would
//! tear down), `SETTLE_SECONDS`, `STEADY_SECONDS`, poolwatch's `RATE`/`BURST`/`CONCURRENCY` as in
//! `make bench`; `ESO_CONCURRENT` (ESO's `--concurrent`, default 1) and `ESO_SECRETS_CACHING`
//! (`false` to leave ESO's Secret cache off): see [`eso_flags`]. Results
//! go to `bench/results/peers.{json,md}`, written only when every run is
//! complete. Interrupted (SIGINT, SIGTERM) or failed, it stops every process it started and
//! deletes its control plane.

mod measure;
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use measure::fleet::{self, Budget, create_all};
use measure::{RequestCounts, Timing};
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{Api as SimulatorApi, RequestFilter};
use serde_json::{Value, json};
use support::control_plane::{ControlPlane, TestNamespace, repo_path};
use support::operator::{Operator, free_address};

/// Every object's refresh interval, for both tools.
const INTERVAL_SECONDS: u64 = 30;
/// How long N objects may take to become ready before the run is called failed.
const READY_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// poolwatch's User-Agent is `poolwatch/<version> (<replica>)`.
const POOLWATCH_AGENT: &str = "poolwatch/";
/// ESO sends client-go's default User-Agent, named after its binary:
/// `external-secrets/<version> (linux/amd64) kubernetes/<commit>`.
const ESO_AGENT: &str = "external-secrets/";
/// The Go module that pins ESO, and the module it requires.
const ESO_MODULE_DIR: &str = "tests/go/external-secrets";
const ESO_MODULE: &str = "github.com/external-secrets/external-secrets";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // As in benches/scale.rs: `cargo test --all-targets` runs bench targets too; only
    // `cargo bench` passes --bench. Fail rather than pass having measured nothing.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("peers benchmark: not run; run it with `make bench-peers`");
        std::process::exit(2);
    }
    let settings = Settings::from_env();
    // The benchmark's future owns every process and the control plane it starts (each stopped
    // when dropped), so an interruption only has to drop it: `select!` does so before returning.
    let outcome = tokio::select! {
        biased;
        signal = measure::interrupted() => Err(signal),
        report = run_all(&settings) => Ok(report),
    };
    // Here the benchmark's future is dropped: its processes are stopped, its control plane gone.
    let report = outcome.unwrap_or_else(|signal| {
        eprintln!(
            "peers benchmark: {signal}; stopped every process it started and deleted its control plane; no result written"
        );
        std::process::exit(130)
    });
    // A run of one tool (to profile it) compares nothing: shown, never written over the results.
    if settings.tools.len() < 2 {
        println!(
            "\n{}\n(one tool only: bench/results/ left as it was)",
            report.table()
        );
        return;
    }
    let table = report.write();
    println!("\n{table}\nresults: bench/results/peers.json, bench/results/peers.md");
}

/// What to run, from the environment.
struct Settings {
    sizes: Vec<usize>,
    tools: Vec<Tool>,
    timing: Timing,
    state_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let sizes = std::env::var("PEERS_N")
            .unwrap_or_else(|_| "500,2000".to_owned())
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("PEERS_N: {s:?} is not a number"))
            })
            .collect();
        let tools = std::env::var("PEERS_TOOLS")
            .unwrap_or_else(|_| "poolwatch,eso".to_owned())
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "poolwatch" => Tool::Poolwatch,
                "eso" => Tool::ExternalSecrets,
                other => panic!("PEERS_TOOLS: {other:?} is neither poolwatch nor eso"),
            })
            .collect();
        let state_dir = std::env::var_os("POOLWATCH_BENCH_CLUSTER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_path("target/bench-peers-cluster"));
        // This bench deletes its control plane between runs: never the one tests share.
        let shared = repo_path("target/test-cluster");
        assert!(
            absolute(&state_dir) != absolute(&shared),
            "POOLWATCH_BENCH_CLUSTER_DIR names the shared control plane ({}), which this benchmark would delete",
            shared.display()
        );
        Self {
            sizes,
            tools,
            timing: Timing::from_env(),
            state_dir,
        }
    }
}

/// `path` made absolute without touching the file system (it may not exist yet).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Runs every tool at every size, each on a fresh control plane.
async fn run_all(settings: &Settings) -> Report {
    let eso = EsoBuild::build();
    let mut runs = Vec::new();
    for &objects in &settings.sizes {
        for &tool in &settings.tools {
            eprintln!("==> {} with {objects} objects", tool.name());
            // Torn down and started afresh for every run, not a new namespace on the same one:
            // etcd's data and revision history, the API server's watch cache and memory, the
            // previous tool's objects (and their deletion by the namespace controller and the
            // garbage collector) would all carry over into the next measurement.
            let plane = FreshControlPlane::start(&settings.state_dir);
            let run = match tool {
                Tool::Poolwatch => run_poolwatch(plane.plane, objects, settings.timing).await,
                Tool::ExternalSecrets => run_eso(plane.plane, objects, settings.timing, &eso).await,
            };
            eprintln!("    {run:?}");
            runs.push(run);
        }
    }
    Report::new(settings, eso.version, runs)
}

#[derive(Clone, Copy, Debug)]
enum Tool {
    Poolwatch,
    ExternalSecrets,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Self::Poolwatch => "poolwatch",
            Self::ExternalSecrets => "External Secrets Operator",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The control plane

/// A control plane of the benchmark's own (`up.sh` in its state directory), started with empty
/// storage; deleted, every process of it stopped, when dropped (also on a panic or an
/// interruption).
struct FreshControlPlane {
    plane: &'static ControlPlane,
}

impl FreshControlPlane {
    fn start(state_dir: &Path) -> Self {
        // `up.sh` would reuse a healthy one (with the previous run's objects): delete it first.
        delete_control_plane(state_dir);
        let plane = ControlPlane::start_in(state_dir.to_owned()).unwrap_or_else(|e| {
            // A half-started one may have left processes behind.
            delete_control_plane(state_dir);
            panic!("{e}")
        });
        // Leaked: the test support's namespaces need a `'static` control plane; one small value
        // per run.
        let started = Self {
            plane: Box::leak(Box::new(plane)),
        };
        started
            .plane
            .apply_crd()
            .unwrap_or_else(|e| panic!("applying poolwatch's CRD: {e}"));
        started
    }
}

impl Drop for FreshControlPlane {
    fn drop(&mut self) {
        delete_control_plane(&self.plane.state_dir);
    }
}

/// `down.sh` on `state_dir`: stops every component and deletes the cluster's state. Never
/// panics (it runs while unwinding).
fn delete_control_plane(state_dir: &Path) {
    let output = Command::new(repo_path("tests/control-plane/down.sh"))
        .env("POOLWATCH_TEST_CLUSTER_DIR", state_dir)
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => eprintln!(
            "deleting the control plane in {} failed:\n{}",
            state_dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => eprintln!("cannot run down.sh: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// poolwatch

/// poolwatch with `watches` watches, as `make bench` runs it.
async fn run_poolwatch(plane: &'static ControlPlane, watches: usize, timing: Timing) -> PeerRun {
    let namespace = TestNamespace::on(plane, "peers-poolwatch").await;
    let simulator = support::simulator::start().await;
    fleet::seed_counts(&simulator, watches);
    fleet::put_credentials(&namespace).await;
    // The budget `make bench` gives N watches; concurrency named only past poolwatch's default of
    // 8 (up to 80 calls/s, so 2,000 watches), so the flags shown are the ones that differ.
    let budget = Budget::for_watches(watches, INTERVAL_SECONDS, 1);
    let (rate, burst) = (budget.rate.to_string(), budget.burst.to_string());
    let concurrency = budget.concurrency.to_string();
    let mut extra = vec!["--upstream-rate", &rate, "--upstream-burst", &burst];
    if budget.concurrency != 8 {
        extra.extend(["--upstream-concurrency", &concurrency]);
    }
    // Info level: what a production deployment logs.
    let mut poolwatch = Poolwatch {
        operator: Operator::start_on(&plane.kubeconfig, &namespace.name, "info", &extra),
        watches,
    };
    let flags: Vec<String> = ["--watch-namespace", "NAMESPACE", "--log-level", "info"]
        .iter()
        .chain(&extra)
        .map(|s| (*s).to_owned())
        .collect();
    wait_until(
        "poolwatch answers /readyz",
        Duration::from_secs(60),
        || async { (poolwatch.operator.probe("readyz").await.0 == 200).then_some(()) },
    )
    .await;

    let audit_start = measure::audit_offset(&plane.audit_log);
    let started = Instant::now();
    let api = namespace.watches();
    fleet::create_watches(
        &api,
        watches,
        &simulator.base_url(),
        INTERVAL_SECONDS,
        false,
    )
    .await;
    wait_all_ready(watches, started, &mut poolwatch, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        Some(list.items.iter().filter(|w| watch_synced(w)).count())
    })
    .await;
    let all_ready = started.elapsed();
    let startup = agent_requests(&plane.audit_log, audit_start, POOLWATCH_AGENT);
    let polls = || simulator.requests_served(&RequestFilter::api(SimulatorApi::Statistics));
    let steady = measure_steady(
        &mut poolwatch,
        &plane.audit_log,
        POOLWATCH_AGENT,
        Refreshes::Counter(&polls),
        timing,
    )
    .await;
    PeerRun::new(Tool::Poolwatch, watches, flags, all_ready, startup, steady)
}

/// `Ready=True` with reason `Synced`: the latest poll succeeded and its counts are written.
fn watch_synced(watch: &PoolStatisticsWatch) -> bool {
    watch.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Synced")
    })
}

/// The poolwatch operator of one run and its size.
struct Poolwatch {
    operator: Operator,
    watches: usize,
}

impl Measured for Poolwatch {
    fn pid(&self) -> u32 {
        self.operator.pid()
    }

    fn name(&self) -> String {
        format!("poolwatch-{}", self.watches)
    }

    async fn metrics_page(&self) -> Result<String, String> {
        // As the chart's metrics reader, over the operator's HTTPS.
        match self.operator.read_metrics().await? {
            (200, page) => Ok(page),
            (code, body) => Err(format!("{code}: {body}")),
        }
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.operator.exit_status() {
            let logs = self.operator.logs();
            let tail = &logs[logs.len().saturating_sub(30)..];
            panic!(
                "poolwatch exited ({status}); its last lines:\n{}",
                tail.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// External Secrets Operator

/// ESO's controller binary and CRDs, from the pinned Go module.
struct EsoBuild {
    binary: PathBuf,
    crds: PathBuf,
    version: String,
}

impl EsoBuild {
    /// Builds ESO's controller into the cache once (`build-components.sh external-secrets`;
    /// cached afterwards) and finds its CRDs in the module cache.
    fn build() -> Self {
        let bin_dir = run_to_string(
            Command::new(repo_path("tests/control-plane/build-components.sh"))
                .arg("external-secrets"),
        );
        let module_dir = run_to_string(
            Command::new("go")
                .args(["list", "-m", "-f", "{{.Dir}}", ESO_MODULE])
                .current_dir(repo_path(ESO_MODULE_DIR))
                .env("GOFLAGS", "-mod=readonly")
                .env("GOTOOLCHAIN", "local"),
        );
        let version = run_to_string(
            Command::new("go")
                .args(["list", "-m", "-f", "{{.Version}}", ESO_MODULE])
                .current_dir(repo_path(ESO_MODULE_DIR))
                .env("GOFLAGS", "-mod=readonly")
                .env("GOTOOLCHAIN", "local"),
        );
        Self {
            binary: Path::new(&bin_dir).join("external-secrets"),
            crds: Path::new(&module_dir).join("deploy/crds/bundle.yaml"),
            version,
        }
    }
}

/// ESO's controller as a child process, its output in a log file; stopped with SIGTERM (then
/// SIGKILL) when dropped.
struct EsoController {
    child: Child,
    log: PathBuf,
    live_url: String,
    metrics_url: String,
    objects: usize,
}

impl EsoController {
    fn start(binary: &Path, kubeconfig: &Path, args: &[String], objects: usize) -> Self {
        let log = bench_dir().join(format!("external-secrets-{objects}.log"));
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let child = Command::new(binary)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let live = flag_value(args, "--live-addr");
        let metrics = flag_value(args, "--metrics-addr");
        Self {
            child,
            log,
            live_url: format!("http://{live}/healthz"),
            metrics_url: format!("http://{metrics}/metrics"),
            objects,
        }
    }

    /// The last lines of its log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Measured for EsoController {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn name(&self) -> String {
        format!("external-secrets-{}", self.objects)
    }

    async fn metrics_page(&self) -> Result<String, String> {
        let response = reqwest::get(&self.metrics_url)
            .await
            .map_err(|e| format!("{}: {e}", self.metrics_url))?;
        Ok(response.text().await.unwrap_or_default())
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().ok().flatten() {
            panic!(
                "ESO's controller exited ({status}); the end of {}:\n{}",
                self.log.display(),
                self.log_tail()
            );
        }
    }
}

impl Drop for EsoController {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// SIGTERM, up to 10 s to exit, then SIGKILL; always reaped.
fn stop_child(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The value that follows `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> &'a str {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
}

/// ESO's controller flags: its controller alone, in one namespace (as poolwatch is run), with
/// only the reconcilers this workload uses, and otherwise its defaults, but for the two it needs
/// to keep a 30 s interval for N objects, as poolwatch gets its budget raised for N:
/// - `--enable-secrets-caching` (`ESO_SECRETS_CACHING=false` leaves ESO's default, off): without
///   it ESO's client reads Secrets uncached, and each refresh's list of orphaned Secrets (a
///   metadata list by label, which ESO's code assumes cached) costs a consistent read from the
///   API server of ~90 ms under this load; one worker then refreshes ~10 objects a second,
///   whatever N is.
/// - `--client-qps`/`--client-burst` (defaults 50/100) raised to what N objects need every 30 s
///   with 20 % headroom at 4 requests a refresh (as measured), so that ESO is not measured
///   throttled by its own client.
///
/// `--concurrent` stays 1, its default (`ESO_CONCURRENT` overrides it): the `fake` provider keeps
/// its keys in a map that every reconcile rewrites without a lock (ESO issue #6233), so
/// concurrent reconciles crash it.
fn eso_flags(namespace: &str, objects: usize) -> Vec<String> {
    let needed = (objects as u64 * 4 * 6).div_ceil(INTERVAL_SECONDS * 5);
    let qps = needed.max(50);
    let secrets_caching = std::env::var("ESO_SECRETS_CACHING").map_or(true, |v| v != "false");
    let mut flags = [
        "--namespace",
        namespace,
        "--metrics-addr",
        &free_address(),
        "--live-addr",
        &free_address(),
        "--enable-leader-election=false",
        "--concurrent",
        &measure::setting("ESO_CONCURRENT", 1).to_string(),
        "--client-qps",
        &qps.to_string(),
        "--client-burst",
        &(2 * qps).to_string(),
        "--loglevel",
        "info",
        "--enable-cluster-store-reconciler=false",
        "--enable-cluster-external-secret-reconciler=false",
        "--enable-push-secret-reconciler=false",
        "--enable-cluster-push-secret-reconciler=false",
    ]
    .map(str::to_owned)
    .to_vec();
    if secrets_caching {
        flags.push("--enable-secrets-caching".to_owned());
    }
    flags
}

/// The flags as the report shows them: addresses and the namespace are per run.
fn shown_flags(args: &[String], namespace: &str) -> Vec<String> {
    let mut shown = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--metrics-addr" || arg == "--live-addr" {
            args.next();
            continue;
        }
        shown.push(if arg == namespace {
            "NAMESPACE".to_owned()
        } else {
            arg.clone()
        });
    }
    shown
}

/// The `external-secrets.io` kinds the benchmark creates.
fn eso_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "external-secrets.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "external-secrets.io/v1".to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// ESO with `objects` ExternalSecrets of one `fake` SecretStore.
async fn run_eso(
    plane: &'static ControlPlane,
    objects: usize,
    timing: Timing,
    eso: &EsoBuild,
) -> PeerRun {
    install_eso_crds(plane, &eso.crds).await;
    let namespace = TestNamespace::on(plane, "peers-eso").await;
    let args = eso_flags(&namespace.name, objects);
    let mut controller = EsoController::start(&eso.binary, &plane.kubeconfig, &args, objects);
    let live_url = controller.live_url.clone();
    wait_until("ESO answers /healthz", Duration::from_secs(60), || async {
        let ok = reqwest::get(&live_url)
            .await
            .is_ok_and(|r| r.status().is_success());
        ok.then_some(())
    })
    .await;
    controller.assert_running();

    // The store is ESO's counterpart of poolwatch's credentials Secret: in place, and Ready,
    // before the clock starts.
    let stores: Api<DynamicObject> = Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &eso_resource("SecretStore", "secretstores"),
    );
    stores
        .create(&PostParams::default(), &fake_store())
        .await
        .expect("create the SecretStore");
    wait_until(
        "the SecretStore is Ready",
        Duration::from_secs(60),
        || async {
            let store = stores.get("fake").await.ok()?;
            is_ready(&store).then_some(())
        },
    )
    .await;

    let audit_start = measure::audit_offset(&plane.audit_log);
    let started = Instant::now();
    let external_secrets: Api<DynamicObject> = Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &eso_resource("ExternalSecret", "externalsecrets"),
    );
    create_all(objects, |index| {
        let api = external_secrets.clone();
        let object = external_secret(index);
        async move {
            api.create(&PostParams::default(), &object)
                .await
                .map(|_| ())
        }
    })
    .await;
    let secrets = Api::<Secret>::namespaced(namespace.client.clone(), &namespace.name);
    wait_all_ready(objects, started, &mut controller, || async {
        let existing: HashSet<String> = secrets
            .list_metadata(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        let list = external_secrets.list(&ListParams::default()).await.ok()?;
        Some(
            list.items
                .iter()
                .filter(|es| is_ready(es) && existing.contains(&target_name(es)))
                .count(),
        )
    })
    .await;
    let all_ready = started.elapsed();
    let startup = agent_requests(&plane.audit_log, audit_start, ESO_AGENT);
    let steady = measure_steady(
        &mut controller,
        &plane.audit_log,
        ESO_AGENT,
        Refreshes::AuditKind("update externalsecrets/status"),
        timing,
    )
    .await;
    let flags = shown_flags(&args, &namespace.name);
    PeerRun::new(
        Tool::ExternalSecrets,
        objects,
        flags,
        all_ready,
        startup,
        steady,
    )
}

/// Server-side applies ESO's CRDs from its release bundle, without any `spec.conversion`: a
/// conversion webhook would need ESO's webhook (which this benchmark does not run) for every
/// read of another version. v0.20.4's bundle has no such stanza (it serves v1 only); older
/// releases point theirs at the webhook Service. Waits until all are Established.
async fn install_eso_crds(plane: &ControlPlane, bundle: &Path) {
    use serde::Deserialize;
    let text = std::fs::read_to_string(bundle)
        .unwrap_or_else(|e| panic!("reading {}: {e}", bundle.display()));
    let client = plane.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let mut names = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let mut crd = Value::deserialize(document).expect("ESO's CRD bundle is YAML");
        if crd.is_null() {
            continue;
        }
        if let Some(spec) = crd["spec"].as_object_mut() {
            spec.remove("conversion");
        }
        let name = crd["metadata"]["name"]
            .as_str()
            .expect("a named CRD")
            .to_owned();
        crds.patch(
            &name,
            &PatchParams::apply("poolwatch-bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying ESO's CRD {name}: {e}"));
        names.push(name);
    }
    for name in &names {
        wait_until(
            &format!("CRD {name} is Established"),
            Duration::from_secs(60),
            || async {
                let crd = crds.get(name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            },
        )
        .await;
    }
}

/// The `fake` SecretStore: one key, which every ExternalSecret reads. One key rather than one per
/// ExternalSecret: the fake provider copies all of its store's keys into a map on every
/// reconcile, so N keys would make each refresh cost O(N), a cost of the fake provider that no
/// real provider has.
fn fake_store() -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "fake"},
        "spec": {"provider": {"fake": {"data": [
            {"key": "bench-key", "value": "bench-value"},
        ]}}},
    }))
    .expect("a valid SecretStore")
}

/// ExternalSecret `index`: one key, refreshed every 30 s, into Secret `secret-{index}`.
fn external_secret(index: usize) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": format!("es-{index}")},
        "spec": {
            "refreshInterval": format!("{INTERVAL_SECONDS}s"),
            "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
            "target": {"name": format!("secret-{index}")},
            "data": [{"secretKey": "value", "remoteRef": {"key": "bench-key"}}],
        },
    }))
    .expect("a valid ExternalSecret")
}

/// The Secret an ExternalSecret writes.
fn target_name(external_secret: &DynamicObject) -> String {
    external_secret.data["spec"]["target"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// ESO's `Ready` condition is `True`.
fn is_ready(object: &DynamicObject) -> bool {
    object.data["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// A process under measurement.
trait Measured {
    fn pid(&self) -> u32;
    /// A file name for its logs and metrics: the tool and its size.
    fn name(&self) -> String;
    /// Its Prometheus page, or why it cannot be had.
    async fn metrics_page(&self) -> Result<String, String>;
    /// Panics, with its last log lines, when the process has exited.
    fn assert_running(&mut self);
}

/// Waits until `ready` counts `objects`, checking once a second (a list of thousands of objects
/// is heavy) and that the process still runs; `started` is when the first object was created.
async fn wait_all_ready<F, Fut>(
    objects: usize,
    started: Instant,
    process: &mut impl Measured,
    ready: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<usize>>,
{
    loop {
        let count = ready().await.unwrap_or(0);
        if count == objects {
            eprintln!(
                "    all {objects} ready after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        process.assert_running();
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "only {count} of {objects} ready after {READY_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Polls `check` every 200 ms until it returns `Some`; panics naming `what` after `timeout`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = Instant::now() + timeout;
    while check().await.is_none() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The requests of `agent` logged since `from` (a mark of [`measure::audit_offset`]). Panics
/// when there are none: the tool then sends another User-Agent, and every count would be 0.
fn agent_requests(audit_log: &Path, from: u64, agent: &str) -> RequestCounts {
    let to = measure::audit_offset(audit_log);
    let counts =
        measure::count_requests(&measure::audit_events_between(audit_log, from, to), agent);
    assert!(
        counts.requests > 0,
        "no request by User-Agent {agent:?} in the audit log: does the tool send another?"
    );
    counts
}

/// What one steady-state window measured.
#[derive(Debug)]
struct Steady {
    window: Duration,
    requests: RequestCounts,
    by_kind: BTreeMap<String, usize>,
    /// Refreshes done in the window (see [`Refreshes`]).
    refreshes: u64,
    cpu_percent: f64,
    peak_rss_kib: u64,
    rss_kib: u64,
}

/// How to count the refreshes a tool actually did: with a single worker ESO may do fewer than
/// one per object per interval, and CPU per object then hides how much work it did.
enum Refreshes<'a> {
    /// A counter read at the start and the end of the window (the simulator's statistics calls:
    /// one per poll).
    Counter(&'a dyn Fn() -> u64),
    /// The window's requests of this `verb resource[/subresource]` (ESO writes an
    /// ExternalSecret's `status.refreshTime` on every refresh).
    AuditKind(&'static str),
}

/// Waits `timing.settle`, then measures for `timing.steady`: the process's requests (by
/// User-Agent, from the audit log), refreshes, CPU time and memory. Its metrics page at the end
/// is kept in `target/bench-peers/NAME.metrics`, to look into afterwards.
async fn measure_steady(
    process: &mut impl Measured,
    audit_log: &Path,
    agent: &str,
    refreshes: Refreshes<'_>,
    timing: Timing,
) -> Steady {
    eprintln!(
        "    settling {} s, then measuring {} s",
        timing.settle.as_secs(),
        timing.steady.as_secs()
    );
    tokio::time::sleep(timing.settle).await;
    process.assert_running();
    let pid = process.pid();
    let from = measure::audit_offset(audit_log);
    let counted_before = match &refreshes {
        Refreshes::Counter(count) => count(),
        Refreshes::AuditKind(_) => 0,
    };
    let cpu = measure::CpuWindow::start(pid);
    tokio::time::sleep(timing.steady).await;
    process.assert_running();
    let (window, cpu_percent) = cpu.finish();
    let to = measure::audit_offset(audit_log);
    let (peak_rss_kib, rss_kib) = measure::memory_kib(pid);
    save_metrics(process.metrics_page().await, &process.name());
    let events = measure::audit_events_between(audit_log, from, to);
    let by_kind = measure::requests_by_kind(&events, agent);
    let refreshes = match refreshes {
        Refreshes::Counter(count) => count() - counted_before,
        Refreshes::AuditKind(kind) => by_kind.get(kind).copied().unwrap_or(0) as u64,
    };
    Steady {
        window,
        requests: measure::count_requests(&events, agent),
        by_kind,
        refreshes,
        cpu_percent,
        peak_rss_kib,
        rss_kib,
    }
}

/// Keeps a metrics page in `target/bench-peers/NAME.metrics` (reconcile times, work queues);
/// a page that cannot be had is only reported.
fn save_metrics(page: Result<String, String>, name: &str) {
    let text = match page {
        Ok(text) => text,
        Err(e) => {
            eprintln!("    no metrics from {name}: {e}");
            return;
        }
    };
    let path = bench_dir().join(format!("{name}.metrics"));
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("    cannot write {}: {e}", path.display());
    }
}

/// `target/bench-peers/`: the benchmark's logs and metrics pages.
fn bench_dir() -> PathBuf {
    let dir = repo_path("target/bench-peers");
    std::fs::create_dir_all(&dir).expect("create target/bench-peers");
    dir
}

// ---------------------------------------------------------------------------------------------
// Results

/// One tool at one size.
#[derive(Debug, serde::Serialize)]
struct PeerRun {
    tool: &'static str,
    objects: usize,
    /// The flags that matter (addresses left out; `NAMESPACE` is the run's namespace).
    flags: Vec<String>,
    all_ready_seconds: f64,
    startup_writes_per_object: f64,
    startup_requests_per_object: f64,
    steady_window_seconds: f64,
    steady_writes: usize,
    writes_per_object_per_interval: f64,
    steady_requests: usize,
    requests_per_object_per_interval: f64,
    /// The steady window's requests by `verb resource[/subresource]`.
    steady_requests_by_kind: BTreeMap<String, usize>,
    peak_rss_mib: f64,
    steady_rss_mib: f64,
    rss_mib_per_1000_objects: f64,
    steady_cpu_percent_of_one_core: f64,
    cpu_percent_per_1000_objects: f64,
    /// Refreshes done in the window: 1.0 per object per interval keeps the interval.
    steady_refreshes: u64,
    refreshes_per_object_per_interval: f64,
    /// CPU time per refresh done: the cost of the work actually done, whatever the pace.
    cpu_ms_per_refresh: f64,
}

impl PeerRun {
    fn new(
        tool: Tool,
        objects: usize,
        flags: Vec<String>,
        all_ready: Duration,
        startup: RequestCounts,
        steady: Steady,
    ) -> Self {
        let n = objects as f64;
        let intervals = steady.window.as_secs_f64() / INTERVAL_SECONDS as f64;
        let rss_mib = steady.rss_kib as f64 / 1024.0;
        Self {
            tool: tool.name(),
            objects,
            flags,
            all_ready_seconds: measure::round(all_ready.as_secs_f64()),
            startup_writes_per_object: measure::round(startup.writes as f64 / n),
            startup_requests_per_object: measure::round(startup.requests as f64 / n),
            steady_window_seconds: measure::round(steady.window.as_secs_f64()),
            steady_writes: steady.requests.writes,
            writes_per_object_per_interval: measure::round(
                steady.requests.writes as f64 / n / intervals,
            ),
            steady_requests: steady.requests.requests,
            steady_requests_by_kind: steady.by_kind,
            requests_per_object_per_interval: measure::round(
                steady.requests.requests as f64 / n / intervals,
            ),
            peak_rss_mib: measure::round(steady.peak_rss_kib as f64 / 1024.0),
            steady_rss_mib: measure::round(rss_mib),
            rss_mib_per_1000_objects: measure::round(rss_mib / n * 1000.0),
            steady_cpu_percent_of_one_core: measure::round(steady.cpu_percent),
            cpu_percent_per_1000_objects: measure::round(steady.cpu_percent / n * 1000.0),
            steady_refreshes: steady.refreshes,
            refreshes_per_object_per_interval: measure::round(
                steady.refreshes as f64 / n / intervals,
            ),
            cpu_ms_per_refresh: measure::round(
                steady.cpu_percent / 100.0 * steady.window.as_secs_f64() * 1000.0
                    / steady.refreshes.max(1) as f64,
            ),
        }
    }
}

/// poolwatch against ESO at one size: the targets.
#[derive(Debug, serde::Serialize)]
struct TargetCheck {
    objects: usize,
    poolwatch_steady_writes: usize,
    /// poolwatch's CPU per 1,000 objects over ESO's (target: at most 0.5).
    cpu_ratio: f64,
    /// poolwatch's RSS per 1,000 objects over ESO's (target: at most 0.5).
    rss_ratio: f64,
    /// poolwatch's CPU per refresh done over ESO's (no target: context when ESO does fewer
    /// refreshes than its objects ask for).
    cpu_per_refresh_ratio: f64,
    met: bool,
}

/// Everything `make bench-peers` measured.
#[derive(Debug, serde::Serialize)]
struct Report {
    interval_seconds: u64,
    cores: usize,
    settle_seconds: u64,
    steady_window_target_seconds: u64,
    reset_between_runs: &'static str,
    external_secrets_version: String,
    runs: Vec<PeerRun>,
    targets: Vec<TargetCheck>,
}

impl Report {
    fn new(settings: &Settings, eso_version: String, runs: Vec<PeerRun>) -> Self {
        let targets = settings
            .sizes
            .iter()
            .filter_map(|&n| {
                let find = |tool: Tool| {
                    runs.iter()
                        .find(|r| r.objects == n && r.tool == tool.name())
                };
                let (ours, theirs) = (find(Tool::Poolwatch)?, find(Tool::ExternalSecrets)?);
                let cpu_ratio =
                    ours.cpu_percent_per_1000_objects / theirs.cpu_percent_per_1000_objects;
                let rss_ratio = ours.rss_mib_per_1000_objects / theirs.rss_mib_per_1000_objects;
                Some(TargetCheck {
                    objects: n,
                    poolwatch_steady_writes: ours.steady_writes,
                    cpu_ratio: measure::round(cpu_ratio),
                    rss_ratio: measure::round(rss_ratio),
                    cpu_per_refresh_ratio: measure::round(
                        ours.cpu_ms_per_refresh / theirs.cpu_ms_per_refresh,
                    ),
                    met: ours.steady_writes == 0 && cpu_ratio <= 0.5 && rss_ratio <= 0.5,
                })
            })
            .collect();
        Self {
            interval_seconds: INTERVAL_SECONDS,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            settle_seconds: settings.timing.settle.as_secs(),
            steady_window_target_seconds: settings.timing.steady.as_secs(),
            reset_between_runs: "every run on a control plane started afresh with empty storage (down.sh, then up.sh)",
            external_secrets_version: eso_version,
            runs,
            targets,
        }
    }

    /// Writes `peers.json` and `peers.md` (each through a temporary file and a rename) and
    /// returns the table.
    fn write(&self) -> String {
        let dir = repo_path("bench/results");
        std::fs::create_dir_all(&dir).expect("create bench/results");
        let json = serde_json::to_string_pretty(self).expect("JSON") + "\n";
        let table = self.table();
        measure::write_atomically(&dir.join("peers.json"), &json);
        measure::write_atomically(&dir.join("peers.md"), &table);
        table
    }

    fn table(&self) -> String {
        let mut out = format!(
            "poolwatch and External Secrets Operator {}, {} s interval, {} cores; steady state: {} s after all are ready, then a {} s window.\n\n",
            self.external_secrets_version,
            self.interval_seconds,
            self.cores,
            self.settle_seconds,
            self.steady_window_target_seconds
        );
        out.push_str("| tool | objects | all ready (s) | refreshes/object/interval | writes/object/interval | requests/object/interval | peak RSS (MiB) | steady RSS (MiB) | RSS per 1000 objects (MiB) | CPU (% of a core) | CPU per 1000 objects (% of a core) | CPU per refresh (ms) |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.runs {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.tool,
                r.objects,
                r.all_ready_seconds,
                r.refreshes_per_object_per_interval,
                r.writes_per_object_per_interval,
                r.requests_per_object_per_interval,
                r.peak_rss_mib,
                r.steady_rss_mib,
                r.rss_mib_per_1000_objects,
                r.steady_cpu_percent_of_one_core,
                r.cpu_percent_per_1000_objects,
                r.cpu_ms_per_refresh
            ));
        }
        out.push_str("\n| objects | poolwatch steady writes | CPU per 1000, poolwatch / ESO | RSS per 1000, poolwatch / ESO | targets (0 writes, both ratios ≤ 0.5) | CPU per refresh, poolwatch / ESO |\n|---:|---:|---:|---:|---|---:|\n");
        for t in &self.targets {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                t.objects,
                t.poolwatch_steady_writes,
                t.cpu_ratio,
                t.rss_ratio,
                if t.met { "met" } else { "missed" },
                t.cpu_per_refresh_ratio
            ));
        }
        out.push_str("\nFlags:\n\n");
        let mut seen = HashSet::new();
        for r in &self.runs {
            let flags = r.flags.join(" ");
            if seen.insert((r.tool, flags.clone())) {
                out.push_str(&format!("- {} (N = {}): `{}`\n", r.tool, r.objects, flags));
            }
        }
        out.push_str(&format!(
            "\nReset between runs: {}.\n",
            self.reset_between_runs
        ));
        out
    }
}

/// Runs a command and returns its trimmed standard output; panics with its output otherwise.
fn run_to_string(command: &mut Command) -> String {
    support::control_plane::run(command)
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .to_owned()
}
