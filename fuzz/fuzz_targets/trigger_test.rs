//! Trigger test input: fixed prepared triggers (every match mode, both case
//! settings, a Regex with named and optional groups, JSON pointers with and
//! without an expected value) tested against arbitrary data, as the host
//! does for every fired event. `test` and `variables` never panic, variable
//! 1 is the message, the Message Type is last, and a Regex gives one
//! variable per group.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use wsio::PreparedTrigger;

fn prepared() -> &'static [(PreparedTrigger, usize)] {
    static PREPARED: OnceLock<Vec<(PreparedTrigger, usize)>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        // (properties, the number of variables between the message and
        // the Message Type)
        let specs = [
            (json!({}), 0),
            (json!({"Match String": "ping"}), 0),
            (json!({"Match String": "PiNg", "Case Sensitive": false}), 0),
            (json!({"Match String": "ON", "Match Mode": "Exact"}), 0),
            (json!({"Match String": "oN", "Match Mode": "Exact", "Case Sensitive": false}), 0),
            (json!({"Match String": "alarm:", "Match Mode": "Starts With"}), 0),
            (json!({"Match String": "ALARM:", "Match Mode": "Starts With", "Case Sensitive": false}), 0),
            (json!({"Match String": r"^temp (?P<room>\w+)=(\d+)$", "Match Mode": "Regex"}), 2),
            (json!({"Match String": r"(a)|(b)(c)?", "Match Mode": "Regex", "Case Sensitive": false}), 3),
            (json!({"Match String": r"(?i)ü+(\p{Greek}*)", "Match Mode": "Regex"}), 1),
            (json!({"Match String": r#"/type == "alarm""#, "Match Mode": "JSON"}), 1),
            (json!({"Match String": r#"/type == "ALARM""#, "Match Mode": "JSON", "Case Sensitive": false}), 1),
            (json!({"Match String": "/temperature", "Match Mode": "JSON"}), 1),
            (json!({"Match String": "/data/0/value == 21.5", "Match Mode": "JSON"}), 1),
            (json!({"Match String": "/a~1b/~0 == null", "Match Mode": "JSON"}), 1),
            (json!({"Match String": "", "Match Mode": "JSON"}), 1),
        ];
        specs
            .into_iter()
            .map(|(properties, extra)| {
                let prepared = PreparedTrigger::prepare("Messages Received", &properties)
                    .unwrap_or_else(|e| panic!("{properties}: {}", e.message));
                (prepared, extra)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    for (prepared, extra) in prepared() {
        if !prepared.test(data) {
            continue;
        }
        for binary in [false, true] {
            let vars = prepared.variables(data, binary);
            assert_eq!(vars.len(), 2 + extra, "{prepared:?}");
            assert_eq!(vars[0], String::from_utf8_lossy(data));
            assert_eq!(vars[vars.len() - 1], if binary { "binary" } else { "text" });
        }
    }
    // The other triggers: the reason (Disconnected, Gave Up) or nothing.
    for (trigger, count) in [("Disconnected", 1), ("Gave Up", 1), ("Connected", 0)] {
        let prepared = PreparedTrigger::prepare(trigger, &serde_json::Value::Null).unwrap();
        assert!(prepared.test(data));
        assert_eq!(prepared.variables(data, false).len(), count);
    }
});
