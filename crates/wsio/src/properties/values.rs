//! Property values: any property set (instance, trigger or action) checked
//! against its manifest declaration, with manifest defaults for what is
//! missing. The typed instance properties and the trigger and action
//! parsers read from here.

use super::PropertyError;
use crate::manifest::{Manifest, PropertySpec, PropertyType};
use serde_json::Value;
use std::collections::BTreeMap;

/// A property value after its type was checked.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    String(String),
    Int(i64),
    Bool(bool),
}

/// A property set checked against its manifest declaration; missing
/// properties read as their manifest default.
#[derive(Debug)]
pub struct PropertyValues<'m> {
    specs: &'m [PropertySpec],
    given: BTreeMap<&'m str, PropertyValue>,
}

/// Describes a JSON value for an error message without echoing long input.
fn describe(value: &Value) -> String {
    let text = match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn shown(spec: &PropertySpec, value: &Value) -> String {
    if spec.secret {
        "(hidden)".to_owned()
    } else {
        describe(value)
    }
}

/// The known name `name` was probably meant to be: the same apart from
/// case, or a small typo (an edit or two, fewer for short names). None when
/// nothing is that close, so a wrong guess is not offered.
pub fn closest_name<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = name.to_lowercase();
    let limit = match wanted.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    };
    known
        .map(|candidate| {
            let distance = strsim::damerau_levenshtein(&wanted, &candidate.to_lowercase());
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

impl<'m> PropertyValues<'m> {
    /// Checks `json` (an object of property name → value, or `null` for none)
    /// against `specs`. `owner` names the property set in messages, e.g.
    /// "instance" or "action \"Connect\"".
    pub fn parse(
        specs: &'m [PropertySpec],
        json: &Value,
        owner: &str,
    ) -> Result<Self, PropertyError> {
        let object = match json {
            Value::Null => {
                return Ok(PropertyValues {
                    specs,
                    given: BTreeMap::new(),
                });
            }
            Value::Object(object) => object,
            other => {
                return Err(PropertyError::new(
                    "",
                    format!(
                        "{owner} properties must be a JSON object such as {{\"Name\": value}}, got {}",
                        describe(other)
                    ),
                ));
            }
        };
        let mut given = BTreeMap::new();
        for (name, value) in object {
            let Some(spec) = specs.iter().find(|s| &s.name == name) else {
                let known = specs.iter().map(|s| s.name.as_str());
                let accepted = if let Some(meant) = closest_name(name, known) {
                    format!("did you mean \"{meant}\"?")
                } else if specs.is_empty() {
                    "it takes no properties".to_owned()
                } else {
                    format!(
                        "accepted: {}",
                        Manifest::list(specs.iter().map(|s| s.name.as_str()))
                    )
                };
                return Err(PropertyError::new(
                    name,
                    format!("unknown {owner} property \"{name}\"; {accepted}"),
                ));
            };
            given.insert(spec.name.as_str(), Self::check(spec, value)?);
        }
        for spec in specs.iter().filter(|s| s.required) {
            let empty = match given.get(spec.name.as_str()) {
                None => spec.default.as_str().is_none_or(|d| d.trim().is_empty()),
                Some(PropertyValue::String(s)) => s.trim().is_empty(),
                Some(_) => false,
            };
            if empty {
                return Err(PropertyError::new(
                    &spec.name,
                    format!("{} is required: {}", spec.name, spec.description),
                ));
            }
        }
        Ok(PropertyValues { specs, given })
    }

    fn check(spec: &PropertySpec, value: &Value) -> Result<PropertyValue, PropertyError> {
        let name = &spec.name;
        match spec.kind {
            PropertyType::String => match value {
                Value::String(s) => Ok(PropertyValue::String(s.clone())),
                other => Err(PropertyError::new(
                    name,
                    format!("{name} must be a string, got {}", shown(spec, other)),
                )),
            },
            PropertyType::Bool => match value {
                Value::Bool(b) => Ok(PropertyValue::Bool(*b)),
                other => Err(PropertyError::new(
                    name,
                    format!("{name} must be true or false, got {}", shown(spec, other)),
                )),
            },
            PropertyType::Int => {
                let (min, max) = (spec.min.unwrap_or(i64::MIN), spec.max.unwrap_or(i64::MAX));
                match value.as_i64() {
                    Some(v) if (min..=max).contains(&v) => Ok(PropertyValue::Int(v)),
                    _ => Err(PropertyError::new(
                        name,
                        format!(
                            "{name} must be an integer from {min} to {max}, got {}",
                            shown(spec, value)
                        ),
                    )),
                }
            }
            PropertyType::Enum => {
                let options = Manifest::list(spec.options.iter().map(String::as_str));
                let chosen = value.as_str().and_then(|s| {
                    // Dropdown values are matched without regard to case: "wss" is WSS.
                    spec.options
                        .iter()
                        .find(|o| o.eq_ignore_ascii_case(s.trim()))
                });
                match chosen {
                    Some(option) => Ok(PropertyValue::String(option.clone())),
                    None => Err(PropertyError::new(
                        name,
                        format!(
                            "{name} must be one of {options}, got {}",
                            shown(spec, value)
                        ),
                    )),
                }
            }
        }
    }

    fn spec(&self, name: &str) -> &PropertySpec {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("property {name} is declared in module.toml (tested)"))
    }

    /// A string or enum property (given or default).
    pub fn string(&self, name: &str) -> String {
        match self.given.get(name) {
            Some(PropertyValue::String(s)) => s.clone(),
            _ => self
                .spec(name)
                .default
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.given.get(name) {
            Some(PropertyValue::Int(v)) => *v,
            _ => self.spec(name).default.as_integer().unwrap_or_default(),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.given.get(name) {
            Some(PropertyValue::Bool(v)) => *v,
            _ => self.spec(name).default.as_bool().unwrap_or_default(),
        }
    }
}
