//! Trigger properties in every match mode: `PreparedTrigger::prepare` with
//! arbitrary JSON for every trigger name must compile or refuse, never
//! panic; what compiles is tested on arbitrary data. For the plain modes,
//! the result is checked against a reference: case-sensitive matching is
//! plain byte comparison, and (for ASCII needle and data) case-insensitive
//! matching is ASCII case folding; a case-sensitive match always implies
//! the case-insensitive one.
//!
//! Input: `<properties JSON> \0 <data> \0 <match string> \0 <mode selector>`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use wsio::PreparedTrigger;

const TRIGGERS: [&str; 6] = [
    "Connected",
    "WebSocket Established",
    "Disconnected",
    "Messages Received",
    "Gave Up",
    "No Such Trigger",
];
const MODES: [&str; 6] = ["Contains", "Exact", "Starts With", "Regex", "JSON", "Bogus"];

fn prepare(trigger: &str, properties: &Value) -> Option<PreparedTrigger> {
    PreparedTrigger::prepare(trigger, properties).ok()
}

fn check_variables(prepared: &PreparedTrigger, trigger: &str, data: &[u8]) {
    if !prepared.test(data) {
        return;
    }
    for binary in [false, true] {
        let vars = prepared.variables(data, binary);
        if trigger == "Messages Received" {
            assert_eq!(
                vars[0],
                String::from_utf8_lossy(data),
                "variable 1 is the message"
            );
            let last = vars.last().unwrap();
            assert_eq!(last, if binary { "binary" } else { "text" });
        }
    }
}

fn reference(mode: &str, needle: &str, data: &[u8], case_sensitive: bool) -> Option<bool> {
    let (needle, data): (Vec<u8>, Vec<u8>) = if case_sensitive {
        (needle.as_bytes().to_vec(), data.to_vec())
    } else if needle.is_ascii() && data.is_ascii() {
        (
            needle.to_ascii_lowercase().into_bytes(),
            data.to_ascii_lowercase(),
        )
    } else {
        return None;
    };
    Some(match mode {
        "Contains" => needle.is_empty() || data.windows(needle.len()).any(|w| w == needle),
        "Exact" => data == needle,
        "Starts With" => data.starts_with(&needle),
        _ => return None,
    })
}

fuzz_target!(|data: &[u8]| {
    let parts = wsio_fuzz::parts(data, 4);
    let (json, message, needle, selector) = (&parts[0], &parts[1], &parts[2], &parts[3]);
    let message = message.as_bytes();

    // Arbitrary properties for every trigger name.
    if let Ok(properties) = serde_json::from_str::<Value>(json) {
        for trigger in TRIGGERS {
            if let Some(prepared) = prepare(trigger, &properties) {
                assert_eq!(prepared.trigger().name(), trigger);
                check_variables(&prepared, trigger, message);
            }
        }
    }

    // A well-formed property set in the selected mode, both case settings.
    let mode = MODES[selector.bytes().next().unwrap_or(0) as usize % MODES.len()];
    let mut results = Vec::new();
    for case_sensitive in [true, false] {
        let properties = json!({
            "Match String": needle,
            "Match Mode": mode,
            "Case Sensitive": case_sensitive,
        });
        let Some(prepared) = prepare("Messages Received", &properties) else {
            results.push(None);
            continue;
        };
        let matched = prepared.test(message);
        check_variables(&prepared, "Messages Received", message);
        if let Some(expected) = reference(mode, needle, message, case_sensitive) {
            assert_eq!(
                matched, expected,
                "{mode} {needle:?} (case sensitive: {case_sensitive}) on {message:?}"
            );
        }
        results.push(Some(matched));
    }
    if let [Some(true), Some(insensitive)] = results[..]
        && matches!(mode, "Contains" | "Exact" | "Starts With" | "Bogus")
    {
        assert!(
            insensitive,
            "{mode} {needle:?} matched case-sensitively but not insensitively on {message:?}"
        );
    }
});
