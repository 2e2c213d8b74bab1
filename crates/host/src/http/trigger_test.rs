//! `POST /io_modules/<instance>/triggers/<trigger>/test`: whether a wire's
//! trigger, with the given properties, matches a sample message, and the
//! variables it then gives, as the wire would get them.
//!
//! The module answers: its own `iom_trigger_prepare` compiles the
//! properties (so a bad Match String is refused with its message) and
//! `iom_trigger_test_ex` tests the sample, with `IOM_DATA_BINARY` when the
//! caller says the message was binary. Nothing of matching is done here.
//!
//! A binary message is fired to triggers as its bytes in lowercase hex with
//! no separators (`"0aff"`), or as its text when the instance's Binary As
//! Text is on, so that is what the caller sends as `message` with
//! `"binary": true`.

use serde_json::{Value, json};

use iom::IOM_DATA_BINARY;

use super::{Reply, find_instance, json_object};
use crate::state::HostState;

const EXAMPLE: &str =
    r#"{"properties":{"Match String":"temp"},"message":"temp 21","binary":false}"#;

pub(super) fn test_trigger(state: &HostState, instance: &str, trigger: &str, body: &[u8]) -> Reply {
    let running = match find_instance(state, instance) {
        Ok(running) => running,
        Err(reply) => return reply,
    };
    let manifest = running.manifest();
    if manifest.trigger(trigger).is_none() {
        return Reply::error(
            404,
            format!(
                "instance {instance:?} ({}) has no trigger {trigger:?}; its triggers: {}",
                manifest.module.name,
                manifest.trigger_names()
            ),
        );
    }
    let sample = match json_object(body, EXAMPLE).and_then(|body| Sample::of(&body)) {
        Ok(sample) => sample,
        Err(reply) => return reply,
    };
    let module = &running.module.module;
    let test = match module.prepare_trigger(trigger, &sample.properties) {
        Ok(test) => test,
        Err(message) => {
            return Reply::error(
                400,
                format!("the module refused the trigger properties: {message}"),
            );
        }
    };
    let flags = if sample.binary { IOM_DATA_BINARY } else { 0 };
    match test.test(sample.message.as_bytes(), flags) {
        Ok(Some(variables)) => Reply::json(
            200,
            json!({
                "matched": true,
                "variables": variables
                    .iter()
                    .map(|v| String::from_utf8_lossy(v))
                    .collect::<Vec<_>>(),
            }),
        ),
        Ok(None) => Reply::json(200, json!({ "matched": false, "variables": [] })),
        Err(message) => Reply::error(500, format!("testing the trigger failed: {message}")),
    }
}

/// The request body, checked.
struct Sample {
    /// The trigger properties as the JSON object the ABI takes.
    properties: String,
    message: String,
    binary: bool,
}

impl Sample {
    fn of(body: &serde_json::Map<String, Value>) -> Result<Sample, Reply> {
        let bad = |what: &str| Reply::error(400, format!("{what}; send a body such as {EXAMPLE}"));
        if let Some(key) = body
            .keys()
            .find(|k| !matches!(k.as_str(), "properties" | "message" | "binary"))
        {
            return Err(bad(&format!(
                "unknown key {key:?}: the body takes \"properties\", \"message\" and \"binary\""
            )));
        }
        let properties = match body.get("properties") {
            None => Value::Object(Default::default()),
            Some(Value::Object(p)) => Value::Object(p.clone()),
            Some(_) => {
                return Err(bad(
                    "\"properties\" must be an object of trigger properties",
                ));
            }
        };
        let message = match body.get("message") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => return Err(bad("\"message\" must be a string")),
            None => return Err(bad("\"message\" is missing: the sample to test")),
        };
        let binary = match body.get("binary") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("\"binary\" must be true or false")),
        };
        Ok(Sample {
            properties: properties.to_string(),
            message,
            binary,
        })
    }
}
