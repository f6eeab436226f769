//! Keyless credentials for watches: temporary keys for a ServiceAccount of the watch's own
//! namespace (its token, from the TokenRequest API, exchanged at IAM), or the operator's own
//! identity (CCE Pod Identity, else the node's agency) where the cluster admin allows it.
//!
//! Temporary keys are kept per source and renewed when [`TemporaryCredentials::renew_at`] says
//! (40 minutes before they expire), never per poll: a thousand watches on one ServiceAccount
//! cost one exchange per renewal. A failed exchange is remembered briefly too, so that watches
//! sharing a broken source do not each ask IAM.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use secrecy::SecretString;

use crate::modelarts::keyless::FEDERATION_DURATION;
use crate::modelarts::{
    Endpoint, ErrorClass, IdTokenExchange, MetadataSession, ModelArtsClient, ModelArtsError,
    Service, ServiceUrl, TemporaryCredentials,
};

use super::audiences::{ApiServerAudiences, AudienceRefusal};
use super::credentials::{CredentialsError, LoadedCredentials};
use super::memory::WatchKey;
use super::reads::SharedReads;
use super::target::FederationSource;
use super::users::Users;
use crate::lock::lock;

/// The lifetime asked for ServiceAccount tokens: the TokenRequest API's minimum, since the
/// token is exchanged at once and never kept.
const SERVICE_ACCOUNT_TOKEN_SECONDS: i64 = 600;
/// How long a refusal that only a change in Kubernetes can fix (no ServiceAccount, no RBAC) is
/// remembered: short, so a fix is noticed at the next check.
const KUBERNETES_FAILURE_REUSE: Duration = Duration::from_secs(10);
/// How long a refusal by IAM, Pod Identity or the metadata service is remembered: a fix there
/// (a conversion rule, an agency) is noticed within a minute, and a broken source costs the
/// service one exchange a minute, not one per watch and poll.
const EXCHANGE_FAILURE_REUSE: Duration = Duration::from_secs(60);
/// How long a transient failure (a 5xx, a timeout) is shared by the watches that met it.
const TRANSIENT_FAILURE_REUSE: Duration = Duration::from_secs(5);

/// The namespaces whose watches may use the operator's own identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedNamespaces {
    /// None (the default): the operator's identity is the admin's, not the tenants'.
    #[default]
    None,
    /// These namespaces.
    Listed(BTreeSet<String>),
    /// Every namespace (`*`), for clusters with one tenant.
    All,
}

impl AllowedNamespaces {
    /// From the flag's values: names, or `*` for all.
    pub fn from_names(names: &[String]) -> Self {
        if names.iter().any(|n| n == "*") {
            Self::All
        } else if names.is_empty() {
            Self::None
        } else {
            Self::Listed(names.iter().cloned().collect())
        }
    }

    /// Whether a watch of `namespace` may use the operator's identity.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Self::None => false,
            Self::Listed(names) => names.contains(namespace),
            Self::All => true,
        }
    }
}

/// CCE Pod Identity as CCE sets it up in the operator's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodIdentity {
    /// `HC_CONTAINER_CREDENTIALS_FULL_URI`.
    pub url: ServiceUrl,
    /// `HC_CONTAINER_AUTHORIZATION_TOKEN_FILE`, read at every exchange (the kubelet rotates it).
    pub token_file: PathBuf,
}

/// Where the operator's own identity comes from and who may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorIdentitySettings {
    /// Namespaces whose watches may use it.
    pub namespaces: AllowedNamespaces,
    /// CCE Pod Identity, when the pod has it (tried first).
    pub pod_identity: Option<PodIdentity>,
    /// The ECS metadata service (the node's agency).
    pub metadata_endpoint: Endpoint,
}

/// The key of one federated identity: a ServiceAccount, exchanged through one identity
/// provider at one IAM endpoint for one audience.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FederationKey {
    namespace: String,
    source: FederationSource,
}

type Loaded = Result<LoadedCredentials, CredentialsError>;

/// Temporary keys for watches, per federated ServiceAccount and for the operator's identity.
pub struct KeylessCredentials {
    client: kube::Client,
    modelarts: ModelArtsClient,
    settings: OperatorIdentitySettings,
    audiences: ApiServerAudiences,
    federated: SharedReads<FederationKey, Loaded>,
    /// Which watches use which federated identity: its keys are forgotten with its last watch.
    federation_users: Mutex<Users<WatchKey, FederationKey>>,
    operator: SharedReads<(), Loaded>,
    metadata: MetadataSession,
}

impl KeylessCredentials {
    /// Keyless credentials through `client` (TokenRequest) and `modelarts` (the exchanges).
    pub fn new(
        client: kube::Client,
        modelarts: ModelArtsClient,
        settings: OperatorIdentitySettings,
    ) -> Self {
        Self {
            audiences: ApiServerAudiences::new(client.clone()),
            client,
            modelarts,
            settings,
            federated: SharedReads::default(),
            federation_users: Mutex::default(),
            operator: SharedReads::default(),
            metadata: MetadataSession::default(),
        }
    }

    /// Temporary keys for ServiceAccount `source` of `namespace`: kept until due for renewal.
    pub async fn federated(&self, namespace: &str, source: &FederationSource) -> Loaded {
        let key = FederationKey {
            namespace: namespace.to_owned(),
            source: source.clone(),
        };
        self.federated
            .get(&key, false, async {
                let result = self.federate(namespace, source).await;
                reusable(result)
            })
            .await
    }

    /// Forgets the keys of ServiceAccount `source`: the next poll exchanges a new token.
    pub fn forget_federated(&self, namespace: &str, source: &FederationSource) {
        self.federated.forget(&FederationKey {
            namespace: namespace.to_owned(),
            source: source.clone(),
        });
    }

    /// Sets the federated identity that `watch` uses now (`None`: none, or it is gone). The
    /// keys of an identity that no watch uses any more are forgotten at once: a tenant who
    /// cycles audiences or providers leaves nothing behind.
    pub fn set_user(&self, watch: &WatchKey, source: Option<&FederationSource>) {
        let used = source
            .map(|source| FederationKey {
                namespace: watch.0.clone(),
                source: source.clone(),
            })
            .into_iter()
            .collect();
        for unused in lock(&self.federation_users).set(watch, used) {
            self.federated.forget(&unused);
        }
    }

    /// The operator's own temporary keys, for a watch of `namespace` if the admin allows it.
    pub async fn operator_identity(&self, namespace: &str) -> Loaded {
        if !self.settings.namespaces.allows(namespace) {
            return Err(CredentialsError::OperatorIdentityNotAllowed {
                namespace: namespace.to_owned(),
            });
        }
        self.operator
            .get(&(), false, async { reusable(self.own_identity().await) })
            .await
    }

    /// Forgets the operator's own keys: the next poll asks for new ones.
    pub fn forget_operator_identity(&self) {
        self.operator.forget(&());
    }

    /// A token for the ServiceAccount, exchanged at IAM.
    async fn federate(
        &self,
        namespace: &str,
        source: &FederationSource,
    ) -> Result<TemporaryCredentials, CredentialsError> {
        let id_token = self.service_account_token(namespace, source).await?;
        self.modelarts
            .exchange_id_token(IdTokenExchange {
                iam_endpoint: &source.iam_endpoint,
                identity_provider_id: &source.identity_provider_id,
                id_token: &id_token,
                duration: FEDERATION_DURATION,
            })
            .await
            .map_err(|source| CredentialsError::Exchange { source })
    }

    /// A short-lived token of the ServiceAccount for the provider's audience (TokenRequest),
    /// never for an audience the cluster's API server accepts (see [`ApiServerAudiences`]).
    async fn service_account_token(
        &self,
        namespace: &str,
        source: &FederationSource,
    ) -> Result<SecretString, CredentialsError> {
        let name = &source.service_account;
        let not_allowed = || CredentialsError::AudienceNotAllowed {
            namespace: namespace.to_owned(),
            name: name.clone(),
            audience: source.audience.clone(),
        };
        if self.audiences.is_known(&source.audience).await {
            return Err(not_allowed());
        }
        let token = self.mint_token(namespace, source).await?;
        match self.audiences.review(&token, &source.audience).await {
            Ok(()) => Ok(token),
            Err(AudienceRefusal::ApiServerAudience) => Err(not_allowed()),
            Err(AudienceRefusal::ReviewForbidden) => Err(CredentialsError::TokenReviewForbidden),
            Err(AudienceRefusal::ReviewFailed(reason)) => {
                Err(CredentialsError::TokenRequestFailed {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                    reason: format!("reviewing the token before use failed: {reason}"),
                })
            }
        }
    }

    /// The TokenRequest itself.
    async fn mint_token(
        &self,
        namespace: &str,
        source: &FederationSource,
    ) -> Result<SecretString, CredentialsError> {
        let name = &source.service_account;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec![source.audience.clone()]),
                expiration_seconds: Some(SERVICE_ACCOUNT_TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let failed = |reason: String| CredentialsError::TokenRequestFailed {
            namespace: namespace.to_owned(),
            name: name.clone(),
            reason,
        };
        match api
            .create_token_request(name, &PostParams::default(), &request)
            .await
        {
            Ok(answer) => answer
                .status
                .and_then(|status| status.token)
                .filter(|token| !token.is_empty())
                .map(SecretString::from)
                .ok_or_else(|| failed("the API server answered without a token".to_owned())),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Err(CredentialsError::ServiceAccountNotFound {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                })
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                Err(CredentialsError::TokenRequestForbidden {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                    said: api_server_said(&status.message),
                })
            }
            Err(error) => Err(failed(error.to_string())),
        }
    }

    /// The operator's own keys: CCE Pod Identity when the pod has it, else the node's agency.
    async fn own_identity(&self) -> Result<TemporaryCredentials, CredentialsError> {
        let result = match &self.settings.pod_identity {
            Some(pod_identity) => {
                let token = read_token_file(&pod_identity.token_file).await?;
                self.modelarts
                    .pod_identity_credentials(&pod_identity.url, &token)
                    .await
            }
            None => {
                self.modelarts
                    .metadata_credentials(&self.settings.metadata_endpoint, &self.metadata)
                    .await
            }
        };
        result.map_err(|source| CredentialsError::Exchange { source })
    }
}

/// The API server's message, cut to the length of an upstream error message: it says which
/// rule refused (RBAC, or the admission policy and what to change), and is never a secret.
fn api_server_said(message: &str) -> String {
    crate::modelarts::bounded::cut(message, crate::modelarts::bounded::ERROR_MESSAGE).into_owned()
}

/// The Pod Identity token, read afresh: the kubelet rotates the file.
async fn read_token_file(path: &std::path::Path) -> Result<SecretString, CredentialsError> {
    let unusable = |problem: String| CredentialsError::Exchange {
        source: ModelArtsError::new(
            ErrorClass::InvalidConfiguration,
            Service::PodIdentity,
            format!(
                "the CCE Pod Identity token file {} (HC_CONTAINER_AUTHORIZATION_TOKEN_FILE) {problem}",
                path.display()
            ),
        ),
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| unusable(format!("cannot be read: {e}")))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(unusable("is empty".to_owned()));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// The loaded keys and how long they may be reused: until due for renewal, or briefly for a
/// failure (longer for refusals than for hiccups).
fn reusable(result: Result<TemporaryCredentials, CredentialsError>) -> (Loaded, Duration) {
    match result {
        Ok(temporary) => {
            let now = Timestamp::now();
            let reuse = temporary
                .renew_at(now)
                .duration_since(now)
                .try_into()
                .unwrap_or(Duration::ZERO)
                // Whatever expiry an answer claims, keys are not kept longer than asked for.
                .min(FEDERATION_DURATION);
            let version = temporary.credentials.key_id().to_owned();
            let loaded = LoadedCredentials {
                credentials: temporary.credentials,
                version,
            };
            (Ok(loaded), reuse)
        }
        Err(error) => {
            let reuse = match &error {
                CredentialsError::ServiceAccountNotFound { .. }
                | CredentialsError::TokenRequestForbidden { .. }
                | CredentialsError::TokenReviewForbidden => KUBERNETES_FAILURE_REUSE,
                error if error.is_permanent() => EXCHANGE_FAILURE_REUSE,
                _ => TRANSIENT_FAILURE_REUSE,
            };
            (Err(error), reuse)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modelarts::Credentials;

    #[test]
    fn only_listed_namespaces_may_use_the_operator_identity() {
        let listed = AllowedNamespaces::from_names(&["team-a".to_owned()]);
        assert!(listed.allows("team-a"));
        assert!(!listed.allows("team-b"));
        assert!(!AllowedNamespaces::from_names(&[]).allows("team-a"));
        assert!(AllowedNamespaces::from_names(&["*".to_owned()]).allows("anything"));
    }

    #[test]
    fn keys_are_reused_until_due_for_renewal_and_failures_briefly() {
        let six_hours = TemporaryCredentials {
            credentials: Credentials::new("AK1", "SK").with_security_token("T"),
            expires_at: Timestamp::now() + jiff::SignedDuration::from_hours(6),
        };
        let (loaded, reuse) = reusable(Ok(six_hours));
        assert_eq!(loaded.unwrap().version, "AK1");
        let expected = Duration::from_secs(6 * 3600 - 40 * 60);
        assert!(
            reuse <= expected && reuse > expected - Duration::from_secs(5),
            "{reuse:?}"
        );

        let (_, reuse) = reusable(Err(CredentialsError::ServiceAccountNotFound {
            namespace: "a".to_owned(),
            name: "b".to_owned(),
        }));
        assert_eq!(reuse, KUBERNETES_FAILURE_REUSE);
        let refused = ModelArtsError::new(ErrorClass::TokenExchangeRefused, Service::Iam, "no");
        let (_, reuse) = reusable(Err(CredentialsError::Exchange { source: refused }));
        assert_eq!(reuse, EXCHANGE_FAILURE_REUSE);
        let down = ModelArtsError::new(ErrorClass::UpstreamUnavailable, Service::Iam, "503");
        let (_, reuse) = reusable(Err(CredentialsError::Exchange { source: down }));
        assert_eq!(reuse, TRANSIENT_FAILURE_REUSE);
    }
}
