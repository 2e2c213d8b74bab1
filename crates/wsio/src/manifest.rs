//! The module manifest: `module.toml`, embedded at build time and parsed once.
//!
//! It is the second step of the data flow and the single source of truth for
//! the module's interface. Property types, defaults, ranges and options are
//! read from here by [`crate::properties`]; the names the code uses are the
//! constants in [`names`], and a test fails if any of them is missing from the
//! manifest or if the manifest declares something the code does not handle.
//! It also says what each [`Trigger`] and [`StatusKey`] of the vocabulary is
//! called there.

use crate::vocabulary::{StatusKey, Trigger};
use serde::Deserialize;
use std::sync::OnceLock;

/// The manifest text exactly as shipped (what `iom_module_manifest` returns).
pub const MANIFEST_TOML: &str = include_str!("../module.toml");

/// Names the code refers to. Each must exist in `module.toml` (see the tests).
pub mod names {
    pub const HOSTNAME: &str = "Hostname";
    pub const PATH: &str = "Path";
    pub const PROTOCOL: &str = "Protocol";
    pub const PORT: &str = "Port";
    pub const KEEP_ALIVE: &str = "Send keep alive?";
    pub const AUTO_RECONNECT: &str = "Auto-Reconnect";
    pub const EXTENDED_LOGGING: &str = "Extended Logging";
    pub const LOG_COMMS: &str = "Log Comms";
    pub const CONNECT_TIMEOUT: &str = "Connect Timeout";
    pub const KEEP_ALIVE_INTERVAL: &str = "Keep Alive Interval";
    pub const PONG_TIMEOUT: &str = "Pong Timeout";
    pub const IDLE_TIMEOUT: &str = "Idle Timeout";
    pub const RECONNECT_MIN_DELAY: &str = "Reconnect Min Delay";
    pub const RECONNECT_MAX_DELAY: &str = "Reconnect Max Delay";
    pub const RECONNECT_MAX_ATTEMPTS: &str = "Reconnect Max Attempts";
    pub const HEADERS: &str = "Headers";
    pub const SUBPROTOCOLS: &str = "Subprotocols";
    pub const ORIGIN: &str = "Origin";
    pub const USERNAME: &str = "Username";
    pub const PASSWORD: &str = "Password";
    pub const CA_CERTIFICATE: &str = "CA Certificate";
    pub const TRUST_ONLY_GIVEN_CA: &str = "Trust Only Given CA";
    pub const CLIENT_CERTIFICATE: &str = "Client Certificate";
    pub const CLIENT_KEY: &str = "Client Key";
    pub const PIN_SHA256: &str = "Pin SHA-256";
    pub const INSECURE: &str = "Skip Certificate Verification (insecure)";
    pub const PROXY: &str = "Proxy";
    pub const USE_SYSTEM_PROXY: &str = "Use System Proxy";
    pub const MAX_MESSAGE_SIZE: &str = "Max Message Size";
    pub const BINARY_AS_TEXT: &str = "Binary As Text";
    pub const QUEUE_WHILE_DISCONNECTED: &str = "Queue While Disconnected";
    pub const QUEUE_SIZE: &str = "Queue Size";
    pub const QUEUE_TTL: &str = "Queue Message TTL";
    pub const QUEUE_DROP_POLICY: &str = "Queue Drop Policy";
    pub const MAX_SEND_RATE: &str = "Max Send Rate";
    pub const TRIGGER_RATE_LIMIT: &str = "Trigger Rate Limit";

    pub const TRIGGER_CONNECTED: &str = "Connected";
    pub const TRIGGER_ESTABLISHED: &str = "WebSocket Established";
    pub const TRIGGER_DISCONNECTED: &str = "Disconnected";
    pub const TRIGGER_MESSAGES_RECEIVED: &str = "Messages Received";
    pub const TRIGGER_GAVE_UP: &str = "Gave Up";
    pub const MATCH_STRING: &str = "Match String";
    pub const MATCH_MODE: &str = "Match Mode";
    pub const CASE_SENSITIVE: &str = "Case Sensitive";

    pub const ACTION_CONNECT: &str = "Connect";
    pub const ACTION_DISCONNECT: &str = "Disconnect";
    pub const ACTION_SEND_MESSAGE: &str = "Send Message";
    pub const ACTION_RESET_RECONNECT: &str = "Reset Reconnect";
    pub const ACTION_CLEAR_QUEUE: &str = "Clear Queue";
    pub const MESSAGE_TYPE: &str = "Message Type";
    pub const BEARER_TOKEN: &str = "Bearer Token";
    pub const MESSAGE: &str = "Message";

    pub const STATUS_CONNECTION: &str = "ConnectionStatus";
    pub const STATUS_LAST_SENT: &str = "LastSent";
    pub const STATUS_LAST_RECEIVED: &str = "LastReceived";
    pub const STATUS_LAST_ERROR: &str = "LastError";
    pub const STATUS_LAST_CLOSE: &str = "LastClose";
    pub const STATUS_RECONNECTS: &str = "Reconnects";
    pub const STATUS_NEXT_RETRY: &str = "NextRetry";
    pub const STATUS_SUBPROTOCOL: &str = "Subprotocol";
    pub const STATUS_PING_RTT: &str = "PingRtt";
    pub const STATUS_QUEUE_DEPTH: &str = "QueueDepth";
    pub const STATUS_DROPPED: &str = "Dropped";
    pub const STATUS_SUPPRESSED: &str = "Suppressed";
    pub const STATUS_MESSAGES_IN: &str = "MessagesIn";
    pub const STATUS_MESSAGES_OUT: &str = "MessagesOut";
    pub const STATUS_BYTES_IN: &str = "BytesIn";
    pub const STATUS_BYTES_OUT: &str = "BytesOut";
    pub const STATUS_CONNECTION_STATE: &str = "ConnectionState";
}

/// The whole manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub module: ModuleInfo,
    #[serde(rename = "property", default)]
    pub properties: Vec<PropertySpec>,
    #[serde(rename = "trigger", default)]
    pub triggers: Vec<TriggerSpec>,
    #[serde(rename = "action", default)]
    pub actions: Vec<ActionSpec>,
    #[serde(rename = "status", default)]
    pub status: Vec<StatusSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub uuid: String,
    pub api_version: u32,
    pub description: String,
}

/// The value type of a property (instance, trigger or action property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    String,
    Int,
    Bool,
    Enum,
}

/// One property as declared in the manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertySpec {
    pub name: String,
    /// The section of a form it belongs in (for instance properties: Connection,
    /// Keep-alive and reconnect, Logging, Security or Messaging; trigger and
    /// action properties have none).
    pub group: Option<String>,
    #[serde(rename = "type")]
    pub kind: PropertyType,
    pub editor: String,
    pub default: toml::Value,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    pub validator: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    #[serde(default)]
    pub options: Vec<String>,
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    pub name: String,
    pub description: String,
    /// Fires for each message the connection receives, with the message as
    /// its data: a controller warns of a wire that would loop on it.
    #[serde(default)]
    pub on_message: bool,
    #[serde(rename = "property", default)]
    pub properties: Vec<PropertySpec>,
    #[serde(rename = "variable", default)]
    pub variables: Vec<VariableSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    pub number: u32,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    pub name: String,
    pub description: String,
    /// The property whose value (placeholders filled) the action sends to
    /// the server, if it sends one.
    pub sends: Option<String>,
    #[serde(rename = "property", default)]
    pub properties: Vec<PropertySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSpec {
    pub key: String,
    pub label: String,
}

impl Manifest {
    /// The embedded manifest, parsed once. The manifest is part of the build,
    /// so a parse failure is a build defect caught by the tests, not user input.
    pub fn get() -> &'static Manifest {
        static MANIFEST: OnceLock<Manifest> = OnceLock::new();
        MANIFEST.get_or_init(|| {
            toml::from_str(MANIFEST_TOML).expect("module.toml is valid (checked by tests)")
        })
    }

    pub fn property(&self, name: &str) -> Option<&PropertySpec> {
        self.properties.iter().find(|p| p.name == name)
    }

    pub fn trigger(&self, name: &str) -> Option<&TriggerSpec> {
        self.triggers.iter().find(|t| t.name == name)
    }

    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    pub fn status_label(&self, key: &str) -> Option<&str> {
        self.status
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.label.as_str())
    }

    /// "A, B and C": the accepted names, for error messages.
    pub fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
        let names: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
        names.join(", ")
    }
}

/// What each trigger is called in the manifest.
impl Trigger {
    /// The manifest name, as used by the controller and the ABI.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Connected => names::TRIGGER_CONNECTED,
            Trigger::Established => names::TRIGGER_ESTABLISHED,
            Trigger::Disconnected => names::TRIGGER_DISCONNECTED,
            Trigger::MessagesReceived => names::TRIGGER_MESSAGES_RECEIVED,
            Trigger::GaveUp => names::TRIGGER_GAVE_UP,
        }
    }
}

/// What each status variable is called in the manifest.
impl StatusKey {
    /// The manifest key.
    pub fn key(self) -> &'static str {
        match self {
            StatusKey::ConnectionStatus => names::STATUS_CONNECTION,
            StatusKey::LastSent => names::STATUS_LAST_SENT,
            StatusKey::LastReceived => names::STATUS_LAST_RECEIVED,
            StatusKey::LastError => names::STATUS_LAST_ERROR,
            StatusKey::LastClose => names::STATUS_LAST_CLOSE,
            StatusKey::Reconnects => names::STATUS_RECONNECTS,
            StatusKey::NextRetry => names::STATUS_NEXT_RETRY,
            StatusKey::Subprotocol => names::STATUS_SUBPROTOCOL,
            StatusKey::PingRtt => names::STATUS_PING_RTT,
            StatusKey::QueueDepth => names::STATUS_QUEUE_DEPTH,
            StatusKey::Dropped => names::STATUS_DROPPED,
            StatusKey::Suppressed => names::STATUS_SUPPRESSED,
            StatusKey::MessagesIn => names::STATUS_MESSAGES_IN,
            StatusKey::MessagesOut => names::STATUS_MESSAGES_OUT,
            StatusKey::BytesIn => names::STATUS_BYTES_IN,
            StatusKey::BytesOut => names::STATUS_BYTES_OUT,
            StatusKey::ConnectionState => names::STATUS_CONNECTION_STATE,
        }
    }

    /// The manifest label.
    pub fn label(self) -> &'static str {
        Manifest::get()
            .status_label(self.key())
            .expect("every StatusKey is in the manifest (tested)")
    }
}

#[cfg(test)]
mod tests {
    use super::names::*;
    use super::*;
    use std::collections::BTreeSet;

    fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
        items.into_iter().collect()
    }

    #[test]
    fn manifest_parses_and_declares_the_module() {
        let m = Manifest::get();
        assert_eq!(m.module.name, "WebSocket Client");
        assert_eq!(m.module.api_version, 1);
        assert_eq!(m.module.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn code_and_manifest_agree_on_instance_properties() {
        let m = Manifest::get();
        let code = set([
            HOSTNAME,
            PATH,
            PROTOCOL,
            PORT,
            KEEP_ALIVE,
            AUTO_RECONNECT,
            EXTENDED_LOGGING,
            LOG_COMMS,
            CONNECT_TIMEOUT,
            KEEP_ALIVE_INTERVAL,
            PONG_TIMEOUT,
            IDLE_TIMEOUT,
            RECONNECT_MIN_DELAY,
            RECONNECT_MAX_DELAY,
            RECONNECT_MAX_ATTEMPTS,
            HEADERS,
            SUBPROTOCOLS,
            ORIGIN,
            USERNAME,
            PASSWORD,
            CA_CERTIFICATE,
            TRUST_ONLY_GIVEN_CA,
            CLIENT_CERTIFICATE,
            CLIENT_KEY,
            PIN_SHA256,
            INSECURE,
            PROXY,
            USE_SYSTEM_PROXY,
            MAX_MESSAGE_SIZE,
            BINARY_AS_TEXT,
            QUEUE_WHILE_DISCONNECTED,
            QUEUE_SIZE,
            QUEUE_TTL,
            QUEUE_DROP_POLICY,
            MAX_SEND_RATE,
            TRIGGER_RATE_LIMIT,
        ]);
        let manifest = set(m.properties.iter().map(|p| p.name.as_str()));
        assert_eq!(code, manifest);
    }

    #[test]
    fn code_and_manifest_agree_on_triggers_actions_and_status() {
        let m = Manifest::get();
        assert_eq!(
            set([
                TRIGGER_CONNECTED,
                TRIGGER_ESTABLISHED,
                TRIGGER_DISCONNECTED,
                TRIGGER_MESSAGES_RECEIVED,
                TRIGGER_GAVE_UP
            ]),
            set(m.triggers.iter().map(|t| t.name.as_str()))
        );
        assert_eq!(
            set([
                ACTION_CONNECT,
                ACTION_DISCONNECT,
                ACTION_SEND_MESSAGE,
                ACTION_RESET_RECONNECT,
                ACTION_CLEAR_QUEUE
            ]),
            set(m.actions.iter().map(|a| a.name.as_str()))
        );
        assert_eq!(
            set([
                STATUS_CONNECTION,
                STATUS_LAST_SENT,
                STATUS_LAST_RECEIVED,
                STATUS_LAST_ERROR,
                STATUS_LAST_CLOSE,
                STATUS_RECONNECTS,
                STATUS_NEXT_RETRY,
                STATUS_SUBPROTOCOL,
                STATUS_PING_RTT,
                STATUS_QUEUE_DEPTH,
                STATUS_DROPPED,
                STATUS_SUPPRESSED,
                STATUS_MESSAGES_IN,
                STATUS_MESSAGES_OUT,
                STATUS_BYTES_IN,
                STATUS_BYTES_OUT,
                STATUS_CONNECTION_STATE
            ]),
            set(m.status.iter().map(|s| s.key.as_str()))
        );
        let received = m.trigger(TRIGGER_MESSAGES_RECEIVED).unwrap();
        assert_eq!(
            set(received.properties.iter().map(|p| p.name.as_str())),
            set([MATCH_STRING, MATCH_MODE, CASE_SENSITIVE])
        );
        assert_eq!(received.variables[0].number, 1);
        let connect = m.action(ACTION_CONNECT).unwrap();
        assert_eq!(
            set(connect.properties.iter().map(|p| p.name.as_str())),
            set([BEARER_TOKEN])
        );
        assert!(connect.properties[0].secret, "the token is a secret");
        let send = m.action(ACTION_SEND_MESSAGE).unwrap();
        assert_eq!(
            set(send.properties.iter().map(|p| p.name.as_str())),
            set([MESSAGE, MESSAGE_TYPE])
        );
    }

    /// The sections of the instance properties (`group` in `module.toml`),
    /// in the order forms and the reference show them: the groups of the
    /// classic module's properties first.
    const PROPERTY_GROUPS: [&str; 5] = [
        "Connection",
        "Keep-alive and reconnect",
        "Logging",
        "Security",
        "Messaging",
    ];

    /// The properties of the classic module, which come first in their
    /// groups.
    const CLASSIC: [&str; 8] = [
        HOSTNAME,
        PATH,
        PROTOCOL,
        PORT,
        KEEP_ALIVE,
        AUTO_RECONNECT,
        EXTENDED_LOGGING,
        LOG_COMMS,
    ];

    #[test]
    fn every_instance_property_is_in_a_known_group_and_groups_read_in_order() {
        let m = Manifest::get();
        let mut last_group = 0;
        let mut classic_done = false;
        for p in &m.properties {
            let group = p.group.as_deref().unwrap_or_else(|| {
                panic!(
                    "{} has no group; give it one of {PROPERTY_GROUPS:?}",
                    p.name
                )
            });
            let position = PROPERTY_GROUPS
                .iter()
                .position(|g| *g == group)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: unknown group {group:?}; known: {PROPERTY_GROUPS:?}",
                        p.name
                    )
                });
            // Each group in one run, in the order of PROPERTY_GROUPS.
            assert!(
                position >= last_group,
                "{} ({group}) comes after a property of {}",
                p.name,
                PROPERTY_GROUPS[last_group]
            );
            if position > last_group {
                classic_done = false;
            }
            last_group = position;
            // Within a group, the classic properties come first.
            let classic = CLASSIC.contains(&p.name.as_str());
            assert!(
                !(classic && classic_done),
                "{} is classic but comes after a newer property of {group}",
                p.name
            );
            classic_done |= !classic;
        }
        // The groups holding classic properties come before the others.
        let groups_of = |names: &[&str]| -> BTreeSet<usize> {
            names
                .iter()
                .map(|n| {
                    let group = m.property(n).unwrap().group.as_deref().unwrap();
                    PROPERTY_GROUPS.iter().position(|g| *g == group).unwrap()
                })
                .collect()
        };
        let classic_groups = groups_of(&CLASSIC);
        let all: Vec<&str> = m.properties.iter().map(|p| p.name.as_str()).collect();
        let other_groups: BTreeSet<usize> = groups_of(&all)
            .difference(&classic_groups)
            .copied()
            .collect();
        if let (Some(classic), Some(other)) = (classic_groups.last(), other_groups.first()) {
            assert!(
                classic < other,
                "groups with classic properties first: {classic_groups:?} then {other_groups:?}"
            );
        }
        for p in m
            .triggers
            .iter()
            .flat_map(|t| &t.properties)
            .chain(m.actions.iter().flat_map(|a| &a.properties))
        {
            assert!(
                p.group.is_none(),
                "{}: groups are for instance properties",
                p.name
            );
        }
    }

    #[test]
    fn status_keys_fit_the_controller_limits() {
        let m = Manifest::get();
        assert!(m.status.len() <= 50);
        for s in &m.status {
            assert!(s.key.len() <= 20, "{} is longer than 20", s.key);
            assert!(
                s.key.chars().all(|c| c.is_ascii_alphanumeric()),
                "{}",
                s.key
            );
        }
    }

    #[test]
    fn every_property_default_has_its_declared_type() {
        let m = Manifest::get();
        let all = m
            .properties
            .iter()
            .chain(m.triggers.iter().flat_map(|t| &t.properties))
            .chain(m.actions.iter().flat_map(|a| &a.properties));
        for p in all {
            let ok = match p.kind {
                PropertyType::String => p.default.is_str(),
                PropertyType::Int => p.default.as_integer().is_some_and(|v| {
                    p.min.is_none_or(|min| v >= min) && p.max.is_none_or(|max| v <= max)
                }),
                PropertyType::Bool => p.default.is_bool(),
                PropertyType::Enum => p
                    .default
                    .as_str()
                    .is_some_and(|v| p.options.iter().any(|o| o == v)),
            };
            assert!(ok, "default of {} does not fit its type", p.name);
            if p.secret {
                assert_eq!(
                    p.default.as_str(),
                    Some(""),
                    "{}: secrets default to empty",
                    p.name
                );
            }
        }
    }

    #[test]
    fn the_loop_keys_name_what_exists() {
        let m = Manifest::get();
        let on_message: Vec<&str> = m
            .triggers
            .iter()
            .filter(|t| t.on_message)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(on_message, [names::TRIGGER_MESSAGES_RECEIVED]);
        for action in &m.actions {
            if let Some(sent) = &action.sends {
                let p = action.properties.iter().find(|p| &p.name == sent);
                assert!(
                    p.is_some_and(|p| p.kind == PropertyType::String),
                    "{}: sends = {sent:?} must name one of its string properties",
                    action.name
                );
            }
        }
        assert_eq!(
            m.action(names::ACTION_SEND_MESSAGE)
                .unwrap()
                .sends
                .as_deref(),
            Some(names::MESSAGE)
        );
    }

    /// The reference page holds the tables of every property, trigger,
    /// action and status variable; the README links to it.
    const REFERENCE: &str = include_str!("../../../docs/reference.md");
    const README: &str = include_str!("../../../README.md");

    #[test]
    fn the_readme_links_the_reference() {
        assert!(
            README.contains("](docs/reference.md)"),
            "README must link docs/reference.md, where the tables are"
        );
    }

    #[test]
    fn the_reference_documents_every_name_in_the_manifest() {
        let m = Manifest::get();
        let names = m
            .properties
            .iter()
            .map(|p| &p.name)
            .chain(m.triggers.iter().map(|t| &t.name))
            .chain(
                m.triggers
                    .iter()
                    .flat_map(|t| t.properties.iter().map(|p| &p.name)),
            )
            .chain(m.actions.iter().map(|a| &a.name))
            .chain(
                m.actions
                    .iter()
                    .flat_map(|a| a.properties.iter().map(|p| &p.name)),
            )
            .chain(m.status.iter().map(|s| &s.key));
        for name in names {
            assert!(
                REFERENCE.contains(&format!("`{name}`")),
                "docs/reference.md lacks `{name}`"
            );
        }
        let options = m
            .properties
            .iter()
            .chain(m.triggers.iter().flat_map(|t| &t.properties))
            .chain(m.actions.iter().flat_map(|a| &a.properties))
            .flat_map(|p| p.options.iter().map(move |o| (&p.name, o)));
        for (property, option) in options {
            assert!(
                REFERENCE.contains(&format!("`{option}`")),
                "docs/reference.md lacks `{option}`, an option of {property}"
            );
        }
        for s in &m.status {
            assert!(
                REFERENCE.contains(&s.label),
                "docs/reference.md lacks {}",
                s.label
            );
        }
    }

    /// The section of the reference under `heading` (a line of its own), up
    /// to the next heading of the same or a higher level.
    fn section<'a>(text: &'a str, heading: &str) -> &'a str {
        let level = heading.split(' ').next().unwrap();
        let start = text
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("docs/reference.md lacks the heading {heading:?}"));
        let body = &text[start + heading.len() + 2..];
        let end = body
            .match_indices("\n#")
            .find(|(at, _)| {
                let marks = body[at + 1..].chars().take_while(|c| *c == '#').count();
                marks <= level.len()
            })
            .map_or(body.len(), |(at, _)| at);
        &body[..end]
    }

    #[test]
    fn the_reference_lists_every_instance_property_under_its_group() {
        let m = Manifest::get();
        let properties = section(REFERENCE, "## Instance properties");
        for p in &m.properties {
            let group = p.group.as_deref().unwrap_or_default();
            let rows = section(properties, &format!("### {group}"));
            assert!(
                rows.contains(&format!("\n| `{}` |", p.name)),
                "docs/reference.md lacks a row for `{}` under ### {group}",
                p.name
            );
        }
    }
}
