//! A ModelArts simulator for tests, the demo and users without a Huawei Cloud account.
//!
//! On one listener it serves:
//!
//! - ModelArts' `GET /v2/{project_id}/statistics/pools`, its pool list (`GET
//!   /v2/{project_id}/pools`, with the `workspaceId` and `status` filters, see [`pools`]) and
//!   IAM's `GET /v3/projects`, signed
//!   with SDK-HMAC-SHA256: it checks signatures and the 15-minute clock skew against the
//!   configured keys and against the temporary credentials it issued itself (security token
//!   required and signed, until they expire; limited to the projects their source allows).
//! - The keyless-credential side of Huawei Cloud, so that workloads without a stored key can be
//!   tested end to end, wire-compatible with Huawei's SDKs (see [`keyless`]):
//!   - IAM federation with OIDC identity providers (Kubernetes ServiceAccount tokens):
//!     `POST /v3.0/OS-AUTH/id-token/tokens` (header `X-Idp-Id`) for an IAM token, then
//!     `POST /v3.0/OS-CREDENTIAL/securitytokens` for temporary credentials;
//!   - CCE Pod Identity: `POST /v1/pod-identity/credentials`;
//!   - the ECS metadata service: `PUT /meta-data/latest/api/token`, then
//!     `GET /openstack/latest/securitykey`.
//! - The admin API under `/_simulator/` (see [`server`] for the routes).
//!
//! It injects faults on request (on any of the APIs above, see [`Api`]) and counts what it
//! served. Rust tests start it in-process with [`Simulator::start`]; other processes use
//! `poolwatch simulator` and the admin API.

mod fault;
mod keyless;
mod pools;
mod server;
mod setup;
mod state;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use crate::https::TlsListener;
pub use fault::{Api, Fault, FaultKind, LONG_REQUEST_ID_BYTES, long_text};
pub use pools::{FAILED_PHASE, SimulatedDriver, SimulatedFlavor, SimulatedPool};
pub use setup::{
    DEMO_ACCESS_KEY_ID, DEMO_PROJECT_ID, DEMO_REGION, DEMO_SECRET_ACCESS_KEY, FederationRule,
    IdentityProviderConfig, KeyConfig, MetadataConfig, PodIdentityConfig, ProjectConfig,
    SimulatedCounts, SimulatorSetup,
};
pub use state::{ActiveFault, RequestCount, RequestFilter, RequestKey, SimulatorStats};
pub use tls::TlsIdentity;

use crate::modelarts::{Clock, Endpoint};
use state::State;

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The keys, projects and counts to serve at first.
    pub setup: SimulatorSetup,
    /// A config file to re-read when it changes (it replaces the setup, counts included).
    pub config_file: Option<PathBuf>,
    /// How often to check the config file.
    pub reload_interval: Duration,
    /// The simulator's clock, against which `X-Sdk-Date` is checked.
    pub clock: Clock,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<TlsIdentity>,
}

impl SimulatorConfig {
    /// Serves `setup` on a free loopback port.
    pub fn new(setup: SimulatorSetup) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            setup,
            config_file: None,
            reload_interval: Duration::from_secs(1),
            clock: Clock::system(),
            tls: None,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another --listen address or port")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is unreadable or invalid.
    #[error("{0}")]
    Config(String),
    /// The TLS certificate or key cannot be used.
    #[error("{0}")]
    Tls(String),
}

/// The simulator.
pub struct Simulator;

impl Simulator {
    /// Binds, starts serving in the background and returns a handle to drive it.
    pub async fn start(config: SimulatorConfig) -> Result<SimulatorHandle, SimulatorError> {
        let mut setup = config.setup;
        if let Some(path) = &config.config_file {
            setup = SimulatorSetup::load(path).map_err(SimulatorError::Config)?;
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let state = Arc::new(State::new(setup));
        let app = Arc::new(server::App {
            state: state.clone(),
            clock: config.clock,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let router = server::router(app);
        let stopped = async {
            let _ = stop_rx.await;
        };
        let tls = config.tls.is_some();
        let server = match config.tls {
            None => tokio::spawn(async move {
                let result = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await;
                if let Err(e) = result {
                    tracing::error!("simulator server stopped: {e}");
                }
            }),
            Some(identity) => {
                let config = identity.server_config().map_err(SimulatorError::Tls)?;
                let listener = TlsListener::new(listener, config)
                    .map_err(|e| SimulatorError::Tls(format!("no local address: {e}")))?;
                tokio::spawn(async move {
                    let result = axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await;
                    if let Err(e) = result {
                        tracing::error!("simulator server stopped: {e}");
                    }
                })
            }
        };
        let reloader = config
            .config_file
            .map(|path| tokio::spawn(reload_loop(path, config.reload_interval, state.clone())));
        tracing::info!(%addr, "simulator listening");
        Ok(SimulatorHandle {
            addr,
            tls,
            state,
            server: Some(server),
            reloader,
            stop: Some(stop_tx),
        })
    }
}

/// Re-reads the config file whenever its contents change; a broken file is reported and the
/// previous setup kept.
async fn reload_loop(path: PathBuf, interval: Duration, state: Arc<State>) {
    let mut last = tokio::fs::read(&path).await.ok();
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(50)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Ok(current) = tokio::fs::read(&path).await else {
            continue;
        };
        if last.as_ref() == Some(&current) {
            continue;
        }
        last = Some(current.clone());
        match SimulatorSetup::parse(&String::from_utf8_lossy(&current)) {
            Ok(setup) => {
                state.replace_setup(setup);
                tracing::info!(file = %path.display(), "simulator config reloaded");
            }
            Err(e) => tracing::warn!(
                file = %path.display(),
                "simulator config not reloaded, keeping the previous one: {e}"
            ),
        }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimulatorHandle {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    server: Option<JoinHandle<()>>,
    reloader: Option<JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for SimulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimulatorHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://` when serving TLS.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The base URL as an [`Endpoint`] (loopback, so plain HTTP is accepted).
    pub fn endpoint(&self) -> Endpoint {
        match Endpoint::parse(&self.base_url(), true) {
            Ok(e) => e,
            // A socket address always forms a valid http URL without a path.
            Err(e) => unreachable!("simulator address is a valid endpoint: {e}"),
        }
    }

    /// Sets the counts one workspace reports (creating the project if needed).
    pub fn set_counts(&self, project: &str, workspace: &str, counts: SimulatedCounts) {
        self.state.set_counts(project, workspace, counts);
    }

    /// Sets the pools a workspace lists; false when the workspace has no counts (set them first).
    pub fn set_pools(&self, project: &str, workspace: &str, pools: Vec<SimulatedPool>) -> bool {
        self.state.set_pools(project, workspace, pools)
    }

    /// Removes a workspace; it then answers 404.
    pub fn remove_counts(&self, project: &str, workspace: &str) -> bool {
        self.state.remove_counts(project, workspace)
    }

    /// Replaces keys, projects, counts and keyless-credential sources. Temporary credentials
    /// already issued keep working until they expire.
    pub fn replace_setup(&self, setup: SimulatorSetup) {
        self.state.replace_setup(setup);
    }

    /// Adds a fault; returns its id.
    pub fn inject(&self, fault: Fault) -> u64 {
        self.state.inject(fault)
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// How many requests matching `filter` were served.
    pub fn requests_served(&self, filter: &RequestFilter) -> u64 {
        self.state.count(filter)
    }

    /// When the latest requests matching `filter` (of the last 4096) were answered, oldest
    /// first: for tests of when requests come, such as a `Retry-After` window.
    pub fn request_times(&self, filter: &RequestFilter) -> Vec<std::time::Instant> {
        self.state.request_times(filter)
    }

    /// Every secret the keyless endpoints issued and still remember (IAM tokens, secret keys,
    /// security tokens, metadata session tokens): for tests that prove none of them leaks.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.state.issued(|issued| issued.secrets())
    }

    /// All counters.
    pub fn stats(&self) -> SimulatorStats {
        self.state.stats()
    }

    /// Clears counters and faults.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops serving: finishes in-flight requests for up to a second, then drops the rest.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(reloader) = self.reloader.take() {
            reloader.abort();
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(1), &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(reloader) = self.reloader.take() {
            reloader.abort();
        }
    }
}

/// `poolwatch simulator`: serve the simulated ModelArts and IAM APIs until interrupted.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without --config the simulator serves a built-in demo: access key SIMULATORDEMOAK00001 with the \
secret simulator-demo-secret-key-not-for-real-use, project 0123456789abcdef0123456789abcdef named \
cn-north-4, workspace 0. Print it as a config file with --example-config.

Keyless credentials, when configured (identityProviders, podIdentity, metadata): POST \
/v3.0/OS-AUTH/id-token/tokens and /v3.0/OS-CREDENTIAL/securitytokens (IAM federation), POST \
/v1/pod-identity/credentials (CCE Pod Identity), PUT /meta-data/latest/api/token and GET \
/openstack/latest/securitykey (ECS metadata).

Admin API (JSON), for tests and demos: GET /_simulator/stats, GET /_simulator/requests?api=&project=&\
workspace=&accessKeyId=&status=, GET /_simulator/counts, PUT|DELETE /_simulator/counts/PROJECT/WORKSPACE, \
GET|POST|DELETE /_simulator/faults, DELETE /_simulator/faults/ID, POST /_simulator/reset.")]
pub struct SimulatorArgs {
    /// Address to listen on; port 0 picks a free one (printed on startup).
    #[arg(
        long,
        env = "POOLWATCH_SIMULATOR_LISTEN",
        default_value = "127.0.0.1:8443"
    )]
    pub listen: SocketAddr,
    /// YAML or JSON file with keys, projects and counts; re-read when it changes.
    #[arg(long, env = "POOLWATCH_SIMULATOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// How often to check the config file for changes.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
    /// Print an example config file and exit.
    #[arg(long)]
    pub example_config: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Runs `poolwatch simulator` until Ctrl-C or SIGTERM.
pub async fn run(args: SimulatorArgs) -> ExitCode {
    if args.example_config {
        print!("{}", SimulatorSetup::example_yaml());
        return ExitCode::SUCCESS;
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let mut config = SimulatorConfig::new(SimulatorSetup::demo());
    config.listen = args.listen;
    config.config_file = args.config;
    config.reload_interval = args.reload_interval;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match TlsIdentity::from_files(cert, key) {
            Ok(identity) => config.tls = Some(identity),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let handle = match Simulator::start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", handle.base_url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_stop().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
