//! The controller's HTTP face, on its own threads (tiny_http):
//!
//! - `GET /io_modules`: modules and instances with their status variables,
//!   the shape controllers serve (`{"modules":[…],"instances":[…]}`);
//! - `POST /io_modules/<instance>/actions/<action>` with a JSON object of
//!   action properties: runs the action, as a wire would;
//! - `POST /io_modules/<instance>/network` with `{"up": false}` or
//!   `{"up": true}`: tells the instance the controller's network went down
//!   or came up, to try what a module does then;
//! - `GET /`: the status page (a placeholder for now).
//!
//! Requests only read state and run actions, which return at once, so a
//! request never waits on a module.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

use super::module::CallErrorKind;
use super::state::{ActionCall, HostState};

/// Two workers: one slow client does not hold up the others, and the
/// machine this runs on is small.
const WORKERS: usize = 2;

/// Action properties are short; anything bigger is a mistake.
const MAX_BODY: u64 = 1024 * 1024;

/// A bound listener, not serving yet (binding comes before creating
/// instances, so a busy port is reported before anything starts).
pub struct HttpListener {
    server: Arc<Server>,
    addr: SocketAddr,
}

impl HttpListener {
    pub fn bind(addr: &str) -> Result<HttpListener, String> {
        let server = Server::http(addr).map_err(|e| {
            format!("cannot serve HTTP on {addr}: {e}; choose another address with --http, e.g. --http 127.0.0.1:8081")
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("cannot serve HTTP on {addr}: not an IP address"))?;
        Ok(HttpListener {
            server: Arc::new(server),
            addr,
        })
    }

    /// Starts the worker threads.
    pub fn serve(self, state: Arc<HostState>) -> Result<HttpServer, String> {
        let mut running = HttpServer {
            server: self.server,
            addr: self.addr,
            workers: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        for n in 0..WORKERS {
            let (server, state, stopping) = (
                running.server.clone(),
                state.clone(),
                running.stopping.clone(),
            );
            match std::thread::Builder::new()
                .name(format!("wsio-http-{n}"))
                .spawn(move || serve(&server, &state, &stopping))
            {
                Ok(worker) => running.workers.push(worker),
                Err(e) => {
                    // The workers started so far hold the state: end them.
                    running.stop();
                    return Err(format!("cannot start the HTTP server's threads: {e}"));
                }
            }
        }
        Ok(running)
    }
}

/// The running HTTP server; `stop` ends it.
pub struct HttpServer {
    server: Arc<Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

impl HttpServer {
    /// The address actually bound (the port is known even for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests and waits for the workers to finish theirs.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            // Each call wakes one worker blocked in recv().
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

fn serve(server: &Server, state: &HostState, stopping: &AtomicBool) {
    loop {
        let request = server.recv();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match request {
            Ok(request) => handle(request, state),
            Err(e) => log::debug!("HTTP: {e}"),
        }
    }
}

fn handle(mut request: Request, state: &HostState) {
    let method = request.method().clone();
    let url = request.url().to_string();
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body);
    let reply = match read {
        Err(e) => Reply::error(400, format!("could not read the request body: {e}")),
        Ok(_) if body.len() as u64 > MAX_BODY => Reply::error(
            413,
            format!("the request body is larger than {MAX_BODY} bytes"),
        ),
        Ok(_) => route(state, &method, &url, &body),
    };
    log::debug!("HTTP {method} {url} -> {}", reply.status);
    let response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(content_type(reply.content_type));
    if let Err(e) = request.respond(response) {
        log::debug!("HTTP {method} {url}: could not send the response: {e}");
    }
}

fn content_type(value: &str) -> Header {
    Header::from_bytes(&b"Content-Type"[..], value.as_bytes()).expect("a static, valid header")
}

/// An HTTP response before it is written.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body: value.to_string().into_bytes(),
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": message.into() }))
    }
}

const ENDPOINTS: &str = "GET /io_modules, POST /io_modules/<instance>/actions/<action>, \
                         POST /io_modules/<instance>/network, GET /";

fn route(state: &HostState, method: &Method, url: &str, body: &[u8]) -> Reply {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<String> = match path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
    {
        Some(segments) => segments,
        None => {
            return Reply::error(
                400,
                format!("the path {path:?} is not valid percent-encoded UTF-8"),
            );
        }
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (allowed, endpoint) = match segments.as_slice() {
        [] => ("GET", Endpoint::Page),
        ["io_modules"] => ("GET", Endpoint::IoModules),
        ["io_modules", instance, "actions", action] => ("POST", Endpoint::Action(instance, action)),
        ["io_modules", instance, "network"] => ("POST", Endpoint::Network(instance)),
        _ => {
            return Reply::error(
                404,
                format!("no such endpoint: {path}; endpoints: {ENDPOINTS}"),
            );
        }
    };
    if method.as_str() != allowed {
        return Reply::error(405, format!("{path} takes {allowed}, not {method}"));
    }
    match endpoint {
        Endpoint::Page => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: PLACEHOLDER_PAGE.as_bytes().to_vec(),
        },
        Endpoint::IoModules => Reply::json(200, io_modules(state)),
        Endpoint::Action(instance, action) => run_action(state, instance, action, body),
        Endpoint::Network(instance) => network(state, instance, body),
    }
}

enum Endpoint<'a> {
    Page,
    IoModules,
    Action(&'a str, &'a str),
    Network(&'a str),
}

const PLACEHOLDER_PAGE: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>wsio</title></head>\n\
<body><h1>wsio</h1><p>The status page is coming. Meanwhile: <a href=\"/io_modules\">/io_modules</a> \
(modules, instances and their status as JSON).</p></body></html>\n";

/// `{"modules":[{id,name,version}],"instances":[{id,module_id,name,status}]}`.
fn io_modules(state: &HostState) -> Value {
    let modules: Vec<Value> = state
        .modules
        .iter()
        .map(|m| {
            let info = &m.module.manifest().module;
            json!({ "id": m.id, "name": info.name, "version": info.version })
        })
        .collect();
    let instances: Vec<Value> = state
        .instances
        .iter()
        .map(|i| {
            let status = i
                .instance
                .status_json()
                .map_or(
                    Value::Array(Vec::new()),
                    |text| match serde_json::from_str::<Value>(&text) {
                        Ok(status @ Value::Array(_)) => status,
                        _ => {
                            log::warn!(
                                "{}: the module's status is not a JSON array: {text}",
                                i.name
                            );
                            Value::Array(Vec::new())
                        }
                    },
                );
            json!({
                "id": i.instance.id(),
                "module_id": state.modules[i.module].id,
                "name": i.name,
                "status": status,
            })
        })
        .collect();
    json!({ "modules": modules, "instances": instances })
}

fn find_instance(state: &HostState, name: &str) -> Result<usize, Reply> {
    state.instance_index(name).ok_or_else(|| {
        Reply::error(
            404,
            format!(
                "no instance named {name:?}; instances: {}",
                state.instance_names()
            ),
        )
    })
}

/// The body as a JSON object; empty means `{}`.
fn json_object(body: &[u8], example: &str) -> Result<serde_json::Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(Reply::error(
            400,
            format!("the body must be a JSON object such as {example}, got {other}"),
        )),
        Err(e) => Err(Reply::error(
            400,
            format!("the body is not valid JSON ({e}); send a JSON object such as {example}"),
        )),
    }
}

fn run_action(state: &HostState, instance: &str, action: &str, body: &[u8]) -> Reply {
    let index = match find_instance(state, instance) {
        Ok(index) => index,
        Err(reply) => return reply,
    };
    let manifest = state.manifest_of(index);
    if manifest.action(action).is_none() {
        return Reply::error(
            404,
            format!(
                "instance {instance:?} ({}) has no action {action:?}; its actions: {}",
                manifest.module.name,
                manifest.action_names()
            ),
        );
    }
    let properties = match json_object(body, r#"{"Message":"hello"}"#) {
        Ok(properties) => properties,
        Err(reply) => return reply,
    };
    let call = ActionCall::new(index, action, &properties, manifest);
    match state.run_action(&call, &[], "http") {
        Ok(()) => Reply::json(200, json!({ "ok": true })),
        Err(e) => Reply::error(status_of(e.kind), e.message),
    }
}

fn network(state: &HostState, instance: &str, body: &[u8]) -> Reply {
    let index = match find_instance(state, instance) {
        Ok(index) => index,
        Err(reply) => return reply,
    };
    let up = match json_object(body, r#"{"up":false}"#) {
        Ok(object) => match object.get("up") {
            Some(Value::Bool(up)) => *up,
            _ => return Reply::error(400, r#"the body must be {"up":true} or {"up":false}"#),
        },
        Err(reply) => return reply,
    };
    let running = &state.instances[index];
    log::info!(
        "http: {}: network {}",
        running.name,
        if up { "up" } else { "down" }
    );
    match running.instance.network(up) {
        Ok(()) => Reply::json(200, json!({ "ok": true })),
        Err(e) => Reply::error(status_of(e.kind), e.message),
    }
}

/// Bad input is the client's (400); "not now" is 503; a module bug is 500.
fn status_of(kind: CallErrorKind) -> u16 {
    match kind {
        CallErrorKind::InvalidArgument | CallErrorKind::Other(_) => 400,
        CallErrorKind::Rejected | CallErrorKind::Destroyed => 503,
        CallErrorKind::ModulePanic => 500,
    }
}

/// Decodes `%XX` escapes of one path segment; None if it is not UTF-8 or an
/// escape is malformed.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn percent_decoding_handles_spaces_and_utf8() {
        assert_eq!(
            percent_decode("Send%20Message").as_deref(),
            Some("Send Message")
        );
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn io_modules_of_an_empty_host_has_both_lists() {
        let reply = route(&HostState::default(), &Method::Get, "/io_modules", b"");
        assert_eq!(reply.status, 200);
        assert_eq!(body(&reply), json!({ "modules": [], "instances": [] }));
    }

    #[test]
    fn an_unknown_instance_is_404_and_lists_the_instances() {
        let reply = route(
            &HostState::default(),
            &Method::Post,
            "/io_modules/nope/actions/Send%20Message",
            b"{}",
        );
        assert_eq!(reply.status, 404);
        let error = body(&reply)["error"].as_str().unwrap().to_string();
        assert!(error.contains("no instance named \"nope\""), "{error}");
    }

    #[test]
    fn unknown_paths_and_wrong_methods_say_what_exists() {
        let state = HostState::default();
        let reply = route(&state, &Method::Get, "/nothing", b"");
        assert_eq!(reply.status, 404);
        assert!(
            body(&reply)["error"]
                .as_str()
                .unwrap()
                .contains("GET /io_modules")
        );
        let reply = route(&state, &Method::Post, "/io_modules", b"");
        assert_eq!(reply.status, 405);
        let reply = route(&state, &Method::Get, "/io_modules/a/actions/Connect", b"");
        assert_eq!(reply.status, 405);
    }

    #[test]
    fn the_root_is_an_html_page() {
        let reply = route(&HostState::default(), &Method::Get, "/?x=1", b"");
        assert_eq!(reply.status, 200);
        assert!(reply.content_type.starts_with("text/html"));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(json_object(b"", "{}").unwrap().is_empty());
        assert!(json_object(b" \n", "{}").unwrap().is_empty());
        assert_eq!(json_object(b"{not json", "{}").unwrap_err().status, 400);
        assert_eq!(json_object(b"[1]", "{}").unwrap_err().status, 400);
        assert_eq!(json_object(br#"{"a":1}"#, "{}").unwrap()["a"], 1);
    }
}
