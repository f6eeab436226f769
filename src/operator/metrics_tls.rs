//! The certificate `/metrics` serves over HTTPS: `tls.crt` and `tls.key` of `--metrics-cert-dir`
//! (the names cert-manager writes and controller-runtime's cert watcher reads), read again when
//! they change, or else a self-signed certificate made at start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tracing::{info, warn};

use crate::https;

/// The certificate chain's file in `--metrics-cert-dir`.
pub const CERT_FILE: &str = "tls.crt";
/// The private key's file in `--metrics-cert-dir`.
pub const KEY_FILE: &str = "tls.key";
/// How often the files are looked at for a new certificate (a renewed Secret reaches a mounted
/// volume within about a minute; this adds little to that).
const RELOAD_PERIOD: Duration = Duration::from_secs(5);

/// Why `/metrics` has no certificate to serve. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file of `--metrics-cert-dir` could not be read.
    #[error(
        "cannot read {} (--metrics-cert-dir must hold {CERT_FILE} and {KEY_FILE}): {source}",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The files were read but are no usable certificate and key.
    #[error("{CERT_FILE} and {KEY_FILE} in {} (--metrics-cert-dir): {reason}", dir.display())]
    Invalid {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with them.
        reason: String,
    },
    /// No self-signed certificate could be made.
    #[error("cannot make a self-signed certificate for /metrics: {0}")]
    SelfSigned(String),
    /// The TLS server could not be configured.
    #[error("cannot set up TLS for /metrics: {0}")]
    Setup(String),
}

/// The TLS configuration of `/metrics`: the certificate of `cert_dir`, kept current by a task
/// spawned here, or a self-signed one without a directory.
pub async fn server_config(cert_dir: Option<&Path>) -> Result<Arc<ServerConfig>, CertificateError> {
    let serving = match cert_dir {
        Some(dir) => {
            let (serving, watcher) = ServingCertificate::from_dir(dir).await?;
            tokio::spawn(watcher);
            serving
        }
        None => ServingCertificate::self_signed()?,
    };
    https::server_config(serving)
        .map(Arc::new)
        .map_err(CertificateError::Setup)
}

/// The certificate presented to each new connection; replaced when the files change.
#[derive(Debug)]
pub struct ServingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

impl ServingCertificate {
    fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(key)),
        })
    }

    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }

    /// A certificate for `localhost` and `127.0.0.1`, signed by its own key: scrapers skip its
    /// verification (Prometheus' `insecureSkipVerify`) or pin it; a cert dir is for the rest.
    pub fn self_signed() -> Result<Arc<Self>, CertificateError> {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .map_err(|e| CertificateError::SelfSigned(e.to_string()))?;
        let key = https::certified_key(
            generated.cert.pem().as_bytes(),
            generated.signing_key.serialize_pem().as_bytes(),
        )
        .map_err(CertificateError::SelfSigned)?;
        Ok(Self::new(key))
    }

    /// The certificate of `dir`, and a task that keeps it current: every [`RELOAD_PERIOD`] the
    /// files are read, and a changed pair that fits together replaces the served one. A changed
    /// pair that does not (a renewal half written, a broken Secret) is reported and the last good
    /// certificate stays.
    pub async fn from_dir(
        dir: &Path,
    ) -> Result<(Arc<Self>, impl Future<Output = ()> + Send + use<>), CertificateError> {
        let files = read_pair(dir).await?;
        let key = parse(dir, &files)?;
        let serving = Self::new(key);
        let watcher = watch(Arc::clone(&serving), dir.to_path_buf(), files);
        Ok((serving, watcher))
    }
}

/// The certificate and key files' contents.
type Pair = (Vec<u8>, Vec<u8>);

async fn read_pair(dir: &Path) -> Result<Pair, CertificateError> {
    let read = |name: &str| {
        let path = dir.join(name);
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|source| CertificateError::Read { path, source })
        }
    };
    Ok((read(CERT_FILE).await?, read(KEY_FILE).await?))
}

fn parse(dir: &Path, (cert, key): &Pair) -> Result<CertifiedKey, CertificateError> {
    https::certified_key(cert, key).map_err(|reason| CertificateError::Invalid {
        dir: dir.to_path_buf(),
        reason,
    })
}

async fn watch(serving: Arc<ServingCertificate>, dir: PathBuf, mut served: Pair) {
    let mut tick = tokio::time::interval(RELOAD_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // The pair last found broken, so that it is reported once, not every period.
    let mut refused: Option<Pair> = None;
    loop {
        tick.tick().await;
        let files = match read_pair(&dir).await {
            Ok(files) => files,
            Err(error) => {
                warn!(%error, "keeping the last good /metrics certificate");
                continue;
            }
        };
        if files == served || refused.as_ref() == Some(&files) {
            continue;
        }
        match parse(&dir, &files) {
            Ok(key) => {
                serving.replace(key);
                served = files;
                refused = None;
                info!(dir = %dir.display(), "serving the renewed /metrics certificate");
            }
            Err(error) => {
                warn!(%error, "keeping the last good /metrics certificate");
                refused = Some(files);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair(name: &str) -> (String, String) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    fn served(serving: &ServingCertificate) -> Vec<u8> {
        serving.current.read().unwrap().cert[0].to_vec()
    }

    /// A scratch certificate directory, removed when dropped (a failed assertion included).
    struct CertDir(PathBuf);

    impl Drop for CertDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for CertDir {
        type Target = PathBuf;

        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    fn dir_with(name: &str, (cert, key): &(String, String)) -> CertDir {
        let dir = std::env::temp_dir().join(format!(
            "poolwatch-metrics-tls-{name}-{}-{:x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CERT_FILE), cert).unwrap();
        std::fs::write(dir.join(KEY_FILE), key).unwrap();
        CertDir(dir)
    }

    #[test]
    fn a_self_signed_certificate_is_made() {
        let serving = ServingCertificate::self_signed().unwrap();
        assert!(!served(&serving).is_empty());
    }

    #[tokio::test]
    async fn missing_or_broken_files_name_the_flag_and_the_file() {
        let empty = dir_with("missing", &pem_pair("a"));
        std::fs::remove_file(empty.join(KEY_FILE)).unwrap();
        let error = ServingCertificate::from_dir(&empty).await.err().unwrap();
        let text = error.to_string();
        assert!(
            text.contains("tls.key") && text.contains("--metrics-cert-dir"),
            "{text}"
        );

        let (cert, _) = pem_pair("a");
        let (_, other_key) = pem_pair("b");
        let mismatched = dir_with("mismatched", &(cert, other_key));
        let text = ServingCertificate::from_dir(&mismatched)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            text.contains("do not fit together") && text.contains("--metrics-cert-dir"),
            "{text}"
        );
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewed_pair_is_served_and_a_broken_one_is_not() {
        let first = pem_pair("first");
        let dir = dir_with("renewed", &first);
        let (serving, watcher) = ServingCertificate::from_dir(&dir).await.unwrap();
        let before = served(&serving);
        let task = tokio::spawn(watcher);

        // Half a renewal: a new certificate with the old key. The old pair stays.
        let second = pem_pair("second");
        std::fs::write(dir.join(CERT_FILE), &second.0).unwrap();
        tokio::time::sleep(RELOAD_PERIOD * 2).await;
        assert_eq!(served(&serving), before);

        // The whole renewal: served from the next period on.
        std::fs::write(dir.join(KEY_FILE), &second.1).unwrap();
        let deadline = tokio::time::Instant::now() + RELOAD_PERIOD * 3;
        while served(&serving) == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the renewed pair is never served"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        task.abort();
    }
}
