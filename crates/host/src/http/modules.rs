//! `GET /modules`: every module loaded (including ones no instance uses any
//! more), with its manifest as a page needs it to build forms; `POST
//! /modules` `{"path":"…"}` loads another, with the same checks as `wsio
//! run` (the ABI version, the manifest), so an instance can then name it
//! with `"module":"<path>"`.

use std::path::Path;

use serde_json::{Value, json};

use super::{Reply, json_object};
use crate::abi::ModuleSource;
use crate::manifest::{ModuleManifest, PropertySpec};
use crate::state::{HostState, LoadedModule};

pub(super) fn list(state: &HostState) -> Value {
    let modules: Vec<Value> = state.modules().iter().map(|m| describe(m)).collect();
    json!({ "modules": modules })
}

pub(super) fn load(state: &HostState, body: &[u8]) -> Reply {
    let body = match json_object(body, r#"{"path":"/opt/modules/libother.so"}"#) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Some(path) = body.get("path").and_then(Value::as_str) else {
        return Reply::error(
            400,
            r#"the body must name the module's shared library: {"path":"/opt/modules/libother.so"}"#,
        );
    };
    // Relative paths are the project's, as `module = "…"` in the file.
    let resolved = {
        let source = state.source.lock().unwrap_or_else(|e| e.into_inner());
        source.project_dir.join(Path::new(path))
    };
    match state.module(&ModuleSource::File(resolved)) {
        Ok(module) => Reply::json(200, json!({ "module": describe(&module) })),
        Err(e) => Reply::error(400, format!("cannot load the module: {e}")),
    }
}

fn describe(loaded: &LoadedModule) -> Value {
    let manifest: &ModuleManifest = loaded.module.manifest();
    json!({
        "id": loaded.id,
        "name": manifest.module.name,
        "version": manifest.module.version,
        "path": match &loaded.source {
            ModuleSource::File(path) => Value::from(path.display().to_string()),
            ModuleSource::BuiltIn => Value::Null,
        },
        "built_in": loaded.source == ModuleSource::BuiltIn,
        "manifest": {
            "properties": properties(&manifest.properties),
            "triggers": manifest.triggers.iter().map(|t| json!({
                "name": t.name,
                "description": t.description,
                "properties": properties(&t.properties),
                "variables": t.variables.iter().map(|v| json!({
                    "number": v.number,
                    "name": v.name,
                    "description": v.description,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "actions": manifest.actions.iter().map(|a| json!({
                "name": a.name,
                "description": a.description,
                "properties": properties(&a.properties),
            })).collect::<Vec<_>>(),
        },
    })
}

fn properties(specs: &[PropertySpec]) -> Vec<Value> {
    specs
        .iter()
        .map(|p| {
            let mut object = json!({
                "name": p.name,
                "type": p.kind,
                "editor": p.editor.clone().unwrap_or_else(|| default_editor(p).into()),
                "default": p.default.as_ref().map_or(Value::Null, toml_to_json),
                "description": p.description,
            });
            if let Some(min) = p.min {
                object["min"] = min.into();
            }
            if let Some(max) = p.max {
                object["max"] = max.into();
            }
            if !p.options.is_empty() {
                object["options"] = json!(p.options);
            }
            if let Some(group) = &p.group {
                object["group"] = group.as_str().into();
            }
            if p.secret {
                object["secret"] = true.into();
            }
            if p.required {
                object["required"] = true.into();
            }
            object
        })
        .collect()
}

/// The editor a property without one gets, by its type.
fn default_editor(spec: &PropertySpec) -> &'static str {
    match spec.kind.as_str() {
        "int" => "spinbox",
        "bool" => "toggle",
        "enum" => "dropdown",
        _ => "lineedit",
    }
}

fn toml_to_json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
