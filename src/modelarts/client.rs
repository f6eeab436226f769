//! The ModelArts HTTP client: signed calls, timeouts, bounded retries and a bounded body read.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tracing::Instrument;

use super::bounded;
use super::credentials::Credentials;
use super::endpoint::{Endpoint, EndpointError};
use super::error::{ErrorClass, ModelArtsError, Service};
use super::pools::{MAX_POOLS_BODY_BYTES, PoolList, PoolListFilter};
use super::signer::{self, RequestToSign, SdkDate};
use super::statistics::{MAX_BODY_BYTES, MAX_STATISTICS_BODY_BYTES, PoolStatistics};

/// Largest error body read; a longer one is dropped, and with it the body's code and message,
/// but not the status. Error bodies are small JSON objects: the longest, the gateway's signature
/// refusal quoting the canonical request with its security token, is a few KiB. Every error
/// answer is read up to it, retries included, so the limit is what an endpoint that answers
/// with megabytes makes the operator hold per call in flight.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// Which API an upstream request called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET /v2/{project_id}/statistics/pools`.
    PoolStatistics,
    /// `GET /v2/{project_id}/pools`: a workspace's pools (current or failed).
    ListPools,
    /// `GET /v3/projects?name={region}` on IAM.
    ListProjects,
    /// `POST /v3.0/OS-AUTH/id-token/tokens` on IAM: an identity token for an IAM token.
    ExchangeIdToken,
    /// `POST /v3.0/OS-CREDENTIAL/securitytokens` on IAM: an IAM token for temporary keys.
    CreateTemporaryCredentials,
    /// `POST` to CCE Pod Identity: the pod's token for temporary keys.
    PodIdentityCredentials,
    /// `PUT /meta-data/latest/api/token` on the ECS metadata service.
    MetadataToken,
    /// `GET /openstack/latest/securitykey` on the ECS metadata service.
    MetadataCredentials,
}

impl Operation {
    /// A stable name for metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::PoolStatistics => "pool_statistics",
            Operation::ListPools => "list_pools",
            Operation::ListProjects => "list_projects",
            Operation::ExchangeIdToken => "exchange_id_token",
            Operation::CreateTemporaryCredentials => "create_temporary_credentials",
            Operation::PodIdentityCredentials => "pod_identity_credentials",
            Operation::MetadataToken => "metadata_token",
            Operation::MetadataCredentials => "metadata_credentials",
        }
    }
}

/// What a ModelArts call under `/v2/{project_id}/` asks for (see `ModelArtsClient::project_get`).
struct ProjectGet<'a> {
    operation: Operation,
    /// The path after `/v2/{project_id}/`.
    path: &'static str,
    query: Vec<(&'static str, &'a str)>,
    max_answer_bytes: usize,
    /// What a body the parser refuses is called in the error: "an unusable pool list".
    unusable: &'static str,
}

/// One upstream HTTP request as the observer sees it: no URL, no headers, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The API called.
    pub operation: Operation,
    /// The endpoint's host (with `:port` when not the default).
    pub host: String,
    /// The HTTP status, or `None` when no answer came (network error, timeout).
    pub status: Option<u16>,
    /// From sending the request to reading the whole body.
    pub duration: Duration,
    /// 1 for the first try, 2 for the first retry, …
    pub attempt: u32,
    /// The failure's class, `None` on success.
    pub error_class: Option<ErrorClass>,
}

/// Called after every upstream request (retries included), e.g. to record metrics.
pub type RequestObserver = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// Where the client gets the signing time from. The system clock by default; tests pin it or
/// skew it.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemTime::now))
    }

    /// A clock that calls `now`.
    pub fn from_fn(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// A clock that always reads `time`.
    pub fn fixed(time: SystemTime) -> Self {
        Self::from_fn(move || time)
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// How the client retries throttling, 5xx and network failures. Authentication failures are
/// never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (0: no retry).
    pub max_retries: u32,
    /// The first backoff; each retry doubles it.
    pub base_delay: Duration,
    /// The longest wait between tries. A `Retry-After` longer than this is not slept: the
    /// Throttled error is returned at once, carrying it, so the caller can schedule.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1-based): `base * 2^(retry-1)`, capped at
    /// `max_delay`, then jittered into its upper half so that clients do not retry in step.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1_u32 << retry.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// How to build a [`ModelArtsClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Timeout to establish a connection (TCP and TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// Timeout for one whole request, body included. Default 30 s.
    pub request_timeout: Duration,
    /// Retries of throttling, 5xx and network failures. Default: 2 retries, 0.5 s doubling to 5 s.
    pub retry: RetryPolicy,
    /// PEM certificates trusted in addition to the system's roots (private clouds).
    pub extra_root_certificates: Option<Vec<u8>>,
    /// Allow plain `http://` endpoints whose host is not loopback.
    pub allow_http: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Sees every upstream request (for metrics).
    pub observer: Option<RequestObserver>,
    /// The source of signing times.
    pub clock: Clock,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            extra_root_certificates: None,
            allow_http: false,
            user_agent: format!("poolwatch/{}", env!("CARGO_PKG_VERSION")),
            observer: None,
            clock: Clock::system(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field(
                "extra_root_certificates",
                &self.extra_root_certificates.as_ref().map(Vec::len),
            )
            .field("allow_http", &self.allow_http)
            .field("user_agent", &self.user_agent)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
}

/// A ModelArts and IAM client. Cheap to clone: clones share one connection pool. It keeps no
/// answers: callers decide what to reuse and for how long (the operator reuses a resolved
/// project id for an hour per key; `poolwatch fetch` resolves once).
#[derive(Clone)]
pub struct ModelArtsClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ModelArtsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelArtsClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// One request to a Huawei Cloud service.
pub(crate) struct Call<'a> {
    pub(crate) service: Service,
    pub(crate) operation: Operation,
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) method: reqwest::Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(&'a str, &'a str)>,
    pub(crate) headers: Vec<(&'a str, &'a str)>,
    /// A JSON body (sent with `Content-Type: application/json;charset=UTF-8`), or empty.
    pub(crate) body: Vec<u8>,
    pub(crate) auth: Auth<'a>,
    /// The largest successful answer read; a longer one is refused without being read whole.
    pub(crate) max_answer_bytes: usize,
}

impl<'a> Call<'a> {
    /// A signed `GET` of `path` with no query, extra header or body.
    pub(crate) fn signed_get(
        (service, operation): (Service, Operation),
        endpoint: &'a Endpoint,
        path: String,
        credentials: &'a Credentials,
    ) -> Self {
        Self {
            service,
            operation,
            endpoint,
            method: reqwest::Method::GET,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            auth: Auth::Signed(credentials),
            max_answer_bytes: MAX_BODY_BYTES,
        }
    }

    /// An unsigned request of `path` carrying `secrets`, with no query, extra header or body.
    pub(crate) fn unsigned(
        (service, operation): (Service, Operation),
        endpoint: &'a Endpoint,
        (method, path): (reqwest::Method, String),
        secrets: Vec<&'a str>,
        plain_http_expected: bool,
    ) -> Self {
        Self {
            service,
            operation,
            endpoint,
            method,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            auth: Auth::Unsigned {
                secrets,
                plain_http_expected,
            },
            max_answer_bytes: MAX_BODY_BYTES,
        }
    }
}

/// How a request proves who sends it.
pub(crate) enum Auth<'a> {
    /// Signed with SDK-HMAC-SHA256 (ModelArts, IAM's project list).
    Signed(&'a Credentials),
    /// Not signed: the credential exchanges carry a bearer secret (an identity token, an IAM
    /// token, a Pod Identity or metadata token) in a header or the body. Each secret is marked
    /// sensitive when sent and scrubbed from whatever the server echoes back.
    Unsigned {
        /// The secrets the request carries.
        secrets: Vec<&'a str>,
        /// Plain `http://` is expected (link-local node services such as the ECS metadata
        /// service and CCE Pod Identity), whatever `allow_http` says.
        plain_http_expected: bool,
    },
}

impl Auth<'_> {
    fn scrub(&self, text: &str) -> String {
        match self {
            Auth::Signed(credentials) => credentials.scrub(text),
            Auth::Unsigned { secrets, .. } => {
                let secrets: Vec<Option<&str>> = secrets.iter().copied().map(Some).collect();
                super::credentials::scrub(text, &secrets)
            }
        }
    }

    fn is_secret(&self, value: &str) -> bool {
        match self {
            Auth::Signed(_) => false,
            Auth::Unsigned { secrets, .. } => secrets.contains(&value),
        }
    }
}

/// A successful answer: its status, body, request id and the headers (IAM's token exchange
/// returns the token in `X-Subject-Token`).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) request_id: Option<String>,
    pub(crate) headers: HeaderMap,
}

impl ModelArtsClient {
    /// Builds the client. Fails only when the extra CA bundle cannot be used.
    pub fn new(config: ClientConfig) -> Result<Self, ModelArtsError> {
        let config_error = |msg: String| {
            ModelArtsError::new(ErrorClass::InvalidConfiguration, Service::ModelArts, msg)
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(90));
        if let Some(pem) = &config.extra_root_certificates {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                config_error(format!(
                    "the CA bundle is not valid PEM ({e}): give a file of PEM certificates"
                ))
            })?;
            if certs.is_empty() {
                return Err(config_error(
                    "the CA bundle holds no certificate: give a file of PEM certificates (-----BEGIN CERTIFICATE-----)"
                        .to_owned(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            config_error(format!("could not set up the HTTP client: {}", chain(&e)))
        })?;
        Ok(Self {
            inner: Arc::new(Inner { http, config }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Calls `GET /v2/{project_id}/statistics/pools?workspaceId={workspace_id}` on `endpoint`.
    ///
    /// Throttling, 5xx and network failures are retried per the [`RetryPolicy`]; everything else
    /// is returned at once.
    pub async fn pool_statistics(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
        project_id: &str,
        workspace_id: &str,
    ) -> Result<PoolStatistics, ModelArtsError> {
        let span = tracing::debug_span!(
            "modelarts.pool_statistics",
            host = %endpoint.authority(),
            project_id,
            workspace_id,
            access_key = %credentials.redacted_key_id(),
        );
        let request = ProjectGet {
            operation: Operation::PoolStatistics,
            path: "statistics/pools",
            query: vec![("workspaceId", workspace_id)],
            max_answer_bytes: MAX_STATISTICS_BODY_BYTES,
            unusable: "an unusable statistics answer",
        };
        self.project_get(endpoint, credentials, project_id, request, |body| {
            PoolStatistics::parse(body).map_err(|e| e.0)
        })
        .instrument(span)
        .await
    }

    /// Calls `GET /v2/{project_id}/pools?workspaceId={workspace_id}` on `endpoint`, with
    /// `&status=failed` for [`PoolListFilter::Failed`]; signed, retried and bounded like
    /// [`ModelArtsClient::pool_statistics`] (IAM action `modelarts:pool:list`), the answer read
    /// up to [`MAX_POOLS_BODY_BYTES`] and parsed by [`PoolList::parse`].
    pub async fn list_pools(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
        project_id: &str,
        workspace_id: &str,
        filter: PoolListFilter,
    ) -> Result<PoolList, ModelArtsError> {
        let span = tracing::debug_span!(
            "modelarts.list_pools",
            host = %endpoint.authority(),
            project_id,
            workspace_id,
            status = filter.status_query().unwrap_or(""),
            access_key = %credentials.redacted_key_id(),
        );
        let mut query = vec![("workspaceId", workspace_id)];
        if let Some(status) = filter.status_query() {
            query.push(("status", status));
        }
        let request = ProjectGet {
            operation: Operation::ListPools,
            path: "pools",
            query,
            max_answer_bytes: MAX_POOLS_BODY_BYTES,
            unusable: "an unusable pool list",
        };
        self.project_get(endpoint, credentials, project_id, request, |body| {
            PoolList::parse(body, filter).map_err(|e| e.0)
        })
        .instrument(span)
        .await
    }

    /// A signed `GET /v2/{project_id}/{path}` on ModelArts, its answer read up to the request's
    /// limit and given to `parse`; a body `parse` refuses is an [`ErrorClass::InvalidResponse`]
    /// naming the host. Throttling, 5xx and network failures are retried per the
    /// [`RetryPolicy`]; everything else is returned at once.
    async fn project_get<T>(
        &self,
        endpoint: &Endpoint,
        credentials: &Credentials,
        project_id: &str,
        request: ProjectGet<'_>,
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, ModelArtsError> {
        check_path_id(Service::ModelArts, "project id", project_id)?;
        let call = Call {
            query: request.query,
            headers: vec![("X-Project-Id", project_id)],
            max_answer_bytes: request.max_answer_bytes,
            ..Call::signed_get(
                (Service::ModelArts, request.operation),
                endpoint,
                format!("/v2/{project_id}/{}", request.path),
                credentials,
            )
        };
        let Answer {
            status,
            body,
            request_id,
            ..
        } = self.execute(&call).await?;
        parse(&body).map_err(|e| {
            ModelArtsError::new(
                ErrorClass::InvalidResponse,
                Service::ModelArts,
                format!("{} sent {}: {e}", endpoint.authority(), request.unusable),
            )
            .with_status(status)
            .with_request_id(request_id)
        })
    }

    /// Finds the id of the project named `region` through IAM (`GET /v3/projects?name=…`), as
    /// the official SDK does when no project id is configured. Zero or several matching projects
    /// are errors.
    pub async fn resolve_project_id(
        &self,
        iam_endpoint: &Endpoint,
        credentials: &Credentials,
        region: &str,
    ) -> Result<String, ModelArtsError> {
        let span = tracing::debug_span!(
            "iam.resolve_project_id",
            host = %iam_endpoint.authority(),
            region,
            access_key = %credentials.redacted_key_id(),
        );
        let id = async {
            let call = Call {
                query: vec![("name", region)],
                ..Call::signed_get(
                    (Service::Iam, Operation::ListProjects),
                    iam_endpoint,
                    "/v3/projects".to_owned(),
                    credentials,
                )
            };
            let Answer {
                status,
                body,
                request_id,
                ..
            } = self.execute(&call).await?;
            let invalid = |msg: String| {
                ModelArtsError::new(ErrorClass::InvalidResponse, Service::Iam, msg)
                    .with_status(status)
                    .with_request_id(request_id.clone())
            };
            let ids = project_ids_named(&body, region).map_err(|e| {
                invalid(format!(
                    "{} sent an unusable project list: {e}",
                    iam_endpoint.authority()
                ))
            })?;
            match ids.as_slice() {
                [id] => {
                    check_path_id(Service::Iam, "project id returned by IAM", id)?;
                    Ok(id.clone())
                }
                [] => Err(ModelArtsError::new(
                    ErrorClass::ProjectNotFound,
                    Service::Iam,
                    format!(
                        "IAM at {} lists no project named {region:?} for {credentials}: check the region, or set the project id explicitly",
                        iam_endpoint.authority()
                    ),
                )
                .with_status(status)
                .with_request_id(request_id.clone())),
                several => Err(ModelArtsError::new(
                    ErrorClass::AmbiguousProject,
                    Service::Iam,
                    format!(
                        "IAM lists {} projects named {region:?} ({}): set the project id explicitly",
                        several.len(),
                        listed_ids(several)
                    ),
                )
                .with_status(status)
                .with_request_id(request_id.clone())),
            }
        }
        .instrument(span)
        .await?;
        Ok(id)
    }

    /// Sends `call` with retries; returns the answer of a 2xx.
    pub(crate) async fn execute(&self, call: &Call<'_>) -> Result<Answer, ModelArtsError> {
        let plain_http_expected = matches!(
            call.auth,
            Auth::Unsigned {
                plain_http_expected: true,
                ..
            }
        );
        if call.endpoint.is_plain_http_to_remote()
            && !self.inner.config.allow_http
            && !plain_http_expected
        {
            let advice = EndpointError::PlainHttp {
                input: call.endpoint.to_string(),
            };
            return Err(ModelArtsError::new(
                ErrorClass::InvalidArgument,
                call.service,
                advice.to_string(),
            ));
        }
        let policy = self.inner.config.retry;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = self.attempt(call).await;
            let record = RequestRecord {
                operation: call.operation,
                host: call.endpoint.authority(),
                status: match &result {
                    Ok(answer) => Some(answer.status),
                    Err(e) => e.status(),
                },
                duration: started.elapsed(),
                attempt,
                error_class: result.as_ref().err().map(ModelArtsError::class),
            };
            tracing::debug!(
                attempt,
                status = record.status,
                duration_ms = record.duration.as_millis() as u64,
                "upstream request done"
            );
            if let Some(observer) = &self.inner.config.observer {
                observer(&record);
            }
            let error = match result {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            if !error.class().is_retried_by_client() || attempt > policy.max_retries {
                return Err(error.with_attempts(attempt));
            }
            let delay = match error.retry_after() {
                Some(wait) if wait > policy.max_delay => {
                    tracing::info!(
                        retry_after_s = wait.as_secs(),
                        "upstream asked to wait longer than the retry policy allows; not retrying now"
                    );
                    return Err(error.with_attempts(attempt));
                }
                Some(wait) => wait,
                None => policy.backoff(attempt),
            };
            tracing::warn!(
                attempt,
                reason = error.reason(),
                delay_ms = delay.as_millis() as u64,
                "retrying upstream request: {error}"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One request (signed when it should be), bounded by the request timeout.
    async fn attempt(&self, call: &Call<'_>) -> Result<Answer, ModelArtsError> {
        let config = &self.inner.config;
        let authority = call.endpoint.authority();
        let mut unsigned_headers: Vec<(String, String)> = call
            .headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if !call.body.is_empty() {
            unsigned_headers.push((
                "Content-Type".to_owned(),
                "application/json;charset=UTF-8".to_owned(),
            ));
        }
        let (query, request_headers) = match call.auth {
            Auth::Signed(credentials) => {
                let date = SdkDate::from_system_time(config.clock.now());
                let signed = signer::sign(
                    &RequestToSign {
                        method: call.method.as_str(),
                        host: &authority,
                        path: &call.path,
                        query: &call.query,
                        headers: &call.headers,
                        body: &call.body,
                    },
                    credentials,
                    date,
                );
                (signed.query, signed.headers)
            }
            Auth::Unsigned { .. } => (signer::canonical_query(&call.query), unsigned_headers),
        };
        let url = call.endpoint.url_for(&call.path, &query).map_err(|e| {
            ModelArtsError::new(
                ErrorClass::InvalidArgument,
                call.service,
                format!("could not build the request URL: {e}"),
            )
        })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &request_headers {
            if name.eq_ignore_ascii_case("host") {
                // reqwest derives Host from the URL; it equals the signed authority.
                continue;
            }
            let sensitive = name.eq_ignore_ascii_case("authorization")
                || name.eq_ignore_ascii_case(signer::HEADER_SECURITY_TOKEN)
                || call.auth.is_secret(value);
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ModelArtsError::new(
                    ErrorClass::InvalidArgument,
                    call.service,
                    format!("{name} is not a valid HTTP header name"),
                )
            })?;
            let mut header_value = HeaderValue::from_str(value).map_err(|_| {
                let what = if sensitive {
                    "the security token".to_owned()
                } else {
                    format!("the {name} value")
                };
                ModelArtsError::new(
                    ErrorClass::InvalidArgument,
                    call.service,
                    format!("{what} holds characters that cannot be sent in an HTTP header: check it for line breaks or non-ASCII characters"),
                )
            })?;
            header_value.set_sensitive(sensitive);
            headers.insert(header_name, header_value);
        }
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url)
            .headers(headers);
        if !call.body.is_empty() {
            request = request.body(call.body.clone());
        }
        let timeout = config.request_timeout;
        let service = call.service;
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| transport_error(service, &authority, &e, timeout))?;
            let status = response.status().as_u16();
            let request_id = header_text(response.headers(), "x-request-id");
            if (200..300).contains(&status) {
                let body = read_body(&mut response, call.max_answer_bytes)
                    .await
                    .map_err(|e| {
                        e.into_error(service, &authority, timeout)
                            .with_status(status)
                            .with_request_id(request_id.clone())
                    })?;
                return Ok(Answer {
                    status,
                    body,
                    request_id,
                    headers: response.headers().clone(),
                });
            }
            if (300..400).contains(&status) {
                let location = header_text(response.headers(), "location")
                    .map_or_else(|| "nowhere".to_owned(), |l| redirect_target(&l));
                return Err(ModelArtsError::new(
                    ErrorClass::InvalidResponse,
                    service,
                    format!(
                        "{authority} redirected the request to {location}, which poolwatch does not follow: set the endpoint to the service's real address"
                    ),
                )
                .with_status(status)
                .with_request_id(request_id));
            }
            let retry_after = header_text(response.headers(), "retry-after")
                .and_then(|v| parse_retry_after(&v, config.clock.now()));
            // A broken or too long error body still leaves a useful status. A too long one is
            // not read at all: cut, it would not parse as JSON anyway.
            let body = read_body(&mut response, MAX_ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            let (code, msg) = error_fields(&body);
            Err(ModelArtsError::from_status(
                service,
                &authority,
                status,
                code.map(|c| call.auth.scrub(&c)),
                msg.map(|m| call.auth.scrub(&m)),
                request_id,
                retry_after,
            ))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ModelArtsError::new(
                ErrorClass::Timeout,
                service,
                format!(
                    "{authority} did not answer completely within {}",
                    humantime::format_duration(timeout)
                ),
            )),
        }
    }
}

/// Why a body could not be read.
enum BodyError {
    /// Longer than `limit`: `declared` so by `Content-Length`, or found so while reading.
    TooLarge {
        limit: usize,
        declared: Option<u64>,
    },
    Broken {
        read: usize,
        error: reqwest::Error,
    },
}

impl BodyError {
    fn into_error(self, service: Service, authority: &str, timeout: Duration) -> ModelArtsError {
        match self {
            BodyError::TooLarge { limit, declared } => ModelArtsError::new(
                ErrorClass::InvalidResponse,
                service,
                match declared {
                    Some(n) => format!(
                        "{authority} sent a {n}-byte body, more than the {limit}-byte limit"
                    ),
                    None => format!(
                        "{authority} sent a body larger than the {limit}-byte limit; stopped reading"
                    ),
                },
            ),
            BodyError::Broken { error, .. } if error.is_timeout() => {
                transport_error(service, authority, &error, timeout)
            }
            BodyError::Broken { read, error } => ModelArtsError::new(
                ErrorClass::InvalidResponse,
                service,
                format!(
                    "{authority} sent a truncated body (the connection broke after {read} bytes: {})",
                    chain(&error)
                ),
            ),
        }
    }
}

/// Reads the body, unless it is longer than `cap` bytes: then stops, at once when its
/// `Content-Length` says so.
async fn read_body(response: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if let Some(declared) = response.content_length()
        && declared > cap as u64
    {
        return Err(BodyError::TooLarge {
            limit: cap,
            declared: Some(declared),
        });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(BodyError::TooLarge {
                        limit: cap,
                        declared: None,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => {
                return Err(BodyError::Broken {
                    read: body.len(),
                    error,
                });
            }
        }
    }
}

fn transport_error(
    service: Service,
    authority: &str,
    error: &reqwest::Error,
    timeout: Duration,
) -> ModelArtsError {
    if error.is_timeout() {
        ModelArtsError::new(
            ErrorClass::Timeout,
            service,
            format!(
                "{authority} did not answer in time (request timeout {}): {}",
                humantime::format_duration(timeout),
                chain(error)
            ),
        )
    } else {
        ModelArtsError::new(
            ErrorClass::Network,
            service,
            format!("could not reach {service} at {authority}: {}", chain(error)),
        )
    }
}

/// An error and its sources on one line, without repeating the URL.
fn chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let text = match e.downcast_ref::<reqwest::Error>() {
            Some(r) => {
                let mut text = r.to_string();
                if let Some(url) = r.url() {
                    text = text
                        .replace(&format!(" ({url})"), "")
                        .replace(url.as_str(), "")
                        .replace(" for url", "");
                }
                text
            }
            None => e.to_string(),
        };
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `scheme://host[:port]` of a redirect target, without its path or query, cut to
/// [`bounded::QUOTE`] bytes.
fn redirect_target(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(url) => bounded::cut_owned(
            format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            bounded::QUOTE,
        ),
        Err(_) => "another path on the same host".to_owned(),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (relative to `now`).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // An HTTP date (IMF-fixdate) is an RFC 2822 date with `GMT` for its zone.
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let at = SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `error_code` and `error_msg` from an error body, in any of the forms the SDK accepts:
/// `error_code/error_msg`, `errorCode/errorMsg`, `code/message`, or IAM's
/// `{"error": {"code": 401, "message": "…"}}`. Whole, for the secrets to be scrubbed from:
/// [`ModelArtsError::from_status`] cuts them, after the scrub, so that a cut can never leave
/// part of a secret where the scrub no longer recognises it.
pub(crate) fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let pick = |obj: &serde_json::Map<String, Value>, keys: &[&str]| {
        keys.iter().find_map(|k| obj.get(*k).and_then(text))
    };
    let code = pick(&map, &["error_code", "errorCode", "code"]);
    let msg = pick(&map, &["error_msg", "errorMsg", "message"]);
    if code.is_some() || msg.is_some() {
        return (code, msg);
    }
    match map.get("error") {
        Some(Value::Object(inner)) => (
            pick(inner, &["error_code", "code"]),
            pick(inner, &["error_msg", "message"]),
        ),
        _ => (None, None),
    }
}

/// The ids of the projects named `region` in an IAM `/v3/projects` answer.
fn project_ids_named(body: &[u8], region: &str) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Some(projects) = value.get("projects").and_then(Value::as_array) else {
        return Err("no `projects` list".to_owned());
    };
    Ok(projects
        .iter()
        .filter(|p| p.get("name").and_then(Value::as_str) == Some(region))
        .filter_map(|p| p.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

/// How many of the project ids of an ambiguous answer a message lists.
const LISTED_IDS: usize = 5;

/// The first [`LISTED_IDS`] ids, each cut to [`bounded::QUOTE`] bytes, and how many more there
/// are: IAM's list is an answer, of any length.
fn listed_ids(ids: &[String]) -> String {
    let mut listed: Vec<String> = ids
        .iter()
        .take(LISTED_IDS)
        .map(|id| bounded::cut(id, bounded::QUOTE).into_owned())
        .collect();
    if ids.len() > LISTED_IDS {
        listed.push(format!("and {} more", ids.len() - LISTED_IDS));
    }
    listed.join(", ")
}

/// Project ids go into the URL path: only `A-Z a-z 0-9 - _` are accepted.
fn check_path_id(service: Service, what: &str, id: &str) -> Result<(), ModelArtsError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ModelArtsError::new(
            ErrorClass::InvalidArgument,
            service,
            format!(
                "the {what} {:?} is not a project id: use the 32-character id shown under My Credentials > API Credentials in the Huawei Cloud console (letters, digits, - and _ only)",
                bounded::cut(id, bounded::QUOTE)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn backoff_doubles_caps_and_jitters_into_upper_half() {
        let policy = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let second = policy.backoff(2);
            assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
            let capped = policy.backoff(10);
            assert!(capped >= Duration::from_millis(175) && capped <= Duration::from_millis(350));
        }
        assert!(policy.backoff(u32::MAX) <= Duration::from_millis(350));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn error_fields_accept_every_sdk_form() {
        let cases: [(&[u8], Option<&str>, Option<&str>); 6] = [
            (br#"{"error_code":"APIGW.0301","error_msg":"bad"}"#, Some("APIGW.0301"), Some("bad")),
            (br#"{"errorCode":"X.1","errorMsg":"m"}"#, Some("X.1"), Some("m")),
            (br#"{"code":"Y.2","message":"n"}"#, Some("Y.2"), Some("n")),
            (br#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#,
             Some("401"), Some("The request you have made requires authentication.")),
            (b"<html>bad gateway</html>", None, None),
            (b"", None, None),
        ];
        for (body, code, msg) in cases {
            let (c, m) = error_fields(body);
            assert_eq!((c.as_deref(), m.as_deref()), (code, msg));
        }
    }

    #[test]
    fn project_list_is_filtered_by_exact_name() {
        let body = br#"{"projects":[{"id":"a1","name":"cn-north-4"},{"id":"b2","name":"cn-north-4_sub"},{"id":"c3","name":"MOS"}]}"#;
        assert_eq!(
            project_ids_named(body, "cn-north-4"),
            Ok(vec!["a1".to_owned()])
        );
        assert_eq!(project_ids_named(body, "cn-east-3"), Ok(vec![]));
        assert!(project_ids_named(b"{}", "x").is_err());
        assert!(project_ids_named(b"nope", "x").is_err());
    }

    #[test]
    fn path_ids_refuse_path_characters() {
        assert!(check_path_id(Service::ModelArts, "project id", "0123abcdef_-X").is_ok());
        for bad in ["", "a/b", "..", "a?b", "a b", "a%2Fb", &"x".repeat(129)] {
            let err = check_path_id(Service::ModelArts, "project id", bad);
            assert_eq!(
                err.map_err(|e| e.class()),
                Err(ErrorClass::InvalidArgument),
                "{bad}"
            );
        }
    }

    #[test]
    fn redirect_targets_show_only_the_origin() {
        assert_eq!(
            redirect_target("https://evil.example:8443/steal?x=1"),
            "https://evil.example:8443"
        );
        assert_eq!(
            redirect_target("/relative"),
            "another path on the same host"
        );
    }

    #[test]
    fn bad_ca_bundle_is_a_configuration_error_with_advice() {
        let config = ClientConfig {
            extra_root_certificates: Some(b"not a certificate".to_vec()),
            ..ClientConfig::default()
        };
        let err = ModelArtsClient::new(config).map(|_| ()).unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidConfiguration);
        assert!(err.to_string().contains("PEM"), "{err}");
    }
}
