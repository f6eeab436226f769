//! Access keys from the Secret a watch names, read on demand (the operator may only `get`
//! Secrets, never list or watch them) and shared for a few seconds between the watches that name
//! the same Secret, so hundreds of watches on one key cost one read, not hundreds.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::modelarts::Credentials;

use super::credentials::{CredentialsError, LoadedCredentials};
use super::reads::SharedReads;

/// Key of the access key id in the Secret.
pub const ACCESS_KEY_ID: &str = "accessKeyId";
/// Key of the secret access key in the Secret.
pub const SECRET_ACCESS_KEY: &str = "secretAccessKey";
/// Optional key of the security token of temporary credentials.
pub const SECURITY_TOKEN: &str = "securityToken";

/// The longest access key id accepted. IAM issues ids of 20 characters (permanent keys) or
/// a few dozen (temporary ones); an id is signed into every request and keys the shared calls,
/// so an absurd one is refused before it costs anything.
pub const MAX_ACCESS_KEY_ID_CHARS: usize = 128;

/// Whether `id` can be an access key id that IAM issued: ASCII letters and digits, at most
/// [`MAX_ACCESS_KEY_ID_CHARS`]. Says what is wrong without quoting the id.
pub fn check_access_key_id(id: &str) -> Result<(), &'static str> {
    if id.len() > MAX_ACCESS_KEY_ID_CHARS {
        return Err("is longer than the 128 characters of any access key id IAM issues");
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(
            "has characters that IAM never puts in an access key id (only letters and digits)",
        );
    }
    Ok(())
}

/// How long a read Secret is reused. Short, so rotated keys are used from the next poll on.
pub const SECRET_REUSE: Duration = Duration::from_secs(10);

type SecretKey = (String, String);

/// Reads credential Secrets through the Kubernetes API, reusing each read for [`SECRET_REUSE`],
/// and reading each Secret once at a time.
pub struct SecretReader {
    client: kube::Client,
    reads: SharedReads<SecretKey, Result<LoadedCredentials, CredentialsError>>,
}

impl SecretReader {
    /// A reader using `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            reads: SharedReads::default(),
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
        self.reads
            .get(&key, fresh, async {
                let result = self.read(namespace, name).await;
                // A Kubernetes hiccup is not remembered: the next poll asks again.
                let reuse = if matches!(result, Err(CredentialsError::Unavailable { .. })) {
                    Duration::ZERO
                } else {
                    SECRET_REUSE
                };
                (result, reuse)
            })
            .await
    }

    /// Forgets every read of Secrets in `namespace` named `name`, e.g. after a 401.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.reads.forget(&(namespace.to_owned(), name.to_owned()));
    }

    async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<LoadedCredentials, CredentialsError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
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
        }
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
    let access_key_id = required(ACCESS_KEY_ID)?;
    if let Err(problem) = check_access_key_id(&access_key_id) {
        return Err(CredentialsError::InvalidAccessKeyId {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            problem,
        });
    }
    let mut credentials = Credentials::new(access_key_id, required(SECRET_ACCESS_KEY)?);
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
    fn access_key_ids_iam_never_issues_are_refused_without_quoting_them() {
        for bad in [
            "A".repeat(129),
            "AK EXAMPLE".to_owned(),
            "AK/../x".to_owned(),
            "AKÉ".to_owned(),
        ] {
            let error = credentials_from_secret(
                "ns",
                "creds",
                &secret(&[(ACCESS_KEY_ID, bad.as_bytes()), (SECRET_ACCESS_KEY, b"s")]),
            )
            .unwrap_err();
            assert_eq!(
                error.reason(),
                crate::operator::reasons::INVALID_CREDENTIALS
            );
            assert!(error.is_permanent());
            let message = error.to_string();
            assert!(!message.contains(&bad), "{message}");
            assert!(
                message.contains("Secret ns/creds") && message.contains("accessKeyId"),
                "{message}"
            );
        }
        assert!(check_access_key_id(&"A".repeat(128)).is_ok());
        assert!(check_access_key_id("HPUAEXAMPLE0123456789").is_ok());
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
