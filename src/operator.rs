//! `poolwatch run`: wires the Kubernetes client, the ModelArts client, the controllers, leader
//! election, metrics and probes together, and shuts them down cleanly on SIGTERM.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use crate::controller::{Context, Settings, error_policy, reconcile};
use crate::metrics::Metrics;
use crate::modelarts::{ClientConfig, ModelArtsClient, RequestObserver};
use crate::resource::PoolStatisticsWatch;
use crate::server::{self, Readiness};
use crate::telemetry::{self, LogFormat};
use crate::upstream::{Budget, Limits};

/// How often deleted watches are looked for.
const DELETION_SWEEP: Duration = Duration::from_secs(2);
/// How long a stopping leader waits for its Lease to be released before it exits anyway.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client from the in-cluster config or `KUBECONFIG` that names itself `poolwatch/<version>`
/// (kube sends no User-Agent), so API server audit logs and RBAC reviews can tell its requests apart.
async fn kubernetes_client() -> Result<Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("poolwatch/", env!("CARGO_PKG_VERSION"))),
    ));
    Client::try_from(config)
}

/// Flags of `poolwatch run`. Each also reads a `POOLWATCH_*` environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(
        long,
        env = "POOLWATCH_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: SocketAddr,

    /// Address of the `/healthz` and `/readyz` probes.
    #[arg(
        long,
        env = "POOLWATCH_HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    pub health_probe_bind_address: SocketAddr,

    /// Hold a coordination.k8s.io Lease so that only one replica polls.
    #[arg(long, env = "POOLWATCH_LEADER_ELECT")]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease (default: the operator's own namespace).
    #[arg(long, env = "POOLWATCH_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "POOLWATCH_LEADER_ELECTION_ID",
        default_value = "poolwatch-leader"
    )]
    pub leader_election_id: String,

    /// How long a Lease stays valid without renewal: the longest a standby waits after a leader dies.
    #[arg(long, env = "POOLWATCH_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub leader_election_lease_duration: Duration,

    /// Watch only this namespace (repeat the flag, or separate with commas). Default: all.
    #[arg(
        long = "watch-namespace",
        env = "POOLWATCH_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub watch_namespaces: Vec<String>,

    /// Allow plain http:// endpoints to hosts that are not loopback (in-cluster simulators).
    #[arg(long, env = "POOLWATCH_ALLOW_HTTP_ENDPOINTS")]
    pub allow_http_endpoints: bool,

    /// PEM file of extra CA certificates for ModelArts and IAM endpoints (private clouds).
    #[arg(long, env = "POOLWATCH_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,

    /// Upstream calls in flight at once, per endpoint and access key.
    #[arg(long, env = "POOLWATCH_UPSTREAM_CONCURRENCY", default_value = "8")]
    pub upstream_concurrency: NonZeroU32,

    /// Upstream calls per second, per endpoint and access key (token bucket).
    #[arg(long, env = "POOLWATCH_UPSTREAM_RATE", default_value = "20")]
    pub upstream_rate: NonZeroU32,

    /// Upstream calls allowed in a burst above the rate, per endpoint and access key.
    #[arg(long, env = "POOLWATCH_UPSTREAM_BURST", default_value = "40")]
    pub upstream_burst: NonZeroU32,

    /// Timeout of one upstream request, body included.
    #[arg(long, env = "POOLWATCH_UPSTREAM_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Reconciles running at once.
    #[arg(
        long,
        env = "POOLWATCH_MAX_CONCURRENT_RECONCILES",
        default_value = "64"
    )]
    pub max_concurrent_reconciles: NonZeroU16,

    /// Log format.
    #[arg(long, env = "POOLWATCH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter in RUST_LOG syntax.
    #[arg(long, env = "POOLWATCH_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Runs the operator until SIGTERM or SIGINT. Returns a message for the user on failure.
pub async fn run(args: RunArgs) -> Result<(), String> {
    telemetry::init(args.log_format, &args.log_level)?;
    let shutdown = shutdown_signal();

    let registry_metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    registry_metrics.register(&mut registry);
    let readiness = Readiness::default();
    let metrics_listener =
        server::bind(args.metrics_bind_address, "--metrics-bind-address").await?;
    let probe_listener = server::bind(
        args.health_probe_bind_address,
        "--health-probe-bind-address",
    )
    .await?;
    tokio::spawn(log_server_end(
        "metrics",
        server::serve_metrics(metrics_listener, Arc::new(registry)),
    ));
    tokio::spawn(log_server_end(
        "probes",
        server::serve_probes(probe_listener, readiness.clone()),
    ));

    let client = kubernetes_client().await.map_err(|e| {
        format!("cannot configure the Kubernetes client ({e}): run in a cluster or set KUBECONFIG")
    })?;
    client
        .apiserver_version()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API server: {e}"))?;
    readiness.set(true);

    let context =
        Arc::new(build_context(&args, client.clone(), Arc::clone(&registry_metrics)).await?);

    if !args.leader_elect {
        registry_metrics.set_leader(true);
        run_controllers(&args, client, context, shutdown).await;
        return Ok(());
    }

    let namespace = match &args.leader_election_namespace {
        Some(namespace) => namespace.clone(),
        None => own_namespace(),
    };
    let identity = replica_identity();
    let manager = LeaseManagerBuilder::new(client.clone(), &args.leader_election_id)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(args.leader_election_lease_duration.as_secs().max(2))
        .with_grace((args.leader_election_lease_duration.as_secs() / 3).max(1))
        .with_field_manager(format!("poolwatch-{identity}"))
        .build()
        .await
        .map_err(|e| format!("cannot set up leader election in namespace {namespace}: {e}"))?;
    let (mut leading, lease_task) = manager.watch().await;
    info!(lease = %args.leader_election_id, %namespace, %identity, "waiting to lead");

    let became_leader = async {
        while !*leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    let outcome = tokio::select! {
        leader = became_leader => if leader { Ok(()) } else { Err("leader election stopped".to_owned()) },
        () = shutdown.clone() => {
            info!("stopping before leading");
            drop(leading);
            let _ = tokio::time::timeout(RELEASE_TIMEOUT, lease_task).await;
            return Ok(());
        }
    };
    outcome?;
    info!(%identity, "leading: starting the controllers");
    registry_metrics.set_leader(true);

    let mut lost = leading.clone();
    let lost_leadership = async move {
        loop {
            if lost.changed().await.is_err() || !*lost.borrow_and_update() {
                return;
            }
        }
    }
    .boxed()
    .shared();
    let stop = futures::future::select(shutdown.clone(), lost_leadership.clone())
        .map(|_| ())
        .boxed()
        .shared();
    run_controllers(&args, client, context, stop).await;
    registry_metrics.set_leader(false);

    let lost = lost_leadership.peek().is_some() && shutdown.peek().is_none();
    // The Lease is released only once every receiver of the leadership channel is gone; the
    // pending `lost_leadership` future holds one.
    drop(lost_leadership);
    drop(leading);
    match tokio::time::timeout(RELEASE_TIMEOUT, lease_task).await {
        Ok(Ok(Ok(_))) => info!("released the leader Lease"),
        Ok(Ok(Err(e))) => warn!(error = %e, "could not release the leader Lease"),
        Ok(Err(e)) => warn!(error = %e, "leader-election task failed"),
        Err(_) => warn!("releasing the leader Lease timed out"),
    }
    if lost {
        return Err(
            "lost the leader Lease; exiting so that a restart rejoins as a standby".to_owned(),
        );
    }
    Ok(())
}

async fn build_context(
    args: &RunArgs,
    client: Client,
    metrics: Arc<Metrics>,
) -> Result<Context, String> {
    let extra_root_certificates = match &args.ca_bundle {
        Some(path) => Some(
            tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read --ca-bundle {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let observer_metrics = Arc::clone(&metrics);
    let observer: RequestObserver =
        Arc::new(move |record| observer_metrics.observe_request(record));
    let modelarts = ModelArtsClient::new(ClientConfig {
        request_timeout: args.upstream_timeout,
        extra_root_certificates,
        allow_http: args.allow_http_endpoints,
        observer: Some(observer),
        ..ClientConfig::default()
    })
    .map_err(|e| format!("cannot set up the ModelArts client: {e}"))?;
    let budget = Budget::new(Limits {
        concurrency: args.upstream_concurrency,
        rate_per_second: args.upstream_rate,
        burst: args.upstream_burst,
    });
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "poolwatch".to_owned(),
            instance: Some(replica_identity()),
        },
    );
    let settings = Settings {
        allow_http_endpoints: args.allow_http_endpoints,
    };
    Ok(Context::new(
        client, modelarts, budget, recorder, metrics, settings,
    ))
}

/// Runs one controller per watched namespace (or one for all) until `stop` resolves.
async fn run_controllers(
    args: &RunArgs,
    client: Client,
    context: Arc<Context>,
    stop: Shared<BoxFuture<'static, ()>>,
) {
    let apis: Vec<Api<PoolStatisticsWatch>> = if args.watch_namespaces.is_empty() {
        vec![Api::all(client)]
    } else {
        args.watch_namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let config = controller::Config::default().concurrency(args.max_concurrent_reconciles.get());
    let controllers: Vec<Controller<PoolStatisticsWatch>> = apis
        .into_iter()
        .map(|api| {
            Controller::new(api, watcher::Config::default())
                .with_config(config.clone())
                .graceful_shutdown_on(stop.clone())
        })
        .collect();
    let stores: Vec<Store<PoolStatisticsWatch>> =
        controllers.iter().map(Controller::store).collect();
    let sweeper = tokio::spawn(forget_deleted_watches(Arc::clone(&context), stores));
    let runs = controllers.into_iter().map(|controller| {
        controller
            .run(reconcile, error_policy, Arc::clone(&context))
            .boxed()
    });
    info!(namespaces = ?args.watch_namespaces, "controllers running");
    futures::stream::select_all(runs)
        .for_each(|result| {
            match result {
                Ok(_) => {}
                // A deleted watch: a reconcile was still scheduled for it. Nothing of it may stay.
                Err(controller::Error::ObjectNotFound(object)) => {
                    context.forget(
                        object.namespace.as_deref().unwrap_or_default(),
                        &object.name,
                    );
                }
                // Already logged by the error policy.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(controller::Error::QueueError(error)) if is_forbidden(&error) => error!(
                    %error,
                    "poolwatch may not list and watch PoolStatisticsWatches: grant it list and \
                     watch on poolstatisticswatches.poolwatch.io where it watches (the chart's \
                     ClusterRole or Roles do)"
                ),
                Err(other) => warn!(error = %other, "controller error"),
            }
            std::future::ready(())
        })
        .await;
    sweeper.abort();
    info!("controllers stopped");
}

/// Whether the API server refused to list or watch the watches (RBAC), which only a change to the
/// operator's Role can fix.
fn is_forbidden(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 403,
        watcher::Error::WatchError(status) => status.code == 403,
        _ => false,
    }
}

/// A deletion triggers no reconcile, so deleted watches are found by comparing what the
/// operator remembers with the controllers' caches, every few seconds.
async fn forget_deleted_watches(context: Arc<Context>, stores: Vec<Store<PoolStatisticsWatch>>) {
    let mut tick = tokio::time::interval(DELETION_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        context.forget_deleted(|namespace, name| {
            let object = ObjectRef::new(name).within(namespace);
            stores.iter().any(|store| store.get(&object).is_some())
        });
    }
}

/// Resolves on SIGTERM or SIGINT; clones share one signal.
fn shutdown_signal() -> Shared<BoxFuture<'static, ()>> {
    async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut terminate) => {
                    tokio::select! {
                        _ = terminate.recv() => info!("SIGTERM: shutting down"),
                        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
                    }
                }
                Err(e) => {
                    error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the operator");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    .boxed()
    .shared()
}

async fn log_server_end(name: &'static str, server: impl Future<Output = std::io::Result<()>>) {
    if let Err(e) = server.await {
        error!(server = name, error = %e, "HTTP server stopped");
    }
}

/// The namespace the operator runs in: `POD_NAMESPACE`, the service account's namespace file,
/// or `default` outside a cluster.
fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|ns| ns.trim().to_owned())
        })
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// This replica's name in the Lease and in events: the pod name, or the host name, plus the PID
/// so that two replicas on one host differ.
fn replica_identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "poolwatch".to_owned());
    format!("{host}-{}", std::process::id())
}
