//! The two checks that keep a web page the integrator happens to visit from
//! using this host: a `POST` from another site's page (its `Origin`) and a
//! `Host` that is not this host's (DNS rebinding).

use tiny_http::Method;

/// A POST sent by a browser from a page of another origin. Browsers always
/// send `Origin` with a POST; curl and other clients send none.
pub(super) fn is_cross_site(method: &Method, origin: Option<&str>, host: Option<&str>) -> bool {
    if *method != Method::Post {
        return false;
    }
    match (origin, host) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let origin = origin.strip_prefix("http://").unwrap_or(origin);
            !origin.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
    }
}

/// The host part of a `Host` header or an `--http` address: without the
/// port, and without the brackets of an IPv6 address.
pub(super) fn host_part(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match text.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => text,
    }
}

/// The host name of an `--http` address, when it is a name, not an IP.
pub(super) fn host_name_of(addr: &str) -> Option<&str> {
    let host = host_part(addr);
    (host.parse::<std::net::IpAddr>().is_err() && !host.is_empty()).then_some(host)
}

/// Whether a request's `Host` names this host: an IP address, `localhost`
/// (or a name under `.localhost`, which resolves to loopback by RFC 6761),
/// or the name the host was started with (`--http NAME:PORT`). No `Host`
/// at all is an HTTP/1.0 client, not a browser.
pub(super) fn is_own_host(host: Option<&str>, name: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let part = host_part(host.trim()).to_ascii_lowercase();
    part.parse::<std::net::IpAddr>().is_ok()
        || part == "localhost"
        || part.ends_with(".localhost")
        || name.is_some_and(|n| n == part)
}
