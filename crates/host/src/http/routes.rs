//! Every route the host serves, with the role it needs: one table, read by
//! the router (`route` dispatches only what `find` found here) and by the
//! access check (`access`), so an endpoint cannot exist without a role.
//! A test walks the table and asks the router to dispatch each entry.

use crate::users::Role;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone: the login page, its assets, logging in and out.
    Public,
    /// A user or token with at least this role (no users: this machine).
    Role(Role),
}

/// A method and a path pattern: `{name}` matches one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub need: Need,
}

const fn route(method: &'static str, pattern: &'static str, need: Need) -> Route {
    Route {
        method,
        pattern,
        need,
    }
}

const PUBLIC: Need = Need::Public;
const VIEWER: Need = Need::Role(Role::Viewer);
const OPERATOR: Need = Need::Role(Role::Operator);
const ADMIN: Need = Need::Role(Role::Admin);

/// The table. The status page and its feed are the viewer's; running
/// anything is the operator's; the configuration (read or write) is the
/// admin's, since it shows the whole project.
pub const ROUTES: &[Route] = &[
    route("GET", "/login", PUBLIC),
    route("POST", "/login", PUBLIC),
    route("POST", "/logout", PUBLIC),
    route("GET", "/assets/{file}", PUBLIC),
    route("GET", "/session", VIEWER),
    route("GET", "/", VIEWER),
    route("GET", "/events", VIEWER),
    route("GET", "/io_modules", VIEWER),
    route("POST", "/io_modules/{instance}/actions/{action}", OPERATOR),
    route("POST", "/io_modules/{instance}/network", OPERATOR),
    route(
        "POST",
        "/io_modules/{instance}/triggers/{trigger}/test",
        ADMIN,
    ),
    route("GET", "/project", ADMIN),
    // Issue 17: the configuration API.
    route("PUT", "/project", ADMIN),
    route("POST", "/project/check", ADMIN),
    route("POST", "/project/reload", ADMIN),
    route("POST", "/project/save", ADMIN),
    route("GET", "/modules", ADMIN),
    route("POST", "/modules", ADMIN),
    route("POST", "/modules/{id}/triggers/{trigger}/test", ADMIN),
    route("POST", "/modules/{id}/triggers/{trigger}/variables", ADMIN),
];

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No route has this path.
    NotFound,
    /// The path exists with these methods only.
    Method(Vec<&'static str>),
}

/// The route for a method and decoded path segments, and the segments its
/// `{…}` parts matched, in order.
pub fn find<'s>(
    method: &str,
    segments: &[&'s str],
) -> Result<(&'static Route, Vec<&'s str>), Miss> {
    let mut methods = Vec::new();
    for route in ROUTES {
        if let Some(args) = matches(route.pattern, segments) {
            if route.method == method {
                return Ok((route, args));
            }
            methods.push(route.method);
        }
    }
    if methods.is_empty() {
        Err(Miss::NotFound)
    } else {
        Err(Miss::Method(methods))
    }
}

fn matches<'s>(pattern: &str, segments: &[&'s str]) -> Option<Vec<&'s str>> {
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut args = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') {
            args.push(*segment);
        } else if part != segment {
            return None;
        }
    }
    Some(args)
}

/// "GET /io_modules, POST /io_modules/<instance>/actions/<action>, …" for
/// the 404 message.
pub fn listing() -> String {
    ROUTES
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.pattern.replace('{', "<").replace('}', ">")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_by_segments_and_methods_are_listed() {
        let (route, args) = find("POST", &["io_modules", "ws", "actions", "Connect"]).unwrap();
        assert_eq!(route.need, OPERATOR);
        assert_eq!(args, ["ws", "Connect"]);
        assert_eq!(find("GET", &[]).unwrap().0.pattern, "/");
        assert_eq!(find("GET", &["nope"]).unwrap_err(), Miss::NotFound);
        assert_eq!(
            find("DELETE", &["project"]).unwrap_err(),
            Miss::Method(vec!["GET", "PUT"])
        );
    }

    /// A route added to the table without a handler, or a handler without
    /// a route (the router dispatches only what the table matched), fails
    /// here.
    #[test]
    fn the_router_has_a_handler_for_every_route_of_the_table() {
        for route in ROUTES {
            let args = vec!["x"; route.pattern.matches('{').count()];
            let name = format!("{} {}", route.method, route.pattern);
            let handled = super::super::endpoint_of(route, &args).is_some();
            assert!(
                handled,
                "{name} is in the table but the router has no handler for it"
            );
        }
    }

    #[test]
    fn every_route_is_listed_once() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.pattern == b.pattern),
                    "{} {} twice",
                    a.method,
                    a.pattern
                );
            }
        }
    }
}
