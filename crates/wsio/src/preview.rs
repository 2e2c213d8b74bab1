//! What an action would do with a trigger's variables, without running it
//! and without an instance: a controller's live test of a wire
//! (`iom_action_preview`). It parses the action exactly as running it
//! would ([`Action::parse`]), so it refuses what running would refuse.

use serde_json::Value;

use crate::instance::Action;
use crate::manifest::Manifest;
use crate::matching::fill_placeholders;
use crate::properties::PropertyError;

/// What an action would do with these variables, without running it (a
/// controller's live test of a wire): every property of the action, given
/// or default, with `<n>` placeholders filled; a non-empty secret (Bearer
/// Token) reads `(secret)`. Refused exactly as running it would be (a bad
/// property, hex that the variables make invalid).
pub fn preview_action<S: AsRef<str>>(
    name: &str,
    properties: &Value,
    variables: &[S],
) -> Result<serde_json::Map<String, Value>, PropertyError> {
    Action::parse(name, properties, variables)?;
    let spec = Manifest::get()
        .action(name)
        .expect("Action::parse accepted the name, so the manifest has it");
    Ok(spec
        .properties
        .iter()
        .map(|p| {
            let value = properties
                .get(&p.name)
                .cloned()
                .unwrap_or_else(|| toml_to_json(&p.default));
            let value = match value {
                Value::String(text) if p.secret && !text.is_empty() => "(secret)".into(),
                Value::String(text) => Value::String(fill_placeholders(&text, variables)),
                other => other,
            };
            (p.name.clone(), value)
        })
        .collect())
}

/// A manifest default as the JSON value a property of that type takes.
fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Float(f) => Value::from(*f),
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_fills_placeholders_and_hides_secrets() {
        let send = preview_action(
            "Send Message",
            &serde_json::json!({"Message": "got <2>"}),
            &["temp 21", "21", "text"],
        )
        .unwrap();
        assert_eq!(send["Message"], "got 21");
        assert_eq!(send["Message Type"], "Text", "defaults are shown");
        let connect = preview_action(
            "Connect",
            &serde_json::json!({"Bearer Token": "abc<1>"}),
            &["x"],
        )
        .unwrap();
        assert_eq!(connect["Bearer Token"], "(secret)");
        let bad = preview_action(
            "Send Message",
            &serde_json::json!({"Message": "<1>", "Message Type": "Binary"}),
            &["zz"],
        )
        .unwrap_err();
        assert_eq!(bad.property, "Message");
    }
}
