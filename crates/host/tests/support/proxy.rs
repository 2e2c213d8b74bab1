//! An HTTP CONNECT proxy (RFC 9110 §9.3.6) on 127.0.0.1, for the Proxy and
//! Use System Proxy options: it parses the CONNECT request head, records
//! the target and the `Proxy-Authorization` header, optionally requires
//! Basic credentials (407 without them), then connects to the target and
//! pipes bytes both ways until either side closes.
//!
//! It only tunnels to loopback targets (127.0.0.0/8, `localhost`): anything
//! else is answered 403, so a misdirected client never leaves the machine.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

use super::fixture::{Connection, FIXTURE_HANDSHAKE_TIMEOUT, Fixture, Io, within};

/// The longest request head the proxy reads before answering 431.
const MAX_HEAD: usize = 16 * 1024;

/// One request the proxy received, and how it answered.
#[derive(Clone, Debug)]
pub struct ProxyRequest {
    pub method: String,
    /// The request target: `host:port` for CONNECT.
    pub target: String,
    /// The `Proxy-Authorization` header, as received.
    pub proxy_authorization: Option<String>,
    /// The status the proxy answered (200 when it opened a tunnel).
    pub status: u16,
}

/// Everything the proxy saw so far.
#[derive(Clone, Debug, Default)]
pub struct ProxyObserved {
    /// TCP connections accepted from clients.
    pub connections: usize,
    pub requests: Vec<ProxyRequest>,
    /// Tunnels opened (answered 200 and piped).
    pub tunnels: usize,
}

impl ProxyObserved {
    /// The targets of the tunnels opened, in order.
    pub fn tunnelled_targets(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.target.clone())
            .collect()
    }
}

#[derive(Default)]
struct ProxyLog {
    observed: Mutex<ProxyObserved>,
    changed: Condvar,
}

impl ProxyLog {
    fn lock(&self) -> MutexGuard<'_, ProxyObserved> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, change: impl FnOnce(&mut ProxyObserved)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }
}

/// The running proxy; stops on drop (cutting every tunnel), bounded in time.
pub struct ConnectProxy {
    fixture: Fixture,
    log: Arc<ProxyLog>,
}

impl ConnectProxy {
    /// A proxy that tunnels for anyone.
    pub fn start() -> ConnectProxy {
        Self::start_with(None)
    }

    /// A proxy that answers 407 unless the request carries
    /// `Proxy-Authorization: Basic base64(user:password)`.
    pub fn requiring(user: &str, password: &str) -> ConnectProxy {
        Self::start_with(Some(format!("{user}:{password}")))
    }

    fn start_with(credentials: Option<String>) -> ConnectProxy {
        let expected = credentials.map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        let log = Arc::new(ProxyLog::default());
        let shared = log.clone();
        let fixture = Fixture::start(0, false, move |connection| {
            serve_proxy(connection, shared.clone(), expected.clone())
        });
        ConnectProxy { fixture, log }
    }

    pub fn addr(&self) -> SocketAddr {
        self.fixture.addr()
    }

    pub fn port(&self) -> u16 {
        self.fixture.port()
    }

    /// `http://127.0.0.1:PORT`, the form the Proxy property and the
    /// `HTTP(S)_PROXY` variables take.
    pub fn url(&self) -> String {
        format!("http://{}", self.fixture.addr())
    }

    /// A copy of what the proxy observed so far.
    pub fn snapshot(&self) -> ProxyObserved {
        self.log.lock().clone()
    }

    /// Blocks until `predicate` holds (true) or `timeout` passes (false).
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut(&ProxyObserved) -> bool,
        timeout: Duration,
    ) -> bool {
        let guard = self.log.lock();
        let (guard, _) = self
            .log
            .changed
            .wait_timeout_while(guard, timeout, |o| !predicate(o))
            .unwrap_or_else(|p| p.into_inner());
        predicate(&guard)
    }
}

async fn serve_proxy(connection: Connection, log: Arc<ProxyLog>, expected: Option<String>) {
    log.record(|o| o.connections += 1);
    let mut client = connection.stream;
    let Some(Some((head, rest))) = within(FIXTURE_HANDSHAKE_TIMEOUT, read_head(&mut client)).await
    else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(&head), Ok(httparse::Status::Complete(_))) {
        let _ = answer(&mut client, 400, "Bad Request", "").await;
        return;
    }
    let method = request.method.unwrap_or_default().to_string();
    let target = request.path.unwrap_or_default().to_string();
    let proxy_authorization = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned());
    let status = if method != "CONNECT" {
        405
    } else if expected.is_some() && proxy_authorization != expected {
        407
    } else if !is_loopback_target(&target) {
        403
    } else {
        200
    };
    let upstream = if status == 200 {
        TcpStream::connect(target.as_str()).await.ok()
    } else {
        None
    };
    let status = if status == 200 && upstream.is_none() {
        502
    } else {
        status
    };
    log.record(|o| {
        o.requests.push(ProxyRequest {
            method,
            target,
            proxy_authorization,
            status,
        })
    });
    let Some(upstream) = upstream else {
        let (reason, extra) = match status {
            407 => (
                "Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"wsio test proxy\"\r\n",
            ),
            405 => ("Method Not Allowed", ""),
            403 => ("Forbidden", ""),
            _ => ("Bad Gateway", ""),
        };
        let _ = answer(&mut client, status, reason, extra).await;
        return;
    };
    if answer(&mut client, 200, "Connection established", "")
        .await
        .is_err()
    {
        return;
    }
    log.record(|o| o.tunnels += 1);
    pipe(client, upstream, rest).await;
}

/// Reads up to the end of the request head; returns the head and whatever
/// bytes came after it (to forward). `None` on EOF, error or a huge head.
async fn read_head(stream: &mut Box<dyn Io>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Some((buffer, rest));
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
    }
}

async fn answer(
    stream: &mut Box<dyn Io>,
    status: u16,
    reason: &str,
    extra_headers: &str,
) -> std::io::Result<()> {
    let closing = if status == 200 {
        ""
    } else {
        "Content-Length: 0\r\nConnection: close\r\n"
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\n{extra_headers}{closing}\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await
}

fn is_loopback_target(target: &str) -> bool {
    let Some((host, port)) = target.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    port.parse::<u16>().is_ok()
        && (host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

/// Copies both ways until either direction ends, then drops both sockets.
async fn pipe(client: Box<dyn Io>, upstream: TcpStream, early: Vec<u8>) {
    let (mut client_read, mut client_write) = smol::io::split(client);
    let mut upstream_write = upstream.clone();
    let mut upstream_read = upstream;
    let up = async {
        if !early.is_empty() && upstream_write.write_all(&early).await.is_err() {
            return;
        }
        let _ = smol::io::copy(&mut client_read, &mut upstream_write).await;
    };
    let down = async {
        let _ = smol::io::copy(&mut upstream_read, &mut client_write).await;
    };
    future::or(up, down).await;
}
