//! Applying a project to the running host: at load (`wsio run`, `wsio
//! check`), and live (`PUT /project`, `POST /project/reload`, SIGHUP).
//!
//! Two steps, so nothing changes while an error remains:
//!
//! 1. [`stage`] makes every load-time check, in the order and with the
//!    messages of `wsio run` (structure; each module loaded once, on demand,
//!    and kept; names and types against the manifests; every wire's trigger
//!    prepared by its module; placeholders), then sorts the instances by
//!    name: one whose module and properties are unchanged is *kept* (the
//!    same instance, its connection untouched); a new or changed one is
//!    *created* now, beside the old one, which connects nothing; then every
//!    wire's and startup action is prepared on the instances it names. If
//!    anything is refused, the instances created are destroyed (dropping
//!    the [`Staged`]) and the running project is as it was.
//! 2. [`Staged::commit`] swaps the new configuration in (`HostState::config`)
//!    and the new wire set (`engine::Wiring`, see `engine` for why an event
//!    is never handled by half of one), destroys the changed and removed
//!    instances (each closes with 1000; what they report while closing is
//!    logged but runs no wire), runs the startup actions of the new and
//!    re-created instances only, and tells open status pages.
//!
//! Between the two, the caller may persist the project (`persist`): a
//! failure to write it drops the staged project, and nothing changed.
//! Instance ids are given once and never reused; a kept instance keeps its.
//! A rename is a remove and an add: instances are matched by name.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::abi::{ModuleSource, PreparedTrigger};
use super::engine::{Wire, WireSet};
use super::event_path::{Counters, InstanceEvents};
use super::loop_check::{self, LoopSample};
use super::project::{ActionDecl, Project, ProjectError, properties_json};
use super::state::{ActionCall, Config, HostState, LoadedModule, RunningInstance, Source, destroy};

/// What an apply did, by instance name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl Applied {
    pub fn to_json(&self) -> Value {
        json!({
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
        })
    }
}

/// A project checked and its new instances created, not yet in force.
/// Dropped uncommitted, it destroys the instances it created.
pub struct Staged<'s> {
    state: &'s HostState,
    project: Project,
    instances: Vec<Arc<RunningInstance>>,
    /// The ones created for this project (added or changed).
    created: Vec<Arc<RunningInstance>>,
    wires: Vec<Wire>,
    startup: Vec<(String, ActionCall)>,
    applied: Applied,
    /// Not errors: what the page shows beside an apply (a wire that would
    /// loop against an echo server).
    warnings: Vec<ProjectError>,
    committed: bool,
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // None of them connected (a connection starts with an action).
            destroy(&self.created);
        }
    }
}

/// Step 1 (see the module documentation). `source` says where modules
/// are found (the caller holds it locked: one apply at a time).
/// `samples` are messages to test the wires with for the loop warning
/// (`crate::loop_check`; the page's live test sends them).
pub fn stage<'s>(
    state: &'s HostState,
    project: Project,
    source: &Source,
    samples: &[LoopSample],
) -> Result<Staged<'s>, Vec<ProjectError>> {
    let modules = prepare_modules(state, &project, &source.project_dir, &source.default_module)?;
    // From here every problem is collected, not only the first step's: a
    // bad Match String, an instance the module refuses and an action it
    // refuses are all reported at once (the page shows each at its field).
    let (tests, mut errors) = prepare_wires(&project, &modules);
    let warnings = loop_warnings(&project, &modules, samples);

    let old = state.config();
    let mut applied = Applied::default();
    let mut staged = Staged {
        state,
        project,
        instances: Vec::new(),
        created: Vec::new(),
        wires: Vec::new(),
        startup: Vec::new(),
        applied: Applied::default(),
        warnings,
        committed: false,
    };
    let project = &staged.project;
    for (decl, module) in project.instances.iter().zip(&modules) {
        let name = decl.name.get_ref();
        let properties = properties_json(&decl.properties);
        if let Some(running) = old.instance(name) {
            if Arc::ptr_eq(&running.module, module) && running.properties == properties {
                applied.unchanged.push(name.clone());
                staged.instances.push(running.clone());
                continue;
            }
            applied.changed.push(name.clone());
        } else {
            applied.added.push(name.clone());
        }
        let id = state.next_id();
        let counters = Arc::new(Counters::new(
            module
                .module
                .manifest()
                .triggers
                .iter()
                .map(|t| t.name.as_str()),
        ));
        let sink = Arc::new(InstanceEvents::new(
            id,
            name,
            state.queue.clone(),
            counters.clone(),
            module.module.has_flow_control(),
            state.wiring.clone(),
        ));
        let text = Value::Object(properties.clone()).to_string();
        match module.module.create_instance(id, &text, sink) {
            Ok(instance) => {
                log::debug!("{name}: created (instance id {id})");
                let running = Arc::new(RunningInstance {
                    name: name.clone(),
                    module: module.clone(),
                    instance,
                    counters,
                    properties,
                });
                staged.created.push(running.clone());
                staged.instances.push(running);
            }
            Err(message) => {
                let span = decl
                    .properties
                    .as_ref()
                    .map_or(decl.name.span(), |p| p.span());
                errors.push(
                    project
                        .error_at(span, format!("instance {name:?}: {message}"))
                        .about_named_property(&decl.properties, &message),
                );
            }
        }
    }
    let new_names: HashSet<&str> = project
        .instances
        .iter()
        .map(|d| d.name.get_ref().as_str())
        .collect();
    applied.removed = old
        .instances
        .iter()
        .filter(|i| !new_names.contains(i.name.as_str()))
        .map(|i| i.name.clone())
        .collect();

    let (wires, startup, refused) = prepare_actions(project, &staged.instances, tests);
    errors.extend(refused);
    if !errors.is_empty() {
        // In the order of the project (the file's, or the JSON's).
        errors.sort_by_key(|e| e.span.as_ref().map_or(0, |s| s.start));
        // Dropping `staged` destroys the instances it created.
        return Err(errors);
    }
    staged.wires = wires;
    staged.startup = startup;
    staged.applied = applied;
    Ok(staged)
}

impl Staged<'_> {
    pub fn project(&self) -> &Project {
        &self.project
    }

    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    pub fn warnings(&self) -> &[ProjectError] {
        &self.warnings
    }

    /// How many instances, wires and startup actions it holds.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.instances.len(), self.wires.len(), self.startup.len())
    }

    /// Step 2 (see the module documentation).
    pub fn commit(self) -> Applied {
        let state = self.state;
        let (applied, startup) = self.install();
        run_startup(state, &startup);
        applied
    }

    /// Step 2 but the startup actions, which are returned (those of new
    /// and re-created instances) for [`run_startup`].
    pub fn install(mut self) -> (Applied, Vec<(String, ActionCall)>) {
        self.committed = true;
        let state = self.state;
        // Each instance shows the wires its triggers start, should they loop.
        for instance in &self.instances {
            let rates = self
                .wires
                .iter()
                .filter(|w| w.instance_id == instance.id())
                .map(|w| (w.number, w.rate.clone()))
                .collect();
            *instance
                .counters
                .wire_rates
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = rates;
        }
        let kept: HashSet<u64> = self.instances.iter().map(|i| i.id()).collect();
        let old = state.set_config(Config {
            instances: self.instances.clone(),
            project: Some(self.project.clone()),
        });
        let set = Arc::new(WireSet {
            wires: std::mem::take(&mut self.wires),
        });
        state.wiring.set(set.clone());
        // After the set: a trigger that just got wires is handled under the
        // old set (none) until its flag says so, never half and half.
        for instance in &self.instances {
            instance
                .counters
                .set_wired(|trigger| set.of(instance.id(), trigger).next().is_some());
        }
        let gone: Vec<Arc<RunningInstance>> = old
            .instances
            .iter()
            .filter(|i| !kept.contains(&i.id()))
            .cloned()
            .collect();
        for instance in &gone {
            state.retire(instance);
        }
        destroy(&gone);

        let fresh: HashSet<u64> = self.created.iter().map(|i| i.id()).collect();
        let startup = std::mem::take(&mut self.startup)
            .into_iter()
            .filter(|(_, call)| fresh.contains(&call.instance.id()))
            .collect();
        let applied = std::mem::take(&mut self.applied);
        state
            .recent
            .project_changed(json!({ "applied": applied.to_json() }));
        (applied, startup)
    }
}

/// Runs startup actions in order. A failed one is logged and recorded; the
/// project runs on, as a controller's would.
pub fn run_startup(state: &HostState, startup: &[(String, ActionCall)]) {
    for (place, call) in startup {
        let _ = state.run_action(call, &[], place);
    }
}

/// Steps 1 and 2 of a load: the structure, then each instance's module
/// (loaded on demand and kept), then names and types against the
/// manifests. Per instance, its module.
fn prepare_modules(
    state: &HostState,
    project: &Project,
    project_dir: &std::path::Path,
    default_module: &ModuleSource,
) -> Result<Vec<Arc<LoadedModule>>, Vec<ProjectError>> {
    let errors = project.check_structure();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut modules = Vec::new();
    let mut errors = Vec::new();
    for decl in &project.instances {
        let source = match &decl.module {
            Some(module) => ModuleSource::File(project_dir.join(module.get_ref())),
            None => default_module.clone(),
        };
        match state.module(&source) {
            Ok(module) => modules.push(module),
            Err(e) => {
                let span = decl.module.as_ref().map_or(decl.name.span(), |m| m.span());
                let hint = if decl.module.is_none() {
                    " (the default module is the libwsio.so next to the wsio executable, else \
                     the one built into it; name another with module = \"path\")"
                } else {
                    ""
                };
                errors.push(project.error_at(
                    span,
                    format!("instance {:?}: {e}{hint}", decl.name.get_ref()),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let module_of = |name: &str| {
        project
            .instances
            .iter()
            .position(|d| d.name.get_ref() == name)
            .map(|i| modules[i].module.manifest())
    };
    let errors = project.check_against_manifests(module_of);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(modules)
}

/// Step 3: every wire's trigger test, compiled by its module before any
/// instance exists (a bad Match String is reported while nothing changed),
/// and the placeholders its actions use.
/// Per wire its test (None where the module refused it), and the problems.
fn prepare_wires(
    project: &Project,
    modules: &[Arc<LoadedModule>],
) -> (Vec<Option<PreparedTrigger>>, Vec<ProjectError>) {
    let module_of = |name: &str| {
        project
            .instances
            .iter()
            .position(|d| d.name.get_ref() == name)
            .map(|i| &modules[i].module)
    };
    let mut tests = Vec::new();
    let mut errors = Vec::new();
    for (w, wire) in project.wires.iter().enumerate() {
        let Some(module) = module_of(wire.when.instance.get_ref()) else {
            tests.push(None);
            continue;
        };
        let properties = Value::Object(properties_json(&wire.when.properties)).to_string();
        match module.prepare_trigger(wire.when.trigger.get_ref(), &properties) {
            Ok(test) => tests.push(Some(test)),
            Err(message) => {
                tests.push(None);
                let span = wire
                    .when
                    .properties
                    .as_ref()
                    .map_or(wire.when.trigger.span(), |p| p.span());
                errors.push(
                    project
                        .error_at(
                            span,
                            format!(
                                "wire {}: the module refused the trigger properties: {message}",
                                w + 1
                            ),
                        )
                        .about_named_property(&wire.when.properties, &message),
                );
            }
        }
    }

    // A placeholder no variable fills (`<3>` where the trigger gives 2)
    // would be sent as written: refused now. The prepared trigger says how
    // many variables it gives (they depend on its properties: regex
    // groups); a module that does not say is taken at its manifest's word,
    // and one whose count varies with the data is not checked.
    for (w, (wire, test)) in project.wires.iter().zip(&tests).enumerate() {
        let (Some(module), Some(test)) = (module_of(wire.when.instance.get_ref()), test) else {
            continue;
        };
        let Some(trigger) = module.manifest().trigger(wire.when.trigger.get_ref()) else {
            continue;
        };
        let count = match test.variable_count() {
            None => trigger.variables.len(),
            Some(count) => match usize::try_from(count) {
                Ok(count) => count,
                Err(_) => continue,
            },
        };
        errors.extend(project.check_placeholders(w, trigger, count));
    }
    (tests, errors)
}

type Actions = Vec<(String, ActionCall)>;

/// Step 4's end: each wire's and startup action compiled once on the
/// instance it names (`iom_action_prepare`): a wire runs it without JSON per
/// call, and what the module refuses is reported now, with its place. A
/// wire without a test (refused) or an action on an instance that was not
/// created is left out; the caller has its error already.
fn prepare_actions(
    project: &Project,
    instances: &[Arc<RunningInstance>],
    tests: Vec<Option<PreparedTrigger>>,
) -> (Vec<Wire>, Actions, Vec<ProjectError>) {
    let find = |name: &str| instances.iter().find(|i| i.name == name);
    let mut refused = Vec::new();
    // Instances were checked to exist, so the lookups cannot fail;
    // `filter_map` keeps that from being a panic all the same.
    let mut call = |(place, decl): (String, &ActionDecl)| {
        let instance = find(decl.instance.get_ref())?;
        let properties = properties_json(&decl.properties);
        let mut call = ActionCall::new(instance, decl.action.get_ref(), &properties);
        match instance
            .instance
            .prepare_action(&call.action, &call.properties_json)
        {
            Ok(prepared) => call.prepared = prepared.map(Arc::new),
            Err(e) => {
                let span = decl
                    .properties
                    .as_ref()
                    .map_or(decl.action.span(), |p| p.span());
                let message = e.to_string();
                refused.push(
                    project
                        .error_at(
                            span,
                            format!("{place}: the module refused the action properties: {e}"),
                        )
                        .about_named_property(&decl.properties, &message),
                );
            }
        }
        Some((place, call))
    };
    let mut wires = Vec::new();
    for (w, (wire, test)) in project.wires.iter().zip(tests).enumerate() {
        let actions: Actions = project
            .wire_actions(w)
            .into_iter()
            .filter_map(&mut call)
            .collect();
        let (Some(instance), Some(test)) = (find(wire.when.instance.get_ref()), test) else {
            continue;
        };
        wires.push(Wire {
            number: w + 1,
            instance_id: instance.id(),
            counters: instance.counters.clone(),
            trigger: wire.when.trigger.get_ref().clone(),
            test,
            actions,
            rate: Arc::default(),
        });
    }
    let startup: Actions = project
        .startup_actions()
        .into_iter()
        .filter_map(&mut call)
        .collect();
    (wires, startup, refused)
}

/// The loop warnings of `project` (`crate::loop_check`), each located at
/// the sent property of the action that would loop.
fn loop_warnings(
    project: &Project,
    modules: &[Arc<LoadedModule>],
    samples: &[LoopSample],
) -> Vec<ProjectError> {
    let module_of = |name: &str| {
        project
            .instances
            .iter()
            .position(|d| d.name.get_ref() == name)
            .and_then(|i| modules.get(i))
            .map(|m| &m.module)
    };
    loop_check::loop_warnings(project, module_of, samples)
        .into_iter()
        .filter_map(|warning| {
            let (_, action) = project
                .wire_actions(warning.wire)
                .into_iter()
                .nth(warning.action)?;
            let span = action
                .properties
                .as_ref()
                .map_or(action.action.span(), |p| p.span());
            let mut error = project.error_at(span, warning.message);
            error.property = Some(warning.property);
            Some(error)
        })
        .collect()
}
