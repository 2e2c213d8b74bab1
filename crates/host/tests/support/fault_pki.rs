//! Certificates that must be refused, for the TLS faults: one issued by a
//! CA the client trusts but expired, one for another host name, and one
//! from a CA the client has never heard of. Generated once per test binary
//! with rcgen; the trusted CA is given to the instance as `CA Certificate`.

use std::sync::{Arc, OnceLock};

use futures_rustls::rustls::{ServerConfig, crypto};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A server certificate and its key, ready for a rustls server.
pub struct ServerCert {
    pub cert_der: CertificateDer<'static>,
    key_pem: String,
}

impl ServerCert {
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(crypto::ring::default_provider());
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("a test key parses");
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .expect("the test certificate and key match");
        Arc::new(config)
    }
}

pub struct FaultPki {
    /// The CA the instance trusts (PEM, for the `CA Certificate` property).
    pub trusted_ca_pem: String,
    /// Issued by the trusted CA for 127.0.0.1 and localhost: the good one.
    pub valid: ServerCert,
    /// Issued by the trusted CA for 127.0.0.1 and localhost; expired in 2021.
    pub expired: ServerCert,
    /// Issued by the trusted CA, valid, but only for `wrong.example`.
    pub wrong_name: ServerCert,
    /// Valid for 127.0.0.1 and localhost, issued by a CA nobody trusts.
    pub unknown_ca: ServerCert,
}

pub fn fault_pki() -> &'static FaultPki {
    static PKI: OnceLock<FaultPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let (trusted_pem, trusted) = authority("wsio fault-suite CA");
        let (_, unknown) = authority("wsio unknown CA");
        let local = ["127.0.0.1", "localhost"];
        FaultPki {
            trusted_ca_pem: trusted_pem,
            valid: issue(&trusted, &local, None),
            expired: issue(&trusted, &local, Some((2020, 2021))),
            wrong_name: issue(&trusted, &["wrong.example"], None),
            unknown_ca: issue(&unknown, &local, None),
        }
    })
}

fn authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("ECDSA P-256 key generation");
    let cert = params.self_signed(&key).expect("rcgen self-signs a CA");
    (cert.pem(), Issuer::new(params, key))
}

/// A server certificate for `names`; `years` = (not before, not after) on
/// 1 January, for one that is out of date.
fn issue(issuer: &Issuer<'_, KeyPair>, names: &[&str], years: Option<(i32, i32)>) -> ServerCert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("valid test names");
    params
        .distinguished_name
        .push(DnType::CommonName, "wsio fault-suite server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if let Some((from, to)) = years {
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(to, 1, 1);
    }
    let key = KeyPair::generate().expect("ECDSA P-256 key generation");
    let cert = params
        .signed_by(&key, issuer)
        .expect("rcgen signs a certificate");
    ServerCert {
        cert_der: cert.der().clone(),
        key_pem: key.serialize_pem(),
    }
}
