//! TLS for WSS: the rustls client configuration, shared by the instances
//! whose TLS settings are the same.
//!
//! Server certificates are verified against the webpki (Mozilla) roots plus
//! the `CA Certificate` property (or only that, with `Trust Only Given CA`),
//! extra roots from [`Options`](crate::Options), and a PEM file named by
//! `WSIO_EXTRA_CA_FILE`. `Pin SHA-256` replaces CA and host-name checks
//! with an exact certificate fingerprint (the safe answer for self-signed
//! devices). A server certificate that is byte for byte one given in `CA
//! Certificate` is trusted even when it is marked as a CA, as `openssl req
//! -x509` makes them ([`given`]). `Skip Certificate Verification
//! (insecure)` accepts anything and
//! the driver warns on every connection. Both still check the handshake
//! signatures, so the server must hold the certificate's private key.
//! `Client Certificate` + `Client Key` enable mutual TLS.
//!
//! A configuration with the webpki roots is large (the root store, and
//! rustls' session cache), larger than the rest of an idle instance, so
//! [`shared_client_config`] hands instances with identical settings one
//! `Arc` (see there for what "identical" means).
//!
//! [`explain`] turns rustls' errors into the text a person reads.

mod explain;
mod given;

pub(crate) use explain::explain_io;
use explain::{explain, explain_certificate};

use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use futures_rustls::rustls::client::WebPkiServerVerifier;
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
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// A client certificate chain and its private key, for mutual TLS.
#[derive(Clone)]
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientIdentity({} certificate(s), key <redacted>)",
            self.chain.len()
        )
    }
}

/// How the server's certificate is checked, and what the client presents.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Trusted in addition to the public roots (or instead, see below).
    pub ca_certificates: Vec<CertificateDer<'static>>,
    pub trust_only_given_ca: bool,
    pub client_identity: Option<ClientIdentity>,
    /// Accept only a certificate with this SHA-256 fingerprint.
    pub pin_sha256: Option<[u8; 32]>,
    /// Accept any certificate (warned about on every connection).
    pub skip_verification: bool,
}

impl TlsSettings {
    /// Whether any TLS property differs from its default.
    pub fn is_configured(&self) -> bool {
        !self.ca_certificates.is_empty()
            || self.trust_only_given_ca
            || self.client_identity.is_some()
            || self.pin_sha256.is_some()
            || self.skip_verification
    }
}

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

/// What makes two client configurations differ: a SHA-256 over every input
/// of [`client_config`]. Certificates and keys enter by content, not by the
/// file they came from: properties and `WSIO_EXTRA_CA_FILE` are read when an
/// instance is created, so an instance created after a CA file changed gets
/// a configuration of its own, while instances created from the same bytes
/// share one. Only the digest is kept, never the client key itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ConfigKey([u8; 32]);

impl ConfigKey {
    fn of(settings: &TlsSettings, extra_roots: &[CertificateDer<'static>]) -> ConfigKey {
        // Destructured so that a new TLS setting cannot be forgotten here.
        let TlsSettings {
            ca_certificates,
            trust_only_given_ca,
            client_identity,
            pin_sha256,
            skip_verification,
        } = settings;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        // Every variable-length part is prefixed by its length, so no two
        // different inputs can run together into the same bytes.
        let mut bytes = |part: &[u8]| {
            digest.update(&(part.len() as u64).to_le_bytes());
            digest.update(part);
        };
        bytes(&[
            u8::from(*trust_only_given_ca),
            u8::from(*skip_verification),
            u8::from(pin_sha256.is_some()),
            u8::from(client_identity.is_some()),
        ]);
        bytes(pin_sha256.as_ref().map_or(&[][..], |pin| &pin[..]));
        for certs in [ca_certificates.as_slice(), extra_roots] {
            bytes(&(certs.len() as u64).to_le_bytes());
            for cert in certs {
                bytes(cert);
            }
        }
        if let Some(identity) = client_identity {
            bytes(&(identity.chain.len() as u64).to_le_bytes());
            for cert in &identity.chain {
                bytes(cert);
            }
            bytes(identity.key.secret_der());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.finish().as_ref());
        ConfigKey(key)
    }
}

impl fmt::Debug for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest over the client key is no secret, but nothing needs it.
        f.write_str("ConfigKey(..)")
    }
}

/// The client configuration for these settings, shared with every live
/// instance whose settings and extra roots are byte-for-byte the same (a
/// digest of both is the cache key); built with [`client_config`] when there
/// is none. The
/// cache holds only `Weak` references: a configuration is freed with the
/// last instance that uses it. Instances that share a configuration also
/// share its TLS session cache, which is safe because they trust the same
/// roots and present the same client identity.
pub fn shared_client_config(
    settings: &TlsSettings,
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    static CACHE: LazyLock<Mutex<HashMap<ConfigKey, Weak<ClientConfig>>>> =
        LazyLock::new(Mutex::default);
    let key = ConfigKey::of(settings, extra_roots);
    // Built under the lock: two instances created at once with the same
    // settings must not build two configurations. A poisoned lock only
    // means another builder panicked; the map itself is still whole.
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(config) = cache.get(&key).and_then(Weak::upgrade) {
        return Ok(config);
    }
    let config = client_config(settings, extra_roots)?;
    // Forget configurations no instance uses any more, so the map does not
    // grow with every CA file an instance was ever created with.
    cache.retain(|_, config| config.strong_count() > 0);
    cache.insert(key, Arc::downgrade(&config));
    Ok(config)
}

/// A new client configuration for these TLS settings. `extra_roots` come
/// from the Rust API options and the environment. Instances use
/// [`shared_client_config`].
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
                roots.add(cert.clone()).map_err(|e| {
                    format!(
                        "an extra root certificate is not usable: {}",
                        explain_certificate(&e)
                    )
                })?;
            }
        }
        for cert in &settings.ca_certificates {
            roots.add(cert.clone()).map_err(|e| {
                format!(
                    "CA Certificate is not a usable CA certificate: {}",
                    explain_certificate(&e)
                )
            })?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(given::TrustGivenCertificates {
                webpki,
                given: settings.ca_certificates.clone(),
            }))
    };
    let config = match &settings.client_identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| {
                format!(
                    "Client Certificate and Client Key do not work together: {}",
                    explain(&e)
                )
            })?,
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

    fn self_signed() -> Vec<CertificateDer<'static>> {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        certificates_from_pem(key.cert.pem().as_bytes(), "test").unwrap()
    }

    fn client_identity() -> ClientIdentity {
        let client = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(client.signing_key.serialize_der());
        ClientIdentity {
            chain: certificates_from_pem(client.cert.pem().as_bytes(), "test").unwrap(),
            key: Arc::new(key.unwrap()),
        }
    }

    #[test]
    fn identical_settings_share_one_config_and_any_difference_gets_its_own() {
        let ca = self_signed();
        let settings = TlsSettings {
            ca_certificates: ca.clone(),
            ..TlsSettings::default()
        };
        let first = shared_client_config(&settings, &[]).unwrap();
        let same = shared_client_config(&settings.clone(), &[]).unwrap();
        assert!(Arc::ptr_eq(&first, &same), "same settings, same config");

        let other_ca = TlsSettings {
            ca_certificates: self_signed(),
            ..TlsSettings::default()
        };
        let only_given = TlsSettings {
            trust_only_given_ca: true,
            ..settings.clone()
        };
        let pinned = TlsSettings {
            pin_sha256: Some(fingerprint(&ca[0])),
            ..settings.clone()
        };
        let unverified = TlsSettings {
            skip_verification: true,
            ..settings.clone()
        };
        let mutual = TlsSettings {
            client_identity: Some(client_identity()),
            ..settings.clone()
        };
        let others = [
            shared_client_config(&other_ca, &[]).unwrap(),
            shared_client_config(&only_given, &[]).unwrap(),
            shared_client_config(&pinned, &[]).unwrap(),
            shared_client_config(&unverified, &[]).unwrap(),
            shared_client_config(&mutual, &[]).unwrap(),
            // The same properties with other extra roots (Options, or a
            // changed WSIO_EXTRA_CA_FILE).
            shared_client_config(&settings, &self_signed()).unwrap(),
        ];
        for (i, other) in others.iter().enumerate() {
            assert!(!Arc::ptr_eq(&first, other), "setting {i} differs");
            for later in &others[i + 1..] {
                assert!(!Arc::ptr_eq(other, later));
            }
        }
    }

    #[test]
    fn a_shared_config_is_freed_with_its_last_user() {
        let settings = TlsSettings {
            ca_certificates: self_signed(),
            ..TlsSettings::default()
        };
        let config = shared_client_config(&settings, &[]).unwrap();
        let weak = Arc::downgrade(&config);
        drop(config);
        assert!(
            weak.upgrade().is_none(),
            "the cache holds no strong reference"
        );
        // And a new user gets a working config again.
        shared_client_config(&settings, &[]).unwrap();
    }

    #[test]
    fn the_cache_key_shows_nothing_of_the_client_key() {
        let settings = TlsSettings {
            client_identity: Some(client_identity()),
            ..TlsSettings::default()
        };
        assert_eq!(
            format!("{:?}", ConfigKey::of(&settings, &[])),
            "ConfigKey(..)"
        );
    }

    #[test]
    fn fingerprints_print_like_openssl() {
        let fp = [0xABu8; 32];
        let text = fingerprint_text(&fp);
        assert!(text.starts_with("AB:AB:"));
        assert_eq!(text.len(), 32 * 3 - 1);
    }
}
