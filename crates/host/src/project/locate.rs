//! Where a [`ProjectError`] is, as the page and scripts need it: words for
//! people (`wire 2, trigger property Match String`) and the JSON path into
//! the project as `GET /project` shows it
//! (`["wires",1,"when","properties","Match String"]`), found from the
//! error's span among the project's declarations. The path stops at the
//! deepest element known.

use std::ops::Range;

use serde_json::{Value, json};
use toml::Spanned;

use super::{ActionDecl, Project, ProjectError};

/// What part of a declaration a span falls on.
enum Part<'a> {
    /// A field, and the property the error concerns, if any.
    Field(&'static str, Option<&'a str>),
    Properties(Option<&'a str>),
}

impl Project {
    /// The error as `{"at","path","message"}`; `with_line`: `at` starts
    /// with `file:line` (a project read from a file), and `line` is given.
    pub fn locate(&self, error: &ProjectError, with_line: bool) -> Value {
        let (mut at, path) = self.place_of(error);
        let mut object = json!({ "path": path, "message": error.message });
        if with_line && error.line > 0 {
            at = format!("{}:{}, {at}", self.file, error.line);
            object["line"] = error.line.into();
        }
        object["at"] = at.into();
        object
    }

    fn place_of(&self, error: &ProjectError) -> (String, Vec<Value>) {
        let Some(span) = &error.span else {
            return ("the project".into(), Vec::new());
        };
        let property = error.property.as_deref();
        for (i, decl) in self.instances.iter().enumerate() {
            let part = if starts(&decl.name, span) {
                Some(Part::Field("name", property))
            } else if decl.module.as_ref().is_some_and(|m| starts(m, span)) {
                Some(Part::Field("module", property))
            } else if decl.properties.as_ref().is_some_and(|p| starts(p, span)) {
                Some(Part::Properties(property))
            } else {
                None
            };
            if let Some(part) = part {
                let words = format!("instance {:?}", decl.name.get_ref());
                return described(words, vec![json!("instances"), json!(i)], part);
            }
        }
        for (w, wire) in self.wires.iter().enumerate() {
            let when = &wire.when;
            let base = vec![json!("wires"), json!(w), json!("when")];
            let words = format!("wire {}", w + 1);
            if starts(&when.instance, span) {
                return described(words, base, Part::Field("instance", property));
            }
            if starts(&when.trigger, span) {
                return described(words, base, Part::Field("trigger", property));
            }
            if when.properties.as_ref().is_some_and(|p| starts(p, span)) {
                let (at, path) = described(words, base, Part::Properties(property));
                return (at.replacen(", property", ", trigger property", 1), path);
            }
            for (a, action) in wire.then.0.iter().enumerate() {
                if let Some(part) = action_part(action, span, property) {
                    let words = format!("wire {}, action {}", w + 1, a + 1);
                    let base = vec![json!("wires"), json!(w), json!("then"), json!(a)];
                    return described(words, base, part);
                }
            }
        }
        for (s, action) in self.startup.iter().enumerate() {
            if let Some(part) = action_part(action, span, property) {
                let words = format!("startup {}", s + 1);
                return described(words, vec![json!("startup"), json!(s)], part);
            }
        }
        // A span no declaration starts at (the file's syntax): the innermost
        // top-level entry that contains it.
        for (key, spans) in [
            (
                "instances",
                self.instances
                    .iter()
                    .map(|d| d.name.span())
                    .collect::<Vec<_>>(),
            ),
            (
                "wires",
                self.wires.iter().map(|w| w.when.instance.span()).collect(),
            ),
        ] {
            if let Some(index) = spans.iter().rposition(|s| s.start <= span.start) {
                return (
                    format!("{key} {}", index + 1),
                    vec![json!(key), json!(index)],
                );
            }
        }
        ("the project".into(), Vec::new())
    }
}

fn action_part<'a>(
    action: &ActionDecl,
    span: &Range<usize>,
    property: Option<&'a str>,
) -> Option<Part<'a>> {
    if starts(&action.instance, span) {
        Some(Part::Field("instance", property))
    } else if starts(&action.action, span) {
        Some(Part::Field("action", property))
    } else if action.properties.as_ref().is_some_and(|p| starts(p, span)) {
        Some(Part::Properties(property))
    } else {
        None
    }
}

/// Whether the error's span starts where `value` does (errors are put at
/// a declaration's own span) or inside it.
fn starts<T>(value: &Spanned<T>, span: &Range<usize>) -> bool {
    let own = value.span();
    own.start == span.start || (own.start < span.start && span.start < own.end)
}

fn described(words: String, mut path: Vec<Value>, part: Part) -> (String, Vec<Value>) {
    match part {
        // A property missing where the declaration has no properties at
        // all is put at the declaration: it still goes under properties.
        Part::Field(_, Some(name)) => described(words, path, Part::Properties(Some(name))),
        Part::Field(field, None) => {
            path.push(json!(field));
            (format!("{words}, {field}"), path)
        }
        Part::Properties(None) => {
            path.push(json!("properties"));
            (format!("{words}, properties"), path)
        }
        Part::Properties(Some(name)) => {
            path.push(json!("properties"));
            path.push(json!(name));
            (format!("{words}, property {name}"), path)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::ModuleManifest;
    use crate::project::Project;
    use serde_json::json;

    #[test]
    fn errors_are_located_at_the_field_they_concern() {
        let manifest = ModuleManifest::parse(include_str!("../../../wsio/module.toml")).unwrap();
        let text = r#"
[[instance]]
name = "ws"
[instance.properties]
Colour = "red"

[[wire]]
when = { instance = "ws", trigger = "Messages Received" }
then = [
  { instance = "ws", action = "Connect" },
  { instance = "ws", action = "Send Message" },
]

[[startup]]
instance = "ws"
action = "Fly"
"#;
        let project = Project::parse("p.toml", text).unwrap();
        let errors = project.check_against_manifests(|_| Some(&manifest));
        let located: Vec<_> = errors.iter().map(|e| project.locate(e, true)).collect();
        let find = |path: serde_json::Value| {
            located
                .iter()
                .find(|l| l["path"] == path)
                .unwrap_or_else(|| panic!("{path} in {located:#?}"))
        };
        let colour = find(json!(["instances", 0, "properties", "Colour"]));
        // The line `wsio run` names: the properties table's.
        assert_eq!(colour["at"], "p.toml:4, instance \"ws\", property Colour");
        assert_eq!(colour["line"], 4);
        let message = find(json!(["wires", 0, "then", 1, "properties", "Message"]));
        assert_eq!(
            message["at"],
            "p.toml:11, wire 1, action 2, property Message"
        );
        let fly = find(json!(["startup", 0, "action"]));
        assert_eq!(fly["at"], "p.toml:16, startup 1, action");
    }
}
