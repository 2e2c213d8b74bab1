//! TLS for WSS: the rustls client configuration, built once per instance.
//!
//! Server certificates are verified against the webpki (Mozilla) roots, plus
//! any extra roots: given through [`crate::instance::Options`] (tests, hosts
//! embedding the Rust API) or a PEM file named by the `WSIO_EXTRA_CA_FILE`
//! environment variable (a controller trusting a local server, e.g. the
//! `wsio demo-server --tls` certificate). Nothing here ever skips
//! verification.

use futures_rustls::pki_types::CertificateDer;
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
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

/// A client configuration trusting the webpki roots plus `extra_roots`.
pub fn client_config(extra_roots: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| format!("an extra root certificate is not usable: {e}"))?;
    }
    // An explicit provider: async-tungstenite's dependency tree may enable
    // more than one, and rustls refuses to guess.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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
    fn generated_certificates_parse_and_build_a_config() {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let certs = certificates_from_pem(key.cert.pem().as_bytes(), "test").unwrap();
        assert_eq!(certs.len(), 1);
        client_config(&certs).unwrap();
    }
}
