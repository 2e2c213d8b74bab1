//! Proof that a controller written in C can use the module through
//! `include/iom.h` alone: compiles `tests/c/echo_host.c` with the system C
//! compiler (warnings as errors, C11), runs it against a local piesocket-style
//! demo server and checks it completed its ping/pong wiring and that every
//! misuse it tried came back as an error. Skipped, with a message, only when
//! no C compiler is installed.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::iom::module_path;
use wsio_host::demo_server::{DemoServer, DemoServerConfig};

/// The C program has its own 10 s deadline; this one only catches a hang
/// the program cannot see (e.g. stuck in iom_instance_destroy).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// `target/<profile>/`: the test executable runs from its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps/")
        .to_path_buf()
}

/// A compiled program, removed on drop.
struct Program(PathBuf);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Compiles echo_host.c into target/c-tests/; None when there is no C
/// compiler (`$CC`, else `cc`). The file name carries the process id, so
/// test runs sharing a target directory never write a binary another one is
/// running ("text file busy").
fn compile_echo_host() -> Option<Program> {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.join("../..");
    let out_dir = profile_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("c-tests");
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let binary = Program(out_dir.join(format!("echo_host-{}", std::process::id())));
    let output = match Command::new(&compiler)
        .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-pthread", "-I"])
        .arg(root.join("include"))
        .arg(crate_dir.join("tests/c/echo_host.c"))
        .arg("-o")
        .arg(&binary.0)
        .arg("-ldl")
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED: no C compiler ({compiler:?} not found; set CC to use another)");
            return None;
        }
        Err(e) => panic!("cannot run the C compiler {compiler:?}: {e}"),
    };
    assert!(
        output.status.success(),
        "{compiler} could not compile tests/c/echo_host.c:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(binary)
}

/// Reads a child's pipe to the end on a thread; the channel delivers the
/// text when the pipe closes (i.e. when the program has exited).
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (done, text) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = done.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    text
}

/// Waits for the program to finish (its stdout closing) for at most
/// `timeout`, killing it if it does not: status, stdout, stderr.
fn run_with_timeout(mut child: Child, timeout: Duration) -> (ExitStatus, String, String) {
    let stdout = collect(child.stdout.take().expect("stdout is piped"));
    let stderr = collect(child.stderr.take().expect("stderr is piped"));
    let (stdout, timed_out) = match stdout.recv_timeout(timeout) {
        Ok(text) => (text, false),
        Err(_) => {
            let _ = child.kill();
            (String::new(), true)
        }
    };
    let status = child.wait().expect("wait for echo_host");
    let stderr = stderr.recv().unwrap_or_default();
    assert!(
        !timed_out,
        "echo_host did not finish within {timeout:?} and was killed; stderr:\n{stderr}"
    );
    (status, stdout, stderr)
}

#[test]
fn a_c_controller_runs_a_ping_pong_wiring_through_iom_h() {
    let Some(echo_host) = compile_echo_host() else {
        return;
    };
    let server = DemoServer::start(DemoServerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        tls: None,
    })
    .expect("start the demo server");
    let child = Command::new(&echo_host.0)
        .arg(module_path())
        .arg(server.local_addr().port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", echo_host.0.display()));
    let (status, stdout, stderr) = run_with_timeout(child, RUN_TIMEOUT);
    let report = format!("exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(status.success(), "echo_host failed: {report}");
    for line in [
        "abi version 1",
        "misuse checks passed",
        "established",
        "received: ping from C",
        "received: pong: ping from C",
        "destroyed: 0",
        "misuse: destroy twice -> ok",
        "done",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no line {line:?}: {report}"
        );
    }
    assert!(
        !stdout.contains("WRONG") && !stdout.contains("FAILED"),
        "{report}"
    );
}
