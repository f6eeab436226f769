//! Access keys from the Secret a watch names, read on demand (the operator may only `get`
//! Secrets, never list or watch them) and shared for a few seconds between the watches that name
//! the same Secret, so hundreds of watches on one key cost one read, not hundreds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tokio::time::Instant;

use crate::lock::lock;
use crate::modelarts::Credentials;

use super::reasons;

/// Key of the access key id in the Secret.
pub const ACCESS_KEY_ID: &str = "accessKeyId";
/// Key of the secret access key in the Secret.
pub const SECRET_ACCESS_KEY: &str = "secretAccessKey";
/// Optional key of the security token of temporary credentials.
pub const SECURITY_TOKEN: &str = "securityToken";

/// How long a read Secret is reused. Short, so rotated keys are used from the next poll on.
pub const SECRET_REUSE: Duration = Duration::from_secs(10);

/// Credentials and the Secret version they came from.
#[derive(Clone, Debug)]
pub struct LoadedCredentials {
    /// The keys.
    pub credentials: Credentials,
    /// The Secret's `resourceVersion`, to notice a change after a permanent failure.
    pub version: String,
}

/// Why no credentials could be had. Messages name the Secret and key but never a value.
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
        !matches!(self, Self::Unavailable { .. })
    }

    /// Stable CamelCase reason for conditions, metrics and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } | Self::KeyMissing { .. } | Self::NotText { .. } => {
                reasons::CREDENTIALS_NOT_FOUND
            }
            Self::Forbidden { .. } => reasons::CREDENTIALS_FORBIDDEN,
            Self::Unavailable { .. } => reasons::KUBERNETES_UNAVAILABLE,
        }
    }
}

type SecretKey = (String, String);
type SecretRead = (Instant, Result<LoadedCredentials, CredentialsError>);

/// Reads credential Secrets through the Kubernetes API, reusing each read for [`SECRET_REUSE`],
/// and reading each Secret once at a time.
pub struct SecretReader {
    client: kube::Client,
    recent: Mutex<HashMap<SecretKey, SecretRead>>,
    /// One gate per Secret being read: polls that miss the reuse window together wait for one
    /// read and share it, rather than each reading the Secret.
    gates: Mutex<HashMap<SecretKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl SecretReader {
    /// A reader using `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            recent: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials in Secret `namespace/name`. `fresh` skips the reuse window, for the poll
    /// right after the keys were refused.
    pub async fn credentials(
        &self,
        namespace: &str,
        name: &str,
        fresh: bool,
    ) -> Result<LoadedCredentials, CredentialsError> {
        let key = (namespace.to_owned(), name.to_owned());
        if !fresh && let Some(reused) = self.reusable(&key) {
            return reused;
        }
        let gate = self.gate(&key);
        let _reading = gate.lock().await;
        // Read by another poll while this one waited.
        if !fresh && let Some(reused) = self.reusable(&key) {
            return reused;
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let result = match api.get_opt(name).await {
            Ok(Some(secret)) => credentials_from_secret(namespace, name, &secret),
            Ok(None) => Err(CredentialsError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            Err(kube::Error::Api(status)) if status.code == 403 => {
                Err(CredentialsError::Forbidden {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            Err(error) => Err(CredentialsError::Unavailable {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                reason: error.to_string(),
            }),
        };
        if !matches!(result, Err(CredentialsError::Unavailable { .. })) {
            self.lock().insert(key, (Instant::now(), result.clone()));
        }
        result
    }

    /// Forgets every read of Secrets in `namespace` named `name`, e.g. after a 401.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }

    fn reusable(&self, key: &SecretKey) -> Option<Result<LoadedCredentials, CredentialsError>> {
        let mut recent = self.lock();
        recent.retain(|_, (at, _)| at.elapsed() < SECRET_REUSE);
        recent.get(key).map(|(_, result)| result.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, SecretRead>> {
        lock(&self.recent)
    }

    /// The gate of Secret `key`; gates nobody holds or waits for are dropped on the way.
    fn gate(&self, key: &SecretKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = lock(&self.gates);
        gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        Arc::clone(gates.entry(key.clone()).or_default())
    }
}

/// Extracts the keys from a Secret's `data`.
pub fn credentials_from_secret(
    namespace: &str,
    name: &str,
    secret: &Secret,
) -> Result<LoadedCredentials, CredentialsError> {
    let text = |key: &'static str| -> Result<Option<String>, CredentialsError> {
        let Some(bytes) = secret.data.as_ref().and_then(|data| data.get(key)) else {
            return Ok(None);
        };
        let value = String::from_utf8(bytes.0.clone()).map_err(|_| CredentialsError::NotText {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key,
        })?;
        let value = value.trim().to_owned();
        Ok((!value.is_empty()).then_some(value))
    };
    let required = |key: &'static str| -> Result<String, CredentialsError> {
        text(key)?.ok_or_else(|| CredentialsError::KeyMissing {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key,
        })
    };
    let mut credentials = Credentials::new(required(ACCESS_KEY_ID)?, required(SECRET_ACCESS_KEY)?);
    if let Some(token) = text(SECURITY_TOKEN)? {
        credentials = credentials.with_security_token(token);
    }
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    Ok(LoadedCredentials {
        credentials,
        version,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn secret(entries: &[(&str, &[u8])]) -> Secret {
        let data: BTreeMap<String, ByteString> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
            .collect();
        Secret {
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn keys_and_optional_token_are_read() {
        let loaded = credentials_from_secret(
            "ns",
            "creds",
            &secret(&[
                (ACCESS_KEY_ID, b"AKEXAMPLE"),
                (SECRET_ACCESS_KEY, b"very-secret\n"),
                (SECURITY_TOKEN, b"token"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.credentials.key_id(), "AKEXAMPLE");
        assert!(loaded.credentials.security_token.is_some());
    }

    #[test]
    fn a_missing_key_is_named_without_values() {
        let error =
            credentials_from_secret("ns", "creds", &secret(&[(ACCESS_KEY_ID, b"AKEXAMPLE")]))
                .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("secretAccessKey") && message.contains("ns/creds"),
            "{message}"
        );
        assert!(!message.contains("AKEXAMPLE"));
        assert_eq!(error.reason(), "CredentialsNotFound");
        assert!(error.is_permanent());
    }

    #[test]
    fn an_empty_value_counts_as_missing() {
        let error = credentials_from_secret(
            "ns",
            "creds",
            &secret(&[(ACCESS_KEY_ID, b"AK"), (SECRET_ACCESS_KEY, b"  ")]),
        )
        .unwrap_err();
        assert!(matches!(
            error,
            CredentialsError::KeyMissing {
                key: SECRET_ACCESS_KEY,
                ..
            }
        ));
    }

    #[test]
    fn binary_values_are_refused() {
        let error = credentials_from_secret(
            "ns",
            "creds",
            &secret(&[(ACCESS_KEY_ID, b"AK"), (SECRET_ACCESS_KEY, &[0xff, 0xfe])]),
        )
        .unwrap_err();
        assert!(matches!(error, CredentialsError::NotText { .. }));
    }
}

#[cfg(test)]
mod reuse_tests {
    use crate::operator::testing::{Fixture, NAMESPACE, SECRET, SECRET_PATH};

    #[tokio::test]
    async fn polls_that_miss_the_reuse_window_together_share_one_read() {
        let fixture = Fixture::new().await;
        let secrets = &fixture.context.secrets;
        let reads = futures::future::join_all(
            (0..8).map(|_| secrets.credentials(NAMESPACE, SECRET, false)),
        )
        .await;
        assert!(reads.iter().all(Result::is_ok), "{reads:?}");
        assert_eq!(fixture.api.lines(), [format!("GET {SECRET_PATH}")]);

        // A fresh read is never served from the window.
        secrets
            .credentials(NAMESPACE, SECRET, true)
            .await
            .expect("read");
        assert_eq!(fixture.api.lines().len(), 2);
    }
}
