//! Brings a project up, runs it, and brings it down: the order a controller
//! must keep so that it never runs half-configured.
//!
//! 1. check the project file's structure (no module needed);
//! 2. load each distinct module once and check every trigger, action and
//!    property name against its manifest;
//! 3. prepare every wire's trigger test (the module compiles them) and
//!    check that the wire's actions use only the placeholders it fills;
//! 4. bind the HTTP port, then create the instances — if one is refused,
//!    the ones created are destroyed and nothing has started;
//! 5. serve HTTP, run the startup actions, and run the engine until Ctrl-C
//!    or SIGTERM;
//! 6. stop HTTP, destroy every instance (each closes with 1000), and log
//!    what the instances reported while closing.
//!
//! `check` (`wsio check`) goes through the same code up to the startup
//! actions, without binding HTTP, and stops there: every message a run
//! would print at load, and no connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::abi::{Module, PreparedTrigger};
use super::engine::{Engine, EventQueue, Wire};
use super::event_path::{Counters, InstanceEvents, WireTest};
use super::http::{AccessOptions, HttpListener};
use super::project::{ActionDecl, Project, ProjectError, properties_json};
use super::state::{ActionCall, HostState, LoadedModule, RunningInstance};

/// The file name of this crate's module (`libwsio.so` on Linux).
pub fn module_file_name() -> String {
    format!(
        "{}wsio{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// This crate's module: next to the running executable, where `cargo build`
/// and `cargo run` put both (`target/<profile>/`) and where an install puts
/// them side by side. `cargo test` builds the module only into
/// `target/<profile>/deps/` and leaves any copy beside the executable as it
/// was, possibly stale; so when both exist, the newer one is the module
/// built from the current source.
pub fn default_module_path() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the running executable to locate its module: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let beside = dir.join(module_file_name());
    let in_deps = dir.join("deps").join(module_file_name());
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok(match (modified(&beside), modified(&in_deps)) {
        (Some(b), Some(d)) if d > b => in_deps,
        (None, Some(_)) => in_deps,
        _ => beside,
    })
}

/// Where a project's modules are found.
pub struct LoadOptions {
    /// Relative `module = "..."` paths are resolved against this directory
    /// (the project file's), so a project can ship beside its modules.
    pub project_dir: PathBuf,
    /// Used for instances that name no module.
    pub default_module: PathBuf,
}

/// What `run` needs besides the project.
pub struct RunOptions {
    pub load: LoadOptions,
    /// Where to serve HTTP, e.g. 127.0.0.1:8080 (port 0: any free port).
    pub http: String,
    /// The users file and TLS (`http::access`).
    pub access: AccessOptions,
}

/// Why `run` did not start (or stopped) the project.
#[derive(Debug)]
pub enum RunError {
    /// Problems in the project file, each located; nothing was started.
    Project(Vec<ProjectError>),
    /// Anything else (HTTP port busy, signal handler): the message says what.
    Other(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Project(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            RunError::Other(message) => f.write_str(message),
        }
    }
}

/// What a project holds, once it passed every load-time check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub instances: usize,
    pub wires: usize,
    pub startup_actions: usize,
}

/// Makes every check `run` makes before it serves anything (steps 1 to 4
/// and the actions' preparation, with the same messages), and no more:
/// the instances are created, which connects nothing (a connection starts
/// with a Connect action, and no startup action runs), then destroyed.
pub fn check(project: &Project, options: &LoadOptions) -> Result<Checked, RunError> {
    let prepared = prepare(project, options)?;
    let loaded = prepared.create(project, Arc::new(EventQueue::default()))?;
    let checked = Checked {
        instances: loaded.state.instances.len(),
        wires: loaded.wires.len(),
        startup_actions: loaded.startup.len(),
    };
    loaded.state.destroy_all();
    Ok(checked)
}

/// Runs `project` until Ctrl-C or SIGTERM. `ready` is called with the HTTP
/// address once everything has started (before the startup actions), to
/// print where to look.
pub fn run(
    project: &Project,
    options: &RunOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), RunError> {
    let prepared = prepare(project, &options.load)?;

    let listener = HttpListener::bind(&options.http, &options.access).map_err(RunError::Other)?;

    let queue = Arc::new(EventQueue::default());
    install_signal_handler(queue.clone())?;

    let Loaded {
        state,
        wires,
        startup,
        sinks,
    } = prepared.create(project, queue.clone())?;

    // On failure, dropping `state` destroys the instances.
    let http = listener.serve(state.clone()).map_err(RunError::Other)?;
    log::info!(
        "running {} with {} instance(s) and {} wire(s)",
        project.file,
        state.instances.len(),
        wires.len()
    );
    ready(http.addr());

    for (place, call) in &startup {
        // A failed startup action is logged and recorded; the project runs on,
        // as a controller's would.
        let _ = state.run_action(call, &[], place);
    }

    // From here each instance tests its wires where its triggers arrive
    // (before, the engine tested what fired).
    for sink in &sinks {
        let tests = wires
            .iter()
            .enumerate()
            .filter(|(_, w)| w.instance_id == sink.id)
            .map(|(index, w)| WireTest {
                index,
                number: w.number,
                trigger: w.trigger.clone(),
                test: w.test.clone(),
            })
            .collect();
        let _ = sink.wires.set(tests);
    }
    let mut engine = Engine::new(state.clone(), wires, queue);
    let reason = engine.run();
    log::info!("shutting down ({reason})");
    http.stop();
    state.destroy_all();
    engine.drain();
    log::info!("stopped");
    Ok(())
}

/// A project checked against its modules, before any instance exists.
struct Prepared {
    modules: Vec<Module>,
    /// Per instance, the index of its module.
    module_of_instance: Vec<usize>,
    /// Per wire, its trigger's test.
    tests: Vec<PreparedTrigger>,
}

/// A project's instances created (not connected yet), its wires and
/// startup actions prepared.
struct Loaded {
    state: Arc<HostState>,
    wires: Vec<Wire>,
    startup: Vec<(String, ActionCall)>,
    sinks: Vec<Arc<InstanceEvents>>,
}

/// Steps 1 to 3: everything that can be checked without an instance.
fn prepare(project: &Project, options: &LoadOptions) -> Result<Prepared, RunError> {
    let errors = project.check_structure();
    if !errors.is_empty() {
        return Err(RunError::Project(errors));
    }

    let (modules, module_of_instance) = load_modules(project, options)?;
    let module_of: HashMap<&str, &Module> = project
        .instances
        .iter()
        .zip(&module_of_instance)
        .map(|(decl, &m)| (decl.name.get_ref().as_str(), &modules[m]))
        .collect();
    let errors = project.check_against_manifests(|name| module_of.get(name).map(|m| m.manifest()));
    if !errors.is_empty() {
        return Err(RunError::Project(errors));
    }

    // Wire tests compiled before any instance exists, so a bad Match String
    // is reported while nothing runs yet.
    let mut tests = Vec::new();
    let mut errors = Vec::new();
    for (w, wire) in project.wires.iter().enumerate() {
        let module = module_of[wire.when.instance.get_ref().as_str()];
        let properties =
            serde_json::Value::Object(properties_json(&wire.when.properties)).to_string();
        match module.prepare_trigger(wire.when.trigger.get_ref(), &properties) {
            Ok(test) => tests.push(test),
            Err(message) => {
                let span = wire
                    .when
                    .properties
                    .as_ref()
                    .map_or(wire.when.trigger.span(), |p| p.span());
                errors.push(project.error_at(
                    span,
                    format!(
                        "wire {}: the module refused the trigger properties: {message}",
                        w + 1
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(RunError::Project(errors));
    }

    // A placeholder no variable fills (`<3>` where the trigger gives 2)
    // would be sent as written: refused now. The prepared trigger says how
    // many variables it gives (they depend on its properties: regex
    // groups); a module that does not say is taken at its manifest's word,
    // and one whose count varies with the data is not checked.
    for (w, (wire, test)) in project.wires.iter().zip(&tests).enumerate() {
        let module = module_of[wire.when.instance.get_ref().as_str()];
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
    if !errors.is_empty() {
        return Err(RunError::Project(errors));
    }
    Ok(Prepared {
        modules,
        module_of_instance,
        tests,
    })
}

impl Prepared {
    /// Step 4: creates the instances (which connects nothing) and prepares
    /// the wires' and startup actions; if the module refuses one, the
    /// instances created are destroyed.
    fn create(self, project: &Project, queue: Arc<EventQueue>) -> Result<Loaded, RunError> {
        let Prepared {
            modules,
            module_of_instance,
            tests,
        } = self;
        let mut instances = Vec::new();
        let mut sinks = Vec::new();
        for (index, decl) in project.instances.iter().enumerate() {
            // Ids are positions from 1 (the ABI reserves 0), stable across runs
            // of the same project, so /io_modules ids mean the same thing.
            let id = index as u64 + 1;
            let properties =
                serde_json::Value::Object(properties_json(&decl.properties)).to_string();
            let module = &modules[module_of_instance[index]];
            let counters = Arc::new(Counters::new(
                module.manifest().triggers.iter().map(|t| t.name.as_str()),
            ));
            let sink = Arc::new(InstanceEvents::new(
                id,
                decl.name.get_ref(),
                queue.clone(),
                counters.clone(),
                module.has_flow_control(),
            ));
            match module.create_instance(id, &properties, sink.clone()) {
                Ok(instance) => {
                    log::debug!("{}: created (instance id {id})", decl.name.get_ref());
                    sinks.push(sink);
                    instances.push(RunningInstance {
                        name: decl.name.get_ref().clone(),
                        module: module_of_instance[index],
                        instance,
                        counters,
                    });
                }
                Err(message) => {
                    let span = decl
                        .properties
                        .as_ref()
                        .map_or(decl.name.span(), |p| p.span());
                    // Dropping `instances` destroys the ones already created.
                    drop(instances);
                    return Err(RunError::Project(vec![project.error_at(
                        span,
                        format!("instance {:?}: {message}", decl.name.get_ref()),
                    )]));
                }
            }
        }

        let state = Arc::new(HostState {
            modules: modules
                .into_iter()
                .enumerate()
                .map(|(i, module)| LoadedModule {
                    id: i as u64 + 1,
                    module,
                })
                .collect(),
            instances,
            recent: Default::default(),
            project: Some(project.clone()),
        });

        // Instances were checked to exist, so the lookups below cannot fail;
        // `filter_map` keeps that from being a panic all the same. Each action
        // is compiled once (`iom_action_prepare`): a wire runs it without JSON
        // per call, and what the module refuses is reported now, with its place
        // in the file, rather than at the first firing.
        let refused = std::cell::RefCell::new(Vec::new());
        let call = |(place, decl): (String, &ActionDecl)| {
            let index = state.instance_index(decl.instance.get_ref())?;
            let properties = properties_json(&decl.properties);
            let mut call = ActionCall::new(
                index,
                decl.action.get_ref(),
                &properties,
                state.manifest_of(index),
            );
            match state.instances[index]
                .instance
                .prepare_action(&call.action, &call.properties_json)
            {
                Ok(prepared) => call.prepared = prepared.map(Arc::new),
                Err(e) => {
                    let span = decl
                        .properties
                        .as_ref()
                        .map_or(decl.action.span(), |p| p.span());
                    refused.borrow_mut().push(project.error_at(
                        span,
                        format!("{place}: the module refused the action properties: {e}"),
                    ));
                }
            }
            Some((place, call))
        };
        let wires: Vec<Wire> = project
            .wires
            .iter()
            .zip(tests)
            .enumerate()
            .filter_map(|(w, (wire, test))| {
                let index = state.instance_index(wire.when.instance.get_ref())?;
                Some(Wire {
                    number: w + 1,
                    instance_id: state.instances[index].instance.id(),
                    trigger: wire.when.trigger.get_ref().clone(),
                    test: Arc::new(test),
                    actions: project
                        .wire_actions(w)
                        .into_iter()
                        .filter_map(call)
                        .collect(),
                    rate: Arc::default(),
                })
            })
            .collect();
        let startup: Vec<(String, ActionCall)> = project
            .startup_actions()
            .into_iter()
            .filter_map(call)
            .collect();
        let refused = refused.into_inner();
        if !refused.is_empty() {
            // Dropping `state` destroys the instances (none has connected yet).
            return Err(RunError::Project(refused));
        }
        // Each instance shows the wires its triggers start, should they loop.
        for instance in &state.instances {
            let rates = wires
                .iter()
                .filter(|w| w.instance_id == instance.instance.id())
                .map(|w| (w.number, w.rate.clone()))
                .collect();
            let _ = instance.counters.wire_rates.set(rates);
        }
        Ok(Loaded {
            state,
            wires,
            startup,
            sinks,
        })
    }
}

/// Loads each distinct module once. Returns the modules and, per instance,
/// the index of its module.
fn load_modules(
    project: &Project,
    options: &LoadOptions,
) -> Result<(Vec<Module>, Vec<usize>), RunError> {
    let mut modules: Vec<Module> = Vec::new();
    let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
    let mut module_of_instance = Vec::new();
    let mut errors = Vec::new();
    for decl in &project.instances {
        let path = match &decl.module {
            Some(module) => options.project_dir.join(module.get_ref()),
            None => options.default_module.clone(),
        };
        // The same file under two spellings is still one module.
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if let Some(&index) = by_path.get(&key) {
            module_of_instance.push(index);
            continue;
        }
        match Module::load(&path) {
            Ok(module) => {
                log::info!(
                    "loaded module {} {} from {}",
                    module.manifest().module.name,
                    module.manifest().module.version,
                    path.display()
                );
                by_path.insert(key, modules.len());
                module_of_instance.push(modules.len());
                modules.push(module);
            }
            Err(e) => {
                let span = decl.module.as_ref().map_or(decl.name.span(), |m| m.span());
                let hint = if decl.module.is_none() {
                    " (the default module is the one next to the wsio executable; build it with \
                     `cargo build`, or name one with module = \"path\")"
                } else {
                    ""
                };
                errors.push(project.error_at(
                    span,
                    format!("instance {:?}: {e}{hint}", decl.name.get_ref()),
                ));
                // Keep indices aligned; the run stops before they are used.
                module_of_instance.push(usize::MAX);
            }
        }
    }
    if errors.is_empty() {
        Ok((modules, module_of_instance))
    } else {
        Err(RunError::Project(errors))
    }
}

/// Ctrl-C and SIGTERM ask the engine to shut down cleanly; a second one
/// exits at once (for a module that does not close).
fn install_signal_handler(queue: Arc<EventQueue>) -> Result<(), RunError> {
    let signalled = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if signalled.swap(true, Ordering::SeqCst) {
            eprintln!("wsio: second interrupt, exiting without a clean shutdown");
            std::process::exit(130);
        }
        queue.shutdown("interrupted");
    })
    .map_err(|e| RunError::Other(format!("cannot install the Ctrl-C/SIGTERM handler: {e}")))
}
