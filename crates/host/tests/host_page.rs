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

use std::time::Instant;

use serde_json::Value;
use support::host_http::{EventStream, Response, http, http_as, is_log, is_status};
use support::{EchoServer, HOST_TIMEOUT as TIMEOUT, HostProcess};

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

/// The options of the first `<select>` named `name`, in order.
fn options<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let tag = control(html, name);
    assert!(
        tag.starts_with("<select"),
        "{name} is not a dropdown: {tag}"
    );
    let start = html.find(tag).unwrap() + tag.len();
    let end = start + html[start..].find("</select>").unwrap();
    html[start..end]
        .split("</option>")
        .filter_map(|o| o.rsplit_once('>').map(|(_, text)| text))
        .collect()
}

fn manifest() -> toml::Value {
    toml::from_str(include_str!("../../wsio/module.toml")).unwrap()
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
            } else if let Some(choices) = property.get("options") {
                let choices: Vec<String> = choices
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| escape(o.as_str().unwrap()))
                    .collect();
                assert_eq!(
                    options(html, &property_name),
                    choices,
                    "the {property_name} dropdown offers the manifest's options"
                );
            }
            let label = format!(">{property_name}</label>");
            assert!(
                forms(&label) >= 2,
                "a label per instance for {property_name}"
            );
        }
    }
    // Send Message can forward a message as it came.
    assert_eq!(
        options(html, "Message Type"),
        ["Text", "Binary", "As Received"]
    );
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

/// The article of instance `name` on the page.
fn article<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!(r#"data-instance="{name}""#))
        .unwrap_or_else(|| panic!("no instance {name}: {html}"));
    let end = start + html[start..].find("</article>").unwrap();
    &html[start..end]
}

#[test]
fn each_instance_shows_its_target_with_the_query_hidden_and_the_wires_from_it() {
    let mut host = demo();
    let demo_port = host
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("out: demo server: ws://127.0.0.1:"))
        .and_then(|rest| rest.split('/').next())
        .expect("the demo server's address")
        .to_owned();
    let html = host.get("/").body;

    // The demo's Path is /v3/1?api_key=demo: the key stays off the page.
    let target = format!(
        "<code data-target title=\"The query string is not shown: it may hold a key.\">ws://127.0.0.1:{demo_port}/v3/1?…</code>"
    );
    for name in ["piesocket", "visitor"] {
        assert!(article(&html, name).contains(&target), "{name}: {html}");
    }
    assert!(!html.contains("api_key"), "{html}");

    let piesocket = article(&html, "piesocket");
    for (number, text) in [
        (1, "WebSocket Established → piesocket: Send Message"),
        (
            2,
            r#"Messages Received (Contains "ping") → piesocket: Send Message"#,
        ),
    ] {
        let line = format!(
            r#"<li data-wire="{number}"><span class="wire-number">wire {number}</span> <span class="wire-text">{}</span></li>"#,
            escape(text)
        );
        assert!(piesocket.contains(&line), "{line} in {piesocket}");
    }
    let visitor = article(&html, "visitor");
    assert!(!visitor.contains("data-wire"), "{visitor}");
    assert!(visitor.contains("No wires start from this instance."));
    assert!(host.terminate().success());
}

#[test]
fn no_secret_of_the_project_reaches_the_page_or_the_api() {
    const PASSWORD: &str = "page-password-never-shown";
    const TOKEN: &str = "page-bearer-never-shown";
    const KEY: &str = "page-query-key-never-shown";
    let server = EchoServer::start();
    let project = format!(
        r#"
[[instance]]
name = "echo"
[instance.properties]
Hostname = "127.0.0.1"
Port = {port}
Path = "/feed?api_key={KEY}"
Username = "integrator"
Password = "{PASSWORD}"

[[startup]]
instance = "echo"
action = "Connect"
properties = {{ "Bearer Token" = "{TOKEN}" }}

[[wire]]
when = {{ instance = "echo", trigger = "Messages Received", properties = {{ "Match String" = "temp" }} }}
then = {{ instance = "echo", action = "Send Message", properties = {{ Message = "seen" }} }}

[[wire]]
when = {{ instance = "echo", trigger = "Gave Up" }}
then = {{ instance = "echo", action = "Connect", properties = {{ "Bearer Token" = "{TOKEN}" }} }}
"#,
        port = server.port()
    );
    let mut host = HostProcess::run_project("host-page", &project, "debug");
    host.wait_for_line("echo: WebSocket Established fired");

    let html = host.get("/").body;
    let echo = article(&html, "echo");
    assert!(
        echo.contains(&format!(
            "<code data-target title=\"The query string is not shown: it may hold a key.\">ws://127.0.0.1:{}/feed?…</code>",
            server.port()
        )),
        "{echo}"
    );
    assert!(
        echo.contains(&escape(
            r#"Messages Received (Contains "temp") → echo: Send Message"#
        )),
        "{echo}"
    );
    assert!(
        echo.contains(">wire 2</span> <span class=\"wire-text\">Gave Up → echo: Connect</span>"),
        "{echo}"
    );
    let api = host.get("/io_modules").body;
    for secret in [PASSWORD, TOKEN, KEY] {
        assert!(!html.contains(secret), "{secret} on the page: {html}");
        assert!(!api.contains(secret), "{secret} in /io_modules: {api}");
    }
    assert!(host.terminate().success());
    for secret in [PASSWORD, TOKEN] {
        let leaked: Vec<&String> = host.seen.iter().filter(|l| l.contains(secret)).collect();
        assert!(
            leaked.is_empty(),
            "{secret} in the host's output: {leaked:?}"
        );
    }
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
    let status_of = |key: &str| {
        piesocket_status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap()
    };
    let connection = status_of("ConnectionStatus");
    assert_eq!(connection["label"], "Connection Status");
    assert_eq!(connection["value"], "Established");
    assert!(connection["timestamp"].as_str().unwrap().contains('T'));
    // The badge comes from the machine-readable Connection State.
    let state = status_of("ConnectionState");
    assert_eq!(state["label"], "Connection State");
    assert_eq!(state["value"], "established");
    assert_eq!(state["connection"]["state"], "established");
    assert_eq!(state["connection"]["text"], "Established");
    assert!(connection.get("connection").is_none(), "{connection}");
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
    // The run this message caused (wire 1's greeting may be in the stream
    // too, when piesocket connected after the stream opened).
    let wire = events.wait_for("log", |e| {
        is_log(e, "action", "piesocket", "Send Message")
            && e["variables"][0] == "ping from the test"
    });
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

    // Connection State carries its state for the page's badge; Connection
    // Status says the same in words, for the detail beside it.
    let disconnect = host.post("/io_modules/piesocket/actions/Disconnect", "");
    assert_eq!(disconnect.status, 200, "{}", disconnect.body);
    // Both change in one batch, pushed in manifest order.
    events.wait_for("status", |s| {
        is_status(
            s,
            "piesocket",
            "ConnectionStatus",
            "Disconnected: Disconnect action",
        )
    });
    let status = events.wait_for("status", |s| {
        s["instance"] == "piesocket"
            && s["key"] == "ConnectionState"
            && s["connection"]["state"] == "disconnected"
    });
    assert_eq!(status["connection"]["text"], "Disconnected");
    assert_eq!(status["value"], "disconnected");
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
