//! Matching: a project trigger's properties compiled once, then tested against
//! every event the instance fires.
//!
//! The controller prepares each wired trigger when the project loads
//! ([`PreparedTrigger::prepare`]) and tests it per fired event
//! ([`PreparedTrigger::test`]). Everything that can be compiled is compiled
//! then: an invalid regex or JSON Pointer is an error at project load, never
//! at message time. Testing Contains, Exact and Starts With does not
//! allocate (a precompiled `memchr` finder or a slice comparison; their
//! case-insensitive forms are a precompiled regex, which does not allocate
//! per search either). Regex mode never recompiles. Only a match builds the
//! trigger variables ([`PreparedTrigger::variables`]).

use crate::manifest::{Manifest, names};
use crate::properties::{PropertyError, PropertyValues};
use crate::vocabulary::Trigger;
use memchr::memmem::Finder;
use regex::bytes::{Regex, RegexBuilder};
use serde_json::Value;

impl Trigger {
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

/// The Match Mode of Messages Received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    Contains,
    Exact,
    StartsWith,
    Regex,
    Json,
}

impl MatchMode {
    fn from_option(option: &str) -> MatchMode {
        match option {
            "Exact" => MatchMode::Exact,
            "Starts With" => MatchMode::StartsWith,
            "Regex" => MatchMode::Regex,
            "JSON" => MatchMode::Json,
            _ => MatchMode::Contains,
        }
    }
}

/// What a trigger's properties compile to.
#[derive(Debug)]
enum Test {
    /// Every event matches (no properties, or a blank Contains).
    Always,
    /// The data must contain this byte string (case-sensitive).
    Contains(Box<Finder<'static>>),
    Exact(Box<[u8]>),
    StartsWith(Box<[u8]>),
    /// Regex mode, and the case-insensitive plain modes.
    Regex(Box<Regex>),
    Json(Box<JsonTest>),
}

/// JSON mode: a pointer into the message and an optional expected value.
#[derive(Debug)]
struct JsonTest {
    pointer: String,
    expected: Option<Value>,
    case_sensitive: bool,
}

impl JsonTest {
    fn compile(spec: &str, case_sensitive: bool) -> Result<JsonTest, String> {
        let (pointer, expected) = match spec.split_once("==") {
            Some((p, v)) => {
                let value: Value = serde_json::from_str(v.trim()).map_err(|e| {
                    format!(
                        "the expected value after == must be JSON, e.g. \"alarm\", 21.5 or true ({e})"
                    )
                })?;
                (p.trim(), Some(value))
            }
            None => (spec.trim(), None),
        };
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "\"{pointer}\" is not a JSON Pointer: it must start with / (e.g. /type or /data/0/value), or be empty for the whole message"
            ));
        }
        Ok(JsonTest {
            pointer: pointer.to_owned(),
            expected,
            case_sensitive,
        })
    }

    /// The value at the pointer when the message matches.
    fn select(&self, data: &[u8]) -> Option<Value> {
        let document: Value = serde_json::from_slice(data).ok()?;
        let value = document.pointer(&self.pointer)?;
        let matches = match (&self.expected, value) {
            (None, _) => true,
            (Some(Value::String(want)), Value::String(got)) if !self.case_sensitive => {
                want.to_lowercase() == got.to_lowercase()
            }
            (Some(want), got) => want == got,
        };
        matches.then(|| value.clone())
    }
}

/// A project trigger compiled from its properties.
#[derive(Debug)]
pub struct PreparedTrigger {
    trigger: Trigger,
    mode: MatchMode,
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
        if trigger != Trigger::MessagesReceived {
            return Ok(PreparedTrigger {
                trigger,
                mode: MatchMode::Contains,
                test: Test::Always,
            });
        }
        let needle = values.string(names::MATCH_STRING);
        let mode = MatchMode::from_option(&values.string(names::MATCH_MODE));
        let case_sensitive = values.bool(names::CASE_SENSITIVE);
        let error = |message: String| PropertyError {
            property: names::MATCH_STRING.to_owned(),
            message,
        };
        let regex = |pattern: &str| {
            RegexBuilder::new(pattern)
                .case_insensitive(!case_sensitive)
                .build()
                .map_err(|e| {
                    error(format!(
                        "Match String is not a valid regular expression: {}",
                        one_line_regex_error(&e)
                    ))
                })
        };
        let escaped = regex::escape(&needle);
        let test = match mode {
            MatchMode::Contains if needle.is_empty() => Test::Always,
            MatchMode::Contains if case_sensitive => {
                Test::Contains(Box::new(Finder::new(needle.as_bytes()).into_owned()))
            }
            MatchMode::Contains => Test::Regex(Box::new(regex(&escaped)?)),
            MatchMode::Exact if case_sensitive => Test::Exact(needle.into_bytes().into()),
            MatchMode::Exact => Test::Regex(Box::new(regex(&format!("^(?:{escaped})$"))?)),
            MatchMode::StartsWith if case_sensitive => Test::StartsWith(needle.into_bytes().into()),
            MatchMode::StartsWith => Test::Regex(Box::new(regex(&format!("^(?:{escaped})"))?)),
            MatchMode::Regex => Test::Regex(Box::new(regex(&needle)?)),
            MatchMode::Json => Test::Json(Box::new(
                JsonTest::compile(&needle, case_sensitive)
                    .map_err(|e| error(format!("Match String in JSON mode: {e}")))?,
            )),
        };
        Ok(PreparedTrigger {
            trigger,
            mode,
            test,
        })
    }

    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// Whether fired data matches. Allocation-free except in JSON mode,
    /// which must parse the message.
    pub fn test(&self, data: &[u8]) -> bool {
        match &self.test {
            Test::Always => true,
            Test::Contains(finder) => finder.find(data).is_some(),
            Test::Exact(text) => data == &text[..],
            Test::StartsWith(text) => data.starts_with(text),
            Test::Regex(regex) => regex.is_match(data),
            Test::Json(json) => json.select(data).is_some(),
        }
    }

    /// How many variables [`PreparedTrigger::variables`] gives for every
    /// match: fixed once the trigger is prepared (a regex group that did not
    /// take part is an empty variable), so a controller can check a wire's
    /// placeholders before anything fires.
    pub fn variable_count(&self) -> usize {
        match self.trigger {
            Trigger::MessagesReceived => match (&self.test, self.mode) {
                (Test::Regex(regex), MatchMode::Regex) => regex.captures_len() + 1,
                (Test::Json(_), _) => 3,
                _ => 2,
            },
            Trigger::Disconnected | Trigger::GaveUp => 1,
            Trigger::Connected | Trigger::Established => 0,
        }
    }

    /// What each of [`PreparedTrigger::variables`] is, in order, for a
    /// controller's placeholder list: `Message`, then `room (regex group 1)`
    /// (or `regex group 1` for a group without a name) or `value at /temp`,
    /// then `Message Type`; `Reason` for Disconnected and Gave Up.
    pub fn variable_names(&self) -> Vec<String> {
        match self.trigger {
            Trigger::MessagesReceived => {
                let mut names = vec!["Message".to_owned()];
                match (&self.test, self.mode) {
                    (Test::Regex(regex), MatchMode::Regex) => {
                        for (n, name) in regex.capture_names().enumerate().skip(1) {
                            names.push(match name {
                                Some(name) => format!("{name} (regex group {n})"),
                                None => format!("regex group {n}"),
                            });
                        }
                    }
                    (Test::Json(json), _) => names.push(if json.pointer.is_empty() {
                        "the whole message as JSON".to_owned()
                    } else {
                        format!("value at {}", json.pointer)
                    }),
                    _ => {}
                }
                names.push("Message Type".to_owned());
                names
            }
            Trigger::Disconnected | Trigger::GaveUp => vec!["Reason".to_owned()],
            Trigger::Connected | Trigger::Established => Vec::new(),
        }
    }

    /// The trigger variables for matched data. Messages Received: 1 = the
    /// message, then the regex captures (2, 3, …) or the JSON value (2),
    /// then the Message Type ("text"/"binary") last. Disconnected and Gave
    /// Up: 1 = the reason. Others: none.
    pub fn variables(&self, data: &[u8], binary: bool) -> Vec<String> {
        let text = || String::from_utf8_lossy(data).into_owned();
        match self.trigger {
            Trigger::MessagesReceived => {
                let mut vars = vec![text()];
                match (&self.test, self.mode) {
                    (Test::Regex(regex), MatchMode::Regex) => {
                        let groups = regex.captures_len() - 1;
                        let captures = regex.captures(data);
                        for n in 1..=groups {
                            let group = captures.as_ref().and_then(|c| c.get(n));
                            vars.push(
                                group
                                    .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                                    .unwrap_or_default(),
                            );
                        }
                    }
                    (Test::Json(json), _) => {
                        vars.push(match json.select(data) {
                            Some(Value::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => String::new(),
                        });
                    }
                    _ => {}
                }
                vars.push(if binary { "binary" } else { "text" }.to_owned());
                vars
            }
            Trigger::Disconnected | Trigger::GaveUp => vec![text()],
            Trigger::Connected | Trigger::Established => Vec::new(),
        }
    }
}

/// The regex crate explains syntax errors over several lines (the pattern,
/// a caret, the reason); a controller log wants one: "unclosed group at
/// offset 5".
fn one_line_regex_error(error: &regex::Error) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let reason = lines
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.as_str());
    let caret = lines
        .iter()
        .position(|l| l.trim() == "^" || l.trim().starts_with('^'));
    match caret {
        Some(i) if i > 0 => {
            let indent = |l: &str| l.len() - l.trim_start().len();
            let offset = indent(lines[i]).saturating_sub(indent(lines[i - 1]));
            format!("{reason} at offset {offset}")
        }
        _ => reason.to_owned(),
    }
}

/// Whether `template` holds a placeholder (`<1>`, `<2>` …) that trigger
/// variables could fill.
pub fn has_placeholders(template: &str) -> bool {
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after.as_bytes().get(digits) == Some(&b'>') {
            return true;
        }
        rest = after;
    }
    false
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
    fn placeholders_are_found_only_where_variables_could_fill_them() {
        assert!(has_placeholders("pong <1>"));
        assert!(has_placeholders("<12>"));
        assert!(!has_placeholders("<b>bold</b> < 3 <>"));
        assert!(!has_placeholders("<1"));
        assert!(!has_placeholders(""));
    }

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
        assert_eq!(t.variables(b"hello", false), vec!["hello", "text"]);
        let t = PreparedTrigger::prepare("Disconnected", &Value::Null).unwrap();
        assert_eq!(
            t.variables(b"closed by server", false),
            vec!["closed by server"]
        );
        let t = PreparedTrigger::prepare("Connected", &json!({})).unwrap();
        assert!(t.test(b"") && t.variables(b"", false).is_empty());
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

    fn prepared(mode: &str, needle: &str, case_sensitive: bool) -> PreparedTrigger {
        PreparedTrigger::prepare(
            "Messages Received",
            &json!({"Match Mode": mode, "Match String": needle, "Case Sensitive": case_sensitive}),
        )
        .unwrap()
    }

    #[test]
    fn exact_and_starts_with_compare_whole_or_prefix() {
        let t = prepared("Exact", "on", true);
        assert!(t.test(b"on") && !t.test(b"on ") && !t.test(b"ON") && !t.test(b""));
        let t = prepared("Exact", "", true);
        assert!(
            t.test(b"") && !t.test(b"x"),
            "Exact blank matches only the empty message"
        );
        let t = prepared("Starts With", "alarm:", true);
        assert!(t.test(b"alarm: fire") && !t.test(b"no alarm:"));
        let t = prepared("Starts With", "", true);
        assert!(t.test(b"anything"));
    }

    #[test]
    fn case_insensitive_modes_fold_unicode_case() {
        assert!(prepared("Contains", "PiNg", false).test(b"say ping"));
        assert!(
            !prepared("Exact", "Straße", false).test("STRASSE".as_bytes()),
            "no multi-letter folding"
        );
        assert!(prepared("Exact", "ÉTÉ", false).test("été".as_bytes()));
        assert!(prepared("Starts With", "alarm", false).test(b"ALARM 3"));
        assert!(!prepared("Starts With", "alarm", false).test(b"no ALARM"));
        // Regex metacharacters in plain modes are literal.
        assert!(
            prepared("Contains", "a.b", false).test(b"A.B")
                && !prepared("Contains", "a.b", false).test(b"axb")
        );
    }

    #[test]
    fn overlapping_and_huge_messages() {
        assert!(prepared("Contains", "aab", true).test(b"aaab"));
        let mut big = vec![b'x'; 8 * 1024 * 1024];
        big.extend_from_slice(b"needle");
        assert!(prepared("Contains", "needle", true).test(&big));
        assert!(prepared("Contains", "NEEDLE", false).test(&big));
        assert!(!prepared("Exact", "needle", true).test(&big));
    }

    #[test]
    fn regex_captures_become_variables_two_and_up_then_the_message_type() {
        let t = prepared("Regex", r"^temp (?P<room>\w+)=(\d+(?:\.\d+)?)$", true);
        assert!(t.test(b"temp kitchen=21.5"));
        assert!(!t.test(b"TEMP kitchen=21.5"));
        assert_eq!(
            t.variables(b"temp kitchen=21.5", false),
            vec!["temp kitchen=21.5", "kitchen", "21.5", "text"]
        );
        let t = prepared("Regex", r"(a)|(b)", true);
        assert_eq!(
            t.variables(b"b", true),
            vec!["b", "", "b", "binary"],
            "unmatched group is empty"
        );
        assert!(prepared("Regex", "ping", false).test(b"PING"));
        assert!(prepared("Regex", "é+", true).test("caféé".as_bytes()));
    }

    #[test]
    fn an_invalid_regex_or_pointer_is_an_error_at_prepare_time() {
        let e = PreparedTrigger::prepare(
            "Messages Received",
            &json!({"Match Mode": "Regex", "Match String": "(unclosed"}),
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("Match String is not a valid regular expression"),
            "{}",
            e.message
        );
        let e = PreparedTrigger::prepare(
            "Messages Received",
            &json!({"Match Mode": "JSON", "Match String": "type"}),
        )
        .unwrap_err();
        assert!(e.message.contains("is not a JSON Pointer"), "{}", e.message);
        let e = PreparedTrigger::prepare(
            "Messages Received",
            &json!({"Match Mode": "JSON", "Match String": "/type == alarm"}),
        )
        .unwrap_err();
        assert!(e.message.contains("must be JSON"), "{}", e.message);
        let e = PreparedTrigger::prepare("Messages Received", &json!({"Match Mode": "Glob"}))
            .unwrap_err();
        assert!(e.message.contains("Match Mode must be one of"));
    }

    #[test]
    fn json_mode_selects_by_pointer_and_optional_value() {
        let t = prepared("JSON", r#"/type == "alarm""#, true);
        assert!(t.test(br#"{"type":"alarm","zone":3}"#));
        assert!(!t.test(br#"{"type":"ALARM"}"#));
        assert!(prepared("JSON", r#"/type == "alarm""#, false).test(br#"{"type":"ALARM"}"#));
        assert!(!t.test(b"not json"), "non-JSON does not match");
        assert!(!t.test(br#"{"zone":3}"#));
        assert_eq!(
            t.variables(br#"{"type":"alarm"}"#, false),
            vec![r#"{"type":"alarm"}"#, "alarm", "text"]
        );
        let t = prepared("JSON", "/temperature", true);
        assert!(t.test(br#"{"temperature": 21.5}"#) && !t.test(br#"{"t": 1}"#));
        assert_eq!(t.variables(br#"{"temperature": 21.5}"#, false)[1], "21.5");
        let t = prepared("JSON", "/data/0/v == 5", true);
        assert!(t.test(br#"{"data":[{"v":5}]}"#) && !t.test(br#"{"data":[{"v":"5"}]}"#));
        let t = prepared("JSON", "/a~1b", true);
        assert!(t.test(br#"{"a/b": null}"#), "RFC 6901 escapes");
        assert!(
            prepared("JSON", "", true).test(b"[1,2]"),
            "blank pointer: any JSON"
        );
    }

    #[test]
    fn the_variable_count_is_what_every_match_gives() {
        let cases = [
            ("Messages Received", json!({"Match String": "a"}), 2),
            (
                "Messages Received",
                json!({"Match Mode": "Exact", "Match String": "a", "Case Sensitive": false}),
                2,
            ),
            (
                "Messages Received",
                json!({"Match Mode": "Regex", "Match String": "(a)(b)?"}),
                4,
            ),
            (
                "Messages Received",
                json!({"Match Mode": "Regex", "Match String": "a"}),
                2,
            ),
            (
                "Messages Received",
                json!({"Match Mode": "JSON", "Match String": "/a"}),
                3,
            ),
            ("Disconnected", json!({}), 1),
            ("Gave Up", json!({}), 1),
            ("Connected", json!({}), 0),
            ("WebSocket Established", json!({}), 0),
        ];
        for (trigger, properties, count) in cases {
            let t = PreparedTrigger::prepare(trigger, &properties).unwrap();
            assert_eq!(t.variable_count(), count, "{trigger} {properties}");
            for data in [&b"a"[..], br#"{"a": 1}"#] {
                if t.test(data) {
                    assert_eq!(
                        t.variables(data, false).len(),
                        count,
                        "{trigger} {properties}"
                    );
                }
            }
        }
    }

    #[test]
    fn variable_names_follow_the_variables() {
        let regex = prepared("Regex", r"room (?P<room>\w+) (\d+)", true);
        assert_eq!(
            regex.variable_names(),
            [
                "Message",
                "room (regex group 1)",
                "regex group 2",
                "Message Type"
            ]
        );
        assert_eq!(regex.variable_names().len(), regex.variable_count());
        let json = prepared("JSON", "/temp", true);
        assert_eq!(
            json.variable_names(),
            ["Message", "value at /temp", "Message Type"]
        );
        assert_eq!(
            prepared("Contains", "x", true).variable_names(),
            ["Message", "Message Type"]
        );
        let gone = PreparedTrigger::prepare("Disconnected", &Value::Null).unwrap();
        assert_eq!(gone.variable_names(), ["Reason"]);
    }

    #[test]
    fn message_type_is_the_last_variable() {
        let t = prepared("Contains", "", true);
        assert_eq!(t.variables(b"00ff", true), vec!["00ff", "binary"]);
    }
}
