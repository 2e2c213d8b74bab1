//! Wires seen from the `wsio` host's HTTP API, with the real binary and the
//! real module: a trigger tested on a sample message before it is wired
//! (the module's own prepare and test, through the C ABI), and a runaway
//! wire flagged while it runs.

mod support;

use serde_json::{Value, json};
use support::HostProcess;
use support::host_http::http;

/// `wsio run` on `project`, with the HTTP API on a free port.
fn run_project(test: &str, project: &str) -> HostProcess {
    let dir = std::env::temp_dir().join(format!("wsio-host-wires-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("project.toml");
    std::fs::write(&path, project).unwrap();
    let mut host = HostProcess::spawn(
        &["run", path.to_str().unwrap(), "--http", "127.0.0.1:0"],
        "info",
    );
    host.dir = Some(dir);
    host
}

fn post(host: &HostProcess, path: &str, body: &str) -> (u16, Value) {
    let response = http(&host.addr, "POST", path, body, &[]);
    (response.status, response.json())
}

/// An instance that never connects: testing a trigger needs none.
const IDLE: &str = "[[instance]]\nname = \"a\"\n[instance.properties]\nHostname = \"127.0.0.1\"\n";

const TEST: &str = "/io_modules/a/triggers/Messages%20Received/test";

#[test]
fn a_trigger_is_tested_on_a_sample_by_the_module_with_the_variables_a_wire_would_get() {
    let host = run_project("trigger-test", IDLE);

    let contains = |message: &str| {
        post(
            &host,
            TEST,
            &json!({"properties": {"Match String": "temp"}, "message": message}).to_string(),
        )
    };
    assert_eq!(
        contains("temp 21"),
        (
            200,
            json!({"matched": true, "variables": ["temp 21", "text"]})
        )
    );
    assert_eq!(
        contains("hello"),
        (200, json!({"matched": false, "variables": []}))
    );

    let regex = json!({
        "properties": {"Match Mode": "Regex", "Match String": r"room (\w+) is (\d+)"},
        "message": "room kitchen is 21",
        "binary": false,
    });
    let (status, body) = post(&host, TEST, &regex.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], true, "{body}");
    assert_eq!(body["variables"][0], "room kitchen is 21", "{body}");
    assert_eq!(body["variables"][1], "kitchen", "the first group: {body}");
    assert_eq!(body["variables"][2], "21", "{body}");

    let bad = json!({
        "properties": {"Match Mode": "Regex", "Match String": r"temp (\d+"},
        "message": "temp 21",
    });
    let (status, body) = post(&host, TEST, &bad.to_string());
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("Match String is not a valid regular expression"),
        "the module's message: {error}"
    );

    // A binary message, as the module fires it: its bytes in hex.
    let binary = json!({"properties": {"Match String": "0a"}, "message": "0aff", "binary": true});
    assert_eq!(
        post(&host, TEST, &binary.to_string()),
        (
            200,
            json!({"matched": true, "variables": ["0aff", "binary"]})
        )
    );
}

#[test]
fn testing_an_unknown_instance_or_trigger_or_a_malformed_body_says_what_exists() {
    let host = run_project("trigger-test-404", IDLE);
    let body = r#"{"message":"x"}"#;

    let (status, reply) = post(&host, "/io_modules/b/triggers/Connected/test", body);
    assert_eq!(status, 404, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains(r#"no instance named "b""#), "{error}");
    assert!(error.contains(r#""a""#), "lists the instances: {error}");

    let (status, reply) = post(&host, "/io_modules/a/triggers/Mesages/test", body);
    assert_eq!(status, 404, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains(r#"has no trigger "Mesages""#), "{error}");
    assert!(
        error.contains(r#""Messages Received""#),
        "lists the triggers: {error}"
    );

    for (body, says) in [
        (r#"{"properties":{}}"#, "\"message\" is missing"),
        (
            r#"{"message":"x","binary":"yes"}"#,
            "\"binary\" must be true or false",
        ),
        (r#"{"message":"x","text":"y"}"#, "unknown key \"text\""),
    ] {
        let (status, reply) = post(&host, TEST, body);
        assert_eq!(status, 400, "{body}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
    }
}
