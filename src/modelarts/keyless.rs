//! Keyless credentials: the exchanges that turn an identity into temporary keys, as Huawei's
//! SDKs make them (huaweicloudsdkcore's `FederalAccessor`, `PodIdentityAccessor` and
//! `MetadataAccessor`), through the client's timeouts, retries, bounded reads and redaction.
//!
//! - Federation: an OpenID Connect token (a Kubernetes ServiceAccount token) is exchanged at IAM
//!   for an unscoped IAM token (`POST /v3.0/OS-AUTH/id-token/tokens`, `X-Idp-Id`), which is
//!   exchanged for temporary keys (`POST /v3.0/OS-CREDENTIAL/securitytokens`).
//! - CCE Pod Identity: `POST` to the URI CCE gives the pod, with the pod's token.
//! - The ECS metadata service: the node's agency, IMDSv2-style session token first.
//!
//! Nothing here caches temporary keys: the callers do, and renew them before
//! [`TemporaryCredentials::renew_at`].

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::time::Instant;

use super::client::{Answer, Call, ModelArtsClient, Operation};
use super::endpoint::{Endpoint, EndpointError};
use super::error::{ErrorClass, ModelArtsError, Service};
use super::temporary::{TemporaryCredentials, parse_credential_answer};
use crate::lock::lock;

/// The lifetime asked of IAM for federated keys, as Huawei's SDKs ask (6 hours).
pub const FEDERATION_DURATION: Duration = Duration::from_secs(6 * 3600);
/// The IAM path that exchanges an identity token for an unscoped IAM token.
pub const ID_TOKEN_PATH: &str = "/v3.0/OS-AUTH/id-token/tokens";
/// The IAM path that exchanges an IAM token for temporary keys.
pub const SECURITY_TOKENS_PATH: &str = "/v3.0/OS-CREDENTIAL/securitytokens";
/// The ECS metadata service's session-token path.
pub const METADATA_TOKEN_PATH: &str = "/meta-data/latest/api/token";
/// The ECS metadata service's temporary-key path.
pub const METADATA_SECURITY_KEY_PATH: &str = "/openstack/latest/securitykey";
/// Where the ECS metadata service answers on every Huawei Cloud server.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";
/// Lifetime asked for a metadata session token (the SDK's 6 hours).
const METADATA_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);
/// How long a metadata service that offers no session tokens is believed (the SDK's 24 hours).
const METADATA_TOKENLESS_RECHECK: Duration = Duration::from_secs(24 * 3600);
/// Longest identity-provider id sent as `X-Idp-Id`.
const MAX_IDP_ID_CHARS: usize = 64;
/// Longest IAM token taken from `X-Subject-Token` (Huawei's are a few KiB). A secret cannot be
/// cut: a longer one is refused.
const MAX_IAM_TOKEN_BYTES: usize = 64 << 10;
/// Longest metadata session token kept (the service's are tens of bytes); a longer one is
/// refused, as it would be kept for hours.
const MAX_METADATA_TOKEN_BYTES: usize = 8 << 10;

/// One exchange of an identity token for temporary keys through an IAM identity provider.
#[derive(Clone, Copy)]
pub struct IdTokenExchange<'a> {
    /// The IAM endpoint, e.g. `https://iam.cn-north-4.myhuaweicloud.com`.
    pub iam_endpoint: &'a Endpoint,
    /// The identity provider's id, sent as `X-Idp-Id`.
    pub identity_provider_id: &'a str,
    /// The OpenID Connect token (a JWT whose audience is the provider's client id).
    pub id_token: &'a SecretString,
    /// The lifetime asked for the temporary keys (IAM accepts 15 min to 24 h).
    pub duration: Duration,
}

/// A URL of a node-local credential service (CCE Pod Identity), split into the endpoint the
/// client calls and the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUrl {
    /// `scheme://host[:port]`.
    pub endpoint: Endpoint,
    /// The path, with the query if any.
    pub path: String,
}

impl ServiceUrl {
    /// Parses an absolute `http(s)://` URL. Plain HTTP is accepted: these services listen on a
    /// link-local address of the node.
    pub fn parse(input: &str) -> Result<Self, EndpointError> {
        let url = url::Url::parse(input.trim()).map_err(|e| EndpointError::InvalidUrl {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        let origin = url.origin().ascii_serialization();
        let endpoint = Endpoint::parse(&origin, true)?;
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Self { endpoint, path })
    }
}

impl std::fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.endpoint, self.path)
    }
}

/// What the client remembers of the ECS metadata service between calls: its session token, or
/// that it offers none.
#[derive(Default)]
pub struct MetadataSession {
    state: Mutex<MetadataState>,
}

#[derive(Default)]
enum MetadataState {
    /// Not asked yet, or the token is to be renewed.
    #[default]
    Unknown,
    /// A session token and when it was obtained.
    Token(SecretString, Instant),
    /// The service offers no session tokens (404, 405 or 503): ask without, and look again
    /// after [`METADATA_TOKENLESS_RECHECK`].
    Tokenless(Instant),
}

impl MetadataSession {
    /// The session token to send, or `Err(())` when one must be asked for first.
    fn current(&self) -> Result<Option<SecretString>, ()> {
        match &*lock(&self.state) {
            MetadataState::Token(token, at)
                if at.elapsed() + Duration::from_secs(300) < METADATA_TOKEN_TTL =>
            {
                Ok(Some(token.clone()))
            }
            MetadataState::Tokenless(at) if at.elapsed() < METADATA_TOKENLESS_RECHECK => Ok(None),
            _ => Err(()),
        }
    }

    fn set(&self, state: MetadataState) {
        *lock(&self.state) = state;
    }
}

impl ModelArtsClient {
    /// Exchanges an identity token for temporary keys at IAM, in the two calls Huawei's SDKs
    /// make. A 404 means IAM knows no such identity provider; a refusal (400, 401, 403) means
    /// the token is not acceptable to it (audience, issuer, expiry, conversion rules).
    pub async fn exchange_id_token(
        &self,
        exchange: IdTokenExchange<'_>,
    ) -> Result<TemporaryCredentials, ModelArtsError> {
        let idp = exchange.identity_provider_id;
        let valid_idp = !idp.is_empty()
            && idp.chars().count() <= MAX_IDP_ID_CHARS
            && idp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_idp {
            return Err(ModelArtsError::new(
                ErrorClass::InvalidArgument,
                Service::Iam,
                format!(
                    "the identity provider id {idp:?} is not an IAM identity provider id (letters, digits, - and _, at most {MAX_IDP_ID_CHARS})"
                ),
            ));
        }
        let host = exchange.iam_endpoint.authority();
        let id_token = exchange.id_token.expose_secret();
        let body = json!({"auth": {"id_token": {"id": id_token}}}).to_string();
        let call = Call {
            headers: vec![("X-Idp-Id", idp)],
            body: body.into_bytes(),
            ..Call::unsigned(
                (Service::Iam, Operation::ExchangeIdToken),
                exchange.iam_endpoint,
                (reqwest::Method::POST, ID_TOKEN_PATH.to_owned()),
                vec![id_token],
                false,
            )
        };
        let answer = self.execute(&call).await.map_err(|e| {
            reclassify(
                e,
                format!(
                    "IAM refused the identity token for identity provider {idp:?}: the token's audience must be the provider's client id, its issuer the provider's URL, and a conversion rule must match its subject"
                ),
                (
                    ErrorClass::IdentityProviderNotFound,
                    format!(
                        "IAM at {host} knows no identity provider {idp:?}: check the identity provider id (IAM console > Identity Providers)"
                    ),
                ),
            )
        })?;
        let iam_token = subject_token(&answer).ok_or_else(|| {
            ModelArtsError::new(
                ErrorClass::InvalidResponse,
                Service::Iam,
                format!(
                    "IAM at {host} accepted the identity token but sent no usable X-Subject-Token (none, or longer than {MAX_IAM_TOKEN_BYTES} bytes)"
                ),
            )
            .with_status(answer.status)
            .with_request_id(answer.request_id.clone())
        })?;
        let body = json!({"auth": {"identity": {
            "methods": ["token"],
            "token": {"id": iam_token.expose_secret(), "duration_seconds": exchange.duration.as_secs()},
        }}})
        .to_string();
        let call = Call {
            body: body.into_bytes(),
            ..Call::unsigned(
                (Service::Iam, Operation::CreateTemporaryCredentials),
                exchange.iam_endpoint,
                (reqwest::Method::POST, SECURITY_TOKENS_PATH.to_owned()),
                vec![iam_token.expose_secret(), id_token],
                false,
            )
        };
        let answer = self.execute(&call).await.map_err(|e| {
            let refused = format!(
                "IAM refused to issue temporary keys for identity provider {idp:?}'s token"
            );
            reclassify(
                e,
                refused.clone(),
                (ErrorClass::TokenExchangeRefused, refused),
            )
        })?;
        self.credential_answer(Service::Iam, &host, &answer)
    }

    /// The temporary keys of the agency CCE Pod Identity binds to this pod: `POST` to `url` with
    /// the pod's token as `Authorization`, as Huawei's SDKs do.
    pub async fn pod_identity_credentials(
        &self,
        url: &ServiceUrl,
        authorization: &SecretString,
    ) -> Result<TemporaryCredentials, ModelArtsError> {
        let token = authorization.expose_secret();
        let host = url.endpoint.authority();
        let call = Call {
            headers: vec![("Authorization", token)],
            body: b"{}".to_vec(),
            ..Call::unsigned(
                (Service::PodIdentity, Operation::PodIdentityCredentials),
                &url.endpoint,
                (reqwest::Method::POST, url.path.clone()),
                vec![token],
                true,
            )
        };
        let answer = self.execute(&call).await.map_err(|e| {
            reclassify(
                e,
                format!(
                    "CCE Pod Identity at {host} refused the pod's token: check the Pod Identity association of poolwatch's ServiceAccount"
                ),
                (
                    ErrorClass::ApiNotFound,
                    format!("{host} does not serve CCE Pod Identity at {}", url.path),
                ),
            )
        })?;
        self.credential_answer(Service::PodIdentity, &host, &answer)
    }

    /// The temporary keys of the node's agency from the ECS metadata service at `endpoint`,
    /// with a session token when the service offers them (IMDSv2 style), as Huawei's SDKs do.
    pub async fn metadata_credentials(
        &self,
        endpoint: &Endpoint,
        session: &MetadataSession,
    ) -> Result<TemporaryCredentials, ModelArtsError> {
        let host = endpoint.authority();
        let token = match session.current() {
            Ok(token) => token,
            Err(()) => self.metadata_token(endpoint, session).await?,
        };
        let answer = match self.metadata_security_key(endpoint, token.as_ref()).await {
            // The session token may have been revoked or expired early: one new one, once.
            Err(e) if e.status() == Some(401) && token.is_some() => {
                session.set(MetadataState::Unknown);
                let token = self.metadata_token(endpoint, session).await?;
                self.metadata_security_key(endpoint, token.as_ref()).await
            }
            other => other,
        }
        .map_err(|e| {
            reclassify(
                e,
                format!(
                    "the ECS metadata service at {host} gave no temporary keys: give the node an agency (Cloud Service Agency) with the ModelArts permissions"
                ),
                (
                    ErrorClass::ApiNotFound,
                    format!(
                        "{host} does not serve the ECS metadata service: poolwatch does not run on a Huawei Cloud server, or the metadata endpoint is wrong"
                    ),
                ),
            )
        })?;
        self.credential_answer(Service::Metadata, &host, &answer)
    }

    /// Asks the metadata service for a session token and remembers the answer.
    async fn metadata_token(
        &self,
        endpoint: &Endpoint,
        session: &MetadataSession,
    ) -> Result<Option<SecretString>, ModelArtsError> {
        let ttl = METADATA_TOKEN_TTL.as_secs().to_string();
        let call = Call {
            headers: vec![("X-Metadata-Token-Ttl-Seconds", &ttl)],
            ..Call::unsigned(
                (Service::Metadata, Operation::MetadataToken),
                endpoint,
                (reqwest::Method::PUT, METADATA_TOKEN_PATH.to_owned()),
                Vec::new(),
                true,
            )
        };
        match self.execute(&call).await {
            Ok(answer) => {
                let text = String::from_utf8(answer.body).unwrap_or_default();
                let text = text.trim();
                if text.is_empty()
                    || text.len() > MAX_METADATA_TOKEN_BYTES
                    || !text.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(ModelArtsError::new(
                        ErrorClass::InvalidResponse,
                        Service::Metadata,
                        format!(
                            "the ECS metadata service at {} sent an unusable session token (empty, longer than {MAX_METADATA_TOKEN_BYTES} bytes, or not printable ASCII)",
                            endpoint.authority()
                        ),
                    ));
                }
                let token = SecretString::from(text.to_owned());
                session.set(MetadataState::Token(token.clone(), Instant::now()));
                Ok(Some(token))
            }
            // Older metadata services offer no session tokens: go on without, as the SDK does.
            Err(e) if matches!(e.status(), Some(404 | 405 | 503)) => {
                session.set(MetadataState::Tokenless(Instant::now()));
                Ok(None)
            }
            // Anything else is not Huawei's metadata service answering: say so, rather than
            // let a proxy's 403 read as a missing ModelArts permission.
            Err(e) => {
                let host = endpoint.authority();
                Err(reclassify(
                    e,
                    format!(
                        "{host} refused a metadata session token: it is not Huawei's ECS metadata service (a proxy or firewall in between?), or the metadata endpoint is wrong"
                    ),
                    (
                        ErrorClass::ApiNotFound,
                        format!("{host} does not serve the ECS metadata service"),
                    ),
                ))
            }
        }
    }

    async fn metadata_security_key(
        &self,
        endpoint: &Endpoint,
        token: Option<&SecretString>,
    ) -> Result<Answer, ModelArtsError> {
        let token = token.map(|t| t.expose_secret());
        let call = Call {
            headers: token
                .map(|t| vec![("X-Metadata-Token", t)])
                .unwrap_or_default(),
            ..Call::unsigned(
                (Service::Metadata, Operation::MetadataCredentials),
                endpoint,
                (reqwest::Method::GET, METADATA_SECURITY_KEY_PATH.to_owned()),
                token.into_iter().collect(),
                true,
            )
        };
        self.execute(&call).await
    }

    /// Reads temporary keys from a successful answer; an unusable one is an invalid response
    /// that says what was wrong.
    fn credential_answer(
        &self,
        service: Service,
        host: &str,
        answer: &Answer,
    ) -> Result<TemporaryCredentials, ModelArtsError> {
        let now = Timestamp::try_from(self.config().clock.now()).unwrap_or(Timestamp::UNIX_EPOCH);
        parse_credential_answer(&answer.body, now).map_err(|problem| {
            ModelArtsError::new(
                ErrorClass::InvalidResponse,
                service,
                format!("{service} at {host} sent unusable temporary keys: {problem}"),
            )
            .with_status(answer.status)
            .with_request_id(answer.request_id.clone())
        })
    }
}

/// An exchange's failure in the words of the exchange: a refusal of the identity shown (401,
/// 403, 400) becomes [`ErrorClass::TokenExchangeRefused`] with `refused` as summary, a 404 the
/// class and summary of `not_found`; anything else (5xx, network, throttling) stays as it is.
fn reclassify(
    error: ModelArtsError,
    refused: String,
    (not_found, not_found_summary): (ErrorClass, String),
) -> ModelArtsError {
    match error.class() {
        ErrorClass::AuthenticationFailed
        | ErrorClass::AccessDenied
        | ErrorClass::RequestRejected
        | ErrorClass::ClockSkew
        | ErrorClass::TemporaryCredentialsExpired => {
            error.reclassified(ErrorClass::TokenExchangeRefused, refused)
        }
        ErrorClass::ProjectNotFound => error.reclassified(not_found, not_found_summary),
        _ => error,
    }
}

/// IAM's token from the `X-Subject-Token` header, unless empty or longer than
/// [`MAX_IAM_TOKEN_BYTES`].
fn subject_token(answer: &Answer) -> Option<SecretString> {
    answer
        .headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_IAM_TOKEN_BYTES)
        .map(|t| SecretString::from(t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls_keep_their_path_and_allow_plain_http() {
        let url = ServiceUrl::parse("http://169.254.170.2/v1/credentials?x=1").unwrap();
        assert_eq!(url.endpoint.to_string(), "http://169.254.170.2");
        assert_eq!(url.path, "/v1/credentials?x=1");
        assert_eq!(url.to_string(), "http://169.254.170.2/v1/credentials?x=1");
        assert!(ServiceUrl::parse("not a url").is_err());
    }

    #[test]
    fn a_fresh_metadata_session_asks_for_a_token_first() {
        let session = MetadataSession::default();
        assert!(session.current().is_err());
        session.set(MetadataState::Tokenless(Instant::now()));
        assert!(matches!(session.current(), Ok(None)));
        session.set(MetadataState::Token(
            SecretString::from("t".to_owned()),
            Instant::now(),
        ));
        assert!(matches!(session.current(), Ok(Some(_))));
    }
}
