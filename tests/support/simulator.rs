//! The ModelArts simulator for integration tests: a known setup, in-process, plus clients tuned
//! for fast retries, and its keyless-credential side (an identity provider trusting
//! [`super::jwt`] keys, Pod Identity, ECS metadata) with helpers that fetch temporary credentials
//! from it.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::time::Duration;

use poolwatch::modelarts::{ClientConfig, Credentials, ModelArtsClient, RetryPolicy};
use poolwatch::simulator::{
    FederationRule, IdentityProviderConfig, KeyConfig, MetadataConfig, PodIdentityConfig,
    ProjectConfig, SimulatedCounts, Simulator, SimulatorConfig, SimulatorHandle, SimulatorSetup,
};
use serde_json::{Value, json};

use super::jwt::SigningKey;

/// A permanent key the simulator accepts.
pub const AK: &str = "TESTAKPERMANENT00001";
/// Its secret. Tests assert it never shows up in errors, logs or CLI output.
pub const SK: &str = "test-secret-key-4b1d-never-print-me-9f2c";
/// A temporary key's id.
pub const TEMP_AK: &str = "TESTAKTEMPORARY00001";
/// The temporary key's secret.
pub const TEMP_SK: &str = "temp-secret-key-77aa-never-print-me-0e13";
/// The temporary key's security token.
pub const TOKEN: &str = "temp-security-token-c0ffee-never-print-me";
/// The project of `REGION`.
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// A second project, in `OTHER_REGION`.
pub const OTHER_PROJECT: &str = "fedcba9876543210fedcba9876543210";
/// The region `PROJECT` is named after.
pub const REGION: &str = "cn-north-4";
/// The region of `OTHER_PROJECT`.
pub const OTHER_REGION: &str = "cn-east-3";
/// The fixed `operationTime` the simulator answers with.
pub const OPERATION_TIME: &str = "2025-03-27 11:48:55.446172146 +0000 UTC";

/// Two keys (one temporary), two projects; workspace `0` of `PROJECT` has the documented
/// example's counts, workspace `ws-partial` only some counts.
pub fn setup() -> SimulatorSetup {
    SimulatorSetup {
        credentials: vec![
            KeyConfig {
                access_key_id: AK.to_owned(),
                secret_access_key: SK.to_owned(),
                security_token: None,
            },
            KeyConfig {
                access_key_id: TEMP_AK.to_owned(),
                secret_access_key: TEMP_SK.to_owned(),
                security_token: Some(TOKEN.to_owned()),
            },
        ],
        projects: vec![
            ProjectConfig {
                id: PROJECT.to_owned(),
                region: Some(REGION.to_owned()),
                workspaces: BTreeMap::from([
                    ("0".to_owned(), SimulatedCounts::new(0, 9, 0, 0, 1)),
                    (
                        "ws-partial".to_owned(),
                        SimulatedCounts {
                            created: Some(3),
                            failed: Some(2),
                            ..SimulatedCounts::default()
                        },
                    ),
                ]),
                ..ProjectConfig::default()
            },
            ProjectConfig {
                id: OTHER_PROJECT.to_owned(),
                region: Some(OTHER_REGION.to_owned()),
                workspaces: BTreeMap::from([("0".to_owned(), SimulatedCounts::new(1, 2, 3, 4, 5))]),
                ..ProjectConfig::default()
            },
        ],
        operation_time: Some(OPERATION_TIME.to_owned()),
        ..SimulatorSetup::default()
    }
}

/// The id of the identity provider [`keyless_setup`] configures (`X-Idp-Id`).
pub const IDP_ID: &str = "poolwatch-test-cluster";
/// The issuer its tokens must carry.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The client id its tokens must name as audience.
pub const CLIENT_ID: &str = "modelarts";
/// The ServiceAccount namespace whose accounts may federate (any name: a `*` rule).
pub const FEDERATED_NAMESPACE: &str = "team-a";
/// The ServiceAccount [`keyless_setup`]'s exact rule names.
pub const FEDERATED_SUBJECT: &str = "system:serviceaccount:team-a:modelarts-reader";
/// The Pod Identity agent's authorization token.
pub const POD_IDENTITY_TOKEN: &str = "pod-identity-agent-token-never-print-me";

/// [`setup`] plus keyless-credential sources: the identity provider [`IDP_ID`] trusting `key`
/// (ServiceAccounts of [`FEDERATED_NAMESPACE`] may read `PROJECT`, [`FEDERATED_SUBJECT`] also
/// `OTHER_PROJECT`), Pod Identity for both projects, metadata (session tokens required) for
/// `PROJECT` alone.
pub fn keyless_setup(key: &SigningKey) -> SimulatorSetup {
    SimulatorSetup {
        identity_providers: vec![IdentityProviderConfig {
            id: IDP_ID.to_owned(),
            issuer: ISSUER.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            jwks: key.jwks(),
            rules: vec![
                FederationRule {
                    subject: format!("system:serviceaccount:{FEDERATED_NAMESPACE}:*"),
                    projects: vec![PROJECT.to_owned()],
                },
                FederationRule {
                    subject: FEDERATED_SUBJECT.to_owned(),
                    projects: vec![OTHER_PROJECT.to_owned()],
                },
            ],
        }],
        pod_identity: Some(PodIdentityConfig {
            authorization_token: POD_IDENTITY_TOKEN.to_owned(),
            projects: vec![PROJECT.to_owned(), OTHER_PROJECT.to_owned()],
        }),
        metadata: Some(MetadataConfig {
            projects: vec![PROJECT.to_owned()],
            require_token: true,
        }),
        ..setup()
    }
}

/// A ServiceAccount token for `subject` that [`keyless_setup`]'s identity provider accepts,
/// valid for ten minutes.
pub fn id_token(key: &SigningKey, subject: &str) -> String {
    key.sign(&super::jwt::claims(
        ISSUER,
        CLIENT_ID,
        subject,
        Duration::from_secs(600),
    ))
}

/// Temporary credentials the simulator issued.
#[derive(Clone)]
pub struct TemporaryCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The security token.
    pub security_token: String,
    /// The expiry as the answer wrote it (`2026-11-30T06:00:00.000000Z`).
    pub expires_at: String,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl TemporaryCredentials {
    /// As the client's credentials.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(&self.access_key_id, &self.secret_access_key)
            .with_security_token(&self.security_token)
    }

    /// Reads IAM's `{"credential": {access, secret, securitytoken, expires_at}}` or Pod
    /// Identity's `{"credentials": {accessKeyId, secretAccessKey, securityToken, expiration}}`.
    fn from_answer(answer: &Value) -> Option<Self> {
        let (c, names) = match (answer.get("credential"), answer.get("credentials")) {
            (Some(c), _) => (c, ["access", "secret", "securitytoken", "expires_at"]),
            (None, Some(c)) => (
                c,
                [
                    "accessKeyId",
                    "secretAccessKey",
                    "securityToken",
                    "expiration",
                ],
            ),
            (None, None) => return None,
        };
        let text = |i: usize| c[names[i]].as_str().map(str::to_owned);
        Some(Self {
            access_key_id: text(0)?,
            secret_access_key: text(1)?,
            security_token: text(2)?,
            expires_at: text(3)?,
        })
    }
}

/// A failed keyless call: the status and body the simulator answered.
#[derive(Debug, Clone, PartialEq)]
pub struct KeylessRefusal {
    /// The HTTP status.
    pub status: u16,
    /// The body (Keystone style: `{"error": {"code", "message", "title"}}`), or `Null`.
    pub body: Value,
}

/// A plain HTTP client for the keyless endpoints, which are not signed.
fn http() -> reqwest::Client {
    match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => panic!("no HTTP client: {e}"),
    }
}

/// Sends a keyless request; `Ok` holds the 2xx answer's headers and JSON body.
async fn keyless_call(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::header::HeaderMap, Value), KeylessRefusal> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => panic!("the simulator did not answer: {e}"),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        Ok((headers, body))
    } else {
        Err(KeylessRefusal { status, body })
    }
}

/// IAM federation as the SDKs do it: the id_token for an IAM token
/// (`POST /v3.0/OS-AUTH/id-token/tokens`), then that for temporary credentials valid
/// `duration_seconds` (`POST /v3.0/OS-CREDENTIAL/securitytokens`).
pub async fn federate(
    handle: &SimulatorHandle,
    idp_id: &str,
    id_token: &str,
    duration_seconds: u64,
) -> Result<TemporaryCredentials, KeylessRefusal> {
    let base = handle.base_url();
    let client = http();
    let (headers, _) = keyless_call(
        client
            .post(format!("{base}/v3.0/OS-AUTH/id-token/tokens"))
            .header("X-Idp-Id", idp_id)
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(json!({"auth": {"id_token": {"id": id_token}}}).to_string()),
    )
    .await?;
    let Some(token) = headers.get("x-subject-token").and_then(|v| v.to_str().ok()) else {
        panic!("the IAM token answer has no X-Subject-Token");
    };
    let body = json!({"auth": {"identity": {"methods": ["token"],
        "token": {"id": token, "duration_seconds": duration_seconds}}}});
    let (_, answer) = keyless_call(
        client
            .post(format!("{base}/v3.0/OS-CREDENTIAL/securitytokens"))
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(body.to_string()),
    )
    .await?;
    Ok(TemporaryCredentials::from_answer(&answer)
        .unwrap_or_else(|| panic!("not a credential answer: {answer}")))
}

/// Pod Identity's credentials (`POST /v1/pod-identity/credentials`) with this authorization.
pub async fn pod_identity(
    handle: &SimulatorHandle,
    authorization: &str,
) -> Result<TemporaryCredentials, KeylessRefusal> {
    let (_, answer) = keyless_call(
        http()
            .post(format!("{}/v1/pod-identity/credentials", handle.base_url()))
            .header("Authorization", authorization)
            .header("Content-Type", "application/json")
            .body("{}"),
    )
    .await?;
    Ok(TemporaryCredentials::from_answer(&answer)
        .unwrap_or_else(|| panic!("not a credential answer: {answer}")))
}

/// Starts a simulator with [`setup`] on a free loopback port.
pub async fn start() -> SimulatorHandle {
    start_with(SimulatorConfig::new(setup())).await
}

/// Starts a simulator with `config`.
pub async fn start_with(config: SimulatorConfig) -> SimulatorHandle {
    match Simulator::start(config).await {
        Ok(handle) => handle,
        Err(e) => panic!("the simulator did not start: {e}"),
    }
}

/// The permanent key.
pub fn credentials() -> Credentials {
    Credentials::new(AK, SK)
}

/// The temporary key with its token.
pub fn temporary_credentials() -> Credentials {
    Credentials::new(TEMP_AK, TEMP_SK).with_security_token(TOKEN)
}

/// Client settings for tests: 2 retries with 10–40 ms backoff, 5 s request timeout.
pub fn fast_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
        ..ClientConfig::default()
    }
}

/// A client built from `config`.
pub fn client_with(config: ClientConfig) -> ModelArtsClient {
    match ModelArtsClient::new(config) {
        Ok(client) => client,
        Err(e) => panic!("the client did not build: {e}"),
    }
}

/// A client with [`fast_config`].
pub fn client() -> ModelArtsClient {
    client_with(fast_config())
}
