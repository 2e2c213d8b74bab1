//! Server certificate verification against the trusted roots, plus one
//! exception: a server certificate that is byte for byte a certificate
//! given in `CA Certificate`.
//!
//! `openssl req -x509` marks the certificate it makes `CA:TRUE`; a device
//! serving such a self-signed certificate fails webpki with
//! `CaUsedAsEndEntity` even when the integrator gave exactly that
//! certificate as `CA Certificate` (Python's ssl and Node accept it). The
//! integrator has said to trust these bytes, so they are trusted as the
//! server's certificate too; the validity dates and the host name are still
//! checked, and the handshake signatures still prove that the server holds
//! the certificate's key. Any other CA certificate presented as a server's
//! own is still refused.

use futures_rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use futures_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use futures_rustls::rustls::client::{WebPkiServerVerifier, verify_server_name};
use futures_rustls::rustls::server::ParsedCertificate;
use futures_rustls::rustls::{
    self, CertificateError, DigitallySignedStruct, OtherError, SignatureScheme,
};
use std::sync::Arc;

/// rustls' webpki verifier, and the certificates given in `CA Certificate`.
#[derive(Debug)]
pub(super) struct TrustGivenCertificates {
    pub(super) webpki: Arc<WebPkiServerVerifier>,
    pub(super) given: Vec<CertificateDer<'static>>,
}

/// Whether `error` is webpki's refusal of a CA certificate as a server's.
fn is_ca_used_as_end_entity(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(e)))
            if matches!(e.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
    )
}

impl ServerCertVerifier for TrustGivenCertificates {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refusal = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refusal) => refusal,
        };
        let given = self
            .given
            .iter()
            .any(|cert| cert.as_ref() == end_entity.as_ref());
        if !given || !is_ca_used_as_end_entity(&refusal) {
            return Err(refusal);
        }
        // webpki checks an end entity's validity dates before its basic
        // constraints: a certificate outside its dates fails with
        // CertExpired / CertNotValidYet, never CaUsedAsEndEntity, so the
        // dates of this one have passed (the tests pin this with an
        // expired certificate). The host name has not been checked yet.
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_rustls::rustls::RootCertStore;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use std::time::Duration;

    /// A self-signed certificate for `names`, CA:TRUE like `openssl req -x509`.
    fn self_signed_ca(names: &[&str]) -> CertificateDer<'static> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verifier(given: &[CertificateDer<'static>]) -> TrustGivenCertificates {
        let mut roots = RootCertStore::empty();
        for cert in given {
            roots.add(cert.clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        TrustGivenCertificates {
            webpki: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
            given: given.to_vec(),
        }
    }

    fn verify(
        v: &TrustGivenCertificates,
        cert: &CertificateDer<'_>,
        name: &str,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], now)
    }

    #[test]
    fn only_the_given_ca_certificate_itself_is_accepted_as_the_servers() {
        let device = self_signed_ca(&["localhost", "127.0.0.1"]);
        let other = self_signed_ca(&["localhost", "127.0.0.1"]);
        let v = verifier(std::slice::from_ref(&device));
        let now = UnixTime::now();
        verify(&v, &device, "127.0.0.1", now).unwrap();
        verify(&v, &device, "localhost", now).unwrap();
        let refused = verify(&v, &other, "localhost", now).unwrap_err();
        assert!(is_ca_used_as_end_entity(&refused), "{refused:?}");
        let wrong_name = verify(&v, &device, "10.0.0.1", now).unwrap_err();
        assert!(
            matches!(
                wrong_name,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{wrong_name:?}"
        );
        // rcgen's certificates are valid until 4096; ten thousand years on
        // the dates are still checked.
        let far_future = UnixTime::since_unix_epoch(Duration::from_secs(10_000 * 365 * 86_400));
        let expired = verify(&v, &device, "localhost", far_future).unwrap_err();
        assert!(
            matches!(
                expired,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{expired:?}"
        );
    }
}
