//! Properties: JSON from the controller, checked against the manifest and
//! parsed once into typed values.
//!
//! Second step of the data flow. [`PropertyValues`] checks any property set
//! (instance, trigger or action) against its manifest declaration: unknown
//! names, JSON types, ranges and options, with manifest defaults for what is
//! missing. [`Properties`] is the typed instance configuration built from it,
//! with the validators (host name, path) that need more than a type.
//! Every error names the property, the value (never a secret's) and what is
//! accepted.

use crate::manifest::{Manifest, PropertySpec, PropertyType, names};
use crate::tls::{ClientIdentity, TlsSettings};
use crate::vocabulary::{Messaging, ReconnectPolicy, Secret};
use async_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

/// A bad property set. The message is meant for the person configuring the
/// controller: it names the property, the value and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    /// The property at fault (empty when the problem is the whole object).
    pub property: String,
    pub message: String,
}

impl fmt::Display for PropertyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PropertyError {}

impl PropertyError {
    fn new(property: &str, message: String) -> Self {
        PropertyError {
            property: property.to_owned(),
            message,
        }
    }
}

/// A property value after its type was checked.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    String(String),
    Int(i64),
    Bool(bool),
}

/// A property set checked against its manifest declaration; missing
/// properties read as their manifest default.
#[derive(Debug)]
pub struct PropertyValues<'m> {
    specs: &'m [PropertySpec],
    given: BTreeMap<&'m str, PropertyValue>,
}

/// Describes a JSON value for an error message without echoing long input.
fn describe(value: &Value) -> String {
    let text = match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn shown(spec: &PropertySpec, value: &Value) -> String {
    if spec.secret {
        "(hidden)".to_owned()
    } else {
        describe(value)
    }
}

impl<'m> PropertyValues<'m> {
    /// Checks `json` (an object of property name → value, or `null` for none)
    /// against `specs`. `owner` names the property set in messages, e.g.
    /// "instance" or "action \"Connect\"".
    pub fn parse(
        specs: &'m [PropertySpec],
        json: &Value,
        owner: &str,
    ) -> Result<Self, PropertyError> {
        let object = match json {
            Value::Null => {
                return Ok(PropertyValues {
                    specs,
                    given: BTreeMap::new(),
                });
            }
            Value::Object(object) => object,
            other => {
                return Err(PropertyError::new(
                    "",
                    format!(
                        "{owner} properties must be a JSON object such as {{\"Name\": value}}, got {}",
                        describe(other)
                    ),
                ));
            }
        };
        let mut given = BTreeMap::new();
        for (name, value) in object {
            let Some(spec) = specs.iter().find(|s| &s.name == name) else {
                let accepted = if specs.is_empty() {
                    "it takes no properties".to_owned()
                } else {
                    format!(
                        "accepted: {}",
                        Manifest::list(specs.iter().map(|s| s.name.as_str()))
                    )
                };
                return Err(PropertyError::new(
                    name,
                    format!("unknown {owner} property \"{name}\"; {accepted}"),
                ));
            };
            given.insert(spec.name.as_str(), Self::check(spec, value)?);
        }
        for spec in specs.iter().filter(|s| s.required) {
            let empty = match given.get(spec.name.as_str()) {
                None => spec.default.as_str().is_none_or(|d| d.trim().is_empty()),
                Some(PropertyValue::String(s)) => s.trim().is_empty(),
                Some(_) => false,
            };
            if empty {
                return Err(PropertyError::new(
                    &spec.name,
                    format!("{} is required: {}", spec.name, spec.description),
                ));
            }
        }
        Ok(PropertyValues { specs, given })
    }

    fn check(spec: &PropertySpec, value: &Value) -> Result<PropertyValue, PropertyError> {
        let name = &spec.name;
        match spec.kind {
            PropertyType::String => match value {
                Value::String(s) => Ok(PropertyValue::String(s.clone())),
                other => Err(PropertyError::new(
                    name,
                    format!("{name} must be a string, got {}", shown(spec, other)),
                )),
            },
            PropertyType::Bool => match value {
                Value::Bool(b) => Ok(PropertyValue::Bool(*b)),
                other => Err(PropertyError::new(
                    name,
                    format!("{name} must be true or false, got {}", shown(spec, other)),
                )),
            },
            PropertyType::Int => {
                let (min, max) = (spec.min.unwrap_or(i64::MIN), spec.max.unwrap_or(i64::MAX));
                match value.as_i64() {
                    Some(v) if (min..=max).contains(&v) => Ok(PropertyValue::Int(v)),
                    _ => Err(PropertyError::new(
                        name,
                        format!(
                            "{name} must be an integer from {min} to {max}, got {}",
                            shown(spec, value)
                        ),
                    )),
                }
            }
            PropertyType::Enum => {
                let options = Manifest::list(spec.options.iter().map(String::as_str));
                let chosen = value.as_str().and_then(|s| {
                    // Dropdown values are matched without regard to case: "wss" is WSS.
                    spec.options
                        .iter()
                        .find(|o| o.eq_ignore_ascii_case(s.trim()))
                });
                match chosen {
                    Some(option) => Ok(PropertyValue::String(option.clone())),
                    None => Err(PropertyError::new(
                        name,
                        format!(
                            "{name} must be one of {options}, got {}",
                            shown(spec, value)
                        ),
                    )),
                }
            }
        }
    }

    fn spec(&self, name: &str) -> &PropertySpec {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("property {name} is declared in module.toml (tested)"))
    }

    /// A string or enum property (given or default).
    pub fn string(&self, name: &str) -> String {
        match self.given.get(name) {
            Some(PropertyValue::String(s)) => s.clone(),
            _ => self
                .spec(name)
                .default
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.given.get(name) {
            Some(PropertyValue::Int(v)) => *v,
            _ => self.spec(name).default.as_integer().unwrap_or_default(),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.given.get(name) {
            Some(PropertyValue::Bool(v)) => *v,
            _ => self.spec(name).default.as_bool().unwrap_or_default(),
        }
    }

    /// Applies `f` to every given string property (placeholder substitution).
    pub fn map_strings(&mut self, mut f: impl FnMut(&str) -> String) {
        for value in self.given.values_mut() {
            if let PropertyValue::String(s) = value {
                *s = f(s);
            }
        }
    }
}

/// ws:// or wss://.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ws,
    Wss,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
        }
    }
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Ws => 80,
            Protocol::Wss => 443,
        }
    }
}

/// An extra handshake header; the value is never logged.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: String,
    pub value: Secret,
}

/// HTTP Basic credentials (RFC 7617).
#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// An HTTP proxy reached with CONNECT.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub host: String,
    pub port: u16,
    pub auth: Option<BasicAuth>,
}

/// Which proxy to use.
#[derive(Debug, Clone, Default)]
pub enum ProxySetting {
    #[default]
    Direct,
    Explicit(ProxyConfig),
    /// HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read at each connect.
    System,
}

/// The typed instance configuration.
#[derive(Debug, Clone)]
pub struct Properties {
    /// Host name or IP address (IPv6 without brackets).
    pub hostname: String,
    /// Always starts with `/`; may carry a query.
    pub path: String,
    pub protocol: Protocol,
    /// The port to connect to: `Port`, or the protocol's default for 0.
    pub port: u16,
    pub keep_alive: bool,
    pub auto_reconnect: bool,
    pub extended_logging: bool,
    pub log_comms: bool,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    pub pong_timeout: Duration,
    /// None = off.
    pub idle_timeout: Option<Duration>,
    pub reconnect: ReconnectPolicy,
    pub headers: Vec<Header>,
    pub subprotocols: Vec<String>,
    pub origin: Option<String>,
    pub basic_auth: Option<BasicAuth>,
    pub tls: TlsSettings,
    pub proxy: ProxySetting,
    pub max_message_size: usize,
    pub messaging: Messaging,
    /// What was normalised while parsing, to be logged once by the instance.
    pub notes: Vec<String>,
}

impl Properties {
    /// Parses a JSON text of instance properties.
    pub fn from_json_str(json: &str) -> Result<Properties, PropertyError> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            PropertyError::new(
                "",
                format!("instance properties are not valid JSON ({e}); expected an object such as {{\"Hostname\": \"example.com\", \"Port\": 8765}}"),
            )
        })?;
        Self::from_json(&value)
    }

    /// Parses a JSON object of instance properties.
    pub fn from_json(json: &Value) -> Result<Properties, PropertyError> {
        let values = PropertyValues::parse(&Manifest::get().properties, json, "instance")?;
        let mut notes = Vec::new();
        let hostname = validate_hostname(&values.string(names::HOSTNAME))?;
        let path = normalize_path(&values.string(names::PATH), &mut notes)?;
        let protocol = match values.string(names::PROTOCOL).as_str() {
            "WSS" => Protocol::Wss,
            _ => Protocol::Ws,
        };
        let port = match values.int(names::PORT) {
            0 => protocol.default_port(),
            // The manifest range (0..=65535) was checked by PropertyValues.
            p => u16::try_from(p).unwrap_or(protocol.default_port()),
        };
        let seconds = |name: &str| Duration::from_secs(values.int(name).max(0) as u64);
        let reconnect = ReconnectPolicy {
            min_delay: seconds(names::RECONNECT_MIN_DELAY),
            max_delay: seconds(names::RECONNECT_MAX_DELAY),
            max_attempts: u32::try_from(values.int(names::RECONNECT_MAX_ATTEMPTS)).unwrap_or(0),
        };
        if reconnect.min_delay > reconnect.max_delay {
            return Err(PropertyError::new(
                names::RECONNECT_MIN_DELAY,
                format!(
                    "Reconnect Min Delay ({} s) must not exceed Reconnect Max Delay ({} s)",
                    reconnect.min_delay.as_secs(),
                    reconnect.max_delay.as_secs()
                ),
            ));
        }
        let idle = seconds(names::IDLE_TIMEOUT);
        let tls = parse_tls(&values)?;
        if protocol == Protocol::Ws && tls.is_configured() {
            notes.push("TLS properties (CA Certificate, Client Certificate, Pin SHA-256, Skip Certificate Verification) are ignored with Protocol WS".to_owned());
        }
        let origin = values.string(names::ORIGIN).trim().to_owned();
        if !origin.is_empty() && HeaderValue::from_str(&origin).is_err() {
            return Err(PropertyError::new(
                names::ORIGIN,
                format!(
                    "Origin \"{origin}\" has characters not allowed in an HTTP header; use a URL such as https://panel.example.com"
                ),
            ));
        }
        let proxy = match values.string(names::PROXY).trim() {
            "" if values.bool(names::USE_SYSTEM_PROXY) => ProxySetting::System,
            "" => ProxySetting::Direct,
            url => ProxySetting::Explicit(parse_proxy(url, names::PROXY)?),
        };
        Ok(Properties {
            hostname,
            path,
            protocol,
            port,
            keep_alive: values.bool(names::KEEP_ALIVE),
            auto_reconnect: values.bool(names::AUTO_RECONNECT),
            extended_logging: values.bool(names::EXTENDED_LOGGING),
            log_comms: values.bool(names::LOG_COMMS),
            connect_timeout: seconds(names::CONNECT_TIMEOUT),
            keepalive_interval: seconds(names::KEEP_ALIVE_INTERVAL),
            pong_timeout: seconds(names::PONG_TIMEOUT),
            idle_timeout: (!idle.is_zero()).then_some(idle),
            reconnect,
            headers: parse_headers(&values.string(names::HEADERS))?,
            subprotocols: parse_subprotocols(&values.string(names::SUBPROTOCOLS))?,
            origin: (!origin.is_empty()).then_some(origin),
            basic_auth: parse_basic_auth(&values)?,
            tls,
            proxy,
            max_message_size: usize::try_from(values.int(names::MAX_MESSAGE_SIZE))
                .unwrap_or(usize::MAX),
            messaging: Messaging {
                binary_as_text: values.bool(names::BINARY_AS_TEXT),
                queue_while_disconnected: values.bool(names::QUEUE_WHILE_DISCONNECTED),
                queue_size: usize::try_from(values.int(names::QUEUE_SIZE)).unwrap_or(1),
                queue_ttl: match values.int(names::QUEUE_TTL) {
                    0 => None,
                    s => Some(Duration::from_secs(s.max(0) as u64)),
                },
                drop_oldest: values.string(names::QUEUE_DROP_POLICY) != "Drop Newest",
                max_send_rate: u32::try_from(values.int(names::MAX_SEND_RATE)).unwrap_or(0),
                trigger_rate_limit: u32::try_from(values.int(names::TRIGGER_RATE_LIMIT))
                    .unwrap_or(0),
            },
            notes,
        })
    }

    /// The URL connected to, e.g. `wss://example.com:443/v3/1?api_key=…`.
    /// The query may hold an API key, so log [`Properties::display_url`].
    pub fn url(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// The URL without its query string: safe to log and show.
    pub fn display_url(&self) -> String {
        let path = self.path.split('?').next().unwrap_or("/");
        let query = if self.path.contains('?') { "?…" } else { "" };
        format!("{}{path}{query}", self.origin())
    }

    fn origin(&self) -> String {
        let host = if self.hostname.contains(':') {
            format!("[{}]", self.hostname)
        } else {
            self.hostname.clone()
        };
        format!("{}://{host}:{}", self.protocol.scheme(), self.port)
    }
}

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

fn parse_headers(text: &str) -> Result<Vec<Header>, PropertyError> {
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

fn parse_subprotocols(text: &str) -> Result<Vec<String>, PropertyError> {
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

fn parse_basic_auth(values: &PropertyValues) -> Result<Option<BasicAuth>, PropertyError> {
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
fn pem_or_path(property: &str, value: &str) -> Result<Vec<u8>, PropertyError> {
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

fn parse_tls(values: &PropertyValues) -> Result<TlsSettings, PropertyError> {
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

fn certificates(pem: &[u8], property: &str) -> Result<Vec<CertificateDer<'static>>, PropertyError> {
    crate::tls::certificates_from_pem(pem, property).map_err(|e| PropertyError::new(property, e))
}

fn parse_sha256(text: &str) -> Result<[u8; 32], PropertyError> {
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
/// shown in errors). `property` names the source in messages.
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
    Ok(ProxyConfig { host, port, auth })
}

/// `http://user:secret@host` → `http://user:***@host`. The userinfo ends
/// at the *last* `@` (a password may hold `@`), so everything before it is
/// hidden but the scheme and the user; when what precedes `://` is not a
/// scheme (a password holding `://`), nothing before the `@` is shown.
fn redact_userinfo(text: &str) -> String {
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

fn validate_hostname(raw: &str) -> Result<String, PropertyError> {
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

fn normalize_path(raw: &str, notes: &mut Vec<String>) -> Result<String, PropertyError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        Properties::from_json(&v).unwrap_err().message
    }

    #[test]
    fn minimal_properties_take_manifest_defaults() {
        let p = Properties::from_json(&json!({"Hostname": "demo.piesocket.com"})).unwrap();
        assert_eq!(p.hostname, "demo.piesocket.com");
        assert_eq!(p.path, "/");
        assert_eq!(p.protocol, Protocol::Ws);
        assert_eq!(p.port, 80);
        assert!(p.keep_alive, "keep-alive defaults on");
        assert!(!p.auto_reconnect);
        assert!(!p.extended_logging && !p.log_comms);
        assert_eq!(p.url(), "ws://demo.piesocket.com:80/");
    }

    #[test]
    fn port_zero_means_the_protocol_default() {
        let p =
            Properties::from_json(&json!({"Hostname": "h", "Protocol": "WSS", "Port": 0})).unwrap();
        assert_eq!(p.port, 443);
        let p = Properties::from_json(&json!({"Hostname": "h", "Protocol": "wss", "Port": 8443}))
            .unwrap();
        assert_eq!((p.protocol, p.port), (Protocol::Wss, 8443));
    }

    #[test]
    fn scheme_in_hostname_names_the_fix() {
        assert_eq!(
            err(json!({"Hostname": "wss://demo.piesocket.com"})),
            "Hostname \"wss://demo.piesocket.com\" must not include a scheme such as wss://; choose WSS in Protocol instead"
        );
    }

    #[test]
    fn bad_hostnames_are_refused_with_the_reason() {
        assert!(err(json!({})).starts_with("Hostname is required"));
        assert!(err(json!({"Hostname": "  "})).starts_with("Hostname is required"));
        assert!(err(json!({"Hostname": "demo.com/v3/1"})).contains("must not include a path"));
        assert!(err(json!({"Hostname": "demo.com:8080"})).contains("set the Port property"));
        assert!(err(json!({"Hostname": "bad host"})).contains("not a valid host name"));
        assert!(err(json!({"Hostname": "-bad.com"})).contains("not a valid host name"));
        assert!(err(json!({"Hostname": "[zz::1]"})).contains("not a valid IPv6"));
    }

    #[test]
    fn ip_addresses_are_accepted_and_ipv6_is_bracketed_in_the_url() {
        let p = Properties::from_json(&json!({"Hostname": "::1", "Port": 9000})).unwrap();
        assert_eq!(p.url(), "ws://[::1]:9000/");
        let p = Properties::from_json(&json!({"Hostname": "[::1]"})).unwrap();
        assert_eq!(p.hostname, "::1");
        let p = Properties::from_json(&json!({"Hostname": "127.0.0.1"})).unwrap();
        assert_eq!(p.hostname, "127.0.0.1");
    }

    #[test]
    fn port_out_of_range_and_wrong_types() {
        assert_eq!(
            err(json!({"Hostname": "h", "Port": 70000})),
            "Port must be an integer from 0 to 65535, got 70000"
        );
        assert_eq!(
            err(json!({"Hostname": "h", "Port": "80"})),
            "Port must be an integer from 0 to 65535, got \"80\""
        );
        assert_eq!(
            err(json!({"Hostname": "h", "Port": -1})),
            "Port must be an integer from 0 to 65535, got -1"
        );
        assert_eq!(
            err(json!({"Hostname": "h", "Auto-Reconnect": "yes"})),
            "Auto-Reconnect must be true or false, got \"yes\""
        );
        assert_eq!(
            err(json!({"Hostname": 5})),
            "Hostname must be a string, got 5"
        );
        assert!(err(json!([1, 2])).starts_with("instance properties must be a JSON object"));
    }

    #[test]
    fn unknown_protocol_lists_the_options() {
        assert_eq!(
            err(json!({"Hostname": "h", "Protocol": "HTTP"})),
            "Protocol must be one of \"WS\", \"WSS\", got \"HTTP\""
        );
    }

    #[test]
    fn unknown_property_lists_the_accepted_names() {
        let message = err(json!({"Hostname": "h", "Hostnme": "x"}));
        assert!(
            message.starts_with("unknown instance property \"Hostnme\"; accepted: \"Hostname\"")
        );
        assert!(message.contains("\"Log Comms\""));
    }

    #[test]
    fn path_is_normalised_and_validated() {
        let p = Properties::from_json(&json!({"Hostname": "h", "Path": "v3/1?api_key=k"})).unwrap();
        assert_eq!(p.path, "/v3/1?api_key=k");
        assert_eq!(
            p.notes.len(),
            1,
            "the normalisation is reported for the log"
        );
        let p = Properties::from_json(&json!({"Hostname": "h", "Path": ""})).unwrap();
        assert_eq!(p.path, "/");
        assert!(err(json!({"Hostname": "h", "Path": "/a b"})).contains("percent-encode"));
        assert!(err(json!({"Hostname": "h", "Path": "/é"})).contains("must be ASCII"));
        assert!(err(json!({"Hostname": "h", "Path": "ws://h/x"})).contains("not a URL"));
    }

    #[test]
    fn display_url_hides_the_query() {
        let p = Properties::from_json_str(
            r#"{"Hostname": "h", "Path": "/v3/1?api_key=SECRETKEY&notify_self=1"}"#,
        )
        .unwrap();
        assert_eq!(p.display_url(), "ws://h:80/v3/1?…");
        assert!(!p.display_url().contains("SECRETKEY"));
    }

    #[test]
    fn invalid_json_text_is_reported() {
        let e = Properties::from_json_str("{\"Hostname\": ").unwrap_err();
        assert!(
            e.message
                .starts_with("instance properties are not valid JSON")
        );
    }

    #[test]
    fn bearer_token_syntax_never_echoes_the_token() {
        assert!(validate_bearer_token("abc.DEF-123_~+/==").is_ok());
        let e = validate_bearer_token("abc def-SECRET").unwrap_err();
        assert!(e.message.contains("position 4"));
        assert!(!e.message.contains("SECRET"));
        assert!(validate_bearer_token("==").is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn connection_options_default_to_the_classic_behaviour() {
        let p = Properties::from_json(&json!({"Hostname": "h"})).unwrap();
        assert_eq!(p.connect_timeout, Duration::from_secs(10));
        assert_eq!(p.keepalive_interval, Duration::from_secs(30));
        assert_eq!(p.pong_timeout, Duration::from_secs(10));
        assert_eq!(p.idle_timeout, None);
        assert_eq!(p.reconnect.min_delay, Duration::from_secs(1));
        assert_eq!(p.reconnect.max_delay, Duration::from_secs(60));
        assert_eq!(p.reconnect.max_attempts, 0);
        assert!(p.headers.is_empty() && p.subprotocols.is_empty());
        assert!(p.origin.is_none() && p.basic_auth.is_none());
        assert!(!p.tls.is_configured());
        assert!(matches!(p.proxy, ProxySetting::Direct));
        assert_eq!(p.max_message_size, 16 * 1024 * 1024);
    }

    #[test]
    fn headers_are_parsed_and_bad_lines_named_without_values() {
        let p = Properties::from_json(
            &json!({"Hostname": "h", "Headers": "X-Site: north\n\nX-Key: s3cr3t"}),
        )
        .unwrap();
        assert_eq!(p.headers.len(), 2);
        assert_eq!(p.headers[1].name, "X-Key");
        assert_eq!(p.headers[1].value.expose(), "s3cr3t");
        let e = err(json!({"Hostname": "h", "Headers": "X-A: 1\nno colon s3cr3t"}));
        assert!(
            e.starts_with("Headers line 2: expected 'Name: Value'"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"));
        let e = err(json!({"Hostname": "h", "Headers": "Bad Name: v"}));
        assert!(e.contains("\"Bad Name\" is not a valid header name"));
        let e = err(json!({"Hostname": "h", "Headers": "Sec-WebSocket-Protocol: x"}));
        assert!(e.contains("use the Subprotocols property"));
        let e = err(json!({"Hostname": "h", "Headers": "X-A: bad\u{1}value"}));
        assert!(e.contains("the value of X-A has a character not allowed") && !e.contains("bad"));
    }

    #[test]
    fn subprotocols_basic_auth_and_origin_are_checked() {
        let p = Properties::from_json(
            &json!({"Hostname": "h", "Subprotocols": " v2.bar, v1.foo ,v2.bar"}),
        )
        .unwrap();
        assert_eq!(p.subprotocols, vec!["v2.bar", "v1.foo"]);
        assert!(
            err(json!({"Hostname": "h", "Subprotocols": "a b"}))
                .contains("\"a b\" is not a valid subprotocol")
        );
        let p = Properties::from_json(&json!({"Hostname": "h", "Username": "u", "Password": "pw"}))
            .unwrap();
        assert_eq!(p.basic_auth.unwrap().password.expose(), "pw");
        assert!(
            err(json!({"Hostname": "h", "Password": "pw"}))
                .starts_with("Password is set but Username is blank")
        );
        assert!(err(json!({"Hostname": "h", "Username": "a:b"})).contains("must not contain ':'"));
        assert!(err(json!({"Hostname": "h", "Origin": "bad\u{1}"})).starts_with("Origin"));
    }

    #[test]
    fn reconnect_delays_must_be_ordered() {
        assert_eq!(
            err(json!({"Hostname": "h", "Reconnect Min Delay": 5, "Reconnect Max Delay": 2})),
            "Reconnect Min Delay (5 s) must not exceed Reconnect Max Delay (2 s)"
        );
        assert!(err(json!({"Hostname": "h", "Max Message Size": 10})).contains("from 1024 to"));
    }

    #[test]
    fn tls_options_are_parsed_and_checked() {
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pem = ca.cert.pem();
        let p = Properties::from_json(&json!({"Hostname": "h", "Protocol": "WSS", "CA Certificate": pem, "Trust Only Given CA": true})).unwrap();
        assert_eq!(p.tls.ca_certificates.len(), 1);
        assert!(p.tls.trust_only_given_ca && p.notes.is_empty());
        let p = Properties::from_json(&json!({"Hostname": "h", "CA Certificate": pem})).unwrap();
        assert!(p.notes[0].contains("ignored with Protocol WS"));
        assert!(
            err(json!({"Hostname": "h", "CA Certificate": "/nonexistent/ca.pem"}))
                .contains("cannot read the file \"/nonexistent/ca.pem\"")
        );
        assert!(
            err(json!({"Hostname": "h", "Trust Only Given CA": true}))
                .starts_with("Trust Only Given CA is on but CA Certificate is blank")
        );
        assert!(
            err(json!({"Hostname": "h", "Client Certificate": pem}))
                .starts_with("Client Certificate is set but Client Key is blank")
        );
        let key_pem = ca.signing_key.serialize_pem();
        let p = Properties::from_json(
            &json!({"Hostname": "h", "Client Certificate": pem, "Client Key": key_pem}),
        )
        .unwrap();
        assert!(p.tls.client_identity.is_some());
        assert!(
            !format!("{p:?}").contains(key_pem.lines().nth(1).unwrap()),
            "the key never prints"
        );
        let e = err(
            json!({"Hostname": "h", "Client Certificate": pem, "Client Key": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----"}),
        );
        assert!(
            e.starts_with("Client Key is not a usable") && !e.contains("bm90"),
            "{e}"
        );
    }

    #[test]
    fn pins_take_hex_with_colons() {
        let hex = "AB:".repeat(31) + "AB";
        let p = Properties::from_json(&json!({"Hostname": "h", "Pin SHA-256": hex})).unwrap();
        assert_eq!(p.tls.pin_sha256, Some([0xAB; 32]));
        assert!(
            err(json!({"Hostname": "h", "Pin SHA-256": "abcd"}))
                .starts_with("Pin SHA-256 must be 64 hexadecimal digits")
        );
        assert!(
            err(json!({"Hostname": "h", "Pin SHA-256": "zz".repeat(32)}))
                .starts_with("Pin SHA-256")
        );
        assert!(err(json!({"Hostname": "h", "Pin SHA-256": hex, "Skip Certificate Verification (insecure)": true})).contains("contradict"));
    }

    #[test]
    fn proxies_parse_and_never_show_the_password() {
        let p = Properties::from_json(
            &json!({"Hostname": "h", "Proxy": "http://us%20er:p%40ss@proxy.lan:3128"}),
        )
        .unwrap();
        let ProxySetting::Explicit(proxy) = p.proxy else {
            panic!("explicit proxy")
        };
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.lan", 3128));
        let auth = proxy.auth.unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.expose()),
            ("us er", "p@ss")
        );
        let p =
            Properties::from_json(&json!({"Hostname": "h", "Proxy": "proxy.lan:8080"})).unwrap();
        assert!(matches!(p.proxy, ProxySetting::Explicit(ref c) if c.port == 8080));
        let e = err(json!({"Hostname": "h", "Proxy": "https://u:hunter2@proxy:1"}));
        assert!(e.contains("u:***@proxy:1") && !e.contains("hunter2"), "{e}");
        let p = Properties::from_json(&json!({"Hostname": "h", "Use System Proxy": true})).unwrap();
        assert!(matches!(p.proxy, ProxySetting::System));
    }

    #[test]
    fn tls_files_must_be_small_regular_files() {
        let e = err(json!({"Hostname": "h", "CA Certificate": "/dev/zero"}));
        assert!(e.contains("not a regular file"), "{e}");
        let e = err(json!({"Hostname": "h", "CA Certificate": "/tmp"}));
        assert!(e.contains("not a regular file"), "{e}");
    }
}
