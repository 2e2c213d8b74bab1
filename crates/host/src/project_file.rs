//! Editing the running project and its file: `PUT /project` (validate,
//! apply live, persist), `POST /project/check`, `POST /project/reload` and
//! SIGHUP (re-read the file), `POST /project/save` (the demo's "save to a
//! path"). Every one holds `HostState::source` for its whole run, so they
//! happen one at a time.
//!
//! Persisting keeps the file hand-editable: the file as loaded is edited
//! with `toml_edit`, so comments and the order of what did not change stay
//! as they were. Instances are matched by name (a changed property is set
//! where it was, a removed one taken out), wires and startup actions by
//! position (one that did not change is left exactly as written). The new
//! text is written atomically: a temporary file in the same folder, mode
//! 0600 (it may hold secrets), fsync, rename over the file, fsync of the
//! folder; the previous version is kept as `<file>.bak` (also 0600). A file
//! whose bytes changed on disk since it was loaded or last saved is not
//! overwritten: the apply is refused (409) before anything changes.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use toml_edit::{DocumentMut, Item};

use super::apply::{self, Applied};
use super::loop_check::LoopSample;
use super::private_file;
use super::project::from_json;
use super::project::{ActionDecl, Project, ProjectError, properties_json};
use super::state::{HostState, Source};

/// Why an edit did not happen; nothing changed.
#[derive(Debug)]
pub enum EditError {
    /// 400: problems in the project, each `{"at","path","message"}`.
    Invalid(Vec<Value>),
    /// 409: the file changed on disk, or the save target exists.
    Conflict(String),
    /// 400: what was asked cannot be done (reload without a file).
    Refused(String),
    /// 500: the file could not be read or written.
    Io(String),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Invalid(errors) => {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["at"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                f.write_str(&lines.join("\n"))
            }
            EditError::Conflict(m) | EditError::Refused(m) | EditError::Io(m) => f.write_str(m),
        }
    }
}

/// What an apply did.
pub struct Outcome {
    pub applied: Applied,
    /// The file written; None when none was (the demo, a reload).
    pub saved: Option<PathBuf>,
    pub warnings: Vec<Value>,
}

/// `POST /project/check`: the warnings, or every error; changes nothing.
pub fn check(state: &HostState, body: &Value) -> Result<Vec<Value>, EditError> {
    let source = state.source.lock().unwrap_or_else(|e| e.into_inner());
    let (project, _) = from_body(state, &source, body)?;
    let samples = samples(body, project.wires.len())?;
    let staged = apply::stage(state, project.clone(), &source, &samples)
        .map_err(|e| invalid(&project, &e, false))?;
    // Dropping it destroys the instances it created: nothing changed.
    Ok(located(&project, staged.warnings(), false))
}

/// `PUT /project`: validate, apply live, persist.
pub fn put(state: &HostState, body: &Value) -> Result<Outcome, EditError> {
    let mut source = state.source.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(file) = &source.file {
        let on_disk = std::fs::read(file).ok();
        if on_disk.as_deref() != Some(source.loaded.as_slice()) {
            return Err(EditError::Conflict(format!(
                "{} changed on disk since it was loaded; reload it (POST /project/reload) to \
                 take what was written there, then make your changes again: nothing was changed",
                file.display()
            )));
        }
    }
    let (project, doc) = from_body(state, &source, body)?;
    let samples = samples(body, project.wires.len())?;
    let staged = apply::stage(state, project.clone(), &source, &samples)
        .map_err(|e| invalid(&project, &e, false))?;
    let saved = match source.file.clone() {
        Some(file) => {
            let text = updated_text(&source.loaded, &doc, staged.project())?;
            write_atomic(&file, text.as_bytes(), Some(&source.loaded))
                .map_err(|e| EditError::Io(format!("cannot write {}: {e}", file.display())))?;
            source.loaded = text.into_bytes();
            Some(file)
        }
        None => None,
    };
    let warnings = located(&project, staged.warnings(), false);
    let applied = staged.commit();
    log::info!("applied the project: {}", describe(&applied));
    Ok(Outcome {
        applied,
        saved,
        warnings,
    })
}

/// `POST /project/reload`, SIGHUP: re-reads the project file and applies it
/// with the same rules as `PUT /project`.
pub fn reload(state: &HostState) -> Result<Outcome, EditError> {
    let mut source = state.source.lock().unwrap_or_else(|e| e.into_inner());
    let Some(file) = source.file.clone() else {
        return Err(EditError::Refused(
            "the host runs the built-in demo, which has no project file to reload; save it \
             first (POST /project/save {\"path\":\"project.toml\"})"
                .into(),
        ));
    };
    let bytes = std::fs::read(&file)
        .map_err(|e| EditError::Io(format!("cannot read {}: {e}", file.display())))?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| {
        EditError::Invalid(vec![json!({
            "at": file.display().to_string(),
            "path": [],
            "message": "the project file is not UTF-8 text",
        })])
    })?;
    let project = Project::parse(&file.display().to_string(), &text).map_err(|e| {
        EditError::Invalid(vec![json!({
            "at": e.to_string().trim_end_matches(&e.message).trim_end_matches(": ").to_string(),
            "path": [],
            "line": e.line,
            "message": e.message,
        })])
    })?;
    let staged = apply::stage(state, project.clone(), &source, &[])
        .map_err(|e| invalid(&project, &e, true))?;
    source.loaded = bytes;
    let warnings = located(&project, staged.warnings(), true);
    let applied = staged.commit();
    log::info!("reloaded {}: {}", file.display(), describe(&applied));
    for warning in &warnings {
        log::warn!(
            "{}: {}",
            warning["at"].as_str().unwrap_or(""),
            warning["message"].as_str().unwrap_or("")
        );
    }
    Ok(Outcome {
        applied,
        saved: None,
        warnings,
    })
}

/// `POST /project/save`: writes the running project to `path` (relative to
/// the working directory), which is the project file from then on.
pub fn save(state: &HostState, path: &Path, overwrite: bool) -> Result<PathBuf, EditError> {
    let mut source = state.source.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::path::absolute(path)
        .map_err(|e| EditError::Refused(format!("{} is not a usable path: {e}", path.display())))?;
    let previous = std::fs::read(&file).ok();
    if previous.is_some() && !overwrite {
        return Err(EditError::Conflict(format!(
            "{} exists; send \"overwrite\": true to replace it (the old one is kept as .bak)",
            file.display()
        )));
    }
    if file.is_dir() {
        return Err(EditError::Refused(format!(
            "{} is a folder; name a file such as project.toml",
            file.display()
        )));
    }
    let config = state.config();
    let plain = config.project.as_ref().map_or_else(
        || json!({ "instances": [], "wires": [], "startup": [] }),
        plain_json,
    );
    let doc = from_json::document(&plain, None).map_err(EditError::Invalid)?;
    let text = doc.to_string();
    write_atomic(&file, text.as_bytes(), previous.as_deref())
        .map_err(|e| EditError::Io(format!("cannot write {}: {e}", file.display())))?;
    log::info!("saved the project to {}", file.display());
    source.project_dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    source.file = Some(file.clone());
    source.loaded = text.into_bytes();
    Ok(file)
}

fn describe(applied: &Applied) -> String {
    let part = |what: &str, names: &[String]| {
        (!names.is_empty()).then(|| format!("{what} {}", names.join(", ")))
    };
    let parts: Vec<String> = [
        part("added", &applied.added),
        part("changed", &applied.changed),
        part("removed", &applied.removed),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "no instance changed".into()
    } else {
        parts.join("; ")
    }
}

/// The JSON body as a project (and its document), with the running
/// project's secrets where it sends `{"secret":"set"}`.
fn from_body(
    state: &HostState,
    source: &Source,
    body: &Value,
) -> Result<(Project, DocumentMut), EditError> {
    let config = state.config();
    let doc = from_json::document(body, config.project.as_ref()).map_err(EditError::Invalid)?;
    let name = source
        .file
        .as_ref()
        .map_or_else(|| "the project".to_string(), |f| f.display().to_string());
    let project = Project::parse(&name, &doc.to_string()).map_err(|e| {
        EditError::Invalid(vec![
            json!({ "at": "the project", "path": [], "message": e.message }),
        ])
    })?;
    Ok((project, doc))
}

fn invalid(project: &Project, errors: &[ProjectError], with_line: bool) -> EditError {
    EditError::Invalid(located(project, errors, with_line))
}

/// Problems as `{"at","path","message"}` (`Project::locate`).
/// The body's `"samples"` (`[{"wire":2,"message":"temp 21","binary":false}]`,
/// wires numbered from 1): messages the loop warning tests the wires with.
fn samples(body: &Value, wires: usize) -> Result<Vec<LoopSample>, EditError> {
    let Some(list) = body.get("samples") else {
        return Ok(Vec::new());
    };
    let bad = |i: usize, what: &str| {
        EditError::Invalid(vec![json!({
            "at": format!("sample {}", i + 1),
            "path": ["samples", i],
            "message": format!(
                "{what}; a sample is {{\"wire\":2,\"message\":\"temp 21\",\"binary\":false}} \
                 (the wire numbered from 1, binary optional)"
            ),
        })])
    };
    let Value::Array(list) = list else {
        return Err(bad(0, "\"samples\" must be a list"));
    };
    list.iter()
        .enumerate()
        .map(|(i, sample)| {
            let wire = match sample.get("wire").and_then(Value::as_u64) {
                Some(n) if n >= 1 && (n as usize) <= wires => n as usize - 1,
                _ => {
                    return Err(bad(
                        i,
                        &format!("\"wire\" must be a wire number from 1 to {wires}"),
                    ));
                }
            };
            let Some(message) = sample.get("message").and_then(Value::as_str) else {
                return Err(bad(i, "\"message\" must be a string"));
            };
            let binary = match sample.get("binary") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad(i, "\"binary\" must be true or false")),
            };
            Ok(LoopSample {
                wire,
                message: message.as_bytes().to_vec(),
                binary,
            })
        })
        .collect()
}

fn located(project: &Project, problems: &[ProjectError], with_line: bool) -> Vec<Value> {
    problems
        .iter()
        .map(|e| project.locate(e, with_line))
        .collect()
}

/// The project as JSON with its secrets (never sent anywhere: it becomes a
/// file), in the shape of `GET /project`.
fn plain_json(project: &Project) -> Value {
    let action = |a: &ActionDecl| {
        json!({
            "instance": a.instance.get_ref(),
            "action": a.action.get_ref(),
            "properties": properties_json(&a.properties),
        })
    };
    let instances: Vec<Value> = project
        .instances
        .iter()
        .map(|d| {
            let mut object = json!({
                "name": d.name.get_ref(),
                "properties": properties_json(&d.properties),
            });
            if let Some(module) = &d.module {
                object["module"] = module.get_ref().as_str().into();
            }
            object
        })
        .collect();
    let wires: Vec<Value> = project
        .wires
        .iter()
        .map(|w| {
            json!({
                "when": {
                    "instance": w.when.instance.get_ref(),
                    "trigger": w.when.trigger.get_ref(),
                    "properties": properties_json(&w.when.properties),
                },
                "then": w.then.0.iter().map(action).collect::<Vec<_>>(),
            })
        })
        .collect();
    let startup: Vec<Value> = project.startup.iter().map(action).collect();
    json!({ "instances": instances, "wires": wires, "startup": startup })
}

/// The file as loaded, edited to say what `new_doc` says (see the module
/// documentation for what is kept).
fn updated_text(loaded: &[u8], new_doc: &DocumentMut, new: &Project) -> Result<String, EditError> {
    let text = String::from_utf8_lossy(loaded);
    let (Ok(mut doc), Ok(old)) = (text.parse::<DocumentMut>(), Project::parse("", &text)) else {
        // The file as loaded always parsed; should it not, it is rewritten.
        return Ok(new_doc.to_string());
    };
    merge_instances(&mut doc, &old, new_doc, new);
    merge_positional(&mut doc, new_doc, "wire", |w| {
        let same_when = old.wires.get(w).is_some_and(|o| {
            let n = &new.wires[w].when;
            o.when.instance.get_ref() == n.instance.get_ref()
                && o.when.trigger.get_ref() == n.trigger.get_ref()
                && properties_json(&o.when.properties) == properties_json(&n.properties)
        });
        let same_then = old
            .wires
            .get(w)
            .is_some_and(|o| same_actions(&o.then.0, &new.wires[w].then.0));
        (same_when, same_then)
    });
    merge_positional(&mut doc, new_doc, "startup", |s| {
        let same = old
            .startup
            .get(s)
            .is_some_and(|o| same_actions(std::slice::from_ref(o), &new.startup[s..=s]));
        (same, same)
    });
    Ok(doc.to_string())
}

fn same_actions(old: &[ActionDecl], new: &[ActionDecl]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(o, n)| {
            o.instance.get_ref() == n.instance.get_ref()
                && o.action.get_ref() == n.action.get_ref()
                && properties_json(&o.properties) == properties_json(&n.properties)
        })
}

/// `[[instance]]` tables in the new order, each old one kept (comments and
/// all) and edited property by property.
fn merge_instances(doc: &mut DocumentMut, old: &Project, new_doc: &DocumentMut, new: &Project) {
    let new_tables = new_doc
        .get("instance")
        .and_then(Item::as_array_of_tables)
        .cloned()
        .unwrap_or_default();
    let Some(old_tables) = doc
        .get("instance")
        .and_then(Item::as_array_of_tables)
        .cloned()
    else {
        set_or_remove(doc, "instance", Item::ArrayOfTables(new_tables));
        return;
    };
    let mut merged = toml_edit::ArrayOfTables::new();
    for (decl, new_table) in new.instances.iter().zip(new_tables.iter()) {
        let name = decl.name.get_ref();
        let Some(index) = old.instances.iter().position(|o| o.name.get_ref() == name) else {
            merged.push(new_table.clone());
            continue;
        };
        let Some(mut table) = old_tables.get(index).cloned() else {
            merged.push(new_table.clone());
            continue;
        };
        let old_decl = &old.instances[index];
        if old_decl.module.as_ref().map(|m| m.get_ref())
            != decl.module.as_ref().map(|m| m.get_ref())
        {
            match new_table.get("module") {
                Some(module) => {
                    table.insert("module", module.clone());
                }
                None => {
                    table.remove("module");
                }
            }
        }
        let old_properties = properties_json(&old_decl.properties);
        let new_properties = properties_json(&decl.properties);
        if old_properties != new_properties {
            match (
                table
                    .get_mut("properties")
                    .and_then(Item::as_table_like_mut),
                new_table.get("properties").and_then(Item::as_table_like),
            ) {
                (Some(into), Some(from)) => {
                    for name in old_properties.keys() {
                        if !new_properties.contains_key(name) {
                            into.remove(name);
                        }
                    }
                    for (name, value) in from.iter() {
                        if old_properties.get(name) != new_properties.get(name) {
                            // The new value, with the old one's spacing and
                            // trailing comment.
                            let mut item = value.clone();
                            if let (Some(old), Some(new)) =
                                (into.get(name).and_then(Item::as_value), item.as_value_mut())
                            {
                                *new.decor_mut() = old.decor().clone();
                            }
                            into.insert(name, item);
                        }
                    }
                }
                (_, None) => {
                    table.remove("properties");
                }
                (None, Some(_)) => {
                    if let Some(properties) = new_table.get("properties") {
                        table.insert("properties", properties.clone());
                    }
                }
            }
        }
        merged.push(table);
    }
    set_or_remove(doc, "instance", Item::ArrayOfTables(merged));
}

/// `[[key]]` tables by position: `same(index)` says whether the old
/// one's `when` and `then` (or, for a startup action, the whole) are
/// unchanged; changed parts are replaced, the table's comments kept.
fn merge_positional(
    doc: &mut DocumentMut,
    new_doc: &DocumentMut,
    key: &str,
    same: impl Fn(usize) -> (bool, bool),
) {
    let new_tables = new_doc
        .get(key)
        .and_then(Item::as_array_of_tables)
        .cloned()
        .unwrap_or_default();
    let Some(old_tables) = doc.get(key).and_then(Item::as_array_of_tables).cloned() else {
        set_or_remove(doc, key, Item::ArrayOfTables(new_tables));
        return;
    };
    let mut merged = toml_edit::ArrayOfTables::new();
    for (index, new_table) in new_tables.iter().enumerate() {
        let Some(old_table) = old_tables.get(index) else {
            merged.push(new_table.clone());
            continue;
        };
        let (first_same, second_same) = same(index);
        let mut table = old_table.clone();
        if key == "wire" {
            if !first_same {
                replace_key(&mut table, new_table, "when");
            }
            if !second_same {
                replace_key(&mut table, new_table, "then");
            }
        } else if !first_same {
            for field in ["instance", "action", "properties"] {
                replace_key(&mut table, new_table, field);
            }
        }
        merged.push(table);
    }
    set_or_remove(doc, key, Item::ArrayOfTables(merged));
}

fn replace_key(table: &mut toml_edit::Table, from: &toml_edit::Table, key: &str) {
    match from.get(key) {
        Some(item) => {
            table.insert(key, item.clone());
        }
        None => {
            table.remove(key);
        }
    }
}

fn set_or_remove(doc: &mut DocumentMut, key: &str, item: Item) {
    if item.as_array_of_tables().is_some_and(|t| t.is_empty()) {
        doc.remove(key);
    } else {
        doc.insert(key, item);
    }
}

/// Writes `bytes` to `path` atomically, mode 0600; `previous` (the file's
/// bytes before) is kept as `<path>.bak` first.
pub fn write_atomic(path: &Path, bytes: &[u8], previous: Option<&[u8]>) -> std::io::Result<()> {
    if let Some(previous) = previous {
        let mut bak = path.as_os_str().to_owned();
        bak.push(".bak");
        private_file::replace(Path::new(&bak), previous)?;
    }
    private_file::replace(path, bytes)
}
