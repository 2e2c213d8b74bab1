//! The project file: which module instances run with which properties, which
//! of their triggers are wired to which actions, and which actions run at
//! startup. This file reads and checks it; `controller` brings it up.
//!
//! ```toml
//! [[instance]]
//! name = "piesocket"              # unique
//! module = "path/to/libwsio.so"   # optional; relative to the project file
//! [instance.properties]
//! Hostname = "127.0.0.1"
//!
//! [[wire]]
//! when = { instance = "piesocket", trigger = "Messages Received", properties = { "Match String" = "ping" } }
//! then = { instance = "piesocket", action = "Send Message", properties = { Message = "pong: <1>" } }
//!
//! [[startup]]
//! instance = "piesocket"
//! action = "Connect"
//! ```
//!
//! A controller must not start half-configured, so every check that can run
//! before an instance exists runs here, and every error names the file and
//! line so the user can go straight to it.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::{Spanned, Table, Value};

use super::manifest::{ModuleManifest, PropertySpec, TriggerSpec, line_column, quoted_list};

/// A problem in a project file, located for the person who has to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectError {
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub column: Option<usize>,
    pub message: String,
    /// Where in the project text it is (None: the project as a whole); with
    /// `property`, how a JSON project's errors are located (`locate`).
    pub span: Option<Range<usize>>,
    /// The property it concerns, when one is known.
    pub property: Option<String>,
}

impl ProjectError {
    /// The same error, about property `name`.
    pub fn with_property(mut self, name: &str) -> ProjectError {
        self.property = Some(name.to_string());
        self
    }

    /// The same error, about the property of `properties` that the
    /// module's `message` names (a module says which property it refuses,
    /// in its own words): the one it names first.
    pub fn about_named_property(
        self,
        properties: &Option<Spanned<Table>>,
        message: &str,
    ) -> ProjectError {
        let named = properties
            .iter()
            .flat_map(|p| p.get_ref().keys())
            .filter_map(|name| message.find(name.as_str()).map(|at| (at, name)))
            .min_by_key(|(at, name)| (*at, usize::MAX - name.len()));
        match named {
            Some((_, name)) => self.with_property(name),
            None => self,
        }
    }
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file, self.message),
            (line, None) => write!(f, "{}:{line}: {}", self.file, self.message),
            (line, Some(column)) => write!(f, "{}:{line}:{column}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ProjectError {}

// ------------------------------------------------------------- file shape

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    #[serde(default)]
    instance: Vec<InstanceDecl>,
    #[serde(default)]
    wire: Vec<WireDecl>,
    #[serde(default)]
    startup: Vec<ActionDecl>,
}

/// `[[instance]]`: one module instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceDecl {
    pub name: Spanned<String>,
    /// The module's shared library; None means this crate's own module.
    #[serde(default)]
    pub module: Option<Spanned<String>>,
    #[serde(default)]
    pub properties: Option<Spanned<Table>>,
}

impl InstanceDecl {
    /// Sets an instance property (the built-in demo sets the port the demo
    /// server got); errors then point at the properties table or the name.
    pub fn set_property(&mut self, key: &str, value: Value) {
        let properties = self
            .properties
            .get_or_insert_with(|| Spanned::new(self.name.span(), Table::new()));
        properties.get_mut().insert(key.to_string(), value);
    }
}

/// `[[wire]]`: when a trigger of an instance fires and its test matches,
/// run the actions in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireDecl {
    pub when: TriggerDecl,
    pub then: Then,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDecl {
    pub instance: Spanned<String>,
    pub trigger: Spanned<String>,
    #[serde(default)]
    pub properties: Option<Spanned<Table>>,
}

/// An action of an instance, with its properties (`then`, `[[startup]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDecl {
    pub instance: Spanned<String>,
    pub action: Spanned<String>,
    #[serde(default)]
    pub properties: Option<Spanned<Table>>,
}

/// `then` is one action table or an array of them (run in order).
#[derive(Debug, Clone)]
pub struct Then(pub Vec<ActionDecl>);

impl<'de> Deserialize<'de> for Then {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Then, D::Error> {
        struct ThenVisitor;

        impl<'de> Visitor<'de> for ThenVisitor {
            type Value = Then;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an action { instance = \"...\", action = \"...\", properties = { ... } } \
                     or an array of them",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Then, A::Error> {
                let action = ActionDecl::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Then(vec![action]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Then, A::Error> {
                let mut actions = Vec::new();
                while let Some(action) = seq.next_element::<ActionDecl>()? {
                    actions.push(action);
                }
                if actions.is_empty() {
                    return Err(de::Error::custom("`then` must name at least one action"));
                }
                Ok(Then(actions))
            }
        }

        deserializer.deserialize_any(ThenVisitor)
    }
}

/// Properties as the JSON object the ABI takes.
pub fn properties_json(
    properties: &Option<Spanned<Table>>,
) -> serde_json::Map<String, serde_json::Value> {
    properties
        .as_ref()
        .map(|p| {
            p.get_ref()
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn toml_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Integer(i) => serde_json::Value::from(*i),
        // NaN and infinities have no JSON form; null makes the module say
        // which property is wrong instead of the host guessing.
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(toml_to_json).collect()),
        Value::Table(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

// ------------------------------------------------------------- Project

/// A parsed project file.
#[derive(Debug, Clone)]
pub struct Project {
    /// The file name as the user gave it (used in every message).
    pub file: String,
    text: String,
    pub instances: Vec<InstanceDecl>,
    pub wires: Vec<WireDecl>,
    pub startup: Vec<ActionDecl>,
}

impl Project {
    /// Parses project text. `file` names it in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Project, ProjectError> {
        let parsed: ProjectFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, None), |span| {
                let (line, column) = line_column(text, span.start);
                (line, Some(column))
            });
            ProjectError {
                file: file.to_string(),
                line,
                column,
                message: e.message().trim_end().to_string(),
                span: e.span(),
                property: None,
            }
        })?;
        Ok(Project {
            file: file.to_string(),
            text: text.to_string(),
            instances: parsed.instance,
            wires: parsed.wire,
            startup: parsed.startup,
        })
    }

    /// An error at the start of `span`.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ProjectError {
        ProjectError {
            file: self.file.clone(),
            line: line_column(&self.text, span.start).0,
            column: None,
            message: message.into(),
            span: Some(span),
            property: None,
        }
    }

    pub fn instance(&self, name: &str) -> Option<&InstanceDecl> {
        self.instances.iter().find(|i| i.name.get_ref() == name)
    }

    fn declared_instances(&self) -> String {
        let mut seen = HashSet::new();
        let names = self.instances.iter().map(|i| i.name.get_ref().as_str());
        quoted_list(names.filter(|name| seen.insert(*name)))
    }

    /// The actions of wire `w` (0-based) with how messages name them:
    /// "wire 2", or "wire 2, action 1" when the wire has several.
    pub fn wire_actions(&self, w: usize) -> Vec<(String, &ActionDecl)> {
        let actions = &self.wires[w].then.0;
        actions
            .iter()
            .enumerate()
            .map(|(a, action)| {
                let place = if actions.len() == 1 {
                    format!("wire {}", w + 1)
                } else {
                    format!("wire {}, action {}", w + 1, a + 1)
                };
                (place, action)
            })
            .collect()
    }

    /// The startup actions, named "startup 1", "startup 2", ...
    pub fn startup_actions(&self) -> Vec<(String, &ActionDecl)> {
        self.startup
            .iter()
            .enumerate()
            .map(|(s, a)| (format!("startup {}", s + 1), a))
            .collect()
    }

    /// Every action the project runs, wires first, with its name for messages.
    pub fn actions(&self) -> Vec<(String, &ActionDecl)> {
        let mut all: Vec<_> = (0..self.wires.len())
            .flat_map(|w| self.wire_actions(w))
            .collect();
        all.extend(self.startup_actions());
        all
    }

    /// Checks that need no module: there is something to run, instance names
    /// are unique, and every wire and startup action names a declared
    /// instance. Returns every problem found, in file order.
    pub fn check_structure(&self) -> Vec<ProjectError> {
        let mut errors = Vec::new();
        if self.instances.is_empty() {
            errors.push(ProjectError {
                file: self.file.clone(),
                line: 0,
                column: None,
                message: "the project declares no instance; add an [[instance]] table with a \
                          name and its properties"
                    .to_string(),
                span: None,
                property: None,
            });
        }
        let mut seen = HashSet::new();
        for instance in &self.instances {
            let name = instance.name.get_ref();
            if name.trim().is_empty() {
                errors.push(self.error_at(instance.name.span(), "instance name must not be empty"));
            } else if !seen.insert(name.as_str()) {
                errors.push(self.error_at(
                    instance.name.span(),
                    format!(
                        "instance name {name:?} is declared twice; instance names must be unique"
                    ),
                ));
            }
        }
        for (w, wire) in self.wires.iter().enumerate() {
            self.check_declared(&wire.when.instance, &format!("wire {}", w + 1), &mut errors);
        }
        for (place, action) in self.actions() {
            self.check_declared(&action.instance, &place, &mut errors);
        }
        errors.sort_by_key(|e| e.line);
        errors
    }

    fn check_declared(
        &self,
        instance: &Spanned<String>,
        place: &str,
        errors: &mut Vec<ProjectError>,
    ) {
        if self.instance(instance.get_ref()).is_none() {
            errors.push(self.error_at(
                instance.span(),
                format!(
                    "{place} names instance {:?} which is not declared; declared instances: {}",
                    instance.get_ref(),
                    self.declared_instances()
                ),
            ));
        }
    }

    /// Checks against the modules' manifests: every trigger and action exists
    /// on the module of the instance it names, and their properties are ones
    /// the manifest declares, with values of the declared type. Run after
    /// `check_structure` passed; `manifest_of` gives an instance's manifest.
    pub fn check_against_manifests<'m>(
        &self,
        manifest_of: impl Fn(&str) -> Option<&'m ModuleManifest>,
    ) -> Vec<ProjectError> {
        let mut errors = Vec::new();
        // Instance property names only: their types and values are the
        // module's to check when it creates the instance.
        for instance in &self.instances {
            if let Some(manifest) = manifest_of(instance.name.get_ref()) {
                self.check_names(
                    &format!("instance {:?}", instance.name.get_ref()),
                    "instance",
                    &manifest.properties,
                    &instance.properties,
                    &mut errors,
                );
            }
        }
        for (w, wire) in self.wires.iter().enumerate() {
            let when = &wire.when;
            let Some(manifest) = manifest_of(when.instance.get_ref()) else {
                continue;
            };
            let place = format!("wire {}", w + 1);
            match manifest.trigger(when.trigger.get_ref()) {
                None => errors.push(self.error_at(
                    when.trigger.span(),
                    format!(
                        "{place}: instance {:?} ({}) has no trigger {:?}; its triggers: {}",
                        when.instance.get_ref(),
                        manifest.module.name,
                        when.trigger.get_ref(),
                        manifest.trigger_names()
                    ),
                )),
                Some(trigger) => self.check_properties(
                    &place,
                    &format!("trigger {:?}", trigger.name),
                    &trigger.properties,
                    &when.properties,
                    when.trigger.span(),
                    &mut errors,
                ),
            }
        }
        for (place, action) in self.actions() {
            let Some(manifest) = manifest_of(action.instance.get_ref()) else {
                continue;
            };
            match manifest.action(action.action.get_ref()) {
                None => errors.push(self.error_at(
                    action.action.span(),
                    format!(
                        "{place}: instance {:?} ({}) has no action {:?}; its actions: {}",
                        action.instance.get_ref(),
                        manifest.module.name,
                        action.action.get_ref(),
                        manifest.action_names()
                    ),
                )),
                Some(spec) => self.check_properties(
                    &place,
                    &format!("action {:?}", spec.name),
                    &spec.properties,
                    &action.properties,
                    action.action.span(),
                    &mut errors,
                ),
            }
        }
        errors.sort_by_key(|e| e.line);
        errors
    }

    /// The actions of wire `w` (0-based) use no placeholder its trigger
    /// leaves unfilled: `count` is how many variables the prepared trigger
    /// gives (`<1>` to `<count>`). Text such as `<3>` with two variables
    /// would otherwise be sent as it is, which is never what was meant.
    /// Startup actions run with no trigger and are not checked: their
    /// text is sent as written.
    pub fn check_placeholders(
        &self,
        w: usize,
        trigger: &TriggerSpec,
        count: usize,
    ) -> Vec<ProjectError> {
        let mut errors = Vec::new();
        for (place, action) in self.wire_actions(w) {
            let Some(properties) = &action.properties else {
                continue;
            };
            for (name, value) in properties.get_ref() {
                let Value::String(text) = value else { continue };
                let mut used: Vec<String> = Vec::new();
                for (digits, n) in placeholders(text) {
                    let shown = format!("<{digits}>");
                    if (n == 0 || n > count) && !used.contains(&shown) {
                        used.push(shown);
                    }
                }
                if used.is_empty() {
                    continue;
                }
                let gives = match count {
                    0 => "gives no variables".to_owned(),
                    1 => format!("gives 1 variable here: {}", trigger.placeholders(1)),
                    n => format!("gives {n} variables here: {}", trigger.placeholders(n)),
                };
                errors.push(
                    self.error_at(
                        properties.span(),
                        format!(
                            "{place}: action {:?} property {name:?} uses {}, but trigger {:?} \
                             {gives}",
                            action.action.get_ref(),
                            used.join(", "),
                            trigger.name
                        ),
                    )
                    .with_property(name),
                );
            }
        }
        errors
    }

    /// Trigger and action properties: known names, declared types, and
    /// the required ones present and not blank. `fallback` locates a
    /// missing one when there is no properties table.
    fn check_properties(
        &self,
        place: &str,
        what: &str,
        specs: &[PropertySpec],
        given: &Option<Spanned<Table>>,
        fallback: Range<usize>,
        errors: &mut Vec<ProjectError>,
    ) {
        // A misspelt name would also read as a missing required one: the
        // name is the mistake to report.
        let names_known = self.check_names(place, what, specs, given, errors);
        let empty = Table::new();
        let (table, at) = match given {
            Some(given) => (given.get_ref(), given.span()),
            None => (&empty, fallback),
        };
        for (name, value) in table {
            let problem = specs
                .iter()
                .find(|s| &s.name == name)
                .and_then(|spec| type_problem(spec, value));
            if let Some(problem) = problem {
                errors.push(
                    self.error_at(at.clone(), format!("{place}: {problem}"))
                        .with_property(name),
                );
            }
        }
        for spec in specs.iter().filter(|s| s.required && names_known) {
            let blank = match table.get(&spec.name) {
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(_) => false,
                None => spec
                    .default
                    .as_ref()
                    .is_none_or(|d| d.as_str().is_some_and(|d| d.trim().is_empty())),
            };
            if blank {
                errors.push(
                    self.error_at(
                        at.clone(),
                        format!(
                            "{place}: {what} needs property {:?}, and it must not be empty",
                            spec.name
                        ),
                    )
                    .with_property(&spec.name),
                );
            }
        }
    }

    /// Every given property name is one the manifest declares; false if
    /// one is not (and reported).
    fn check_names(
        &self,
        place: &str,
        what: &str,
        specs: &[PropertySpec],
        given: &Option<Spanned<Table>>,
        errors: &mut Vec<ProjectError>,
    ) -> bool {
        let Some(given) = given else { return true };
        let mut known = true;
        for name in given.get_ref().keys() {
            if !specs.iter().any(|s| &s.name == name) {
                known = false;
                errors.push(
                    self.error_at(
                        given.span(),
                        format!("{place}: {}", unknown_property(what, name, specs)),
                    )
                    .with_property(name),
                );
            }
        }
        known
    }
}

/// The `<n>` placeholders in `text`, in order: their digits as written and
/// their number (one too large for usize reads as usize::MAX: no trigger
/// fills it).
fn placeholders(text: &str) -> impl Iterator<Item = (&str, usize)> + '_ {
    text.split('<').skip(1).filter_map(|after| {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && after.as_bytes().get(digits) == Some(&b'>')).then(|| {
            let digits = &after[..digits];
            (digits, digits.parse().unwrap_or(usize::MAX))
        })
    })
}

/// An unknown property name: the known one it was probably meant to be
/// (apart from case or a small typo), else every name there is. Worded as
/// the module words it, so a project file, an HTTP body and the ABI say the
/// same.
fn unknown_property(what: &str, name: &str, specs: &[PropertySpec]) -> String {
    let known = specs.iter().map(|s| s.name.as_str());
    match wsio::closest_name(name, known) {
        Some(meant) => format!("unknown {what} property {name:?}; did you mean {meant:?}?"),
        None if specs.is_empty() => {
            format!("unknown {what} property {name:?}; it takes no properties")
        }
        None => format!(
            "unknown {what} property {name:?}; accepted: {}",
            quoted_list(specs.iter().map(|s| s.name.as_str()))
        ),
    }
}

/// Why `value` does not fit the declared type of `spec`, for the types the
/// wsio manifest format defines; other type names are the module's to check.
fn type_problem(spec: &PropertySpec, value: &Value) -> Option<String> {
    let name = &spec.name;
    match (spec.kind.as_str(), value) {
        ("string", Value::String(_)) | ("int", Value::Integer(_)) | ("bool", Value::Boolean(_)) => {
            None
        }
        ("enum", Value::String(s)) if spec.options.is_empty() || spec.options.contains(s) => None,
        ("enum", _) => Some(format!(
            "property {name:?} must be one of {}, got {value}",
            quoted_list(spec.options.iter().map(String::as_str))
        )),
        ("string", _) => Some(format!("property {name:?} must be a string, got {value}")),
        ("int", _) => Some(format!("property {name:?} must be an integer, got {value}")),
        ("bool", _) => Some(format!(
            "property {name:?} must be true or false, got {value}"
        )),
        _ => None,
    }
}

pub mod from_json;
mod locate;

#[cfg(test)]
mod tests;
