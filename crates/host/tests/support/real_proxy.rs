//! Real HTTP proxies from Debian (tinyproxy, squid) as child processes, for
//! tests/proxies.rs: each started in the foreground with a configuration
//! written to a directory of its own, listening on a free 127.0.0.1 port,
//! requiring Basic credentials, and allowing CONNECT only to one port (the
//! fixture server's, on 127.0.0.1). Killed, and its directory removed, on
//! drop.
//!
//! A missing binary skips the test with a message saying what to install,
//! unless `WSIO_PROXIES_REQUIRED=1` (CI), when it fails the test.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Instant;

use super::lines::read_lines_until;
use super::{HOST_TIMEOUT, free_port};

/// The environment variable that turns a missing proxy into a failure.
pub const PROXIES_REQUIRED: &str = "WSIO_PROXIES_REQUIRED";

/// Where Debian's squid keeps its Basic-credentials helper.
const SQUID_BASIC_AUTH: &str = "/usr/lib/squid/basic_ncsa_auth";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Tinyproxy,
    Squid,
}

impl ProxyKind {
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Tinyproxy => "tinyproxy",
            ProxyKind::Squid => "squid",
        }
    }

    /// The line a proxy logs once it listens. squid's "Accepting HTTP
    /// Socket connections" comes before its listen(), and under load a
    /// connection made right after it is refused; its TCP acceptor's
    /// closure handler is set up right after listen(), and debug section 5
    /// at level 4 (see the configuration) logs that.
    fn ready_line(self) -> &'static str {
        match self {
            ProxyKind::Tinyproxy => "Accepting connections",
            ProxyKind::Squid => "Comm::TcpAcceptor::handleClosure constructed",
        }
    }
}

/// A running proxy; see the module documentation.
pub struct RealProxy {
    pub kind: ProxyKind,
    pub port: u16,
    child: Child,
    /// The proxy's output lines; disconnected once it has exited.
    lines: Receiver<String>,
    /// squid's service name, which prefixes its shared-memory segments.
    service: Option<String>,
    dir: PathBuf,
    /// What the proxy printed while starting (shown when a test fails).
    pub startup_output: Vec<String>,
}

impl RealProxy {
    /// Starts `kind` requiring `user`/`password` and allowing CONNECT to
    /// 127.0.0.1:`target_port`; None (after saying why) when the proxy is
    /// not installed and `WSIO_PROXIES_REQUIRED` is not 1.
    pub fn start(
        kind: ProxyKind,
        user: &str,
        password: &str,
        target_port: u16,
    ) -> Option<RealProxy> {
        let binary = find_binary(kind)?;
        let dir = temp_dir(kind);
        let port = free_port();
        let mut command = Command::new(&binary);
        let service =
            (kind == ProxyKind::Squid).then(|| format!("wsio{}x{port}", std::process::id()));
        match kind {
            ProxyKind::Tinyproxy => {
                let config = dir.join("tinyproxy.conf");
                std::fs::write(&config, tinyproxy_config(port, user, password, target_port))
                    .unwrap();
                // -d: stay in the foreground and log to stderr.
                command.arg("-d").arg("-c").arg(&config);
            }
            ProxyKind::Squid => {
                let passwords = dir.join("passwd");
                std::fs::write(&passwords, format!("{user}:{}\n", apr1_hash(password))).unwrap();
                let config = dir.join("squid.conf");
                std::fs::write(&config, squid_config(&dir, port, &passwords, target_port)).unwrap();
                // -N: no daemon; -d 4: messages up to debug_options'
                // levels on stderr; -n: a
                // service name of its own, which names its shared-memory
                // segments (two squids with one name collide).
                command
                    .args(["-N", "-d", "4", "-n"])
                    .args(service.as_slice())
                    .arg("-f")
                    .arg(&config);
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the readers hold senders: the channel ends when both pipes
        // do, i.e. when the proxy exits.
        drop(sender);
        let mut proxy = RealProxy {
            kind,
            port,
            child,
            lines,
            service,
            dir,
            startup_output: Vec::new(),
        };
        let deadline = Instant::now() + HOST_TIMEOUT;
        let output = &mut proxy.startup_output;
        let ready = read_lines_until(&proxy.lines, deadline, |line| {
            let ready = line.contains(kind.ready_line());
            output.push(line);
            ready.then_some(())
        });
        match ready {
            Ok(()) => Some(proxy),
            Err(RecvTimeoutError::Timeout) => panic!(
                "{} did not accept connections within {HOST_TIMEOUT:?}; output:\n{}",
                kind.name(),
                proxy.startup_output.join("\n")
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{} exited while starting; output:\n{}",
                kind.name(),
                proxy.startup_output.join("\n")
            ),
        }
    }

    /// What the proxy printed while starting, and squid's cache log: shown
    /// when a story fails.
    pub fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("cache.log")).unwrap_or_default();
        format!(
            "{} started with:\n{}\n{log}",
            self.kind.name(),
            self.startup_output.join("\n")
        )
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The proxy URL with these credentials.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr())
    }
}

impl Drop for RealProxy {
    fn drop(&mut self) {
        // SIGTERM first, so that squid removes its shared-memory segments
        // (shutdown_lifetime 0: at once); its output ends when it has
        // exited. SIGKILL if it has not within the deadline.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + HOST_TIMEOUT;
        while let Ok(_) | Err(RecvTimeoutError::Timeout) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if Instant::now() >= deadline {
                break;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever squid left behind in /dev/shm under its service name.
        if let Some(service) = &self.service
            && let Ok(entries) = std::fs::read_dir("/dev/shm")
        {
            let prefix = format!("{service}-");
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary of `kind` (and squid's helper), or None after saying what is
/// missing; a panic instead when `WSIO_PROXIES_REQUIRED=1`.
fn find_binary(kind: ProxyKind) -> Option<PathBuf> {
    let name = kind.name();
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file());
    let missing = match (&found, kind) {
        (None, _) => Some(format!("{name} is not installed")),
        (Some(_), ProxyKind::Squid) if !Path::new(SQUID_BASIC_AUTH).is_file() => Some(format!(
            "squid's Basic helper {SQUID_BASIC_AUTH} is missing"
        )),
        _ => None,
    };
    match missing {
        None => found,
        Some(why) if std::env::var(PROXIES_REQUIRED).as_deref() == Ok("1") => {
            panic!("{why}, and {PROXIES_REQUIRED}=1 requires it (apt-get install {name})")
        }
        Some(why) => {
            eprintln!(
                "SKIPPED: {why} (apt-get install {name}; {PROXIES_REQUIRED}=1 makes this a failure)"
            );
            None
        }
    }
}

/// A fresh directory, writable by the user squid drops to when run as root.
fn temp_dir(kind: ProxyKind) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsio-{}-{}-{}",
        kind.name(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// An htpasswd line's hash, as `openssl passwd -apr1` makes it.
fn apr1_hash(password: &str) -> String {
    let output = Command::new("openssl")
        .args(["passwd", "-apr1", password])
        .output()
        .expect("openssl passwd (the openssl command line)");
    assert!(output.status.success(), "openssl passwd failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn tinyproxy_config(port: u16, user: &str, password: &str, target_port: u16) -> String {
    // Run as root (CI), tinyproxy would keep root after binding; it drops
    // to an unprivileged user when told to.
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let drop_to = if as_root {
        "User nobody\nGroup nogroup\n"
    } else {
        ""
    };
    format!(
        "Port {port}\n\
         Listen 127.0.0.1\n\
         Timeout 30\n\
         MaxClients 50\n\
         Allow 127.0.0.1\n\
         ConnectPort {target_port}\n\
         BasicAuth {user} {password}\n\
         LogLevel Info\n\
         {drop_to}"
    )
}

fn squid_config(dir: &Path, port: u16, passwords: &Path, target_port: u16) -> String {
    let dir = dir.display();
    let passwords = passwords.display();
    format!(
        "http_port 127.0.0.1:{port}\n\
         pid_filename none\n\
         visible_hostname wsio-test-proxy\n\
         dns_nameservers 127.0.0.1\n\
         pinger_enable off\n\
         debug_options ALL,1 5,4\n\
         cache deny all\n\
         access_log stdio:{dir}/access.log\n\
         cache_log {dir}/cache.log\n\
         cache_store_log none\n\
         coredump_dir {dir}\n\
         shutdown_lifetime 0 seconds\n\
         auth_param basic program {SQUID_BASIC_AUTH} {passwords}\n\
         auth_param basic realm wsio test proxy\n\
         acl authenticated proxy_auth REQUIRED\n\
         acl loopback_target dst 127.0.0.0/8\n\
         acl target_port port {target_port}\n\
         acl CONNECT method CONNECT\n\
         http_access deny !loopback_target\n\
         http_access deny CONNECT !target_port\n\
         http_access allow authenticated\n\
         http_access deny all\n"
    )
}
