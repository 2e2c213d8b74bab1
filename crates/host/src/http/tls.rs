//! HTTPS for the web UI: a TLS front (rustls) on the public address, in
//! front of tiny_http, which then listens on a loopback port of its own.
//!
//! tiny_http's own TLS option ties it to an old rustls; this keeps the
//! rustls the module uses. Each accepted connection gets a connection to
//! tiny_http and two threads that pump bytes both ways through rustls.
//! The front remembers which client each of its connections to tiny_http
//! carries (`client_of`), so the gate sees the real client address (for
//! the loopback rule, throttling and the log) without trusting any header.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_rustls::rustls::{self, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::users::{hex, write_private};

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// `--tls-cert FILE --tls-key FILE` (PEM).
    Files { cert: PathBuf, key: PathBuf },
    /// `--tls self-signed`: made once, kept in this folder (the users
    /// file's) as `wsio-tls-cert.pem` and `wsio-tls-key.pem`.
    SelfSigned { dir: PathBuf },
}

/// File names of the self-signed certificate and its key.
pub const SELF_SIGNED_CERT: &str = "wsio-tls-cert.pem";
pub const SELF_SIGNED_KEY: &str = "wsio-tls-key.pem";

/// More connections than this at once are refused (each holds two threads).
const MAX_CONNECTIONS: usize = 128;

/// The rustls configuration for a source, and the certificate's SHA-256
/// fingerprint (`AB:CD:…`) to print. `names` are the extra names a new
/// self-signed certificate is made for (besides localhost and loopback).
pub fn server_config(
    source: &TlsSource,
    names: &[String],
) -> Result<(Arc<ServerConfig>, String), String> {
    let (cert_path, key_path) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned { dir } => {
            let (cert, key) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
            if !cert.exists() || !key.exists() {
                make_self_signed(&cert, &key, names)?;
            }
            (cert, key)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            format!(
                "cannot read the TLS certificate {}: {e}; give a PEM file with --tls-cert",
                cert_path.display()
            )
        })?;
    let Some(first) = certs.first() else {
        return Err(format!(
            "{} holds no certificate; give a PEM file with --tls-cert",
            cert_path.display()
        ));
    };
    let fingerprint = fingerprint(first);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        format!(
            "cannot read the TLS private key {}: {e}; give a PEM file with --tls-key",
            key_path.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            format!(
                "the TLS certificate {} and key {} cannot be used: {e}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    Ok((Arc::new(config), fingerprint))
}

/// SHA-256 of a certificate, as browsers show it: `AB:CD:…`.
pub fn fingerprint(cert: &CertificateDer) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    hex(digest.as_ref())
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn make_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<(), String> {
    let mut all = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for name in names {
        if !all.contains(name) {
            all.push(name.clone());
        }
    }
    let certified = rcgen::generate_simple_self_signed(all)
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    write_private(key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, certified.cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    log::info!(
        "made a self-signed TLS certificate: {} (key: {})",
        cert.display(),
        key.display()
    );
    Ok(())
}

/// The TLS front: accepts on the public address, forwards to tiny_http.
pub struct TlsFront {
    listener: TcpListener,
    config: Arc<ServerConfig>,
    backend: SocketAddr,
    /// tiny_http's peer address (our end of a forwarded connection) → the
    /// client's address.
    clients: Mutex<HashMap<SocketAddr, SocketAddr>>,
    connections: AtomicUsize,
    stopping: AtomicBool,
}

impl TlsFront {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>, backend: SocketAddr) -> TlsFront {
        TlsFront {
            listener,
            config,
            backend,
            clients: Mutex::default(),
            connections: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    pub fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The client whose connection reached tiny_http from `peer`; None if
    /// it is not one of the front's.
    pub fn client_of(&self, peer: SocketAddr) -> Option<SocketAddr> {
        self.lock().get(&peer).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, SocketAddr>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts until `stop`.
    pub fn run(self: Arc<Self>) {
        for client in self.listener.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let Ok(client) = client else { continue };
            if self.connections.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                log::warn!("HTTPS: {MAX_CONNECTIONS} connections open; refusing another");
                continue;
            }
            self.connections.fetch_add(1, Ordering::SeqCst);
            let front = self.clone();
            let spawned = std::thread::Builder::new()
                .name("wsio-https".into())
                .spawn(move || {
                    front.forward(client);
                    front.connections.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                self.connections.fetch_sub(1, Ordering::SeqCst);
                log::warn!("HTTPS: cannot start a connection's thread: {e}");
            }
        }
    }

    /// Stops accepting (wakes the accept with a connection of its own).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(addr) = self.addr() {
            let _ = TcpStream::connect(addr);
        }
    }

    fn forward(&self, client: TcpStream) {
        let Ok(client_addr) = client.peer_addr() else {
            return;
        };
        let backend = match TcpStream::connect(self.backend) {
            Ok(backend) => backend,
            Err(e) => {
                log::warn!("HTTPS: cannot reach the HTTP server: {e}");
                return;
            }
        };
        let Ok(local) = backend.local_addr() else {
            return;
        };
        // Known before tiny_http can read a byte of this connection.
        self.lock().insert(local, client_addr);
        let Ok(connection) = ServerConnection::new(self.config.clone()) else {
            self.lock().remove(&local);
            return;
        };
        let connection = Arc::new(Mutex::new(connection));
        let streams = (client.try_clone(), backend.try_clone());
        if let (Ok(client_out), Ok(backend_in)) = streams {
            let back = {
                let connection = connection.clone();
                std::thread::Builder::new()
                    .name("wsio-https-out".into())
                    .spawn(move || to_client(&connection, backend_in, client_out))
            };
            from_client(&connection, client, backend, client_addr);
            if let Ok(back) = back {
                let _ = back.join();
            }
        }
        self.lock().remove(&local);
    }
}

/// Client → rustls → tiny_http, until the client closes or TLS fails.
fn from_client(
    connection: &Mutex<ServerConnection>,
    mut client: TcpStream,
    mut backend: TcpStream,
    client_addr: SocketAddr,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut plain = Vec::new();
    'read: loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        plain.clear();
        {
            let mut tls = connection.lock().unwrap_or_else(|e| e.into_inner());
            let mut input = &buf[..n];
            while !input.is_empty() {
                if tls.read_tls(&mut input).is_err() {
                    break 'read;
                }
                let state = tls.process_new_packets();
                // Send what rustls has to say (handshake, or an alert).
                while tls.wants_write() {
                    if tls.write_tls(&mut client).is_err() {
                        break 'read;
                    }
                }
                if let Err(e) = state {
                    log::debug!("HTTPS: {client_addr}: {e}");
                    break 'read;
                }
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match tls.reader().read(&mut chunk) {
                        Ok(0) => break,
                        Ok(k) => plain.extend_from_slice(&chunk[..k]),
                        Err(_) => break,
                    }
                }
            }
        }
        if !plain.is_empty() && backend.write_all(&plain).is_err() {
            break;
        }
    }
    let _ = backend.shutdown(Shutdown::Write);
}

/// tiny_http → rustls → client, until tiny_http closes.
fn to_client(connection: &Mutex<ServerConnection>, mut backend: TcpStream, mut client: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match backend.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut tls = connection.lock().unwrap_or_else(|e| e.into_inner());
        if tls.writer().write_all(&buf[..n]).is_err() {
            break;
        }
        while tls.wants_write() {
            if tls.write_tls(&mut client).is_err() {
                drop(tls);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    let mut tls = connection.lock().unwrap_or_else(|e| e.into_inner());
    tls.send_close_notify();
    while tls.wants_write() {
        if tls.write_tls(&mut client).is_err() {
            break;
        }
    }
    drop(tls);
    let _ = client.shutdown(Shutdown::Both);
}
