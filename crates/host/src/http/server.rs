//! The HTTP server's life: binding (after reading the users file: with no
//! users only a loopback address is served; under TLS the front takes the
//! public address and tiny_http a loopback one), the worker threads that
//! pass each request to `handle`, and stopping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tiny_http::Server;

use super::access::{AccessOptions, Gate};
use super::tls::{self, TlsFront};
use super::{handle, host_name_of};
use crate::event_stream::EventStreams;
use crate::state::HostState;

/// Two workers: one slow client does not hold up the others, and the
/// machine this runs on is small.
const WORKERS: usize = 2;

/// A bound listener, not serving yet (binding comes before creating
/// instances, so a busy port is reported before anything starts).
pub struct HttpListener {
    server: Arc<Server>,
    addr: SocketAddr,
    /// The host name of `--http`, when it is a name (accepted in `Host`).
    name: Option<String>,
    gate: Arc<Gate>,
    /// Under TLS: the front on `addr`; tiny_http then listens on loopback.
    tls: Option<Arc<TlsFront>>,
}

impl HttpListener {
    /// Binds `addr_text` after reading the users file: with no users, only
    /// a loopback address is accepted (`access`).
    pub fn bind(addr_text: &str, access: &AccessOptions) -> Result<HttpListener, String> {
        let users = crate::users::UsersWatch::open(&access.users)?;
        let users_configured = users.current().as_ref().as_ref().is_ok_and(|u| u.any());
        let name = host_name_of(addr_text).map(str::to_ascii_lowercase);
        // An address that does not resolve fails to bind below, with its
        // own message.
        let loopback = match std::net::ToSocketAddrs::to_socket_addrs(addr_text) {
            Ok(mut all) => all.all(|a| a.ip().is_loopback()),
            Err(_) => true,
        };
        if !loopback && !users_configured {
            return Err(format!(
                "serving on {addr_text} would make this controller reachable from the network; \
                 add a user first: wsio user add admin --role admin"
            ));
        }
        let busy = |e: &dyn std::fmt::Display| {
            format!(
                "cannot serve HTTP on {addr_text}: {e}; choose another address with --http, e.g. --http 127.0.0.1:8081"
            )
        };
        let (server, addr, tls) = match &access.tls {
            None => {
                let server = Server::http(addr_text).map_err(|e| busy(&e))?;
                let addr = server.server_addr().to_ip().ok_or_else(|| {
                    format!("cannot serve HTTP on {addr_text}: not an IP address")
                })?;
                (server, addr, None)
            }
            Some(source) => {
                let public = std::net::TcpListener::bind(addr_text).map_err(|e| busy(&e))?;
                let addr = public.local_addr().map_err(|e| busy(&e))?;
                let names: Vec<String> = name.iter().cloned().collect();
                let (config, fingerprint) = tls::server_config(source, &names)?;
                println!("TLS certificate SHA-256 fingerprint: {fingerprint}");
                let server = Server::http("127.0.0.1:0").map_err(|e| busy(&e))?;
                let backend = server.server_addr().to_ip().ok_or("no loopback address")?;
                (
                    server,
                    addr,
                    Some(Arc::new(TlsFront::new(public, config, backend))),
                )
            }
        };
        if !addr.ip().is_loopback() && tls.is_none() {
            log::warn!(
                "serving {addr} without TLS: passwords, tokens and session cookies travel \
                 in clear; use --tls-cert FILE --tls-key FILE or --tls self-signed"
            );
        }
        Ok(HttpListener {
            server: Arc::new(server),
            addr,
            name,
            gate: Arc::new(Gate::new(users, tls.is_some())),
            tls,
        })
    }

    /// Starts the worker threads.
    pub fn serve(self, state: Arc<HostState>) -> Result<HttpServer, String> {
        let mut running = HttpServer {
            server: self.server,
            addr: self.addr,
            tls: self.tls.clone(),
            workers: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
            state: state.clone(),
            streams: Arc::new(EventStreams::default()),
        };
        let own = Arc::new(OwnHost {
            name: self.name,
            addr: self.addr,
            gate: self.gate,
            tls: self.tls.clone(),
        });
        if let Some(front) = self.tls {
            std::thread::Builder::new()
                .name("wsio-https-accept".into())
                .spawn(move || front.run())
                .map_err(|e| format!("cannot start the HTTPS thread: {e}"))?;
        }
        for n in 0..WORKERS {
            let (server, state, stopping, streams, own) = (
                running.server.clone(),
                state.clone(),
                running.stopping.clone(),
                running.streams.clone(),
                own.clone(),
            );
            match std::thread::Builder::new()
                .name(format!("wsio-http-{n}"))
                .spawn(move || serve(&server, &state, &stopping, &streams, &own))
            {
                Ok(worker) => running.workers.push(worker),
                Err(e) => {
                    // The workers started so far hold the state: end them.
                    running.stop();
                    return Err(format!("cannot start the HTTP server's threads: {e}"));
                }
            }
        }
        Ok(running)
    }
}

/// What `Host` may name (see `is_own_host`), and who may come in.
pub(super) struct OwnHost {
    pub(super) name: Option<String>,
    pub(super) addr: SocketAddr,
    pub(super) gate: Arc<Gate>,
    pub(super) tls: Option<Arc<TlsFront>>,
}

/// The running HTTP server; `stop` ends it.
pub struct HttpServer {
    server: Arc<Server>,
    addr: SocketAddr,
    tls: Option<Arc<TlsFront>>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    /// To end the live streams, which run on threads of their own.
    state: Arc<HostState>,
    streams: Arc<EventStreams>,
}

impl HttpServer {
    /// The address actually bound (the port is known even for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests, waits for the workers to finish theirs,
    /// and ends the live streams (each sends its last chunk and closes).
    pub fn stop(self) {
        self.state.recent.close_feed();
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(front) = &self.tls {
            front.stop();
        }
        for _ in &self.workers {
            // Each call wakes one worker blocked in recv().
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
        let stuck = self.streams.wait_ended(STREAMS_END_WITHIN);
        if stuck > 0 {
            log::warn!(
                "{stuck} live status page(s) stopped reading; their streams are dropped at exit"
            );
        }
    }
}

/// How long stopping waits for the live streams to send their last chunk.
const STREAMS_END_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

fn serve(
    server: &Server,
    state: &Arc<HostState>,
    stopping: &AtomicBool,
    streams: &EventStreams,
    own: &OwnHost,
) {
    loop {
        let request = server.recv();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match request {
            Ok(request) => handle(request, state, streams, own),
            Err(e) => log::debug!("HTTP: {e}"),
        }
    }
}
