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
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use super::context::{Context, Settings};
use super::endpoints::{self, BindError, MetricsEndpoint, Readiness};
use super::keyless::{AllowedNamespaces, OperatorIdentitySettings, PodIdentity};
use super::metrics::Metrics;
use super::metrics_auth::Readers;
use super::metrics_tls::{self, CertificateError};
use super::reconciler::{error_policy, reconcile};
use super::telemetry::{self, LogFormat, LoggingError};
use super::trust::{EndpointPolicy, HostPattern};
use super::upstream::Limits;
use crate::api::PoolStatisticsWatch;
use crate::modelarts::keyless::DEFAULT_METADATA_ENDPOINT;
use crate::modelarts::{ClientConfig, Endpoint, ModelArtsClient, RequestObserver, ServiceUrl};

/// How often deleted watches are looked for.
const DELETION_SWEEP: Duration = Duration::from_secs(2);
/// How often `/readyz` asks the API server whether it answers.
const READINESS_PERIOD: Duration = Duration::from_secs(5);
/// How long that question may take before the API server counts as not answering.
const READINESS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a stopping leader waits for its Lease to be released before it exits anyway.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How this replica names itself to the API server and to ModelArts: `poolwatch/<version>
/// (<replica identity>)`, so that audit logs on both sides tell poolwatch's requests apart, and
/// one replica's from another's.
fn user_agent() -> String {
    format!(
        "poolwatch/{} ({})",
        env!("CARGO_PKG_VERSION"),
        replica_identity()
    )
}

/// A client from the in-cluster config or `KUBECONFIG` that sends [`user_agent`] (kube sends no
/// User-Agent of its own).
async fn kubernetes_client() -> Result<Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let agent = http::HeaderValue::from_str(&user_agent()).unwrap_or_else(|_| {
        // A host name that is not a valid header value: the version alone.
        http::HeaderValue::from_static(concat!("poolwatch/", env!("CARGO_PKG_VERSION")))
    });
    config.headers.push((http::header::USER_AGENT, agent));
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

    /// Serve `/metrics` over HTTPS; `--metrics-secure=false` for plain HTTP. Either way only
    /// callers whose bearer token the API server accepts (TokenReview) and allows `get` on the
    /// non-resource URL `/metrics` (SubjectAccessReview) read it.
    #[arg(
        long,
        env = "POOLWATCH_METRICS_SECURE",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub metrics_secure: bool,

    /// Directory holding `tls.crt` and `tls.key` for `/metrics` (a mounted cert-manager Secret,
    /// say), read again when they change. Default: a self-signed certificate made at start.
    #[arg(long, env = "POOLWATCH_METRICS_CERT_DIR", value_name = "DIR")]
    pub metrics_cert_dir: Option<PathBuf>,

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

    /// An endpoint trusted with keyless credentials (a ServiceAccount token, the operator's own
    /// keys) besides Huawei's endpoints of each watch's region: a private cloud, a simulator.
    /// Repeat the flag or separate with commas. Default: none.
    #[arg(
        long = "trusted-endpoint",
        env = "POOLWATCH_TRUSTED_ENDPOINTS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub trusted_endpoints: Vec<String>,

    /// Hosts that watches with their own keys may name in spec.endpoint and spec.iamEndpoint:
    /// a host, or `*.domain` for every host below it. Repeat the flag or separate with commas.
    /// Default: any host.
    #[arg(
        long = "allowed-endpoint-host",
        env = "POOLWATCH_ALLOWED_ENDPOINT_HOSTS",
        value_name = "PATTERN",
        value_delimiter = ',',
        value_parser = HostPattern::parse
    )]
    pub allowed_endpoint_hosts: Vec<HostPattern>,

    /// PEM file of extra CA certificates for ModelArts and IAM endpoints (private clouds).
    #[arg(long, env = "POOLWATCH_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,

    /// Upstream calls in flight at once, per endpoint and access key.
    #[arg(long, env = "POOLWATCH_UPSTREAM_CONCURRENCY", default_value = "8")]
    pub upstream_concurrency: NonZeroU32,

    /// Polls in flight at once per namespace, whatever endpoints and keys its watches name
    /// (credential exchanges included): one namespace's hung endpoints cannot hold up the others.
    #[arg(
        long,
        env = "POOLWATCH_UPSTREAM_CONCURRENCY_PER_NAMESPACE",
        default_value = "16"
    )]
    pub upstream_concurrency_per_namespace: NonZeroU32,

    /// Upstream calls per second, per endpoint and access key (token bucket).
    #[arg(long, env = "POOLWATCH_UPSTREAM_RATE", default_value = "20")]
    pub upstream_rate: NonZeroU32,

    /// Upstream calls allowed in a burst above the rate, per endpoint and access key.
    #[arg(long, env = "POOLWATCH_UPSTREAM_BURST", default_value = "40")]
    pub upstream_burst: NonZeroU32,

    /// Timeout of one upstream request, body included.
    #[arg(long, env = "POOLWATCH_UPSTREAM_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Namespaces whose watches may use the operator's own identity (spec.operatorIdentity):
    /// repeat the flag or separate with commas; `*` for all. Default: none.
    #[arg(
        long = "operator-identity-namespace",
        env = "POOLWATCH_OPERATOR_IDENTITY_NAMESPACES",
        value_delimiter = ','
    )]
    pub operator_identity_namespaces: Vec<String>,

    /// CCE Pod Identity's credential URL, as CCE sets it in pods with Pod Identity.
    #[arg(long, env = "HC_CONTAINER_CREDENTIALS_FULL_URI", value_name = "URL", value_parser = ServiceUrl::parse)]
    pub pod_identity_url: Option<ServiceUrl>,

    /// The file holding the pod's CCE Pod Identity token, as CCE sets it.
    #[arg(
        long,
        env = "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub pod_identity_token_file: Option<PathBuf>,

    /// The ECS metadata service, for the node's agency when the pod has no Pod Identity.
    #[arg(long, env = "POOLWATCH_METADATA_ENDPOINT", value_name = "URL", default_value = DEFAULT_METADATA_ENDPOINT, value_parser = parse_metadata_endpoint)]
    pub metadata_endpoint: Endpoint,

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

/// The metadata service listens on a link-local address over plain HTTP.
fn parse_metadata_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text, true).map_err(|e| e.to_string())
}

/// Why the operator could not start, or stopped with an error. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Logging could not be set up.
    #[error(transparent)]
    Logging(#[from] LoggingError),
    /// An endpoint's address could not be bound.
    #[error(transparent)]
    Listen(#[from] BindError),
    /// `/metrics` has no certificate to serve.
    #[error(transparent)]
    MetricsCertificate(#[from] CertificateError),
    /// A certificate directory was given for plain HTTP.
    #[error("--metrics-cert-dir is for HTTPS: drop it, or drop --metrics-secure=false")]
    MetricsCertDirWithoutTls,
    /// Neither an in-cluster configuration nor `KUBECONFIG` gave a client.
    #[error(
        "cannot configure the Kubernetes client ({0}): run in a cluster with the ServiceAccount \
         token mounted at /var/run/secrets/kubernetes.io/serviceaccount (automountServiceAccountToken), \
         or set KUBECONFIG"
    )]
    KubernetesConfig(#[source] kube::Error),
    /// The API server did not answer.
    #[error("cannot reach the Kubernetes API server: {0}")]
    KubernetesUnreachable(#[source] kube::Error),
    /// Only one of the two Pod Identity settings is given.
    #[error(
        "CCE Pod Identity needs both HC_CONTAINER_CREDENTIALS_FULL_URI (--pod-identity-url) and HC_CONTAINER_AUTHORIZATION_TOKEN_FILE (--pod-identity-token-file), or neither"
    )]
    HalfPodIdentity,
    /// A `--trusted-endpoint` is not an endpoint.
    #[error("--trusted-endpoint {input:?}: {source}")]
    TrustedEndpoint {
        /// What was given.
        input: String,
        /// Why it is not an endpoint.
        source: crate::modelarts::EndpointError,
    },
    /// `--ca-bundle` could not be read.
    #[error("cannot read --ca-bundle {path}: {source}")]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The ModelArts client could not be built (an unusable CA bundle).
    #[error("cannot set up the ModelArts client: {0}")]
    ModelArtsClient(#[source] crate::modelarts::ModelArtsError),
    /// The leader-election Lease could not be set up (RBAC, a missing namespace).
    #[error("cannot set up leader election in namespace {namespace}: {source}")]
    LeaderElection {
        /// Where the Lease lives.
        namespace: String,
        /// What went wrong.
        source: kube_lease_manager::LeaseManagerError,
    },
    /// Leader election ended before this replica led.
    #[error("leader election stopped")]
    LeaderElectionStopped,
    /// Another replica took the Lease over.
    #[error("lost the leader Lease; exiting so that a restart rejoins as a standby")]
    LostLease,
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(args: RunArgs) -> Result<(), StartupError> {
    telemetry::init(args.log_format, &args.log_level)?;
    let shutdown = shutdown_signal();
    let (metrics, readiness, metrics_endpoint) = serve_endpoints(&args).await?;
    let client = kubernetes_client()
        .await
        .map_err(StartupError::KubernetesConfig)?;
    tokio::spawn(log_server_end(
        "metrics",
        metrics_endpoint.serve(Arc::new(Readers::new(client.clone()))),
    ));
    client
        .apiserver_version()
        .await
        .map_err(StartupError::KubernetesUnreachable)?;
    readiness.set(true);
    tokio::spawn(follow_api_server(client.clone(), readiness));
    let context = Arc::new(build_context(&args, client.clone(), Arc::clone(&metrics)).await?);
    if !args.leader_elect {
        metrics.set_leader(true);
        run_controllers(&args, client, context, shutdown).await;
        return Ok(());
    }
    let leader = Leader {
        args: &args,
        client,
        metrics,
        shutdown,
    };
    leader.lead_then_run(context).await
}

/// Binds `/metrics` and the probes and starts the probes; returns the metrics, the readiness the
/// probes report, and `/metrics`, to be served once there is a client to review its readers with.
async fn serve_endpoints(
    args: &RunArgs,
) -> Result<(Arc<Metrics>, Readiness, MetricsEndpoint), StartupError> {
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let readiness = Readiness::default();
    let metrics_listener =
        endpoints::bind(args.metrics_bind_address, "--metrics-bind-address").await?;
    let probe_listener = endpoints::bind(
        args.health_probe_bind_address,
        "--health-probe-bind-address",
    )
    .await?;
    let tls = match (args.metrics_secure, &args.metrics_cert_dir) {
        (true, dir) => Some(metrics_tls::server_config(dir.as_deref()).await?),
        (false, None) => None,
        (false, Some(_)) => return Err(StartupError::MetricsCertDirWithoutTls),
    };
    let certificate = match (&tls, &args.metrics_cert_dir) {
        (None, _) => "none (plain HTTP)".to_owned(),
        (Some(_), None) => "self-signed".to_owned(),
        (Some(_), Some(dir)) => dir.display().to_string(),
    };
    info!(
        address = %args.metrics_bind_address,
        %certificate,
        "serving /metrics to callers allowed get on /metrics"
    );
    tokio::spawn(log_server_end(
        "probes",
        endpoints::serve_probes(probe_listener, readiness.clone()),
    ));
    let endpoint = MetricsEndpoint {
        listener: metrics_listener,
        registry: Arc::new(registry),
        tls,
    };
    Ok((metrics, readiness, endpoint))
}

/// Keeps `/readyz` in step with the API server: not ready while it does not answer (down,
/// frozen, unreachable), ready again once it does. Checked every [`READINESS_PERIOD`], each check
/// bounded by [`READINESS_TIMEOUT`] so that a frozen server counts as down.
async fn follow_api_server(client: Client, readiness: Readiness) {
    loop {
        tokio::time::sleep(READINESS_PERIOD).await;
        let answered = tokio::time::timeout(READINESS_TIMEOUT, client.apiserver_version())
            .await
            .is_ok_and(|version| version.is_ok());
        if answered != readiness.is_ready() {
            if answered {
                info!("the Kubernetes API server answers again: ready");
            } else {
                warn!("the Kubernetes API server does not answer: not ready");
            }
        }
        readiness.set(answered);
    }
}

/// A replica that runs the controllers only while it holds the leader Lease.
struct Leader<'a> {
    args: &'a RunArgs,
    client: Client,
    metrics: Arc<Metrics>,
    shutdown: Shared<BoxFuture<'static, ()>>,
}

impl Leader<'_> {
    /// Waits for the Lease, runs the controllers while it is held, then releases it. Losing it
    /// to another replica is an error, so that the restarted process rejoins as a standby.
    async fn lead_then_run(self, context: Arc<Context>) -> Result<(), StartupError> {
        let namespace = match &self.args.leader_election_namespace {
            Some(namespace) => namespace.clone(),
            None => own_namespace(),
        };
        let identity = replica_identity();
        let manager = LeaseManagerBuilder::new(self.client.clone(), &self.args.leader_election_id)
            .with_namespace(&namespace)
            .with_identity(&identity)
            .with_duration(self.args.leader_election_lease_duration.as_secs().max(2))
            .with_grace((self.args.leader_election_lease_duration.as_secs() / 3).max(1))
            .with_field_manager(format!("poolwatch-{identity}"))
            .build()
            .await
            .map_err(|source| StartupError::LeaderElection {
                namespace: namespace.clone(),
                source,
            })?;
        let (mut leading, lease_task) = manager.watch().await;
        info!(lease = %self.args.leader_election_id, %namespace, %identity, "waiting to lead");
        let became_leader = async {
            while !*leading.borrow_and_update() {
                if leading.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::select! {
            leader = became_leader => if !leader { return Err(StartupError::LeaderElectionStopped) },
            () = self.shutdown.clone() => {
                info!("stopping before leading");
                drop(leading);
                let _ = tokio::time::timeout(RELEASE_TIMEOUT, lease_task).await;
                return Ok(());
            }
        };
        info!(%identity, "leading: starting the controllers");
        self.metrics.set_leader(true);
        let lost = self.run_while_leading(context, leading).await;
        self.metrics.set_leader(false);
        match tokio::time::timeout(RELEASE_TIMEOUT, lease_task).await {
            Ok(Ok(Ok(_))) => info!("released the leader Lease"),
            Ok(Ok(Err(e))) => warn!(error = %e, "could not release the leader Lease"),
            Ok(Err(e)) => warn!(error = %e, "leader-election task failed"),
            Err(_) => warn!("releasing the leader Lease timed out"),
        }
        if lost {
            return Err(StartupError::LostLease);
        }
        Ok(())
    }

    /// Runs the controllers until shutdown or until the Lease is lost; returns whether it was
    /// lost. Drops every receiver of the leadership channel, which lets the Lease be released.
    async fn run_while_leading(
        &self,
        context: Arc<Context>,
        leading: tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let mut changes = leading.clone();
        let lost_leadership = async move {
            loop {
                if changes.changed().await.is_err() || !*changes.borrow_and_update() {
                    return;
                }
            }
        }
        .boxed()
        .shared();
        let stop = futures::future::select(self.shutdown.clone(), lost_leadership.clone())
            .map(|_| ())
            .boxed()
            .shared();
        run_controllers(self.args, self.client.clone(), context, stop).await;
        let lost = lost_leadership.peek().is_some() && self.shutdown.peek().is_none();
        // The Lease is released only once every receiver of the leadership channel is gone; the
        // pending `lost_leadership` future holds one.
        drop(lost_leadership);
        drop(leading);
        lost
    }
}

async fn build_context(
    args: &RunArgs,
    client: Client,
    metrics: Arc<Metrics>,
) -> Result<Context, StartupError> {
    let extra_root_certificates = match &args.ca_bundle {
        Some(path) => {
            Some(
                tokio::fs::read(path)
                    .await
                    .map_err(|source| StartupError::CaBundle {
                        path: path.clone(),
                        source,
                    })?,
            )
        }
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
        user_agent: user_agent(),
        ..ClientConfig::default()
    })
    .map_err(StartupError::ModelArtsClient)?;
    let pod_identity = match (&args.pod_identity_url, &args.pod_identity_token_file) {
        (Some(url), Some(token_file)) => Some(PodIdentity {
            url: url.clone(),
            token_file: token_file.clone(),
        }),
        (None, None) => None,
        _ => return Err(StartupError::HalfPodIdentity),
    };
    let settings = Settings {
        endpoints: endpoint_policy(args)?,
        operator_identity: OperatorIdentitySettings {
            namespaces: AllowedNamespaces::from_names(&args.operator_identity_namespaces),
            pod_identity,
            metadata_endpoint: args.metadata_endpoint.clone(),
        },
        limits: Limits {
            concurrency: args.upstream_concurrency,
            rate_per_second: args.upstream_rate,
            burst: args.upstream_burst,
        },
        namespace_concurrency: args.upstream_concurrency_per_namespace,
        reporter: Reporter {
            controller: "poolwatch".to_owned(),
            instance: Some(replica_identity()),
        },
    };
    Ok(Context::new(client, modelarts, metrics, settings))
}

/// The admin's rules for the endpoints of specs, from the flags.
fn endpoint_policy(args: &RunArgs) -> Result<EndpointPolicy, StartupError> {
    let trusted = args
        .trusted_endpoints
        .iter()
        .filter(|text| !text.trim().is_empty())
        .map(|text| {
            Endpoint::parse(text, args.allow_http_endpoints).map_err(|source| {
                StartupError::TrustedEndpoint {
                    input: text.clone(),
                    source,
                }
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(EndpointPolicy {
        allow_http: args.allow_http_endpoints,
        trusted,
        allowed_hosts: args.allowed_endpoint_hosts.clone(),
    })
}

/// A controller of the watches of `api` whose cache keeps each watch without its
/// `managedFields`: a reconcile never reads them, and at thousands of watches they are a good
/// part of the operator's memory. Otherwise what `Controller::new` builds.
fn lean_controller(api: Api<PoolStatisticsWatch>) -> Controller<PoolStatisticsWatch> {
    let (reader, writer) = reflector::store();
    let watches = watcher::watcher(api, watcher::Config::default()).modify(|watch| {
        watch.managed_fields_mut().clear();
    });
    Controller::for_stream(reflector(writer, watches).applied_objects(), reader)
}

/// Runs one controller per watched namespace (or one for all) until `stop` resolves.
async fn run_controllers(
    args: &RunArgs,
    client: Client,
    context: Arc<Context>,
    stop: Shared<BoxFuture<'static, ()>>,
) {
    let apis: Vec<(Option<String>, Api<PoolStatisticsWatch>)> = if args.watch_namespaces.is_empty()
    {
        vec![(None, Api::all(client))]
    } else {
        args.watch_namespaces
            .iter()
            .map(|ns| (Some(ns.clone()), Api::namespaced(client.clone(), ns)))
            .collect()
    };
    let config = controller::Config::default().concurrency(args.max_concurrent_reconciles.get());
    let controllers: Vec<Controller<PoolStatisticsWatch>> = apis
        .into_iter()
        .map(|(namespace, api)| {
            lean_controller(api)
                .with_config(config.clone())
                // Watches whose polls finished after their reconcile gave its slot back.
                .reconcile_on(context.wakers.register(namespace))
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

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn refused(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            Status::failure("refused", "Forbidden").with_code(code),
        ))
    }

    #[test]
    fn only_a_403_on_listing_or_watching_is_a_missing_grant() {
        assert!(is_forbidden(&watcher::Error::InitialListFailed(refused(
            403
        ))));
        assert!(is_forbidden(&watcher::Error::WatchStartFailed(refused(
            403
        ))));
        assert!(is_forbidden(&watcher::Error::WatchFailed(refused(403))));
        assert!(!is_forbidden(&watcher::Error::InitialListFailed(refused(
            500
        ))));
        assert!(!is_forbidden(&watcher::Error::NoResourceVersion));
    }

    #[test]
    fn startup_errors_say_what_to_fix() {
        let error = StartupError::KubernetesConfig(refused(401));
        assert!(
            error.to_string().contains(
                "ServiceAccount token mounted at /var/run/secrets/kubernetes.io/serviceaccount"
            ),
            "{error}"
        );
        let error = StartupError::CaBundle {
            path: "/etc/ca.pem".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(
            error
                .to_string()
                .starts_with("cannot read --ca-bundle /etc/ca.pem"),
            "{error}"
        );
    }
}
