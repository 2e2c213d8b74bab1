//! `GET /project` from the real `wsio` binary: the running project as JSON
//! in the project file's shape, with every secret masked.

mod support;

use serde_json::json;
use support::host_http::http;
use support::iom::module_path;
use support::{EchoServer, HostProcess};

const PROXY: &str = "http://user:pr0xy-s3cret@127.0.0.1:9/";
const PASSWORD: &str = "basic-s3cret";
const TOKEN: &str = "bearer-s3cret";

#[test]
fn get_project_returns_the_project_file_as_json_with_every_secret_masked() {
    let server = EchoServer::start();
    let module = module_path();
    let module = module.to_str().unwrap();
    let project = format!(
        r#"
[[instance]]
name = "a"
[instance.properties]
Hostname = "127.0.0.1"
Port = {port}
Path = "/echo"
Proxy = "{PROXY}"
Username = "user"
Password = "{PASSWORD}"
"Auto-Reconnect" = false

[[instance]]
name = "b"
module = "{module}"
properties = {{ Hostname = "127.0.0.1" }}

[[wire]]
when = {{ instance = "a", trigger = "Messages Received", properties = {{ "Match String" = "ping", "Case Sensitive" = true }} }}
then = [
  {{ instance = "b", action = "Send Message", properties = {{ Message = "pong: <1>" }} }},
  {{ instance = "a", action = "Disconnect" }},
]

[[wire]]
when = {{ instance = "b", trigger = "Connected" }}
then = {{ instance = "a", action = "Connect", properties = {{ "Bearer Token" = "{TOKEN}" }} }}

[[startup]]
instance = "a"
action = "Connect"
properties = {{ "Bearer Token" = "{TOKEN}" }}
"#,
        port = server.port()
    );
    let host = HostProcess::run_project("get-project", &project, "info");

    let response = http(&host.addr, "GET", "/project", "", &[]);
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        response.header("Content-Type")
    );
    let secret = json!({ "secret": "set" });
    assert_eq!(
        response.json(),
        json!({
            "instances": [
                {
                    "name": "a",
                    "properties": {
                        "Hostname": "127.0.0.1",
                        "Port": server.port(),
                        "Path": "/echo",
                        "Proxy": secret,
                        "Username": "user",
                        "Password": secret,
                        "Auto-Reconnect": false,
                    },
                },
                { "name": "b", "module": module, "properties": { "Hostname": "127.0.0.1" } },
            ],
            "wires": [
                {
                    "when": {
                        "instance": "a",
                        "trigger": "Messages Received",
                        "properties": { "Match String": "ping", "Case Sensitive": true },
                    },
                    "then": [
                        { "instance": "b", "action": "Send Message", "properties": { "Message": "pong: <1>" } },
                        { "instance": "a", "action": "Disconnect" },
                    ],
                },
                {
                    "when": { "instance": "b", "trigger": "Connected" },
                    "then": [
                        { "instance": "a", "action": "Connect", "properties": { "Bearer Token": secret } },
                    ],
                },
            ],
            "startup": [
                { "instance": "a", "action": "Connect", "properties": { "Bearer Token": secret } },
            ],
            "file": host.dir.as_ref().unwrap().join("project.toml").to_str().unwrap(),
        })
    );
    let body = &response.body;
    for leaked in [PROXY, "pr0xy-s3cret", PASSWORD, TOKEN] {
        assert!(!body.contains(leaked), "{leaked} in {body}");
    }
}

#[test]
fn get_project_of_the_built_in_demo_has_the_demo_servers_port() {
    let host = HostProcess::spawn(&["run", "--http", "127.0.0.1:0"], "info");
    let demo_port: u64 = host
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("out: demo server: ws://127.0.0.1:"))
        .and_then(|rest| rest.split('/').next())
        .expect("the demo server's address")
        .parse()
        .unwrap();
    let response = http(&host.addr, "GET", "/project", "", &[]);
    assert_eq!(response.status, 200);
    let project = response.json();
    let instances = project["instances"].as_array().unwrap();
    let names: Vec<&str> = instances
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["piesocket", "visitor"], "{project}");
    assert!(project["file"].is_null(), "the demo has no file: {project}");
    for instance in instances {
        assert_eq!(instance["properties"]["Port"], demo_port, "{project}");
    }
    assert_eq!(
        project["wires"][1],
        json!({
            "when": {
                "instance": "piesocket",
                "trigger": "Messages Received",
                "properties": { "Match String": "ping" },
            },
            "then": [
                { "instance": "piesocket", "action": "Send Message", "properties": { "Message": "pong: <1>" } },
            ],
        })
    );
    assert_eq!(
        project["startup"],
        json!([
            { "instance": "piesocket", "action": "Connect" },
            { "instance": "visitor", "action": "Connect" },
        ])
    );
}
