//! The guards every request passes before it is routed: a browser's POST
//! or PUT from another site's page is refused (`is_cross_site`), and so is
//! a `Host` that is not this host (`is_own_host`, against DNS rebinding).

use tiny_http::Method;

/// A POST or PUT sent by a browser from a page of another origin.
/// Browsers always send `Origin` with those; curl and other clients send
/// none.
pub(super) fn is_cross_site(method: &Method, origin: Option<&str>, host: Option<&str>) -> bool {
    if matches!(method, Method::Get | Method::Head) {
        return false;
    }
    match (origin, host) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let origin = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .unwrap_or(origin);
            !origin.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
    }
}

/// The host part of a `Host` header or an `--http` address: without the
/// port, and without the brackets of an IPv6 address.
fn host_part(text: &str) -> &str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_posts_and_puts_from_another_origin_are_cross_site() {
        let host = Some("127.0.0.1:8080");
        assert!(!is_cross_site(&Method::Post, None, host), "curl");
        assert!(!is_cross_site(
            &Method::Post,
            Some("http://127.0.0.1:8080"),
            host
        ));
        assert!(is_cross_site(
            &Method::Post,
            Some("https://evil.example"),
            host
        ));
        assert!(is_cross_site(&Method::Post, Some("null"), host));
        assert!(is_cross_site(
            &Method::Put,
            Some("https://evil.example"),
            host
        ));
        assert!(is_cross_site(
            &Method::Post,
            Some("http://127.0.0.1:8080"),
            None
        ));
        assert!(!is_cross_site(
            &Method::Get,
            Some("https://evil.example"),
            host
        ));
    }

    #[test]
    fn only_ip_addresses_localhost_and_the_given_name_are_this_host() {
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "192.168.1.20:80",
            "localhost:8080",
            "LOCALHOST",
            "status.localhost:8080",
        ] {
            assert!(is_own_host(Some(host), None), "{host}");
        }
        assert!(is_own_host(None, None), "an HTTP/1.0 client");
        for host in [
            "evil.example:8080",
            "evil.example",
            "localhost.evil.example",
            "",
        ] {
            assert!(!is_own_host(Some(host), None), "{host}");
        }
        assert!(is_own_host(
            Some("Controller.local:8080"),
            Some("controller.local")
        ));
        assert!(!is_own_host(
            Some("other.local:8080"),
            Some("controller.local")
        ));
        assert_eq!(
            host_name_of("controller.local:8080"),
            Some("controller.local")
        );
        assert_eq!(host_name_of("127.0.0.1:8080"), None);
        assert_eq!(host_name_of("[::1]:8080"), None);
    }
}
