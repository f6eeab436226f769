//! A watch's credentials, from whichever source its spec names: a Secret of its namespace
//! ([`SecretReader`]), a ServiceAccount of its namespace or the operator's own identity
//! ([`KeylessCredentials`]). The poll asks here and never cares which.
//!
//! [`SecretReader`]: super::secrets::SecretReader
//! [`KeylessCredentials`]: super::keyless::KeylessCredentials

use crate::modelarts::{Credentials, ModelArtsError};

use super::context::Context;
use super::reasons;
use super::target::CredentialSource;

/// Credentials and the version of their source.
#[derive(Clone, Debug)]
pub struct LoadedCredentials {
    /// The keys.
    pub credentials: Credentials,
    /// What changes when the keys do: the Secret's `resourceVersion`, or the temporary keys'
    /// access key id. Compared to notice new keys after a failure.
    pub version: String,
}

/// Why no credentials could be had. Messages name the Secret, the key, the ServiceAccount or the
/// service but never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret does not exist.
    #[error(
        "Secret {namespace}/{name} was not found: create it with the keys accessKeyId and secretAccessKey"
    )]
    SecretNotFound {
        /// The watch's namespace.
        namespace: String,
        /// `spec.credentialsSecretRef.name`.
        name: String,
    },
    /// A required key is missing or empty.
    #[error(
        "Secret {namespace}/{name} has no {key:?}: add it (the Secret needs accessKeyId and secretAccessKey)"
    )]
    KeyMissing {
        /// The watch's namespace.
        namespace: String,
        /// The Secret.
        name: String,
        /// The missing key.
        key: &'static str,
    },
    /// A value is not UTF-8 text.
    #[error("Secret {namespace}/{name} key {key:?} is not text: store the key as plain characters")]
    NotText {
        /// The watch's namespace.
        namespace: String,
        /// The Secret.
        name: String,
        /// The key.
        key: &'static str,
    },
    /// The access key id cannot be one IAM issued (too long, or characters it never uses).
    #[error(
        "Secret {namespace}/{name} key \"accessKeyId\" {problem}: put the access key id from the IAM console there"
    )]
    InvalidAccessKeyId {
        /// The watch's namespace.
        namespace: String,
        /// The Secret.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The operator is not allowed to read the Secret.
    #[error(
        "poolwatch may not read Secret {namespace}/{name}: grant it get on secrets in {namespace}"
    )]
    Forbidden {
        /// The watch's namespace.
        namespace: String,
        /// The Secret.
        name: String,
    },
    /// The ServiceAccount that `spec.federation` names does not exist.
    #[error(
        "ServiceAccount {namespace}/{name} was not found: create it, or name an existing one in spec.federation.serviceAccountName"
    )]
    ServiceAccountNotFound {
        /// The watch's namespace.
        namespace: String,
        /// `spec.federation.serviceAccountName`.
        name: String,
    },
    /// The API server refused the token request: RBAC, or the chart's token policy.
    #[error(
        "poolwatch may not request tokens for ServiceAccount {namespace}/{name} ({said}): grant it create on serviceaccounts/token in {namespace} (the chart does with federation.enabled=true), and let the chart's token policy allow the namespace (chart value federation.namespaces, or the label poolwatch.io/federation=enabled)"
    )]
    TokenRequestForbidden {
        /// The watch's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// What the API server said (RBAC's or the admission policy's message), shortened.
        said: String,
    },
    /// `spec.federation.audience` is one the cluster's API server accepts: the token would be a
    /// Kubernetes credential of the ServiceAccount, so none is requested or sent.
    #[error(
        "spec.federation.audience {audience:?} is an audience of this cluster's Kubernetes API server: a token for it would let whoever receives it act as ServiceAccount {namespace}/{name} in Kubernetes, so poolwatch neither requests nor sends one. Set spec.federation.audience to the client id of the IAM identity provider (its own audience, never the cluster's issuer)"
    )]
    AudienceNotAllowed {
        /// The watch's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// The refused audience.
        audience: String,
    },
    /// The operator may not create TokenReviews, without which a token is not checked and so
    /// not sent.
    #[error(
        "poolwatch may not create tokenreviews.authentication.k8s.io, which it needs to check that a ServiceAccount token is not valid for the Kubernetes API before sending it: grant it create on tokenreviews (the chart does)"
    )]
    TokenReviewForbidden,
    /// The API server did not issue a token for the ServiceAccount; may clear by itself.
    #[error("requesting a token for ServiceAccount {namespace}/{name} failed: {reason}")]
    TokenRequestFailed {
        /// The watch's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// What the API server said.
        reason: String,
    },
    /// The watch asks for the operator's own identity in a namespace the admin did not allow.
    #[error(
        "namespace {namespace} may not use poolwatch's own identity: the cluster admin lists the namespaces that may with --operator-identity-namespaces (chart value operatorIdentity.namespaces); use spec.credentialsSecretRef or spec.federation instead"
    )]
    OperatorIdentityNotAllowed {
        /// The watch's namespace.
        namespace: String,
    },
    /// IAM, CCE Pod Identity or the metadata service did not give temporary keys.
    #[error("{source}")]
    Exchange {
        /// What the service said, classified.
        source: ModelArtsError,
    },
    /// The API server could not be asked; may clear by itself.
    #[error("reading Secret {namespace}/{name} failed: {reason}")]
    Unavailable {
        /// The watch's namespace.
        namespace: String,
        /// The Secret.
        name: String,
        /// What the API server said.
        reason: String,
    },
}

impl CredentialsError {
    /// Whether only a change to the Secret (or to RBAC) can fix it.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::TokenRequestFailed { .. } => false,
            Self::Exchange { source } => source.is_permanent(),
            _ => true,
        }
    }

    /// Stable CamelCase reason for conditions, metrics and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } | Self::KeyMissing { .. } | Self::NotText { .. } => {
                reasons::CREDENTIALS_NOT_FOUND
            }
            Self::Forbidden { .. }
            | Self::TokenRequestForbidden { .. }
            | Self::TokenReviewForbidden => reasons::CREDENTIALS_FORBIDDEN,
            Self::AudienceNotAllowed { .. } => reasons::AUDIENCE_NOT_ALLOWED,
            Self::ServiceAccountNotFound { .. } => reasons::SERVICE_ACCOUNT_NOT_FOUND,
            Self::InvalidAccessKeyId { .. } => reasons::INVALID_CREDENTIALS,
            Self::OperatorIdentityNotAllowed { .. } => reasons::OPERATOR_IDENTITY_NOT_ALLOWED,
            Self::Exchange { source } => source.reason(),
            Self::Unavailable { .. } | Self::TokenRequestFailed { .. } => {
                reasons::KUBERNETES_UNAVAILABLE
            }
        }
    }
}

impl Context {
    /// The credentials of `source` for a watch of `namespace`. `fresh` re-reads a Secret
    /// rather than reuse a read of the last seconds; temporary keys are reused until they are
    /// due for renewal either way (call [`Context::forget_credentials`] to renew them now).
    pub async fn credentials(
        &self,
        namespace: &str,
        source: &CredentialSource,
        fresh: bool,
    ) -> Result<LoadedCredentials, CredentialsError> {
        match source {
            CredentialSource::Secret { name } => {
                self.secrets.credentials(namespace, name, fresh).await
            }
            CredentialSource::Federation(federation) => {
                self.keyless.federated(namespace, federation).await
            }
            CredentialSource::OperatorIdentity => self.keyless.operator_identity(namespace).await,
        }
    }

    /// Forgets the credentials of `source`: the next poll reads the Secret again or gets new
    /// temporary keys.
    pub fn forget_credentials(&self, namespace: &str, source: &CredentialSource) {
        match source {
            CredentialSource::Secret { name } => self.secrets.forget(namespace, name),
            CredentialSource::Federation(federation) => {
                self.keyless.forget_federated(namespace, federation);
            }
            CredentialSource::OperatorIdentity => self.keyless.forget_operator_identity(),
        }
    }
}
