//! TLS for WSS: the rustls client configuration, built once per instance.
//!
//! Server certificates are verified against the webpki (Mozilla) roots plus
//! the `CA Certificate` property (or only that, with `Trust Only Given CA`),
//! extra roots from [`crate::instance::Options`], and a PEM file named by
//! `WSIO_EXTRA_CA_FILE`. `Pin SHA-256` replaces CA and host-name checks
//! with an exact certificate fingerprint (the safe answer for self-signed
//! devices); `Skip Certificate Verification (insecure)` accepts anything and
//! the driver warns on every connection. Both still check the handshake
//! signatures, so the server must hold the certificate's private key.
//! `Client Certificate` + `Client Key` enable mutual TLS.

use crate::properties::TlsSettings;
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use futures_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use futures_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use futures_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use std::fmt;
use std::sync::Arc;

/// The environment variable naming a PEM file of extra trusted roots.
pub const EXTRA_CA_ENV: &str = "WSIO_EXTRA_CA_FILE";

/// Parses every certificate in a PEM text. `what` names the source in errors.
pub fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(format!(
            "{what} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        )),
        Err(e) => Err(format!("{what} is not valid PEM: {e}")),
    }
}

/// The extra roots named by `WSIO_EXTRA_CA_FILE`, if set.
pub fn roots_from_env() -> Result<Vec<CertificateDer<'static>>, String> {
    let Some(path) = std::env::var_os(EXTRA_CA_ENV) else {
        return Ok(Vec::new());
    };
    let what = format!("{EXTRA_CA_ENV} file {}", path.to_string_lossy());
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read {what}: {e}"))?;
    certificates_from_pem(&pem, &what)
}

/// SHA-256 of a DER certificate.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// "AB:CD:…", the way `openssl x509 -fingerprint` shows it.
pub fn fingerprint_text(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A client configuration for the instance's TLS settings. `extra_roots`
/// come from the Rust API options and the environment.
pub fn client_config(
    settings: &TlsSettings,
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    // An explicit provider: async-tungstenite's dependency tree may enable
    // more than one, and rustls refuses to guess.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let builder = if let Some(pin) = settings.pin_sha256 {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Accept {
                pin: Some(pin),
                provider,
            }))
    } else if settings.skip_verification {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Accept {
                pin: None,
                provider,
            }))
    } else {
        let mut roots = RootCertStore::empty();
        if !settings.trust_only_given_ca {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for cert in extra_roots {
                roots
                    .add(cert.clone())
                    .map_err(|e| format!("an extra root certificate is not usable: {e}"))?;
            }
        }
        for cert in &settings.ca_certificates {
            roots
                .add(cert.clone())
                .map_err(|e| format!("CA Certificate is not a usable CA certificate: {e}"))?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match &settings.client_identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| format!("Client Certificate and Client Key do not work together: {e}"))?,
    };
    Ok(Arc::new(config))
}

/// Accepts the server certificate by its pin, or (pin None) any
/// certificate; the handshake signatures are still verified.
struct Accept {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pin {
            Some(pin) => write!(f, "pinned to SHA-256 {}", fingerprint_text(&pin)),
            None => f.write_str("no certificate verification (insecure)"),
        }
    }
}

/// The pin did not match (an error type rustls can carry).
#[derive(Debug)]
struct PinMismatch {
    got: [u8; 32],
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server certificate SHA-256 {} does not match Pin SHA-256",
            fingerprint_text(&self.got)
        )
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for Accept {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) => {
                let got = fingerprint(end_entity);
                if got == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                        OtherError(Arc::new(PinMismatch { got })),
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether a TLS error is about certificates (retrying cannot help).
pub fn is_certificate_failure(error: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    match error {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => true,
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::CertificateRequired
                | A::AccessDenied
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_name_the_source() {
        let e = certificates_from_pem(b"hello", "CA file x.pem").unwrap_err();
        assert!(e.contains("CA file x.pem holds no PEM certificate"));
    }

    #[test]
    fn configs_build_for_every_verification_mode() {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let certs = certificates_from_pem(key.cert.pem().as_bytes(), "test").unwrap();
        let mut settings = TlsSettings {
            ca_certificates: certs.clone(),
            ..TlsSettings::default()
        };
        client_config(&settings, &[]).unwrap();
        settings.trust_only_given_ca = true;
        client_config(&settings, &[]).unwrap();
        settings.pin_sha256 = Some(fingerprint(&certs[0]));
        client_config(&settings, &[]).unwrap();
    }

    #[test]
    fn fingerprints_print_like_openssl() {
        let fp = [0xABu8; 32];
        let text = fingerprint_text(&fp);
        assert!(text.starts_with("AB:AB:"));
        assert_eq!(text.len(), 32 * 3 - 1);
    }
}
