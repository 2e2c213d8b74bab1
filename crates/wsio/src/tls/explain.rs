//! TLS failures in words a person can act on.
//!
//! rustls' own `Display` shows several of its errors as Rust `Debug` text
//! (`Other(OtherError(CaUsedAsEndEntity))`, `DnsName("…")`, times as UNIX
//! seconds). The driver shows [`explain`]'s text instead: times as RFC 3339
//! dates, the names a certificate is valid for as plain names, what to
//! check; an error this module has no words for becomes its variant name in
//! lower-case words, never `Debug` output with its braces and quotes.

use futures_rustls::pki_types::UnixTime;
use futures_rustls::rustls::{self, CertificateError};

/// The rustls error carried by an I/O error, explained; else the I/O error.
pub fn explain_io(error: &std::io::Error) -> String {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => explain(tls),
        None => error.to_string(),
    }
}

/// What went wrong in a TLS handshake, and what to check.
pub fn explain(error: &rustls::Error) -> String {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(e) => format!("invalid peer certificate: {}", certificate(e)),
        E::NoCertificatesPresented => "the server presented no certificate".to_owned(),
        E::AlertReceived(alert) => format!(
            "the server ended the handshake with the alert \"{}\"{}",
            words(&format!("{alert:?}")),
            alert_advice(alert)
        ),
        E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. }
        | E::InvalidMessage(_) => {
            "the server's answer is not the TLS handshake expected: check that the port serves TLS (WSS) and not plain WS".to_owned()
        }
        E::PeerIncompatible(why) => format!(
            "the server's TLS is not compatible with this client: {}",
            words(&format!("{why:?}"))
        ),
        E::PeerMisbehaved(why) => format!(
            "the server broke the TLS protocol: {}",
            words(&format!("{why:?}"))
        ),
        E::InvalidCertRevocationList(e) => format!(
            "invalid certificate revocation list: {}",
            words(&format!("{e:?}"))
        ),
        E::InvalidEncryptedClientHello(e) => format!(
            "encrypted client hello failed: {}",
            words(&format!("{e:?}"))
        ),
        E::InconsistentKeys(why) => format!(
            "the client certificate and key do not match: {}",
            words(&format!("{why:?}"))
        ),
        // The rest display as plain sentences.
        other => other.to_string(),
    }
}

/// A certificate's fault without "invalid peer certificate" (for the
/// certificates given in properties); other errors as [`explain`].
pub fn explain_certificate(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(e) => certificate(e),
        other => explain(other),
    }
}

fn alert_advice(alert: &rustls::AlertDescription) -> &'static str {
    use rustls::AlertDescription as A;
    match alert {
        A::CertificateRequired => {
            ": the server requires a client certificate (Client Certificate and Client Key)"
        }
        A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied => {
            ": the server did not accept the client certificate (check Client Certificate and Client Key, and that the server trusts their CA)"
        }
        A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity => {
            ": the server and this client share no TLS version or cipher suite"
        }
        _ => "",
    }
}

fn certificate(error: &CertificateError) -> String {
    use CertificateError as C;
    match error {
        C::ExpiredContext { time, not_after } => format!(
            "certificate expired: it was valid until {}, and it is now {}; renew the server's certificate, or check this controller's clock",
            date(*not_after),
            date(*time)
        ),
        C::Expired => "certificate expired; renew the server's certificate, or check this controller's clock".to_owned(),
        C::NotValidYetContext { time, not_before } => format!(
            "certificate not valid yet: it is valid from {}, and it is now {}; check this controller's clock",
            date(*not_before),
            date(*time)
        ),
        C::NotValidYet => {
            "certificate not valid yet; check this controller's clock".to_owned()
        }
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<String> = presented.iter().filter_map(|n| plain_name(n)).collect();
            let valid_for = if names.is_empty() {
                "it names no host (no subjectAltName)".to_owned()
            } else {
                format!("it is valid for {}", names.join(", "))
            };
            format!(
                "certificate not valid for name {}: {valid_for}; connect with one of those names as Hostname, or give the server a certificate for {}",
                expected.to_str(),
                expected.to_str()
            )
        }
        C::NotValidForName => "certificate not valid for the Hostname".to_owned(),
        C::UnknownIssuer => "issued by an unknown CA: give the CA that signed the server's certificate (or a self-signed certificate itself) in CA Certificate, or use Pin SHA-256".to_owned(),
        C::BadSignature => "its signature does not verify".to_owned(),
        C::BadEncoding => "it is not a well-formed X.509 certificate".to_owned(),
        C::Revoked => "it has been revoked".to_owned(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not for TLS servers (extended key usage lacks server authentication)".to_owned()
        }
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => {
                "the server's certificate is a CA certificate (CA:TRUE, as `openssl req -x509` makes by default); it is accepted only when CA Certificate holds exactly this certificate, or with Pin SHA-256".to_owned()
            }
            Some(e) => words(&format!("{e:?}")),
            // Our own errors (e.g. a pin mismatch) are sentences.
            None => other.0.to_string(),
        },
        other => words(&format!("{other:?}")),
    }
}

/// `DnsName("host")` → `host`, `IpAddress(10.0.0.1)` → `10.0.0.1`: webpki
/// hands the certificate's names over as their `Debug` text; names of other
/// kinds (directory names, unsupported) are left out.
fn plain_name(presented: &str) -> Option<String> {
    let (kind, rest) = presented.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let inner = inner
        .strip_prefix('"')
        .and_then(|i| i.strip_suffix('"'))
        .unwrap_or(inner);
    match kind {
        "DnsName" | "IpAddress" => Some(inner.to_owned()),
        "UniformResourceIdentifier" => Some(format!("URI {inner}")),
        _ => None,
    }
}

/// A time as an RFC 3339 date in UTC.
fn date(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map_or_else(
            || format!("{} s after 1970", time.as_secs()),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// An enum variant's name in lower-case words: `CaUsedAsEndEntity` → "ca
/// used as end entity". Only the name: fields (and their braces, quotes
/// and numbers) are dropped, and so is rustls' `Context` suffix of the
/// variants that carry them.
fn words(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let name = name.strip_suffix("Context").unwrap_or(&name);
    let mut out = String::with_capacity(name.len() + 8);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(if c == '_' {
            ' '
        } else {
            c.to_ascii_lowercase()
        });
    }
    if out.is_empty() {
        "unexplained TLS error".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_rustls::pki_types::ServerName;
    use futures_rustls::rustls::OtherError;
    use std::sync::Arc;
    use std::time::Duration;

    fn no_debug_text(text: &str) {
        for debug in ["(\"", "\")", "OtherError", "Context", "{", "}"] {
            assert!(!text.contains(debug), "{debug:?} in {text}");
        }
    }

    #[test]
    fn expiry_shows_dates_not_unix_seconds() {
        let error = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_767_225_600)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_704_067_199)),
        });
        let text = explain(&error);
        assert_eq!(
            text,
            "invalid peer certificate: certificate expired: it was valid until 2023-12-31T23:59:59Z, and it is now 2026-01-01T00:00:00Z; renew the server's certificate, or check this controller's clock"
        );
        no_debug_text(&text);
    }

    #[test]
    fn a_wrong_name_lists_the_names_the_certificate_is_valid_for() {
        let error = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap(),
            presented: vec![
                "DnsName(\"device.example\")".into(),
                "IpAddress(10.0.0.7)".into(),
                "DirectoryName".into(),
            ],
        });
        let text = explain(&error);
        assert!(
            text.starts_with(
                "invalid peer certificate: certificate not valid for name 127.0.0.1: it is valid for device.example, 10.0.0.7; "
            ),
            "{text}"
        );
        no_debug_text(&text);
    }

    #[test]
    fn a_ca_used_as_the_servers_certificate_says_how_to_trust_it() {
        let error = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
            Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        let text = explain(&error);
        assert!(text.contains("is a CA certificate (CA:TRUE"), "{text}");
        assert!(text.contains("CA Certificate holds exactly this certificate"));
        no_debug_text(&text);
    }

    #[test]
    fn other_errors_show_words_not_debug_text() {
        assert_eq!(
            explain(&rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            "invalid peer certificate: issued by an unknown CA: give the CA that signed the server's certificate (or a self-signed certificate itself) in CA Certificate, or use Pin SHA-256"
        );
        let alert = explain(&rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        assert!(
            alert.starts_with("the server ended the handshake with the alert \"certificate required\": the server requires a client certificate"),
            "{alert}"
        );
        let webpki_other = explain(&rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(webpki::Error::PathLenConstraintViolated)),
        )));
        assert_eq!(
            webpki_other,
            "invalid peer certificate: path len constraint violated"
        );
        assert_eq!(words("Unknown(42)"), "unknown");
        assert_eq!(words("BadDer"), "bad der");
        assert_eq!(
            words("UnsupportedSignatureAlgorithmContext { signature_algorithm_id: [6] }"),
            "unsupported signature algorithm"
        );
    }
}
