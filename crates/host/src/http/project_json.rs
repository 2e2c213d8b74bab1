//! `GET /project`: the running project as JSON, in the shape of the project
//! file (`{"instances":[…],"wires":[…],"startup":[…]}`), so a page or a
//! script can read what runs and edit it.
//!
//! Secret values never leave the host: a property the module's manifest
//! marks `secret` or edits as a `password`, and any string holding a URL
//! with a password in it (`http://user:password@proxy:3128`), comes back as
//! `{"secret":"set"}`. A wire's `then` is always a list, even when the file
//! gave one table.

use serde_json::{Map, Value, json};
use toml::Spanned;

use crate::manifest::{ModuleManifest, PropertySpec};
use crate::project::{ActionDecl, properties_json};
use crate::state::HostState;

/// The project as JSON, with `"file"`: the project file's absolute path,
/// or null (the built-in demo); an empty one when the host runs none (a
/// state made in tests).
pub(super) fn project(state: &HostState) -> Value {
    let file = state
        .source
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .file
        .as_ref()
        .map(|f| f.display().to_string());
    let config = state.config();
    let Some(project) = &config.project else {
        return json!({ "instances": [], "wires": [], "startup": [], "file": file });
    };
    let manifest = |instance: &str| config.instance(instance).map(|i| i.manifest());
    let instances: Vec<Value> = project
        .instances
        .iter()
        .map(|decl| {
            let name = decl.name.get_ref();
            let specs = manifest(name).map(|m| m.properties.as_slice());
            let mut object = Map::new();
            object.insert("name".into(), json!(name));
            if let Some(module) = &decl.module {
                object.insert("module".into(), json!(module.get_ref()));
            }
            let properties = masked(&decl.properties, specs).unwrap_or_default();
            object.insert("properties".into(), Value::Object(properties));
            Value::Object(object)
        })
        .collect();
    let wires: Vec<Value> = project
        .wires
        .iter()
        .map(|wire| {
            let when = &wire.when;
            let trigger = manifest(when.instance.get_ref())
                .and_then(|m| m.trigger(when.trigger.get_ref()))
                .map(|t| t.properties.as_slice());
            let mut object = Map::new();
            object.insert("instance".into(), json!(when.instance.get_ref()));
            object.insert("trigger".into(), json!(when.trigger.get_ref()));
            if let Some(properties) = masked(&when.properties, trigger) {
                object.insert("properties".into(), Value::Object(properties));
            }
            let then: Vec<Value> = wire.then.0.iter().map(|a| action(a, &manifest)).collect();
            json!({ "when": object, "then": then })
        })
        .collect();
    let startup: Vec<Value> = project
        .startup
        .iter()
        .map(|a| action(a, &manifest))
        .collect();
    json!({ "instances": instances, "wires": wires, "startup": startup, "file": file })
}

fn action<'m>(decl: &ActionDecl, manifest: &impl Fn(&str) -> Option<&'m ModuleManifest>) -> Value {
    let specs = manifest(decl.instance.get_ref())
        .and_then(|m| m.action(decl.action.get_ref()))
        .map(|a| a.properties.as_slice());
    let mut object = Map::new();
    object.insert("instance".into(), json!(decl.instance.get_ref()));
    object.insert("action".into(), json!(decl.action.get_ref()));
    if let Some(properties) = masked(&decl.properties, specs) {
        object.insert("properties".into(), Value::Object(properties));
    }
    Value::Object(object)
}

/// The properties as JSON with every secret replaced; None when the file
/// gave none. `specs` are the manifest's, None when it is not known.
fn masked(
    properties: &Option<Spanned<toml::Table>>,
    specs: Option<&[PropertySpec]>,
) -> Option<Map<String, Value>> {
    properties.as_ref()?;
    let is_secret_spec = |name: &str| {
        specs
            .unwrap_or_default()
            .iter()
            .find(|s| s.name == name)
            .is_some_and(|s| s.secret || s.editor.as_deref() == Some("password"))
    };
    Some(
        properties_json(properties)
            .into_iter()
            .map(|(name, value)| {
                let secret = is_secret_spec(&name) || value.as_str().is_some_and(url_has_password);
                let value = if secret {
                    json!({ "secret": "set" })
                } else {
                    value
                };
                (name, value)
            })
            .collect(),
    )
}

/// Whether `text` is a URL whose user information carries a password
/// (`scheme://user:password@host…`).
fn url_has_password(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_urls_with_a_password_in_them_are_secret() {
        assert!(url_has_password("http://user:s3cret@127.0.0.1:9/"));
        assert!(url_has_password("http://user:s3cret@proxy"));
        assert!(!url_has_password("http://user@proxy:3128"));
        assert!(!url_has_password("http://proxy:3128/a@b"));
        assert!(!url_has_password("user:pass@host"));
        assert!(!url_has_password("hello"));
    }

    #[test]
    fn a_host_without_a_project_has_the_empty_shape() {
        assert_eq!(
            project(&HostState::default()),
            json!({ "instances": [], "wires": [], "startup": [], "file": null })
        );
    }
}
