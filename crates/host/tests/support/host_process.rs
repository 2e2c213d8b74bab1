//! A running `wsio` binary whose stdout and log lines the test reads with
//! deadlines (`tests/host_end_to_end.rs`, `tests/host_page.rs`).
//!
//! Stdout and stderr are read by two threads, so the order *between* the two
//! streams is not the order the host wrote them in: a log line written after
//! the "status page" line on stdout may be read before it. Waiting therefore
//! never throws a line away: [`HostProcess::wait_for_line`] first looks
//! through the lines already read after its last match, then reads on.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::lines::read_lines_until;

/// How long a host gets to print an expected line or to exit: it starts a
/// process, loads a module and connects, so longer than a client's wait.
pub const HOST_TIMEOUT: Duration = Duration::from_secs(15);

/// Followed by `http://` or `https://` (under `--tls`) and the address.
const STATUS_PAGE: &str = "out: status page: ";

/// A project file's instance `name` for 127.0.0.1:`port` at `path`, with
/// `more` property lines (TOML, each ending in a newline), connected at
/// startup.
pub fn project_instance(name: &str, port: u16, path: &str, more: &str) -> String {
    format!(
        r#"
[[instance]]
name = "{name}"
[instance.properties]
Hostname = "127.0.0.1"
Port = {port}
Path = "{path}"
{more}
[[startup]]
instance = "{name}"
action = "Connect"
"#
    )
}

pub struct HostProcess {
    child: Child,
    /// Stdout lines ("out: ...") and log lines ("err: ..."), in arrival order
    /// per stream; closed when the process has exited.
    lines: Receiver<String>,
    /// Every line read so far, to check what did *not* happen and to show
    /// on failure.
    pub seen: Vec<String>,
    /// `seen[..next]` has been looked through by an earlier wait.
    next: usize,
    /// The HTTP address the host printed (`127.0.0.1:port`).
    pub addr: String,
    /// A directory removed with the process (a project file's).
    pub dir: Option<PathBuf>,
}

impl HostProcess {
    /// Runs `wsio ARGS` with `RUST_LOG=log` and waits until it prints its
    /// status page address.
    pub fn spawn(args: &[&str], log: &str) -> HostProcess {
        Self::spawn_with_env(args, log, &[])
    }

    /// `wsio run` on `project` (written to a fresh folder for `test`, removed
    /// on drop) with the HTTP API on a free port and `RUST_LOG=log`.
    pub fn run_project(test: &str, project: &str, log: &str) -> HostProcess {
        let dir = std::env::temp_dir().join(format!("wsio-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("project.toml");
        std::fs::write(&path, project).unwrap();
        let mut host = Self::spawn(
            &["run", path.to_str().unwrap(), "--http", "127.0.0.1:0"],
            log,
        );
        host.dir = Some(dir);
        host
    }

    /// [`HostProcess::spawn`] with these environment variables set.
    pub fn spawn_with_env(args: &[&str], log: &str, env: &[(&str, &str)]) -> HostProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsio"));
        command.args(args).envs(env.iter().copied());
        Self::start(command, log)
    }

    /// Another `wsio` executable (e.g. an installed copy) run in `folder`,
    /// as [`HostProcess::spawn`] runs the one this test was built with.
    pub fn spawn_program(program: &Path, folder: &Path, args: &[&str], log: &str) -> HostProcess {
        let mut command = Command::new(program);
        command.args(args).current_dir(folder);
        Self::start(command, log)
    }

    /// Starts `command` with `RUST_LOG=log`, its output read line by line,
    /// and waits until it prints its status page address.
    fn start(mut command: Command, log: &str) -> HostProcess {
        let mut child = command
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        for (tag, stream) in [
            (
                "out",
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            ),
            ("err", Box::new(child.stderr.take().unwrap())),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(format!("{tag}: {line}")).is_err() {
                        break;
                    }
                }
            });
        }
        let mut host = HostProcess {
            child,
            lines,
            seen: Vec::new(),
            next: 0,
            addr: String::new(),
            dir: None,
        };
        // Log lines read while waiting for the address stay unlooked-at.
        let line = host.find_line(STATUS_PAGE, 0).1;
        let url = &line[STATUS_PAGE.len()..];
        let url = url.split_once("://").map_or(url, |(_, rest)| rest);
        host.addr = url.trim_end_matches('/').to_string();
        host
    }

    /// The first line containing `needle` after the previous wait's match,
    /// reading on with a deadline; fails the test (showing everything read)
    /// if the deadline passes or the process ends first.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let (at, line) = self.find_line(needle, self.next);
        self.next = at + 1;
        line
    }

    /// Waits for every needle, in any order, anywhere in the output.
    pub fn wait_for_lines(&mut self, needles: &[&str]) {
        for needle in needles {
            if !self.saw(needle) {
                self.find_line(needle, self.seen.len());
            }
        }
    }

    /// The process id, e.g. to read its memory use from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn saw(&self, needle: &str) -> bool {
        self.seen.iter().any(|line| line.contains(needle))
    }

    /// The index in `seen` and the text of the first line from `from` on
    /// that contains `needle`.
    fn find_line(&mut self, needle: &str, from: usize) -> (usize, String) {
        if let Some(at) = self.seen[from.min(self.seen.len())..]
            .iter()
            .position(|line| line.contains(needle))
        {
            let at = from + at;
            return (at, self.seen[at].clone());
        }
        let deadline = Instant::now() + HOST_TIMEOUT;
        let seen = &mut self.seen;
        let found = read_lines_until(&self.lines, deadline, |line| {
            seen.push(line.clone());
            line.contains(needle).then(|| (seen.len() - 1, line))
        });
        match found {
            Ok(found) => found,
            Err(RecvTimeoutError::Timeout) => panic!(
                "no line with {needle:?} within {HOST_TIMEOUT:?}; output:\n{}",
                self.seen.join("\n")
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "wsio exited before printing {needle:?}; output:\n{}",
                self.seen.join("\n")
            ),
        }
    }

    /// Sends SIGTERM (to this process only), reads its output to the end
    /// with a deadline and returns how it exited.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        // Its pipes close when it exits.
        let deadline = Instant::now() + HOST_TIMEOUT;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "wsio did not exit within {HOST_TIMEOUT:?} of SIGTERM; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        self.child.wait().unwrap()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // A failed test must not leave its host running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
