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
//! Steps 1 to 4 are `apply::stage`, the same code a live apply (`PUT
//! /project`, SIGHUP) runs; at load every instance is new.
//!
//! `check` (`wsio check`) goes through the same code up to the startup
//! actions, without binding HTTP, and stops there: every message a run
//! would print at load, and no connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::abi::ModuleSource;
use super::apply;
use super::engine::{Engine, EventQueue};
use super::http::{AccessOptions, HttpListener};
use super::project::{Project, ProjectError};
use super::project_file;
use super::state::{HostState, Source};

/// The file name of this crate's module (`libwsio.so` on Linux).
pub fn module_file_name() -> String {
    format!(
        "{}wsio{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// This crate's module, for instances that name none: the `libwsio.so`
/// next to the running executable, where `cargo build` and `cargo run` put
/// both (`target/<profile>/`); failing that, the module linked into the
/// executable (after `cargo install`, or from the Debian package), so that
/// `wsio` works on its own. `cargo test` builds the module only into
/// `target/<profile>/deps/` and leaves any copy beside the executable as it
/// was, possibly stale; so when both exist, the newer one is the module
/// built from the current source.
pub fn default_module() -> Result<ModuleSource, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the running executable to locate its module: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let beside = dir.join(module_file_name());
    let in_deps = dir.join("deps").join(module_file_name());
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok(match (modified(&beside), modified(&in_deps)) {
        (Some(b), Some(d)) if d > b => ModuleSource::File(in_deps),
        (Some(_), _) => ModuleSource::File(beside),
        (None, Some(_)) => ModuleSource::File(in_deps),
        (None, None) => ModuleSource::BuiltIn,
    })
}

/// Where a project's modules are found.
pub struct LoadOptions {
    /// Relative `module = "..."` paths are resolved against this directory
    /// (the project file's), so a project can ship beside its modules.
    pub project_dir: PathBuf,
    /// Used for instances that name no module.
    pub default_module: ModuleSource,
}

/// What `run` needs besides the project.
pub struct RunOptions {
    pub load: LoadOptions,
    /// Where to serve HTTP, e.g. 127.0.0.1:8080 (port 0: any free port).
    pub http: String,
    /// The users file and TLS (`http::access`).
    pub access: AccessOptions,
    /// The project's file; None for the built-in demo.
    pub file: Option<ProjectFile>,
}

/// A project file as read: an apply rewrites it, SIGHUP re-reads it.
pub struct ProjectFile {
    /// Absolute.
    pub path: PathBuf,
    /// As read (an apply refuses to overwrite a file changed since).
    pub bytes: Vec<u8>,
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
    let state = HostState::new(Arc::new(EventQueue::default()), source(options, None));
    let source = state.source.lock().unwrap_or_else(|e| e.into_inner());
    let staged = apply::stage(&state, project.clone(), &source, &[]).map_err(RunError::Project)?;
    log_warnings(&staged);
    let (instances, wires, startup_actions) = staged.counts();
    // Dropping it destroys the instances it created.
    drop(staged);
    Ok(Checked {
        instances,
        wires,
        startup_actions,
    })
}

/// What the project's checks warn of (a wire that would loop against an
/// echo server): said, not refused.
fn log_warnings(staged: &apply::Staged<'_>) {
    for warning in staged.warnings() {
        log::warn!("{warning}");
    }
}

fn source(options: &LoadOptions, file: Option<&ProjectFile>) -> Source {
    Source {
        file: file.map(|f| f.path.clone()),
        loaded: file.map(|f| f.bytes.clone()).unwrap_or_default(),
        project_dir: options.project_dir.clone(),
        default_module: options.default_module.clone(),
    }
}

/// Runs `project` until Ctrl-C or SIGTERM. `ready` is called with the HTTP
/// address once everything has started (before the startup actions), to
/// print where to look.
pub fn run(
    project: &Project,
    options: &RunOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), RunError> {
    let queue = Arc::new(EventQueue::default());
    let state = Arc::new(HostState::new(
        queue.clone(),
        source(&options.load, options.file.as_ref()),
    ));
    let startup = {
        let source = state.source.lock().unwrap_or_else(|e| e.into_inner());
        // Steps 1 to 4; dropped on failure, the instances created are
        // destroyed and nothing has started.
        let staged =
            apply::stage(&state, project.clone(), &source, &[]).map_err(RunError::Project)?;
        log_warnings(&staged);
        let listener =
            HttpListener::bind(&options.http, &options.access).map_err(RunError::Other)?;
        let (_, startup) = staged.install();
        (listener, startup)
    };
    let (listener, startup) = startup;
    let signals = install_signal_handler(queue.clone(), &state)?;

    // On failure, dropping `state` destroys the instances.
    let http = listener.serve(state.clone()).map_err(RunError::Other)?;
    let config = state.config();
    log::info!(
        "running {} with {} instance(s) and {} wire(s)",
        project.file,
        config.instances.len(),
        project.wires.len()
    );
    drop(config);
    ready(http.addr());

    apply::run_startup(&state, &startup);
    drop(startup);

    let mut engine = Engine::new(state.clone(), queue);
    let reason = engine.run();
    log::info!("shutting down ({reason})");
    signals.close();
    http.stop();
    state.destroy_all();
    engine.drain();
    log::info!("stopped");
    Ok(())
}

/// Ctrl-C and SIGTERM ask the engine to shut down cleanly; a second one
/// exits at once (for a module that does not close). SIGHUP re-reads the
/// project file and applies it (`project_file::reload`), as systemd's
/// `ExecReload=kill -HUP $MAINPID` expects; what it did, or why it changed
/// nothing, is logged. One thread waits for all three (`signal-hook`).
fn install_signal_handler(
    queue: Arc<EventQueue>,
    state: &Arc<HostState>,
) -> Result<signal_hook::iterator::Handle, RunError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| RunError::Other(format!("cannot install the signal handlers: {e}")))?;
    let handle = signals.handle();
    let state = Arc::downgrade(state);
    std::thread::Builder::new()
        .name("wsio-signals".into())
        .spawn(move || {
            let mut interrupted = false;
            for signal in signals.forever() {
                if signal != SIGHUP {
                    if interrupted {
                        eprintln!("wsio: second interrupt, exiting without a clean shutdown");
                        std::process::exit(130);
                    }
                    interrupted = true;
                    queue.shutdown("interrupted");
                    continue;
                }
                let Some(state) = state.upgrade() else { return };
                log::info!("SIGHUP: re-reading the project file");
                if let Err(e) = project_file::reload(&state) {
                    for line in e.to_string().lines() {
                        log::error!("SIGHUP: nothing changed: {line}");
                    }
                }
            }
        })
        .map_err(|e| RunError::Other(format!("cannot start the signal thread: {e}")))?;
    Ok(handle)
}
