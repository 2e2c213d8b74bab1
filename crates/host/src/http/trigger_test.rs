//! `POST /io_modules/<instance>/triggers/<trigger>/test` (and
//! `/modules/<id>/…/test`, for an instance not applied yet): whether a
//! wire's trigger, with the given properties, matches a sample message, the
//! variables it then gives, what each variable is, and the wire's actions
//! after substitution, as the wire would run them.
//! `POST /modules/<id>/triggers/<trigger>/variables`: what each variable of
//! such a wire is, or the module's refusal of its properties.
//!
//! The module answers: its own `iom_trigger_prepare` compiles the
//! properties (so a bad Match String is refused with its message) and
//! `iom_trigger_test_ex` tests the sample, with `IOM_DATA_BINARY` when the
//! caller says the message was binary; `iom_trigger_variable_names` names
//! the variables and `iom_action_preview` fills the actions' placeholders.
//! Nothing of matching or substitution is done here.
//!
//! A binary message is fired to triggers as its bytes in lowercase hex with
//! no separators (`"0aff"`), or as its text when the instance's Binary As
//! Text is on, so that is what the caller sends as `message` with
//! `"binary": true`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use iom::IOM_DATA_BINARY;

use super::{Reply, find_instance, json_object};
use crate::abi::{Module, PreparedTrigger};
use crate::manifest::{ModuleManifest, TriggerSpec};
use crate::state::{HostState, LoadedModule};

const EXAMPLE: &str = r#"{"properties":{"Match String":"temp"},"message":"temp 21","binary":false,"actions":[{"action":"Send Message","properties":{"Message":"got <1>"}}]}"#;

const VARIABLES_EXAMPLE: &str =
    r#"{"properties":{"Match Mode":"Regex","Match String":"room (?P<room>\\w+)"}}"#;

/// `POST /io_modules/<instance>/triggers/<trigger>/test`.
pub(super) fn test_trigger(state: &HostState, instance: &str, trigger: &str, body: &[u8]) -> Reply {
    let running = match find_instance(state, instance) {
        Ok(running) => running,
        Err(reply) => return reply,
    };
    test_on(
        &running.module.module,
        &format!("instance {instance:?}"),
        trigger,
        body,
    )
}

/// `POST /modules/<id>/triggers/<trigger>/test`: as the instance's, for a
/// module (an instance not applied yet).
pub(super) fn test_module_trigger(
    state: &HostState,
    id: &str,
    trigger: &str,
    body: &[u8],
) -> Reply {
    match find_module(state, id) {
        Ok(loaded) => test_on(&loaded.module, &format!("module {id}"), trigger, body),
        Err(reply) => reply,
    }
}

/// `POST /modules/<id>/triggers/<trigger>/variables`: what each variable of
/// a wire on that trigger is, with those trigger properties; the module's
/// refusal (a bad regex) as a 400, which the page shows as the user types.
pub(super) fn module_trigger_variables(
    state: &HostState,
    id: &str,
    trigger: &str,
    body: &[u8],
) -> Reply {
    let loaded = match find_module(state, id) {
        Ok(loaded) => loaded,
        Err(reply) => return reply,
    };
    let module = &loaded.module;
    let spec = match trigger_spec(module.manifest(), &format!("module {id}"), trigger) {
        Ok(spec) => spec,
        Err(reply) => return reply,
    };
    let properties = match json_object(body, VARIABLES_EXAMPLE).and_then(|body| {
        if let Some(key) = body.keys().find(|k| k.as_str() != "properties") {
            return Err(Reply::error(
                400,
                format!(
                    "unknown key {key:?}: the body takes \"properties\"; send a body such as \
                     {VARIABLES_EXAMPLE}"
                ),
            ));
        }
        properties_of(&body, VARIABLES_EXAMPLE)
    }) {
        Ok(properties) => properties,
        Err(reply) => return reply,
    };
    let test = match prepare(module, trigger, &properties) {
        Ok(test) => test,
        Err(reply) => return reply,
    };
    let variables: Vec<Value> = variable_names(&test, spec)
        .into_iter()
        .enumerate()
        .map(|(i, name)| json!({ "number": i + 1, "name": name }))
        .collect();
    Reply::json(200, json!({ "variables": variables }))
}

fn find_module(state: &HostState, id: &str) -> Result<Arc<LoadedModule>, Reply> {
    let modules = state.modules.lock().unwrap_or_else(|e| e.into_inner());
    modules
        .iter()
        .find(|m| m.id.to_string() == id)
        .cloned()
        .ok_or_else(|| {
            let ids: Vec<String> = modules.iter().map(|m| m.id.to_string()).collect();
            Reply::error(
                404,
                format!(
                    "no module with id {id:?}; loaded modules: {} (GET /modules lists them)",
                    ids.join(", ")
                ),
            )
        })
}

fn trigger_spec<'m>(
    manifest: &'m ModuleManifest,
    owner: &str,
    trigger: &str,
) -> Result<&'m TriggerSpec, Reply> {
    manifest.trigger(trigger).ok_or_else(|| {
        Reply::error(
            404,
            format!(
                "{owner} ({}) has no trigger {trigger:?}; its triggers: {}",
                manifest.module.name,
                manifest.trigger_names()
            ),
        )
    })
}

fn prepare(module: &Module, trigger: &str, properties: &str) -> Result<PreparedTrigger, Reply> {
    module
        .prepare_trigger(trigger, properties)
        .map_err(|message| {
            Reply::error(
                400,
                format!("the module refused the trigger properties: {message}"),
            )
        })
}

/// The module's names for the variables, or the manifest's where the
/// module does not say (an older module).
fn variable_names(test: &PreparedTrigger, spec: &TriggerSpec) -> Vec<String> {
    if let Some(names) = test.variable_names() {
        return names;
    }
    let count = test
        .variable_count()
        .and_then(|c| usize::try_from(c).ok())
        .unwrap_or(spec.variables.len());
    (1..=count)
        .map(|n| {
            spec.variable(n, count)
                .map_or_else(|| format!("variable {n}"), |v| v.name.clone())
        })
        .collect()
}

fn test_on(module: &Module, owner: &str, trigger: &str, body: &[u8]) -> Reply {
    let manifest = module.manifest();
    let spec = match trigger_spec(manifest, owner, trigger) {
        Ok(spec) => spec,
        Err(reply) => return reply,
    };
    let sample = match json_object(body, EXAMPLE).and_then(|body| Sample::of(&body, manifest)) {
        Ok(sample) => sample,
        Err(reply) => return reply,
    };
    let test = match prepare(module, trigger, &sample.properties) {
        Ok(test) => test,
        Err(reply) => return reply,
    };
    let names = variable_names(&test, spec);
    let flags = if sample.binary { IOM_DATA_BINARY } else { 0 };
    let variables = match test.test(sample.message.as_bytes(), flags) {
        Ok(Some(variables)) => variables,
        Ok(None) => {
            return Reply::json(
                200,
                json!({ "matched": false, "variables": [], "names": names, "actions": [] }),
            );
        }
        Err(message) => return Reply::error(500, format!("testing the trigger failed: {message}")),
    };
    let actions: Vec<Value> = sample
        .actions
        .iter()
        .map(|(action, properties)| preview(module, manifest, action, properties, &variables))
        .collect();
    Reply::json(
        200,
        json!({
            "matched": true,
            "variables": variables
                .iter()
                .map(|v| String::from_utf8_lossy(v))
                .collect::<Vec<_>>(),
            "names": names,
            "actions": actions,
        }),
    )
}

/// One wired action after substitution, as the module would run it:
/// `{"action","properties"}`, or `{"action","error"}` with the module's
/// message. Secrets are masked here too, whatever the module answers.
fn preview(
    module: &Module,
    manifest: &ModuleManifest,
    action: &str,
    properties: &Map<String, Value>,
    variables: &[Vec<u8>],
) -> Value {
    let json = Value::Object(properties.clone()).to_string();
    match module.preview_action(action, &json, variables) {
        None => json!({
            "action": action,
            "error": "this module cannot show an action's properties after substitution (it has no iom_action_preview)",
        }),
        Some(Err(message)) => json!({ "action": action, "error": message }),
        Some(Ok(mut filled)) => {
            let spec = manifest.action(action);
            for (name, value) in filled.iter_mut() {
                let secret = spec
                    .and_then(|s| s.property(name))
                    .is_some_and(|p| p.secret || p.editor.as_deref() == Some("password"));
                if secret && value.as_str().is_some_and(|v| !v.is_empty()) {
                    *value = json!("(secret)");
                }
            }
            json!({ "action": action, "properties": filled })
        }
    }
}

fn properties_of(body: &Map<String, Value>, example: &str) -> Result<String, Reply> {
    match body.get("properties") {
        None => Ok("{}".to_string()),
        Some(Value::Object(p)) => Ok(Value::Object(p.clone()).to_string()),
        Some(_) => Err(Reply::error(
            400,
            format!(
                "\"properties\" must be an object of trigger properties; send a body such as {example}"
            ),
        )),
    }
}

/// The request body, checked.
struct Sample {
    /// The trigger properties as the JSON object the ABI takes.
    properties: String,
    message: String,
    binary: bool,
    /// The wire's actions to show after substitution: name, properties.
    actions: Vec<(String, Map<String, Value>)>,
}

impl Sample {
    fn of(body: &Map<String, Value>, manifest: &ModuleManifest) -> Result<Sample, Reply> {
        let bad = |what: &str| Reply::error(400, format!("{what}; send a body such as {EXAMPLE}"));
        if let Some(key) = body
            .keys()
            .find(|k| !matches!(k.as_str(), "properties" | "message" | "binary" | "actions"))
        {
            return Err(bad(&format!(
                "unknown key {key:?}: the body takes \"properties\", \"message\", \"binary\" and \"actions\""
            )));
        }
        let properties = properties_of(body, EXAMPLE)?;
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
        let actions = match body.get("actions") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, entry)| action_of(i, entry, manifest).map_err(|e| bad(&e)))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(bad(
                    "\"actions\" must be a list of {\"action\",\"properties\"}",
                ));
            }
        };
        Ok(Sample {
            properties,
            message,
            binary,
            actions,
        })
    }
}

/// One entry of `actions`: `{"action":"Send Message","properties":{…}}`.
fn action_of(
    i: usize,
    entry: &Value,
    manifest: &ModuleManifest,
) -> Result<(String, Map<String, Value>), String> {
    let at = format!("actions[{i}]");
    let Value::Object(entry) = entry else {
        return Err(format!(
            "{at} must be an object {{\"action\",\"properties\"}}"
        ));
    };
    let Some(Value::String(action)) = entry.get("action") else {
        return Err(format!("{at} needs \"action\", the action's name"));
    };
    if manifest.action(action).is_none() {
        return Err(format!(
            "{at}: {} has no action {action:?}; its actions: {}",
            manifest.module.name,
            manifest.action_names()
        ));
    }
    let properties = match entry.get("properties") {
        None => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(format!("{at}: \"properties\" must be an object")),
    };
    Ok((action.clone(), properties))
}
