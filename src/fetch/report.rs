//! What `poolwatch fetch` prints: the result (table or JSON), a failure with a hint that knows
//! which credential source was used, and the `--verbose` line naming that source. Nothing here
//! prints a secret: keys appear only as [`Credentials::redacted_key_id`], tokens never; file
//! paths, variable names, URLs and identity-provider ids are fine.

use std::io::Write;

use serde::Serialize;

use crate::modelarts::{
    Credentials, Endpoint, ErrorClass, ModelArtsError, Pool, PoolList, PoolStatistics, Service,
    bounded, pools,
};

use super::chain::{
    ENV_ACCESS_KEY, ENV_ID_TOKEN_FILE, ENV_IDP_ID, ENV_POD_IDENTITY_TOKEN_FILE,
    ENV_POD_IDENTITY_URI, ENV_SECRET_KEY, ENV_SECURITY_TOKEN, Origin, Skipped, Source,
};
use super::resolve::Resolved;
use super::{FetchArgs, OutputFormat};

/// The JSON that `--output json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FetchOutput<'a> {
    project_id: &'a str,
    workspace_id: &'a str,
    pools: Pools,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_time: Option<&'a str>,
    /// With `--pools`: the pools, as the client read them.
    #[serde(rename = "poolList", skip_serializing_if = "Option::is_none")]
    pool_list: Option<&'a [Pool]>,
    /// With `--pools`: the pools listed but not kept (beyond the client's bounds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pools_omitted: Option<usize>,
    /// With `--pools`, when listing failed: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pools_error: Option<serde_json::Value>,
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

/// What a failed call's hint needs to know: the credential source and where the settings that
/// may be wrong came from.
#[derive(Debug)]
pub struct Context {
    /// The credential source used.
    pub source: Source,
    /// The sources passed over before it.
    pub skipped: Vec<Skipped>,
    /// Where the project id came from (`--project-id`, a variable, a profile key); `None` when
    /// it was to be looked up in IAM.
    pub project_from: Option<String>,
    /// Where the IAM endpoint came from, when one was needed.
    pub iam_from: Option<String>,
}

/// Prints the statistics (and, with `--pools`, the pools) to stdout; a failed pool list also
/// goes to stderr, with what to allow.
pub fn print_result(
    args: &FetchArgs,
    project_id: &str,
    stats: &PoolStatistics,
    pools: Option<&Result<PoolList, ModelArtsError>>,
) {
    if let Some(Err(error)) = pools {
        let _ = std::io::stderr().write_all(pool_list_failure(error).as_bytes());
    }
    let listed = pools.and_then(|p| p.as_ref().ok());
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
                pool_list: listed.map(|l| l.pools.as_slice()),
                pools_omitted: listed.map(|l| l.omitted),
                pools_error: pools.and_then(|p| p.as_ref().err()).map(error_json),
            };
            format!(
                "{}\n",
                serde_json::to_string(&output).unwrap_or_else(|_| "{}".to_owned())
            )
        }
        OutputFormat::Table => {
            let mut text = table(project_id, &args.workspace_id, stats);
            if let Some(list) = listed {
                text.push('\n');
                text.push_str(&pool_table(list));
            }
            text
        }
    };
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The readable table of `--output table`.
pub fn table(project_id: &str, workspace_id: &str, stats: &PoolStatistics) -> String {
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

/// A character as a terminal may show it: a control character is `?`.
fn visible(c: char) -> char {
    if c.is_control() { '?' } else { c }
}

/// An error's text (it quotes the endpoint's `error_msg` and other answers) fit for one
/// terminal line: control characters shown as `?`.
fn terminal_line(text: &str) -> String {
    text.chars().map(visible).collect()
}

/// Longest message a row of the pool table shows, in characters: a terminal line, not a
/// paragraph.
const TABLE_MESSAGE: usize = 60;

/// An upstream string as a terminal may show it: every control character (an endpoint can put
/// escape sequences that clear the screen, move the cursor or retitle the window into a pool's
/// name or message) shown as `?`, and at most `max` characters, ending in [`bounded::MARKER`]
/// when cut.
fn terminal_text(text: &str, max: usize) -> String {
    let cut = text.chars().nth(max).is_some();
    let keep = if cut { max.saturating_sub(1) } else { max };
    let mut shown: String = text.chars().take(keep).map(visible).collect();
    if cut {
        shown.push_str(bounded::MARKER);
    }
    shown
}

/// The pools as a table: name, display name, phase, type, nodes available of desired (summed
/// over flavors), message (cut for the terminal).
pub fn pool_table(list: &PoolList) -> String {
    let rows: Vec<[String; 6]> = list
        .pools
        .iter()
        .map(|pool| {
            let sum = |nodes: fn(&crate::modelarts::pools::FlavorNodes) -> Option<i64>| {
                pool.flavors
                    .iter()
                    .filter_map(nodes)
                    .reduce(|a, b| a.saturating_add(b))
            };
            let show = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
            // The client cut every string to its limit; the terminal needs them clean too.
            let cell = |text: Option<&str>, max: usize| {
                text.map_or_else(|| "-".to_owned(), |t| terminal_text(t, max))
            };
            [
                cell(Some(&pool.name), pools::NAME),
                cell(pool.display_name.as_deref(), pools::DISPLAY_NAME),
                pool.phase.as_str().to_owned(),
                cell(pool.pool_type.as_deref(), pools::WORD),
                format!("{}/{}", show(sum(|f| f.available)), show(sum(|f| f.count))),
                cell(pool.message.as_deref(), TABLE_MESSAGE),
            ]
        })
        .collect();
    let header = ["POOL", "DISPLAY NAME", "PHASE", "TYPE", "NODES", "MESSAGE"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 6]| -> String {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = width - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push('\n');
        text
    };
    let mut text = line(&header);
    if rows.is_empty() {
        text.push_str("(no pools)\n");
    }
    for row in &rows {
        text.push_str(&line(row));
    }
    if list.omitted > 0 {
        text.push_str(&format!(
            "(and {} more, the least urgent, not shown)\n",
            list.omitted
        ));
    }
    if list.unusable > 0 {
        text.push_str(&format!(
            "({} item(s) of the answer were not usable pools)\n",
            list.unusable
        ));
    }
    text
}

/// What stderr says when the counts came but the pools could not be listed.
fn pool_list_failure(error: &ModelArtsError) -> String {
    let mut text = format!(
        "error: listing the pools failed: {}\n  reason:      {}\n",
        terminal_line(&error.to_string()),
        error.reason()
    );
    if error.class() == ErrorClass::AccessDenied {
        text.push_str(
            "hint: the key may read the counts but not list the pools: allow ListPools (IAM action \
             modelarts:pool:list) in this project, or watch without spec.poolDetails\n",
        );
    }
    text
}

/// A failed call as `--output json` prints it.
fn error_json(error: &ModelArtsError) -> serde_json::Value {
    serde_json::json!({
        "reason": error.reason(),
        "message": error.to_string(),
        "status": error.status(),
        "errorCode": error.error_code(),
        "errorMsg": error.error_msg(),
        "requestId": error.request_id(),
    })
}

/// Prints a failed call to stderr (and as JSON to stdout with `--output json`).
pub fn print_failure(args: &FetchArgs, error: &ModelArtsError, context: &Context) {
    // The error's texts quote the answer: shown without control characters.
    let mut text = format!(
        "error: {}\n  reason:      {}\n",
        terminal_line(&error.to_string()),
        error.reason()
    );
    if let Some(status) = error.status() {
        text.push_str(&format!("  HTTP status: {status}\n"));
    }
    if let Some(code) = error.error_code() {
        text.push_str(&format!("  error_code:  {}\n", terminal_line(code)));
    }
    if let Some(msg) = error.error_msg() {
        text.push_str(&format!("  error_msg:   {}\n", terminal_line(msg)));
    }
    if let Some(id) = error.request_id() {
        text.push_str(&format!("  request id:  {}\n", terminal_line(id)));
    }
    // The metadata service is the fallback: say what would have been used before it.
    if matches!(context.source, Source::Metadata { .. }) {
        for skipped in &context.skipped {
            text.push_str(&format!("  not set:     {skipped}\n"));
        }
    }
    text.push_str(&format!("hint: {}\n", hint(error, context)));
    let _ = std::io::stderr().write_all(text.as_bytes());
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::json!({"error": error_json(error)}));
    }
}

/// The message when nothing configures credentials and the metadata service is not there
/// either: every source in order, and why each gave nothing.
pub fn nothing_found(skipped: &[Skipped], metadata: &Endpoint, error: &ModelArtsError) -> String {
    let mut text = "no credentials found. Tried, in order:\n".to_owned();
    for (n, skipped) in skipped.iter().enumerate() {
        text.push_str(&format!("  {}. {skipped}\n", n + 1));
    }
    text.push_str(&format!(
        "  {}. ECS metadata service at {metadata}: {error} ({}): poolwatch does not seem to run on a Huawei Cloud server (or pass --metadata-endpoint)",
        skipped.len() + 1,
        error.reason()
    ));
    text
}

/// The `--verbose` line: which source, and for keyless ones the temporary key (redacted) and
/// its expiry. Without `resolved` (the exchange failed) just the source.
pub fn describe(source: &Source, iam: Option<&Endpoint>, resolved: Option<&Resolved>) -> String {
    let key = |credentials: &Credentials| {
        let kind = if credentials.security_token.is_some() {
            "temporary key"
        } else {
            "access key"
        };
        format!("{kind} {}", credentials.redacted_key_id())
    };
    let temporary = resolved.map(|r| match r.expires_at {
        Some(at) => format!("{}, expires {at}", key(&r.credentials)),
        None => key(&r.credentials),
    });
    let (head, mut details) = match source {
        Source::Keys {
            credentials,
            origin: Origin::Environment,
        } => {
            let vars = if credentials.security_token.is_some() {
                format!("{ENV_ACCESS_KEY} with {ENV_SECURITY_TOKEN}")
            } else {
                ENV_ACCESS_KEY.to_owned()
            };
            ("environment".to_owned(), vec![vars])
        }
        Source::Keys {
            origin: Origin::Profile(path),
            ..
        } => (
            format!("profile file {} [basic]", path.display()),
            Vec::new(),
        ),
        Source::Federation {
            identity_provider_id,
            token_file,
            origin,
        } => {
            let from = match origin {
                Origin::Environment => ENV_ID_TOKEN_FILE.to_owned(),
                Origin::Profile(path) => format!("profile file {} [basic]", path.display()),
            };
            let at = iam.map(|e| format!(" at {e}")).unwrap_or_default();
            (
                format!("federation through identity provider {identity_provider_id:?}{at}"),
                vec![format!("token file {} from {from}", token_file.display())],
            )
        }
        Source::PodIdentity { url, token_file } => (
            // The path without its query: nothing after `?` is needed to recognise the URL.
            format!(
                "CCE Pod Identity at {}{}",
                url.endpoint,
                url.path.split('?').next().unwrap_or_default()
            ),
            vec![format!("token file {}", token_file.display())],
        ),
        Source::Metadata { endpoint } => {
            (format!("ECS metadata service at {endpoint}"), Vec::new())
        }
    };
    match (source, temporary) {
        (_, Some(temporary)) => details.push(temporary),
        (Source::Keys { credentials, .. }, None) => details.push(key(credentials)),
        _ => {}
    }
    if details.is_empty() {
        head
    } else {
        format!("{head} ({})", details.join("; "))
    }
}

/// What to do about `error`, knowing where the credentials and settings came from.
pub fn hint(error: &ModelArtsError, context: &Context) -> String {
    let service = error.service();
    let source = &context.source;
    let iam_from = context.iam_from.as_deref().unwrap_or("--iam-endpoint");
    match error.class() {
        ErrorClass::AuthenticationFailed => match source {
            Source::Keys { origin: Origin::Environment, .. } => format!(
                "check {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} (and {ENV_SECURITY_TOKEN} for temporary keys); after 5 failures in a row Huawei Cloud locks the key for 5 minutes, so do not retry in a loop"
            ),
            Source::Keys { origin: Origin::Profile(path), .. } => format!(
                "check ak and sk (and security_token for temporary keys) in [basic] of {}; after 5 failures in a row Huawei Cloud locks the key for 5 minutes, so do not retry in a loop",
                path.display()
            ),
            _ => format!(
                "{service} refused the temporary keys {} issued: run the command again; if it persists, check that the endpoints belong to the same cloud as the credential source",
                source_name(source)
            ),
        },
        ErrorClass::AccessDenied => match source {
            Source::Keys { .. } => {
                "give the key's IAM user a policy that allows modelarts:pool:list".to_owned()
            }
            Source::Federation { identity_provider_id, .. } => format!(
                "give the IAM user group that identity provider {identity_provider_id:?}'s conversion rule maps the token to a policy that allows modelarts:pool:list"
            ),
            Source::PodIdentity { .. } if service == Service::PodIdentity => format!(
                "CCE Pod Identity refused the pod's token: check the Pod Identity association of the pod's ServiceAccount and {ENV_POD_IDENTITY_TOKEN_FILE}"
            ),
            Source::PodIdentity { .. } => "give the agency of the Pod Identity association a policy that allows modelarts:pool:list".to_owned(),
            // Huawei's metadata service says 401 for a missing session token or agency (the
            // SDK checks for that); a 403 is more likely a proxy or firewall answering for the
            // link-local address.
            Source::Metadata { .. } if service == Service::Metadata => "whatever answers at --metadata-endpoint refused the request (a proxy or firewall, or not Huawei's metadata service): on a Huawei Cloud server check that the address is reachable; anywhere else configure one of the sources listed as not set".to_owned(),
            Source::Metadata { .. } => "give the server's agency (Cloud Service Agency) a policy that allows modelarts:pool:list".to_owned(),
        },
        ErrorClass::ClockSkew => "synchronise this machine's clock (NTP); signatures are valid for 15 minutes".to_owned(),
        ErrorClass::ProjectNotFound => match &context.project_from {
            Some(from) if from != "--project-id" => format!(
                "check the project id (from {from}) and --workspace-id, and that the project belongs to the endpoint's region"
            ),
            _ => "check --project-id and --workspace-id, and that the project belongs to the endpoint's region".to_owned(),
        },
        ErrorClass::ApiNotFound | ErrorClass::InvalidResponse | ErrorClass::Network | ErrorClass::Timeout => {
            where_to_look(error.class(), service, iam_from)
        }
        ErrorClass::AmbiguousProject => "pass --project-id".to_owned(),
        ErrorClass::Throttled => match error.retry_after() {
            Some(wait) => format!("wait {} and try again", humantime::format_duration(wait)),
            None => "wait a few seconds and try again".to_owned(),
        },
        ErrorClass::UpstreamUnavailable => format!(
            "{service} is failing; try again later, and give the request id to Huawei Cloud support if it persists"
        ),
        ErrorClass::InvalidArgument
            if service == Service::Iam && matches!(source, Source::Federation { .. }) =>
        {
            format!("check {}: it is not an IAM identity provider id", idp_from(source))
        }
        ErrorClass::RequestRejected | ErrorClass::InvalidArgument => match &context.project_from {
            Some(from) if from != "--project-id" => {
                format!("check the project id (from {from}) and --workspace-id")
            }
            _ => "check --project-id and --workspace-id".to_owned(),
        },
        ErrorClass::InvalidConfiguration => "check --ca-bundle".to_owned(),
        ErrorClass::IdentityProviderNotFound => format!(
            "check {}: IAM at the IAM endpoint (from {iam_from}) knows no identity provider of that id (IAM console > Identity Providers)",
            idp_from(source)
        ),
        ErrorClass::TokenExchangeRefused => match source {
            Source::Federation { identity_provider_id, token_file, .. } => format!(
                "check that the token in {} ({}) names identity provider {identity_provider_id:?}'s client id as its audience, was issued by the provider's issuer and has not expired, and that a conversion rule of the provider matches its subject",
                token_file.display(),
                match source { Source::Federation { origin: Origin::Profile(_), .. } => "id_token_file", _ => ENV_ID_TOKEN_FILE }
            ),
            Source::PodIdentity { .. } => format!(
                "check the Pod Identity association of the pod's ServiceAccount (CCE console > Pod Identity: namespace, ServiceAccount, agency) and that {ENV_POD_IDENTITY_TOKEN_FILE} is the token CCE mounts"
            ),
            Source::Metadata { .. } => "give the server (the CCE node) an agency (ECS console > Management Information > Agency) with the ModelArts permissions, or configure credentials another way (see --help)".to_owned(),
            Source::Keys { .. } => "check the credentials".to_owned(),
        },
        ErrorClass::TemporaryCredentialsExpired => match source {
            Source::Keys { origin: Origin::Environment, .. } => format!(
                "the temporary keys in {ENV_ACCESS_KEY}, {ENV_SECRET_KEY} and {ENV_SECURITY_TOKEN} expired: get new ones"
            ),
            Source::Keys { origin: Origin::Profile(path), .. } => format!(
                "the temporary keys in [basic] of {} expired: get new ones",
                path.display()
            ),
            _ => "the temporary keys expired before they could be used: run the command again, and check this machine's clock".to_owned(),
        },
    }
}

/// Which setting to check when a service could not be reached or answered oddly.
fn where_to_look(class: ErrorClass, service: Service, iam_from: &str) -> String {
    let setting = match service {
        Service::ModelArts => "--endpoint or --region".to_owned(),
        Service::Iam => format!("the IAM endpoint (from {iam_from})"),
        Service::PodIdentity => ENV_POD_IDENTITY_URI.to_owned(),
        Service::Metadata => "--metadata-endpoint".to_owned(),
    };
    match class {
        ErrorClass::ApiNotFound => format!("check {setting}: the host does not serve {service}"),
        ErrorClass::InvalidResponse => format!("check that {setting} is where {service} answers"),
        _ => format!("check {setting}: host name, DNS, proxy and firewall, or raise --timeout"),
    }
}

/// The source's name in a sentence.
fn source_name(source: &Source) -> &'static str {
    match source {
        Source::Keys { .. } => "the configured keys",
        Source::Federation { .. } => "IAM federation",
        Source::PodIdentity { .. } => "CCE Pod Identity",
        Source::Metadata { .. } => "the ECS metadata service",
    }
}

/// Where the identity provider id came from.
fn idp_from(source: &Source) -> String {
    match source {
        Source::Federation {
            origin: Origin::Profile(path),
            ..
        } => format!("idp_id in [basic] of {}", path.display()),
        _ => ENV_IDP_ID.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::modelarts::keyless::ServiceUrl;

    fn context(source: Source) -> Context {
        Context {
            source,
            skipped: Vec::new(),
            project_from: Some("--project-id".to_owned()),
            iam_from: Some("HUAWEICLOUD_SDK_IAM_ENDPOINT".to_owned()),
        }
    }

    fn federation() -> Source {
        Source::Federation {
            identity_provider_id: "my-idp".to_owned(),
            token_file: PathBuf::from("/var/run/token"),
            origin: Origin::Environment,
        }
    }

    fn pod_identity() -> Source {
        Source::PodIdentity {
            url: ServiceUrl::parse("http://169.254.170.2/v1/credentials?secret=x")
                .unwrap_or_else(|e| panic!("{e}")),
            token_file: PathBuf::from("/var/run/pod-token"),
        }
    }

    fn error(class: ErrorClass, service: Service) -> ModelArtsError {
        ModelArtsError::new(class, service, "failed")
    }

    #[test]
    fn upstream_strings_reach_the_terminal_without_control_characters() {
        assert_eq!(terminal_text("pool-a", 60), "pool-a");
        assert_eq!(
            terminal_text("bad\u{1b}]0;owned\u{7}\u{1b}[2J\r\nnode", 60),
            "bad?]0;owned??[2J??node"
        );
        assert_eq!(terminal_text("\u{9b}31m", 60), "?31m", "the 8-bit CSI too");
        let long = "é".repeat(100);
        let cut = terminal_text(&long, 60);
        assert_eq!(cut.chars().count(), 60);
        assert!(cut.ends_with(bounded::MARKER));
        assert_eq!(terminal_text(&"é".repeat(60), 60), "é".repeat(60));
        let list = PoolList {
            pools: vec![Pool {
                name: "pool-\u{1b}[31mred".to_owned(),
                display_name: Some("\u{1b}c".to_owned()),
                phase: crate::modelarts::PoolPhase::Abnormal,
                message: Some(format!("{}\u{1b}[2J", "m".repeat(10))),
                pool_type: Some("Dedicate\u{7}".to_owned()),
                created: None,
                flavors: Vec::new(),
                gpu_driver: None,
                npu_driver: None,
            }],
            omitted: 0,
            unusable: 0,
        };
        let table = pool_table(&list);
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(
            table.contains("pool-?[31mred") && table.contains("Dedicate?"),
            "{table}"
        );
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

    #[test]
    fn a_refused_token_points_at_what_the_source_needs() {
        let refused = error(ErrorClass::TokenExchangeRefused, Service::Iam);
        let federated = hint(&refused, &context(federation()));
        assert!(federated.contains("client id"), "{federated}");
        assert!(federated.contains("conversion rule"), "{federated}");
        assert!(federated.contains("/var/run/token"), "{federated}");
        let refused = error(ErrorClass::TokenExchangeRefused, Service::PodIdentity);
        let pod = hint(&refused, &context(pod_identity()));
        assert!(pod.contains("Pod Identity association"), "{pod}");
        assert!(!pod.contains("conversion rule"), "{pod}");
        let metadata = hint(
            &error(ErrorClass::TokenExchangeRefused, Service::Metadata),
            &context(Source::Metadata {
                endpoint: Endpoint::parse("http://169.254.169.254", true)
                    .unwrap_or_else(|e| panic!("{e}")),
            }),
        );
        assert!(metadata.contains("agency"), "{metadata}");
    }

    #[test]
    fn hints_name_the_setting_where_it_came_from() {
        let profile = Source::Federation {
            identity_provider_id: "idp".to_owned(),
            token_file: PathBuf::from("/t"),
            origin: Origin::Profile(PathBuf::from("/home/u/.huaweicloud/credentials")),
        };
        let text = hint(
            &error(ErrorClass::IdentityProviderNotFound, Service::Iam),
            &context(profile),
        );
        assert!(
            text.contains("idp_id in [basic] of /home/u/.huaweicloud/credentials"),
            "{text}"
        );
        let text = hint(
            &error(ErrorClass::IdentityProviderNotFound, Service::Iam),
            &context(federation()),
        );
        assert!(text.contains("HUAWEICLOUD_SDK_IDP_ID"), "{text}");
        let text = hint(
            &error(ErrorClass::Network, Service::Iam),
            &context(federation()),
        );
        assert!(text.contains("from HUAWEICLOUD_SDK_IAM_ENDPOINT"), "{text}");
        let text = hint(
            &error(ErrorClass::Network, Service::PodIdentity),
            &context(pod_identity()),
        );
        assert!(text.contains("HC_CONTAINER_CREDENTIALS_FULL_URI"), "{text}");
        let mut from_profile = context(federation());
        from_profile.project_from = Some("project_id in /p [basic]".to_owned());
        let text = hint(
            &error(ErrorClass::ProjectNotFound, Service::ModelArts),
            &from_profile,
        );
        assert!(text.contains("from project_id in /p [basic]"), "{text}");
        let keys = Source::Keys {
            credentials: Credentials::new("AK", "SK"),
            origin: Origin::Environment,
        };
        let text = hint(
            &error(ErrorClass::AuthenticationFailed, Service::ModelArts),
            &context(keys),
        );
        assert!(text.contains("HUAWEICLOUD_SDK_SK"), "{text}");
    }

    #[test]
    fn the_verbose_line_names_the_source_and_only_a_redacted_key() {
        let temporary = Resolved {
            credentials: Credentials::new("ABCDEFGHIJKLMNOP", "secret-value")
                .with_security_token("token-value"),
            expires_at: "2026-11-30T06:00:00Z".parse().ok(),
        };
        let iam = Endpoint::parse("https://iam.cn-north-4.myhuaweicloud.com", false).ok();
        let line = describe(&federation(), iam.as_ref(), Some(&temporary));
        assert_eq!(
            line,
            "federation through identity provider \"my-idp\" at https://iam.cn-north-4.myhuaweicloud.com (token file /var/run/token from HUAWEICLOUD_SDK_ID_TOKEN_FILE; temporary key ABCD…, expires 2026-11-30T06:00:00Z)"
        );
        let line = describe(&pod_identity(), None, Some(&temporary));
        assert!(
            line.starts_with(
                "CCE Pod Identity at http://169.254.170.2/v1/credentials (token file /var/run/pod-token; temporary key"
            ),
            "{line}"
        );
        assert!(!line.contains("secret"), "{line}");
        let keys = Source::Keys {
            credentials: Credentials::new("ABCDEFGHIJKLMNOP", "secret-value"),
            origin: Origin::Environment,
        };
        assert_eq!(
            describe(&keys, None, None),
            "environment (HUAWEICLOUD_SDK_AK; access key ABCD…)"
        );
        let profile = Source::Keys {
            credentials: Credentials::new("ABCDEFGHIJKLMNOP", "secret-value"),
            origin: Origin::Profile(PathBuf::from("/root/.huaweicloud/credentials")),
        };
        assert_eq!(
            describe(&profile, None, None),
            "profile file /root/.huaweicloud/credentials [basic] (access key ABCD…)"
        );
        let metadata = Source::Metadata {
            endpoint: Endpoint::parse("http://169.254.169.254", true)
                .unwrap_or_else(|e| panic!("{e}")),
        };
        assert_eq!(
            describe(&metadata, None, None),
            "ECS metadata service at http://169.254.169.254"
        );
    }
}
