//! Instance properties: `Properties::from_json_str` on arbitrary text must
//! return Ok or an error, never panic; a planted Password or proxy password
//! never shows in an error, a note, the display URL or the debug text.
//!
//! Input: `<properties JSON> \0 <proxy user> \0 <password prefix> \0 <proxy host, port, path>`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use wsio::Properties;
use wsio::testing::parse_proxy;
use wsio_fuzz::{MARKER, assert_no_marker, neutralize_paths, parts, value_has_marker};

fn check(properties: &Value) {
    match Properties::from_json(properties) {
        Ok(p) => {
            assert_no_marker("the debug text", &format!("{p:?}"));
            assert_no_marker("the display URL", &p.display_url());
            for note in &p.notes {
                assert_no_marker("a note", note);
            }
            let _ = p.url();
        }
        Err(e) => assert_no_marker("an error", &e.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let [json, user, prefix, rest] = <[String; 4]>::try_from(parts(data, 4)).unwrap();
    if json.contains(MARKER)
        || user.contains(MARKER)
        || prefix.contains(MARKER)
        || rest.contains(MARKER)
    {
        return;
    }
    // The raw text, as a host passes it.
    if let Ok(mut value) = serde_json::from_str::<Value>(&json) {
        // JSON escapes can spell the marker where the raw text does not:
        // then the secret checks skip it (the proxy checks below still run).
        if !value_has_marker(&value) {
            neutralize_paths(&mut value);
            check(&value);
            // The same with a password planted (Basic auth needs a Username).
            if let Some(object) = value.as_object_mut() {
                object.insert("Password".into(), json!(format!("{prefix}{MARKER}")));
                check(&value);
                if let Some(object) = value.as_object_mut() {
                    object.entry("Username").or_insert(json!("u"));
                }
                check(&value);
            }
        }
    } else {
        // Not JSON: still an error, never a panic.
        assert!(Properties::from_json_str(&json).is_err());
    }
    // A proxy URL with a planted password, parsed alone and as a property.
    // Built so the password is unambiguous: a scheme, a user of letters and
    // digits, then the password up to the last '@'. (Without a scheme,
    // text such as "http:" or a "://" later on reads as one: that form is
    // covered by tests/fuzz_regressions.rs.)
    let scheme = ["http://", "https://"][user.len() % 2];
    let user: String = user.chars().filter(char::is_ascii_alphanumeric).collect();
    if user.contains(MARKER) {
        return;
    }
    let proxy = format!("{scheme}{user}:{prefix}{MARKER}@{rest}");
    match parse_proxy(&proxy, "Proxy") {
        Ok(config) => assert_no_marker("the proxy debug text", &format!("{config:?}")),
        Err(e) => assert_no_marker("a proxy error", &e.to_string()),
    }
    check(&json!({"Hostname": "127.0.0.1", "Proxy": proxy}));
});
