//! `make bench`: what a poolwatch deployment watching hundreds of workspaces costs, measured from
//! outside the operator. N watches of distinct workspaces share one access key and a 30 s
//! interval; the release binary runs against the local control plane and the simulator.
//!
//! Figures: time until all N are Ready, and from each watch's creation to its Ready (with the
//! polls that failed on the way); upstream calls per watch per interval in steady state
//! (1.0 is the minimum); status writes per watch until all are Ready, and in steady state while
//! counts do not change (from the API server's audit log); the operator's peak RSS and CPU share in steady state
//! (from /proc); reconcile latency percentiles (from its own histogram). Results go to
//! `bench/results/` as JSON plus a Markdown table, which is also printed.
//!
//! Settings (environment): `N` (watches, default 500), `STEADY_SECONDS` (steady-state window,
//! default 90), `SETTLE_SECONDS` (wait after all are Ready before measuring, default 35, which
//! covers the first scheduled poll of every watch), `RATE` (the operator's
//! `--upstream-rate`; default its own default of 20/s, raised to what N watches need every 30 s
//! with 20 % headroom once N is past 500, since a budget below the demand stretches every
//! interval by design), `BURST` (default twice the rate) and `CONCURRENCY` (the operator's
//! `--upstream-concurrency`; default its own 8, or a tenth of the rate when that is more: the
//! calls in flight a rate needs at 100 ms a call), `DETAILS` (1: every watch sets
//! `spec.poolDetails` and its workspace has [`POOLS_PER_WORKSPACE`] pools, so each poll also makes
//! the two pool-list calls, and the budget is sized for three calls a poll; results go to
//! `scale-N-details.*`).

mod measure;
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use kube::Api;
use kube::api::ListParams;
use measure::fleet::{self, Budget};
use measure::{Timing, cpu_ticks, histogram, memory_kib, quantile, round, write_atomically};
use poolwatch::api::PoolStatisticsWatch;
use poolwatch::simulator::{Api as SimulatorApi, RequestFilter};
use support::control_plane::TestNamespace;
use support::operator::Operator;

const INTERVAL_SECONDS: u64 = 30;
/// Pools in each workspace with `DETAILS=1`.
const POOLS_PER_WORKSPACE: usize = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --all-targets` runs bench targets too (`make test` only builds this one); only
    // `cargo bench` passes --bench. Say so and fail, rather than pass having measured nothing.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("scale benchmark: not run; run it with `make bench` (N=500 by default)");
        std::process::exit(2);
    }
    let watches = measure::setting("N", 500) as usize;
    let pool_details = measure::setting("DETAILS", 0) == 1;
    let calls_per_poll = if pool_details { 3 } else { 1 };
    let budget = Budget::for_watches(watches, INTERVAL_SECONDS, calls_per_poll);
    let Timing { settle, steady } = Timing::from_env();
    let namespace = TestNamespace::new(&format!("bench-{watches}")).await;
    // The run's future owns the operator and the simulator, each stopped when dropped: an
    // interruption drops the future, a failure unwinds through it. Either way the namespace goes
    // too, since thousands of watches left in etcd would slow every later run on this control plane.
    let outcome = tokio::select! {
        biased;
        signal = measure::interrupted() => Err((signal, 130)),
        result = AssertUnwindSafe(run(&namespace, watches, pool_details, budget, steady, settle)).catch_unwind() => {
            result.map_err(|_| ("failed (the panic above says why)", 101))
        }
    };
    delete_namespace(&namespace).await;
    match outcome {
        Ok(result) => {
            let (json_path, table) = result.write();
            println!("\n{table}\nresults: {json_path}");
        }
        Err((why, code)) => {
            eprintln!(
                "scale benchmark: {why}; stopped the operator, deleted namespace {}; no result written",
                namespace.name
            );
            std::process::exit(code);
        }
    }
}

/// Deletes the benchmark's namespace and, with it, its watches and Secret.
async fn delete_namespace(namespace: &TestNamespace) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(namespace.client.clone());
    if let Err(error) = namespaces
        .delete(&namespace.name, &kube::api::DeleteParams::default())
        .await
    {
        eprintln!("could not delete namespace {}: {error}", namespace.name);
    }
}

/// Everything one run measured.
#[derive(serde::Serialize)]
struct BenchResult {
    watches: usize,
    /// Every watch with `spec.poolDetails`, [`POOLS_PER_WORKSPACE`] pools per workspace.
    pool_details: bool,
    pools_per_workspace: usize,
    interval_seconds: u64,
    upstream_rate: u64,
    upstream_burst: u64,
    upstream_concurrency: u64,
    cores: usize,
    all_created_seconds: f64,
    /// The API server's CPU (percent of one core) while the watches were created, and its mean
    /// latency for one create, from its own metrics: whether it, not the operator, set the pace.
    api_server_cpu_percent_while_creating: f64,
    api_server_create_latency_ms: f64,
    all_ready_seconds: f64,
    /// From each watch's creation to its `Ready` condition turning True, in whole seconds (the
    /// precision of Kubernetes timestamps).
    ready_after_creation_p50_seconds: f64,
    ready_after_creation_p99_seconds: f64,
    ready_after_creation_max_seconds: f64,
    /// Polls that failed before all were Ready (each delays its watch by a retry).
    startup_failed_polls: u64,
    rate_limit_floor_seconds: f64,
    steady_window_seconds: f64,
    upstream_calls: u64,
    calls_per_watch_per_interval: f64,
    /// Of those, pool lists (with `DETAILS=1`: two a poll, the current and the failed pools).
    list_calls: u64,
    list_calls_per_watch_per_interval: f64,
    startup_status_writes: usize,
    startup_status_writes_per_watch: f64,
    status_writes: usize,
    status_writes_per_watch: f64,
    peak_rss_mib: f64,
    steady_rss_mib: f64,
    steady_cpu_percent_of_one_core: f64,
    rss_kib_per_watch: f64,
    cpu_percent_per_1000_watches: f64,
    reconcile_p50_ms: f64,
    reconcile_p90_ms: f64,
    reconcile_p99_ms: f64,
}

async fn run(
    namespace: &TestNamespace,
    watches: usize,
    pool_details: bool,
    budget: Budget,
    steady: Duration,
    settle: Duration,
) -> BenchResult {
    let simulator = support::simulator::start().await;
    fleet::seed_counts(&simulator, watches);
    if pool_details {
        fleet::seed_pools(&simulator, watches, POOLS_PER_WORKSPACE);
    }
    fleet::put_credentials(namespace).await;
    // Info level: what a production deployment logs (debug would measure log formatting).
    let (rate, burst) = (budget.rate.to_string(), budget.burst.to_string());
    let concurrency = budget.concurrency.to_string();
    let mut operator = Operator::start_on(
        &support::control_plane::control_plane().kubeconfig,
        &namespace.name,
        "info",
        &[
            "--upstream-rate",
            &rate,
            "--upstream-burst",
            &burst,
            "--upstream-concurrency",
            &concurrency,
        ],
    );
    let api: Api<PoolStatisticsWatch> = Api::namespaced(namespace.client.clone(), &namespace.name);

    let api_server_before = ApiServerLoad::read(&namespace.client).await;
    let started = Instant::now();
    fleet::create_watches(
        &api,
        watches,
        &simulator.base_url(),
        INTERVAL_SECONDS,
        pool_details,
    )
    .await;
    // The API server's own pace: no watch can be Ready before it exists.
    let all_created = started.elapsed();
    let creating = ApiServerLoad::read(&namespace.client)
        .await
        .since(&api_server_before, all_created);

    let listed = loop {
        let listed = api
            .list(&ListParams::default())
            .await
            .expect("list watches")
            .items;
        let ready = listed.iter().filter(|w| is_ready(w)).count();
        if ready == watches {
            break listed;
        }
        if let Some(status) = operator.exit_status() {
            panic!(
                "the operator exited ({status}); its log:\n{}",
                operator.logs().join("\n")
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {ready} of {watches} Ready after 10 minutes"
        );
        // A list of every watch is heavy for N in the thousands: once a second is enough.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let all_ready = started.elapsed();
    // Every status write so far made the watches Ready: the cost of starting them.
    let startup_writes = status_writes(namespace);
    let startup_failures = failed_polls(&operator.metrics().await);
    let ready_after = ReadyAfter::of(&listed);
    eprintln!(
        "all {watches} Ready after {:.1} s (each {} s after its creation, p50 / p99 / max); \
         failed polls on the way: {startup_failures:?}; settling {} s",
        all_ready.as_secs_f64(),
        ready_after.describe(),
        settle.as_secs()
    );
    tokio::time::sleep(settle).await;

    let pid = operator.pid();
    let statistics = RequestFilter::api(SimulatorApi::Statistics);
    let lists = RequestFilter::api(SimulatorApi::ListPools);
    let calls_before = simulator.requests_served(&statistics);
    let lists_before = simulator.requests_served(&lists);
    let writes_before = status_writes(namespace);
    let cpu_before = cpu_ticks(pid);
    let window_started = Instant::now();
    eprintln!("measuring steady state for {} s", steady.as_secs());
    tokio::time::sleep(steady).await;
    let window = window_started.elapsed();
    let cpu_after = cpu_ticks(pid);
    let list_calls = simulator.requests_served(&lists) - lists_before;
    let calls = simulator.requests_served(&statistics) - calls_before + list_calls;
    let writes = status_writes(namespace) - writes_before;
    let (peak_rss_kib, rss_kib) = memory_kib(pid);
    let metrics = operator.metrics().await;
    let cpu_percent =
        (cpu_after - cpu_before) as f64 / measure::TICKS_PER_SECOND / window.as_secs_f64() * 100.0;
    let intervals = window.as_secs_f64() / INTERVAL_SECONDS as f64;
    let histogram = histogram(&metrics, "poolwatch_reconcile_duration_seconds");
    // The burst goes at once; the rest at the rate.
    let rate_limit_floor =
        watches.saturating_sub(budget.burst as usize) as f64 / budget.rate as f64;

    save_log(&operator, watches);
    drop(operator);
    BenchResult {
        watches,
        pool_details,
        pools_per_workspace: if pool_details { POOLS_PER_WORKSPACE } else { 0 },
        interval_seconds: INTERVAL_SECONDS,
        upstream_rate: budget.rate,
        upstream_concurrency: budget.concurrency,
        upstream_burst: budget.burst,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        all_created_seconds: round(all_created.as_secs_f64()),
        api_server_cpu_percent_while_creating: round(creating.cpu_percent),
        api_server_create_latency_ms: round(creating.create_latency_ms),
        all_ready_seconds: round(all_ready.as_secs_f64()),
        ready_after_creation_p50_seconds: ready_after.p50,
        ready_after_creation_p99_seconds: ready_after.p99,
        ready_after_creation_max_seconds: ready_after.max,
        startup_failed_polls: startup_failures.values().sum(),
        rate_limit_floor_seconds: round(rate_limit_floor),
        steady_window_seconds: round(window.as_secs_f64()),
        upstream_calls: calls,
        calls_per_watch_per_interval: round(calls as f64 / watches as f64 / intervals),
        list_calls,
        list_calls_per_watch_per_interval: round(list_calls as f64 / watches as f64 / intervals),
        startup_status_writes: startup_writes,
        startup_status_writes_per_watch: round(startup_writes as f64 / watches as f64),
        status_writes: writes,
        status_writes_per_watch: round(writes as f64 / watches as f64),
        peak_rss_mib: round(peak_rss_kib as f64 / 1024.0),
        steady_rss_mib: round(rss_kib as f64 / 1024.0),
        steady_cpu_percent_of_one_core: round(cpu_percent),
        rss_kib_per_watch: round(rss_kib as f64 / watches as f64),
        cpu_percent_per_1000_watches: round(cpu_percent / watches as f64 * 1000.0),
        reconcile_p50_ms: round(quantile(&histogram, 0.5) * 1000.0),
        reconcile_p90_ms: round(quantile(&histogram, 0.9) * 1000.0),
        reconcile_p99_ms: round(quantile(&histogram, 0.99) * 1000.0),
    }
}

impl BenchResult {
    fn write(&self) -> (String, String) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
        std::fs::create_dir_all(&dir).expect("create bench/results");
        let stem = if self.pool_details {
            format!("scale-{}-details", self.watches)
        } else {
            format!("scale-{}", self.watches)
        };
        let json_path = dir.join(format!("{stem}.json"));
        write_atomically(
            &json_path,
            &(serde_json::to_string_pretty(self).unwrap() + "\n"),
        );
        let table = self.table();
        write_atomically(&dir.join(format!("{stem}.md")), &table);
        (format!("bench/results/{stem}.json"), table)
    }

    fn table(&self) -> String {
        let rows = [
            (
                "watches (distinct workspaces, one key)",
                self.watches.to_string(),
            ),
            ("machine cores", self.cores.to_string()),
            (
                "upstream budget",
                format!(
                    "{}/s, burst {}, {} in flight",
                    self.upstream_rate, self.upstream_burst, self.upstream_concurrency
                ),
            ),
            (
                "all Ready after",
                format!(
                    "{} s (rate-limit floor {} s; the API server took {} s to create them all, \
                     at {} % of one core and {} ms a create)",
                    self.all_ready_seconds,
                    self.rate_limit_floor_seconds,
                    self.all_created_seconds,
                    self.api_server_cpu_percent_while_creating,
                    self.api_server_create_latency_ms
                ),
            ),
            (
                "each watch Ready after its creation (p50 / p99 / max)",
                format!(
                    "{} / {} / {} s ({} failed polls on the way)",
                    self.ready_after_creation_p50_seconds,
                    self.ready_after_creation_p99_seconds,
                    self.ready_after_creation_max_seconds,
                    self.startup_failed_polls
                ),
            ),
            (
                "pool details",
                if self.pool_details {
                    format!("on, {} pools per workspace", self.pools_per_workspace)
                } else {
                    "off".to_owned()
                },
            ),
            (
                "upstream calls per watch per interval",
                format!(
                    "{} (of which pool lists: {})",
                    self.calls_per_watch_per_interval, self.list_calls_per_watch_per_interval
                ),
            ),
            (
                "status writes per watch until all are Ready",
                format!(
                    "{} ({} in all)",
                    self.startup_status_writes_per_watch, self.startup_status_writes
                ),
            ),
            (
                "status writes per watch, steady state",
                format!(
                    "{} ({} in {} s)",
                    self.status_writes_per_watch, self.status_writes, self.steady_window_seconds
                ),
            ),
            ("peak RSS", format!("{} MiB", self.peak_rss_mib)),
            (
                "RSS in steady state",
                format!(
                    "{} MiB ({} KiB per watch)",
                    self.steady_rss_mib, self.rss_kib_per_watch
                ),
            ),
            (
                "CPU in steady state",
                format!("{} % of one core", self.steady_cpu_percent_of_one_core),
            ),
            (
                "reconcile p50 / p90 / p99",
                format!(
                    "{} / {} / {} ms",
                    self.reconcile_p50_ms, self.reconcile_p90_ms, self.reconcile_p99_ms
                ),
            ),
        ];
        let mut table = format!(
            "| poolwatch scale benchmark, N = {}, interval {} s{} | |\n|---|---|\n",
            self.watches,
            self.interval_seconds,
            if self.pool_details {
                ", pool details"
            } else {
                ""
            }
        );
        for (name, value) in rows {
            table.push_str(&format!("| {name} | {value} |\n"));
        }
        table
    }
}

/// How long each watch took from its creation to `Ready`, as quantiles over all watches.
struct ReadyAfter {
    p50: f64,
    p99: f64,
    max: f64,
}

impl ReadyAfter {
    fn of(watches: &[PoolStatisticsWatch]) -> Self {
        let mut seconds: Vec<i64> = watches
            .iter()
            .filter_map(|watch| {
                let created = watch.metadata.creation_timestamp.as_ref()?.0;
                let ready = watch
                    .status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")?
                    .last_transition_time
                    .0;
                Some(ready.as_second() - created.as_second())
            })
            .collect();
        assert_eq!(
            seconds.len(),
            watches.len(),
            "every Ready watch has both timestamps"
        );
        seconds.sort_unstable();
        let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize] as f64;
        Self {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    fn describe(&self) -> String {
        format!("{} / {} / {}", self.p50, self.p99, self.max)
    }
}

/// The API server's own account of its work, from its `/metrics`: CPU spent and the watches it
/// created, with the time they took.
struct ApiServerLoad {
    cpu_seconds: f64,
    creates: f64,
    create_seconds: f64,
}

/// What the API server spent over a span of time.
struct ApiServerSpan {
    cpu_percent: f64,
    create_latency_ms: f64,
}

impl ApiServerLoad {
    async fn read(client: &kube::Client) -> Self {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("a request");
        let metrics = client
            .request_text(request)
            .await
            .expect("the API server's /metrics");
        let value = |name: &str, labels: &[&str]| -> f64 {
            metrics
                .lines()
                .filter(|line| {
                    line.starts_with(name)
                        && line[name.len()..].starts_with(['{', ' '])
                        && labels.iter().all(|label| line.contains(label))
                })
                .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        };
        let creates = [
            r#"resource="poolstatisticswatches""#,
            r#"verb="POST""#,
            r#"subresource="""#,
        ];
        Self {
            cpu_seconds: value("process_cpu_seconds_total", &[]),
            creates: value("apiserver_request_duration_seconds_count", &creates),
            create_seconds: value("apiserver_request_duration_seconds_sum", &creates),
        }
    }

    fn since(&self, before: &Self, elapsed: Duration) -> ApiServerSpan {
        let creates = self.creates - before.creates;
        assert!(
            creates > 0.0,
            "the API server's metrics count no create of a watch"
        );
        ApiServerSpan {
            cpu_percent: (self.cpu_seconds - before.cpu_seconds) / elapsed.as_secs_f64() * 100.0,
            create_latency_ms: (self.create_seconds - before.create_seconds) / creates * 1000.0,
        }
    }
}

/// The operator's failed polls so far, by reason, from `poolwatch_polls_total`.
fn failed_polls(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("poolwatch_polls_total{result=\""))
        .filter_map(|rest| {
            let (result, value) = rest.split_once("\"} ")?;
            Some((result.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .filter(|(result, _)| result != "success")
        .collect()
}

/// Keeps the operator's log of a complete run in `target/bench/`, to look up what a slow watch
/// waited for.
fn save_log(operator: &Operator, watches: usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let path = dir.join(format!("scale-{watches}-operator.log"));
    std::fs::write(&path, operator.logs().join("\n") + "\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprintln!("the operator's log: {}", path.display());
}

fn is_ready(watch: &PoolStatisticsWatch) -> bool {
    watch.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Status writes (patches of the status subresource) in the namespace so far.
fn status_writes(namespace: &TestNamespace) -> usize {
    namespace
        .audit_events()
        .iter()
        .filter(|e| {
            e["objectRef"]["subresource"] == "status"
                && e["verb"] == "patch"
                && e["stage"] == "ResponseComplete"
        })
        .count()
}
