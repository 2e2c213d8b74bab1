//! The controller's HTTP face, on its own threads (tiny_http):
//!
//! - `GET /io_modules`: modules and instances with their status variables
//!   and counters (triggers fired by name, wire runs, events lost),
//!   the shape controllers serve (`{"modules":[…],"instances":[…]}`);
//! - `GET /project`: the running project as JSON, secrets masked (`project_json`);
//! - `PUT /project`, `POST /project/check`, `POST /project/reload`,
//!   `POST /project/save`: edit the running project and its file
//!   (`project_edit`, over `crate::project_file`);
//! - `GET /modules`, `POST /modules`: the loaded modules with their
//!   manifests, and loading another (`modules`);
//! - `POST /io_modules/<instance>/actions/<action>` with a JSON object of
//!   action properties: runs the action, as a wire would;
//! - `POST /io_modules/<instance>/triggers/<trigger>/test`: whether the
//!   trigger with some properties matches a sample message (`trigger_test`);
//! - `POST /io_modules/<instance>/network` with `{"up": false}` or
//!   `{"up": true}`: tells the instance the controller's network went down
//!   or came up, to try what a module does then;
//! - `GET /`: the status page (`page`), with its `GET /assets/<file>`;
//! - `GET /events`: the page's live feed, Server-Sent Events
//!   (`event_stream`; each stream on a thread of its own);
//! - `GET /login`, `POST /login`, `POST /logout`, `GET /session`: signing
//!   in (`access`, `login`).
//!
//! Every route and the role it needs are one table (`routes`); every
//! request passes the gate (`access`) before the router. `server` binds,
//! runs the workers and stops; `tls` is the optional HTTPS front.
//!
//! Requests only read state and run actions, which return at once, so a
//! request never waits on a module. A POST that a browser sends from another
//! site's page (its `Origin` is not this host) is refused: a web page the
//! integrator happens to visit must not be able to run actions here. So is
//! any request whose `Host` names something other than an IP address,
//! `localhost` or the name given in `--http`: a site that re-points its own
//! name at 127.0.0.1 (DNS rebinding) is same-origin with itself, and would
//! otherwise read the status and run actions.

use std::io::Read;
use std::sync::Arc;

use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response};

use super::abi::CallErrorKind;
use super::event_stream::EventStreams;
use super::page;
use super::state::{ActionCall, HostState, RunningInstance};
use guard::{host_name_of, is_cross_site, is_own_host};

mod access;
mod guard;
mod login;
mod modules;
mod project_edit;
mod project_json;
mod routes;
mod server;
mod throttle;
mod tls;
mod trigger_test;

pub use access::AccessOptions;
pub use routes::{Need, ROUTES, Route};
pub use server::{HttpListener, HttpServer};
pub use tls::{SELF_SIGNED_CERT, SELF_SIGNED_KEY, TlsSource};

use access::{Admit, Caller};
use server::OwnHost;

/// Action properties are short; anything bigger is a mistake.
const MAX_BODY: u64 = 1024 * 1024;

fn handle(mut request: Request, state: &Arc<HostState>, streams: &EventStreams, own: &OwnHost) {
    let method = request.method().clone();
    let url = request.url().to_string();
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_string())
    };
    let host = header("Host");
    let caller_parts = (
        access::client_addr(request.remote_addr(), own.tls.as_deref()),
        header("Cookie"),
        header("Authorization"),
    );
    let mut gate_headers = Vec::new();
    let cross_site = is_cross_site(&method, header("Origin").as_deref(), host.as_deref());
    let foreign_host = !is_own_host(host.as_deref(), own.name.as_deref());
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body);
    let answer = match read {
        Err(e) => Reply::error(400, format!("could not read the request body: {e}")).into(),
        Ok(_) if body.len() as u64 > MAX_BODY => Reply::error(
            413,
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
        .into(),
        Ok(_) if foreign_host => Reply::error(
            421,
            format!(
                "this host answers only to an IP address, localhost or the name given in --http, \
                 not to Host {:?} (a guard against DNS rebinding); open http://{}/ or start wsio \
                 with --http NAME:PORT to use a name",
                host.unwrap_or_default(),
                own.addr
            ),
        )
        .into(),
        Ok(_) if cross_site => Reply::error(
            403,
            "a page from another site may not run actions here; use this host's status page, \
             or a client that sends no Origin header (curl)",
        )
        .into(),
        Ok(_) => {
            let caller = Caller {
                addr: caller_parts.0,
                cookie: caller_parts.1.as_deref(),
                authorization: caller_parts.2.as_deref(),
            };
            match own.gate.admit(route_of(&method, &url), &caller, &body) {
                Admit::Answer(answer) => {
                    gate_headers = answer.headers;
                    answer.reply.into()
                }
                Admit::Granted(grant) => match route(state, &method, &url, &body) {
                    Answer::Reply(reply) if reply.status == 200 && url_path(&url) == "/" => {
                        Answer::Reply(Reply {
                            body: login::mark_page(reply.body, &grant),
                            ..reply
                        })
                    }
                    answer => answer,
                },
            }
        }
    };
    let reply = match answer {
        Answer::Reply(reply) => reply,
        Answer::EventStream => match streams.open(&request, state) {
            Ok(opening) => {
                let opening = own.gate.stream_guard(opening, caller_parts);
                log::debug!("HTTP {method} {url} -> live stream");
                opening.run(request, state.clone());
                return;
            }
            Err((status, message)) => Reply::error(status, message),
        },
    };
    log::debug!("HTTP {method} {url} -> {}", reply.status);
    let mut response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header_of("Content-Type", reply.content_type));
    for (name, value) in COMMON_HEADERS {
        response.add_header(header_of(name, value));
    }
    response.add_header(header_of("Cache-Control", reply.cache));
    for (name, value) in gate_headers {
        response.add_header(header_of(name, &value));
    }
    if let Err(e) = request.respond(response) {
        log::debug!("HTTP {method} {url}: could not send the response: {e}");
    }
}

fn header_of(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a static, valid header")
}

/// On every response. The page loads only its own files and talks only to
/// this host, so an injected script, had one slipped past escaping, could
/// neither run nor send anything elsewhere.
const COMMON_HEADERS: [(&str, &str); 3] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    // Not no-referrer: under it a browser sends `Origin: null` with a form
    // POST (sign in, sign out), which the cross-site check must refuse.
    ("Referrer-Policy", "same-origin"),
];

/// What a request gets: a reply, or the live stream (which takes over the
/// request and is answered on a thread of its own).
#[derive(Debug, PartialEq)]
enum Answer {
    Reply(Reply),
    EventStream,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Reply(reply)
    }
}

/// An HTTP response before it is written.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    content_type: &'static str,
    /// Status and API answers change all the time; assets are checked.
    cache: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            cache: "no-store",
            body: value.to_string().into_bytes(),
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": message.into() }))
    }
}

/// The path of a request's URL, without query or fragment.
fn url_path(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or("")
}

/// The decoded segments of a path; None if one is not valid UTF-8.
fn segments_of(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// The route a request is for, if the router knows it (for the gate).
fn route_of(method: &Method, url: &str) -> Option<&'static routes::Route> {
    let segments = segments_of(url_path(url))?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    routes::find(method.as_str(), &segments)
        .ok()
        .map(|(r, _)| r)
}

/// The handler of a route of the table (`routes::ROUTES`), with the
/// segments its `{…}` parts matched. None: a route without a handler (a
/// test checks there is none). The sign-in routes are the gate's.
fn endpoint_of<'a>(route: &routes::Route, args: &[&'a str]) -> Option<Endpoint<'a>> {
    Some(match (route.method, route.pattern, args) {
        ("GET", "/", []) => Endpoint::Page,
        ("GET", "/events", []) => Endpoint::Events,
        ("GET", "/assets/{file}", [name]) => Endpoint::Asset(name),
        ("GET", "/io_modules", []) => Endpoint::IoModules,
        ("GET" | "PUT", "/project", []) => Endpoint::Project,
        ("POST", "/project/check", []) => Endpoint::ProjectCheck,
        ("POST", "/project/reload", []) => Endpoint::ProjectReload,
        ("POST", "/project/save", []) => Endpoint::ProjectSave,
        ("GET" | "POST", "/modules", []) => Endpoint::Modules,
        ("POST", "/modules/{id}/triggers/{trigger}/test", [id, trigger]) => {
            Endpoint::ModuleTriggerTest(id, trigger)
        }
        ("POST", "/modules/{id}/triggers/{trigger}/variables", [id, trigger]) => {
            Endpoint::ModuleTriggerVariables(id, trigger)
        }
        ("POST", "/io_modules/{instance}/actions/{action}", [instance, action]) => {
            Endpoint::Action(instance, action)
        }
        ("POST", "/io_modules/{instance}/triggers/{trigger}/test", [instance, trigger]) => {
            Endpoint::TriggerTest(instance, trigger)
        }
        ("POST", "/io_modules/{instance}/network", [instance]) => Endpoint::Network(instance),
        ("GET", "/login" | "/session", []) | ("POST", "/login" | "/logout", []) => Endpoint::Gate,
        _ => return None,
    })
}

fn route(state: &HostState, method: &Method, url: &str, body: &[u8]) -> Answer {
    let path = url_path(url);
    let Some(segments) = segments_of(path) else {
        return Reply::error(
            400,
            format!("the path {path:?} is not valid percent-encoded UTF-8"),
        )
        .into();
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (found, args) = match routes::find(method.as_str(), &segments) {
        Ok(found) => found,
        Err(routes::Miss::NotFound) => {
            return Reply::error(
                404,
                format!("no such endpoint: {path}; endpoints: {}", routes::listing()),
            )
            .into();
        }
        Err(routes::Miss::Method(allowed)) => {
            return Reply::error(
                405,
                format!("{path} takes {}, not {method}", allowed.join(" or ")),
            )
            .into();
        }
    };
    let Some(endpoint) = endpoint_of(found, &args) else {
        return Reply::error(
            501,
            format!("{} {} has no handler yet", found.method, found.pattern),
        )
        .into();
    };
    match endpoint {
        Endpoint::Page => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            cache: "no-store",
            body: page::render(state).into_bytes(),
        },
        Endpoint::Events => return Answer::EventStream,
        Endpoint::Asset(name) => match page::asset(name) {
            Some((content_type, body)) => Reply {
                status: 200,
                content_type,
                cache: "no-cache",
                body: body.as_bytes().to_vec(),
            },
            None => Reply::error(404, format!("no such asset: {name}")),
        },
        Endpoint::IoModules => Reply::json(200, io_modules(state)),
        Endpoint::Project if *method == Method::Put => project_edit::put(state, body),
        Endpoint::Project => Reply::json(200, project_json::project(state)),
        Endpoint::ProjectCheck => project_edit::check(state, body),
        Endpoint::ProjectReload => project_edit::reload(state),
        Endpoint::ProjectSave => project_edit::save(state, body),
        Endpoint::Modules if *method == Method::Post => modules::load(state, body),
        Endpoint::Modules => Reply::json(200, modules::list(state)),
        Endpoint::Action(instance, action) => run_action(state, instance, action, body),
        Endpoint::TriggerTest(instance, trigger) => {
            trigger_test::test_trigger(state, instance, trigger, body)
        }
        Endpoint::Network(instance) => network(state, instance, body),
        Endpoint::ModuleTriggerTest(id, trigger) => {
            trigger_test::test_module_trigger(state, id, trigger, body)
        }
        Endpoint::ModuleTriggerVariables(id, trigger) => {
            trigger_test::module_trigger_variables(state, id, trigger, body)
        }
        // Answered by the gate before the router is asked.
        Endpoint::Gate => Reply::error(500, "the sign-in routes are answered by the gate"),
    }
    .into()
}

enum Endpoint<'a> {
    Page,
    Events,
    Asset(&'a str),
    IoModules,
    Project,
    ProjectCheck,
    ProjectReload,
    ProjectSave,
    Modules,
    Action(&'a str, &'a str),
    TriggerTest(&'a str, &'a str),
    Network(&'a str),
    ModuleTriggerTest(&'a str, &'a str),
    ModuleTriggerVariables(&'a str, &'a str),
    /// `/login`, `/logout`, `/session` (`access`).
    Gate,
}

/// `{"modules":[{id,name,version}],"instances":[{id,module_id,name,status}]}`.
fn io_modules(state: &HostState) -> Value {
    let modules: Vec<Value> = state
        .modules()
        .iter()
        .map(|m| {
            let info = &m.module.manifest().module;
            json!({ "id": m.id, "name": info.name, "version": info.version })
        })
        .collect();
    let instances: Vec<Value> = state
        .config()
        .instances
        .iter()
        .map(|i| {
            let status = i.status();
            json!({
                "id": i.id(),
                "module_id": i.module.id,
                "name": i.name,
                "status": status,
                "counters": i.counters.to_json(),
            })
        })
        .collect();
    json!({ "modules": modules, "instances": instances })
}

fn find_instance(state: &HostState, name: &str) -> Result<Arc<RunningInstance>, Reply> {
    let config = state.config();
    config.instance(name).cloned().ok_or_else(|| {
        Reply::error(
            404,
            format!(
                "no instance named {name:?}; instances: {}",
                config.instance_names()
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
    let running = match find_instance(state, instance) {
        Ok(running) => running,
        Err(reply) => return reply,
    };
    let manifest = running.manifest();
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
    let call = ActionCall::new(&running, action, &properties);
    let ignored = (action == CONNECT)
        .then(|| connect_ignored(&running))
        .flatten();
    match state.run_action(&call, &[], "http") {
        Ok(()) => Reply::json(
            200,
            match ignored {
                None => json!({ "ok": true }),
                Some(why) => json!({ "ok": true, "ignored": why }),
            },
        ),
        Err(e) => Reply::error(status_of(e.kind), e.message),
    }
}

/// The action a connection module ignores while it is connected (the
/// module logs that too; the HTTP caller, who sees no log, is told here).
const CONNECT: &str = "Connect";

/// Why a Connect would be ignored now, read from the machine-readable
/// Connection State (`include/iom.h`), never from prose: the instance is
/// already connecting or connected. None for a module without it.
fn connect_ignored(instance: &RunningInstance) -> Option<String> {
    let status = instance.status();
    let word = status
        .iter()
        .find(|s| s["key"] == page::CONNECTION_STATE)?
        .get("value")?
        .as_str()?;
    matches!(word, "connecting" | "handshaking" | "established").then(|| {
        format!(
            "the instance is already {word}, so this Connect changes nothing: \
             Disconnect first to connect again (for example with a new Bearer Token)"
        )
    })
}

fn network(state: &HostState, instance: &str, body: &[u8]) -> Reply {
    let running = match find_instance(state, instance) {
        Ok(running) => running,
        Err(reply) => return reply,
    };
    let up = match json_object(body, r#"{"up":false}"#) {
        Ok(object) => match object.get("up") {
            Some(Value::Bool(up)) => *up,
            _ => return Reply::error(400, r#"the body must be {"up":true} or {"up":false}"#),
        },
        Err(reply) => return reply,
    };
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

    /// `route` for everything but the event stream.
    fn answer(state: &HostState, method: &Method, url: &str, body: &[u8]) -> Reply {
        match route(state, method, url, body) {
            Answer::Reply(reply) => reply,
            Answer::EventStream => panic!("{url} is the event stream"),
        }
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
        let reply = answer(&HostState::default(), &Method::Get, "/io_modules", b"");
        assert_eq!(reply.status, 200);
        assert_eq!(body(&reply), json!({ "modules": [], "instances": [] }));
    }

    #[test]
    fn an_unknown_instance_is_404_and_lists_the_instances() {
        let reply = answer(
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
        let reply = answer(&state, &Method::Get, "/nothing", b"");
        assert_eq!(reply.status, 404);
        assert!(
            body(&reply)["error"]
                .as_str()
                .unwrap()
                .contains("GET /io_modules")
        );
        let reply = answer(&state, &Method::Post, "/io_modules", b"");
        assert_eq!(reply.status, 405);
        let reply = answer(&state, &Method::Get, "/io_modules/a/actions/Connect", b"");
        assert_eq!(reply.status, 405);
    }

    #[test]
    fn the_root_is_an_html_page() {
        let reply = answer(&HostState::default(), &Method::Get, "/?x=1", b"");
        assert_eq!(reply.status, 200);
        assert!(reply.content_type.starts_with("text/html"));
    }

    #[test]
    fn the_root_lists_no_instances_of_an_empty_host_and_loads_its_assets() {
        let reply = answer(&HostState::default(), &Method::Get, "/", b"");
        let page = String::from_utf8(reply.body).unwrap();
        assert!(page.contains("The project has no instances."), "{page}");
        assert!(page.contains(r#"src="/assets/page.js""#), "{page}");
        assert!(page.contains(r#"href="/assets/page.css""#), "{page}");
    }

    #[test]
    fn assets_are_served_with_their_type_and_unknown_ones_are_404() {
        let state = HostState::default();
        let css = answer(&state, &Method::Get, "/assets/page.css", b"");
        assert_eq!(
            (css.status, css.content_type),
            (200, "text/css; charset=utf-8")
        );
        let js = answer(&state, &Method::Get, "/assets/page.js", b"");
        assert_eq!(js.status, 200);
        assert!(js.content_type.starts_with("text/javascript"));
        assert_eq!(
            answer(&state, &Method::Get, "/assets/nope.js", b"").status,
            404
        );
        assert_eq!(
            answer(&state, &Method::Get, "/assets/..%2FCargo.toml", b"").status,
            404
        );
    }

    #[test]
    fn events_is_the_stream_and_takes_only_get() {
        let state = HostState::default();
        assert_eq!(
            route(&state, &Method::Get, "/events", b""),
            Answer::EventStream
        );
        assert_eq!(answer(&state, &Method::Post, "/events", b"").status, 405);
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
