//! HTTPS for the simulator: a certificate and key, so tests can put a private CA or an untrusted
//! certificate in front of poolwatch (served by [`crate::https::TlsListener`]).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::sign::SingleCertAndKey;

use crate::https;

/// A PEM certificate chain and its private key.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads a certificate chain and key from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Ok(Self {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// The server configuration that presents this identity; `Err` says what is wrong with it.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let key = https::certified_key(&self.cert_pem, &self.key_pem)?;
        https::server_config(Arc::new(SingleCertAndKey::from(key))).map(Arc::new)
    }
}
