//! The demo server's TLS identity: a self-signed certificate for wss://
//! on this machine, made with rcgen.

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_rustls::rustls::{self, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its private key for serving `wss://`.
///
/// Made by [`TlsIdentity::self_signed`]; a client trusts it by adding
/// [`cert_der`](Self::cert_der) (or the file written by
/// [`write_cert_pem`](Self::write_cert_pem)) to its root store.
pub struct TlsIdentity {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl TlsIdentity {
    /// A fresh self-signed certificate valid for `localhost` and `127.0.0.1`,
    /// the only names a local demo server is reached by.
    pub fn self_signed() -> TlsIdentity {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        // Fixed, valid names and ring's key generation: a failure here is a
        // broken build or platform, not something a caller could handle.
        let certified = rcgen::generate_simple_self_signed(names)
            .expect("rcgen failed to generate a self-signed certificate for localhost");
        TlsIdentity {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
            cert_der: certified.cert.der().clone(),
            key_der: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
        }
    }

    /// The certificate, PEM encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM encoded.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate, DER encoded: what a rustls `RootCertStore` takes.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The private key, DER encoded.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }

    /// Writes the certificate (never the key) as PEM, so a user can point
    /// the module's trusted-certificate setting at it.
    pub fn write_cert_pem(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, &self.cert_pem)
    }

    /// A rustls server configuration presenting this identity (ring provider,
    /// safe default protocol versions, no client authentication).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], self.key_der())?;
        Ok(Arc::new(config))
    }
}

// By hand: rustls keeps private keys from being `Clone` so that copies are
// deliberate (`clone_key`); this one is, servers and tests share identities.
impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
        }
    }
}

impl std::fmt::Debug for TlsIdentity {
    /// Shows the certificate only: a private key has no business in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}
