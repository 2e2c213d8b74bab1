//! The one test PKI, for the TLS options and the TLS faults: two unrelated
//! certificate authorities, a server certificate for `localhost` and
//! `127.0.0.1` issued by the first, server certificates that must be
//! refused (expired, for another name, from the unrelated CA), client
//! certificates (ECDSA P-256, Ed25519, RSA) issued by the first, and rustls
//! server configurations with or without client authentication.
//!
//! Everything is generated once per test binary with rcgen, except the RSA
//! client key: ring cannot generate RSA keys, so that one is a fixture file
//! (`fixtures/tls/client-rsa.key`, made once with `openssl genpkey`; test
//! material only, it protects nothing).

use std::sync::{Arc, OnceLock};

use futures_rustls::rustls::server::WebPkiClientVerifier;
use futures_rustls::rustls::{RootCertStore, ServerConfig, crypto};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SignatureAlgorithm, date_time_ymd,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The PKCS#8 PEM file of the RSA client key, relative to the crate root.
pub const RSA_CLIENT_KEY_FILE: &str = "fixtures/tls/client-rsa.key";

/// A certificate with its private key, in the forms the module's properties
/// (PEM) and rustls (DER) take.
pub struct Credential {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
}

impl Credential {
    fn issue(params: CertificateParams, key: KeyPair, issuer: &Issuer<'_, KeyPair>) -> Credential {
        let cert = params
            .signed_by(&key, issuer)
            .expect("rcgen signs a test certificate");
        Credential::of(&cert, &key)
    }

    fn of(cert: &Certificate, key: &KeyPair) -> Credential {
        Credential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
        }
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("a test key parses")
    }

    /// The certificate's SHA-256 fingerprint as 64 lower-case hex digits.
    pub fn sha256(&self) -> String {
        sha256_fingerprint(&self.cert_der)
    }

    /// A server configuration presenting this certificate, asking the
    /// client for none.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        server_config(self, None)
    }
}

/// A certificate authority that issues the test certificates.
pub struct Authority {
    pub credential: Credential,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ECDSA P-256 key generation");
        let cert = params
            .self_signed(&key)
            .expect("rcgen self-signs a test CA");
        let credential = Credential::of(&cert, &key);
        Authority {
            credential,
            issuer: Issuer::new(params, key),
        }
    }

    pub fn cert_pem(&self) -> &str {
        &self.credential.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.credential.cert_der
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[&str]) -> Credential {
        self.issue_server_valid(names, None)
    }

    /// A server certificate for `names`; `years` = (not before, not after)
    /// on 1 January, for one that is out of date.
    pub fn issue_server_valid(&self, names: &[&str], years: Option<(i32, i32)>) -> Credential {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("valid test server names");
        params
            .distinguished_name
            .push(DnType::CommonName, "wsio test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if let Some((from, to)) = years {
            params.not_before = date_time_ymd(from, 1, 1);
            params.not_after = date_time_ymd(to, 1, 1);
        }
        let key = KeyPair::generate().expect("ECDSA P-256 key generation");
        Credential::issue(params, key, &self.issuer)
    }

    /// A client certificate named `name` for `key`.
    pub fn issue_client(&self, name: &str, key: KeyPair) -> Credential {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Credential::issue(params, key, &self.issuer)
    }
}

/// Whether a server configuration asks the client for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A certificate issued by [`TestPki::ca`] is required.
    Required,
}

/// The test PKI: see the module comment. Get it with [`test_pki`].
pub struct TestPki {
    /// Issues every certificate below.
    pub ca: Authority,
    /// Unrelated to everything else: trusting only it must fail, and a
    /// client certificate it issued must be refused.
    pub other_ca: Authority,
    /// For `localhost` and `127.0.0.1`.
    pub server: Credential,
    /// Issued by `ca` for `localhost` and `127.0.0.1`; expired in 2021.
    pub expired: Credential,
    /// Issued by `ca`, valid, but only for `wrong.example`.
    pub wrong_name: Credential,
    /// For `localhost` and `127.0.0.1`, issued by `other_ca`.
    pub unknown_ca: Credential,
    pub client_ecdsa: Credential,
    pub client_ed25519: Credential,
    pub client_rsa: Credential,
    /// A client certificate issued by `other_ca`.
    pub client_untrusted: Credential,
}

/// The test PKI, generated on first use.
pub fn test_pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(TestPki::generate)
}

fn generate_key(algorithm: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(algorithm).expect("test key generation")
}

impl TestPki {
    fn generate() -> TestPki {
        let ca = Authority::new("wsio test CA");
        let other_ca = Authority::new("wsio unrelated test CA");
        let rsa_key = KeyPair::from_pem(&rsa_client_key_pem()).unwrap_or_else(|e| {
            panic!("{RSA_CLIENT_KEY_FILE} is not a PKCS#8 RSA key rcgen can use: {e}")
        });
        let local = ["localhost", "127.0.0.1"];
        TestPki {
            server: ca.issue_server(&local),
            expired: ca.issue_server_valid(&local, Some((2020, 2021))),
            wrong_name: ca.issue_server(&["wrong.example"]),
            unknown_ca: other_ca.issue_server(&local),
            client_ecdsa: ca.issue_client("wsio test client (ECDSA)", KeyPair::generate().unwrap()),
            client_ed25519: ca
                .issue_client("wsio test client (Ed25519)", generate_key(&PKCS_ED25519)),
            client_rsa: ca.issue_client("wsio test client (RSA)", rsa_key),
            client_untrusted: other_ca
                .issue_client("wsio untrusted client", KeyPair::generate().unwrap()),
            ca,
            other_ca,
        }
    }

    /// A server configuration presenting [`TestPki::server`], optionally
    /// requiring a client certificate issued by [`TestPki::ca`].
    pub fn server_config(&self, client_auth: ClientAuth) -> Arc<ServerConfig> {
        let client_ca = match client_auth {
            ClientAuth::None => None,
            ClientAuth::Required => Some(&self.ca),
        };
        server_config(&self.server, client_ca)
    }
}

/// A server configuration presenting `server`, requiring a client
/// certificate issued by `client_ca` when given.
fn server_config(server: &Credential, client_ca: Option<&Authority>) -> Arc<ServerConfig> {
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots
                .add(ca.cert_der().clone())
                .expect("the test CA is a valid root");
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .expect("client verifier for the test CA");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(vec![server.cert_der.clone()], server.key_der())
        .expect("the test server certificate and key match");
    Arc::new(config)
}

/// The RSA client key (PKCS#8 PEM) from [`RSA_CLIENT_KEY_FILE`].
pub fn rsa_client_key_pem() -> String {
    let path = format!("{}/../../{RSA_CLIENT_KEY_FILE}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The SHA-256 fingerprint of a DER certificate: 64 lower-case hex digits.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The same fingerprint as `openssl x509 -fingerprint -sha256` shows it:
/// upper-case byte pairs separated by colons.
pub fn sha256_fingerprint_colons(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
