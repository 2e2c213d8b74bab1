//! The text formats inside single properties: handshake headers,
//! subprotocols, Basic credentials, PEM text or files, SHA-256 pins, proxy
//! URLs, host names, paths and bearer tokens. Each parser names the property
//! and what is accepted; none shows a secret.

use super::{BasicAuth, Header, PropertyError, PropertyValues, ProxyConfig, ProxySource};
use crate::manifest::names;
use crate::tls::{ClientIdentity, TlsSettings};
use crate::vocabulary::Secret;
use async_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::Ipv6Addr;
use std::sync::Arc;

/// Handshake headers the module sets itself: overriding them would break
/// the handshake, so they are refused with the property that sets them.
const RESERVED_HEADERS: [(&str, &str); 8] = [
    ("host", "set by Hostname and Port"),
    ("upgrade", "set by the WebSocket handshake"),
    ("connection", "set by the WebSocket handshake"),
    ("sec-websocket-key", "set by the WebSocket handshake"),
    ("sec-websocket-version", "set by the WebSocket handshake"),
    ("sec-websocket-extensions", "not supported by this module"),
    ("sec-websocket-protocol", "use the Subprotocols property"),
    ("content-length", "a handshake has no body"),
];

pub(super) fn parse_headers(text: &str) -> Result<Vec<Header>, PropertyError> {
    let mut headers = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |why: String| {
            Err(PropertyError::new(
                names::HEADERS,
                format!("Headers line {line_no}: {why}"),
            ))
        };
        let Some((name, value)) = line.split_once(':') else {
            return err(
                "expected 'Name: Value' (the line has no ':'; its text is not shown)".into(),
            );
        };
        let name = name.trim();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return err(format!(
                "\"{name}\" is not a valid header name (letters, digits and - only)"
            ));
        }
        if let Some((_, why)) = RESERVED_HEADERS
            .iter()
            .find(|(reserved, _)| name.eq_ignore_ascii_case(reserved))
        {
            return err(format!("{name} cannot be set here: {why}"));
        }
        let value = value.trim();
        if HeaderValue::from_str(value).is_err() {
            return err(format!(
                "the value of {name} has a character not allowed in HTTP headers (the value is not shown)"
            ));
        }
        headers.push(Header {
            name: name.to_owned(),
            value: Secret::new(value.to_owned()),
        });
    }
    Ok(headers)
}

pub(super) fn parse_subprotocols(text: &str) -> Result<Vec<String>, PropertyError> {
    // RFC 7230 token characters.
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut protocols: Vec<String> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !item.chars().all(tchar) {
            return Err(PropertyError::new(
                names::SUBPROTOCOLS,
                format!(
                    "Subprotocols: \"{item}\" is not a valid subprotocol name (letters, digits and !#$%&'*+-.^_`|~; separate names with commas)"
                ),
            ));
        }
        if !protocols.iter().any(|p| p == item) {
            protocols.push(item.to_owned());
        }
    }
    Ok(protocols)
}

pub(super) fn parse_basic_auth(
    values: &PropertyValues,
) -> Result<Option<BasicAuth>, PropertyError> {
    let username = values.string(names::USERNAME);
    let password = values.string(names::PASSWORD);
    if username.is_empty() {
        if !password.is_empty() {
            return Err(PropertyError::new(
                names::PASSWORD,
                "Password is set but Username is blank; HTTP Basic authentication needs both"
                    .to_owned(),
            ));
        }
        return Ok(None);
    }
    if username.contains(':') || username.chars().any(char::is_control) {
        return Err(PropertyError::new(
            names::USERNAME,
            format!(
                "Username \"{username}\" must not contain ':' or control characters (RFC 7617)"
            ),
        ));
    }
    Ok(Some(BasicAuth {
        username,
        password: Secret::new(password),
    }))
}

/// The largest PEM file read for a TLS property.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// PEM text as given, or the contents of the file it names. Only regular
/// files up to 1 MiB are read: a device or a pipe must not hang or exhaust
/// instance creation.
pub(super) fn pem_or_path(property: &str, value: &str) -> Result<Vec<u8>, PropertyError> {
    use std::io::Read;
    let value = value.trim();
    if value.starts_with("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    let err = |why: String| {
        PropertyError::new(
            property,
            format!(
                "{property}: cannot read the file \"{value}\" ({why}); give PEM text (-----BEGIN ...) or the path of a PEM file"
            ),
        )
    };
    let meta = std::fs::metadata(value).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".to_owned()));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(err(format!("{} bytes; at most 1 MiB is read", meta.len())));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(value)
        .and_then(|f| f.take(MAX_PEM_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| err(e.to_string()))?;
    Ok(bytes)
}

pub(super) fn parse_tls(values: &PropertyValues) -> Result<TlsSettings, PropertyError> {
    let mut tls = TlsSettings::default();
    let ca = values.string(names::CA_CERTIFICATE);
    if !ca.trim().is_empty() {
        let pem = pem_or_path(names::CA_CERTIFICATE, &ca)?;
        tls.ca_certificates = certificates(&pem, names::CA_CERTIFICATE)?;
    }
    tls.trust_only_given_ca = values.bool(names::TRUST_ONLY_GIVEN_CA);
    if tls.trust_only_given_ca && tls.ca_certificates.is_empty() {
        return Err(PropertyError::new(
            names::TRUST_ONLY_GIVEN_CA,
            "Trust Only Given CA is on but CA Certificate is blank: nothing would be trusted"
                .to_owned(),
        ));
    }
    let cert = values.string(names::CLIENT_CERTIFICATE);
    let key = values.string(names::CLIENT_KEY);
    match (cert.trim().is_empty(), key.trim().is_empty()) {
        (true, true) => {}
        (false, true) => {
            return Err(PropertyError::new(
                names::CLIENT_KEY,
                "Client Certificate is set but Client Key is blank; mutual TLS needs both"
                    .to_owned(),
            ));
        }
        (true, false) => {
            return Err(PropertyError::new(
                names::CLIENT_CERTIFICATE,
                "Client Key is set but Client Certificate is blank; mutual TLS needs both"
                    .to_owned(),
            ));
        }
        (false, false) => {
            let chain = certificates(
                &pem_or_path(names::CLIENT_CERTIFICATE, &cert)?,
                names::CLIENT_CERTIFICATE,
            )?;
            let key_pem = pem_or_path(names::CLIENT_KEY, &key)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                PropertyError::new(
                    names::CLIENT_KEY,
                    "Client Key holds no usable private key: expected PEM with -----BEGIN PRIVATE KEY----- (PKCS#8), -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY----- (the key is not shown)".to_owned(),
                )
            })?;
            if futures_rustls::rustls::crypto::ring::sign::any_supported_type(&key).is_err() {
                return Err(PropertyError::new(
                    names::CLIENT_KEY,
                    "Client Key is not a usable RSA, ECDSA or Ed25519 private key (the key is not shown)".to_owned(),
                ));
            }
            tls.client_identity = Some(ClientIdentity {
                chain,
                key: Arc::new(key),
            });
        }
    }
    let pin = values.string(names::PIN_SHA256);
    if !pin.trim().is_empty() {
        tls.pin_sha256 = Some(parse_sha256(&pin)?);
    }
    tls.skip_verification = values.bool(names::INSECURE);
    if tls.skip_verification && tls.pin_sha256.is_some() {
        return Err(PropertyError::new(
            names::INSECURE,
            "Skip Certificate Verification (insecure) and Pin SHA-256 contradict each other; keep the pin and turn skipping off".to_owned(),
        ));
    }
    Ok(tls)
}

pub(super) fn certificates(
    pem: &[u8],
    property: &str,
) -> Result<Vec<CertificateDer<'static>>, PropertyError> {
    crate::tls::certificates_from_pem(pem, property).map_err(|e| PropertyError::new(property, e))
}

pub(super) fn parse_sha256(text: &str) -> Result<[u8; 32], PropertyError> {
    let hex: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let mut pin = [0u8; 32];
    let valid = hex.len() == 64
        && hex.is_ascii()
        && pin.iter_mut().enumerate().all(|(i, byte)| {
            u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map(|b| *byte = b)
                .is_ok()
        });
    if valid {
        Ok(pin)
    } else {
        Err(PropertyError::new(
            names::PIN_SHA256,
            format!(
                "Pin SHA-256 must be 64 hexadecimal digits (colons and spaces allowed), got {} digit(s); e.g. the output of `openssl x509 -noout -fingerprint -sha256`",
                hex.len()
            ),
        ))
    }
}

/// Parses `http://[user[:password]@]host[:port]` (the password is never
/// shown in errors). `property` names the source in messages: the `Proxy`
/// property, or the environment variable it was read from.
pub fn parse_proxy(text: &str, property: &str) -> Result<ProxyConfig, PropertyError> {
    let shown = redact_userinfo(text);
    let err = |why: &str| {
        Err(PropertyError::new(
            property,
            format!(
                "{property} \"{shown}\" {why}; expected http://host:port or http://user:password@host:port"
            ),
        ))
    };
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let Ok(url) = url::Url::parse(&with_scheme) else {
        return err("is not a valid URL");
    };
    if url.scheme() != "http" {
        return err("uses a scheme other than http:// (HTTPS proxies are not supported)");
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return err("has no host");
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let auth = (!url.username().is_empty()).then(|| BasicAuth {
        username: decode(url.username()),
        password: Secret::new(url.password().map(decode).unwrap_or_default()),
    });
    let source = if property == names::PROXY {
        ProxySource::Property
    } else {
        ProxySource::Environment(property.to_owned())
    };
    Ok(ProxyConfig {
        host,
        port,
        auth,
        source,
    })
}

/// `http://user:secret@host` → `http://user:***@host`. The userinfo ends
/// at the *last* `@` (a password may hold `@`), so everything before it is
/// hidden but the scheme and the user; when what precedes `://` is not a
/// scheme (a password holding `://`), nothing before the `@` is shown.
pub(super) fn redact_userinfo(text: &str) -> String {
    let Some((before, host)) = text.rsplit_once('@') else {
        return text.to_owned();
    };
    let is_scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    let (prefix, userinfo) = match before.split_once("://") {
        Some((scheme, userinfo)) if is_scheme(scheme) => (format!("{scheme}://"), userinfo),
        Some(_) => return format!("***@{host}"),
        None => (String::new(), before),
    };
    let user = userinfo.split(':').next().unwrap_or("");
    format!("{prefix}{user}:***@{host}")
}

pub(super) fn validate_hostname(raw: &str) -> Result<String, PropertyError> {
    let err = |why: &str| {
        Err(PropertyError::new(
            names::HOSTNAME,
            format!("Hostname \"{raw}\" {why}"),
        ))
    };
    let host = raw.trim();
    if let Some((scheme, _)) = host.split_once("://") {
        return err(&format!(
            "must not include a scheme such as {scheme}://; choose {} in Protocol instead",
            if scheme.eq_ignore_ascii_case("wss") || scheme.eq_ignore_ascii_case("https") {
                "WSS"
            } else {
                "WS or WSS"
            }
        ));
    }
    if host.contains('/') {
        return err("must not include a path; put the path (e.g. /v3/1) in Path instead");
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(inner.to_owned()),
            Err(_) => err("is not a valid IPv6 address"),
        };
    }
    if host.contains(':') {
        if host.parse::<Ipv6Addr>().is_ok() {
            return Ok(host.to_owned());
        }
        return err("must not include a port; set the Port property instead");
    }
    if host.len() > 253 {
        return err("is longer than 253 characters");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if !trimmed.split('.').all(label_ok) {
        return err(
            "is not a valid host name or IP address: use letters, digits, '-' and '.' (e.g. demo.piesocket.com or 192.168.1.20)",
        );
    }
    Ok(host.to_owned())
}

pub(super) fn normalize_path(raw: &str, notes: &mut Vec<String>) -> Result<String, PropertyError> {
    let err = |why: &str| {
        Err(PropertyError::new(
            names::PATH,
            format!("Path \"{raw}\" {why}"),
        ))
    };
    if raw.contains("://") {
        return err(
            "must be a path such as /v3/1?api_key=KEY, not a URL; put the host in Hostname",
        );
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(
            "must not contain spaces or control characters; percent-encode them (space = %20)",
        );
    }
    if !raw.is_ascii() {
        return err("must be ASCII; percent-encode other characters (e.g. é = %C3%A9)");
    }
    if raw.contains('#') {
        return err("must not contain '#': fragments are not sent to servers");
    }
    if raw.is_empty() {
        return Ok("/".to_owned());
    }
    if raw.starts_with('/') {
        Ok(raw.to_owned())
    } else {
        notes.push(format!(
            "Path \"{raw}\" has no leading '/'; using \"/{raw}\""
        ));
        Ok(format!("/{raw}"))
    }
}

/// Checks a bearer token against RFC 6750's b64token syntax without ever
/// echoing it: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn validate_bearer_token(token: &str) -> Result<(), PropertyError> {
    let body = token.trim_end_matches('=');
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    if body.is_empty() {
        return Err(PropertyError::new(
            names::BEARER_TOKEN,
            "Bearer Token must start with at least one letter, digit or one of - . _ ~ + / (RFC 6750)".to_owned(),
        ));
    }
    if let Some(pos) = body.bytes().position(|b| !allowed(b)) {
        return Err(PropertyError::new(
            names::BEARER_TOKEN,
            format!(
                "Bearer Token has a character RFC 6750 does not allow at position {}; allowed: letters, digits, - . _ ~ + / and trailing = (the token is not shown)",
                pos + 1
            ),
        ));
    }
    Ok(())
}
