//! `poolwatch fetch`: one pool-statistics call from the command line, to check credentials,
//! endpoint and project before deploying, or a keyless setup from inside a pod.
//!
//! [`chain`] decides the credential source from the environment and files as Huawei's SDKs do
//! (reading the profile file with [`profile`]), [`resolve`] turns it into keys (exchanging
//! tokens for temporary keys where needed), and [`report`] prints the result, the failure with
//! a hint for the source used, and the `--verbose` line.

pub mod chain;
pub mod profile;
pub mod report;
pub mod resolve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::modelarts::keyless::DEFAULT_METADATA_ENDPOINT;
use crate::modelarts::{
    ClientConfig, Credentials, Endpoint, ErrorClass, ModelArtsClient, ModelArtsError, PoolList,
    PoolListFilter, PoolStatistics, RetryPolicy, Service,
};

use chain::{Choice, Setting, Source, Vars};
pub use chain::{ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_SECURITY_TOKEN};
use report::Context;

/// IAM's global endpoint, where the SDK goes when nothing names another.
const GLOBAL_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";

/// How `poolwatch fetch` prints the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A readable table.
    Table,
    /// One JSON object: `{"projectId", "workspaceId", "pools", "operationTime"}`.
    Json,
}

/// `poolwatch fetch`: call the pool-statistics API once and print the result.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Credentials are found as Huawei Cloud's SDKs find them, first match wins:
  1. Environment: HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE (federation: the token \
in the file, e.g. a projected ServiceAccount token, is exchanged at IAM for temporary keys), else \
HUAWEICLOUD_SDK_AK (access key id) and HUAWEICLOUD_SDK_SK (secret access key), with \
HUAWEICLOUD_SDK_SECURITY_TOKEN for temporary keys. HUAWEICLOUD_SDK_PROJECT_ID gives the project id.
  2. Profile file: HUAWEICLOUD_SDK_CREDENTIALS_FILE, else ~/.huaweicloud/credentials; its [basic] \
section's idp_id and id_token_file, else ak, sk and security_token; project_id and iam_endpoint \
are used when --project-id and --iam-endpoint are not given.
  3. CCE Pod Identity: HC_CONTAINER_CREDENTIALS_FULL_URI and HC_CONTAINER_AUTHORIZATION_TOKEN_FILE, \
which CCE sets in pods whose ServiceAccount has a Pod Identity association.
  4. The ECS metadata service (--metadata-endpoint): the agency of the server (CCE node) poolwatch \
runs on. It is asked only when nothing above is set, and given 2 seconds to connect.
Unlike the SDKs, poolwatch asks CCE Pod Identity before the metadata service when both Pod \
Identity variables are set (the SDKs ask the metadata service first: inside a CCE pod they wait \
for its timeout, or use the node's agency instead of the pod's), and a half-set source (an access \
key without its secret, one of two federation or Pod Identity variables, a missing \
HUAWEICLOUD_SDK_CREDENTIALS_FILE) is an error rather than skipped. The SDKs' HUAWEICLOUD_OIDC_* \
source is not supported. Keys and tokens are never accepted as flags, so they do not end up in \
shell history or process lists; --verbose names the source used, never a secret.

Federation exchanges the token at the IAM endpoint from --iam-endpoint, else \
HUAWEICLOUD_SDK_IAM_ENDPOINT, else the profile's iam_endpoint, else --region's, else \
https://iam.myhuaweicloud.com.

Exit status: 0 on success, 1 when a call failed (ModelArts, IAM or a credential service), 2 for \
bad flags or environment, including when no credentials are configured and the metadata service \
does not answer.

In --output json, counts the API did not return are left out, as is operationTime.")]
pub struct FetchArgs {
    /// Huawei Cloud region, e.g. cn-north-4: gives the ModelArts and IAM endpoints.
    #[arg(long)]
    pub region: Option<String>,
    /// ModelArts endpoint URL (scheme, host, port; no path), overriding the region's.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Project id; else the credential source's (HUAWEICLOUD_SDK_PROJECT_ID, the profile's
    /// project_id); else resolved through IAM from --region.
    #[arg(long)]
    pub project_id: Option<String>,
    /// IAM endpoint URL for federation and the project-id lookup, overriding
    /// HUAWEICLOUD_SDK_IAM_ENDPOINT, the profile's iam_endpoint and the region's.
    #[arg(long, value_name = "URL")]
    pub iam_endpoint: Option<String>,
    /// ECS metadata service URL, asked for the server's agency when no other credentials are
    /// configured.
    #[arg(long, value_name = "URL", default_value = DEFAULT_METADATA_ENDPOINT)]
    pub metadata_endpoint: String,
    /// ModelArts workspace id.
    #[arg(long, default_value = "0")]
    pub workspace_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Allow plain http:// endpoints whose host is not loopback (in-cluster simulators).
    #[arg(long)]
    pub allow_http_endpoints: bool,
    /// PEM file of CA certificates to trust besides the system's (private clouds).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Timeout for each request, body included.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print to stderr which credential source was used (never a secret).
    #[arg(long, short)]
    pub verbose: bool,
    /// Also list the workspace's pools (ListPools, current and failed), as `spec.poolDetails`
    /// shows them: each pool's phase, message and nodes.
    #[arg(long)]
    pub pools: bool,
}

/// A failure before any call, or no credentials anywhere: bad flags or environment. Exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

/// Why `poolwatch fetch` failed.
enum Failure {
    /// Exit code 2.
    Usage(UsageError),
    /// A call failed: exit code 1.
    Call(ModelArtsError, Box<Context>),
}

impl From<UsageError> for Failure {
    fn from(error: UsageError) -> Self {
        Failure::Usage(error)
    }
}

/// Runs `poolwatch fetch`: 0 on success, 1 when the call failed, 2 for bad flags or environment.
pub async fn run(args: FetchArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    match fetch(&args).await {
        Ok(Fetched {
            project_id,
            statistics,
            pools,
        }) => {
            report::print_result(&args, &project_id, &statistics, pools.as_ref());
            // The counts are printed either way; a refused pool list still fails the command.
            match pools {
                Some(Err(_)) => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(Failure::Call(error, context)) => {
            report::print_failure(&args, &error, &context);
            ExitCode::from(1)
        }
        Err(Failure::Usage(UsageError(msg))) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// The IAM endpoint and where it came from.
struct Iam {
    endpoint: Endpoint,
    from: String,
}

/// What a successful `poolwatch fetch` got: the counts and, with `--pools`, the pool lists.
struct Fetched {
    project_id: String,
    statistics: PoolStatistics,
    /// With `--pools`: the current and failed pools, merged, or why they could not be listed.
    pools: Option<Result<PoolList, ModelArtsError>>,
}

async fn fetch(args: &FetchArgs) -> Result<Fetched, Failure> {
    // Every flag is checked before any network call, so mistakes are reported at once.
    let endpoint = modelarts_endpoint(args)?;
    let metadata_endpoint = Endpoint::parse(&args.metadata_endpoint, true)
        .map_err(|e| UsageError(format!("--metadata-endpoint: {e}")))?;
    let lookup = |name: &str| std::env::var_os(name);
    let choice = chain::choose(&Vars::new(&lookup), &metadata_endpoint)?;
    for warning in &choice.warnings {
        eprintln!("warning: {warning}");
    }
    let project = match &args.project_id {
        Some(id) => Some(Setting {
            value: id.clone(),
            from: "--project-id".to_owned(),
        }),
        None => choice.project_id.clone(),
    };
    if project.is_none() && args.region.is_none() {
        return Err(UsageError(
            "give --project-id, or --region so that the project id can be looked up in IAM (or set HUAWEICLOUD_SDK_PROJECT_ID, or project_id in the profile file)"
                .to_owned(),
        )
        .into());
    }
    let needs_iam = project.is_none() || matches!(choice.source, Source::Federation { .. });
    let iam = match needs_iam {
        true => Some(iam_endpoint(args, &choice)?),
        false => None,
    };
    let extra_root_certificates = match &args.ca_bundle {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            UsageError(format!("--ca-bundle: cannot read {}: {e}", path.display()))
        })?),
        None => None,
    };
    let config = ClientConfig {
        request_timeout: args.timeout,
        extra_root_certificates,
        allow_http: args.allow_http_endpoints,
        ..ClientConfig::default()
    };
    let client = ModelArtsClient::new(config.clone())
        .map_err(|e| UsageError(format!("--ca-bundle: {e}")))?;
    let metadata_client = match choice.source {
        Source::Metadata { .. } => ModelArtsClient::new(ClientConfig {
            connect_timeout: resolve::METADATA_CONNECT_TIMEOUT.min(args.timeout),
            request_timeout: resolve::METADATA_REQUEST_TIMEOUT.min(args.timeout),
            retry: RetryPolicy::none(),
            ..config
        })
        .map_err(|e| UsageError(format!("--ca-bundle: {e}")))?,
        _ => client.clone(),
    };
    let context = Context {
        source: choice.source,
        skipped: choice.skipped,
        project_from: project.as_ref().map(|p| p.from.clone()),
        iam_from: iam.as_ref().map(|i| i.from.clone()),
    };
    let clients = resolve::Clients {
        main: &client,
        metadata: &metadata_client,
    };
    let iam_endpoint = iam.as_ref().map(|i| &i.endpoint);
    let resolved = resolve::credentials(&context.source, &clients, iam_endpoint).await?;
    if args.verbose {
        let line = report::describe(&context.source, iam_endpoint, resolved.as_ref().ok());
        eprintln!("credentials: {line}");
    }
    let resolved = match resolved {
        Ok(resolved) => resolved,
        Err(error) => {
            if let Source::Metadata { endpoint } = &context.source
                && metadata_absent(&error)
            {
                let msg = report::nothing_found(&context.skipped, endpoint, &error);
                return Err(UsageError(msg).into());
            }
            return Err(Failure::Call(error, Box::new(context)));
        }
    };
    let credentials = &resolved.credentials;
    let project_id = match (project, &iam, &args.region) {
        (Some(project), _, _) => project.value,
        (None, Some(iam), Some(region)) => {
            match client
                .resolve_project_id(&iam.endpoint, credentials, region)
                .await
            {
                Ok(id) => id,
                Err(e) => return Err(Failure::Call(e, Box::new(context))),
            }
        }
        // Checked above: without a project id there is a region, and so an IAM endpoint.
        (None, _, _) => {
            return Err(UsageError("give --project-id or --region".to_owned()).into());
        }
    };
    let statistics = match client
        .pool_statistics(&endpoint, credentials, &project_id, &args.workspace_id)
        .await
    {
        Ok(statistics) => statistics,
        Err(e) => return Err(Failure::Call(e, Box::new(context))),
    };
    let pools = match args.pools {
        true => Some(list_pools(&client, &endpoint, credentials, &project_id, args).await),
        false => None,
    };
    Ok(Fetched {
        project_id,
        statistics,
        pools,
    })
}

/// The workspace's current and failed pools, merged as the operator merges them.
async fn list_pools(
    client: &ModelArtsClient,
    endpoint: &Endpoint,
    credentials: &Credentials,
    project_id: &str,
    args: &FetchArgs,
) -> Result<PoolList, ModelArtsError> {
    let list = |filter| {
        client.list_pools(
            endpoint,
            credentials,
            project_id,
            &args.workspace_id,
            filter,
        )
    };
    let current = list(PoolListFilter::Current).await?;
    let failed = list(PoolListFilter::Failed).await?;
    Ok(PoolList::merge(current, failed))
}

/// Whether the metadata service is simply not there (no answer, or a host that does not serve
/// it): then nothing configures credentials, a usage error. A metadata service that answers but
/// refuses is a failed call.
fn metadata_absent(error: &ModelArtsError) -> bool {
    error.service() == Service::Metadata
        && matches!(
            error.class(),
            ErrorClass::Network | ErrorClass::Timeout | ErrorClass::ApiNotFound
        )
}

/// The ModelArts endpoint from `--endpoint`, else `--region`.
fn modelarts_endpoint(args: &FetchArgs) -> Result<Endpoint, UsageError> {
    match (&args.endpoint, &args.region) {
        (Some(url), _) => Endpoint::parse(url, args.allow_http_endpoints)
            .map_err(|e| UsageError(format!("--endpoint: {e}"))),
        (None, Some(region)) => Endpoint::modelarts_for_region(region)
            .map_err(|e| UsageError(format!("--region: {}", flagify(&e.to_string())))),
        (None, None) => Err(UsageError(
            "give --region (e.g. --region cn-north-4) or --endpoint URL".to_owned(),
        )),
    }
}

/// The IAM endpoint: `--iam-endpoint`, else `HUAWEICLOUD_SDK_IAM_ENDPOINT`, else the profile's
/// `iam_endpoint`, else `--region`'s, else the global one. (For federation the SDK puts the
/// profile's before the variable and never uses the region's; the variable winning over a file
/// is the usual rule, and the region's endpoint is the one nearest to the ModelArts endpoint.)
fn iam_endpoint(args: &FetchArgs, choice: &Choice) -> Result<Iam, UsageError> {
    let parse = |url: &str, from: &str| {
        Endpoint::parse(url, args.allow_http_endpoints)
            .map(|endpoint| Iam {
                endpoint,
                from: from.to_owned(),
            })
            .map_err(|e| UsageError(format!("{from}: {e}")))
    };
    if let Some(url) = &args.iam_endpoint {
        return parse(url, "--iam-endpoint");
    }
    if let Some(setting) = &choice.iam_endpoint {
        return parse(&setting.value, &setting.from);
    }
    if let Some(region) = &args.region {
        return Endpoint::iam_for_region(region)
            .map(|endpoint| Iam {
                endpoint,
                from: "--region".to_owned(),
            })
            .map_err(|e| UsageError(format!("--region: {}", flagify(&e.to_string()))));
    }
    parse(GLOBAL_IAM_ENDPOINT, "the default")
}

/// Field names in endpoint advice, rewritten as this command's flags.
fn flagify(message: &str) -> String {
    message
        .replace("set the iamEndpoint", "pass --iam-endpoint")
        .replace("set the endpoint", "pass --endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: FetchArgs,
    }

    fn args(flags: &[&str]) -> FetchArgs {
        let argv = std::iter::once("fetch").chain(flags.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.args,
            Err(e) => panic!("{flags:?}: {e}"),
        }
    }

    fn choice(iam: Option<(&str, &str)>) -> Choice {
        Choice {
            source: Source::Metadata {
                endpoint: Endpoint::parse(DEFAULT_METADATA_ENDPOINT, true)
                    .unwrap_or_else(|e| panic!("{e}")),
            },
            project_id: None,
            iam_endpoint: iam.map(|(value, from)| Setting {
                value: value.to_owned(),
                from: from.to_owned(),
            }),
            skipped: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn iam(flags: &[&str], configured: Option<(&str, &str)>) -> (String, String) {
        match iam_endpoint(&args(flags), &choice(configured)) {
            Ok(iam) => (iam.endpoint.to_string(), iam.from),
            Err(UsageError(msg)) => panic!("{flags:?}: {msg}"),
        }
    }

    #[test]
    fn the_iam_endpoint_comes_from_flag_then_setting_then_region_then_default() {
        let configured = Some((
            "https://iam.configured.example",
            "HUAWEICLOUD_SDK_IAM_ENDPOINT",
        ));
        assert_eq!(
            iam(
                &[
                    "--iam-endpoint",
                    "https://iam.flag.example",
                    "--region",
                    "cn-north-4"
                ],
                configured
            ),
            (
                "https://iam.flag.example".to_owned(),
                "--iam-endpoint".to_owned()
            )
        );
        assert_eq!(
            iam(&["--region", "cn-north-4"], configured),
            (
                "https://iam.configured.example".to_owned(),
                "HUAWEICLOUD_SDK_IAM_ENDPOINT".to_owned()
            )
        );
        assert_eq!(
            iam(&["--region", "cn-north-4"], None),
            (
                "https://iam.cn-north-4.myhuaweicloud.com".to_owned(),
                "--region".to_owned()
            )
        );
        assert_eq!(
            iam(&[], None),
            (
                "https://iam.myhuaweicloud.com".to_owned(),
                "the default".to_owned()
            )
        );
        let bad = iam_endpoint(
            &args(&[]),
            &choice(Some(("http://iam.example", "iam_endpoint in /p [basic]"))),
        );
        let Err(UsageError(msg)) = bad.map(|i| i.from) else {
            panic!("plain http to a remote IAM must be refused")
        };
        assert!(msg.starts_with("iam_endpoint in /p [basic]: "), "{msg}");
    }

    #[test]
    fn the_metadata_endpoint_defaults_to_the_link_local_address() {
        assert_eq!(args(&[]).metadata_endpoint, "http://169.254.169.254");
        assert!(!args(&[]).verbose);
        assert!(args(&["-v"]).verbose);
    }

    #[test]
    fn only_an_absent_metadata_service_is_a_usage_error() {
        let absent = ModelArtsError::new(ErrorClass::Network, Service::Metadata, "x");
        assert!(metadata_absent(&absent));
        let refused = ModelArtsError::new(ErrorClass::TokenExchangeRefused, Service::Metadata, "x");
        assert!(!metadata_absent(&refused));
        let modelarts = ModelArtsError::new(ErrorClass::Network, Service::ModelArts, "x");
        assert!(!metadata_absent(&modelarts));
    }
}
