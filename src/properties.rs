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
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;

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

/// A value that must never be printed: bearer tokens, passwords, keys.
/// `Debug` shows only that it is set; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The secret itself, for the one place that sends it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
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

    /// Whether the property was given (rather than defaulted).
    pub fn is_given(&self, name: &str) -> bool {
        self.given.contains_key(name)
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

/// The typed instance configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        Ok(Properties {
            hostname,
            path,
            protocol,
            port,
            keep_alive: values.bool(names::KEEP_ALIVE),
            auto_reconnect: values.bool(names::AUTO_RECONNECT),
            extended_logging: values.bool(names::EXTENDED_LOGGING),
            log_comms: values.bool(names::LOG_COMMS),
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
}
