//! Turns the chosen [`Source`] into credentials: keys as they are, the keyless sources through
//! the client's exchanges (IAM federation, CCE Pod Identity, the ECS metadata service). Token
//! files are read here, at the moment of the exchange, as the SDK re-reads them on every
//! renewal: kubelet rotates projected tokens.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use secrecy::SecretString;

use crate::modelarts::keyless::{FEDERATION_DURATION, IdTokenExchange, MetadataSession};
use crate::modelarts::{Credentials, Endpoint, ModelArtsClient, ModelArtsError};

use super::UsageError;
use super::chain::{ENV_ID_TOKEN_FILE, ENV_POD_IDENTITY_TOKEN_FILE, Origin, Source};

/// Largest token file read: projected ServiceAccount tokens are around a kilobyte.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Credentials ready to sign with.
#[derive(Debug)]
pub struct Resolved {
    /// The keys.
    pub credentials: Credentials,
    /// When temporary keys from a keyless source expire; `None` for keys given as they are.
    pub expires_at: Option<Timestamp>,
}

/// The clients the exchanges go through.
pub struct Clients<'a> {
    /// For IAM and Pod Identity: the command's timeouts, retries and CA bundle.
    pub main: &'a ModelArtsClient,
    /// For the metadata service: a short connect timeout and no retries, so that a machine
    /// that is not on Huawei Cloud fails fast.
    pub metadata: &'a ModelArtsClient,
}

/// Gets credentials from `source`. `iam` is the IAM endpoint, needed for federation. The outer
/// error is a token file that cannot be used (exit 2); the inner one a failed exchange (exit 1).
pub async fn credentials(
    source: &Source,
    clients: &Clients<'_>,
    iam: Option<&Endpoint>,
) -> Result<Result<Resolved, ModelArtsError>, UsageError> {
    let temporary = match source {
        Source::Keys { credentials, .. } => {
            return Ok(Ok(Resolved {
                credentials: credentials.clone(),
                expires_at: None,
            }));
        }
        Source::Federation {
            identity_provider_id,
            token_file,
            origin,
        } => {
            let what = match origin {
                Origin::Environment => ENV_ID_TOKEN_FILE.to_owned(),
                Origin::Profile(path) => format!("id_token_file in {} [basic]", path.display()),
            };
            let id_token = read_token(token_file, &what)?;
            let Some(iam_endpoint) = iam else {
                return Err(UsageError(
                    "federation needs an IAM endpoint: pass --iam-endpoint or --region".to_owned(),
                ));
            };
            clients
                .main
                .exchange_id_token(IdTokenExchange {
                    iam_endpoint,
                    identity_provider_id,
                    id_token: &id_token,
                    duration: FEDERATION_DURATION,
                })
                .await
        }
        Source::PodIdentity { url, token_file } => {
            let token = read_token(token_file, ENV_POD_IDENTITY_TOKEN_FILE)?;
            clients.main.pod_identity_credentials(url, &token).await
        }
        Source::Metadata { endpoint } => {
            clients
                .metadata
                .metadata_credentials(endpoint, &MetadataSession::default())
                .await
        }
    };
    Ok(temporary.map(|t| Resolved {
        credentials: t.credentials,
        expires_at: Some(t.expires_at),
    }))
}

/// How long to wait for the metadata service's connection: it answers in milliseconds on a
/// Huawei Cloud server, and anywhere else nothing answers at all (the SDK waits 3 s).
pub const METADATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait for a whole metadata answer.
pub const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads a token file (named by `what`: a variable or a profile key), trimmed. Messages name
/// the file and `what`, never the content.
pub fn read_token(path: &Path, what: &str) -> Result<SecretString, UsageError> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read ({e})")
        };
        UsageError(format!("the token file {shown} ({what}) {why}"))
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            UsageError(format!(
                "the token file {shown} ({what}) cannot be read ({e})"
            ))
        })?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(UsageError(format!(
            "the token file {shown} ({what}) is larger than {MAX_TOKEN_FILE_BYTES} bytes: it does not hold a token"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        UsageError(format!(
            "the token file {shown} ({what}) is not text: it does not hold a token"
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(UsageError(format!(
            "the token file {shown} ({what}) is empty"
        )));
    }
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn temp_file(tag: &str, content: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("poolwatch-token-{tag}-{}", std::process::id()));
        if let Err(e) = std::fs::write(&path, content) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }

    #[test]
    fn token_files_are_trimmed_and_problems_named_without_content() {
        let path = temp_file("ok", b"  header.payload.signature\n");
        let token = read_token(&path, "HUAWEICLOUD_SDK_ID_TOKEN_FILE");
        assert_eq!(
            token.map(|t| t.expose_secret().to_owned()).ok().as_deref(),
            Some("header.payload.signature")
        );
        let _ = std::fs::remove_file(&path);

        for (tag, content, expected) in [
            ("blank", &b" \n"[..], "is empty"),
            ("binary", &b"secret-value\xff"[..], "is not text"),
        ] {
            let path = temp_file(tag, content);
            let Err(UsageError(msg)) = read_token(&path, "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            else {
                panic!("{tag} must fail")
            };
            assert!(msg.contains(expected), "{msg}");
            assert!(
                msg.contains("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
                "{msg}"
            );
            assert!(!msg.contains("secret-value"), "{msg}");
            let _ = std::fs::remove_file(&path);
        }
        let Err(UsageError(msg)) = read_token(Path::new("/nonexistent/token"), "X") else {
            panic!("a missing file must fail")
        };
        assert!(
            msg.contains("/nonexistent/token (X) does not exist"),
            "{msg}"
        );
    }
}
