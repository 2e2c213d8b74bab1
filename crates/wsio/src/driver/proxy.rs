//! Proxy: reaching the server through an HTTP proxy with CONNECT.
//!
//! Used by the driver between DNS/TCP and TLS: the TCP connection goes to
//! the proxy, which opens a tunnel to the server; TLS and the WebSocket
//! handshake then run inside the tunnel as if connected directly. The
//! proxy comes from the `Proxy` property or, with `Use System Proxy`, from
//! `HTTPS_PROXY` (WSS) / `HTTP_PROXY` (WS) minus `NO_PROXY`. The answer is
//! parsed with `httparse`; credentials never reach a log line. A proxy that
//! refuses the credentials (407, or 401 as tinyproxy answers) ends the
//! attempt fatally, with advice naming where they came from.

use crate::machine::{Ending, Stage};
use crate::properties::{ProxyConfig, ProxySetting, ProxySource, parse_proxy};
use base64::Engine;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

/// The largest proxy answer head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// The proxy to use for `host` (None: connect directly).
pub fn resolve(
    setting: &ProxySetting,
    host: &str,
    tls: bool,
) -> Result<Option<ProxyConfig>, Ending> {
    match setting {
        ProxySetting::Direct => Ok(None),
        ProxySetting::Explicit(proxy) => Ok(Some(proxy.clone())),
        ProxySetting::System => {
            let names: &[&str] = if tls {
                &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            } else {
                &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            };
            let Some((name, value)) = names.iter().find_map(|n| {
                std::env::var(n)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (*n, v))
            }) else {
                return Ok(None);
            };
            let no_proxy = std::env::var("NO_PROXY")
                .or_else(|_| std::env::var("no_proxy"))
                .unwrap_or_default();
            if bypasses(&no_proxy, host) {
                return Ok(None);
            }
            parse_proxy(value.trim(), name)
                .map(Some)
                .map_err(|e| Ending::error(Stage::Proxy, e.message))
        }
    }
}

/// The proxy `setting` gives for `host` as log lines show it: "via proxy
/// http://host:port (the Proxy property)", without user or password; None
/// when connecting directly. An environment variable that does not parse
/// still shows that a proxy is meant (each connect then fails naming it).
pub fn shown_route(setting: &ProxySetting, host: &str, tls: bool) -> Option<String> {
    match resolve(setting, host, tls) {
        Ok(None) => None,
        Ok(Some(proxy)) => Some(format!("via proxy {}", shown(&proxy))),
        Err(_) => {
            Some("via the system proxy (Use System Proxy), whose setting is not usable".to_owned())
        }
    }
}

/// "http://host:port (the Proxy property)": never the password.
pub fn shown(proxy: &ProxyConfig) -> String {
    let host = if proxy.host.contains(':') {
        format!("[{}]", proxy.host)
    } else {
        proxy.host.clone()
    };
    let source = match &proxy.source {
        ProxySource::Property => "the Proxy property".to_owned(),
        ProxySource::Environment(name) => format!("{name}, Use System Proxy"),
    };
    format!("http://{host}:{} ({source})", proxy.port)
}

/// What to fix when the proxy asks for credentials (`code` 407, or 401 as
/// tinyproxy answers): the place they came from, or that none were given.
fn credentials_advice(proxy: &ProxyConfig, code: u16, text: &str) -> String {
    let status = format!("{code} {text}");
    let status = status.trim_end();
    match (&proxy.auth, &proxy.source) {
        (Some(auth), ProxySource::Property) => format!(
            "the proxy refused the credentials ({status}): check the user \"{}\" and its password in the Proxy property",
            auth.username
        ),
        (Some(auth), ProxySource::Environment(name)) => format!(
            "the proxy refused the credentials ({status}): check the user \"{}\" and its password in the environment variable {name} (Use System Proxy is on)",
            auth.username
        ),
        (None, ProxySource::Property) => format!(
            "the proxy requires credentials ({status}) and none were given: write them into the Proxy property as http://user:password@host:port"
        ),
        (None, ProxySource::Environment(name)) => format!(
            "the proxy requires credentials ({status}) and none were given: the environment variable {name} (Use System Proxy is on) holds no user:password; set it to http://user:password@host:port"
        ),
    }
}

/// Whether NO_PROXY (comma list: `*`, host names, `.domain` suffixes, IP
/// addresses; ports ignored) exempts `host`.
pub fn bypasses(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            // "host:port" → "host"; leave IPv6 literals alone.
            let entry = match entry.rsplit_once(':') {
                Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => {
                    name.to_owned()
                }
                _ => entry,
            };
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            let domain = entry.trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

/// Opens a CONNECT tunnel to `host:port` through `proxy`.
pub async fn connect(proxy: &ProxyConfig, host: &str, port: u16) -> Result<TcpStream, Ending> {
    let err = |reason: String| Ending::error(Stage::Proxy, reason);
    let addrs = smol::net::resolve((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| err(format!("DNS lookup of proxy {} failed: {e}", proxy.host)))?;
    let mut last = format!("DNS lookup of proxy {} returned no address", proxy.host);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("TCP connect to proxy {addr} failed: {e}"),
        }
    }
    let mut stream = stream.ok_or_else(|| err(last))?;
    let _ = stream.set_nodelay(true);
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.auth {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            auth.username,
            auth.password.expose()
        ));
        request.push_str(&format!("Proxy-Authorization: Basic {credentials}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| err(format!("sending CONNECT to the proxy failed: {e}")))?;

    // Read the answer head byte by byte: anything after it belongs to the
    // tunnel, and the server speaks only after we do, so nothing should.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(err(format!(
                "the proxy's answer head is longer than {MAX_HEAD} bytes"
            )));
        }
        match stream.read(&mut byte).await {
            Ok(0) => {
                return Err(err(
                    "the proxy closed the connection before answering CONNECT".to_owned(),
                ));
            }
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(err(format!("reading the proxy's answer failed: {e}"))),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => {
            return Err(err(
                "the proxy's answer to CONNECT is not valid HTTP".to_owned()
            ));
        }
    }
    let code = response.code.unwrap_or(0);
    let text = response.reason.unwrap_or("");
    match code {
        200..=299 => Ok(stream),
        // 407 is what RFC 9110 asks of a proxy; tinyproxy answers a wrong
        // password with 401. Either way retrying cannot help.
        401 | 407 => Err(Ending {
            fatal: true,
            ..err(credentials_advice(proxy, code, text))
        }),
        _ => Err(err(format!(
            "the proxy refused to open a tunnel to {authority}: {code} {text}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_hosts_domains_ips_and_star() {
        assert!(bypasses("localhost,127.0.0.1", "127.0.0.1"));
        assert!(bypasses("example.com", "example.com"));
        assert!(bypasses(".example.com", "a.example.com"));
        assert!(bypasses("example.com", "a.example.com"));
        assert!(!bypasses("example.com", "badexample.com"));
        assert!(bypasses("*", "anything"));
        assert!(bypasses("host:8080", "host"));
        assert!(bypasses("::1", "::1"));
        assert!(!bypasses("", "host"));
    }

    #[test]
    fn explicit_and_direct_settings_resolve_without_the_environment() {
        assert!(
            resolve(&ProxySetting::Direct, "h", false)
                .unwrap()
                .is_none()
        );
        let proxy = parse_proxy("http://proxy:3128", "Proxy").unwrap();
        let got = resolve(&ProxySetting::Explicit(proxy), "h", true)
            .unwrap()
            .unwrap();
        assert_eq!((got.host.as_str(), got.port), ("proxy", 3128));
    }

    #[test]
    fn the_route_and_the_advice_name_where_the_proxy_came_from_never_the_password() {
        let given = parse_proxy("http://alice:s3cret@proxy:3128", "Proxy").unwrap();
        let route = shown_route(&ProxySetting::Explicit(given.clone()), "h", false).unwrap();
        assert_eq!(route, "via proxy http://proxy:3128 (the Proxy property)");
        let advice = credentials_advice(&given, 407, "Proxy Authentication Required");
        assert_eq!(
            advice,
            "the proxy refused the credentials (407 Proxy Authentication Required): check the user \"alice\" and its password in the Proxy property"
        );
        let from_env = parse_proxy("http://bob:s3cret@[::1]:8888", "HTTPS_PROXY").unwrap();
        assert_eq!(
            shown(&from_env),
            "http://[::1]:8888 (HTTPS_PROXY, Use System Proxy)"
        );
        let advice = credentials_advice(&from_env, 401, "Unauthorized");
        assert!(
            advice.starts_with("the proxy refused the credentials (401 Unauthorized): check the user \"bob\" and its password in the environment variable HTTPS_PROXY"),
            "{advice}"
        );
        let none = parse_proxy("proxy:3128", "Proxy").unwrap();
        assert!(
            credentials_advice(&none, 407, "")
                .starts_with("the proxy requires credentials (407) and none were given"),
        );
        let none = parse_proxy("proxy:3128", "HTTP_PROXY").unwrap();
        assert!(credentials_advice(&none, 401, "Unauthorized").contains(
            "the environment variable HTTP_PROXY (Use System Proxy is on) holds no user:password"
        ),);
        for text in [route, shown(&from_env)] {
            assert!(!text.contains("s3cret") && !text.contains("alice") && !text.contains("bob"));
        }
    }
}
