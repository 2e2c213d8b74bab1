//! Matching: a project trigger's properties compiled once, then tested against
//! every event the instance fires.
//!
//! The controller prepares each wired trigger when the project loads
//! ([`PreparedTrigger::prepare`]) and tests it per fired event
//! ([`PreparedTrigger::test`]). Testing does not allocate: the substring
//! search is a precompiled `memchr` finder. Only a match builds the trigger
//! variables ([`PreparedTrigger::variables`]).

use crate::manifest::{Manifest, names};
use crate::properties::{PropertyError, PropertyValues};
use memchr::memmem::Finder;
use serde_json::Value;

/// The kinds of trigger this module fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Connected,
    Established,
    Disconnected,
    MessagesReceived,
    GaveUp,
}

impl Trigger {
    pub const ALL: [Trigger; 5] = [
        Trigger::Connected,
        Trigger::Established,
        Trigger::Disconnected,
        Trigger::MessagesReceived,
        Trigger::GaveUp,
    ];

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

    /// The trigger with this manifest name, or an error listing the names.
    pub fn from_name(name: &str) -> Result<Trigger, PropertyError> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| PropertyError {
                property: String::new(),
                message: format!(
                    "unknown trigger \"{name}\"; this module fires {}",
                    Manifest::list(Trigger::ALL.iter().map(|t| t.name()))
                ),
            })
    }
}

/// What a trigger's properties compile to.
#[derive(Debug)]
enum Test {
    /// Every event matches (no properties, or a blank Match String).
    Always,
    /// The data must contain this byte string (case-sensitive).
    Contains(Box<Finder<'static>>),
}

/// A project trigger compiled from its properties.
#[derive(Debug)]
pub struct PreparedTrigger {
    trigger: Trigger,
    test: Test,
}

impl PreparedTrigger {
    /// Compiles a trigger's properties (`null` or an object by manifest name).
    pub fn prepare(trigger_name: &str, properties: &Value) -> Result<Self, PropertyError> {
        let trigger = Trigger::from_name(trigger_name)?;
        let spec = Manifest::get()
            .trigger(trigger.name())
            .expect("every Trigger is in the manifest (tested)");
        let owner = format!("trigger \"{}\"", trigger.name());
        let values = PropertyValues::parse(&spec.properties, properties, &owner)?;
        let test = match trigger {
            Trigger::MessagesReceived => {
                let needle = values.string(names::MATCH_STRING);
                if needle.is_empty() {
                    Test::Always
                } else {
                    Test::Contains(Box::new(Finder::new(needle.as_bytes()).into_owned()))
                }
            }
            _ => Test::Always,
        };
        Ok(PreparedTrigger { trigger, test })
    }

    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// Whether fired data matches. Allocation-free.
    pub fn test(&self, data: &[u8]) -> bool {
        match &self.test {
            Test::Always => true,
            Test::Contains(finder) => finder.find(data).is_some(),
        }
    }

    /// The trigger variables for matched data: variable 1 is the message
    /// (Messages Received) or the reason (Disconnected, Gave Up); none otherwise.
    pub fn variables(&self, data: &[u8]) -> Vec<String> {
        match self.trigger {
            Trigger::MessagesReceived | Trigger::Disconnected | Trigger::GaveUp => {
                vec![String::from_utf8_lossy(data).into_owned()]
            }
            Trigger::Connected | Trigger::Established => Vec::new(),
        }
    }
}

/// Replaces `<1>`, `<2>` … in `template` with trigger variables (variable n
/// is `variables[n-1]`). A placeholder with no such variable is left as it
/// is, so literal text such as `<b>` or `<99>` survives.
pub fn fill_placeholders<S: AsRef<str>>(template: &str, variables: &[S]) -> String {
    if variables.is_empty() || !template.contains('<') {
        return template.to_owned();
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let number = after[..digits].parse::<usize>().ok();
        let value = match (number, after.as_bytes().get(digits)) {
            (Some(n), Some(b'>')) if (1..=variables.len()).contains(&n) => {
                Some(variables[n - 1].as_ref())
            }
            _ => None,
        };
        match value {
            Some(v) => {
                out.push_str(v);
                rest = &after[digits + 1..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blank_match_string_matches_every_message() {
        let t = PreparedTrigger::prepare("Messages Received", &json!({})).unwrap();
        assert!(t.test(b"anything") && t.test(b""));
        let t =
            PreparedTrigger::prepare("Messages Received", &json!({"Match String": ""})).unwrap();
        assert!(t.test(b"x"));
    }

    #[test]
    fn match_string_is_a_case_sensitive_substring_without_wildcards() {
        let t = PreparedTrigger::prepare("Messages Received", &json!({"Match String": "ping"}))
            .unwrap();
        assert!(t.test(b"ping"));
        assert!(t.test(b"say ping now"));
        assert!(!t.test(b"PING"));
        assert!(!t.test(b"pin"));
        let t =
            PreparedTrigger::prepare("Messages Received", &json!({"Match String": "a*"})).unwrap();
        assert!(t.test(b"xa*y") && !t.test(b"abc"), "* is literal");
        let t =
            PreparedTrigger::prepare("Messages Received", &json!({"Match String": "é"})).unwrap();
        assert!(t.test("café".as_bytes()));
    }

    #[test]
    fn variables_carry_the_message_or_the_reason() {
        let t = PreparedTrigger::prepare("Messages Received", &Value::Null).unwrap();
        assert_eq!(t.variables(b"hello"), vec!["hello"]);
        let t = PreparedTrigger::prepare("Disconnected", &Value::Null).unwrap();
        assert_eq!(t.variables(b"closed by server"), vec!["closed by server"]);
        let t = PreparedTrigger::prepare("Connected", &json!({})).unwrap();
        assert!(t.test(b"") && t.variables(b"").is_empty());
    }

    #[test]
    fn bad_trigger_names_and_properties_are_errors() {
        let e = PreparedTrigger::prepare("Message Received", &json!({})).unwrap_err();
        assert!(e.message.contains("unknown trigger \"Message Received\""));
        assert!(e.message.contains("\"Messages Received\""));
        let e = PreparedTrigger::prepare("Messages Received", &json!({"Match": "x"})).unwrap_err();
        assert!(e.message.contains("accepted: \"Match String\""));
        let e = PreparedTrigger::prepare("Connected", &json!({"Match String": "x"})).unwrap_err();
        assert!(e.message.contains("it takes no properties"));
        let e =
            PreparedTrigger::prepare("Messages Received", &json!({"Match String": 1})).unwrap_err();
        assert_eq!(e.message, "Match String must be a string, got 1");
    }

    #[test]
    fn placeholders_are_filled_from_variables() {
        assert_eq!(fill_placeholders("pong: <1>", &["ping"]), "pong: ping");
        assert_eq!(fill_placeholders("<1><2><1>", &["a", "b"]), "aba");
        assert_eq!(fill_placeholders("<3> <b> <1", &["a"]), "<3> <b> <1");
        assert_eq!(fill_placeholders("<<1>>", &["x"]), "<x>");
        assert_eq!(
            fill_placeholders("no vars <1>", &[] as &[&str]),
            "no vars <1>"
        );
        assert_eq!(fill_placeholders("é<1>ü", &["ß"]), "éßü");
    }
}
