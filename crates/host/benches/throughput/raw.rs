//! The floors: a bare async-tungstenite client on smol (what wsio is built
//! on, with the library's default configuration, doing nothing with what it
//! reads) and a plain TCP socket (the physical limit of the loopback).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use async_tungstenite::stream::Stream as MaybeTls;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use futures_rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use futures_rustls::rustls::{ClientConfig, RootCertStore};
use futures_util::{SinkExt, StreamExt};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

use crate::server::{Ports, header_len, payload};

pub type Ws = WebSocketStream<MaybeTls<TcpStream, TlsStream<TcpStream>>>;

/// A rustls client configuration trusting the bench server's certificate,
/// built like the module's (ring, safe defaults).
pub fn tls_config(ports: &Ports) -> Arc<ClientConfig> {
    let pem = std::fs::read(&ports.ca).expect("read the bench CA");
    let cert = CertificateDer::from_pem_slice(&pem).expect("the bench CA is PEM");
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("a usable root");
    let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Connects a bare client to `path` with `config` (None: the library default).
pub async fn connect(
    ports: &Ports,
    tls: Option<&Arc<ClientConfig>>,
    path: &str,
    config: Option<WebSocketConfig>,
) -> Ws {
    let port = if tls.is_some() { ports.wss } else { ports.ws };
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.set_nodelay(true).unwrap();
    let (stream, scheme) = match tls {
        None => (MaybeTls::Plain(tcp), "ws"),
        Some(config) => {
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let tls = TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            (MaybeTls::Tls(tls), "wss")
        }
    };
    let url = format!("{scheme}://127.0.0.1:{port}{path}");
    let (ws, _) = async_tungstenite::client_async_with_config(url, stream, config)
        .await
        .expect("WebSocket handshake");
    ws
}

/// Row 1: receive `n` messages of `size` bytes; the time from "go" to the last.
pub fn receive(ports: &Ports, tls: Option<&Arc<ClientConfig>>, n: usize, size: usize) -> Duration {
    smol::block_on(async {
        let mut ws = connect(ports, tls, &format!("/blast?n={n}&size={size}"), None).await;
        ws.send(Message::text("go")).await.unwrap();
        let start = Instant::now();
        let mut count = 0;
        while count < n {
            match ws.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => count += 1,
                Some(Ok(_)) => {}
                other => panic!("raw receive ended after {count}: {other:?}"),
            }
        }
        let elapsed = start.elapsed();
        let _ = ws.close(None).await;
        elapsed
    })
}

/// Row 2: send `n` messages of `size` bytes until the server has them all.
pub fn send(ports: &Ports, tls: Option<&Arc<ClientConfig>>, n: usize, size: usize) -> Duration {
    smol::block_on(async {
        let mut ws = connect(ports, tls, &format!("/sink?n={n}"), None).await;
        let text = async_tungstenite::tungstenite::Utf8Bytes::from(
            String::from_utf8(payload("msg", size)).unwrap(),
        );
        let start = Instant::now();
        for _ in 0..n {
            ws.feed(Message::Text(text.clone())).await.unwrap();
        }
        ws.flush().await.unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "done" => break,
                Some(Ok(_)) => {}
                other => panic!("raw send: no done: {other:?}"),
            }
        }
        let elapsed = start.elapsed();
        let _ = ws.close(None).await;
        elapsed
    })
}

/// Row 3: the raw client's own echo loop; the server's round-trip stats
/// (p50, p99, max, mean in ns).
pub fn echo(ports: &Ports, tls: Option<&Arc<ClientConfig>>, n: usize, size: usize) -> [u64; 4] {
    smol::block_on(async {
        let mut ws = connect(ports, tls, &format!("/ping?n={n}&size={size}"), None).await;
        ws.send(Message::text("go")).await.unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with("stats ") => {
                    let _ = ws.close(None).await;
                    return parse_stats(&t);
                }
                Some(Ok(m @ Message::Text(_))) => ws.send(m).await.unwrap(),
                Some(Ok(_)) => {}
                other => panic!("raw echo ended: {other:?}"),
            }
        }
    })
}

pub fn parse_stats(text: &str) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (slot, word) in out.iter_mut().zip(text.split_whitespace().skip(1)) {
        *slot = word.parse().unwrap_or(0);
    }
    out
}

async fn tcp(ports: &Ports, mode: u8, n: usize, size: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", ports.tcp))
        .await
        .expect("tcp");
    s.set_nodelay(true).unwrap();
    let mut head = [0u8; 12];
    head[0] = mode;
    head[4..8].copy_from_slice(&(n as u32).to_le_bytes());
    head[8..12].copy_from_slice(&(size as u32).to_le_bytes());
    s.write_all(&head).await.unwrap();
    s
}

/// Row 1 over TCP: the same byte volume as `n` WebSocket frames of `size`.
pub fn tcp_receive(ports: &Ports, n: usize, size: usize) -> Duration {
    smol::block_on(async {
        let mut s = tcp(ports, b'B', n, size).await;
        let start = Instant::now();
        let mut left = n * (size + header_len(size));
        let mut buf = vec![0u8; 128 * 1024];
        while left > 0 {
            let r = s.read(&mut buf).await.unwrap();
            assert!(r > 0, "tcp blaster closed early");
            left = left.saturating_sub(r);
        }
        start.elapsed()
    })
}

/// Row 2 over TCP: the byte volume of `n` masked client frames of `size`.
pub fn tcp_send(ports: &Ports, n: usize, size: usize) -> Duration {
    smol::block_on(async {
        let start = Instant::now();
        let mut s = tcp(ports, b'S', n, size).await;
        let mut left = n * (size + header_len(size) + 4);
        let chunk = vec![b'x'; 128 * 1024];
        while left > 0 {
            let k = left.min(chunk.len());
            s.write_all(&chunk[..k]).await.unwrap();
            left -= k;
        }
        s.flush().await.unwrap();
        let mut done = [0u8; 1];
        s.read_exact(&mut done).await.unwrap();
        start.elapsed()
    })
}

/// Row 3 over TCP: round trips of `size` bytes; the server's stats.
pub fn tcp_echo(ports: &Ports, n: usize, size: usize) -> [u64; 4] {
    smol::block_on(async {
        let mut s = tcp(ports, b'P', n, size).await;
        let mut buf = vec![0u8; size];
        for _ in 0..n {
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        }
        let mut stats = [0u8; 32];
        s.read_exact(&mut stats).await.unwrap();
        let mut out = [0u64; 4];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u64::from_le_bytes(stats[i * 8..i * 8 + 8].try_into().unwrap());
        }
        out
    })
}
