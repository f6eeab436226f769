//! `poolwatch fetch`: one pool-statistics call from the command line, to check credentials,
//! endpoint and project before deploying.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::modelarts::{
    ClientConfig, Credentials, Endpoint, ErrorClass, ModelArtsClient, ModelArtsError,
    PoolStatistics,
};

/// The access key id variable, as Huawei's SDKs name it.
pub const ENV_ACCESS_KEY: &str = "HUAWEICLOUD_SDK_AK";
/// The secret access key variable.
pub const ENV_SECRET_KEY: &str = "HUAWEICLOUD_SDK_SK";
/// The security token variable (temporary credentials).
pub const ENV_SECURITY_TOKEN: &str = "HUAWEICLOUD_SDK_SECURITY_TOKEN";

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
Credentials come from the environment variables of Huawei Cloud's SDKs: HUAWEICLOUD_SDK_AK (access \
key id), HUAWEICLOUD_SDK_SK (secret access key) and, for temporary credentials, \
HUAWEICLOUD_SDK_SECURITY_TOKEN. They are never accepted as flags, so they do not end up in shell \
history or process lists.

In --output json, counts the API did not return are left out, as is operationTime.")]
pub struct FetchArgs {
    /// Huawei Cloud region, e.g. cn-north-4: gives the ModelArts and IAM endpoints.
    #[arg(long)]
    pub region: Option<String>,
    /// ModelArts endpoint URL (scheme, host, port; no path), overriding the region's.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Project id; resolved through IAM from --region when absent.
    #[arg(long)]
    pub project_id: Option<String>,
    /// IAM endpoint URL for the project-id lookup, overriding the region's.
    #[arg(long, value_name = "URL")]
    pub iam_endpoint: Option<String>,
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
}

/// The JSON that `--output json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FetchOutput<'a> {
    project_id: &'a str,
    workspace_id: &'a str,
    pools: Pools,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_time: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Pools {
    #[serde(skip_serializing_if = "Option::is_none")]
    creating: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleting: Option<i64>,
}

/// A failure before any call: bad flags or environment. Exit code 2.
struct UsageError(String);

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
        Ok(Ok((project_id, stats))) => {
            print_result(&args, &project_id, &stats);
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            print_failure(&args, &error);
            ExitCode::from(1)
        }
        Err(UsageError(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

type Fetched = Result<(String, PoolStatistics), ModelArtsError>;

async fn fetch(args: &FetchArgs) -> Result<Fetched, UsageError> {
    let credentials = credentials_from_env(|name| std::env::var_os(name))?;
    let endpoint = match (&args.endpoint, &args.region) {
        (Some(url), _) => Endpoint::parse(url, args.allow_http_endpoints)
            .map_err(|e| UsageError(format!("--endpoint: {e}")))?,
        (None, Some(region)) => Endpoint::modelarts_for_region(region)
            .map_err(|e| UsageError(format!("--region: {}", flagify(&e.to_string()))))?,
        (None, None) => {
            return Err(UsageError(
                "give --region (e.g. --region cn-north-4) or --endpoint URL".to_owned(),
            ));
        }
    };
    let extra_root_certificates = match &args.ca_bundle {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            UsageError(format!("--ca-bundle: cannot read {}: {e}", path.display()))
        })?),
        None => None,
    };
    let client = ModelArtsClient::new(ClientConfig {
        request_timeout: args.timeout,
        extra_root_certificates,
        allow_http: args.allow_http_endpoints,
        ..ClientConfig::default()
    })
    .map_err(|e| UsageError(format!("--ca-bundle: {e}")))?;
    let project_id = match &args.project_id {
        Some(id) => id.clone(),
        None => {
            let Some(region) = &args.region else {
                return Err(UsageError(
                    "give --project-id, or --region so that the project id can be looked up in IAM"
                        .to_owned(),
                ));
            };
            let iam = match &args.iam_endpoint {
                Some(url) => Endpoint::parse(url, args.allow_http_endpoints)
                    .map_err(|e| UsageError(format!("--iam-endpoint: {e}")))?,
                None => Endpoint::iam_for_region(region)
                    .map_err(|e| UsageError(format!("--region: {}", flagify(&e.to_string()))))?,
            };
            match client.resolve_project_id(&iam, &credentials, region).await {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            }
        }
    };
    Ok(client
        .pool_statistics(&endpoint, &credentials, &project_id, &args.workspace_id)
        .await
        .map(|stats| (project_id, stats)))
}

/// Field names in endpoint advice, rewritten as this command's flags.
fn flagify(message: &str) -> String {
    message
        .replace("set the iamEndpoint", "pass --iam-endpoint")
        .replace("set the endpoint", "pass --endpoint")
}

/// Reads the credentials from `HUAWEICLOUD_SDK_*` through `var` (the environment in production).
fn credentials_from_env(
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Credentials, UsageError> {
    let read = |name: &str, what: &str| -> Result<Option<String>, UsageError> {
        match var(name) {
            None => Ok(None),
            Some(v) => match v.into_string() {
                Ok(s) if s.trim().is_empty() => Ok(None),
                Ok(s) => Ok(Some(s.trim().to_owned())),
                Err(_) => Err(UsageError(format!(
                    "{name} is not valid UTF-8: set it to your {what}"
                ))),
            },
        }
    };
    let ak = read(ENV_ACCESS_KEY, "access key id")?.ok_or_else(|| {
        UsageError(format!(
            "{ENV_ACCESS_KEY} is not set: export your access key id as {ENV_ACCESS_KEY} and its secret as {ENV_SECRET_KEY}"
        ))
    })?;
    let sk = read(ENV_SECRET_KEY, "secret access key")?.ok_or_else(|| {
        UsageError(format!(
            "{ENV_SECRET_KEY} is not set: export the secret access key of {} as {ENV_SECRET_KEY}",
            crate::modelarts::credentials::Credentials::new(ak.clone(), "").redacted_key_id()
        ))
    })?;
    let mut credentials = Credentials::new(ak, sk);
    if let Some(token) = read(ENV_SECURITY_TOKEN, "security token")? {
        credentials = credentials.with_security_token(token);
    }
    Ok(credentials)
}

fn print_result(args: &FetchArgs, project_id: &str, stats: &PoolStatistics) {
    let mut out = std::io::stdout().lock();
    let text = match args.output {
        OutputFormat::Json => {
            let output = FetchOutput {
                project_id,
                workspace_id: &args.workspace_id,
                pools: Pools {
                    creating: stats.creating,
                    created: stats.created,
                    failed: stats.failed,
                    pending: stats.pending,
                    deleting: stats.deleting,
                },
                operation_time: stats.operation_time.as_deref(),
            };
            format!(
                "{}\n",
                serde_json::to_string(&output).unwrap_or_else(|_| "{}".to_owned())
            )
        }
        OutputFormat::Table => table(project_id, &args.workspace_id, stats),
    };
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn table(project_id: &str, workspace_id: &str, stats: &PoolStatistics) -> String {
    let show = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let mut text = format!(
        "Project    {project_id}\nWorkspace  {workspace_id}\nTime       {}\n\nSTATE      POOLS\n",
        stats.operation_time.as_deref().unwrap_or("-")
    );
    for (state, count) in [
        ("creating", stats.creating),
        ("created", stats.created),
        ("failed", stats.failed),
        ("pending", stats.pending),
        ("deleting", stats.deleting),
    ] {
        text.push_str(&format!("{state:<10} {:>5}\n", show(count)));
    }
    text
}

fn hint(error: &ModelArtsError) -> String {
    match error.class() {
        ErrorClass::AuthenticationFailed => format!(
            "check {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} (and {ENV_SECURITY_TOKEN} for temporary keys); after 5 failures in a row Huawei Cloud locks the key for 5 minutes, so do not retry in a loop"
        ),
        ErrorClass::AccessDenied => "give the key's IAM user a policy that allows modelarts:pool:list".to_owned(),
        ErrorClass::ClockSkew => "synchronise this machine's clock (NTP); signatures are valid for 15 minutes".to_owned(),
        ErrorClass::ProjectNotFound => "check --project-id and --workspace-id, and that the project belongs to the endpoint's region".to_owned(),
        ErrorClass::ApiNotFound => "check --endpoint or --region: the host does not serve ModelArts".to_owned(),
        ErrorClass::AmbiguousProject => "pass --project-id".to_owned(),
        ErrorClass::Throttled => match error.retry_after() {
            Some(wait) => format!("wait {} and try again", humantime::format_duration(wait)),
            None => "wait a few seconds and try again".to_owned(),
        },
        ErrorClass::UpstreamUnavailable => "ModelArts is failing; try again later, and give the request id to Huawei Cloud support if it persists".to_owned(),
        ErrorClass::Network | ErrorClass::Timeout => "check the endpoint's host name, DNS, proxy and firewall, or raise --timeout".to_owned(),
        ErrorClass::InvalidResponse => "check that --endpoint is a ModelArts endpoint".to_owned(),
        ErrorClass::RequestRejected | ErrorClass::InvalidArgument => "check --project-id and --workspace-id".to_owned(),
        ErrorClass::InvalidConfiguration => "check --ca-bundle".to_owned(),
        ErrorClass::IdentityProviderNotFound => "check HUAWEICLOUD_SDK_IDP_ID: IAM knows no identity provider of that id".to_owned(),
        ErrorClass::TokenExchangeRefused => "check that the identity token's audience is the identity provider's client id, that it has not expired, and that a conversion rule of the provider matches its subject".to_owned(),
        ErrorClass::TemporaryCredentialsExpired => "the temporary keys expired: run the command again to get new ones".to_owned(),
    }
}

fn print_failure(args: &FetchArgs, error: &ModelArtsError) {
    let mut text = format!("error: {error}\n  reason:      {}\n", error.reason());
    if let Some(status) = error.status() {
        text.push_str(&format!("  HTTP status: {status}\n"));
    }
    if let Some(code) = error.error_code() {
        text.push_str(&format!("  error_code:  {code}\n"));
    }
    if let Some(msg) = error.error_msg() {
        text.push_str(&format!("  error_msg:   {msg}\n"));
    }
    if let Some(id) = error.request_id() {
        text.push_str(&format!("  request id:  {id}\n"));
    }
    text.push_str(&format!("hint: {}\n", hint(error)));
    let _ = std::io::stderr().write_all(text.as_bytes());
    if args.output == OutputFormat::Json {
        let json = serde_json::json!({
            "error": {
                "reason": error.reason(),
                "message": error.to_string(),
                "status": error.status(),
                "errorCode": error.error_code(),
                "errorMsg": error.error_msg(),
                "requestId": error.request_id(),
            }
        });
        println!("{json}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn missing_variables_are_named() {
        let Err(UsageError(msg)) = credentials_from_env(env(&[])) else {
            panic!("no AK must fail")
        };
        assert!(msg.contains("HUAWEICLOUD_SDK_AK"), "{msg}");
        let Err(UsageError(msg)) =
            credentials_from_env(env(&[("HUAWEICLOUD_SDK_AK", "AKIDEXAMPLE")]))
        else {
            panic!("no SK must fail")
        };
        assert!(msg.contains("HUAWEICLOUD_SDK_SK"), "{msg}");
        assert!(!msg.contains("AKIDEXAMPLE"), "{msg}");
    }

    #[test]
    fn token_is_optional() {
        let creds = credentials_from_env(env(&[
            ("HUAWEICLOUD_SDK_AK", "AK"),
            ("HUAWEICLOUD_SDK_SK", "SK"),
            ("HUAWEICLOUD_SDK_SECURITY_TOKEN", " "),
        ]));
        assert!(creds.is_ok_and(|c| c.security_token.is_none()));
        let creds = credentials_from_env(env(&[
            ("HUAWEICLOUD_SDK_AK", "AK"),
            ("HUAWEICLOUD_SDK_SK", "SK"),
            ("HUAWEICLOUD_SDK_SECURITY_TOKEN", "tok"),
        ]));
        assert!(creds.is_ok_and(|c| c.security_token.is_some()));
    }

    #[test]
    fn table_shows_absent_counts_as_dashes() {
        let stats = PoolStatistics {
            created: Some(9),
            ..PoolStatistics::default()
        };
        let text = table("p", "0", &stats);
        assert!(text.contains("created        9"), "{text}");
        assert!(text.contains("deleting       -"), "{text}");
        assert!(text.contains("Time       -"), "{text}");
    }
}
