//! Huawei Cloud's keyless-credential side, simulated: the places a workload without a stored
//! access key gets temporary credentials (AK, SK and security token) from, wire-compatible with
//! Huawei's SDKs (`huaweicloudsdkcore`'s `FederalAccessor`, `PodIdentityAccessor` and
//! `MetadataAccessor`):
//!
//! - IAM federation: `POST /v3.0/OS-AUTH/id-token/tokens` exchanges an OIDC id_token (a
//!   Kubernetes ServiceAccount token, RS256) for an IAM token, checked against the configured
//!   identity provider's issuer, client id, JWKS and mapping rules; then
//!   `POST /v3.0/OS-CREDENTIAL/securitytokens` exchanges the IAM token for temporary credentials.
//! - CCE Pod Identity: `POST /v1/pod-identity/credentials` with the agent's authorization token.
//! - ECS metadata: `PUT /meta-data/latest/api/token` for a session token, then
//!   `GET /openstack/latest/securitykey`.
//!
//! Issued credentials are remembered (bounded) so that the gateway accepts them, limited to the
//! projects their source allows, until they expire. No token, secret key or security token is
//! ever written to a log line or an error message.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::server::{App, json_body, with_request_id};
use super::setup::IdentityProviderConfig;

/// Most IAM tokens, issued credentials and metadata session tokens each kept at once: a client
/// asking in a loop cannot grow the simulator's memory without bound.
pub(crate) const MAX_ISSUED: usize = 100_000;

/// How long an expired credential is still recognised, so that using it is answered "the
/// security token has expired" rather than "ak not exist".
const EXPIRED_RETENTION: Duration = Duration::from_secs(60 * 60);

/// Lifetime of IAM tokens when `temporaryCredentialsTtl` is unset (as IAM's).
const IAM_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Lifetime of Pod Identity and metadata credentials when `temporaryCredentialsTtl` is unset
/// (what the SDKs ask federation for, so every path behaves alike).
const SERVICE_CREDENTIAL_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// The `duration_seconds` IAM accepts for `POST /v3.0/OS-CREDENTIAL/securitytokens`.
const DURATION_SECONDS: RangeInclusive<u64> = 900..=86_400;

/// The `duration_seconds` IAM assumes when the request names none.
const DEFAULT_DURATION_SECONDS: u64 = 900;

/// The `X-Metadata-Token-Ttl-Seconds` the metadata service accepts.
const METADATA_TOKEN_TTL_SECONDS: RangeInclusive<u64> = 1..=21_600;

/// Upper-case letters and digits, as Huawei access key ids are made of.
const AK_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Letters and digits, for secrets and opaque tokens.
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Why an id_token was refused. Each names the failed check and nothing of the token but its
/// key id, which is public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdTokenRejection {
    /// Not three base64url parts with a JSON header.
    NotAJwt,
    /// Signed with another algorithm than RS256.
    Algorithm,
    /// The header has no `kid`.
    NoKeyId,
    /// No key of the JWKS has this `kid`.
    UnknownKeyId(String),
    /// The JWKS is not a JWK set.
    Jwks,
    /// The key with this `kid` is not an RS256 RSA key.
    UnusableKey(String),
    /// The signature does not verify with the key of this `kid`.
    Signature(String),
    /// The payload is not a JSON object.
    Claims,
    /// `iss` is not the identity provider's issuer.
    Issuer,
    /// `aud` does not name the identity provider's client id.
    Audience,
    /// No numeric `exp`.
    NoExpiry,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future (or not a number).
    NotYetValid,
    /// No non-empty `sub`.
    NoSubject,
}

/// A key id as it may appear in a message: bounded, since the client chose it.
fn shown_kid(kid: &str) -> String {
    kid.chars().take(64).collect()
}

impl std::fmt::Display for IdTokenRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAJwt => f.write_str(
                "the id_token is not a signed JWT (base64url header.payload.signature with a \
                 JSON header naming a known algorithm)",
            ),
            Self::Algorithm => f.write_str("the id_token is not signed with RS256"),
            Self::NoKeyId => f.write_str("the id_token's header names no key id (kid)"),
            Self::UnknownKeyId(kid) => write!(
                f,
                "the id_token's key id {:?} is not in the identity provider's JWKS",
                shown_kid(kid)
            ),
            Self::Jwks => f.write_str("the identity provider's JWKS is not a JWK set"),
            Self::UnusableKey(kid) => write!(
                f,
                "the identity provider's JWKS key {:?} is not an RS256 RSA key",
                shown_kid(kid)
            ),
            Self::Signature(kid) => write!(
                f,
                "the id_token's signature does not verify with the identity provider's key {:?}",
                shown_kid(kid)
            ),
            Self::Claims => f.write_str("the id_token's payload is not a JSON object of claims"),
            Self::Issuer => {
                f.write_str("the id_token's issuer is not the identity provider's issuer")
            }
            Self::Audience => {
                f.write_str("the id_token's audience is not the identity provider's client id")
            }
            Self::NoExpiry => f.write_str("the id_token has no expiry time (exp)"),
            Self::Expired => f.write_str("the id_token has expired (exp)"),
            Self::NotYetValid => f.write_str("the id_token is not valid yet (nbf)"),
            Self::NoSubject => f.write_str("the id_token has no subject (sub)"),
        }
    }
}

/// Seconds since the epoch, fractional, as JWT times are compared.
fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Verifies an id_token as IAM does for an OIDC identity provider: RS256 with the JWKS key its
/// `kid` names, then `iss`, `aud`, `exp` and `nbf` against `now` (no leeway: the simulator's
/// clock is the only one). Returns the subject.
pub(crate) fn verify_id_token(
    idp: &IdentityProviderConfig,
    token: &str,
    now: SystemTime,
) -> Result<String, IdTokenRejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenRejection::NotAJwt)?;
    if header.alg != Algorithm::RS256 {
        return Err(IdTokenRejection::Algorithm);
    }
    let kid = header.kid.ok_or(IdTokenRejection::NoKeyId)?;
    let jwks: JwkSet =
        serde_json::from_value(idp.jwks.clone()).map_err(|_| IdTokenRejection::Jwks)?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| IdTokenRejection::UnknownKeyId(kid.clone()))?;
    let usable = matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
        && jwk
            .common
            .key_algorithm
            .is_none_or(|alg| alg == KeyAlgorithm::RS256);
    let key = DecodingKey::from_jwk(jwk)
        .ok()
        .filter(|_| usable)
        .ok_or_else(|| IdTokenRejection::UnusableKey(kid.clone()))?;
    // The library checks the signature only: the times are checked below against the
    // simulator's clock, which tests move, and the claims one by one to name the failed check.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = match jsonwebtoken::decode::<Value>(token, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    IdTokenRejection::Signature(kid)
                }
                jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => {
                    IdTokenRejection::UnusableKey(kid)
                }
                jsonwebtoken::errors::ErrorKind::Json(_) => IdTokenRejection::Claims,
                _ => IdTokenRejection::NotAJwt,
            });
        }
    };
    if !claims.is_object() {
        return Err(IdTokenRejection::Claims);
    }
    if claims["iss"].as_str() != Some(idp.issuer.as_str()) {
        return Err(IdTokenRejection::Issuer);
    }
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => *aud == idp.client_id,
        Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(&idp.client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(IdTokenRejection::Audience);
    }
    let now = unix_seconds(now);
    let exp = claims["exp"].as_f64().ok_or(IdTokenRejection::NoExpiry)?;
    if exp <= now {
        return Err(IdTokenRejection::Expired);
    }
    match &claims["nbf"] {
        Value::Null => {}
        nbf => {
            if nbf.as_f64().is_none_or(|nbf| nbf > now) {
                return Err(IdTokenRejection::NotYetValid);
            }
        }
    }
    match claims["sub"].as_str() {
        Some(sub) if !sub.is_empty() => Ok(sub.to_owned()),
        _ => Err(IdTokenRejection::NoSubject),
    }
}

/// The projects `subject` may read through `idp`: the union over the rules that match it, or
/// `None` when no rule does.
pub(crate) fn allowed_projects(idp: &IdentityProviderConfig, subject: &str) -> Option<Vec<String>> {
    let mut matched = false;
    let mut projects: Vec<String> = Vec::new();
    for rule in idp.rules.iter().filter(|rule| rule.matches(subject)) {
        matched = true;
        for project in &rule.projects {
            if !projects.contains(project) {
                projects.push(project.clone());
            }
        }
    }
    matched.then_some(projects)
}

/// An IAM token issued for a federated subject.
#[derive(Clone)]
pub(crate) struct IamToken {
    /// The id_token's `sub`.
    pub subject: String,
    /// The identity provider it came through.
    pub idp: String,
    /// What the mapping rules allow.
    pub projects: Vec<String>,
    /// When it stops working.
    pub expires_at: SystemTime,
}

/// Temporary credentials the simulator issued.
#[derive(Clone)]
pub(crate) struct IssuedCredential {
    /// The secret access key.
    pub secret_access_key: String,
    /// The security token that must accompany (and be signed with) the access key.
    pub security_token: String,
    /// Who holds them, for error messages: "federated user X of identity provider Y", etc.
    pub principal: String,
    /// The project ids they may read statistics of.
    pub projects: Vec<String>,
    /// When they stop working.
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for IssuedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("secret_access_key", &"[REDACTED]")
            .field("security_token", &"[REDACTED]")
            .field("principal", &self.principal)
            .field("projects", &self.projects)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Everything issued: IAM tokens, temporary credentials by access key id, metadata session
/// tokens. Each table holds at most [`MAX_ISSUED`] entries.
#[derive(Default)]
pub(crate) struct Issued {
    iam_tokens: HashMap<String, IamToken>,
    credentials: HashMap<String, IssuedCredential>,
    metadata_tokens: HashMap<String, SystemTime>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are tokens: only the sizes.
        f.debug_struct("Issued")
            .field("iam_tokens", &self.iam_tokens.len())
            .field("credentials", &self.credentials.len())
            .field("metadata_tokens", &self.metadata_tokens.len())
            .finish()
    }
}

/// Inserts into a bounded table. Entries expired for longer than [`EXPIRED_RETENTION`] are
/// pruned every 1024 inserts; at the cap, every expired entry goes, then the one expiring first.
fn insert_bounded<V>(
    table: &mut HashMap<String, V>,
    key: String,
    value: V,
    now: SystemTime,
    expiry: impl Fn(&V) -> SystemTime,
) {
    if table.len().is_multiple_of(1024) {
        table.retain(|_, v| expiry(v) + EXPIRED_RETENTION > now);
    }
    if table.len() >= MAX_ISSUED {
        table.retain(|_, v| expiry(v) > now);
    }
    if table.len() >= MAX_ISSUED
        && let Some(first) = table
            .iter()
            .min_by_key(|(_, v)| expiry(v))
            .map(|(k, _)| k.clone())
    {
        table.remove(&first);
    }
    table.insert(key, value);
}

impl Issued {
    /// Remembers an IAM token.
    pub fn add_iam_token(&mut self, token: String, value: IamToken, now: SystemTime) {
        insert_bounded(&mut self.iam_tokens, token, value, now, |t| t.expires_at);
    }

    /// The IAM token, if known and not expired at `now`.
    pub fn iam_token(&self, token: &str, now: SystemTime) -> Option<IamToken> {
        self.iam_tokens
            .get(token)
            .filter(|t| t.expires_at > now)
            .cloned()
    }

    /// Remembers temporary credentials under their access key id.
    pub fn add_credential(
        &mut self,
        access_key_id: String,
        value: IssuedCredential,
        now: SystemTime,
    ) {
        insert_bounded(&mut self.credentials, access_key_id, value, now, |c| {
            c.expires_at
        });
    }

    /// The temporary credentials of an access key id, expired or not (the gateway tells the
    /// two apart in its answer).
    pub fn credential(&self, access_key_id: &str) -> Option<IssuedCredential> {
        self.credentials.get(access_key_id).cloned()
    }

    /// Remembers a metadata session token.
    pub fn add_metadata_token(&mut self, token: String, expires_at: SystemTime, now: SystemTime) {
        insert_bounded(&mut self.metadata_tokens, token, expires_at, now, |t| *t);
    }

    /// Whether a metadata session token is known and not expired at `now`.
    pub fn metadata_token_valid(&self, token: &str, now: SystemTime) -> bool {
        self.metadata_tokens.get(token).is_some_and(|t| *t > now)
    }

    /// Every secret issued and still remembered (IAM tokens, secret keys, security tokens,
    /// metadata session tokens), for tests that prove none of them leaks.
    pub fn secrets(&self) -> Vec<String> {
        self.iam_tokens
            .keys()
            .chain(self.metadata_tokens.keys())
            .cloned()
            .chain(
                self.credentials
                    .values()
                    .flat_map(|c| [c.secret_access_key.clone(), c.security_token.clone()]),
            )
            .collect()
    }

    /// How many of each are remembered: IAM tokens, credentials, metadata tokens.
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.iam_tokens.len(),
            self.credentials.len(),
            self.metadata_tokens.len(),
        )
    }
}

/// `len` characters of `alphabet`, from the system's secure random source.
fn random_text(len: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0_u8; len];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Never seen; a simulator's tokens need not be unguessable to be useful.
        bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
    bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

/// A time as Huawei's credential answers write it and the SDKs parse it
/// (`%Y-%m-%dT%H:%M:%S.%fZ`): `2026-11-30T06:00:00.000000Z`.
pub(crate) fn credential_time(time: SystemTime) -> String {
    let at = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!(
        "{}.{:06}Z",
        at.strftime("%Y-%m-%dT%H:%M:%S"),
        at.subsec_microsecond().max(0)
    )
}

/// A header's value as text, if present and readable.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// An IAM (Keystone-style) error: `{"error": {"code", "message", "title"}}`.
fn iam_error(status: u16, message: &str, request_id: &str) -> (u16, Response) {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = code.canonical_reason().unwrap_or("Error");
    let body = json!({"error": {"code": status, "message": message, "title": title}});
    (status, json_body(code, &body, request_id))
}

/// The answer of an endpoint whose source is not configured.
fn not_served(what: &str, request_id: &str) -> (u16, Response) {
    iam_error(
        404,
        &format!("{what} is not served by this simulator (not configured)"),
        request_id,
    )
}

/// Issues temporary credentials and remembers them; returns `(access key id, credential)`.
fn issue(
    app: &App,
    principal: String,
    projects: Vec<String>,
    lifetime: Duration,
) -> (String, IssuedCredential) {
    let now = app.clock.now();
    let access_key_id = random_text(20, AK_ALPHABET);
    let credential = IssuedCredential {
        secret_access_key: random_text(40, TOKEN_ALPHABET),
        security_token: random_text(320, TOKEN_ALPHABET),
        principal,
        projects,
        expires_at: now + lifetime,
    };
    let stored = credential.clone();
    app.state
        .issued(|i| i.add_credential(access_key_id.clone(), stored, now));
    (access_key_id, credential)
}

/// `POST /v3.0/OS-AUTH/id-token/tokens`: an OIDC id_token for an unscoped IAM token.
pub(crate) fn id_token(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> (u16, Response) {
    let Some(idp_id) = header_text(headers, "x-idp-id") else {
        return iam_error(400, "the X-Idp-Id header is missing", request_id);
    };
    // serde's messages can quote the input, which holds the token: fixed messages only.
    let token = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["auth"]["id_token"]["id"].as_str().map(str::to_owned));
    let Some(token) = token else {
        return iam_error(
            400,
            "the request body is not {\"auth\": {\"id_token\": {\"id\": \"<JWT>\"}}}",
            request_id,
        );
    };
    let Some((idp, ttl)) = app.state.read_setup(|s| {
        s.identity_providers
            .iter()
            .find(|p| p.id == idp_id)
            .map(|p| (p.clone(), s.temporary_credentials_ttl))
    }) else {
        return iam_error(
            404,
            &format!("the identity provider {idp_id:?} does not exist"),
            request_id,
        );
    };
    let now = app.clock.now();
    let subject = match verify_id_token(&idp, &token, now) {
        Ok(subject) => subject,
        Err(rejection) => {
            tracing::info!(idp = %idp.id, "refused an id_token: {rejection}");
            return iam_error(401, &rejection.to_string(), request_id);
        }
    };
    let Some(projects) = allowed_projects(&idp, &subject) else {
        tracing::info!(idp = %idp.id, %subject, "no mapping rule for the subject");
        return iam_error(
            403,
            &format!(
                "no mapping rule of the identity provider {:?} matches the subject {subject:?}",
                idp.id
            ),
            request_id,
        );
    };
    let expires_at = now + ttl.unwrap_or(IAM_TOKEN_TTL);
    let iam_token = format!("MII{}", random_text(400, TOKEN_ALPHABET));
    let body = json!({"token": {
        "expires_at": credential_time(expires_at),
        "issued_at": credential_time(now),
        "methods": ["mapped"],
        "user": {
            "name": subject,
            "OS-FEDERATION": {
                "identity_provider": {"id": idp.id},
                "protocol": {"id": "oidc"},
                "groups": [],
            },
        },
    }});
    app.state.issued(|i| {
        i.add_iam_token(
            iam_token.clone(),
            IamToken {
                subject,
                idp: idp.id.clone(),
                projects,
                expires_at,
            },
            now,
        );
    });
    let mut response = json_body(StatusCode::CREATED, &body, request_id);
    if let Ok(v) = HeaderValue::from_str(&iam_token) {
        response.headers_mut().insert("x-subject-token", v);
    }
    (201, response)
}

/// `POST /v3.0/OS-CREDENTIAL/securitytokens`: an IAM token for temporary credentials.
pub(crate) fn security_token(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> (u16, Response) {
    const SHAPE: &str = "the request body is not {\"auth\": {\"identity\": {\"methods\": \
                         [\"token\"], \"token\": {\"id\": \"<IAM token>\", \"duration_seconds\": N}}}}";
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return iam_error(400, SHAPE, request_id);
    };
    let identity = &request["auth"]["identity"];
    let token_method = identity["methods"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m == "token"));
    // The token may come in the body or, as for other IAM calls, in X-Auth-Token.
    let token = identity["token"]["id"]
        .as_str()
        .or_else(|| header_text(headers, "x-auth-token"));
    let (true, Some(token)) = (token_method, token) else {
        return iam_error(400, SHAPE, request_id);
    };
    let duration = match &identity["token"]["duration_seconds"] {
        Value::Null => Some(DEFAULT_DURATION_SECONDS),
        v => v.as_u64(),
    };
    let Some(duration) = duration.filter(|d| DURATION_SECONDS.contains(d)) else {
        return iam_error(
            400,
            &format!(
                "duration_seconds must be a whole number from {} to {}",
                DURATION_SECONDS.start(),
                DURATION_SECONDS.end()
            ),
            request_id,
        );
    };
    let now = app.clock.now();
    let Some(iam_token) = app.state.issued(|i| i.iam_token(token, now)) else {
        return iam_error(
            401,
            "the IAM token is unknown or has expired; get a new one",
            request_id,
        );
    };
    let ttl = app
        .state
        .read_setup(|s| s.temporary_credentials_ttl)
        .unwrap_or(Duration::from_secs(duration));
    let principal = format!(
        "the federated user {:?} of identity provider {:?}",
        iam_token.subject, iam_token.idp
    );
    let (access, credential) = issue(app, principal, iam_token.projects, ttl);
    let body = json!({"credential": {
        "access": access,
        "secret": credential.secret_access_key,
        "securitytoken": credential.security_token,
        "expires_at": credential_time(credential.expires_at),
    }});
    (201, json_body(StatusCode::CREATED, &body, request_id))
}

/// `POST /v1/pod-identity/credentials`: the Pod Identity agent's temporary credentials.
pub(crate) fn pod_identity(app: &App, headers: &HeaderMap, request_id: &str) -> (u16, Response) {
    let Some((config, ttl)) = app.state.read_setup(|s| {
        s.pod_identity
            .clone()
            .map(|p| (p, s.temporary_credentials_ttl))
    }) else {
        return not_served("Pod Identity", request_id);
    };
    let sent = header_text(headers, header::AUTHORIZATION.as_str()).unwrap_or_default();
    let authorized = aws_lc_rs::constant_time::verify_slices_are_equal(
        sent.as_bytes(),
        config.authorization_token.as_bytes(),
    )
    .is_ok();
    if !authorized {
        return iam_error(
            401,
            "the Authorization header is missing or is not the Pod Identity authorization token",
            request_id,
        );
    }
    let (access, credential) = issue(
        app,
        "the Pod Identity credentials".to_owned(),
        config.projects,
        ttl.unwrap_or(SERVICE_CREDENTIAL_TTL),
    );
    // The camelCase spelling, which the SDKs accept besides IAM's.
    let body = json!({"credentials": {
        "accessKeyId": access,
        "secretAccessKey": credential.secret_access_key,
        "securityToken": credential.security_token,
        "expiration": credential_time(credential.expires_at),
    }});
    (200, json_body(StatusCode::OK, &body, request_id))
}

/// `PUT /meta-data/latest/api/token`: a metadata session token (IMDSv2-style), as plain text.
pub(crate) fn metadata_token(app: &App, headers: &HeaderMap, request_id: &str) -> (u16, Response) {
    if app.state.read_setup(|s| s.metadata.is_none()) {
        return not_served("The ECS metadata service", request_id);
    }
    let ttl = header_text(headers, "x-metadata-token-ttl-seconds")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|t| METADATA_TOKEN_TTL_SECONDS.contains(t));
    let Some(ttl) = ttl else {
        return iam_error(
            400,
            &format!(
                "X-Metadata-Token-Ttl-Seconds must be a whole number from {} to {}",
                METADATA_TOKEN_TTL_SECONDS.start(),
                METADATA_TOKEN_TTL_SECONDS.end()
            ),
            request_id,
        );
    };
    let now = app.clock.now();
    let token = random_text(64, TOKEN_ALPHABET);
    let expires_at = now + Duration::from_secs(ttl);
    app.state
        .issued(|i| i.add_metadata_token(token.clone(), expires_at, now));
    let mut response = Response::new(Body::from(token));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    (200, with_request_id(response, request_id))
}

/// `GET /openstack/latest/securitykey`: the instance agency's temporary credentials.
pub(crate) fn metadata_security_key(
    app: &App,
    headers: &HeaderMap,
    request_id: &str,
) -> (u16, Response) {
    let Some((config, ttl)) = app
        .state
        .read_setup(|s| s.metadata.clone().map(|m| (m, s.temporary_credentials_ttl)))
    else {
        return not_served("The ECS metadata service", request_id);
    };
    if config.require_token {
        let now = app.clock.now();
        let valid = header_text(headers, "x-metadata-token")
            .is_some_and(|t| app.state.issued(|i| i.metadata_token_valid(t, now)));
        if !valid {
            return iam_error(401, "Invalid metadata token", request_id);
        }
    }
    let (access, credential) = issue(
        app,
        "the ECS instance's agency".to_owned(),
        config.projects,
        ttl.unwrap_or(SERVICE_CREDENTIAL_TTL),
    );
    let body = json!({"credential": {
        "access": access,
        "secret": credential.secret_access_key,
        "securitytoken": credential.security_token,
        "expires_at": credential_time(credential.expires_at),
    }});
    (200, json_body(StatusCode::OK, &body, request_id))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};

    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
    use axum::body::Body;
    use axum::extract::State as AxumState;
    use axum::http::Request;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::modelarts::Clock;
    use crate::modelarts::signer::{self, RequestToSign, SdkDate};
    use crate::simulator::server::gateway;
    use crate::simulator::setup::{
        FederationRule, MetadataConfig, PodIdentityConfig, ProjectConfig, SimulatedCounts,
        SimulatorSetup,
    };
    use crate::simulator::state::State as SimState;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
    const CLIENT_ID: &str = "modelarts";
    const SUBJECT: &str = "system:serviceaccount:team-a:modelarts-reader";
    const KID: &str = "key-1";
    const PROJECT: &str = "0123456789abcdef0123456789abcdef";
    const OTHER_PROJECT: &str = "fedcba9876543210fedcba9876543210";
    /// 2026-01-01T00:00:00Z, the tests' "now".
    const NOW: u64 = 1_767_225_600;

    /// One RSA key per test process: generating one takes a while.
    fn key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::generate(KeySize::Rsa2048).expect("an RSA key"))
    }

    /// Another key, for signatures the identity provider must refuse.
    fn other_key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::generate(KeySize::Rsa2048).expect("an RSA key"))
    }

    fn jwks(key: &KeyPair, kid: &str) -> Value {
        let public = key.public_key();
        json!({"keys": [{
            "use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }]})
    }

    fn sign_jwt(key: &KeyPair, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0_u8; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .expect("signed");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": [CLIENT_ID, "https://kubernetes.default.svc"],
            "sub": SUBJECT, "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600,
        })
    }

    fn header() -> Value {
        json!({"alg": "RS256", "kid": KID, "typ": "JWT"})
    }

    fn idp() -> IdentityProviderConfig {
        IdentityProviderConfig {
            id: "cluster-a".to_owned(),
            issuer: ISSUER.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            jwks: jwks(key(), KID),
            rules: vec![FederationRule {
                subject: "system:serviceaccount:team-a:*".to_owned(),
                projects: vec![PROJECT.to_owned()],
            }],
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256, failure_persistence: None, ..Default::default()
        })]

        /// Whatever a client sends as its id_token, the verifier answers without panicking,
        /// and accepts nothing but a token signed with the provider's key.
        #[test]
        fn arbitrary_tokens_never_panic_and_are_refused(
            parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,40}", 0..5),
            header in proptest::prelude::any::<bool>(),
        ) {
            let mut token = parts.join(".");
            if header {
                // A well-formed header, so the claims and signature checks are reached.
                token = format!("{}.{token}", URL_SAFE_NO_PAD.encode(super::tests::header().to_string()));
            }
            proptest::prop_assert!(verify_id_token(&idp(), &token, now()).is_err());
        }

        /// Claims of any shape signed with the right key: no panic, and only a subject that the
        /// claims really carry is ever returned.
        #[test]
        fn arbitrary_signed_claims_never_panic(
            iss in proptest::option::of("\\PC{0,12}"),
            aud in proptest::option::of("\\PC{0,12}"),
            exp in proptest::prelude::any::<i64>(),
            sub in proptest::option::of("\\PC{0,12}"),
        ) {
            let claims = json!({"iss": iss, "aud": aud, "exp": exp, "sub": sub});
            if let Ok(subject) = verify_with(&claims) {
                proptest::prop_assert_eq!(Some(subject), sub);
            }
        }
    }

    fn verify_with(claims: &Value) -> Result<String, IdTokenRejection> {
        verify_id_token(&idp(), &sign_jwt(key(), &header(), claims), now())
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        if value.is_null() {
            claims.as_object_mut().map(|c| c.remove(name));
        } else {
            claims[name] = value;
        }
        claims
    }

    #[test]
    fn a_valid_token_names_its_subject() {
        assert_eq!(verify_with(&claims()), Ok(SUBJECT.to_owned()));
        // A single audience as a string, no nbf.
        let single = with(with(claims(), "aud", json!(CLIENT_ID)), "nbf", Value::Null);
        assert_eq!(verify_with(&single), Ok(SUBJECT.to_owned()));
    }

    #[test]
    fn every_claim_check_has_its_own_refusal() {
        let cases = [
            (
                with(claims(), "iss", json!("https://evil")),
                IdTokenRejection::Issuer,
            ),
            (with(claims(), "iss", Value::Null), IdTokenRejection::Issuer),
            (
                with(claims(), "aud", json!("other")),
                IdTokenRejection::Audience,
            ),
            (
                with(claims(), "aud", json!(["a", "b"])),
                IdTokenRejection::Audience,
            ),
            (
                with(claims(), "aud", Value::Null),
                IdTokenRejection::Audience,
            ),
            (
                with(claims(), "exp", Value::Null),
                IdTokenRejection::NoExpiry,
            ),
            (
                with(claims(), "exp", json!("soon")),
                IdTokenRejection::NoExpiry,
            ),
            (with(claims(), "exp", json!(NOW)), IdTokenRejection::Expired),
            (
                with(claims(), "exp", json!(NOW - 1)),
                IdTokenRejection::Expired,
            ),
            (
                with(claims(), "nbf", json!(NOW + 1)),
                IdTokenRejection::NotYetValid,
            ),
            (
                with(claims(), "nbf", json!("x")),
                IdTokenRejection::NotYetValid,
            ),
            (
                with(claims(), "sub", Value::Null),
                IdTokenRejection::NoSubject,
            ),
            (
                with(claims(), "sub", json!("")),
                IdTokenRejection::NoSubject,
            ),
            (json!(["not", "an", "object"]), IdTokenRejection::Claims),
        ];
        for (claims, want) in cases {
            assert_eq!(verify_with(&claims), Err(want.clone()), "{claims}");
        }
        // nbf exactly now is valid.
        let at_now = with(claims(), "nbf", json!(NOW));
        assert_eq!(verify_with(&at_now), Ok(SUBJECT.to_owned()));
    }

    #[test]
    fn header_key_and_signature_failures_are_named() {
        let token = sign_jwt(key(), &header(), &claims());
        let check = |token: &str| verify_id_token(&idp(), token, now());
        assert_eq!(check("not-a-jwt"), Err(IdTokenRejection::NotAJwt));
        assert_eq!(check("a.b.c"), Err(IdTokenRejection::NotAJwt));
        let hs256 = sign_jwt(key(), &json!({"alg": "HS256", "kid": KID}), &claims());
        assert_eq!(check(&hs256), Err(IdTokenRejection::Algorithm));
        let no_kid = sign_jwt(key(), &json!({"alg": "RS256"}), &claims());
        assert_eq!(check(&no_kid), Err(IdTokenRejection::NoKeyId));
        let unknown = sign_jwt(key(), &json!({"alg": "RS256", "kid": "key-2"}), &claims());
        assert_eq!(
            check(&unknown),
            Err(IdTokenRejection::UnknownKeyId("key-2".to_owned()))
        );
        let forged = sign_jwt(other_key(), &header(), &claims());
        assert_eq!(
            check(&forged),
            Err(IdTokenRejection::Signature(KID.to_owned()))
        );
        // A changed payload under the original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let changed = with(claims(), "sub", json!("system:serviceaccount:team-a:admin"));
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(changed.to_string()),
            parts[2]
        );
        assert_eq!(
            check(&tampered),
            Err(IdTokenRejection::Signature(KID.to_owned()))
        );
        let mut ec_idp = idp();
        ec_idp.jwks = json!({"keys": [{"kty": "EC", "kid": KID, "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        assert_eq!(
            verify_id_token(&ec_idp, &token, now()),
            Err(IdTokenRejection::UnusableKey(KID.to_owned()))
        );
        let mut broken = idp();
        broken.jwks = json!({"keys": "none"});
        assert_eq!(
            verify_id_token(&broken, &token, now()),
            Err(IdTokenRejection::Jwks)
        );
    }

    #[test]
    fn refusals_never_quote_the_token() {
        let token = sign_jwt(key(), &header(), &with(claims(), "aud", json!("x")));
        let refusal = verify_id_token(&idp(), &token, now()).expect_err("refused");
        let text = refusal.to_string();
        assert!(text.contains("audience"), "{text}");
        for part in token.split('.') {
            assert!(!text.contains(part), "{text}");
        }
    }

    #[test]
    fn rules_match_exactly_or_by_prefix_and_add_up() {
        let mut idp = idp();
        idp.rules = vec![
            FederationRule {
                subject: "system:serviceaccount:team-a:*".to_owned(),
                projects: vec![PROJECT.to_owned()],
            },
            FederationRule {
                subject: SUBJECT.to_owned(),
                projects: vec![OTHER_PROJECT.to_owned(), PROJECT.to_owned()],
            },
            FederationRule {
                subject: "system:serviceaccount:team-b:reader".to_owned(),
                projects: vec![],
            },
        ];
        assert_eq!(
            allowed_projects(&idp, SUBJECT),
            Some(vec![PROJECT.to_owned(), OTHER_PROJECT.to_owned()])
        );
        assert_eq!(
            allowed_projects(&idp, "system:serviceaccount:team-a:other"),
            Some(vec![PROJECT.to_owned()])
        );
        assert_eq!(
            allowed_projects(&idp, "system:serviceaccount:team-b:reader"),
            Some(vec![])
        );
        assert_eq!(
            allowed_projects(&idp, "system:serviceaccount:team-b:reader2"),
            None
        );
        assert_eq!(allowed_projects(&idp, "system:serviceaccount:team-"), None);
    }

    #[test]
    fn credential_times_parse_with_the_sdks_format() {
        let at = UNIX_EPOCH + Duration::new(1_796_018_400, 123_456_789);
        assert_eq!(credential_time(at), "2026-11-30T06:00:00.123456Z");
        let whole = UNIX_EPOCH + Duration::from_secs(1_796_018_400);
        assert_eq!(credential_time(whole), "2026-11-30T06:00:00.000000Z");
    }

    #[test]
    fn issued_tables_stay_bounded() {
        let mut issued = Issued::default();
        let now = now();
        for n in 0..(MAX_ISSUED + 10) {
            let expires_at = now + Duration::from_secs(60 + n as u64);
            issued.add_metadata_token(format!("t{n}"), expires_at, now);
        }
        assert_eq!(issued.sizes().2, MAX_ISSUED);
        // The ones expiring first made room.
        assert!(!issued.metadata_token_valid("t0", now));
        assert!(issued.metadata_token_valid(&format!("t{}", MAX_ISSUED + 9), now));
        // Long-expired entries are pruned as new ones come.
        let later = now + Duration::from_secs(MAX_ISSUED as u64 + 60) + EXPIRED_RETENTION * 2;
        for n in 0..1025 {
            issued.add_metadata_token(format!("u{n}"), later + Duration::from_secs(60), later);
        }
        assert!(issued.sizes().2 <= 1025, "{:?}", issued.sizes());
    }

    /// A simulator state and app whose clock the test moves.
    struct Harness {
        app: Arc<App>,
        offset: Arc<AtomicU64>,
    }

    impl Harness {
        fn new(setup: SimulatorSetup) -> Self {
            let offset = Arc::new(AtomicU64::new(0));
            let seen = offset.clone();
            let clock =
                Clock::from_fn(move || now() + Duration::from_secs(seen.load(Ordering::SeqCst)));
            let app = Arc::new(App {
                state: Arc::new(SimState::new(setup)),
                clock,
            });
            Self { app, offset }
        }

        fn advance(&self, seconds: u64) {
            self.offset.fetch_add(seconds, Ordering::SeqCst);
        }

        async fn send(&self, request: Request<Body>) -> (u16, HeaderMap, Value, String) {
            let response = gateway(AxumState(self.app.clone()), request).await;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            (status, headers, json, text)
        }

        async fn post(
            &self,
            path: &str,
            headers: &[(&str, &str)],
            body: &Value,
        ) -> (u16, HeaderMap, Value, String) {
            let mut request = Request::post(path).header("content-type", "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            self.send(
                request
                    .body(Body::from(body.to_string()))
                    .expect("a request"),
            )
            .await
        }

        /// A statistics call signed with `(ak, sk, token)` at the harness's current time.
        async fn statistics(&self, project: &str, key: (&str, &str, &str)) -> (u16, Value) {
            let path = format!("/v2/{project}/statistics/pools");
            let date = SdkDate::from_system_time(self.app.clock.now());
            let signed = signer::sign_with_key(
                &RequestToSign {
                    method: "GET",
                    host: "simulator.test",
                    path: &path,
                    query: &[("workspaceId", "0")],
                    headers: &[],
                    body: b"",
                },
                key.0,
                key.1,
                Some(key.2),
                date,
            );
            let mut request = Request::get(format!("{path}?{}", signed.query));
            for (name, value) in &signed.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let (status, _, json, _) = self
                .send(request.body(Body::empty()).expect("a request"))
                .await;
            (status, json)
        }

        /// Federates `token` and returns the temporary credentials' JSON (or the failure).
        async fn federate(&self, token: &str, duration: u64) -> (u16, Value) {
            let (status, headers, json, _) = self
                .post(
                    "/v3.0/OS-AUTH/id-token/tokens",
                    &[("x-idp-id", "cluster-a")],
                    &json!({"auth": {"id_token": {"id": token}}}),
                )
                .await;
            if status != 201 {
                return (status, json);
            }
            let iam = headers
                .get("x-subject-token")
                .and_then(|v| v.to_str().ok())
                .expect("X-Subject-Token")
                .to_owned();
            let body = json!({"auth": {"identity": {"methods": ["token"],
                "token": {"id": iam, "duration_seconds": duration}}}});
            let (status, _, json, _) = self
                .post("/v3.0/OS-CREDENTIAL/securitytokens", &[], &body)
                .await;
            (status, json)
        }
    }

    fn keyless_setup() -> SimulatorSetup {
        let projects = [PROJECT, OTHER_PROJECT].map(|project| ProjectConfig {
            id: project.to_owned(),
            region: None,
            workspaces: [("0".to_owned(), SimulatedCounts::new(0, 9, 0, 0, 1))].into(),
            ..ProjectConfig::default()
        });
        SimulatorSetup {
            identity_providers: vec![idp()],
            projects: projects.into(),
            ..SimulatorSetup::default()
        }
    }

    fn key_of(credential: &Value) -> (String, String, String) {
        let c = &credential["credential"];
        let text = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
        (text("access"), text("secret"), text("securitytoken"))
    }

    #[tokio::test]
    async fn federated_credentials_work_in_their_projects_until_they_expire() {
        let harness = Harness::new(keyless_setup());
        let (status, credential) = harness
            .federate(&sign_jwt(key(), &header(), &claims()), 3600)
            .await;
        assert_eq!(status, 201, "{credential}");
        let expires = credential["credential"]["expires_at"].as_str();
        assert_eq!(expires, Some("2026-01-01T01:00:00.000000Z"));
        let (ak, sk, token) = key_of(&credential);
        let key = (ak.as_str(), sk.as_str(), token.as_str());

        let (status, body) = harness.statistics(PROJECT, key).await;
        assert_eq!(
            (status, &body["statistics"]["status"]["created"]),
            (200, &json!(9))
        );

        let (status, body) = harness.statistics(OTHER_PROJECT, key).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error_code"], json!("ModelArts.0204"));
        let msg = body["error_msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains(SUBJECT) && msg.contains(OTHER_PROJECT),
            "{msg}"
        );

        // A wrong security token is refused like a wrong signature.
        let (status, _) = harness
            .statistics(PROJECT, (&ak, &sk, "forged-token"))
            .await;
        assert_eq!(status, 401);

        harness.advance(3599);
        assert_eq!(harness.statistics(PROJECT, key).await.0, 200);
        harness.advance(1);
        let (status, body) = harness.statistics(PROJECT, key).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error_code"], json!("APIGW.0301"));
        let msg = body["error_msg"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(msg.contains("security token has expired"), "{msg}");
        for clock_words in ["x-sdk-date", "request time", "timestamp"] {
            assert!(!msg.contains(clock_words), "{msg}");
        }
        assert!(
            !msg.contains(&sk.to_ascii_lowercase()) && !msg.contains(&token.to_ascii_lowercase())
        );
    }

    #[tokio::test]
    async fn the_ttl_setting_overrides_the_duration_and_iam_tokens_expire_too() {
        let mut setup = keyless_setup();
        setup.temporary_credentials_ttl = Some(Duration::from_secs(5));
        let harness = Harness::new(setup);
        let (status, credential) = harness
            .federate(&sign_jwt(key(), &header(), &claims()), 86_400)
            .await;
        assert_eq!(status, 201, "{credential}");
        assert_eq!(
            credential["credential"]["expires_at"].as_str(),
            Some("2026-01-01T00:00:05.000000Z")
        );
        let (ak, sk, token) = key_of(&credential);
        harness.advance(5);
        assert_eq!(harness.statistics(PROJECT, (&ak, &sk, &token)).await.0, 401);

        // The IAM token lives as long: a fresh one works, an expired one is refused.
        let (_, headers, _, _) = harness
            .post(
                "/v3.0/OS-AUTH/id-token/tokens",
                &[("x-idp-id", "cluster-a")],
                &json!({"auth": {"id_token": {"id": sign_jwt(key(), &header(), &with(claims(), "exp", json!(NOW + 3600)))}}}),
            )
            .await;
        let iam = headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .expect("a token")
            .to_owned();
        let h = &harness;
        let post = |d: Value| {
            let body = json!({"auth": {"identity": {"methods": ["token"],
                "token": {"id": iam, "duration_seconds": d}}}});
            async move {
                h.post("/v3.0/OS-CREDENTIAL/securitytokens", &[], &body)
                    .await
            }
        };
        assert_eq!(post(json!(899)).await.0, 400);
        assert_eq!(post(json!(86_401)).await.0, 400);
        assert_eq!(post(json!("900")).await.0, 400);
        assert_eq!(post(json!(900)).await.0, 201);
        harness.advance(5);
        let (status, _, json, text) = post(json!(900)).await;
        assert_eq!(status, 401, "{text}");
        assert_eq!(json["error"]["code"], json!(401));
        assert!(!text.contains(&iam));
    }

    #[tokio::test]
    async fn federation_answers_each_mistake_with_its_status() {
        let harness = Harness::new(keyless_setup());
        let token = sign_jwt(key(), &header(), &claims());
        let body = json!({"auth": {"id_token": {"id": token}}});
        let path = "/v3.0/OS-AUTH/id-token/tokens";
        let idp = [("x-idp-id", "cluster-a")];
        assert_eq!(harness.post(path, &[], &body).await.0, 400);
        assert_eq!(harness.post(path, &idp, &json!({"auth": {}})).await.0, 400);
        let (status, _, json, _) = harness.post(path, &[("x-idp-id", "nope")], &body).await;
        assert_eq!(status, 404);
        assert_eq!(json["error"]["title"], json!("Not Found"));

        let wrong_audience = sign_jwt(key(), &header(), &with(claims(), "aud", json!("sts")));
        let (status, _, json, text) = harness
            .post(
                path,
                &idp,
                &json!({"auth": {"id_token": {"id": wrong_audience}}}),
            )
            .await;
        assert_eq!(status, 401, "{text}");
        assert_eq!(
            json["error"]["message"],
            json!("the id_token's audience is not the identity provider's client id")
        );
        assert!(!text.contains(&wrong_audience));

        let stranger = with(
            claims(),
            "sub",
            json!("system:serviceaccount:team-b:reader"),
        );
        let stranger = sign_jwt(key(), &header(), &stranger);
        let (status, _, json, _) = harness
            .post(path, &idp, &json!({"auth": {"id_token": {"id": stranger}}}))
            .await;
        assert_eq!(status, 403);
        let msg = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("cluster-a") && msg.contains("team-b:reader"),
            "{msg}"
        );

        let (status, headers, json, _) = harness.post(path, &idp, &body).await;
        assert_eq!(status, 201);
        assert!(headers.contains_key("x-subject-token"));
        assert_eq!(json["token"]["user"]["name"], json!(SUBJECT));
        assert_eq!(json["token"]["methods"], json!(["mapped"]));

        let unknown =
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "MIIunknown"}}}});
        let (status, _, _, _) = harness
            .post("/v3.0/OS-CREDENTIAL/securitytokens", &[], &unknown)
            .await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn pod_identity_and_metadata_issue_restricted_credentials() {
        let mut setup = keyless_setup();
        let harness = Harness::new(setup.clone());
        // Not configured: not served.
        assert_eq!(
            harness
                .post("/v1/pod-identity/credentials", &[], &json!({}))
                .await
                .0,
            404
        );
        let put = |ttl: Option<&str>| {
            let mut request = Request::put("/meta-data/latest/api/token");
            if let Some(ttl) = ttl {
                request = request.header("x-metadata-token-ttl-seconds", ttl);
            }
            harness.send(request.body(Body::empty()).expect("a request"))
        };
        assert_eq!(put(Some("60")).await.0, 404);

        setup.pod_identity = Some(PodIdentityConfig {
            authorization_token: "agent-token".to_owned(),
            projects: vec![OTHER_PROJECT.to_owned()],
        });
        setup.metadata = Some(MetadataConfig {
            projects: vec![PROJECT.to_owned()],
            require_token: true,
        });
        harness.app.state.replace_setup(setup);

        let path = "/v1/pod-identity/credentials";
        assert_eq!(harness.post(path, &[], &json!({})).await.0, 401);
        let (status, _, _, text) = harness
            .post(path, &[("authorization", "agent-tokeX")], &json!({}))
            .await;
        assert_eq!(status, 401);
        assert!(!text.contains("agent-token"));
        let (status, _, json, _) = harness
            .post(path, &[("authorization", "agent-token")], &json!({}))
            .await;
        assert_eq!(status, 200, "{json}");
        let c = &json["credentials"];
        let text = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
        let (ak, sk, token) = (
            text("accessKeyId"),
            text("secretAccessKey"),
            text("securityToken"),
        );
        assert_eq!(text("expiration"), "2026-01-01T06:00:00.000000Z");
        assert_eq!(
            harness
                .statistics(OTHER_PROJECT, (&ak, &sk, &token))
                .await
                .0,
            200
        );
        assert_eq!(harness.statistics(PROJECT, (&ak, &sk, &token)).await.0, 403);

        for bad in [None, Some("0"), Some("21601"), Some("x")] {
            assert_eq!(put(bad).await.0, 400, "{bad:?}");
        }
        let (status, _, _, session) = put(Some("60")).await;
        assert_eq!(status, 200);
        let get = |token: Option<&str>| {
            let mut request = Request::get("/openstack/latest/securitykey");
            if let Some(token) = token {
                request = request.header("x-metadata-token", token);
            }
            harness.send(request.body(Body::empty()).expect("a request"))
        };
        let (status, _, _, text) = get(None).await;
        assert_eq!(
            (status, text.contains("Invalid metadata token")),
            (401, true)
        );
        assert_eq!(get(Some("made-up")).await.0, 401);
        let (status, _, json, _) = get(Some(&session)).await;
        assert_eq!(status, 200, "{json}");
        let (ak, sk, token) = key_of(&json);
        assert_eq!(harness.statistics(PROJECT, (&ak, &sk, &token)).await.0, 200);
        assert_eq!(
            harness
                .statistics(OTHER_PROJECT, (&ak, &sk, &token))
                .await
                .0,
            403
        );
        harness.advance(60);
        assert_eq!(get(Some(&session)).await.0, 401);
    }
}
