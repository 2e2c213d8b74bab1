//! `PUT /project`, `POST /project/check`, `POST /project/reload`, `POST
//! /project/save`: the HTTP side of `crate::project_file` (the rules are
//! there and in `crate::apply`).

use std::path::Path;

use serde_json::{Value, json};

use super::{Reply, json_object};
use crate::project_file::{self, EditError, Outcome};
use crate::state::HostState;

const EXAMPLE: &str = r#"{"instances":[{"name":"ws","properties":{"Hostname":"127.0.0.1"}}],"wires":[],"startup":[]}"#;

pub(super) fn put(state: &HostState, body: &[u8]) -> Reply {
    match project(body) {
        Ok(body) => outcome(project_file::put(state, &body)),
        Err(reply) => reply,
    }
}

pub(super) fn check(state: &HostState, body: &[u8]) -> Reply {
    let body = match project(body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    match project_file::check(state, &body) {
        Ok(warnings) => Reply::json(200, json!({ "errors": [], "warnings": warnings })),
        Err(e) => error(e),
    }
}

pub(super) fn reload(state: &HostState) -> Reply {
    outcome(project_file::reload(state))
}

pub(super) fn save(state: &HostState, body: &[u8]) -> Reply {
    let example = r#"{"path":"project.toml"}"#;
    let body = match json_object(body, example) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(path) = body
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    else {
        return Reply::error(400, format!("the body must name the file: {example}"));
    };
    let overwrite = body
        .get("overwrite")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match project_file::save(state, Path::new(path), overwrite) {
        Ok(file) => Reply::json(200, json!({ "saved": file.display().to_string() })),
        Err(e) => error(e),
    }
}

fn project(body: &[u8]) -> Result<Value, Reply> {
    json_object(body, EXAMPLE).map(Value::Object)
}

fn outcome(result: Result<Outcome, EditError>) -> Reply {
    match result {
        Ok(outcome) => Reply::json(
            200,
            json!({
                "applied": outcome.applied.to_json(),
                "saved": outcome.saved.map(|f| f.display().to_string()),
                "warnings": outcome.warnings,
            }),
        ),
        Err(e) => error(e),
    }
}

fn error(error: EditError) -> Reply {
    match error {
        EditError::Invalid(errors) => Reply::json(400, json!({ "errors": errors, "warnings": [] })),
        EditError::Conflict(message) => Reply::json(
            409,
            json!({ "error": message, "changed_on_disk": message.contains("changed on disk") }),
        ),
        EditError::Refused(message) => Reply::error(400, message),
        EditError::Io(message) => Reply::error(500, message),
    }
}
