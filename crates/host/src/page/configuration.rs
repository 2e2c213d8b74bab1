//! What the project configures for an instance, as the status view shows it
//! beside the instance's status: where it connects (its target) and the
//! wires that start from it, each named "wire N" as the log names it.
//!
//! Both are read from the project file as the host loaded it, never from
//! the module: the page shows what the integrator wrote. Nothing secret is
//! shown: a target's query string (it may carry an api_key) is reduced to
//! `?…`, and a wire is shown by its trigger, the trigger's test and the
//! actions it runs, never by the actions' properties (a Bearer Token is one).
//!
//! A wire the host reports in the instance's `looping_wires` counter is
//! marked "possibly looping" (page.js keeps the mark in step with the
//! counters).
//!
//! The target is built from four instance properties of the WebSocket
//! Client (Hostname, Port, Path, Protocol); a module whose manifest does not
//! declare all four gets no target line rather than a guessed one.

use std::fmt::Write as _;

use toml::{Table, Value};

use super::super::manifest::{ModuleManifest, PropertySpec, TriggerSpec};
use super::super::project::Project;
use super::super::state::shorten_to;
use super::escape;

/// Longest trigger property value shown in a wire's line (a regex may be
/// long; the project file has it whole).
const MAX_SHOWN_VALUE: usize = 60;

/// A wire as the status view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireView {
    /// 1-based, as in the project file and the log ("wire 2").
    pub number: usize,
    /// `Messages Received (Contains "temp") → piesocket: Send Message`.
    pub text: String,
}

/// `ws://host:port/path`, with the query shown as `?…`; None for a module
/// without these properties or an instance without a Hostname.
pub fn target(manifest: &ModuleManifest, properties: Option<&Table>) -> Option<String> {
    let value = |name: &str| -> Option<Value> {
        let spec = manifest.properties.iter().find(|p| p.name == name)?;
        properties
            .and_then(|p| p.get(name))
            .or(spec.default.as_ref())
            .cloned()
            .or(Some(Value::String(String::new())))
    };
    let (hostname, port, path, protocol) = (
        value("Hostname")?,
        value("Port")?,
        value("Path")?,
        value("Protocol")?,
    );
    let hostname = hostname.as_str()?.trim();
    if hostname.is_empty() {
        return None;
    }
    let secure = protocol
        .as_str()
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("WSS"));
    let scheme = if secure { "wss" } else { "ws" };
    let port = match port.as_integer() {
        Some(0) | None if secure => 443,
        Some(0) | None => 80,
        Some(port) => port,
    };
    // An IPv6 address needs its brackets in a URL; the property may have
    // them already.
    let host = if hostname.contains(':') && !hostname.starts_with('[') {
        format!("[{hostname}]")
    } else {
        hostname.to_string()
    };
    let path = path.as_str().unwrap_or("").trim();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let slash = if path.starts_with('/') { "" } else { "/" };
    let hidden = if query.is_empty() { "" } else { "?…" };
    Some(format!("{scheme}://{host}:{port}{slash}{path}{hidden}"))
}

/// The wires of `project` whose trigger is one of `instance`'s, in file
/// order. `manifest` is the instance's module's (for the trigger's
/// properties and their defaults).
pub fn wires_from(project: &Project, instance: &str, manifest: &ModuleManifest) -> Vec<WireView> {
    project
        .wires
        .iter()
        .enumerate()
        .filter(|(_, wire)| wire.when.instance.get_ref() == instance)
        .map(|(w, wire)| {
            let trigger = wire.when.trigger.get_ref();
            let when = describe_trigger(
                trigger,
                manifest.trigger(trigger),
                wire.when.properties.as_ref().map(|p| p.get_ref()),
            );
            let then: Vec<String> = wire
                .then
                .0
                .iter()
                .map(|a| format!("{}: {}", a.instance.get_ref(), a.action.get_ref()))
                .collect();
            WireView {
                number: w + 1,
                text: format!("{when} → {}", then.join(", ")),
            }
        })
        .collect()
}

/// `Messages Received (Contains "temp")`: the trigger and what its test
/// looks for. Choices (a mode) and texts are shown always, so a default
/// mode is visible too; other settings only where they differ from their
/// defaults, by name (`Case Sensitive off`). Secret values are never shown.
fn describe_trigger(name: &str, spec: Option<&TriggerSpec>, given: Option<&Table>) -> String {
    let Some(spec) = spec else {
        return name.to_string();
    };
    let (mut words, mut settings) = (Vec::new(), Vec::new());
    let choices = spec.properties.iter().filter(|p| is_choice(p));
    let others = spec.properties.iter().filter(|p| !is_choice(p));
    for property in choices.chain(others) {
        if property.secret || property.editor.as_deref() == Some("password") {
            continue;
        }
        let set = given.and_then(|g| g.get(&property.name));
        let Some(value) = set.or(property.default.as_ref()) else {
            continue;
        };
        match value {
            Value::String(text) if is_choice(property) => words.push(text.clone()),
            Value::String(text) => words.push(format!(
                "\"{}\"",
                shorten_to(text.as_bytes(), MAX_SHOWN_VALUE)
            )),
            _ if property.default.as_ref() == Some(value) => {}
            Value::Boolean(on) => settings.push(format!(
                "{} {}",
                property.name,
                if *on { "on" } else { "off" }
            )),
            other => settings.push(format!("{} {other}", property.name)),
        }
    }
    let mut parts = Vec::new();
    if !words.is_empty() {
        parts.push(words.join(" "));
    }
    parts.extend(settings);
    if parts.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", parts.join(", "))
    }
}

/// A property whose value is one of a list (a mode), shown as a bare word.
fn is_choice(property: &PropertySpec) -> bool {
    property.kind == "enum" || !property.options.is_empty()
}

/// The wires that start from an instance (`n`: its place on the page),
/// numbered as the log names them; those in the counters' `looping_wires`
/// marked "possibly looping", in words, with why.
pub fn render_wires(html: &mut String, n: usize, wires: &[WireView], counters: &serde_json::Value) {
    if wires.is_empty() {
        html.push_str("<p class=\"wires-none\">No wires start from this instance.</p>\n");
        return;
    }
    let looping = looping_wires(counters);
    let _ = writeln!(
        html,
        r#"<h3 class="wires-title" id="i{n}-wires">Wires</h3>
<ol class="wires" aria-labelledby="i{n}-wires">"#
    );
    for wire in wires {
        let flag = if looping.contains(&wire.number) {
            format!(
                r#" <span class="looping"><strong>possibly looping</strong> {LOOPING_HINT}</span>"#
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            html,
            r#"<li data-wire="{number}"{looping}><span class="wire-number">wire {number}</span> <span class="wire-text">{}</span>{flag}</li>"#,
            escape(&wire.text),
            number = wire.number,
            looping = if flag.is_empty() { "" } else { " data-looping" },
        );
    }
    html.push_str("</ol>\n");
}

/// What the "possibly looping" mark means (page.js shows the same).
const LOOPING_HINT: &str =
    "It ran very often for seconds on end: its action may make its own trigger fire again.";

/// The wire numbers in the counters' `looping_wires` (absent: none).
pub fn looping_wires(counters: &serde_json::Value) -> Vec<usize> {
    counters["looping_wires"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_u64)
        .filter_map(|n| usize::try_from(n).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ModuleManifest {
        ModuleManifest::parse(include_str!("../../../wsio/module.toml")).unwrap()
    }

    fn table(text: &str) -> Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_target_hides_the_query_and_fills_in_the_default_port() {
        let m = manifest();
        let cases = [
            (
                r#"Hostname = "127.0.0.1"
                Port = 8765
                Path = "/v3/1?api_key=demo&notify_self=1""#,
                "ws://127.0.0.1:8765/v3/1?…",
            ),
            (r#"Hostname = "example.com""#, "ws://example.com:80/"),
            (
                r#"Hostname = "example.com"
                Protocol = "wss"
                Path = "feed""#,
                "wss://example.com:443/feed",
            ),
            (
                r#"Hostname = "::1"
                Port = 9000
                Path = "/x?""#,
                "ws://[::1]:9000/x",
            ),
            (r#"Hostname = "[::1]""#, "ws://[::1]:80/"),
        ];
        for (properties, expected) in cases {
            assert_eq!(
                target(&m, Some(&table(properties))).as_deref(),
                Some(expected),
                "{properties}"
            );
        }
        assert_eq!(target(&m, None), None, "no Hostname, no target");
    }

    #[test]
    fn a_module_without_these_properties_gets_no_target() {
        let m = ModuleManifest::parse("[module]\nname = \"other\"\n").unwrap();
        assert_eq!(target(&m, Some(&table(r#"Hostname = "a""#))), None);
    }

    #[test]
    fn wires_name_their_trigger_its_test_and_their_actions_never_their_properties() {
        let project = Project::parse(
            "p.toml",
            r#"
[[instance]]
name = "piesocket"
[[instance]]
name = "other"

[[wire]]
when = { instance = "other", trigger = "Connected" }
then = { instance = "other", action = "Disconnect" }

[[wire]]
when = { instance = "piesocket", trigger = "Messages Received", properties = { "Match String" = "temp" } }
then = { instance = "piesocket", action = "Send Message", properties = { Message = "got <1>" } }

[[wire]]
when = { instance = "piesocket", trigger = "Messages Received", properties = { "Match Mode" = "Regex", "Match String" = "^t(\\d+)$", "Case Sensitive" = false } }
then = [
  { instance = "other", action = "Connect", properties = { "Bearer Token" = "s3cr3t" } },
  { instance = "piesocket", action = "Clear Queue" },
]

[[wire]]
when = { instance = "piesocket", trigger = "WebSocket Established" }
then = { instance = "piesocket", action = "Send Message", properties = { Message = "hello" } }
"#,
        )
        .unwrap();
        let wires = wires_from(&project, "piesocket", &manifest());
        let shown: Vec<(usize, &str)> = wires.iter().map(|w| (w.number, w.text.as_str())).collect();
        assert_eq!(
            shown,
            [
                (
                    2,
                    r#"Messages Received (Contains "temp") → piesocket: Send Message"#
                ),
                (
                    3,
                    r#"Messages Received (Regex "^t(\d+)$", Case Sensitive off) → other: Connect, piesocket: Clear Queue"#
                ),
                (4, "WebSocket Established → piesocket: Send Message"),
            ]
        );
        assert!(!format!("{wires:?}").contains("s3cr3t"));
        assert!(!format!("{wires:?}").contains("got <1>"));
    }

    #[test]
    fn wires_are_listed_by_number_and_looping_ones_marked_in_words() {
        let wire = |number: usize, text: &str| WireView {
            number,
            text: text.into(),
        };
        let wires = [
            wire(
                2,
                r#"Messages Received (Contains "ping") → piesocket: Send Message"#,
            ),
            wire(
                3,
                r#"Messages Received (Contains "temp") → piesocket: Send Message"#,
            ),
        ];
        let render = |counters: serde_json::Value| {
            let mut html = String::new();
            render_wires(&mut html, 1, &wires, &counters);
            html
        };
        let html = render(serde_json::json!({"wire_runs": 9, "looping_wires": [3]}));
        assert!(
            html.contains(r#"<li data-wire="2"><span class="wire-number">wire 2</span> <span class="wire-text">Messages Received (Contains &quot;ping&quot;) → piesocket: Send Message</span></li>"#),
            "{html}"
        );
        let looping = html
            .find(r#"<li data-wire="3" data-looping>"#)
            .expect(&html);
        assert!(
            html[looping..]
                .split("</li>")
                .next()
                .unwrap()
                .contains(r#"<span class="looping"><strong>possibly looping</strong> It ran"#)
        );
        assert_eq!(html.matches("possibly looping<").count(), 1, "{html}");
        // Without the counter (a host that does not count), nothing is marked.
        let html = render(serde_json::json!({"wire_runs": 9}));
        assert!(!html.contains("possibly looping"), "{html}");
        let mut none = String::new();
        render_wires(&mut none, 1, &[], &serde_json::Value::Null);
        assert_eq!(
            none,
            "<p class=\"wires-none\">No wires start from this instance.</p>\n"
        );
    }

    #[test]
    fn a_long_match_string_is_cut() {
        let m = manifest();
        let long = "x".repeat(200);
        let text = describe_trigger(
            "Messages Received",
            m.trigger("Messages Received"),
            Some(&table(&format!("\"Match String\" = \"{long}\""))),
        );
        assert!(text.contains("… (200 bytes)"), "{text}");
        assert!(text.len() < 120, "{text}");
    }
}
