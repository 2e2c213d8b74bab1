//! The bench's loopback servers, run in a child process (`throughput --serve`)
//! so that their memory, threads and CPU never count against the client being
//! measured. One smol thread serves three listeners on 127.0.0.1:
//!
//! - `ws` and `wss` (TLS with a fresh rcgen certificate, written as a PEM file
//!   for the clients to trust): the WebSocket workloads, chosen by path;
//! - `tcp`: the same workloads over plain TCP, for the physical limit.
//!
//! The servers are written for speed, so that they are never what a row
//! measures: the blaster writes prebuilt frames in 256 KiB chunks, the sink
//! parses frame headers without unmasking payloads.
//!
//! WebSocket paths (every workload waits for a first message, "go", from the
//! client, so that connecting is not part of what is timed):
//!
//! | path | what |
//! |---|---|
//! | `/blast?n=N&size=S` | after "go", N text messages of S bytes (`msg 0000000…`), as fast as the socket takes them |
//! | `/sink?n=N` | counts data frames; at N it sends `done` |
//! | `/ping?n=N&size=S` | after "go", N sequential round trips: sends `ping …`, waits for any data message back; then sends `stats P50 P99 MAX MEAN` (ns) |
//! | `/idle` | holds the connection, answers pings |
//! | `/drop-once/<id>` | the first connection for `<id>` is dropped (TCP) after 50 ms; later ones are held like `/idle` |
//! | anything else | echoes every data message |
//!
//! TCP: the client sends 12 bytes `[mode, 0, 0, 0, n: u32 LE, size: u32 LE]`;
//! mode `B` = the server writes n × (size + the WebSocket header size) bytes,
//! `S` = the server reads n × (size + header + 4-byte mask) bytes and answers
//! one byte, `P` = n round trips of `size` bytes, then 32 bytes of stats
//! (p50, p99, max, mean in ns, u64 LE).

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::handshake::server::{Request, Response};
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures_rustls::TlsAcceptor;
use futures_util::StreamExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Timer};

/// The server process ends by itself after this long, whatever happens.
const MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Where the listeners are, printed as one JSON line on stdout.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    pub ws: u16,
    pub wss: u16,
    pub tcp: u16,
    /// The PEM file of the wss certificate (self-signed, localhost and 127.0.0.1).
    pub ca: String,
}

/// The payload of every benchmark message of `size` bytes, starting with
/// `prefix` ("msg", "ping").
pub fn payload(prefix: &str, size: usize) -> Vec<u8> {
    let mut text = format!("{prefix} 0000000000 ").into_bytes();
    text.resize(size.max(prefix.len()), b'x');
    text.truncate(size.max(prefix.len()));
    text
}

/// A WebSocket frame header size for a payload of `len` bytes (unmasked).
pub fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len < 65536 {
        4
    } else {
        10
    }
}

/// A server-to-client (unmasked) frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len < 65536 {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Raises RLIMIT_NOFILE to its hard limit (1,000 connections need it).
pub fn raise_nofile() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A listener with a backlog large enough for a connect storm of 1,000
/// (std's default of 128 would make the kernel drop SYNs and the storm
/// row would measure TCP's 1 s retransmit, not the client).
fn listen() -> TcpListener {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    // SAFETY: listen() again on a listening socket only changes its backlog.
    unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    listener.set_nonblocking(true).expect("nonblocking");
    TcpListener::try_from(listener).expect("smol takes the listener")
}

/// `--serve`: runs until stdin closes (the bench ended) or MAX_LIFETIME.
pub fn serve() {
    raise_nofile();
    let identity = wsio_host::demo_server::TlsIdentity::self_signed();
    let ca = std::env::temp_dir().join(format!("wsio-bench-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, identity.cert_pem()).expect("write the bench CA file");
    let acceptor = TlsAcceptor::from(identity.server_config().expect("server TLS config"));
    let ex: &'static Executor<'static> = Box::leak(Box::new(Executor::new()));
    let dropped: Arc<Mutex<HashSet<String>>> = Arc::default();
    smol::block_on(ex.run(async {
        let (ws, wss, tcp) = (listen(), listen(), listen());
        let ports = Ports {
            ws: ws.local_addr().unwrap().port(),
            wss: wss.local_addr().unwrap().port(),
            tcp: tcp.local_addr().unwrap().port(),
            ca: ca.to_string_lossy().into_owned(),
        };
        println!("{}", serde_json::to_string(&ports).unwrap());
        std::io::stdout().flush().ok();
        let d = dropped.clone();
        ex.spawn(async move {
            loop {
                let Ok((s, _)) = ws.accept().await else {
                    continue;
                };
                let d = d.clone();
                ex.spawn(async move {
                    let _ = s.set_nodelay(true);
                    websocket(s, d).await
                })
                .detach();
            }
        })
        .detach();
        let d = dropped.clone();
        ex.spawn(async move {
            loop {
                let Ok((s, _)) = wss.accept().await else {
                    continue;
                };
                let (d, acceptor) = (d.clone(), acceptor.clone());
                ex.spawn(async move {
                    let _ = s.set_nodelay(true);
                    if let Ok(tls) = acceptor.accept(s).await {
                        websocket(tls, d).await
                    }
                })
                .detach();
            }
        })
        .detach();
        ex.spawn(async move {
            loop {
                let Ok((s, _)) = tcp.accept().await else {
                    continue;
                };
                ex.spawn(async move {
                    let _ = s.set_nodelay(true);
                    let _ = plain_tcp(s).await;
                })
                .detach();
            }
        })
        .detach();
        let stdin_closed = smol::unblock(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        });
        smol::future::or(stdin_closed, async {
            Timer::after(MAX_LIFETIME).await;
        })
        .await;
    }));
    let _ = std::fs::remove_file(&ca);
    std::process::exit(0);
}

fn query(path: &str, key: &str, default: usize) -> usize {
    path.split(['?', '&'])
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

// tungstenite's handshake callback type fixes the large error variant.
#[allow(clippy::result_large_err)]
async fn websocket<S>(stream: S, dropped: Arc<Mutex<HashSet<String>>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    let config = WebSocketConfig::default().read_buffer_size(64 * 1024);
    let callback = move |request: &Request, response: Response| {
        *seen.lock().unwrap() = request.uri().to_string();
        Ok(response)
    };
    let Ok(ws) =
        async_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let path = path.lock().unwrap().clone();
    let route = path.split('?').next().unwrap_or("").to_owned();
    match route.as_str() {
        "/blast" => blast(ws, query(&path, "n", 1), query(&path, "size", 32)).await,
        "/sink" => sink(ws, query(&path, "n", 1)).await,
        "/ping" => ping(ws, query(&path, "n", 1), query(&path, "size", 32)).await,
        "/idle" => idle(ws).await,
        r if r.starts_with("/drop-once/") => {
            let first = dropped.lock().unwrap().insert(r.to_owned());
            if first {
                Timer::after(Duration::from_millis(50)).await;
                // Dropping `ws` cuts TCP: the client sees the connection lost.
            } else {
                idle(ws).await
            }
        }
        _ => echo(ws).await,
    }
}

async fn wait_for_go<S>(ws: &mut WebSocketStream<S>) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if message.is_text() || message.is_binary() {
            return true;
        }
    }
    false
}

/// After the workload: answer the client's close (or pings) until it leaves.
async fn idle<S>(mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(_)) = ws.next().await {}
}

async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

async fn blast<S>(mut ws: WebSocketStream<S>, n: usize, size: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !wait_for_go(&mut ws).await {
        return;
    }
    let one = frame(1, &payload("msg", size));
    let per_chunk = (256 * 1024 / one.len()).max(1);
    let chunk = one.repeat(per_chunk.min(n.max(1)));
    let mut left = n;
    let socket = ws.get_mut();
    while left > 0 {
        let k = left.min(per_chunk);
        if socket.write_all(&chunk[..k * one.len()]).await.is_err() {
            return;
        }
        left -= k;
    }
    if socket.flush().await.is_err() {
        return;
    }
    idle(ws).await
}

/// Counts client frames by parsing headers only (payloads are skipped, not
/// unmasked), answers `done` at `n`, a close with a close, a ping with a pong.
async fn sink<S>(mut ws: WebSocketStream<S>, n: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let socket = ws.get_mut();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut skip = 0usize;
    let mut count = 0usize;
    loop {
        if start == end {
            start = 0;
            end = 0;
        } else if buf.len() - end < 16 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let read = match socket.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(r) => r,
        };
        end += read;
        loop {
            if skip > 0 {
                let k = skip.min(end - start);
                start += k;
                skip -= k;
                if skip > 0 {
                    break;
                }
            }
            let avail = &buf[start..end];
            if avail.len() < 2 {
                break;
            }
            let opcode = avail[0] & 0x0f;
            let masked = avail[1] & 0x80 != 0;
            let (len_bytes, len) = match avail[1] & 0x7f {
                126 if avail.len() >= 4 => (2, u16::from_be_bytes([avail[2], avail[3]]) as usize),
                127 if avail.len() >= 10 => (
                    8,
                    u64::from_be_bytes(avail[2..10].try_into().unwrap()) as usize,
                ),
                126 | 127 => break,
                l => (0, l as usize),
            };
            let header = 2 + len_bytes + if masked { 4 } else { 0 };
            if avail.len() < header {
                break;
            }
            start += header;
            skip = len;
            match opcode {
                1 | 2 => {
                    count += 1;
                    if count == n && socket.write_all(&frame(1, b"done")).await.is_err() {
                        return;
                    }
                }
                8 => {
                    let _ = socket.write_all(&frame(8, &1000u16.to_be_bytes())).await;
                    let _ = socket.flush().await;
                    return;
                }
                9 => {
                    let _ = socket.write_all(&frame(10, b"")).await;
                }
                _ => {}
            }
        }
        let _ = socket.flush().await;
    }
}

/// Sorted round-trip times to "P50 P99 MAX MEAN" in ns.
pub fn stats_of(mut rtts: Vec<u64>) -> [u64; 4] {
    if rtts.is_empty() {
        return [0; 4];
    }
    rtts.sort_unstable();
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize];
    let mean = rtts.iter().sum::<u64>() / rtts.len() as u64;
    [at(0.5), at(0.99), rtts[rtts.len() - 1], mean]
}

async fn ping<S>(mut ws: WebSocketStream<S>, n: usize, size: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !wait_for_go(&mut ws).await {
        return;
    }
    let text = String::from_utf8(payload("ping", size)).unwrap();
    let mut rtts = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        if ws.send(Message::text(text.clone())).await.is_err() {
            return;
        }
        loop {
            match ws.next().await {
                Some(Ok(m)) if m.is_text() || m.is_binary() => break,
                Some(Ok(_)) => continue,
                _ => return,
            }
        }
        rtts.push(start.elapsed().as_nanos() as u64);
    }
    let [p50, p99, max, mean] = stats_of(rtts);
    let stats = format!("stats {p50} {p99} {max} {mean}");
    if ws.send(Message::text(stats)).await.is_err() {
        return;
    }
    idle(ws).await
}

async fn plain_tcp(mut s: TcpStream) -> std::io::Result<()> {
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await?;
    let n = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    let size = u32::from_le_bytes(head[8..12].try_into().unwrap()) as usize;
    match head[0] {
        b'B' => {
            let mut left = n * (size + header_len(size));
            let chunk = vec![b'x'; 256 * 1024];
            while left > 0 {
                let k = left.min(chunk.len());
                s.write_all(&chunk[..k]).await?;
                left -= k;
            }
            s.flush().await?;
        }
        b'S' => {
            let mut left = n * (size + header_len(size) + 4);
            let mut buf = vec![0u8; 256 * 1024];
            while left > 0 {
                let r = s.read(&mut buf).await?;
                if r == 0 {
                    return Ok(());
                }
                left = left.saturating_sub(r);
            }
            s.write_all(b"d").await?;
        }
        b'P' => {
            let mut buf = vec![b'p'; size];
            let mut rtts = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                s.write_all(&buf).await?;
                s.read_exact(&mut buf).await?;
                rtts.push(start.elapsed().as_nanos() as u64);
            }
            let mut out = Vec::with_capacity(32);
            for v in stats_of(rtts) {
                out.extend_from_slice(&v.to_le_bytes());
            }
            s.write_all(&out).await?;
        }
        _ => {}
    }
    // Wait for the client to hang up.
    let mut rest = [0u8; 64];
    while s.read(&mut rest).await? > 0 {}
    Ok(())
}
