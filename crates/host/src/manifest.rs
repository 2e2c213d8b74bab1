//! The host's view of a module manifest: the TOML text a module returns from
//! `iom_module_manifest()`, reduced to what a controller needs to check a
//! project before starting it (trigger and action names, which action
//! properties are secret) and to show it on the status page (action forms
//! built from the properties' types and editors, status variable labels).
//!
//! This is deliberately not the module's own `wsio::manifest`: the host must
//! work with any module that exports the ABI, so it reads only the common
//! shape and ignores fields it does not know.

use serde::Deserialize;

/// A module manifest as the host reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModuleManifest {
    pub module: ModuleInfo,
    /// Instance properties: the host checks their names when it loads a
    /// project; the module checks their values in `iom_instance_create`.
    #[serde(default, rename = "property")]
    pub properties: Vec<PropertySpec>,
    #[serde(default, rename = "trigger")]
    pub triggers: Vec<TriggerSpec>,
    #[serde(default, rename = "action")]
    pub actions: Vec<ActionSpec>,
    #[serde(default, rename = "status")]
    pub status: Vec<StatusSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModuleInfo {
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// A property of an instance, trigger or action.
#[derive(Debug, Clone, Deserialize)]
pub struct PropertySpec {
    pub name: String,
    /// "string", "int", "bool", "enum" in the wsio manifest; other modules may
    /// use other names, which the host passes through unchecked.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The section of a form it is shown in ("Connection", "Security"...);
    /// None for a module that does not group its properties.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub editor: Option<String>,
    /// Secret values (bearer tokens, passwords) never appear in host logs or
    /// in the recent-events ring.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub options: Vec<String>,
    /// Any TOML value; the status page pre-fills its forms with it.
    #[serde(default)]
    pub default: Option<toml::Value>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TriggerSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Fires for each message the connection receives, with the message as
    /// its data (the loop warning tests such wires).
    #[serde(default)]
    pub on_message: bool,
    #[serde(default, rename = "property")]
    pub properties: Vec<PropertySpec>,
    #[serde(default, rename = "variable")]
    pub variables: Vec<VariableSpec>,
}

/// A trigger variable: what `<number>` in a wired action's properties
/// stands for.
#[derive(Debug, Clone, Deserialize)]
pub struct VariableSpec {
    /// 1, 2, ...; 0 for a variable that always comes last (its number
    /// depends on the trigger's properties, e.g. after regex captures).
    pub number: usize,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

impl TriggerSpec {
    /// `<1> "Message", <2> "Message Type"`: the placeholders a trigger
    /// giving `count` variables fills, named from the manifest where it
    /// names them.
    /// The manifest's variable `<n>` of a trigger giving `count` variables:
    /// numbered ones by number, and the one numbered 0 (always last) as
    /// `<count>`.
    pub fn variable(&self, n: usize, count: usize) -> Option<&VariableSpec> {
        match self.variables.iter().find(|v| v.number == 0) {
            Some(last) if n == count => Some(last),
            _ => self.variables.iter().find(|v| v.number == n),
        }
    }

    pub fn placeholders(&self, count: usize) -> String {
        (1..=count)
            .map(|n| match self.variable(n, count) {
                Some(v) => format!("<{n}> {:?}", v.name),
                None => format!("<{n}>"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActionSpec {
    pub name: String,
    /// The property whose value (placeholders filled) the action sends to
    /// the server, if it sends one (the loop warning tests it).
    #[serde(default)]
    pub sends: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "property")]
    pub properties: Vec<PropertySpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusSpec {
    pub key: String,
    #[serde(default)]
    pub label: String,
}

impl ModuleManifest {
    /// Parses manifest text; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<ModuleManifest, String> {
        toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            format!("{place}{}", e.message())
        })
    }

    pub fn trigger(&self, name: &str) -> Option<&TriggerSpec> {
        self.triggers.iter().find(|t| t.name == name)
    }

    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// "Connected, Disconnected, ..." for error messages that list what exists.
    pub fn trigger_names(&self) -> String {
        quoted_list(self.triggers.iter().map(|t| t.name.as_str()))
    }

    pub fn action_names(&self) -> String {
        quoted_list(self.actions.iter().map(|a| a.name.as_str()))
    }

    /// The label of a status variable; its key if the manifest has none.
    pub fn status_label<'a>(&'a self, key: &'a str) -> &'a str {
        self.status
            .iter()
            .find(|s| s.key == key && !s.label.is_empty())
            .map_or(key, |s| s.label.as_str())
    }
}

impl ActionSpec {
    pub fn property(&self, name: &str) -> Option<&PropertySpec> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// `"a", "b"` or `(none)`: the list of names a user can choose from.
pub fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    if list.is_empty() {
        "(none)".to_string()
    } else {
        list.join(", ")
    }
}

/// 1-based line and column (in characters) of a byte offset, for error
/// messages that point into a TOML file. Offsets past the end or inside a
/// character are clamped rather than trusted.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wsio_manifest() {
        let manifest = ModuleManifest::parse(include_str!("../../wsio/module.toml")).unwrap();
        assert_eq!(manifest.module.name, "WebSocket Client");
        assert!(manifest.trigger("Messages Received").is_some());
        let connect = manifest.action("Connect").unwrap();
        assert!(connect.property("Bearer Token").unwrap().secret);
        let send = manifest.action("Send Message").unwrap();
        assert!(!send.property("Message").unwrap().secret);
        let keys: Vec<&str> = manifest.status.iter().map(|s| s.key.as_str()).collect();
        assert!(
            keys.starts_with(&["ConnectionStatus", "LastSent", "LastReceived"]),
            "{keys:?}"
        );
        assert_eq!(manifest.status_label("LastSent"), "Last Sent");
        assert_eq!(manifest.status_label("NoSuchKey"), "NoSuchKey");
    }

    #[test]
    fn instance_properties_carry_their_group_and_a_manifest_without_groups_works() {
        let manifest = ModuleManifest::parse(include_str!("../../wsio/module.toml")).unwrap();
        let group = |name: &str| {
            let property = manifest.properties.iter().find(|p| p.name == name);
            property.and_then(|p| p.group.clone())
        };
        assert_eq!(group("Hostname").as_deref(), Some("Connection"));
        assert_eq!(group("Password").as_deref(), Some("Security"));
        assert!(manifest.properties.iter().all(|p| p.group.is_some()));

        let plain = ModuleManifest::parse(
            "[module]\nname = \"m\"\n[[property]]\nname = \"Address\"\ntype = \"string\"\n",
        )
        .unwrap();
        assert_eq!(plain.properties[0].group, None);
    }

    #[test]
    fn a_manifest_without_module_table_is_refused_with_the_reason() {
        let err = ModuleManifest::parse("[[trigger]]\nname = \"x\"\n").unwrap_err();
        assert!(err.contains("module"), "{err}");
    }

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 1000), (3, 1));
    }
}
