//! `cargo install --path crates/host` gives a `wsio` that works on its own:
//! run from an empty folder, with no `libwsio.so` beside it or in it, it
//! uses the module built into it (issue 19). The installed copy checks a
//! project, runs it against a real server on 127.0.0.1 and reports the
//! connection at `GET /io_modules`.
//!
//! `cargo install` makes a release build, too slow for every `cargo test`:
//! the test is ignored there and run by `.ci/run`
//! (`cargo test -p wsio-host --test install -- --ignored`), after the
//! Debian package's release build, which it reuses.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::host_http::http;
use support::{EchoServer, HostProcess, project_instance};

/// A fresh, empty folder under the temporary directory, removed on drop.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let path = std::env::temp_dir().join(format!("wsio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Folder(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment a user's shell gives cargo. What `cargo test` adds for
/// a test (`LD_LIBRARY_PATH`, `CARGO_PKG_*`, …) would reach the build
/// scripts of the nested build and make it rebuild what the release build
/// before it made (ring's, through the `cc` crate).
const USER_ENVIRONMENT: &[&str] = &[
    "PATH",
    "HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_TARGET_DIR",
    "CARGO_INCREMENTAL",
];

/// `cargo install --path <this crate> --root <root>`: the workspace's target
/// folder and Cargo.lock, as a user's install would use them.
fn cargo_install(root: &Path) -> PathBuf {
    let mut command = Command::new(env!("CARGO"));
    command.env_clear();
    for name in USER_ENVIRONMENT {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let output = command
        .args(["install", "--locked", "--quiet", "--path"])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo install failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    root.join("bin").join("wsio")
}

#[test]
#[ignore = "cargo install makes a release build; .ci/run runs it"]
fn an_installed_wsio_runs_a_project_from_an_empty_folder_with_its_built_in_module() {
    let root = Folder::new("install-root");
    let wsio = cargo_install(&root.0);
    let installed: Vec<_> = std::fs::read_dir(root.0.join("bin"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(installed, ["wsio"], "cargo install puts the binary alone");

    let echo = EchoServer::start();
    let projects = Folder::new("install-project");
    let project = projects.0.join("project.toml");
    std::fs::write(&project, project_instance("a", echo.port(), "/", "")).unwrap();
    let empty = Folder::new("install-cwd");

    let check = Command::new(&wsio)
        .arg("check")
        .arg(&project)
        .current_dir(&empty.0)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{log}");
    assert!(
        String::from_utf8_lossy(&check.stdout).starts_with("ok: 1 instance"),
        "{check:?}"
    );
    assert!(
        log.contains("loaded module WebSocket Client") && log.contains("from built-in"),
        "the log names the module used: {log}"
    );

    let mut host = HostProcess::spawn_program(
        &wsio,
        &empty.0,
        &["run", project.to_str().unwrap(), "--http", "127.0.0.1:0"],
        "info",
    );
    host.wait_for_line("a: WebSocket Established fired");
    let response = http(&host.addr, "GET", "/io_modules", "", &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    let io_modules = response.json();
    assert_eq!(io_modules["modules"][0]["name"], "WebSocket Client");
    let instance = &io_modules["instances"][0];
    assert_eq!(instance["name"], "a", "{io_modules}");
    assert!(
        instance["status"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"] == "ConnectionStatus" && s["value"] == "Established"),
        "{io_modules}"
    );
    assert!(host.terminate().success(), "{}", host.seen.join("\n"));
    assert_eq!(
        std::fs::read_dir(&empty.0).unwrap().count(),
        0,
        "wsio writes nothing into the folder it runs in"
    );
}
