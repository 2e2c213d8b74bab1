//! The status page at `GET /`: every instance with its status variables and
//! a form per action, generated from each module's manifest and status, so
//! a module that declares a new action, property or status variable shows
//! up without a change here. The page's behaviour (live updates from
//! `/events`, running actions with `fetch`) is in `assets/page.js`; its look
//! in `assets/page.css`. They are embedded at build time and served by
//! [`asset`]: the page needs no internet, no CDN and no build step.
//!
//! The page knows the *meaning* of three status variables, all documented
//! in `include/iom.h`: Connection State ([`CONNECTION_STATE`], one word of a
//! fixed set) drives the badge shown at a glance (text and colour) through
//! [`ConnectionState::of`], here for the first render and in the live
//! feed's status events for later changes; Connection Status
//! ([`CONNECTION_STATUS`]) is shown beside it as the detail, never parsed;
//! Next Retry ([`NEXT_RETRY`], a timestamp) drives the reconnect countdown.
//! A module without Connection State gets an "Unknown" badge.
//!
//! Beside the status, each instance shows what the project configures for
//! it ([`configuration`]): its target and the wires that start from it. A
//! wire the host counts in the instance's `looping_wires` counter is marked
//! "possibly looping", in words.
//!
//! The Configure view (`#configure`, a tab beside the status) is built in
//! the browser by `assets/configure*.js` from `GET /project` and
//! `GET /modules`, and checks, tests and applies through the project API
//! (`docs/configure.md` says how); this file only gives it its place.
//!
//! Secrets: a property the manifest marks `secret` (or edits with
//! "password") gets a password field that is never pre-filled; the page
//! clears it once it has sent the action.

mod assets;
mod configuration;

use std::fmt::Write as _;

use serde_json::{Value, json};

pub use assets::asset;
pub use configuration::{WireView, looping_wires, target, wires_from};

use super::manifest::{ModuleManifest, PropertySpec};
use super::state::{HostState, RunningInstance, shorten_to};

/// The key of the status variable the badge shows: one word of a fixed set.
pub const CONNECTION_STATE: &str = "ConnectionState";

/// The key of the connection's status in words, shown beside the badge.
pub const CONNECTION_STATUS: &str = "ConnectionStatus";

/// The key of the time of the next reconnect attempt (RFC 3339, or empty),
/// for the countdown.
pub const NEXT_RETRY: &str = "NextRetry";

/// Status values longer than this are cut on the page (Last Received may be
/// a megabyte); `/io_modules` has them whole.
const MAX_SHOWN_VALUE: usize = 500;

/// The connection, as the page shows it: a state for the colour and a word
/// for the text (colour is never the only signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Established,
    Connecting,
    Reconnecting,
    Closing,
    Disconnected,
    Failed,
    /// Auto-Reconnect stopped trying (the Gave Up trigger fired).
    GaveUp,
    WaitingForNetwork,
    /// A value this page does not know (another module, a newer version).
    Unknown,
}

impl ConnectionState {
    /// The badge for a Connection State value (the words are listed in
    /// `include/iom.h`; a handshake in progress shows as Connecting).
    pub fn of(word: &str) -> ConnectionState {
        match word {
            "established" => ConnectionState::Established,
            "connecting" | "handshaking" => ConnectionState::Connecting,
            "reconnecting" => ConnectionState::Reconnecting,
            "closing" => ConnectionState::Closing,
            "disconnected" => ConnectionState::Disconnected,
            "failed" => ConnectionState::Failed,
            "gave-up" => ConnectionState::GaveUp,
            "waiting-for-network" => ConnectionState::WaitingForNetwork,
            _ => ConnectionState::Unknown,
        }
    }

    /// The CSS class suffix (`state-…`) and `data-state` value.
    pub fn class(self) -> &'static str {
        match self {
            ConnectionState::Established => "established",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Reconnecting => "reconnecting",
            ConnectionState::Closing => "closing",
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Failed => "failed",
            ConnectionState::GaveUp => "gave-up",
            ConnectionState::WaitingForNetwork => "waiting",
            ConnectionState::Unknown => "unknown",
        }
    }

    /// The word on the badge.
    pub fn text(self) -> &'static str {
        match self {
            ConnectionState::Established => "Established",
            ConnectionState::Connecting => "Connecting",
            ConnectionState::Reconnecting => "Reconnecting",
            ConnectionState::Closing => "Closing",
            ConnectionState::Disconnected => "Disconnected",
            ConnectionState::Failed => "Connect failed",
            ConnectionState::GaveUp => "Gave up",
            ConnectionState::WaitingForNetwork => "Waiting for the network",
            ConnectionState::Unknown => "Unknown",
        }
    }
}

/// One status variable as the page and the live feed carry it:
/// `{"key","label","value","timestamp"}`, plus `"connection":{"state",
/// "text"}` for Connection State.
pub fn status_view(manifest: &ModuleManifest, key: &str, value: &str, timestamp: &str) -> Value {
    let mut view = json!({
        "key": key,
        "label": manifest.status_label(key),
        "value": shorten_to(value.as_bytes(), MAX_SHOWN_VALUE),
        "timestamp": timestamp,
    });
    if key == CONNECTION_STATE {
        view["connection"] = connection_view(ConnectionState::of(value));
    }
    view
}

fn connection_view(state: ConnectionState) -> Value {
    json!({ "state": state.class(), "text": state.text() })
}

/// The status of every instance in page form, in project order:
/// `[{"instance": name, "status": [status_view…]}]`.
pub fn all_status(state: &HostState) -> Vec<Value> {
    state
        .config()
        .instances
        .iter()
        .map(|instance| {
            json!({
                "instance": instance.name,
                "status": instance_status(instance),
            })
        })
        .collect()
}

fn instance_status(instance: &RunningInstance) -> Vec<Value> {
    let manifest = instance.manifest();
    instance
        .status()
        .iter()
        .filter_map(|s| {
            let text = |field: &str| s.get(field).and_then(Value::as_str).unwrap_or("");
            let key = s.get("key")?.as_str()?;
            let mut view = status_view(manifest, key, text("value"), text("timestamp"));
            // The module's own label wins over the manifest's.
            if !text("label").is_empty() {
                view["label"] = text("label").into();
            }
            Some(view)
        })
        .collect()
}

/// What the page shows of one instance.
pub struct InstanceView<'a> {
    pub name: &'a str,
    pub manifest: &'a ModuleManifest,
    /// [`status_view`]s.
    pub status: Vec<Value>,
    /// The instance's counters as `GET /io_modules` shows them (Null: none).
    pub counters: Value,
    /// `ws://host:port/path` ([`target`]); None: not shown.
    pub target: Option<String>,
    /// The wires that start from this instance ([`wires_from`]).
    pub wires: Vec<WireView>,
}

/// One line for people: the triggers that fired, wire runs, events lost
/// (page.js writes the same line from `GET /io_modules`).
pub fn counters_text(counters: &Value) -> String {
    if counters.is_null() {
        return String::new();
    }
    let fired: Vec<String> = counters["triggers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, count)| count.as_u64().unwrap_or(0) > 0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    format!(
        "Triggers fired: {} · Wire runs: {} · Events lost: {}",
        if fired.is_empty() {
            "none".to_string()
        } else {
            fired.join(", ")
        },
        counters["wire_runs"].as_u64().unwrap_or(0),
        counters["events_lost"].as_u64().unwrap_or(0),
    )
}

/// The page for the running host.
pub fn render(state: &HostState) -> String {
    let config = state.config();
    let views: Vec<InstanceView> = config
        .instances
        .iter()
        .map(|instance| {
            let name = &instance.name;
            let manifest = instance.manifest();
            let project = config.project.as_ref();
            let decl = project.and_then(|p| p.instance(name));
            InstanceView {
                name,
                manifest,
                status: instance_status(instance),
                counters: instance.counters.to_json(),
                target: decl
                    .and_then(|d| target(manifest, d.properties.as_ref().map(|p| p.get_ref()))),
                wires: project.map_or_else(Vec::new, |p| wires_from(p, name, manifest)),
            }
        })
        .collect();
    render_instances(&views)
}

/// The page for these instances (the log is filled from `/events`).
pub fn render_instances(instances: &[InstanceView]) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let count = match instances.len() {
        1 => "1 instance".to_string(),
        n => format!("{n} instances"),
    };
    let _ = write!(
        html,
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>IO Modules · wsio</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/page.css">
<link rel="stylesheet" href="/assets/configure.css">
<script src="/assets/page.js" defer></script>
<script src="/assets/configure.js" type="module"></script>
</head>
<body>
<a class="skip" href="#log">Skip to the log</a>
<header class="top">
<div>
<h1>IO Modules</h1>
<p class="subtitle">wsio reference controller · {count} · <a href="/io_modules">/io_modules</a> (JSON)</p>
</div>
<p id="feed" class="feed" data-feed="connecting" role="status">Connecting to live updates…</p>
<nav class="views" aria-label="Views" data-needs="admin">
<a href="#status" id="tab-status" aria-current="page">Status</a>
<a href="#configure" id="tab-configure">Configure<span class="dirty-mark" hidden> <span aria-hidden="true">●</span><span class="visually-hidden">(unsaved changes)</span></span></a>
</nav>
</header>
<main id="status-view" aria-labelledby="tab-status">
<section class="instances" aria-label="Instances">
"##
    );
    if instances.is_empty() {
        html.push_str("<p>The project has no instances.</p>\n");
    }
    for (n, instance) in instances.iter().enumerate() {
        render_instance(&mut html, n + 1, instance);
    }
    html.push_str(
        r##"</section>
<section class="log" aria-labelledby="log-title">
<div class="log-head">
<h2 id="log-title">Log</h2>
<p class="hint">Fired triggers and run actions, newest first (the last 500).</p>
</div>
<ol id="log" class="entries" role="log" aria-live="polite" aria-relevant="additions" tabindex="0" aria-labelledby="log-title"></ol>
<noscript><p>The log, live status and action forms need JavaScript; <a href="/io_modules">/io_modules</a> has the status as JSON.</p></noscript>
</section>
</main>
<main id="configure-view" aria-labelledby="tab-configure" data-needs="admin" hidden>
<p class="loading">Loading the project…</p>
</main>
</body>
</html>
"##,
    );
    html
}

fn render_instance(html: &mut String, n: usize, instance: &InstanceView) {
    let name = escape(instance.name);
    let module = &instance.manifest.module;
    let find = |key: &str| instance.status.iter().find(|s| s["key"] == key);
    let (state, status) = (find(CONNECTION_STATE), find(CONNECTION_STATUS));
    let _ = write!(
        html,
        r#"<article class="instance" id="i{n}" data-instance="{name}" aria-labelledby="i{n}-name">
<header class="instance-head">
<h2 id="i{n}-name">{name}</h2>
<p class="module">{} <span class="version">{}</span></p>
"#,
        escape(&module.name),
        escape(&module.version),
    );
    if let Some(target) = &instance.target {
        // `?…` alone would leave a reader guessing why.
        let why = if target.ends_with("?…") {
            r#" title="The query string is not shown: it may hold a key.""#
        } else {
            ""
        };
        let _ = writeln!(
            html,
            r#"<p class="target"><span class="target-label">Target</span> <code data-target{why}>{}</code></p>"#,
            escape(target)
        );
    }
    if state.is_some() || status.is_some() {
        // Without Connection State, the badge says so rather than guess.
        let connection = state.map_or_else(
            || connection_view(ConnectionState::Unknown),
            |s| s["connection"].clone(),
        );
        let state = connection["state"].as_str().unwrap_or("unknown");
        let text = connection["text"].as_str().unwrap_or("");
        let value = status.and_then(|s| s["value"].as_str()).unwrap_or("");
        let _ = writeln!(
            html,
            r#"<p class="connection" data-state="{}" role="status" aria-live="polite"><span class="badge">{}</span> <span class="connection-detail">{}</span></p>"#,
            escape(state),
            escape(text),
            // The badge says it already; the detail adds the reason.
            if value == text {
                String::new()
            } else {
                escape(value)
            },
        );
    }
    let _ = writeln!(
        html,
        r#"<p class="counters" data-counters>{}</p>"#,
        escape(&counters_text(&instance.counters))
    );
    html.push_str("</header>\n");
    configuration::render_wires(html, n, &instance.wires, &instance.counters);
    let _ = write!(
        html,
        r#"<table class="status">
<caption>Status variables of {name}</caption>
<thead><tr><th scope="col">Variable</th><th scope="col">Value</th><th scope="col">Changed</th></tr></thead>
<tbody>
"#
    );
    for status in &instance.status {
        let text = |field: &str| escape(status[field].as_str().unwrap_or(""));
        let _ = writeln!(
            html,
            r#"<tr data-key="{}"><th scope="row">{}</th><td class="value">{}</td><td class="changed"><time datetime="{ts}" title="{ts}">{}</time></td></tr>"#,
            text("key"),
            text("label"),
            text("value"),
            escape(time_of_day(status["timestamp"].as_str().unwrap_or(""))),
            ts = text("timestamp"),
        );
    }
    html.push_str("</tbody>\n</table>\n");
    if !instance.manifest.actions.is_empty() {
        let _ = writeln!(
            html,
            r#"<h3 class="actions-title" id="i{n}-actions" data-needs="operator">Actions</h3>
<div class="actions" role="group" aria-labelledby="i{n}-actions" data-needs="operator">"#
        );
        for (a, action) in instance.manifest.actions.iter().enumerate() {
            let id = format!("i{n}-a{}", a + 1);
            let _ = writeln!(
                html,
                r#"<form class="action" data-action="{}" aria-labelledby="{id}-run">"#,
                escape(&action.name)
            );
            if !action.description.is_empty() {
                let _ = writeln!(
                    html,
                    r#"<p class="description" id="{id}-d">{}</p>"#,
                    escape(&action.description)
                );
            }
            for (p, property) in action.properties.iter().enumerate() {
                render_field(html, &format!("{id}-p{}", p + 1), property);
            }
            let _ = writeln!(
                html,
                r#"<div class="run"><button type="submit" id="{id}-run"{}>{}</button><output class="result" for="{id}-run" aria-live="polite"></output></div>
</form>"#,
                if action.description.is_empty() {
                    String::new()
                } else {
                    format!(r#" aria-describedby="{id}-d""#)
                },
                escape(&action.name)
            );
        }
        html.push_str("</div>\n");
    }
    html.push_str("</article>\n");
}

/// One input for an action property, chosen by its editor, then its type.
fn render_field(html: &mut String, id: &str, property: &PropertySpec) {
    let name = escape(&property.name);
    let editor = property.editor.as_deref().unwrap_or("");
    let secret = property.secret || editor == "password";
    let kind = match (editor, property.kind.as_str()) {
        _ if secret => "string",
        ("toggle", _) | (_, "bool") => "bool",
        ("spinbox", _) | (_, "int") => "int",
        _ => "string",
    };
    let hint = if property.description.is_empty() {
        String::new()
    } else {
        format!(r#" aria-describedby="{id}-d""#)
    };
    let required = if property.required { " required" } else { "" };
    let common = format!(
        r#"id="{id}" name="{name}" data-property="{name}" data-type="{kind}"{hint}{required}"#
    );
    let default = property.default.as_ref();
    let default_text = match default {
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let label = format!(r#"<label for="{id}">{name}</label>"#);
    let control = if secret {
        // Never pre-filled, never remembered by the browser.
        format!(
            r#"<input type="password" {common} autocomplete="off" spellcheck="false" data-secret>"#
        )
    } else if kind == "bool" {
        let checked = matches!(default, Some(toml::Value::Boolean(true)));
        format!(
            r#"<input type="checkbox" {common}{}>"#,
            if checked { " checked" } else { "" }
        )
    } else if !property.options.is_empty() {
        let mut select = format!("<select {common}>");
        for option in &property.options {
            let _ = write!(
                select,
                "<option{}>{}</option>",
                if *option == default_text {
                    " selected"
                } else {
                    ""
                },
                escape(option)
            );
        }
        select.push_str("</select>");
        select
    } else if kind == "int" {
        let bound =
            |attr: &str, v: Option<i64>| v.map_or(String::new(), |v| format!(r#" {attr}="{v}""#));
        format!(
            r#"<input type="number" step="1" inputmode="numeric" {common}{}{} value="{}">"#,
            bound("min", property.min),
            bound("max", property.max),
            escape(&default_text)
        )
    } else if editor == "text" {
        format!(
            r#"<textarea rows="2" {common}>{}</textarea>"#,
            escape(&default_text)
        )
    } else {
        format!(
            r#"<input type="text" {common} value="{}">"#,
            escape(&default_text)
        )
    };
    let field_class = if kind == "bool" {
        "field toggle"
    } else {
        "field"
    };
    let _ = write!(html, r#"<div class="{field_class}">"#);
    if kind == "bool" {
        let _ = write!(html, "{control}{label}");
    } else {
        let _ = write!(html, "{label}{control}");
    }
    if !property.description.is_empty() {
        let _ = write!(
            html,
            r#"<p class="hint" id="{id}-d">{}</p>"#,
            escape(&property.description)
        );
    }
    html.push_str("</div>\n");
}

/// `06:34:21.123` of `2026-11-21T06:34:21.123+00:00` (the host's local
/// time, as the module stamped it); the whole text if it is not RFC 3339.
fn time_of_day(timestamp: &str) -> &str {
    timestamp
        .split_once('T')
        .map_or(timestamp, |(_, time)| time.get(..12).unwrap_or(time))
}

/// Text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ModuleManifest {
        ModuleManifest::parse(include_str!("../../wsio/module.toml")).unwrap()
    }

    fn page(status: Vec<Value>) -> String {
        let manifest = manifest();
        render_instances(&[InstanceView {
            name: "pie<socket>",
            manifest: &manifest,
            status,
            counters: json!({"triggers": {"Connected": 1, "Messages Received": 0}, "wire_runs": 2, "events_lost": 0}),
            target: None,
            wires: Vec::new(),
        }])
    }

    #[test]
    fn the_counters_show_the_triggers_that_fired_wire_runs_and_losses() {
        let html = page(Vec::new());
        assert!(
            html.contains(
                r#"<p class="counters" data-counters>Triggers fired: Connected 1 · Wire runs: 2 · Events lost: 0</p>"#
            ),
            "{html}"
        );
    }

    #[test]
    fn the_target_and_the_wires_are_in_the_instance_head_and_below_it() {
        let manifest = manifest();
        let html = render_instances(&[InstanceView {
            name: "piesocket",
            manifest: &manifest,
            status: Vec::new(),
            counters: Value::Null,
            target: Some("ws://127.0.0.1:8765/v3/1?…".into()),
            wires: vec![WireView {
                number: 1,
                text: "Connected → piesocket: Disconnect".into(),
            }],
        }]);
        let head = &html[html.find("<header class=\"instance-head\">").unwrap()..];
        let (head, rest) = head.split_once("</header>").unwrap();
        assert!(
            head.contains(
                r#"<code data-target title="The query string is not shown: it may hold a key.">ws://127.0.0.1:8765/v3/1?…</code>"#
            ),
            "{html}"
        );
        assert!(rest.contains(r#"<li data-wire="1">"#), "{html}");
    }

    #[test]
    fn connection_state_words_are_classified_and_prose_is_not_parsed() {
        let cases = [
            ("established", ConnectionState::Established),
            ("connecting", ConnectionState::Connecting),
            ("handshaking", ConnectionState::Connecting),
            ("reconnecting", ConnectionState::Reconnecting),
            ("closing", ConnectionState::Closing),
            ("disconnected", ConnectionState::Disconnected),
            ("failed", ConnectionState::Failed),
            ("waiting-for-network", ConnectionState::WaitingForNetwork),
            ("gave-up", ConnectionState::GaveUp),
            ("paused", ConnectionState::Unknown),
            ("", ConnectionState::Unknown),
            // Connection Status sentences are for people, not the badge.
            ("Established", ConnectionState::Unknown),
            (
                "Reconnecting in 2.3 s (attempt 3); closed by server: 1001",
                ConnectionState::Unknown,
            ),
        ];
        for (value, state) in cases {
            assert_eq!(ConnectionState::of(value), state, "{value:?}");
        }
        let badges = [
            ("established", "established", "Established"),
            ("connecting", "connecting", "Connecting"),
            ("handshaking", "connecting", "Connecting"),
            ("reconnecting", "reconnecting", "Reconnecting"),
            ("closing", "closing", "Closing"),
            ("disconnected", "disconnected", "Disconnected"),
            ("failed", "failed", "Connect failed"),
            ("gave-up", "gave-up", "Gave up"),
            ("waiting-for-network", "waiting", "Waiting for the network"),
            ("paused", "unknown", "Unknown"),
        ];
        for (word, class, text) in badges {
            let state = ConnectionState::of(word);
            assert_eq!((state.class(), state.text()), (class, text), "{word}");
        }
    }

    #[test]
    fn every_word_the_module_can_report_has_a_badge() {
        for word in wsio::testing::ConnectionState::WORDS {
            assert_ne!(
                ConnectionState::of(word),
                ConnectionState::Unknown,
                "{word}"
            );
        }
    }

    #[test]
    fn only_connection_state_carries_a_connection_state() {
        let manifest = manifest();
        let view = status_view(&manifest, "ConnectionState", "established", "t");
        assert_eq!(view["label"], "Connection State");
        assert_eq!(view["connection"]["state"], "established");
        let view = status_view(&manifest, "ConnectionStatus", "Established", "t");
        assert_eq!(view["label"], "Connection Status");
        assert!(view.get("connection").is_none());
        let view = status_view(&manifest, "LastSent", "Established", "t");
        assert_eq!(view["label"], "Last Sent");
        assert!(view.get("connection").is_none());
        // A key the manifest does not know is shown by its key.
        assert_eq!(status_view(&manifest, "Rtt", "", "")["label"], "Rtt");
    }

    #[test]
    fn every_action_and_property_of_the_manifest_gets_a_labelled_field() {
        let html = page(Vec::new());
        for action in &manifest().actions {
            assert!(
                html.contains(&format!(r#"data-action="{}""#, escape(&action.name))),
                "{}",
                action.name
            );
            for property in &action.properties {
                assert!(
                    html.contains(&format!(r#"data-property="{}""#, escape(&property.name))),
                    "{}",
                    property.name
                );
            }
        }
        assert!(
            html.contains(r#"<input type="password" id="i1-a1-p1" name="Bearer Token""#),
            "{html}"
        );
        assert!(html.contains(r#"<textarea rows="2" id="i1-a3-p1" name="Message""#));
        assert!(html.contains(r#"<label for="i1-a3-p1">Message</label>"#));
    }

    #[test]
    fn names_and_values_are_escaped() {
        let manifest = manifest();
        let html = page(vec![status_view(
            &manifest,
            "LastReceived",
            "<script>alert(1)</script>",
            "2026-11-21T06:34:21.123+00:00",
        )]);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains(r#"data-instance="pie&lt;socket&gt;""#));
        assert!(html.contains(">06:34:21.123</time>"));
    }

    #[test]
    fn the_connection_badge_has_text_as_well_as_a_state() {
        let manifest = manifest();
        let html = page(vec![
            status_view(
                &manifest,
                "ConnectionStatus",
                "Disconnected: closed by server: 1000 bye",
                "",
            ),
            status_view(&manifest, "ConnectionState", "disconnected", ""),
        ]);
        assert!(
            html.contains(
                r#"data-state="disconnected" role="status" aria-live="polite"><span class="badge">Disconnected</span> <span class="connection-detail">Disconnected: closed by server: 1000 bye</span>"#
            ),
            "{html}"
        );
        let html = page(vec![
            status_view(&manifest, "ConnectionStatus", "Established", ""),
            status_view(&manifest, "ConnectionState", "established", ""),
        ]);
        assert!(
            html.contains(
                r#"data-state="established" role="status" aria-live="polite"><span class="badge">Established</span> <span class="connection-detail"></span>"#
            ),
            "{html}"
        );
    }

    #[test]
    fn a_module_without_connection_state_gets_an_unknown_badge() {
        let manifest = manifest();
        let html = page(vec![status_view(
            &manifest,
            "ConnectionStatus",
            "Established",
            "",
        )]);
        assert!(
            html.contains(
                r#"data-state="unknown" role="status" aria-live="polite"><span class="badge">Unknown</span> <span class="connection-detail">Established</span>"#
            ),
            "{html}"
        );
        // Nor does a module with neither variable get a badge at all.
        assert!(!page(Vec::new()).contains(r#"class="connection""#));
    }

    #[test]
    fn long_values_are_cut_for_the_page() {
        let long = "x".repeat(10_000);
        let view = status_view(&manifest(), "LastReceived", &long, "");
        let shown = view["value"].as_str().unwrap();
        assert!(shown.ends_with("… (10000 bytes)"), "{shown}");
    }

    #[test]
    fn the_configure_view_has_a_tab_and_a_place_beside_the_status() {
        let html = page(Vec::new());
        assert!(
            html.contains(r##"<a href="#configure" id="tab-configure">"##),
            "{html}"
        );
        assert!(html.contains(r#"<main id="status-view" aria-labelledby="tab-status">"#));
        assert!(
            html.contains(
                r#"<main id="configure-view" aria-labelledby="tab-configure" data-needs="admin" hidden>"#
            )
        );
        assert!(html.contains(r#"<script src="/assets/configure.js" type="module"></script>"#));
    }
}
