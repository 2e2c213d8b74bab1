//! The rows measured through the ABI (`module.rs`), with the host doing what
//! a controller does: queue fired triggers, test them on its own thread;
//! and the `wsio run` lines: the reference host as a child process with a
//! project file, driven like a user runs it.

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::module::{self, Host, IOM_ERR_REJECTED, IOM_OK, Instance};
use crate::raw::parse_stats;
use crate::server::{Ports, payload};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Instance properties for a bench server path: defaults otherwise (the
/// module's defaults are what a controller gets).
pub fn properties(ports: &Ports, tls: bool, path: &str) -> Value {
    let mut p = json!({
        "Hostname": "127.0.0.1",
        "Port": if tls { ports.wss } else { ports.ws },
        "Protocol": if tls { "WSS" } else { "WS" },
        "Path": path,
    });
    if tls {
        p["CA Certificate"] = json!(ports.ca);
    }
    p
}

fn wait_established(host: &Host, count: usize, timeout: Duration) {
    assert!(
        host.wait_for(
            |h, _| h.established.load(Ordering::SeqCst) >= count,
            timeout
        ),
        "{} of {count} instances established within {timeout:?} (WSIO_BENCH_LOG=1 shows the module's log)",
        host.established.load(Ordering::SeqCst)
    );
}

/// A moment a handler records, and `wait_for` sees.
#[derive(Default)]
struct Done(Mutex<Option<Instant>>);

impl Done {
    fn set(&self, host: &Host) {
        *self.0.lock().unwrap() = Some(Instant::now());
        host.notify();
    }
    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap()
    }
}

/// What a receive run saw besides its time.
pub struct Received {
    pub elapsed: Duration,
    /// status_changed callbacks during the run (coalescing check).
    pub status_pushes: u64,
}

/// Row 1: `n` messages of `size` bytes, every one tested with a prepared
/// Contains trigger on the host's consumer thread. From "go" to the last
/// message tested.
pub fn receive(ports: &Ports, tls: bool, n: usize, size: usize, inline: bool) -> Received {
    let host = Host::new();
    let prepared = module::prepare("Messages Received", &json!({"Match String": "msg"}));
    let matched = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Done::default());
    if inline {
        // Tests in the callback (iom.h allows it: iom_trigger_test never
        // waits). Otherwise the consumer thread tests.
        let (host2, matched, done) = (Arc::downgrade(&host), matched.clone(), done.clone());
        host.set_inline(Box::new(move |_, data| {
            if prepared.test(data)
                && matched.fetch_add(1, Ordering::Relaxed) + 1 == n
                && let Some(host) = host2.upgrade()
            {
                done.set(&host);
            }
        }));
    }
    let consumer = {
        let (host2, matched, done) = (host.clone(), matched.clone(), done.clone());
        host.start_consumer(Box::new(move |_, data| {
            if prepared.test(data) && matched.fetch_add(1, Ordering::Relaxed) + 1 == n {
                done.set(&host2);
            }
        }))
    };
    let path = format!("/blast?n={n}&size={size}");
    let instance = module::create(&host, next_id(), &properties(ports, tls, &path));
    instance.connect();
    wait_established(&host, 1, Duration::from_secs(10));
    let pushes_before = host.status_changes.load(Ordering::Relaxed);
    let start = Instant::now();
    let (code, error) = instance.action(c"Send Message", c"{\"Message\":\"go\"}");
    assert_eq!(code, IOM_OK, "{error}");
    let limit = Duration::from_secs(30 + (n * size / 20_000_000) as u64);
    let ok = host.wait_for(|_, _| done.get().is_some(), limit);
    assert!(
        ok,
        "wsio receive: {} of {n} messages tested within {limit:?} ({} fired)",
        matched.load(Ordering::Relaxed),
        host.fired.load(Ordering::Relaxed)
    );
    let elapsed = done.get().unwrap() - start;
    let status_pushes = host.status_changes.load(Ordering::Relaxed) - pushes_before;
    instance.destroy();
    host.stop_consumer(consumer);
    prepared.free();
    Received {
        elapsed,
        status_pushes,
    }
}

/// What a send run saw besides its time.
pub struct Sent {
    pub elapsed: Duration,
    /// Send Message calls answered IOM_ERR_REJECTED (the backlog of 10,000
    /// messages or 16 MiB).
    pub rejected: u64,
}

/// Row 2: `n` Send Message actions of `size` bytes through the ABI, until
/// the server has them all. A REJECTED (backlog full) is retried after
/// 100 µs, as a controller that must not lose the message would.
pub fn send(ports: &Ports, tls: bool, n: usize, size: usize, prepared: bool) -> Sent {
    let host = Host::new();
    let done = Arc::new(Done::default());
    let consumer = {
        let (host2, done) = (host.clone(), done.clone());
        host.start_consumer(Box::new(move |_, data| {
            if data == b"done" {
                done.set(&host2);
            }
        }))
    };
    let path = format!("/sink?n={n}");
    let instance = module::create(&host, next_id(), &properties(ports, tls, &path));
    instance.connect();
    wait_established(&host, 1, Duration::from_secs(10));
    let message = String::from_utf8(payload("msg", size)).unwrap();
    let action = CString::new(json!({ "Message": message }).to_string()).unwrap();
    let wire = prepared.then(|| instance.prepare_action(c"Send Message", &action));
    let mut rejected = 0;
    let start = Instant::now();
    for _ in 0..n {
        loop {
            let code = match wire {
                Some(wire) => wire.run_code(&[]),
                None => instance.action_code(c"Send Message", &action),
            };
            match code {
                IOM_OK => break,
                IOM_ERR_REJECTED => {
                    rejected += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
                code => panic!("Send Message returned {code}"),
            }
        }
    }
    let limit = Duration::from_secs(60 + (n * size / 10_000_000) as u64);
    assert!(
        host.wait_for(|_, _| done.get().is_some(), limit),
        "wsio send: the server did not get {n} messages within {limit:?}"
    );
    let elapsed = done.get().unwrap() - start;
    instance.destroy();
    if let Some(wire) = wire {
        wire.free();
    }
    host.stop_consumer(consumer);
    Sent { elapsed, rejected }
}

/// Row 3: the server's round trips through a wire, Messages Received
/// (Contains "ping") → Send Message `<1>`, run inside the callback
/// (`inline`) or on the host's consumer thread. Returns the server's p50,
/// p99, max, mean (ns).
pub fn echo(ports: &Ports, tls: bool, n: usize, size: usize, inline: bool) -> [u64; 4] {
    let host = Host::new();
    let prepared = module::prepare("Messages Received", &json!({"Match String": "ping"}));
    let stats = Arc::new(Mutex::new(None::<[u64; 4]>));
    let path = format!("/ping?n={n}&size={size}");
    let instance = module::create(&host, next_id(), &properties(ports, tls, &path));
    // The wire's action, compiled once as a controller does at load.
    let wire = instance.prepare_action(c"Send Message", c"{\"Message\":\"<1>\"}");
    if inline {
        let (host2, stats) = (Arc::downgrade(&host), stats.clone());
        host.set_inline(Box::new(move |_, data| {
            if data.starts_with(b"stats ") {
                *stats.lock().unwrap() = Some(parse_stats(&String::from_utf8_lossy(data)));
                if let Some(host) = host2.upgrade() {
                    host.notify();
                }
                return;
            }
            prepared.test_with(data, |variables| {
                let (code, error) = wire.run(variables);
                assert_eq!(code, IOM_OK, "wired Send Message: {error}");
            });
        }));
    }
    let consumer = {
        let (host2, stats) = (host.clone(), stats.clone());
        host.start_consumer(Box::new(move |_, data| {
            if data.starts_with(b"stats ") {
                *stats.lock().unwrap() = Some(parse_stats(&String::from_utf8_lossy(data)));
                host2.notify();
                return;
            }
            prepared.test_with(data, |variables| {
                let (code, error) = wire.run(variables);
                assert_eq!(code, IOM_OK, "wired Send Message: {error}");
            });
        }))
    };
    instance.connect();
    wait_established(&host, 1, Duration::from_secs(10));
    let (code, error) = instance.action(c"Send Message", c"{\"Message\":\"go\"}");
    assert_eq!(code, IOM_OK, "{error}");
    let limit = Duration::from_secs(60 + n as u64 / 1000);
    assert!(
        host.wait_for(|_, _| stats.lock().unwrap().is_some(), limit),
        "wsio echo: no stats within {limit:?}"
    );
    instance.destroy();
    host.stop_consumer(consumer);
    prepared.free();
    wire.free();
    stats.lock().unwrap().expect("stats")
}

/// Row 6: `k` instances with Auto-Reconnect (Reconnect Min Delay 1) whose
/// first connection the server drops after 50 ms. For each: the time from
/// the scheduled retry (the NextRetry status, a wall-clock time with
/// milliseconds) to WebSocket Established. Returns the overheads in ms.
pub fn reconnect(ports: &Ports, tls: bool, k: usize, tag: &str) -> Vec<f64> {
    let host = Host::new();
    let mut instances = Vec::new();
    for i in 0..k {
        let mut p = properties(ports, tls, &format!("/drop-once/{tag}-{i}"));
        p["Auto-Reconnect"] = json!(true);
        p["Reconnect Min Delay"] = json!(1);
        let id = next_id();
        instances.push((id, module::create(&host, id, &p)));
    }
    for (_, instance) in &instances {
        instance.connect();
    }
    let ok = host.wait_for(
        |h, _| h.established.load(Ordering::SeqCst) >= 2 * k,
        Duration::from_secs(30),
    );
    assert!(ok, "reconnect: not every instance reconnected within 30 s");
    let events = host.events();
    let retries = host.next_retry.lock().unwrap().clone();
    let mut overheads = Vec::new();
    for (id, _) in &instances {
        let second = events
            .iter()
            .filter(|e| e.instance == *id && e.trigger == "WebSocket Established")
            .nth(1)
            .expect("a second Established");
        let scheduled = retries.get(id).expect("a NextRetry value");
        let scheduled = chrono::DateTime::parse_from_rfc3339(scheduled)
            .unwrap_or_else(|e| panic!("NextRetry {scheduled:?}: {e}"));
        let at: chrono::DateTime<chrono::Utc> = second.wall.into();
        let overhead = (at - scheduled.with_timezone(&chrono::Utc))
            .num_microseconds()
            .unwrap();
        overheads.push(overhead as f64 / 1000.0);
    }
    for (_, instance) in instances {
        instance.destroy();
    }
    overheads
}

/// Row 7: `n` messages through `iom_trigger_test` (with variables on a
/// match, as a controller with a wired action asks). ns per message.
pub fn match_cost(kind: &str, messages: &[Vec<u8>], n: usize) -> f64 {
    let properties = match kind {
        "Contains" => json!({"Match String": "kitchen"}),
        "Regex" => {
            json!({"Match Mode": "Regex", "Match String": r#""room":"(k\w+)","value":([0-9.]+)"#})
        }
        _ => json!({"Match Mode": "JSON", "Match String": r#"/room == "kitchen""#}),
    };
    let prepared = module::prepare("Messages Received", &properties);
    let mut matched = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let message = &messages[i % messages.len()];
        if let Some(count) = prepared.test_with(message, |vars| vars.len()) {
            matched += count.min(1);
        }
    }
    let elapsed = start.elapsed();
    prepared.free();
    assert!(
        matched > 0 && matched < n,
        "{kind}: {matched} of {n} matched"
    );
    elapsed.as_nanos() as f64 / n as f64
}

/// Instances connected at once (rows 4 and 5) are created here.
pub fn create_many(host: &Arc<Host>, ports: &Ports, tls: bool, n: usize) -> Vec<Instance> {
    (0..n)
        .map(|_| module::create(host, next_id(), &properties(ports, tls, "/idle")))
        .collect()
}

/// `wsio run` receiving `n` messages of `size` bytes from the blaster: a
/// project with one instance, a wire that sends "go" once established, and
/// `wire` (a Contains Match String) on Messages Received when given. From
/// the moment `GET /io_modules` counts the connection to the moment it
/// counts `n` Messages Received (polled every 5 ms).
pub fn wsio_run_receive(ports: &Ports, n: usize, size: usize, wire: Option<&str>) -> Duration {
    let dir = std::env::temp_dir().join(format!("wsio-bench-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut project = format!(
        r#"[[instance]]
name = "bench"
module = {module:?}
[instance.properties]
Hostname = "127.0.0.1"
Port = {port}
Path = "/blast?n={n}&size={size}"

[[startup]]
instance = "bench"
action = "Connect"

[[wire]]
when = {{ instance = "bench", trigger = "WebSocket Established" }}
then = {{ instance = "bench", action = "Send Message", properties = {{ Message = "go" }} }}
"#,
        module = module::module_path().display().to_string(),
        port = ports.ws,
    );
    if let Some(text) = wire {
        project.push_str(&format!(
            r#"
[[wire]]
when = {{ instance = "bench", trigger = "Messages Received", properties = {{ "Match String" = {text:?} }} }}
then = {{ instance = "bench", action = "Send Message", properties = {{ Message = "matched" }} }}
"#
        ));
    }
    let path = dir.join("project.toml");
    std::fs::write(&path, project).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsio"))
        .args(["run", path.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the wsio binary");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    const PAGE: &str = "status page: http://";
    let addr = loop {
        let line = lines
            .next()
            .expect("wsio run printed its status page address")
            .unwrap();
        if let Some(at) = line.find(PAGE) {
            break line[at + PAGE.len()..].trim_end_matches('/').to_string();
        }
    };
    // Keep reading stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let fired = |trigger: &str| -> u64 {
        let io = io_modules(&addr);
        io["instances"][0]["counters"]["triggers"][trigger]
            .as_u64()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while fired("WebSocket Established") == 0 {
        assert!(Instant::now() < deadline, "wsio run never connected");
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    while fired("Messages Received") < n as u64 {
        assert!(
            Instant::now() < deadline,
            "wsio run did not receive {n} messages"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}

/// `GET /io_modules` of a `wsio run` child, chunked or not.
fn io_modules(addr: &str) -> Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the child's HTTP port");
    write!(
        stream,
        "GET /io_modules HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return serde_json::from_str(body).expect("JSON");
    }
    let mut json = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        json.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    serde_json::from_str(&json).expect("JSON")
}
