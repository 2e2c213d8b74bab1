//! Real peers no one in this project wrote: the module against WebSocket
//! servers from other ecosystems, so a shared misreading of RFC 6455 between
//! our client and our own fixture servers cannot hide.
//!
//! - Python's `websockets` (tests/interop/python_peer.py) and Node's `ws`
//!   (tests/interop/node_peer.mjs), each over ws:// and wss://;
//! - nginx terminating TLS in front of the Python peer (a config written to
//!   a temporary directory, nginx run as a child process);
//! - the `wsio` host binary (so the C ABI) running a project against the
//!   Node peer behind nginx.
//!
//! Each peer starts on a free port, prints `LISTENING <port>`, and exits when
//! its stdin closes. The same scenarios run against every peer: echo (text
//! and binary), broadcast, close codes, subprotocols, pings from the server,
//! 10 MiB messages both ways, handshake headers and the bearer token, and
//! a wire that sends every message back as it came (Send Message `<1>` with
//! Message Type As Received), checked byte for byte by the peer: text,
//! binary, empty, fragmented and 16 MiB binary messages, through the Rust
//! API and, against Python, through the host binary (the C ABI).
//!
//! The peers are installed by `bash tests/interop/setup.sh` (which `.ci/run`
//! calls). Without them each test prints why it is skipped and passes, so a
//! plain `cargo test` needs nothing beyond Rust; with
//! `WSIO_INTEROP_REQUIRED=1` (as in `.ci/run`) a missing peer fails instead.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Recorded, Recorder, read_lines_until, send_hex, test_pki};
use wsio::{ActionError, Host, LogLevel, PreparedAction, PreparedTrigger, StatusVariable, Trigger};
use wsio::{Instance, Options};

/// The bound on every wait: generous for a loaded 2-core machine running a
/// debug build.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Ten MiB messages take longer in a debug build (masking, UTF-8 checks).
const LARGE_TIMEOUT: Duration = Duration::from_secs(90);
const LARGE: usize = 10 * 1024 * 1024;
/// The largest message the peers' `/forward/<bytes>` sends: the default Max
/// Message Size, every byte of it accepted and forwarded.
const FORWARDED: usize = 16 * 1024 * 1024;
/// What the peers report when every `/forward` message came back as sent.
const FORWARDED_REPORT: &str = "forward: 6 messages came back as sent";
/// The byte pattern of the peers' `/large/<bytes>` message.
const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

// ------------------------------------------------------------- what is installed

/// Which peer a test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Python,
    Node,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Python => "python",
            Kind::Node => "node",
        }
    }

    /// The command that runs this peer, or why it cannot run here.
    fn command(self) -> Result<Command, String> {
        let dir = interop_dir();
        match self {
            Kind::Python => {
                let python = dir.join(".venv/bin/python");
                if !python.exists() {
                    return Err(format!("{} is missing", python.display()));
                }
                let mut command = Command::new(python);
                command.arg(dir.join("python_peer.py"));
                Ok(command)
            }
            Kind::Node => {
                let ws = dir.join("node_modules/ws/package.json");
                if !ws.exists() {
                    return Err(format!("{} is missing (npm ci)", ws.display()));
                }
                let mut command = Command::new("node");
                command.arg(dir.join("node_peer.mjs"));
                Ok(command)
            }
        }
    }
}

fn nginx_binary() -> Result<PathBuf, String> {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(candidate).exists() {
            return Ok(candidate.into());
        }
    }
    Err("nginx is not installed (apt-get install -y nginx)".into())
}

/// `Ok` when everything a test needs is installed. Otherwise the test is
/// skipped with a message, or fails under `WSIO_INTEROP_REQUIRED=1`.
fn available(test: &str, needs: &[Result<(), String>]) -> bool {
    let missing: Vec<&String> = needs.iter().filter_map(|n| n.as_ref().err()).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "interop test {test}: {}; install the real peers with `bash tests/interop/setup.sh`",
        missing
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    if std::env::var_os("WSIO_INTEROP_REQUIRED").is_some_and(|v| v == "1") {
        panic!("{message} (WSIO_INTEROP_REQUIRED=1)");
    }
    // Straight to the process's stderr, past the test harness's capture,
    // so a plain `cargo test` shows what was skipped and why.
    let _ = writeln!(std::io::stderr(), "SKIPPED {message}");
    false
}

fn needs(kind: Kind) -> Result<(), String> {
    kind.command().map(|_| ())
}

fn needs_nginx() -> Result<(), String> {
    nginx_binary().map(|_| ())
}

// ------------------------------------------------------------- TLS material

/// The test PKI's server certificate (for 127.0.0.1 and localhost) and the
/// CA that issued it, written once per test process for the peers and nginx.
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    ca_pem: String,
}

fn tls_files() -> &'static TlsFiles {
    static FILES: OnceLock<TlsFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let pki = test_pki();
        let dir = scratch_dir("tls");
        let files = TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            ca: dir.join("ca.pem"),
            ca_pem: pki.ca.cert_pem().to_owned(),
        };
        std::fs::write(&files.cert, &pki.server.cert_pem).unwrap();
        std::fs::write(&files.key, &pki.server.key_pem).unwrap();
        std::fs::write(&files.ca, &files.ca_pem).unwrap();
        files
    })
}

/// A fresh directory under the system's temporary directory.
fn scratch_dir(what: &str) -> PathBuf {
    static NEXT: Mutex<u32> = Mutex::new(0);
    let n = {
        let mut next = NEXT.lock().unwrap();
        *next += 1;
        *next
    };
    let dir = std::env::temp_dir().join(format!("wsio-interop-{}-{what}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ------------------------------------------------------------- child processes

/// A child process with its stdout lines on a channel and its stderr kept
/// for the failure message (and on the channel too, as `stderr: <line>`).
/// Stopped on drop: stdin closed, then SIGKILL if it has not exited within
/// a few seconds.
struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    fn spawn(name: &str, mut command: Command) -> Process {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let stdin = child.stdin.take();
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let from_stdout = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if from_stdout.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = BufReader::new(child.stderr.take().unwrap());
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut line = Vec::new();
            while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line).into_owned();
                kept.lock().unwrap().push_str(&text);
                // Nobody may be listening (a peer's stderr): that is fine.
                let _ = sender.send(format!("stderr: {}", text.trim_end()));
                line.clear();
            }
        });
        Process {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// Reads stdout until a line starts with `prefix`; returns the rest.
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let found = read_lines_until(&self.lines, deadline, |line| {
            line.strip_prefix(prefix).map(|rest| rest.trim().to_owned())
        });
        match found {
            Ok(rest) => rest,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{} printed no line starting with {prefix:?} within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{} exited ({:?}) before printing {prefix:?}; stderr:\n{}",
                self.name,
                self.child.try_wait(),
                self.stderr()
            ),
        }
    }

    /// Reads on until a stderr line contains `needle`; returns that line.
    fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => match line.strip_prefix("stderr: ") {
                    Some(log) if log.contains(needle) => return log.to_owned(),
                    _ => {}
                },
                Err(e) => panic!(
                    "{} logged no line with {needle:?} within {timeout:?} ({e:?}); stderr:\n{}",
                    self.name,
                    self.stderr()
                ),
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Closes stdin and waits (bounded) for the exit; SIGKILL after that.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} did not exit within 5 s of stdin closing; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running peer server.
struct Peer {
    /// Kept for its drop: stdin closed, the peer exits.
    _process: Process,
    port: u16,
}

impl Peer {
    fn start(kind: Kind, tls: bool) -> Peer {
        let mut command = kind.command().expect("checked by available()");
        if tls {
            let files = tls_files();
            command.arg("--cert").arg(&files.cert);
            command.arg("--key").arg(&files.key);
        }
        let mut process = Process::spawn(&format!("the {} peer", kind.name()), command);
        let port = process
            .wait_for_line("LISTENING ", TIMEOUT)
            .parse()
            .expect("LISTENING <port>");
        Peer {
            _process: process,
            port,
        }
    }
}

/// nginx terminating TLS on 127.0.0.1:<free port>, proxying WebSocket
/// upgrades to a plain-ws peer. One process (`master_process off`), no
/// daemon, everything (config, logs, temp files) in a scratch directory.
struct Nginx {
    process: Process,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(upstream: u16) -> Nginx {
        let binary = nginx_binary().expect("checked by available()");
        // The free port can be taken between our probe and nginx's bind by
        // another test: then nginx exits at once and we try another.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = scratch_dir("nginx");
            std::fs::write(dir.join("nginx.conf"), nginx_conf(&dir, port, upstream)).unwrap();
            let mut command = Command::new(&binary);
            command
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"));
            let mut process = Process::spawn("nginx", command);
            let deadline = Instant::now() + TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = process.child.try_wait() {
                    last_error = format!(
                        "nginx exited ({status}): {}{}",
                        process.stderr(),
                        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Nginx { process, port, dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            process.stop();
        }
        panic!("nginx did not start: {last_error}");
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL is fine with master_process off: no worker is left behind.
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn nginx_conf(dir: &Path, port: u16, upstream: u16) -> String {
    let files = tls_files();
    let dir = dir.display();
    format!(
        r#"# Written by tests/interop.rs: TLS termination in front of a ws:// peer.
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
        }}
    }}
}}
"#,
        cert = files.cert.display(),
        key = files.key.display(),
    )
}

// ------------------------------------------------------------- the module side

/// Where the module connects: a peer directly, or nginx in front of one.
struct Target {
    /// "python ws", "node wss", "nginx wss -> python", for failure messages.
    name: String,
    /// Whose close reason ("bye from python") the peer sends.
    peer: Kind,
    port: u16,
    tls: bool,
}

/// One module instance (Rust API) with its recording host.
struct Client {
    rec: Arc<Recorder>,
    instance: Instance,
    what: String,
}

impl Target {
    fn properties(&self, path: &str, extra: Value) -> Value {
        let mut properties = json!({
            "Hostname": "127.0.0.1",
            "Port": self.port,
            "Path": path,
            "Protocol": if self.tls { "WSS" } else { "WS" },
        });
        if self.tls {
            properties["CA Certificate"] = json!(tls_files().ca_pem);
            properties["Trust Only Given CA"] = json!(true);
        }
        for (key, value) in extra.as_object().into_iter().flatten() {
            properties[key] = value.clone();
        }
        properties
    }

    /// An instance for `path`, not yet connected.
    fn client(&self, path: &str, extra: Value) -> Client {
        let rec = Recorder::new();
        let properties = self.properties(path, extra);
        let instance = Instance::from_json(&properties.to_string(), rec.host(), Options::default())
            .unwrap_or_else(|e| panic!("{}: properties refused: {e}", self.name));
        Client {
            rec,
            instance,
            what: format!("{} {path}", self.name),
        }
    }

    /// An instance for `path`, connected and established.
    fn connected(&self, path: &str, extra: Value) -> Client {
        let client = self.client(path, extra);
        client.instance.connect(None).unwrap();
        client.expect("WebSocket Established", |r| {
            r.count(Trigger::Established) == 1
        });
        client
    }
}

impl Client {
    fn expect(&self, what: &str, predicate: impl FnMut(&Recorded) -> bool) {
        self.expect_within(what, TIMEOUT, predicate);
    }

    fn expect_within(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl FnMut(&Recorded) -> bool,
    ) {
        if !self.rec.wait_for(predicate, timeout) {
            let r = self.rec.snapshot();
            let shorten = |s: &str| s.chars().take(200).collect::<String>();
            panic!(
                "{}: timed out waiting for {what}\ntriggers: {:?}\nreasons: {:?}\nstatus: {:?}\nlog:\n{}",
                self.what,
                r.trigger_names(),
                r.reasons
                    .iter()
                    .map(|(t, d)| (t.name(), shorten(d)))
                    .collect::<Vec<_>>(),
                r.status
                    .iter()
                    .map(|v| (v.key, shorten(&v.value)))
                    .collect::<Vec<_>>(),
                r.log_text()
            );
        }
    }

    fn received(&self) -> Vec<String> {
        self.rec.snapshot().data_of(Trigger::MessagesReceived)
    }

    fn status(&self, key: &str) -> String {
        self.instance
            .status()
            .into_iter()
            .find(|v| v.key == key)
            .unwrap_or_else(|| panic!("no status variable {key}"))
            .value
    }
}

// ------------------------------------------------------------- the scenarios

/// Every scenario against one target, in order; a failure names the target
/// and the scenario.
fn run_scenarios(target: &Target) {
    echo_text_and_binary(target);
    broadcast_reaches_every_client(target);
    close_codes_from_the_peer(target);
    subprotocols(target);
    pings_from_the_peer_are_answered(target);
    ten_mib_messages_both_ways(target);
    handshake_headers_and_bearer_token(target);
    a_wire_forwards_every_message_as_it_came(target);
}

fn echo_text_and_binary(target: &Target) {
    let c = target.connected("/echo", json!({}));
    let text = "héllo from wsio ✓ (interop)";
    c.instance.send_message(text).unwrap();
    c.expect("the text echo", |r| r.count(Trigger::MessagesReceived) == 1);
    send_hex(&c.instance, "00 ff 7e 80").unwrap();
    c.expect("the binary echo", |r| {
        r.count(Trigger::MessagesReceived) == 2
    });
    let r = c.rec.snapshot();
    assert_eq!(
        r.data_of(Trigger::MessagesReceived),
        [text, "00ff7e80"],
        "{}",
        c.what
    );
    let binary = r.message_binary_flags();
    assert_eq!(binary, [false, true], "{}: binary flags", c.what);

    c.instance.disconnect().unwrap();
    c.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    assert_eq!(
        c.rec.snapshot().data_of(Trigger::Disconnected),
        ["Disconnect action"],
        "{}",
        c.what
    );
    c.expect("Last Close after the close handshake", |r| {
        r.status_value("LastClose")
            .is_some_and(|v| v.starts_with("1000"))
    });
}

fn broadcast_reaches_every_client(target: &Target) {
    let clients: Vec<Client> = (0..3)
        .map(|_| target.connected("/broadcast", json!({})))
        .collect();
    for (i, sender) in clients.iter().enumerate() {
        sender.instance.send_message(format!("from {i}")).unwrap();
        for c in &clients {
            c.expect(&format!("broadcast {i}"), |r| {
                r.count(Trigger::MessagesReceived) == i + 1
            });
        }
    }
    for c in &clients {
        assert_eq!(
            c.received(),
            ["from 0", "from 1", "from 2"],
            "{}: every client gets every message once, in order",
            c.what
        );
    }
}

fn close_codes_from_the_peer(target: &Target) {
    let peer = target.peer.name();
    for code in [1000, 1001, 1011, 4000, 4999] {
        let c = target.connected(&format!("/close/{code}"), json!({}));
        c.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
        let r = c.rec.snapshot();
        assert_eq!(
            r.data_of(Trigger::MessagesReceived),
            [format!("closing with {code}")],
            "{}: the message before the close is delivered",
            c.what
        );
        assert_eq!(
            r.data_of(Trigger::Disconnected),
            [format!("closed by server: {code} bye from {peer}")],
            "{}",
            c.what
        );
        assert_eq!(
            c.status("LastClose"),
            format!("{code} bye from {peer} (closed by server)"),
            "{}",
            c.what
        );
    }
}

fn subprotocols(target: &Target) {
    let c = target.connected(
        "/subprotocol",
        json!({"Subprotocols": "wsio.v3, wsio.v2, wsio.v1"}),
    );
    c.expect("the peer's report", |r| {
        r.count(Trigger::MessagesReceived) == 1
    });
    assert_eq!(c.received(), ["subprotocol: wsio.v2"], "{}", c.what);
    assert_eq!(c.status("Subprotocol"), "wsio.v2", "{}", c.what);

    // A peer that supports none of the offered subprotocols answers without
    // one: the module refuses that handshake with a clear error.
    let c = target.client("/subprotocol", json!({"Subprotocols": "wsio.v9"}));
    c.instance.connect(None).unwrap();
    c.expect("the failed negotiation", |r| {
        r.status_value("LastError")
            .is_some_and(|e| e.contains("subprotocol"))
    });
    assert_eq!(
        c.rec.snapshot().count(Trigger::Established),
        0,
        "{}",
        c.what
    );
}

fn pings_from_the_peer_are_answered(target: &Target) {
    let c = target.connected(
        "/ping",
        json!({"Send keep alive?": false, "Log Comms": true}),
    );
    c.expect("\"pongs: 3\"", |r| r.count(Trigger::MessagesReceived) == 1);
    assert_eq!(c.received(), ["pongs: 3"], "{}", c.what);
    // Pings are control frames: none fired a trigger.
    assert_eq!(c.rec.snapshot().count(Trigger::MessagesReceived), 1);
}

fn pattern(size: usize) -> Vec<u8> {
    PATTERN.iter().copied().cycle().take(size).collect()
}

fn ten_mib_messages_both_ways(target: &Target) {
    let c = target.connected(&format!("/large/{LARGE}"), json!({}));
    c.expect_within("the 10 MiB message", LARGE_TIMEOUT, |r| {
        r.count(Trigger::MessagesReceived) == 1
    });
    let outbound: String = String::from_utf8(pattern(LARGE))
        .unwrap()
        .chars()
        .rev()
        .collect();
    c.instance.send_message(outbound.clone()).unwrap();
    c.expect_within("the 10 MiB echo", LARGE_TIMEOUT, |r| {
        r.count(Trigger::MessagesReceived) == 2
    });
    let r = c.rec.snapshot();
    let received: Vec<&Vec<u8>> = r.messages.iter().collect();
    assert_eq!(
        received[0].len(),
        LARGE,
        "{}: one message, never split",
        c.what
    );
    assert!(*received[0] == pattern(LARGE), "{}: content", c.what);
    assert_eq!(received[1].len(), LARGE, "{}", c.what);
    assert!(
        *received[1] == outbound.as_bytes(),
        "{}: echo content",
        c.what
    );
}

fn handshake_headers_and_bearer_token(target: &Target) {
    const TOKEN: &str = "interop-T0KEN-6f1d";
    let c = target.client(
        "/headers",
        json!({
            "Headers": "X-Site: north",
            "Origin": "https://panel.example.com",
            "Extended Logging": true,
        }),
    );
    c.instance.connect(Some(TOKEN)).unwrap();
    c.expect("the peer's report", |r| {
        r.count(Trigger::MessagesReceived) == 1
    });
    let report: Value = serde_json::from_str(&c.received()[0]).unwrap();
    let header = |name: &str| {
        report["headers"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(report["path"], "/headers", "{}", c.what);
    assert_eq!(
        header("authorization"),
        format!("Bearer {TOKEN}"),
        "{}",
        c.what
    );
    assert_eq!(header("x-site"), "north", "{}", c.what);
    assert_eq!(header("origin"), "https://panel.example.com", "{}", c.what);
    assert_eq!(header("sec-websocket-version"), "13", "{}", c.what);
    assert_eq!(
        header("host"),
        format!("127.0.0.1:{}", target.port),
        "{}",
        c.what
    );
    // The token went to the server, which echoed it back in its report (its
    // choice); nothing the module said on its own holds it.
    drop(c.instance);
    let r = c.rec.snapshot();
    assert!(
        !r.log_text().contains(TOKEN),
        "{}: token in the log",
        c.what
    );
    for v in r.status.iter().filter(|v| v.key != "LastReceived") {
        assert!(!v.value.contains(TOKEN), "{}: token in {}", c.what, v.key);
    }
}

/// A controller's wire in Rust: Messages Received (any message) → Send
/// Message `<1>` with Message Type As Received on the same instance, tested
/// and run right inside the callback as the Host trait allows; everything
/// is recorded too.
struct Forwarder {
    rec: Arc<Recorder>,
    when: PreparedTrigger,
    then: PreparedAction,
    instance: OnceLock<Weak<Instance>>,
    errors: Mutex<Vec<String>>,
}

impl Host for Forwarder {
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool) {
        self.rec.fire_trigger(trigger, data, binary);
        if trigger != self.when.trigger() || !self.when.test(data) {
            return;
        }
        let Some(instance) = self.instance.get().and_then(Weak::upgrade) else {
            return;
        };
        let variables = self.when.variables(data, binary);
        let result = self
            .then
            .action(&variables)
            .map_err(ActionError::from)
            .and_then(|action| instance.run(action));
        if let Err(e) = result {
            self.errors.lock().unwrap().push(e.to_string());
        }
    }

    fn status_changed(&self, variable: &StatusVariable) {
        self.rec.status_changed(variable);
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.rec.log(level, message);
    }
}

fn a_wire_forwards_every_message_as_it_came(target: &Target) {
    let rec = Recorder::new();
    let forwarder = Arc::new(Forwarder {
        rec: rec.clone(),
        when: PreparedTrigger::prepare("Messages Received", &json!({})).unwrap(),
        then: PreparedAction::prepare(
            "Send Message",
            &json!({"Message": "<1>", "Message Type": "As Received"}),
        )
        .unwrap(),
        instance: OnceLock::new(),
        errors: Mutex::new(Vec::new()),
    });
    let properties = target.properties(&format!("/forward/{FORWARDED}"), json!({}));
    let instance = Arc::new(
        Instance::from_json(
            &properties.to_string(),
            forwarder.clone(),
            Options::default(),
        )
        .unwrap_or_else(|e| panic!("{}: properties refused: {e}", target.name)),
    );
    let _ = forwarder.instance.set(Arc::downgrade(&instance));
    let what = format!("{} /forward (Rust API)", target.name);
    instance.connect(None).unwrap();
    let report = |r: &Recorded| {
        r.messages
            .iter()
            .find(|m| m.starts_with(b"forward"))
            .map(|m| String::from_utf8_lossy(m).into_owned())
    };
    rec.expect_within(&format!("{what}: the peer's report"), LARGE_TIMEOUT, |r| {
        report(r).is_some()
    });
    let r = rec.snapshot();
    let errors = forwarder.errors.lock().unwrap().clone();
    assert_eq!(
        report(&r).unwrap(),
        FORWARDED_REPORT,
        "{what}: action errors: {errors:?}"
    );
    assert!(errors.is_empty(), "{what}: {errors:?}");
    // What the module received: the text as text, the rest as binary,
    // the 16 MiB one whole.
    assert_eq!(
        r.message_binary_flags()[..6],
        [false, true, true, true, true, true],
        "{what}"
    );
    assert_eq!(r.messages[5].len(), 2 * FORWARDED, "{what}: hex of 16 MiB");
    drop(instance);
}

// ------------------------------------------------------------- the tests

fn direct(kind: Kind, tls: bool) {
    let peer = Peer::start(kind, tls);
    let target = Target {
        name: format!("{} {}", kind.name(), if tls { "wss" } else { "ws" }),
        peer: kind,
        port: peer.port,
        tls,
    };
    run_scenarios(&target);
    drop(peer);
}

/// The scenarios against `kind` directly, where that peer is installed.
fn direct_if_available(test: &str, kind: Kind, tls: bool) {
    if available(test, &[needs(kind)]) {
        direct(kind, tls);
    }
}

#[test]
fn python_websockets_over_ws() {
    direct_if_available("python_websockets_over_ws", Kind::Python, false);
}

#[test]
fn python_websockets_over_wss() {
    direct_if_available("python_websockets_over_wss", Kind::Python, true);
}

#[test]
fn node_ws_over_ws() {
    direct_if_available("node_ws_over_ws", Kind::Node, false);
}

#[test]
fn node_ws_over_wss() {
    direct_if_available("node_ws_over_wss", Kind::Node, true);
}

#[test]
fn nginx_terminating_tls_in_front_of_python() {
    if !available(
        "nginx_terminating_tls_in_front_of_python",
        &[needs(Kind::Python), needs_nginx()],
    ) {
        return;
    }
    let peer = Peer::start(Kind::Python, false);
    let nginx = Nginx::start(peer.port);
    let target = Target {
        name: "nginx wss -> python ws".into(),
        peer: Kind::Python,
        port: nginx.port,
        tls: true,
    };
    run_scenarios(&target);
    let errors = nginx.error_log();
    assert!(
        !errors.contains("[crit]") && !errors.contains("[alert]") && !errors.contains("[emerg]"),
        "nginx error log:\n{errors}"
    );
}

/// The `wsio` host binary (loading libwsio.so through the C ABI) runs a
/// project against the Node peer behind nginx: the CA comes from a PEM file
/// named in `CA Certificate`, wires answer the peer, and SIGTERM closes
/// cleanly.
#[test]
fn the_host_binary_runs_a_project_against_node_behind_nginx() {
    if !available(
        "the_host_binary_runs_a_project_against_node_behind_nginx",
        &[needs(Kind::Node), needs_nginx()],
    ) {
        return;
    }
    let peer = Peer::start(Kind::Node, false);
    let nginx = Nginx::start(peer.port);
    let dir = scratch_dir("host");
    let instance = support::project_instance(
        "peer",
        nginx.port,
        "/echo",
        &format!(
            "Protocol = \"WSS\"\n\"CA Certificate\" = \"{}\"\n\"Trust Only Given CA\" = true\n",
            tls_files().ca.display()
        ),
    );
    let project = format!(
        r#"{instance}
[[wire]]
when = {{ instance = "peer", trigger = "WebSocket Established" }}
then = {{ instance = "peer", action = "Send Message", properties = {{ Message = "ping from the host" }} }}

[[wire]]
when = {{ instance = "peer", trigger = "Messages Received", properties = {{ "Match String" = "ping", "Match Mode" = "Starts With" }} }}
then = {{ instance = "peer", action = "Send Message", properties = {{ Message = "pong: <1>" }} }}
"#
    );
    let path = dir.join("project.toml");
    std::fs::write(&path, project).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsio"));
    command
        .arg("run")
        .arg(&path)
        .arg("--http")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "info");
    let mut host = Process::spawn("wsio run", command);
    let addr = host.wait_for_line("status page: http://", TIMEOUT);
    let addr = addr.trim_end_matches('/').to_owned();

    // The echo of "ping from the host" is answered; the echo of the answer
    // ("pong: …") does not start with "ping", so the exchange ends there.
    let expected = "pong: ping from the host";
    let deadline = Instant::now() + TIMEOUT;
    let last_received = loop {
        let status = http_get(&addr, "/io_modules");
        let value = status["instances"][0]["status"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["key"] == "LastReceived")
            .and_then(|v| v["value"].as_str())
            .unwrap_or_default()
            .to_owned();
        if value == expected || Instant::now() > deadline {
            break value;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        last_received,
        expected,
        "host stderr:\n{}\nnginx:\n{}",
        host.stderr(),
        nginx.error_log()
    );

    // SIGTERM: the host closes every instance cleanly and exits 0.
    let pid = host.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = host.stop().expect("wsio exits after SIGTERM");
    let log = host.stderr();
    assert!(
        status.success(),
        "wsio exited with {status}; stderr:\n{log}"
    );
    assert!(
        log.contains("peer: Disconnected fired"),
        "no Disconnected on shutdown; stderr:\n{log}"
    );
}

/// The `wsio` host binary (libwsio.so through the C ABI: fire_trigger_ex,
/// iom_trigger_test_ex, iom_action_run) runs the wire "Messages Received →
/// Send Message `<1>` As Received" against the Python peer, which checks
/// every message that comes back byte for byte, 16 MiB binary included.
#[test]
fn the_host_binary_forwards_messages_as_they_came() {
    if !available(
        "the_host_binary_forwards_messages_as_they_came",
        &[needs(Kind::Python)],
    ) {
        return;
    }
    let peer = Peer::start(Kind::Python, false);
    let dir = scratch_dir("forward");
    let instance =
        support::project_instance("peer", peer.port, &format!("/forward/{FORWARDED}"), "");
    let project = format!(
        r#"{instance}
[[wire]]
when = {{ instance = "peer", trigger = "Messages Received" }}
then = {{ instance = "peer", action = "Send Message", properties = {{ Message = "<1>", "Message Type" = "As Received" }} }}
"#
    );
    let path = dir.join("project.toml");
    std::fs::write(&path, project).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsio"));
    command
        .arg("run")
        .arg(&path)
        .arg("--http")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "info");
    let mut host = Process::spawn("wsio run", command);
    let report = host.wait_for_log("peer: Messages Received fired: \"forward", LARGE_TIMEOUT);
    let log = host.stderr();
    assert!(
        report.ends_with(&format!("{FORWARDED_REPORT:?}")),
        "{report}\nstderr:\n{log}"
    );
    assert!(!log.contains("failed"), "an action failed; stderr:\n{log}");
    drop(host);
    drop(peer);
}

/// GET `path` from the host's HTTP API as JSON.
fn http_get(addr: &str, path: &str) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}
