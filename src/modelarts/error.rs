//! One error type for every way a ModelArts or IAM call can fail, classified for the controller.

use std::fmt;
use std::time::Duration;

use super::bounded;

/// Which Huawei Cloud service a call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// ModelArts (the pool-statistics API).
    ModelArts,
    /// IAM (the project-id lookup and the exchange of an identity token for temporary keys).
    Iam,
    /// The ECS metadata service, which hands out the temporary keys of the node's agency.
    Metadata,
    /// CCE Pod Identity, which hands out the temporary keys of the agency bound to the pod.
    PodIdentity,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::ModelArts => "ModelArts",
            Service::Iam => "IAM",
            Service::Metadata => "the ECS metadata service",
            Service::PodIdentity => "CCE Pod Identity",
        })
    }
}

/// What kind of failure this is: decides the condition reason, the metric label and whether
/// retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// The gateway refused the access key or the signature (HTTP 401, `APIGW.0301`), or the key
    /// is locked after repeated failures. Never retried: retries lock the key.
    AuthenticationFailed,
    /// The key is valid but lacks permission (HTTP 403), e.g. the IAM action `modelarts:pool:list`.
    AccessDenied,
    /// The gateway refused the signing time: this machine's clock is more than 15 minutes off.
    ClockSkew,
    /// The project or workspace does not exist (HTTP 404, `ModelArts.50015001`), or IAM knows no
    /// project of the region's name for this key.
    ProjectNotFound,
    /// The gateway does not serve the API at this endpoint (HTTP 404, `APIGW.0101`): wrong host.
    ApiNotFound,
    /// IAM returned several projects for the region name: set the project id explicitly.
    AmbiguousProject,
    /// Flow control refused the call (HTTP 429, `APIGW.0308`); see [`ModelArtsError::retry_after`].
    Throttled,
    /// The service failed (HTTP 5xx).
    UpstreamUnavailable,
    /// The service refused the request as malformed (another 4xx, e.g. `ModelArts.50004000`).
    RequestRejected,
    /// The connection failed: DNS, refused, reset, TLS.
    Network,
    /// No complete answer within the connect or request timeout.
    Timeout,
    /// The answer was not what the API returns: not JSON, wrong shape, truncated, too large,
    /// or a redirect.
    InvalidResponse,
    /// An argument cannot be sent as given (e.g. a project id with a path character).
    InvalidArgument,
    /// The client itself could not be set up (e.g. an unreadable CA bundle).
    InvalidConfiguration,
    /// IAM knows no identity provider of the id given (HTTP 404 on the token exchange).
    IdentityProviderNotFound,
    /// IAM, Pod Identity or the metadata service refused to exchange the identity shown for
    /// temporary keys: a token for another audience or issuer, an expired token, no conversion
    /// rule for the ServiceAccount, no agency.
    TokenExchangeRefused,
    /// The service refused temporary keys as expired: they are renewed and the call retried.
    TemporaryCredentialsExpired,
}

impl ErrorClass {
    /// Every class, for tests and exhaustive metric initialisation.
    pub const ALL: [ErrorClass; 17] = [
        ErrorClass::AuthenticationFailed,
        ErrorClass::AccessDenied,
        ErrorClass::ClockSkew,
        ErrorClass::ProjectNotFound,
        ErrorClass::ApiNotFound,
        ErrorClass::AmbiguousProject,
        ErrorClass::Throttled,
        ErrorClass::UpstreamUnavailable,
        ErrorClass::RequestRejected,
        ErrorClass::Network,
        ErrorClass::Timeout,
        ErrorClass::InvalidResponse,
        ErrorClass::InvalidArgument,
        ErrorClass::InvalidConfiguration,
        ErrorClass::IdentityProviderNotFound,
        ErrorClass::TokenExchangeRefused,
        ErrorClass::TemporaryCredentialsExpired,
    ];

    /// A stable CamelCase name for condition reasons, metric labels and events.
    pub fn reason(&self) -> &'static str {
        match self {
            ErrorClass::AuthenticationFailed => "AuthenticationFailed",
            ErrorClass::AccessDenied => "AccessDenied",
            ErrorClass::ClockSkew => "ClockSkew",
            ErrorClass::ProjectNotFound => "ProjectNotFound",
            ErrorClass::ApiNotFound => "ApiNotFound",
            ErrorClass::AmbiguousProject => "AmbiguousProject",
            ErrorClass::Throttled => "Throttled",
            ErrorClass::UpstreamUnavailable => "UpstreamUnavailable",
            ErrorClass::RequestRejected => "RequestRejected",
            ErrorClass::Network => "NetworkError",
            ErrorClass::Timeout => "Timeout",
            ErrorClass::InvalidResponse => "InvalidResponse",
            ErrorClass::InvalidArgument => "InvalidArgument",
            ErrorClass::InvalidConfiguration => "InvalidConfiguration",
            ErrorClass::IdentityProviderNotFound => "IdentityProviderNotFound",
            ErrorClass::TokenExchangeRefused => "TokenExchangeRefused",
            ErrorClass::TemporaryCredentialsExpired => "TemporaryCredentialsExpired",
        }
    }

    /// Whether only a change (of key, permission, clock, spec or endpoint) can fix it; retrying
    /// the same call will fail the same way.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// Whether retrying the same call may succeed: throttling, 5xx, network, timeout and
    /// invalid responses (a truncated body may be a one-off).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ErrorClass::Throttled
                | ErrorClass::UpstreamUnavailable
                | ErrorClass::Network
                | ErrorClass::Timeout
                | ErrorClass::InvalidResponse
                | ErrorClass::TemporaryCredentialsExpired
        )
    }

    /// Whether the client retries it at once (with backoff): throttling, 5xx and network
    /// failures. Never authentication failures: repeated 401s lock Huawei access keys.
    pub fn is_retried_by_client(&self) -> bool {
        matches!(
            self,
            ErrorClass::Throttled
                | ErrorClass::UpstreamUnavailable
                | ErrorClass::Network
                | ErrorClass::Timeout
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A failed ModelArts or IAM call. Carries what the service said (HTTP status, `error_code`,
/// `error_msg`, `X-Request-Id`) and never a secret: the message is scrubbed of the secret key
/// and the security token before it is stored. Every string in it is cut to its limit in
/// [`bounded`] when it is set, so an error, and so its `Display`, stays a few KiB at most
/// whatever the service sent.
#[derive(Clone, PartialEq, Eq)]
pub struct ModelArtsError {
    // Boxed: results stay small on the happy path.
    inner: Box<Details>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    class: ErrorClass,
    service: Service,
    summary: String,
    status: Option<u16>,
    error_code: Option<String>,
    error_msg: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    attempts: u32,
}

impl ModelArtsError {
    /// An error with no HTTP answer behind it (network, timeout, bad argument, bad response).
    pub(crate) fn new(class: ErrorClass, service: Service, summary: impl Into<String>) -> Self {
        Self::from_details(Details {
            class,
            service,
            summary: bounded::cut_owned(summary.into(), bounded::SUMMARY),
            status: None,
            error_code: None,
            error_msg: None,
            request_id: None,
            retry_after: None,
            attempts: 1,
        })
    }

    fn from_details(details: Details) -> Self {
        Self {
            inner: Box::new(details),
        }
    }

    /// Classifies an HTTP error answer. `error_code` and `error_msg` must already be scrubbed
    /// of secrets; they are cut here, with the request id, before anything reads them.
    pub(crate) fn from_status(
        service: Service,
        host: &str,
        status: u16,
        error_code: Option<String>,
        error_msg: Option<String>,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let error_code = error_code.map(|c| bounded::cut_owned(c, bounded::ERROR_CODE));
        let error_msg = error_msg.map(|m| bounded::cut_owned(m, bounded::ERROR_MESSAGE));
        let class = classify(status, error_code.as_deref(), error_msg.as_deref());
        let summary = match class {
            ErrorClass::AuthenticationFailed => {
                let locked = error_msg
                    .as_deref()
                    .is_some_and(|m| m.to_ascii_lowercase().contains("reach the limit"));
                if locked {
                    format!(
                        "{service} refused the access key, which is locked for 5 minutes after repeated failures"
                    )
                } else {
                    format!("{service} refused the access key")
                }
            }
            ErrorClass::AccessDenied => format!(
                "{service} denied access: the access key lacks a permission (for pool statistics, the IAM action modelarts:pool:list)"
            ),
            ErrorClass::ClockSkew => format!(
                "{service} refused the signing time: this machine's clock is more than 15 minutes off Huawei Cloud's"
            ),
            ErrorClass::ProjectNotFound => {
                format!("{service} did not find the project or workspace")
            }
            ErrorClass::ApiNotFound => {
                format!("{host} does not serve this {service} API: check the endpoint")
            }
            ErrorClass::TemporaryCredentialsExpired => {
                format!("{service} refused the temporary access key as expired")
            }
            ErrorClass::Throttled => format!("{service} throttled the request"),
            ErrorClass::UpstreamUnavailable => format!("{service} failed"),
            ErrorClass::InvalidResponse => {
                format!("{host} answered with an unexpected status")
            }
            _ => format!("{service} rejected the request"),
        };
        Self::from_details(Details {
            class,
            service,
            summary: bounded::cut_owned(summary, bounded::SUMMARY),
            status: Some(status),
            error_msg,
            error_code,
            request_id: request_id.map(|id| bounded::cut_owned(id, bounded::REQUEST_ID)),
            retry_after,
            attempts: 1,
        })
    }

    /// The same answer in another class, with the summary that class deserves: the exchange of
    /// an identity token reads IAM's statuses differently from a project lookup.
    pub(crate) fn reclassified(mut self, class: ErrorClass, summary: impl Into<String>) -> Self {
        self.inner.class = class;
        self.inner.summary = bounded::cut_owned(summary.into(), bounded::SUMMARY);
        self
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    pub(crate) fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.inner.request_id = request_id.map(|id| bounded::cut_owned(id, bounded::REQUEST_ID));
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.inner.attempts = attempts;
        self
    }

    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        self.inner.class
    }

    /// Shorthand for `self.class().reason()`.
    pub fn reason(&self) -> &'static str {
        self.inner.class.reason()
    }

    /// Shorthand for `self.class().is_permanent()`.
    pub fn is_permanent(&self) -> bool {
        self.inner.class.is_permanent()
    }

    /// The service called.
    pub fn service(&self) -> Service {
        self.inner.service
    }

    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// Huawei's `error_code` (e.g. `APIGW.0301`), when the body had one, cut to
    /// [`bounded::ERROR_CODE`] bytes.
    pub fn error_code(&self) -> Option<&str> {
        self.inner.error_code.as_deref()
    }

    /// Huawei's `error_msg`, scrubbed of secrets and cut to [`bounded::ERROR_MESSAGE`] bytes.
    pub fn error_msg(&self) -> Option<&str> {
        self.inner.error_msg.as_deref()
    }

    /// The `X-Request-Id` response header, for Huawei support, cut to [`bounded::REQUEST_ID`]
    /// bytes.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// How long the service asked to wait (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// How many requests were sent before giving up (1 when not retried).
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }
}

impl fmt::Display for ModelArtsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.summary)?;
        match (self.inner.status, self.inner.error_code.as_deref()) {
            (Some(status), Some(code)) => write!(f, " (HTTP {status}, {code})")?,
            (Some(status), None) => write!(f, " (HTTP {status})")?,
            (None, Some(code)) => write!(f, " ({code})")?,
            (None, None) => {}
        }
        if let Some(msg) = self.inner.error_msg.as_deref().filter(|m| !m.is_empty()) {
            write!(f, ": {msg}")?;
        }
        if let Some(id) = &self.inner.request_id {
            write!(f, " [request id {id}]")?;
        }
        if self.inner.attempts > 1 {
            write!(f, " after {} attempts", self.inner.attempts)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ModelArtsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::error::Error for ModelArtsError {}

fn code_is(code: Option<&str>, suffix: &str) -> bool {
    code.is_some_and(|c| {
        c.strip_prefix("APIGW.")
            .or_else(|| c.strip_prefix("APIG."))
            .is_some_and(|rest| rest == suffix)
    })
}

/// Whether a gateway authentication message is about the signing time rather than the key.
fn mentions_clock(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    (m.contains("x-sdk-date") || m.contains("request time") || m.contains("timestamp"))
        && !m.contains("verify aksk signature fail")
}

/// Whether a gateway authentication message says the (temporary) credentials expired.
fn mentions_expiry(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("expired") && (m.contains("token") || m.contains("credential"))
}

/// Maps an HTTP error answer to a class: the status first, refined by Huawei's error code.
pub(crate) fn classify(status: u16, code: Option<&str>, msg: Option<&str>) -> ErrorClass {
    if code_is(code, "0308") || status == 429 {
        return ErrorClass::Throttled;
    }
    if code_is(code, "0101") {
        return ErrorClass::ApiNotFound;
    }
    if code == Some("ModelArts.50015001") {
        return ErrorClass::ProjectNotFound;
    }
    match status {
        401 if msg.is_some_and(mentions_clock) => ErrorClass::ClockSkew,
        401 if msg.is_some_and(mentions_expiry) => ErrorClass::TemporaryCredentialsExpired,
        401 => ErrorClass::AuthenticationFailed,
        403 if code_is(code, "0301") => ErrorClass::AuthenticationFailed,
        403 => ErrorClass::AccessDenied,
        404 => ErrorClass::ProjectNotFound,
        300..=399 => ErrorClass::InvalidResponse,
        500..=599 => ErrorClass::UpstreamUnavailable,
        _ => ErrorClass::RequestRejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_classify_as_the_api_reference_says() {
        let cases = [
            (
                401,
                Some("APIGW.0301"),
                None,
                ErrorClass::AuthenticationFailed,
            ),
            (
                401,
                Some("ModelArts.0203"),
                None,
                ErrorClass::AuthenticationFailed,
            ),
            (403, None, None, ErrorClass::AccessDenied),
            (
                403,
                Some("APIG.0301"),
                None,
                ErrorClass::AuthenticationFailed,
            ),
            (404, Some("APIGW.0101"), None, ErrorClass::ApiNotFound),
            (
                404,
                Some("ModelArts.50015001"),
                None,
                ErrorClass::ProjectNotFound,
            ),
            (404, None, None, ErrorClass::ProjectNotFound),
            (429, Some("APIGW.0308"), None, ErrorClass::Throttled),
            (429, None, None, ErrorClass::Throttled),
            (400, Some("APIG.0308"), None, ErrorClass::Throttled),
            (
                500,
                Some("ModelArts.50005000"),
                None,
                ErrorClass::UpstreamUnavailable,
            ),
            (503, None, None, ErrorClass::UpstreamUnavailable),
            (
                400,
                Some("ModelArts.50004000"),
                None,
                ErrorClass::RequestRejected,
            ),
            (302, None, None, ErrorClass::InvalidResponse),
            (
                401,
                Some("APIGW.0301"),
                Some(
                    "Incorrect IAM authentication information: X-Sdk-Date is more than 15 minutes from the server time",
                ),
                ErrorClass::ClockSkew,
            ),
            (
                401,
                Some("APIGW.0301"),
                Some(
                    "Incorrect IAM authentication information: verify aksk signature fail, x-sdk-date:20240101T000000Z",
                ),
                ErrorClass::AuthenticationFailed,
            ),
        ];
        for (status, code, msg, expected) in cases {
            assert_eq!(
                classify(status, code, msg),
                expected,
                "{status} {code:?} {msg:?}"
            );
        }
    }

    #[test]
    fn reasons_are_unique_camel_case() {
        let mut seen = std::collections::HashSet::new();
        for class in ErrorClass::ALL {
            let r = class.reason();
            assert!(seen.insert(r), "duplicate {r}");
            assert!(r.chars().all(|c| c.is_ascii_alphanumeric()), "{r}");
            assert!(r.starts_with(|c: char| c.is_ascii_uppercase()), "{r}");
        }
    }

    #[test]
    fn authentication_is_permanent_and_never_retried() {
        for class in [
            ErrorClass::AuthenticationFailed,
            ErrorClass::AccessDenied,
            ErrorClass::ClockSkew,
        ] {
            assert!(class.is_permanent());
            assert!(!class.is_retried_by_client());
        }
        for class in [
            ErrorClass::Throttled,
            ErrorClass::UpstreamUnavailable,
            ErrorClass::Network,
            ErrorClass::Timeout,
        ] {
            assert!(!class.is_permanent());
            assert!(class.is_retried_by_client());
        }
        assert!(!ErrorClass::InvalidResponse.is_retried_by_client());
    }

    #[test]
    fn display_is_short_and_carries_status_code_message_and_request_id() {
        let err = ModelArtsError::from_status(
            Service::ModelArts,
            "modelarts.cn-north-4.myhuaweicloud.com",
            401,
            Some("APIGW.0301".into()),
            Some("Incorrect IAM authentication information: verify aksk signature fail".into()),
            Some("req-42".into()),
            None,
        );
        assert_eq!(
            err.to_string(),
            "ModelArts refused the access key (HTTP 401, APIGW.0301): Incorrect IAM authentication \
             information: verify aksk signature fail [request id req-42]"
        );
        assert_eq!(err.reason(), "AuthenticationFailed");
        assert_eq!(err.status(), Some(401));
        assert_eq!(err.request_id(), Some("req-42"));
    }

    #[test]
    fn locked_key_is_called_out() {
        let err = ModelArtsError::from_status(
            Service::ModelArts,
            "h",
            401,
            Some("APIGW.0301".into()),
            Some("Incorrect IAM authentication information: AK access failed to reach the limit,forbidden.".into()),
            None,
            None,
        );
        assert!(err.to_string().contains("locked for 5 minutes"), "{err}");
    }

    #[test]
    fn every_string_of_an_answer_is_cut_and_so_is_the_display() {
        let huge = "€".repeat(1 << 20);
        let err = ModelArtsError::from_status(
            Service::Iam,
            &"h".repeat(5000),
            500,
            Some(huge.clone()),
            Some(huge.clone()),
            Some(huge.clone()),
            None,
        );
        assert!(
            err.error_code()
                .is_some_and(|c| c.len() <= bounded::ERROR_CODE)
        );
        assert!(
            err.error_msg()
                .is_some_and(|m| m.len() <= bounded::ERROR_MESSAGE)
        );
        assert!(
            err.request_id()
                .is_some_and(|id| id.len() <= bounded::REQUEST_ID)
        );
        assert!(
            err.error_msg()
                .is_some_and(|m| m.ends_with(bounded::MARKER))
        );
        let err = err.with_request_id(Some(huge.clone()));
        assert!(
            err.request_id()
                .is_some_and(|id| id.len() <= bounded::REQUEST_ID)
        );
        let longest = bounded::SUMMARY
            + bounded::ERROR_CODE
            + bounded::ERROR_MESSAGE
            + bounded::REQUEST_ID
            + 64;
        assert!(
            err.to_string().len() <= longest,
            "{}",
            err.to_string().len()
        );
        let err = ModelArtsError::new(ErrorClass::Network, Service::ModelArts, huge.clone());
        assert!(err.to_string().len() <= bounded::SUMMARY);
        let err = err.reclassified(ErrorClass::Timeout, huge);
        assert!(err.to_string().len() <= bounded::SUMMARY);
    }
}
