//! `wsio`: the reference controller host, the way users and tests run an IO
//! module exactly as a controller would (see `host`). It also runs the local
//! demo WebSocket server and prints a module's manifest.
//!
//! `wsio` alone (or `cargo run --release`) runs the built-in demo: the demo
//! server plus `fixtures/projects/demo.toml`, with the HTTP API on
//! 127.0.0.1:8080.

#![deny(unsafe_code)]

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use clap::{Parser, Subcommand};
use wsio_host::abi::{Module, ModuleSource};
use wsio_host::controller::{self, LoadOptions, ProjectFile, RunError, RunOptions};
use wsio_host::demo_server::{DEFAULT_PORT, DemoServer, DemoServerConfig, TlsIdentity};
use wsio_host::http::{AccessOptions, TlsSource};
use wsio_host::project::Project;
use wsio_host::users::Role;

mod users_cli;

const DEFAULT_HTTP: &str = "127.0.0.1:8080";

/// The demo project, kept as a file so it can be read and run by hand too.
const DEMO_PROJECT: &str = include_str!("../../../fixtures/projects/demo.toml");

#[derive(Parser)]
#[command(
    name = "wsio",
    version,
    about = "A reference controller host for the wsio WebSocket Client IO module",
    long_about = "A reference controller host for the wsio WebSocket Client IO module.\n\n\
                  Loads IO modules through their C ABI (include/iom.h), runs a project of \
                  instances and wires, and serves the /io_modules API. With no command, runs \
                  the built-in demo (`wsio run`). Log detail: RUST_LOG=debug (default info)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a project file until Ctrl-C; without one, run the built-in demo
    /// against an embedded demo server.
    Run {
        /// The project file (TOML: [[instance]], [[wire]], [[startup]]).
        project: Option<PathBuf>,
        /// Where to serve the status page and the /io_modules API (port 0:
        /// any free port; the address is printed).
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_HTTP)]
        http: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Check a project file as `run` does at load (structure, manifests,
    /// every property through the module) without connecting anything;
    /// exit 0, or 1 with the messages `run` would print.
    Check {
        /// The project file.
        project: PathBuf,
    },
    /// Add or change a user of the web UI and API (password from a prompt,
    /// or --password-stdin), remove one, or list them.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Add an API token (printed once; only its hash is kept) or remove one.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the local demo WebSocket server (a stand-in for demo.piesocket.com).
    DemoServer {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)))]
        listen: SocketAddr,
        /// Serve wss:// with a fresh self-signed certificate (its PEM file is
        /// written to the temporary directory and printed).
        #[arg(long)]
        tls: bool,
    },
    /// Print a module's manifest (its triggers, actions and properties).
    Manifest {
        /// The module's shared library; default: the one next to this
        /// program, else the module built into it.
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
    },
}

/// Who may use the web UI and API, and over what.
#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    #[command(flatten)]
    users: UsersFileArg,
    /// Serve HTTPS with this certificate (PEM; with --tls-key).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// `self-signed`: serve HTTPS with a certificate made once and kept
    /// beside the users file (its SHA-256 fingerprint is printed).
    #[arg(long, value_name = "self-signed", value_parser = ["self-signed"])]
    tls: Option<String>,
}

#[derive(clap::Args, Clone, Default)]
struct UsersFileArg {
    /// The users file; default: users.toml beside the project file (for
    /// the demo, and for `wsio user`/`wsio token` without --project: in
    /// the working folder).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or change its role and password.
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        file: UsersLocation,
    },
    /// Remove a user (their sessions end at once).
    Remove {
        name: String,
        #[command(flatten)]
        file: UsersLocation,
    },
    /// List users and tokens with their roles.
    List {
        #[command(flatten)]
        file: UsersLocation,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Add an API token and print it (once).
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: Role,
        #[command(flatten)]
        file: UsersLocation,
    },
    /// Remove an API token (refused at once from then on).
    Remove {
        name: String,
        #[command(flatten)]
        file: UsersLocation,
    },
}

/// Which users file `wsio user`/`wsio token` change.
#[derive(clap::Args)]
struct UsersLocation {
    #[command(flatten)]
    users: UsersFileArg,
    /// Use the users file beside this project file.
    #[arg(long, value_name = "FILE", conflicts_with = "users")]
    project: Option<PathBuf>,
}

impl UsersLocation {
    fn path(&self) -> PathBuf {
        users_path(&self.users, self.project.as_deref())
    }
}

/// `--users`, or `users.toml` beside the project file, or in the working
/// folder.
fn users_path(arg: &UsersFileArg, project: Option<&Path>) -> PathBuf {
    match (&arg.users, project) {
        (Some(path), _) => path.clone(),
        (None, Some(project)) => project
            .parent()
            .map_or_else(PathBuf::new, Path::to_path_buf)
            .join("users.toml"),
        (None, None) => PathBuf::from("users.toml"),
    }
}

fn access_options(serve: &ServeArgs, project: Option<&Path>) -> AccessOptions {
    let users = users_path(&serve.users, project);
    let tls = match (&serve.tls_cert, &serve.tls_key, &serve.tls) {
        (Some(cert), Some(key), _) => Some(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (_, _, Some(_)) => Some(TlsSource::SelfSigned {
            dir: users
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        }),
        _ => None,
    };
    AccessOptions { users, tls }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let command = Cli::parse().command.unwrap_or(Command::Run {
        project: None,
        http: DEFAULT_HTTP.to_string(),
        serve: ServeArgs::default(),
    });
    let result = match command {
        Command::Run {
            project: Some(path),
            http,
            serve,
        } => run_project(&path, http, access_options(&serve, Some(&path))),
        Command::Run {
            project: None,
            http,
            serve,
        } => run_demo(http, access_options(&serve, None)),
        Command::User { command } => users_cli::user(command),
        Command::Token { command } => users_cli::token(command),
        Command::Check { project } => check_project(&project),
        Command::DemoServer { listen, tls } => demo_server(listen, tls),
        Command::Manifest { module } => manifest(module),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            for line in message.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run_project(path: &Path, http: String, access: AccessOptions) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the project file {}: {e}", path.display()))?;
    let project = Project::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())?;
    let options = RunOptions {
        load: load_options(path)?,
        http,
        file: Some(ProjectFile {
            path: std::path::absolute(path)
                .map_err(|e| format!("cannot resolve the project file {}: {e}", path.display()))?,
            bytes: text.into_bytes(),
        }),
        access,
    };
    let scheme = scheme_of(&options.access);
    controller::run(&project, &options, |addr| print_addresses(scheme, addr)).map_err(describe)
}

/// Every check `run_project` makes before it starts anything, with the same
/// messages; connects nothing.
fn check_project(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the project file {}: {e}", path.display()))?;
    let project = Project::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())?;
    let checked = controller::check(&project, &load_options(path)?).map_err(describe)?;
    println!(
        "ok: {}, {}, {}",
        counted(checked.instances, "instance"),
        counted(checked.wires, "wire"),
        counted(checked.startup_actions, "startup action")
    );
    Ok(())
}

/// Modules named in the project file are found beside it.
fn load_options(path: &Path) -> Result<LoadOptions, String> {
    Ok(LoadOptions {
        project_dir: path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        default_module: controller::default_module()?,
    })
}

/// "1 wire", "2 wires".
fn counted(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn run_demo(http: String, access: AccessOptions) -> Result<(), String> {
    let server = start_demo_server()?;
    let port = server.local_addr().port();
    let mut project = Project::parse(
        "built-in demo project (fixtures/projects/demo.toml)",
        DEMO_PROJECT,
    )
    .map_err(|e| e.to_string())?;
    for instance in &mut project.instances {
        instance.set_property("Port", toml::Value::Integer(port.into()));
    }
    let options = RunOptions {
        load: LoadOptions {
            project_dir: PathBuf::from("."),
            default_module: controller::default_module()?,
        },
        http,
        file: None,
        access,
    };
    let scheme = scheme_of(&options.access);
    println!("demo server: {}", server.url("1", "demo"));
    let result = controller::run(&project, &options, |addr| {
        print_addresses(scheme, addr);
        println!(
            "try: curl -X POST '{scheme}://{addr}/io_modules/visitor/actions/Send%20Message' -d '{{\"Message\":\"ping\"}}'"
        );
    });
    // The server outlives the instances, so they close with 1000 to a peer.
    server.stop();
    result.map_err(describe)
}

/// The demo server on its usual port, or on any free one if that is taken
/// (e.g. a `wsio demo-server` is already running).
fn start_demo_server() -> Result<DemoServer, String> {
    let config = DemoServerConfig::default();
    match DemoServer::start(config.clone()) {
        Ok(server) => Ok(server),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            log::info!("port {DEFAULT_PORT} is in use; the demo server takes a free port instead");
            DemoServer::start(DemoServerConfig {
                listen: (Ipv4Addr::LOCALHOST, 0).into(),
                ..config
            })
            .map_err(|e| format!("cannot start the demo server: {e}"))
        }
        Err(e) => Err(format!(
            "cannot start the demo server on {}: {e}",
            config.listen
        )),
    }
}

/// Printed on stdout once the host runs; tests read the address from here.
fn print_addresses(scheme: &str, addr: SocketAddr) {
    println!("status page: {scheme}://{addr}/");
    println!("io_modules API: {scheme}://{addr}/io_modules");
}

fn scheme_of(access: &AccessOptions) -> &'static str {
    if access.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

fn describe(error: RunError) -> String {
    error.to_string()
}

fn demo_server(listen: SocketAddr, tls: bool) -> Result<(), String> {
    let identity = tls.then(TlsIdentity::self_signed);
    let cert_path = std::env::temp_dir().join("wsio-demo-server-cert.pem");
    if let Some(identity) = &identity {
        identity.write_cert_pem(&cert_path).map_err(|e| {
            format!(
                "cannot write the certificate to {}: {e}",
                cert_path.display()
            )
        })?;
    }
    let server = DemoServer::start(DemoServerConfig {
        listen,
        tls: identity.clone(),
    })
    .map_err(|e| {
        let hint = if e.kind() == ErrorKind::AddrInUse {
            "; choose another with --listen"
        } else {
            ""
        };
        format!("cannot start the demo server on {listen}: {e}{hint}")
    })?;
    println!("demo server: {}", server.url("1", "demo"));
    if identity.is_some() {
        println!("certificate: {}", cert_path.display());
    }
    println!("press Ctrl-C to stop");

    let (stop, stopped) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })
    .map_err(|e| format!("cannot install the Ctrl-C/SIGTERM handler: {e}"))?;
    let _ = stopped.recv();
    server.stop();
    Ok(())
}

fn manifest(module: Option<PathBuf>) -> Result<(), String> {
    let source = match module {
        Some(path) => ModuleSource::File(path),
        None => controller::default_module()?,
    };
    let module = Module::open(&source).map_err(|e| e.to_string())?;
    print!("{}", module.manifest_text());
    if !module.manifest_text().ends_with('\n') {
        println!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_built_in_demo_project_parses() {
        let project = Project::parse("demo.toml", DEMO_PROJECT).unwrap();
        assert!(project.check_structure().is_empty());
        assert!(
            project.instance("visitor").is_some(),
            "the curl line printed by `wsio run` names it"
        );
    }
}
