//! Action properties with variable placeholders: `Action::parse` with
//! arbitrary properties and trigger variables for every action name, and
//! `fill_placeholders` on arbitrary templates, checked against a regex
//! reference. Never a panic; a template without variables (or without `<`)
//! comes back unchanged; a planted
//! bearer token never shows in an error or the parsed action's debug text.
//!
//! Input: `<action selector><properties JSON> \0 <template> \0 <var 1> \0 <var 2> \0 <var 3>`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use wsio::Action;
use wsio::testing::fill_placeholders;
use wsio_fuzz::{MARKER, assert_no_marker, parts};

fn reference_fill(template: &str, variables: &[String]) -> String {
    static PLACEHOLDER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let placeholder = PLACEHOLDER.get_or_init(|| regex::Regex::new(r"<([0-9]+)>").unwrap());
    placeholder
        .replace_all(template, |c: &regex::Captures| {
            match c[1].parse::<usize>() {
                Ok(n) if (1..=variables.len()).contains(&n) => variables[n - 1].clone(),
                _ => c[0].to_owned(),
            }
        })
        .into_owned()
}

const ACTIONS: [&str; 6] = [
    "Connect",
    "Disconnect",
    "Send Message",
    "Reset Reconnect",
    "Clear Queue",
    "Send",
];

fn check(name: &str, properties: &Value, variables: &[String]) {
    match Action::parse(name, properties, variables) {
        Ok(action) => assert_no_marker("an action's debug text", &format!("{action:?}")),
        Err(e) => assert_no_marker("an action error", &e.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let parts = parts(rest, 5);
    if parts.iter().any(|p| p.contains(MARKER)) {
        return;
    }
    let name = ACTIONS[selector as usize % ACTIONS.len()];
    let (json, template, variables) = (&parts[0], &parts[1], &parts[2..]);
    let used = (selector as usize / ACTIONS.len()) % 4;
    let variables = &variables[..used];

    // A message is not a secret: an action may show it. So the marker
    // checks skip properties whose strings spell the marker once JSON
    // escapes are decoded and placeholders filled ("Zq9xSECR<1>ETmarker"
    // with variable 1 = "" is a message that holds it, not a leak).
    if let Ok(properties) = serde_json::from_str::<Value>(json) {
        if !fill_placeholders(&properties.to_string(), variables).contains(MARKER) {
            check(name, &properties, variables);
        }
    }
    let filled = fill_placeholders(template, variables);
    // The template as each string property of the actions that take one.
    if !filled.contains(MARKER) {
        check("Send Message", &json!({"Message": template}), variables);
        for kind in ["Binary", "As Received"] {
            check(
                "Send Message",
                &json!({"Message": template, "Message Type": kind}),
                variables,
            );
        }
    }
    // A bearer token planted around the template (and its placeholders).
    let token = format!("{template}{MARKER}");
    check("Connect", &json!({"Bearer Token": token}), variables);

    let none: &[&str] = &[];
    assert_eq!(fill_placeholders(template, none), *template);
    if !template.contains('<') {
        assert_eq!(filled, *template);
    }
    // Against a reference: one left-to-right pass over `<digits>` (the
    // text a substitution produces is never scanned again, so "<<1>1>"
    // with variable 1 = "" gives "<1>").
    assert_eq!(
        filled,
        reference_fill(template, variables),
        "{template:?} with {variables:?}"
    );
});
