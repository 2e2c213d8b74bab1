//! The status page and its live feed, end to end without a browser: the
//! real `wsio` binary runs the built-in demo (two instances on an embedded
//! demo server), and the tests read `GET /` and the `GET /events` stream
//! (Server-Sent Events) over plain TCP. They wait on the host's output and
//! on the stream with deadlines; they never sleep.
//!
//! The page is checked against `module.toml`, not a list of names, so a
//! manifest that grows keeps being shown in full. The browser suite
//! (`tests/browser/`) checks what a person sees and does.

mod support;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use serde_json::Value;
use support::{HOST_TIMEOUT as TIMEOUT, HostProcess};

/// Runs `wsio run --http 127.0.0.1:0` (the built-in demo) and waits until
/// both demo instances are established.
fn demo() -> HostProcess {
    let mut host = HostProcess::spawn(&["run", "--http", "127.0.0.1:0"], "debug");
    host.wait_for_lines(&[
        "piesocket: WebSocket Established fired",
        "visitor: WebSocket Established fired",
    ]);
    host
}

/// What these tests do with the host: its page, API and event stream.
trait Page {
    fn get(&self, path: &str) -> Response;
    fn post(&self, path: &str, body: &str) -> Response;
    fn events(&self) -> EventStream;
}

impl Page for HostProcess {
    fn get(&self, path: &str) -> Response {
        http(&self.addr, "GET", path, "", &[])
    }

    fn post(&self, path: &str, body: &str) -> Response {
        http(&self.addr, "POST", path, body, &[])
    }

    fn events(&self) -> EventStream {
        EventStream::open(&self.addr)
    }
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`.
fn http(addr: &str, method: &str, path: &str, body: &str, headers: &[&str]) -> Response {
    http_as(addr, addr, method, path, body, headers)
}

/// The same, naming `host` in the Host header.
fn http_as(
    addr: &str,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[&str],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("bad response: {response}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status: {head}"));
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `GET /events`, read as it comes: chunked transfer decoded, SSE events
/// parsed into (event name, JSON data).
struct EventStream {
    stream: TcpStream,
    /// Bytes read and not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked bytes not yet parsed into events.
    body: Vec<u8>,
    events: VecDeque<(String, Value)>,
    /// Everything the stream carried, to search and to show on failure.
    all: String,
    /// Set once the response head is read: what follows is chunked.
    in_body: bool,
    /// Every event taken out so far.
    received: Vec<(String, Value)>,
}

impl EventStream {
    fn open(addr: &str) -> EventStream {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut events = EventStream {
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            events: VecDeque::new(),
            all: String::new(),
            in_body: false,
            received: Vec::new(),
        };
        let deadline = Instant::now() + TIMEOUT;
        let head = loop {
            if let Some(end) = find(&events.raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&events.raw[..end]).into_owned();
                events.raw.drain(..end + 4);
                events.in_body = true;
                events.dechunk();
                break head;
            }
            assert!(events.read(deadline), "the stream closed before its head");
        };
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        events
    }

    /// Reads what arrives before the deadline; false at end of stream.
    fn read(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the stream timed out; it carried:\n{}",
            self.all
        );
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut buffer = [0u8; 16 * 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buffer[..n]);
                if self.in_body {
                    self.dechunk();
                }
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "nothing more on the stream within {TIMEOUT:?}; it carried:\n{}",
                    self.all
                )
            }
            Err(e) => panic!("reading the stream: {e}"),
        }
    }

    fn dechunk(&mut self) {
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..line_end]).unwrap();
            let size = usize::from_str_radix(size.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            let chunk = self.raw[start..start + size].to_vec();
            self.all.push_str(&String::from_utf8_lossy(&chunk));
            self.body.extend_from_slice(&chunk);
            self.raw.drain(..start + size + 2);
        }
        while let Some(end) = find(&self.body, b"\n\n") {
            let block = String::from_utf8(self.body[..end].to_vec()).unwrap();
            self.body.drain(..end + 2);
            let (mut event, mut data) = ("message".to_string(), None);
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_string();
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(json).unwrap());
                }
            }
            // Comments (keep-alives) and `retry:` alone carry no data.
            if let Some(data) = data {
                self.events.push_back((event, data));
            }
        }
    }

    /// The next event, waiting for it up to the deadline.
    fn next(&mut self, deadline: Instant) -> (String, Value) {
        loop {
            if let Some(event) = self.events.pop_front() {
                self.received.push(event.clone());
                return event;
            }
            assert!(
                self.read(deadline),
                "the stream ended; it carried:\n{}",
                self.all
            );
        }
    }

    /// The first event of kind `event` that satisfies `matches`, among all
    /// those received so far or, failing that, the next ones. (The order
    /// of events of different kinds is not the tests' business: a status
    /// change an action causes may arrive before the action's log entry.)
    fn wait_for(&mut self, event: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let found = |(name, data): &(String, Value)| name == event && matches(data);
        if let Some((_, data)) = self.received.iter().find(|e| found(e)) {
            return data.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let next = self.next(deadline);
            if found(&next) {
                return next.1;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_log(data: &Value, kind: &str, instance: &str, name: &str) -> bool {
    data["kind"] == kind && data["instance"] == instance && data["name"] == name
}

fn is_status(data: &Value, instance: &str, key: &str, value: &str) -> bool {
    data["instance"] == instance && data["key"] == key && data["value"] == value
}

/// Names as they appear in HTML attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The tag of the first form control named `name`.
fn control<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!(r#" name="{name}""#))
        .unwrap_or_else(|| panic!("no control named {name}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap() + 1;
    &html[start..end]
}

fn manifest() -> toml::Value {
    toml::from_str(include_str!("../module.toml")).unwrap()
}

fn list<'a>(value: &'a toml::Value, key: &str) -> &'a [toml::Value] {
    value
        .get(key)
        .and_then(toml::Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text<'a>(value: &'a toml::Value, key: &str) -> &'a str {
    value.get(key).and_then(toml::Value::as_str).unwrap_or("")
}

#[test]
fn the_page_lists_every_instance_with_forms_generated_from_the_manifest() {
    let mut host = demo();
    let page = host.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("Content-Security-Policy")
            .is_some_and(|csp| csp.contains("script-src 'self'")),
        "{}",
        page.head
    );
    let html = &page.body;

    let manifest = manifest();
    let module = manifest.get("module").unwrap();
    for instance in ["piesocket", "visitor"] {
        assert!(
            html.contains(&format!(r#"data-instance="{instance}""#)),
            "{html}"
        );
    }
    assert!(html.contains(&escape(text(module, "name"))));
    assert!(html.contains(&escape(text(module, "version"))));
    let forms = |needle: &str| html.matches(needle).count();
    for action in list(&manifest, "action") {
        let name = escape(text(action, "name"));
        assert_eq!(
            forms(&format!(r#"<form class="action" data-action="{name}""#)),
            2,
            "one {name} form per instance"
        );
        for property in list(action, "property") {
            let property_name = escape(text(property, "name"));
            let tag = control(html, &property_name);
            let secret = property.get("secret").and_then(toml::Value::as_bool) == Some(true);
            if secret {
                // Never pre-filled: no value attribute.
                assert!(tag.starts_with(r#"<input type="password""#), "{tag}");
                assert!(!tag.contains("value="), "{tag}");
            } else if text(property, "editor") == "text" {
                assert!(tag.starts_with("<textarea"), "{tag}");
            }
            let label = format!(">{property_name}</label>");
            assert!(
                forms(&label) >= 2,
                "a label per instance for {property_name}"
            );
        }
    }
    for status in list(&manifest, "status") {
        let key = escape(text(status, "key"));
        assert_eq!(forms(&format!(r#"<tr data-key="{key}">"#)), 2, "{key}");
    }
    assert!(html.contains(r#"<a href="/io_modules">"#));

    for (asset, content_type) in [
        ("/assets/page.js", "text/javascript; charset=utf-8"),
        ("/assets/page.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let response = host.get(asset);
        assert_eq!(response.status, 200, "{asset}");
        assert_eq!(response.header("Content-Type"), Some(content_type));
        assert!(html.contains(asset), "the page loads {asset}");
    }

    // A page of another site cannot run actions through the visitor's
    // browser; the host's own page (same origin) and curl (none) can.
    let origin = |origin: &str| {
        http(
            &host.addr,
            "POST",
            "/io_modules/visitor/actions/Send%20Message",
            r#"{"Message":"from elsewhere"}"#,
            &[&format!("Origin: {origin}")],
        )
        .status
    };
    assert_eq!(origin("https://attacker.example"), 403);
    assert_eq!(origin(&format!("http://{}", host.addr)), 200);

    // DNS rebinding: a site that points its own name at 127.0.0.1 is
    // same-origin with itself, so the Host it names is what is refused,
    // for reading as much as for actions. IP addresses and localhost work.
    let port = host.addr.rsplit(':').next().unwrap().to_owned();
    let as_host = |name: &str, method: &str, path: &str| {
        let named = format!("{name}:{port}");
        http_as(
            &host.addr,
            &named,
            method,
            path,
            "{}",
            &[&format!("Origin: http://{named}")],
        )
    };
    let refused = as_host("rebound.attacker.example", "GET", "/io_modules");
    assert_eq!(refused.status, 421, "{}", refused.body);
    assert!(refused.body.contains("DNS rebinding"), "{}", refused.body);
    assert!(
        !refused.body.contains("visitor"),
        "no status leaks: {}",
        refused.body
    );
    let refused = as_host(
        "rebound.attacker.example",
        "POST",
        "/io_modules/visitor/actions/Disconnect",
    );
    assert_eq!(refused.status, 421);
    assert_eq!(as_host("localhost", "GET", "/io_modules").status, 200);
    assert_eq!(as_host("127.0.0.1", "GET", "/").status, 200);

    assert!(host.terminate().success());
}

#[test]
fn the_event_stream_starts_with_a_snapshot_then_pushes_actions_triggers_and_status() {
    let mut host = demo();
    let mut events = host.events();

    let (name, snapshot) = events.next(Instant::now() + TIMEOUT);
    assert_eq!(name, "snapshot");
    let instances: Vec<&str> = snapshot["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(instances, ["piesocket", "visitor"]);
    let piesocket_status = &snapshot["instances"][0]["status"];
    let connection = piesocket_status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "ConnectionStatus")
        .unwrap();
    assert_eq!(connection["label"], "Connection Status");
    assert_eq!(connection["connection"]["state"], "established");
    assert!(connection["timestamp"].as_str().unwrap().contains('T'));
    let ring = snapshot["events"].as_array().unwrap();
    assert!(
        ring.iter()
            .any(|e| is_log(e, "action", "piesocket", "Connect") && e["source"] == "startup 1"),
        "{snapshot}"
    );
    assert!(
        ring.iter()
            .any(|e| is_log(e, "trigger", "visitor", "WebSocket Established")),
        "{snapshot}"
    );

    let sent = host.post(
        "/io_modules/visitor/actions/Send%20Message",
        r#"{"Message":"ping from the test"}"#,
    );
    assert_eq!(sent.status, 200, "{}", sent.body);

    let action = events.wait_for("log", |e| is_log(e, "action", "visitor", "Send Message"));
    assert_eq!(action["source"], "http");
    assert_eq!(action["detail"], r#"{"Message":"ping from the test"}"#);
    assert_eq!(action["error"], Value::Null);
    events.wait_for("status", |s| {
        is_status(s, "visitor", "LastSent", "ping from the test")
    });
    // piesocket's wire answers "pong: <1>"; the visitor hears it.
    let fired = events.wait_for("log", |e| {
        is_log(e, "trigger", "piesocket", "Messages Received")
    });
    assert_eq!(fired["detail"], "ping from the test");
    let wire = events.wait_for("log", |e| is_log(e, "action", "piesocket", "Send Message"));
    assert_eq!(wire["source"], "wire 2");
    assert_eq!(
        wire["variables"][0], "ping from the test",
        "<1> is the message"
    );
    let status = events.wait_for("status", |s| {
        is_status(s, "visitor", "LastReceived", "pong: ping from the test")
    });
    assert_eq!(status["label"], "Last Received");
    assert!(status.get("connection").is_none(), "{status}");

    // Connection Status carries its state for the page's badge.
    let disconnect = host.post("/io_modules/piesocket/actions/Disconnect", "");
    assert_eq!(disconnect.status, 200, "{}", disconnect.body);
    let status = events.wait_for("status", |s| {
        s["instance"] == "piesocket"
            && s["key"] == "ConnectionStatus"
            && s["connection"]["state"] == "disconnected"
    });
    assert_eq!(status["connection"]["text"], "Disconnected");
    events.wait_for("log", |e| is_log(e, "trigger", "piesocket", "Disconnected"));

    // An action the module refuses is logged as an error, with its message.
    let refused = host.post(
        "/io_modules/piesocket/actions/Send%20Message",
        r#"{"Message":"nobody listens"}"#,
    );
    assert_ne!(refused.status, 200, "{}", refused.body);
    let error = events.wait_for("log", |e| is_log(e, "error", "piesocket", "Send Message"));
    assert_eq!(error["error"], refused.json()["error"]);

    assert!(host.terminate().success());
}

#[test]
fn a_bearer_token_never_appears_in_the_stream_the_page_the_api_or_the_log() {
    const TOKEN: &str = "host-page-test-token.abc123";
    let mut host = demo();
    let mut events = host.events();

    assert_eq!(
        host.post("/io_modules/visitor/actions/Disconnect", "")
            .status,
        200
    );
    events.wait_for("log", |e| is_log(e, "trigger", "visitor", "Disconnected"));
    let connect = host.post(
        "/io_modules/visitor/actions/Connect",
        &format!(r#"{{"Bearer Token":"{TOKEN}"}}"#),
    );
    assert_eq!(connect.status, 200, "{}", connect.body);
    let logged = events.wait_for("log", |e| is_log(e, "action", "visitor", "Connect"));
    assert_eq!(logged["detail"], r#"{"Bearer Token":"(secret)"}"#);
    // The token went out with the connection, which came up.
    events.wait_for("log", |e| {
        is_log(e, "trigger", "visitor", "WebSocket Established")
    });
    // A token the module refuses is not echoed in its error either.
    let refused = host.post(
        "/io_modules/visitor/actions/Connect",
        &format!(r#"{{"Bearer Token":"bad {TOKEN}"}}"#),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(!refused.body.contains(TOKEN), "{}", refused.body);
    events.wait_for("log", |e| is_log(e, "error", "visitor", "Connect"));

    assert!(!events.all.contains(TOKEN), "in /events:\n{}", events.all);
    let page = host.get("/");
    assert!(!page.body.contains(TOKEN), "on the page");
    let api = host.get("/io_modules");
    assert!(!api.body.contains(TOKEN), "in /io_modules: {}", api.body);
    // A new page gets the ring in its snapshot: masked there too.
    let mut later = host.events();
    let (_, snapshot) = later.next(Instant::now() + TIMEOUT);
    let snapshot = snapshot.to_string();
    assert!(snapshot.contains("(secret)"), "{snapshot}");
    assert!(!snapshot.contains(TOKEN), "{snapshot}");

    // The host logged at debug level, its most talkative: still no token.
    assert!(host.terminate().success());
    let leaked: Vec<&String> = host.seen.iter().filter(|l| l.contains(TOKEN)).collect();
    assert!(leaked.is_empty(), "in the host's output: {leaked:?}");
}

#[test]
fn the_event_stream_refuses_clients_beyond_32_with_a_reason() {
    let mut host = demo();
    let mut open = Vec::new();
    for _ in 0..32 {
        let mut events = host.events();
        let (name, _) = events.next(Instant::now() + TIMEOUT);
        assert_eq!(name, "snapshot");
        open.push(events);
    }
    let refused = host.get("/events");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("at most 32"),
        "{}",
        refused.body
    );
    // Shutting down ends every stream (its last chunk), and the host exits 0.
    assert!(host.terminate().success());
    for mut events in open {
        let deadline = Instant::now() + TIMEOUT;
        while events.read(deadline) {}
        assert!(events.raw.is_empty() && events.body.is_empty());
    }
}
