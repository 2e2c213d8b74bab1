//! A project sent as JSON (`PUT /project`, `POST /project/check`), in the
//! shape `GET /project` gives, turned into a project file's TOML document
//! (`toml_edit`), which then goes through the same parser and checks as a
//! file: one set of rules and messages for both.
//!
//! Here only what JSON can get wrong that TOML cannot: the shape (an
//! unknown key, a name that is not a string, a `null`) and secrets. A
//! property sent as `{"secret":"set"}` keeps the stored value: of the
//! instance of the same name, or of the wire or startup action at the same
//! position with the same instance and trigger or action. With none stored
//! (a new or renamed instance), it is an error at that field.

use serde_json::{Map, Value, json};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use super::{Project, TriggerDecl};

/// Errors as `{"at","path","message"}`.
pub type Located = Vec<Value>;

/// The TOML document of the JSON project `body`; `stored` is the running
/// project, whose secrets `{"secret":"set"}` keeps.
pub fn document(body: &Value, stored: Option<&Project>) -> Result<DocumentMut, Located> {
    let mut out = Converter {
        stored,
        errors: Vec::new(),
    };
    let doc = out.project(body);
    if out.errors.is_empty() {
        Ok(doc)
    } else {
        Err(out.errors)
    }
}

struct Converter<'p> {
    stored: Option<&'p Project>,
    errors: Located,
}

/// Where a value is: the JSON path and words for people.
#[derive(Clone)]
struct Place {
    path: Vec<Value>,
    words: String,
}

impl Place {
    fn then(&self, key: impl Into<Value>, words: &str) -> Place {
        let mut path = self.path.clone();
        path.push(key.into());
        let words = match (self.words.is_empty(), words.is_empty()) {
            (true, _) => words.to_string(),
            (false, true) => self.words.clone(),
            (false, false) => format!("{}, {words}", self.words),
        };
        Place { path, words }
    }
}

/// Which stored properties a secret comes from.
enum Stored<'p> {
    None,
    Table(Option<&'p toml::Table>),
}

impl<'p> Converter<'p> {
    fn error(&mut self, place: &Place, message: impl Into<String>) {
        let at = if place.words.is_empty() {
            "the project".to_string()
        } else {
            place.words.clone()
        };
        self.errors
            .push(json!({ "at": at, "path": place.path, "message": message.into() }));
    }

    /// An object with only `allowed` keys (others reported).
    fn object<'v>(
        &mut self,
        value: &'v Value,
        place: &Place,
        what: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(object) = value.as_object() else {
            self.error(place, format!("{what} must be a JSON object, got {value}"));
            return None;
        };
        for key in object.keys() {
            if !allowed.contains(&key.as_str()) {
                let list: Vec<String> = allowed.iter().map(|k| format!("{k:?}")).collect();
                self.error(
                    &place.then(key.as_str(), ""),
                    format!(
                        "unknown key {key:?} in {what}; accepted: {}",
                        list.join(", ")
                    ),
                );
            }
        }
        Some(object)
    }

    /// The array at `key` (missing or null: empty).
    fn array<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        key: &str,
        place: &Place,
    ) -> &'v [Value] {
        match object.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.error(
                    &place.then(key, ""),
                    format!("{key:?} must be a JSON array, got {other}"),
                );
                &[]
            }
        }
    }

    /// The string at `key`: required, or optional (missing or null: None).
    fn string<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        key: &str,
        place: &Place,
        required: bool,
    ) -> Option<&'v str> {
        match object.get(key) {
            Some(Value::String(text)) => Some(text),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                self.error(
                    &place.then(key, key),
                    format!("{key:?} is required (a string)"),
                );
                None
            }
            Some(other) => {
                self.error(
                    &place.then(key, key),
                    format!("{key:?} must be a string, got {other}"),
                );
                None
            }
        }
    }

    fn project(&mut self, body: &Value) -> DocumentMut {
        let mut doc = DocumentMut::new();
        let top = Place {
            path: Vec::new(),
            words: String::new(),
        };
        let Some(object) = self.object(
            body,
            &top,
            "the project",
            &["instances", "wires", "startup", "file", "samples"],
        ) else {
            return doc;
        };
        let mut instances = ArrayOfTables::new();
        for (i, value) in self.array(object, "instances", &top).iter().enumerate() {
            let place = top
                .then("instances", "")
                .then(i, &format!("instance {}", i + 1));
            if let Some(table) = self.instance(value, place) {
                instances.push(table);
            }
        }
        let mut wires = ArrayOfTables::new();
        for (w, value) in self.array(object, "wires", &top).iter().enumerate() {
            let place = top.then("wires", "").then(w, &format!("wire {}", w + 1));
            if let Some(table) = self.wire(value, w, place) {
                wires.push(table);
            }
        }
        let mut startup = ArrayOfTables::new();
        for (s, value) in self.array(object, "startup", &top).iter().enumerate() {
            let place = top
                .then("startup", "")
                .then(s, &format!("startup {}", s + 1));
            let stored = self.stored.and_then(|p| p.startup.get(s));
            if let Some(action) = self.action(value, place, stored) {
                startup.push(action.into_table());
            }
        }
        for (key, tables) in [
            ("instance", instances),
            ("wire", wires),
            ("startup", startup),
        ] {
            if !tables.is_empty() {
                doc.insert(key, Item::ArrayOfTables(tables));
            }
        }
        doc
    }

    fn instance(&mut self, value: &Value, mut place: Place) -> Option<Table> {
        let object = self.object(
            value,
            &place,
            "an instance",
            &["name", "module", "properties"],
        )?;
        let name = self.string(object, "name", &place, true);
        if let Some(name) = name {
            place.words = format!("instance {name:?}");
        }
        let module = self.string(object, "module", &place, false);
        let stored = match (self.stored, name) {
            (Some(project), Some(name)) => Stored::Table(
                project
                    .instance(name)
                    .and_then(|d| d.properties.as_ref())
                    .map(|p| p.get_ref()),
            ),
            _ => Stored::None,
        };
        let properties = self.properties(object.get("properties"), &place, stored);
        let mut table = Table::new();
        table.insert("name", toml_edit::value(name?));
        if let Some(module) = module {
            table.insert("module", toml_edit::value(module));
        }
        if let Some(properties) = properties.filter(|p| !p.is_empty()) {
            let mut sub = Table::new();
            // Right under its `[[instance]]`, as a person writes it.
            sub.decor_mut().set_prefix("");
            for (key, value) in properties.iter() {
                sub.insert(key, Item::Value(value.clone()));
            }
            table.insert("properties", Item::Table(sub));
        }
        Some(table)
    }

    fn wire(&mut self, value: &Value, w: usize, place: Place) -> Option<Table> {
        let object = self.object(value, &place, "a wire", &["when", "then"])?;
        let stored = self.stored.and_then(|p| p.wires.get(w));
        let when_place = place.then("when", "trigger");
        let when = match object.get("when") {
            Some(when) => self.trigger(when, when_place, stored.map(|s| &s.when)),
            None => {
                self.error(
                    &when_place,
                    "a wire needs \"when\": {\"instance\", \"trigger\"}",
                );
                None
            }
        };
        let then_place = place.then("then", "");
        let actions: Vec<Value> = match object.get("then") {
            Some(Value::Array(actions)) => actions.clone(),
            Some(action @ Value::Object(_)) => vec![action.clone()],
            _ => {
                self.error(
                    &then_place,
                    "a wire needs \"then\": a list of actions [{\"instance\", \"action\"}]",
                );
                Vec::new()
            }
        };
        if actions.is_empty() && object.get("then").is_some_and(Value::is_array) {
            self.error(&then_place, "`then` must name at least one action");
        }
        let mut then = Array::new();
        for (a, action) in actions.iter().enumerate() {
            let stored = stored.and_then(|s| s.then.0.get(a));
            let place = then_place.then(a, &format!("action {}", a + 1));
            if let Some(action) = self.action(action, place, stored) {
                then.push(action);
            }
        }
        let mut table = Table::new();
        table.insert("when", toml_edit::value(when?));
        table.insert("then", toml_edit::value(then));
        Some(table)
    }

    fn trigger(
        &mut self,
        value: &Value,
        place: Place,
        stored: Option<&TriggerDecl>,
    ) -> Option<InlineTable> {
        let object = self.object(
            value,
            &place,
            "a trigger",
            &["instance", "trigger", "properties"],
        )?;
        let instance = self.string(object, "instance", &place, true);
        let trigger = self.string(object, "trigger", &place, true);
        let stored = Stored::Table(
            stored
                .filter(|s| {
                    Some(s.instance.get_ref().as_str()) == instance
                        && Some(s.trigger.get_ref().as_str()) == trigger
                })
                .and_then(|s| s.properties.as_ref())
                .map(|p| p.get_ref()),
        );
        let properties = self.properties(object.get("properties"), &place, stored);
        let mut table = InlineTable::new();
        table.insert("instance", instance?.into());
        table.insert("trigger", trigger?.into());
        if let Some(properties) = properties.filter(|p| !p.is_empty()) {
            table.insert("properties", properties.into());
        }
        Some(table)
    }

    fn action(
        &mut self,
        value: &Value,
        place: Place,
        stored: Option<&super::ActionDecl>,
    ) -> Option<InlineTable> {
        let object = self.object(
            value,
            &place,
            "an action",
            &["instance", "action", "properties"],
        )?;
        let instance = self.string(object, "instance", &place, true);
        let action = self.string(object, "action", &place, true);
        let stored = Stored::Table(
            stored
                .filter(|s| {
                    Some(s.instance.get_ref().as_str()) == instance
                        && Some(s.action.get_ref().as_str()) == action
                })
                .and_then(|s| s.properties.as_ref())
                .map(|p| p.get_ref()),
        );
        let properties = self.properties(object.get("properties"), &place, stored);
        let mut table = InlineTable::new();
        table.insert("instance", instance?.into());
        table.insert("action", action?.into());
        if let Some(properties) = properties.filter(|p| !p.is_empty()) {
            table.insert("properties", properties.into());
        }
        Some(table)
    }

    /// The properties object as an inline table (missing or null: empty).
    fn properties(
        &mut self,
        value: Option<&Value>,
        place: &Place,
        stored: Stored<'_>,
    ) -> Option<InlineTable> {
        let mut table = InlineTable::new();
        let object = match value {
            None | Some(Value::Null) => return Some(table),
            Some(Value::Object(object)) => object,
            Some(other) => {
                self.error(
                    &place.then("properties", "properties"),
                    format!("\"properties\" must be a JSON object, got {other}"),
                );
                return None;
            }
        };
        let mut ok = true;
        for (name, value) in object {
            let at = place
                .then("properties", "")
                .then(name.as_str(), &format!("property {name}"));
            let converted = if is_secret_set(value) {
                match &stored {
                    Stored::Table(Some(stored)) if stored.contains_key(name) => {
                        toml_value(&stored[name])
                    }
                    _ => {
                        self.error(
                            &at,
                            format!(
                                "property {name:?} is a secret the host keeps, but it keeps none \
                                 here (a new or renamed instance, or a wire or action moved or \
                                 changed): enter the value"
                            ),
                        );
                        None
                    }
                }
            } else {
                match json_to_toml(value) {
                    Ok(value) => Some(value),
                    Err(message) => {
                        self.error(&at, format!("property {name:?}: {message}"));
                        None
                    }
                }
            };
            match converted {
                Some(value) => {
                    table.insert(name, value);
                }
                None => ok = false,
            }
        }
        ok.then_some(table)
    }
}

/// `{"secret":"set"}`: keep the stored value.
pub fn is_secret_set(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.len() == 1 && o.get("secret") == Some(&json!("set")))
}

/// A stored (parsed) value as a document value.
fn toml_value(value: &toml::Value) -> Option<toml_edit::Value> {
    value.to_string().parse().ok()
}

/// A JSON property value as TOML; `null` has no TOML form.
fn json_to_toml(value: &Value) -> Result<toml_edit::Value, String> {
    Ok(match value {
        Value::Null => {
            return Err("null is not a value; leave the property out for its default".into());
        }
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            (None, None) => return Err(format!("{n} is out of range")),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = Array::new();
            for item in items {
                array.push(json_to_toml(item)?);
            }
            array.into()
        }
        Value::Object(object) => {
            let mut table = InlineTable::new();
            for (key, value) in object {
                table.insert(key, json_to_toml(value)?);
            }
            table.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_project_becomes_a_project_file_the_parser_reads() {
        let body = json!({
            "instances": [{"name": "ws", "properties": {"Hostname": "127.0.0.1", "Port": 9}}],
            "wires": [{"when": {"instance": "ws", "trigger": "Messages Received",
                                "properties": {"Match String": "ping"}},
                       "then": [{"instance": "ws", "action": "Send Message",
                                 "properties": {"Message": "pong <1>"}}]}],
            "startup": [{"instance": "ws", "action": "Connect"}],
            "file": "/ignored.toml",
        });
        let text = document(&body, None).unwrap().to_string();
        let project = Project::parse("x", &text).unwrap();
        assert_eq!(project.instances[0].name.get_ref(), "ws");
        assert_eq!(project.wires[0].then.0[0].action.get_ref(), "Send Message");
        assert_eq!(project.startup[0].action.get_ref(), "Connect");
    }

    #[test]
    fn shape_errors_name_their_path() {
        let body = json!({
            "instances": [{"name": 3, "colour": "red"}],
            "wires": [{"when": {"instance": "ws"}, "then": []}],
            "extra": 1,
        });
        let errors = document(&body, None).unwrap_err();
        let paths: Vec<&Value> = errors.iter().map(|e| &e["path"]).collect();
        assert!(paths.contains(&&json!(["extra"])), "{errors:?}");
        assert!(
            paths.contains(&&json!(["instances", 0, "colour"])),
            "{errors:?}"
        );
        assert!(
            paths.contains(&&json!(["instances", 0, "name"])),
            "{errors:?}"
        );
        assert!(
            paths.contains(&&json!(["wires", 0, "when", "trigger"])),
            "{errors:?}"
        );
        assert!(paths.contains(&&json!(["wires", 0, "then"])), "{errors:?}");
    }

    #[test]
    fn a_secret_set_keeps_the_stored_value_or_asks_for_one() {
        let stored = Project::parse(
            "p.toml",
            "[[instance]]\nname = \"ws\"\n[instance.properties]\n\"Bearer Token\" = \"s3cr3t\"\n",
        )
        .unwrap();
        let body = json!({"instances": [
            {"name": "ws", "properties": {"Bearer Token": {"secret": "set"}}},
        ]});
        let text = document(&body, Some(&stored)).unwrap().to_string();
        assert!(text.contains("s3cr3t"), "{text}");
        let renamed = json!({"instances": [
            {"name": "ws2", "properties": {"Bearer Token": {"secret": "set"}}},
        ]});
        let errors = document(&renamed, Some(&stored)).unwrap_err();
        assert_eq!(
            errors[0]["path"],
            json!(["instances", 0, "properties", "Bearer Token"])
        );
        assert_eq!(errors[0]["at"], "instance \"ws2\", property Bearer Token");
        assert!(!errors[0].to_string().contains("s3cr3t"));
    }
}
