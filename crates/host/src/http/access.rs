//! Who may do what: every request passes the gate before the router.
//!
//! - No users or tokens in the users file: only this machine may connect
//!   (a request from any other address is refused), and it may do anything.
//! - Users or tokens configured: every route but the public ones (the login
//!   page, its assets, signing in and out) needs a session cookie or an
//!   `Authorization: Bearer <token>` (401 without), whose role must reach
//!   the route's (`routes::ROUTES`; 403 naming the role needed otherwise).
//!
//! The users file is looked at on every request (`UsersWatch`), so removing
//! or changing a user or token takes effect at once; a session remembers
//! its user's role and password hash, and ends when either changes.
//!
//! Nothing secret is logged or answered: failed sign-ins are logged with
//! the name given and the client's address; session ids and tokens are
//! never written anywhere but the `Set-Cookie` that hands a session out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Reply;
use super::login;
use super::routes::{Need, Route};
use super::throttle::Throttle;
use crate::event_stream::Opening;
use crate::users::{Role, Users, UsersWatch, random_hex};

/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 60 * 60);

/// The cookie that carries the session id.
pub const COOKIE: &str = "wsio_session";

/// What the gate needs from `wsio run`.
#[derive(Debug, Clone)]
pub struct AccessOptions {
    /// The users file (`--users`, default `users.toml` beside the project).
    pub users: PathBuf,
    /// `--tls-cert`/`--tls-key` or `--tls self-signed`.
    pub tls: Option<super::tls::TlsSource>,
}

/// Who is asking, as far as the gate cares.
pub struct Caller<'a> {
    /// The client's address (under TLS: the real client, not the front).
    pub addr: IpAddr,
    pub cookie: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

/// Who was let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// None: no users are configured (this machine), or a public route.
    pub user: Option<String>,
    pub role: Role,
    /// Whether users are configured at all (the page shows a note if not).
    pub users_configured: bool,
}

/// The gate's decision.
pub enum Admit {
    /// Go on to the router.
    Granted(Grant),
    /// Answered here (refusals, and the sign-in routes).
    Answer(GateReply),
}

/// A reply with the headers only the gate sets (`Set-Cookie`, `Location`,
/// `WWW-Authenticate`, `Retry-After`).
pub struct GateReply {
    pub reply: Reply,
    pub headers: Vec<(&'static str, String)>,
}

impl From<Reply> for GateReply {
    fn from(reply: Reply) -> GateReply {
        GateReply {
            reply,
            headers: Vec::new(),
        }
    }
}

struct Session {
    user: String,
    role: Role,
    /// The user's password hash when the session began: a new password
    /// ends the session.
    password: String,
    last_used: Instant,
}

pub struct Gate {
    users: UsersWatch,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
    /// Cookies get `Secure` under TLS.
    tls: bool,
}

impl Gate {
    pub fn new(users: UsersWatch, tls: bool) -> Gate {
        Gate {
            users,
            sessions: Mutex::default(),
            throttle: Mutex::default(),
            tls,
        }
    }

    /// Decides a request. `route` is None for a path the router does not
    /// know (it answers 404/405 itself, to those who may see the list).
    pub fn admit(&self, route: Option<&Route>, caller: &Caller, body: &[u8]) -> Admit {
        self.admit_at(route, caller, body, Instant::now())
    }

    /// `admit` at `now` (session expiry and throttling are tested with a
    /// clock of their own).
    fn admit_at(&self, route: Option<&Route>, caller: &Caller, body: &[u8], now: Instant) -> Admit {
        let current = self.users.current();
        let users = match current.as_ref() {
            Ok(users) => users,
            Err(e) => {
                return Admit::Answer(Reply::error(503, format!("no one may sign in: {e}")).into());
            }
        };
        let need = route.map_or(Need::Role(Role::Viewer), |r| r.need);
        match route.map(|r| (r.method, r.pattern)) {
            Some(("GET", "/login")) => {
                return Admit::Answer(login::page(200, users.any(), None, "").into());
            }
            Some(("POST", "/login")) => return Admit::Answer(self.login(users, caller, body, now)),
            Some(("POST", "/logout")) => return Admit::Answer(self.logout(caller)),
            _ => {}
        }
        let mut grant = Grant {
            user: None,
            role: Role::Admin,
            users_configured: users.any(),
        };
        if need == Need::Public {
            return Admit::Granted(grant);
        }
        if !users.any() {
            if !caller.addr.is_loopback() {
                log::warn!(
                    "refused a request from {}: no users are configured",
                    caller.addr
                );
                return Admit::Answer(
                    Reply::error(
                        403,
                        "no users are configured, so only this machine may use this controller; \
                         add a user first: wsio user add admin --role admin",
                    )
                    .into(),
                );
            }
        } else {
            let (user, role) = match self.identify(users, caller, now) {
                Ok(who) => who,
                Err(why) => return Admit::Answer(unauthorized(route, &why)),
            };
            let Need::Role(needed) = need else {
                unreachable!("public routes returned above")
            };
            if role < needed {
                return Admit::Answer(
                    Reply::error(
                        403,
                        format!(
                            "this needs the {needed} role; {user} has the {role} role \
                             (an admin can give it with wsio {} --role {needed})",
                            match user.strip_prefix("token ") {
                                Some(_) => "token add NAME".to_string(),
                                None => format!("user add {user}"),
                            }
                        ),
                    )
                    .into(),
                );
            }
            grant = Grant {
                user: Some(user),
                role,
                users_configured: true,
            };
        }
        if route.is_some_and(|r| r.pattern == "/session") {
            return Admit::Answer(session_json(&grant).into());
        }
        Admit::Granted(grant)
    }

    /// A live stream that ends once its caller's session or token no
    /// longer admits it (checked before each write: at once while events
    /// flow, within the 15 s keep-alive when idle).
    pub fn stream_guard(
        self: &Arc<Self>,
        opening: Opening,
        (addr, cookie, authorization): (IpAddr, Option<String>, Option<String>),
    ) -> Opening {
        let gate = self.clone();
        let events = super::routes::find("GET", &["events"]).ok().map(|(r, _)| r);
        opening.while_allowed(move || {
            let caller = Caller {
                addr,
                cookie: cookie.as_deref(),
                authorization: authorization.as_deref(),
            };
            matches!(gate.admit(events, &caller, b""), Admit::Granted(_))
        })
    }

    /// The user or token behind a request, and its role.
    fn identify(
        &self,
        users: &Users,
        caller: &Caller,
        now: Instant,
    ) -> Result<(String, Role), String> {
        if let Some(authorization) = caller.authorization {
            let token = authorization
                .strip_prefix("Bearer ")
                .or_else(|| authorization.strip_prefix("bearer "))
                .ok_or("the Authorization header must be Bearer <token>")?;
            return match users.check_token(token.trim()) {
                Some((name, token)) => Ok((format!("token {name}"), token.role)),
                None => {
                    log::warn!(
                        "refused an unknown or removed API token from {}",
                        caller.addr
                    );
                    Err("the API token is not valid (it may have been removed)".into())
                }
            };
        }
        let Some(id) = caller.cookie.and_then(session_cookie) else {
            return Err("sign in at /login, or send Authorization: Bearer <token>".into());
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        let Some(session) = sessions.get_mut(id) else {
            return Err("the session has ended; sign in again at /login".into());
        };
        match users.users.get(&session.user) {
            Some(user) if user.password == session.password && user.role == session.role => {
                session.last_used = now;
                Ok((session.user.clone(), session.role))
            }
            _ => {
                sessions.remove(id);
                Err("the user was changed or removed; sign in again at /login".into())
            }
        }
    }

    fn login(&self, users: &Users, caller: &Caller, body: &[u8], now: Instant) -> GateReply {
        if let Err(wait) = self.lock_throttle().check(caller.addr, now) {
            log::warn!("sign-in refused: too many failures from {}", caller.addr);
            let reply = login::page(
                429,
                users.any(),
                Some("Too many failed sign-ins from your address; wait a minute and try again."),
                "",
            );
            return GateReply {
                reply,
                headers: vec![("Retry-After", wait.as_secs().max(1).to_string())],
            };
        }
        let mut name = String::new();
        let mut password = String::new();
        for (key, value) in form_urlencoded::parse(body) {
            match key.as_ref() {
                "user" => name = value.into_owned(),
                "password" => password = value.into_owned(),
                _ => {}
            }
        }
        let user = if name.is_empty() || password.is_empty() {
            None
        } else {
            users.check_password(&name, &password)
        };
        let Some(user) = user else {
            let shown: String = name.chars().take(64).collect();
            log::warn!("sign-in failed for user {shown:?} from {}", caller.addr);
            if self.lock_throttle().fail(caller.addr, now) {
                log::warn!(
                    "{}: {} failed sign-ins within a minute; refusing sign-ins from it for a minute",
                    caller.addr,
                    super::throttle::LIMIT
                );
            }
            return login::page(
                401,
                users.any(),
                Some("Wrong user name or password."),
                &shown,
            )
            .into();
        };
        self.lock_throttle().succeed(caller.addr);
        let id = match random_hex(32) {
            Ok(id) => id,
            Err(e) => return Reply::error(500, e).into(),
        };
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                Session {
                    user: name.clone(),
                    role: user.role,
                    password: user.password.clone(),
                    last_used: now,
                },
            );
        log::info!("{name} ({}) signed in from {}", user.role, caller.addr);
        GateReply {
            reply: Reply::json(303, json!({ "user": name, "role": user.role.name() })),
            headers: vec![
                ("Set-Cookie", self.cookie(&id, None)),
                ("Location", "/".to_string()),
            ],
        }
    }

    fn logout(&self, caller: &Caller) -> GateReply {
        if let Some(id) = caller.cookie.and_then(session_cookie) {
            let ended = self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            if let Some(session) = ended {
                log::info!("{} signed out from {}", session.user, caller.addr);
            }
        }
        GateReply {
            reply: Reply::json(303, json!({ "ok": true })),
            headers: vec![
                ("Set-Cookie", self.cookie("", Some(0))),
                ("Location", "/login".to_string()),
            ],
        }
    }

    fn cookie(&self, value: &str, max_age: Option<u32>) -> String {
        let mut cookie = format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/");
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={age}"));
        }
        if self.tls {
            cookie.push_str("; Secure");
        }
        cookie
    }

    fn lock_throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 401: the page sends a browser to the login page; an API client reads
/// why.
fn unauthorized(route: Option<&Route>, why: &str) -> GateReply {
    let reply = if route.is_some_and(|r| r.pattern == "/") {
        login::to_login_page()
    } else {
        Reply::error(401, why)
    };
    GateReply {
        reply,
        headers: vec![("WWW-Authenticate", "Bearer realm=\"wsio\"".to_string())],
    }
}

/// `GET /session`: who the page is for.
pub fn session_json(grant: &Grant) -> Reply {
    Reply::json(
        200,
        json!({
            "user": grant.user,
            "role": grant.role.name(),
            "users": grant.users_configured,
        }),
    )
}

/// The session id in a `Cookie` header.
fn session_cookie(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The address a request really came from: tiny_http's peer, or under TLS
/// the client the TLS front accepted for that connection.
pub fn client_addr(peer: Option<&SocketAddr>, tls: Option<&super::tls::TlsFront>) -> IpAddr {
    let peer = peer.copied();
    let real = match (peer, tls) {
        (Some(peer), Some(front)) => front.client_of(peer),
        _ => peer,
    };
    // A request whose peer is unknown is treated as remote: it never gets
    // the no-users loopback pass.
    real.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::users::{User, UsersWatch, hash_password};

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn gate_with_alice(test: &str) -> Gate {
        let dir = std::env::temp_dir().join(format!("wsio-gate-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        let mut users = Users::default();
        users.users.insert(
            "alice".into(),
            User {
                role: Role::Operator,
                password: hash_password("alice-password").unwrap(),
            },
        );
        users.save(&path).unwrap();
        Gate::new(UsersWatch::open(&path).unwrap(), false)
    }

    fn route(method: &str, path: &[&str]) -> Option<&'static Route> {
        super::super::routes::find(method, path)
            .ok()
            .map(|(r, _)| r)
    }

    fn caller(cookie: Option<&str>) -> Caller<'_> {
        Caller {
            addr: LOCAL,
            cookie,
            authorization: None,
        }
    }

    fn sign_in(gate: &Gate, password: &str, now: Instant) -> GateReply {
        let body = format!("user=alice&password={password}");
        match gate.admit_at(
            route("POST", &["login"]),
            &caller(None),
            body.as_bytes(),
            now,
        ) {
            Admit::Answer(reply) => reply,
            Admit::Granted(_) => panic!("POST /login is answered by the gate"),
        }
    }

    fn admits(gate: &Gate, cookie: &str, now: Instant) -> bool {
        let io = route("GET", &["io_modules"]);
        matches!(
            gate.admit_at(io, &caller(Some(cookie)), b"", now),
            Admit::Granted(_)
        )
    }

    #[test]
    fn a_session_ends_after_twelve_hours_without_use_and_not_while_used() {
        let gate = gate_with_alice("idle");
        let t0 = Instant::now();
        let reply = sign_in(&gate, "alice-password", t0);
        assert_eq!(reply.reply.status, 303);
        let set = &reply
            .headers
            .iter()
            .find(|(n, _)| *n == "Set-Cookie")
            .unwrap()
            .1;
        let cookie = set.split(';').next().unwrap().to_string();
        let hour = Duration::from_secs(3600);
        assert!(admits(&gate, &cookie, t0 + 11 * hour));
        assert!(admits(&gate, &cookie, t0 + 22 * hour), "used 11 h before");
        assert!(!admits(&gate, &cookie, t0 + 34 * hour), "12 h idle");
    }

    #[test]
    fn the_sixth_sign_in_within_a_minute_is_429_even_with_the_right_password() {
        let gate = gate_with_alice("throttle");
        let t0 = Instant::now();
        for n in 0..5 {
            let reply = sign_in(&gate, "wrong", t0 + Duration::from_secs(n));
            assert_eq!(reply.reply.status, 401);
        }
        let reply = sign_in(&gate, "alice-password", t0 + Duration::from_secs(5));
        assert_eq!(reply.reply.status, 429);
        let later = t0 + Duration::from_secs(5) + super::super::throttle::WINDOW;
        assert_eq!(sign_in(&gate, "alice-password", later).reply.status, 303);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(session_cookie("a=1; wsio_session=abc; b=2"), Some("abc"));
        assert_eq!(session_cookie("wsio_session="), None);
        assert_eq!(session_cookie("other=abc"), None);
    }
}
