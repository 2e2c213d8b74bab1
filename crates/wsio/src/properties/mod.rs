//! Properties: JSON from the controller, checked against the manifest and
//! parsed once into typed values.
//!
//! Third step of the data flow. [`PropertyValues`] checks any property set
//! (instance, trigger or action) against its manifest declaration: unknown
//! names, JSON types, ranges and options, with manifest defaults for what is
//! missing. [`Properties`] is the typed instance configuration built from it,
//! with the validators (host name, path) that need more than a type.
//! Every error names the property, the value (never a secret's) and what is
//! accepted.
//!
//! The files: [`values`] (any property set, generic), this file (the typed
//! instance properties), [`formats`] (the text formats inside single
//! properties: headers, subprotocols, PEM, fingerprints, proxy URLs, host
//! names, paths, tokens).

mod formats;
mod values;

pub use formats::{parse_proxy, validate_bearer_token};
pub use values::{PropertyValues, closest_name};

use crate::manifest::{Manifest, names};
use crate::tls::TlsSettings;
use crate::vocabulary::{Messaging, ReconnectPolicy, Secret};
use async_tungstenite::tungstenite::http::HeaderValue;
use formats::{
    normalize_path, parse_basic_auth, parse_headers, parse_subprotocols, parse_tls,
    validate_hostname,
};
use serde_json::Value;
use std::fmt;
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
    /// Where it was given: what to fix when the proxy refuses credentials.
    pub source: ProxySource,
}

/// Where a proxy, and so its credentials, came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySource {
    /// The `Proxy` property.
    Property,
    /// This environment variable, with `Use System Proxy`.
    Environment(String),
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

#[cfg(test)]
mod tests;
