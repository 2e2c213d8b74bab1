//! The `wsio` host end to end, as a controller runs the module: the real
//! binary loads the real module (`libwsio.so` next to it) through the C ABI,
//! connects to a real WebSocket server on 127.0.0.1, and is driven over its
//! HTTP API. The tests wait by reading the host's stdout and log lines with
//! a deadline, and on the fixture servers' observations; they never sleep.

mod support;

use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use support::host_http::{EventStream, http, is_status};
use support::{EchoServer, HOST_TIMEOUT as TIMEOUT, HostProcess, project_instance};
use wsio_host::demo_server::{DemoServer, DemoServerConfig};

/// A running `wsio` process with its output read line by line, and its
/// HTTP API.
struct Host(HostProcess);

impl std::ops::Deref for Host {
    type Target = HostProcess;
    fn deref(&self) -> &HostProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Host {
    fn deref_mut(&mut self) -> &mut HostProcess {
        &mut self.0
    }
}

impl Host {
    /// Runs `wsio run <project>` with the HTTP API on a free port.
    fn run_project(test: &str, project: &str) -> Host {
        Host(HostProcess::run_project(
            &format!("host-e2e-{test}"),
            project,
            "info",
        ))
    }

    fn spawn(args: &[&str]) -> Host {
        Host(HostProcess::spawn(args, "info"))
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = http(&self.addr, "GET", path, "", &[]);
        (response.status, response.body)
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = http(&self.addr, "POST", path, body, &[]);
        (response.status, response.json())
    }

    fn io_modules(&self) -> Value {
        let (status, body) = self.get("/io_modules");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn demo_server() -> DemoServer {
    DemoServer::start(DemoServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    })
    .unwrap()
}

/// An instance on `port` and `path`, connected at startup.
fn instance(name: &str, port: u16, path: &str) -> String {
    project_instance(name, port, path, "")
}

fn status_value(io_modules: &Value, instance: &str, key: &str) -> String {
    let instance = io_modules["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == instance)
        .unwrap();
    let status = instance["status"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap();
    status["value"].as_str().unwrap().to_string()
}

#[test]
fn a_received_message_runs_the_wired_actions_in_order_with_the_trigger_variable() {
    let server = demo_server();
    let port = server.local_addr().port();
    // "a" and "b" each have a channel of their own with notify_self, so each
    // hears its own messages back; the wire answers a's pings through b, so
    // the answer (which contains "ping" too) cannot trigger the wire again.
    let project = format!(
        r#"{}{}
[[wire]]
when = {{ instance = "a", trigger = "Messages Received", properties = {{ "Match String" = "ping" }} }}
then = [
  {{ instance = "b", action = "Send Message", properties = {{ Message = "pong: <1>" }} }},
  {{ instance = "b", action = "Send Message", properties = {{ Message = "again: <1>" }} }},
]
"#,
        instance("a", port, "/v3/a?api_key=test&notify_self=1"),
        instance("b", port, "/v3/b?api_key=test&notify_self=1"),
    );
    let mut host = Host::run_project("wire", &project);
    host.wait_for_lines(&[
        "a: WebSocket Established fired",
        "b: WebSocket Established fired",
    ]);

    let mut events = EventStream::open(&host.addr);
    let send = "/io_modules/a/actions/Send%20Message";
    assert_eq!(
        host.post(send, r#"{"Message":"hello"}"#),
        (200, serde_json::json!({"ok": true}))
    );
    assert_eq!(
        host.post(send, r#"{"Message":"ping 1"}"#),
        (200, serde_json::json!({"ok": true}))
    );

    host.wait_for_line(r#"a: Messages Received fired: "ping 1""#);
    host.wait_for_line(
        r#"wire 1, action 1: b: Send Message {"Message":"pong: <1>"} with <1> = "ping 1""#,
    );
    host.wait_for_line(r#"b: Messages Received fired: "pong: ping 1""#);
    host.wait_for_line(r#"b: Messages Received fired: "again: ping 1""#);
    // "hello" came back to a first, and did not match: had the wire run for
    // it, b would have heard "pong: hello" before "pong: ping 1".
    assert!(host.saw(r#"a: Messages Received fired: "hello""#));
    assert!(!host.saw("pong: hello"), "{}", host.seen.join("\n"));

    // Message status follows within STATUS_EVERY (it is coalesced while
    // messages flow); then the API shows it too.
    events.wait_for("status", |s| is_status(s, "a", "LastSent", "ping 1"));
    events.wait_for("status", |s| {
        is_status(s, "b", "LastReceived", "again: ping 1")
    });
    let io_modules = host.io_modules();
    assert_eq!(status_value(&io_modules, "a", "LastSent"), "ping 1");
    assert_eq!(
        status_value(&io_modules, "b", "LastReceived"),
        "again: ping 1"
    );

    assert!(host.terminate().success());
}

#[test]
fn io_modules_shows_modules_and_instances_and_bad_requests_say_what_exists() {
    let server = demo_server();
    let port = server.local_addr().port();
    let mut host = Host::run_project("api", &instance("piesocket", port, "/v3/1?api_key=test"));
    host.wait_for_line("piesocket: WebSocket Established fired");

    let io_modules = host.io_modules();
    let modules = io_modules["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 1);
    assert!(modules[0]["id"].is_u64(), "{io_modules}");
    assert_eq!(modules[0]["name"], "WebSocket Client");
    assert!(modules[0]["version"].is_string(), "{io_modules}");
    let instances = io_modules["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1);
    assert!(instances[0]["id"].is_u64(), "{io_modules}");
    assert_eq!(instances[0]["module_id"], modules[0]["id"]);
    assert_eq!(instances[0]["name"], "piesocket");
    let keys: Vec<&str> = instances[0]["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    // Every status variable the manifest declares, in its order.
    let declared: Vec<&str> = wsio::testing::Manifest::get()
        .status
        .iter()
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(keys, declared);
    for status in instances[0]["status"].as_array().unwrap() {
        for field in ["label", "value", "timestamp"] {
            assert!(status[field].is_string(), "{field} in {status}");
        }
    }

    let (status, body) = host.post(
        "/io_modules/piesoket/actions/Send%20Message",
        r#"{"Message":"x"}"#,
    );
    assert_eq!(status, 404);
    assert_eq!(
        body["error"],
        r#"no instance named "piesoket"; instances: "piesocket""#
    );

    let (status, body) = host.post(
        "/io_modules/piesocket/actions/Send%20Mesage",
        r#"{"Message":"x"}"#,
    );
    assert_eq!(status, 404);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(
            r#"has no action "Send Mesage"; its actions: "Connect", "Disconnect", "Send Message""#
        ),
        "{error}"
    );

    let (status, body) = host.post(
        "/io_modules/piesocket/actions/Send%20Message",
        r#"{"Message": "#,
    );
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    // The module's own refusal comes back as it is.
    let (status, body) = host.post(
        "/io_modules/piesocket/actions/Send%20Message",
        r#"{"Mesage":"x"}"#,
    );
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("Mesage"), "{body}");
    // A name off by case or a typo: the answer names the one meant.
    assert!(
        body["error"].as_str().unwrap().ends_with(
            r#"unknown action "Send Message" property "Mesage"; did you mean "Message"?"#
        ),
        "{body}"
    );
    let (status, body) = host.post(
        "/io_modules/piesocket/actions/Connect",
        r#"{"bearer token":"t"}"#,
    );
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().ends_with(
            r#"unknown action "Connect" property "bearer token"; did you mean "Bearer Token"?"#
        ),
        "{body}"
    );
    // A Send Message with no Message is refused, not sent empty.
    let (status, body) = host.post("/io_modules/piesocket/actions/Send%20Message", "{}");
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Message is required"),
        "{body}"
    );

    // The controller's network going down and up reaches the instance.
    let (status, body) = host.post("/io_modules/piesocket/network", r#"{"up":false}"#);
    assert_eq!((status, &body), (200, &serde_json::json!({"ok": true})));
    let (status, body) = host.post("/io_modules/piesocket/network", r#"{"up":true}"#);
    assert_eq!((status, &body), (200, &serde_json::json!({"ok": true})));
    let (status, body) = host.post("/io_modules/piesocket/network", r#"{"up":"yes"}"#);
    assert_eq!(status, 400, "{body}");

    let (status, page) = host.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("/io_modules"), "{page}");

    assert!(host.terminate().success());
}

#[test]
fn sigterm_closes_every_connection_with_1000_and_exits_0() {
    let echo = EchoServer::start();
    let mut host = Host::run_project(
        "sigterm",
        &format!(
            "{}{}",
            instance("one", echo.port(), "/"),
            instance("two", echo.port(), "/")
        ),
    );
    host.wait_for_lines(&[
        "one: WebSocket Established fired",
        "two: WebSocket Established fired",
    ]);

    let status = host.terminate();
    assert_eq!(status.code(), Some(0), "{}", host.seen.join("\n"));
    let closed = echo.wait_for(|o| o.closes.len() == 2, TIMEOUT);
    let closes = echo.snapshot().closes;
    assert!(closed, "closes seen: {closes:?}");
    assert!(closes.iter().all(|c| c.code == 1000), "{closes:?}");
    // What the instances reported while closing is still logged.
    assert!(
        host.saw("one: Disconnected fired"),
        "{}",
        host.seen.join("\n")
    );
    assert!(
        host.saw("two: Disconnected fired"),
        "{}",
        host.seen.join("\n")
    );
}

#[test]
fn a_wire_on_websocket_established_sends_at_once() {
    let echo = EchoServer::start();
    let project = format!(
        r#"{}
[[wire]]
when = {{ instance = "greeter", trigger = "WebSocket Established" }}
then = {{ instance = "greeter", action = "Send Message", properties = {{ Message = "hello from wsio" }} }}
"#,
        instance("greeter", echo.port(), "/")
    );
    let mut host = Host::run_project("greeting", &project);
    // The action's log line says whether the module took it.
    let ran = host.wait_for_line("wire 1: greeter: Send Message");
    assert!(!ran.contains("failed"), "{ran}");
    let greeted = echo.wait_for(
        |o| o.texts().iter().any(|t| t == "hello from wsio"),
        TIMEOUT,
    );
    assert!(
        greeted,
        "the server got no greeting; host output:\n{}",
        host.seen.join("\n")
    );
    assert!(host.terminate().success());
}

#[test]
fn an_instance_the_module_refuses_stops_the_project_before_anything_runs() {
    let echo = EchoServer::start();
    let project = format!(
        r#"{}
[[instance]]
name = "broken"
[instance.properties]
Hostname = "127.0.0.1"
Port = 70000
"#,
        instance("fine", echo.port(), "/")
    );
    let dir = std::env::temp_dir().join(format!("wsio-host-e2e-{}-refused", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("project.toml"), project).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wsio"))
        .args(["run", "project.toml", "--http", "127.0.0.1:0"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: project.toml:15: instance \"broken\": "),
        "{stderr}"
    );
    assert!(
        stderr.contains("70000"),
        "the module's message names the bad value: {stderr}"
    );
    assert!(!stdout.contains("status page:"), "{stdout}");
    // The first instance was created, then destroyed: it never connected,
    // since startup actions run only once every instance exists.
    assert_eq!(echo.snapshot().connections(), 0);
}

#[test]
fn wsio_run_without_a_project_runs_the_built_in_demo() {
    let mut host = Host::spawn(&["run", "--http", "127.0.0.1:0"]);
    let curl = host.wait_for_line("out: try: curl -X POST");
    host.wait_for_lines(&[
        "piesocket: WebSocket Established fired",
        "visitor: WebSocket Established fired",
    ]);

    // Do what the printed curl line does.
    let quoted: Vec<&str> = curl.split('\'').skip(1).step_by(2).collect();
    let (url, body) = (quoted[0], quoted[1]);
    let path = &url[url.find("/io_modules").unwrap()..];
    assert_eq!(
        host.post(path, body),
        (200, serde_json::json!({"ok": true}))
    );
    host.wait_for_line(r#"piesocket: Messages Received fired: "ping""#);
    host.wait_for_line(r#"visitor: Messages Received fired: "pong: ping""#);

    assert!(host.terminate().success());
}

#[test]
fn a_binary_message_reaches_a_wire_with_its_message_type_and_regex_captures() {
    // "a" hears its own binary message back (notify_self); the wire answers
    // through "b" with the Message Type (the last variable) and the capture.
    let (_server, mut host) = two_on_the_demo_server_a_sends_binary(
        "binary",
        r#"[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match Mode" = "Regex", "Match String" = "^00(ff)" } }
then = { instance = "b", action = "Send Message", properties = { Message = "<1> is <3>, group <2>" } }
"#,
    );
    host.wait_for_line(r#"b: Messages Received fired: "00ff10 is binary, group ff""#);
    assert!(host.terminate().success());
}

#[test]
fn a_wire_bridges_a_binary_message_as_it_came() {
    // "a" hears its own binary message back and the first wire bridges it
    // to "b" with As Received; "b" hears that back and says which Message
    // Type it came as (a text "00ff10" would say text).
    let (_server, mut host) = two_on_the_demo_server_a_sends_binary(
        "bridge",
        r#"[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match Mode" = "Starts With", "Match String" = "00ff" } }
then = { instance = "b", action = "Send Message", properties = { Message = "<1>", "Message Type" = "As Received" } }

[[wire]]
when = { instance = "b", trigger = "Messages Received", properties = { "Match Mode" = "Exact", "Match String" = "00ff10" } }
then = { instance = "b", action = "Send Message", properties = { Message = "b got <1> as <2>" } }
"#,
    );
    host.wait_for_line(r#"b: Messages Received fired: "b got 00ff10 as binary""#);
    assert!(!host.saw("failed"), "{}", host.seen.join("\n"));
    assert!(host.terminate().success());
}

#[test]
fn an_http_connect_while_connected_says_it_was_ignored_and_why() {
    let echo = EchoServer::start();
    let host = Host::run_project("connect-ignored", &instance("greeter", echo.port(), "/"));
    // Established, as the module's machine-readable Connection State says:
    // in the stream's first snapshot, or in a status push after it.
    let mut events = EventStream::open(&host.addr);
    let (name, snapshot) = events.next(Instant::now() + TIMEOUT);
    assert_eq!(name, "snapshot");
    let established = |s: &Value| s["key"] == "ConnectionState" && s["value"] == "established";
    let already = snapshot["instances"][0]["status"]
        .as_array()
        .unwrap()
        .iter()
        .any(established);
    if !already {
        events.wait_for("status", |s| s["instance"] == "greeter" && established(s));
    }

    let (status, body) = host.post("/io_modules/greeter/actions/Connect", "{}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(
        body["ignored"],
        "the instance is already established, so this Connect changes nothing: \
         Disconnect first to connect again (for example with a new Bearer Token)",
        "{body}"
    );
    assert_eq!(echo.snapshot().connections(), 1, "no second connection");

    // Once disconnected, a Connect is a Connect: no note.
    let (status, _) = host.post("/io_modules/greeter/actions/Disconnect", "{}");
    assert_eq!(status, 200);
    events.wait_for("status", |s| {
        s["instance"] == "greeter" && s["key"] == "ConnectionState" && s["value"] == "disconnected"
    });
    let (status, body) = host.post("/io_modules/greeter/actions/Connect", "{}");
    assert_eq!((status, &body), (200, &serde_json::json!({"ok": true})));
}

/// Instances "a" and "b" on a demo server of their own (each hears its own
/// messages back) with `wires` between them; once both are established,
/// "a" sends the binary message 00 ff 10 through HTTP.
fn two_on_the_demo_server_a_sends_binary(test: &str, wires: &str) -> (DemoServer, Host) {
    let server = demo_server();
    let port = server.local_addr().port();
    let project = format!(
        "{}{}\n{wires}",
        instance("a", port, "/v3/a?api_key=test&notify_self=1"),
        instance("b", port, "/v3/b?api_key=test&notify_self=1"),
    );
    let mut host = Host::run_project(test, &project);
    host.wait_for_lines(&[
        "a: WebSocket Established fired",
        "b: WebSocket Established fired",
    ]);
    let (status, _) = host.post(
        "/io_modules/a/actions/Send%20Message",
        r#"{"Message":"00 ff 10","Message Type":"Binary"}"#,
    );
    assert_eq!(status, 200);
    (server, host)
}
