//! Proxy: reaching the server through an HTTP proxy with CONNECT.
//!
//! Used by the driver between DNS/TCP and TLS: the TCP connection goes to
//! the proxy, which opens a tunnel to the server; TLS and the WebSocket
//! handshake then run inside the tunnel as if connected directly. The
//! proxy comes from the `Proxy` property or, with `Use System Proxy`, from
//! `HTTPS_PROXY` (WSS) / `HTTP_PROXY` (WS) minus `NO_PROXY`. The answer is
//! parsed with `httparse`; credentials never reach a log line.

use crate::machine::{Ending, Stage};
use crate::properties::{ProxyConfig, ProxySetting, parse_proxy};
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
        407 => Err(Ending {
            fatal: true,
            ..err(format!(
                "the proxy refused the credentials: 407 {text}; check the user and password in Proxy"
            ))
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
}
