//! Editing the running project (issue 17): `PUT /project` applies live and
//! rewrites the project file, `POST /project/reload` and SIGHUP re-read it,
//! `POST /project/save` gives the demo a file, `GET/POST /modules` list and
//! load modules. The real `wsio` binary and module, real echo servers on
//! 127.0.0.1; every wait is on an observation or a log line, with a
//! deadline.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use serde_json::{Value, json};
use support::host_http::{EventStream, http};
use support::{EchoServer, HOST_TIMEOUT, HostProcess, TOKEN};

fn request(host: &HostProcess, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = http(&host.addr, method, path, &body.to_string(), &[]);
    (response.status, response.json())
}

fn get_project(host: &HostProcess) -> Value {
    let response = http(&host.addr, "GET", "/project", "", &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

fn project_file(host: &HostProcess) -> PathBuf {
    host.dir.as_ref().unwrap().join("project.toml")
}

fn bak_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.bak", file.display()))
}

/// `wsio check` on the file passes.
fn assert_checks(file: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_wsio"))
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "wsio check {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The entry of a JSON list with that `"name"`.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"] == name)
        .unwrap_or_else(|| panic!("no {name:?} in {list}"))
}

fn mode_of(file: &Path) -> u32 {
    std::fs::metadata(file).unwrap().permissions().mode() & 0o777
}

/// An instance on `server` at `path`, connected at startup.
fn instance(name: &str, server: &EchoServer, path: &str, comment: &str) -> String {
    format!(
        r#"
# {comment}
[[instance]]
name = "{name}"
[instance.properties]
Hostname = "127.0.0.1"
Port = {port}
Path = "{path}"  # where the echo server listens

[[startup]]
instance = "{name}"
action = "Connect"
"#,
        port = server.port()
    )
}

/// Answers `ping <n>` on `keep` with `<word> <n>` (a Regex, so the echo
/// of the answer does not match again).
fn ping_wire(word: &str) -> String {
    format!(
        r#"
[[wire]]
when = {{ instance = "keep", trigger = "Messages Received", properties = {{ "Match Mode" = "Regex", "Match String" = "^ping (\\d+)$" }} }}
then = {{ instance = "keep", action = "Send Message", properties = {{ Message = "{word} <2>" }} }}
"#
    )
}

fn handshakes(server: &EchoServer, n: usize) {
    assert!(
        server.wait_for(|o| o.handshakes.len() >= n, HOST_TIMEOUT),
        "{n} handshake(s): {:?}",
        server.observations().snapshot().handshakes.len()
    );
}

/// The answer to `ping <n>` the server received: "pong" or "PONG".
fn answer_to(server: &EchoServer, n: usize) -> String {
    let answers = [format!("pong {n}"), format!("PONG {n}")];
    let mut found = String::new();
    let seen = server.wait_for(
        |o| match o.texts().into_iter().find(|t| answers.contains(t)) {
            Some(text) => {
                found = text;
                true
            }
            None => false,
        },
        HOST_TIMEOUT,
    );
    assert!(
        seen,
        "no answer to ping {n}: {:?}",
        server.observations().snapshot().texts()
    );
    found.split(' ').next().unwrap().to_string()
}

#[test]
fn an_apply_keeps_an_unchanged_connection_recreates_a_changed_one_and_closes_a_removed_one() {
    let keep = EchoServer::start();
    let change = EchoServer::start();
    let gone = EchoServer::start();
    let fresh = EchoServer::start();
    let original = format!(
        "# A project edited live by the test; this comment must survive.\n{}{}{}{}",
        instance("keep", &keep, "/keep", "kept as it is"),
        instance("change", &change, "/before", "its Path changes"),
        instance("gone", &gone, "/gone", "removed"),
        ping_wire("pong"),
    );
    let mut host = HostProcess::run_project("apply-live", &original, "info");
    for server in [&keep, &change, &gone] {
        handshakes(server, 1);
    }
    let file = project_file(&host);

    // The edit: keep untouched, change's Path, gone removed, fresh added,
    // and the wire answers in capitals from now on.
    let mut project = get_project(&host);
    project["instances"][1]["properties"]["Path"] = json!("/after");
    let instances = project["instances"].as_array_mut().unwrap();
    instances.remove(2);
    instances.push(json!({"name": "fresh", "properties": {
        "Hostname": "127.0.0.1", "Port": fresh.port(), "Path": "/fresh"}}));
    project["startup"] = json!([
        {"instance": "keep", "action": "Connect"},
        {"instance": "change", "action": "Connect"},
        {"instance": "fresh", "action": "Connect"},
    ]);
    project["wires"][0]["then"][0]["properties"]["Message"] = json!("PONG <2>");
    let mut events = EventStream::open(&host.addr);

    // Pings flow through "keep" while the apply runs on another thread:
    // each is answered exactly once, by the old wire or the new one, and
    // never by the old one after the new one answered.
    let addr = host.addr.clone();
    let body = project.to_string();
    let put = thread::spawn(move || {
        let response = http(&addr, "PUT", "/project", &body, &[]);
        (response.status, response.json())
    });
    let mut answers = Vec::new();
    let mut after = 0;
    let mut n = 0;
    while after < 5 {
        if put.is_finished() {
            after += 1;
        }
        assert_eq!(keep.send_to_all(format!("ping {n}")), 1);
        answers.push(answer_to(&keep, n));
        n += 1;
    }
    let (status, body) = put.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["applied"],
        json!({"added": ["fresh"], "changed": ["change"], "removed": ["gone"], "unchanged": ["keep"]})
    );
    assert_eq!(body["saved"], file.to_str().unwrap());
    assert_eq!(body["warnings"], json!([]));
    let first_new = answers
        .iter()
        .position(|a| a == "PONG")
        .expect("the new wire answered");
    assert!(
        answers[first_new..].iter().all(|a| a == "PONG"),
        "one configuration, then the other: {answers:?}"
    );
    for word in ["pong", "PONG"] {
        let texts = keep.observations().snapshot().texts();
        for i in 0..n {
            let count = texts
                .iter()
                .filter(|t| **t == format!("{word} {i}"))
                .count();
            assert!(count <= 1, "{word} {i} answered {count} times");
        }
    }
    let kept = keep.observations().snapshot();
    assert_eq!(
        (kept.connections(), kept.handshakes.len()),
        (1, 1),
        "no reconnect"
    );
    assert!(kept.closes.is_empty(), "{:?}", kept.closes);

    assert!(change.wait_for(|o| o.closes.iter().any(|c| c.code == 1000), HOST_TIMEOUT));
    handshakes(&change, 2);
    assert_eq!(
        change.observations().snapshot().handshakes[1].path,
        "/after"
    );
    assert!(gone.wait_for(|o| o.closes.iter().any(|c| c.code == 1000), HOST_TIMEOUT));
    handshakes(&fresh, 1);
    assert_eq!(gone.observations().snapshot().handshakes.len(), 1);

    // Startup actions ran for the new and re-created instances only.
    host.wait_for_lines(&["startup 2: change: Connect", "startup 3: fresh: Connect"]);
    let connects = host
        .seen
        .iter()
        .filter(|l| l.contains("startup 1: keep: Connect"))
        .count();
    assert_eq!(connects, 1, "keep was connected once, at load");

    // Open pages are told.
    let applied = events.wait_for("project", |_| true);
    assert_eq!(applied["applied"]["unchanged"], json!(["keep"]));

    // The file: rewritten atomically with its comments, the old one kept.
    let text = std::fs::read_to_string(&file).unwrap();
    for kept in [
        "# A project edited live by the test; this comment must survive.",
        "# kept as it is",
        "Path = \"/after\"  # where the echo server listens",
        "name = \"fresh\"",
        "PONG <2>",
    ] {
        assert!(text.contains(kept), "{kept:?} in\n{text}");
    }
    assert!(!text.contains("name = \"gone\""), "{text}");
    assert_eq!(std::fs::read_to_string(bak_of(&file)).unwrap(), original);
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(mode_of(&bak_of(&file)), 0o600);
    assert_checks(&file);
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(get_project(&host)["instances"][2]["name"], "fresh");
}

#[test]
fn a_refused_put_changes_nothing_and_says_where_each_error_is() {
    let server = EchoServer::start();
    let newcomer = EchoServer::start();
    let original = format!(
        "{}{}",
        instance("keep", &server, "/keep", "kept"),
        ping_wire("pong")
    );
    let host = HostProcess::run_project("apply-refused", &original, "info");
    handshakes(&server, 1);
    let file = project_file(&host);

    let mut project = get_project(&host);
    project["instances"][0]["properties"]["Path"] = json!("/elsewhere");
    project["instances"].as_array_mut().unwrap().push(
        json!({"name": "new", "properties": {"Hostname": "127.0.0.1", "Port": newcomer.port()}}),
    );
    project["startup"]
        .as_array_mut()
        .unwrap()
        .push(json!({"instance": "new", "action": "Connect"}));
    project["wires"][0]["when"]["properties"]["Match String"] = json!("temp (\\d+");
    let before = get_project(&host);
    // Every problem the modules find at once, in the project's order: the
    // instance, the trigger and the action each module refuses (three
    // different steps). (The manifest's own checks, names and required
    // values, come first and stop there: what follows depends on them.)
    let mut many = project.clone();
    many["instances"][1]["properties"]["Port"] = json!(70000);
    let startup = many["startup"].as_array_mut().unwrap();
    startup.push(
        json!({"instance": "keep", "action": "Connect", "properties": {"Bearer Token": "a b"}}),
    );
    let last = startup.len() - 1;
    let (status, body) = request(&host, "POST", "/project/check", &many);
    assert_eq!(status, 400, "{body}");
    let paths: Vec<&Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["path"])
        .collect();
    assert_eq!(
        paths,
        [
            &json!(["instances", 1, "properties", "Port"]),
            &json!(["wires", 0, "when", "properties", "Match String"]),
            &json!(["startup", last, "properties", "Bearer Token"]),
        ],
        "{body}"
    );

    for endpoint in [("PUT", "/project"), ("POST", "/project/check")] {
        let (status, body) = request(&host, endpoint.0, endpoint.1, &project);
        assert_eq!(status, 400, "{body}");
        let error = &body["errors"][0];
        assert_eq!(
            error["path"],
            json!(["wires", 0, "when", "properties", "Match String"]),
            "{body}"
        );
        assert_eq!(
            error["at"], "wire 1, trigger property Match String",
            "{body}"
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("Match String is not a valid regular expression"),
            "the module's message, as wsio run prints it: {body}"
        );
    }
    // Unknown names are located at their field too.
    let mut unknown = before.clone();
    unknown["instances"][0]["properties"]["Colour"] = json!("red");
    let (status, body) = request(&host, "PUT", "/project", &unknown);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["path"],
        json!(["instances", 0, "properties", "Colour"])
    );
    assert_eq!(
        body["errors"][0]["at"],
        "instance \"keep\", property Colour"
    );

    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        original,
        "the file is as it was"
    );
    assert!(!bak_of(&file).exists());
    assert_eq!(get_project(&host), before);
    let observed = server.observations().snapshot();
    assert_eq!((observed.handshakes.len(), observed.closes.len()), (1, 0));
    assert_eq!(newcomer.observations().snapshot().connections(), 0);

    // A good check changes nothing either.
    let (status, body) = request(&host, "POST", "/project/check", &before);
    assert_eq!(
        (status, &body),
        (200, &json!({"errors": [], "warnings": []}))
    );
}

#[test]
fn a_file_changed_on_disk_is_not_overwritten_until_reloaded() {
    let server = EchoServer::start();
    let original = instance("keep", &server, "/keep", "kept");
    let host = HostProcess::run_project("apply-conflict", &original, "info");
    handshakes(&server, 1);
    let file = project_file(&host);
    let edited = format!("{original}\n# edited by hand meanwhile\n");
    std::fs::write(&file, &edited).unwrap();

    let mut project = get_project(&host);
    project["instances"][0]["properties"]["Path"] = json!("/elsewhere");
    let (status, body) = request(&host, "PUT", "/project", &project);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["changed_on_disk"], true);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("POST /project/reload"),
        "{body}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);
    assert_eq!(server.observations().snapshot().closes.len(), 0);

    let (status, body) = request(&host, "POST", "/project/reload", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"]["unchanged"], json!(["keep"]));
    assert_eq!(body["saved"], Value::Null);
    let (status, body) = request(&host, "PUT", "/project", &project);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"]["changed"], json!(["keep"]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# edited by hand meanwhile"), "{text}");
}

#[test]
fn sighup_rereads_the_project_file_and_a_bad_one_changes_nothing() {
    let server = EchoServer::start();
    let original = instance("keep", &server, "/before", "kept");
    let mut host = HostProcess::run_project("apply-sighup", &original, "info");
    handshakes(&server, 1);
    let file = project_file(&host);
    let hup = |host: &HostProcess| {
        let sent = Command::new("kill")
            .args(["-HUP", &host.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };

    std::fs::write(
        &file,
        original.replace("/before", "/after\"\nColour = \"red"),
    )
    .unwrap();
    hup(&host);
    host.wait_for_line("SIGHUP: nothing changed");
    assert_eq!(server.observations().snapshot().closes.len(), 0);

    std::fs::write(&file, original.replace("/before", "/after")).unwrap();
    hup(&host);
    host.wait_for_line("changed keep");
    assert!(server.wait_for(|o| o.closes.iter().any(|c| c.code == 1000), HOST_TIMEOUT));
    handshakes(&server, 2);
    assert_eq!(
        server.observations().snapshot().handshakes[1].path,
        "/after"
    );
}

#[test]
fn a_secret_sent_back_as_set_keeps_its_stored_value_and_never_comes_back() {
    let server = EchoServer::start();
    let original = instance("keep", &server, "/keep", "kept").replace(
        "Path = ",
        &format!("Username = \"user\"\nPassword = \"{TOKEN}\"\nPath = "),
    );
    let host = HostProcess::run_project("apply-secret", &original, "info");
    handshakes(&server, 1);
    let file = project_file(&host);

    let mut project = get_project(&host);
    assert_eq!(
        project["instances"][0]["properties"]["Password"],
        json!({"secret": "set"})
    );
    project["wires"] = json!([{"when": {"instance": "keep", "trigger": "Connected"},
                               "then": [{"instance": "keep", "action": "Send Message",
                                         "properties": {"Message": "hello"}}]}]);
    let response = http(&host.addr, "PUT", "/project", &project.to_string(), &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json()["applied"]["unchanged"],
        json!(["keep"]),
        "the same token"
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains(TOKEN));

    let mut renamed = project.clone();
    renamed["instances"][0]["name"] = json!("other");
    renamed["wires"] = json!([]);
    renamed["startup"] = json!([]);
    let response = http(&host.addr, "PUT", "/project", &renamed.to_string(), &[]);
    assert_eq!(response.status, 400, "{}", response.body);
    let body = response.json();
    assert_eq!(
        body["errors"][0]["path"],
        json!(["instances", 0, "properties", "Password"])
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("enter the value")
    );

    for (method, path, body) in [
        ("GET", "/project", String::new()),
        ("GET", "/io_modules", String::new()),
        ("PUT", "/project", project.to_string()),
        ("POST", "/project/check", project.to_string()),
        ("POST", "/project/reload", String::new()),
        ("PUT", "/project", renamed.to_string()),
    ] {
        let response = http(&host.addr, method, path, &body, &[]);
        assert!(
            !response.body.contains(TOKEN),
            "{method} {path}: {}",
            response.body
        );
    }
}

#[test]
fn the_demo_applies_live_and_saves_to_a_file_of_its_own() {
    let host = HostProcess::spawn(&["run", "--http", "127.0.0.1:0"], "info");
    let project = get_project(&host);
    assert!(project["file"].is_null());
    let (status, body) = request(&host, "PUT", "/project", &project);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["saved"], Value::Null);
    assert_eq!(
        body["applied"]["unchanged"],
        json!(["piesocket", "visitor"])
    );
    let (status, body) = request(&host, "POST", "/project/reload", &json!({}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("POST /project/save"),
        "{body}"
    );

    let dir = std::env::temp_dir().join(format!("wsio-demo-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("saved.toml");
    let _ = std::fs::remove_file(&file);
    let save = json!({"path": file.to_str().unwrap()});
    let (status, body) = request(&host, "POST", "/project/save", &save);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["saved"], file.to_str().unwrap());
    assert_eq!(mode_of(&file), 0o600);
    assert_checks(&file);
    assert_eq!(get_project(&host)["file"], file.to_str().unwrap());
    let (status, body) = request(&host, "POST", "/project/save", &save);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("\"overwrite\": true"),
        "{body}"
    );
    let (status, _) = request(&host, "POST", "/project/reload", &json!({}));
    assert_eq!(status, 200, "the saved file is the project file now");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn modules_are_listed_with_their_manifests_and_loaded_by_path() {
    let host = HostProcess::spawn(&["run", "--http", "127.0.0.1:0"], "info");
    let response = http(&host.addr, "GET", "/modules", "", &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    let modules = response.json()["modules"].clone();
    assert_eq!(modules.as_array().unwrap().len(), 1, "{modules}");
    let module = &modules[0];
    assert_eq!(module["id"], 1);
    assert_eq!(module["name"], "WebSocket Client");
    let manifest = &module["manifest"];
    let port = named(&manifest["properties"], "Port");
    assert_eq!(port["editor"], "spinbox", "{port}");
    assert!(port["max"].is_number(), "{port}");
    let received = named(&manifest["triggers"], "Messages Received");
    assert_eq!(received["variables"][0]["name"], "Message", "{received}");
    assert!(
        received["description"]
            .as_str()
            .unwrap()
            .contains("message"),
        "{received}"
    );
    named(&manifest["actions"], "Send Message");

    let path = module["path"].as_str().unwrap();
    let (status, body) = request(&host, "POST", "/modules", &json!({"path": path}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["module"]["id"], 1, "the same module, loaded once");

    // An instance names a module by its path.
    let mut project = get_project(&host);
    project["instances"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "other", "module": path, "properties": {"Hostname": "127.0.0.1"}}));
    let (status, body) = request(&host, "PUT", "/project", &project);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"]["added"], json!(["other"]));
    let io_modules = http(&host.addr, "GET", "/io_modules", "", &[]).json();
    let other = named(&io_modules["instances"], "other");
    assert_eq!(other["module_id"], 1, "{io_modules}");
    let (status, body) = request(
        &host,
        "POST",
        "/modules",
        &json!({"path": "/nowhere/libx.so"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("/nowhere/libx.so"),
        "{body}"
    );
}
