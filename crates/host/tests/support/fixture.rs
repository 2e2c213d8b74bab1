//! The machinery every fixture server shares: a listener on 127.0.0.1, a
//! thread running a smol executor with one task per connection, optional
//! TLS, the recorded WebSocket handshake, and a bounded shutdown on drop.
//! The servers in `servers.rs` only say what to do with each connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http;
use futures_rustls::TlsAcceptor;
use futures_rustls::rustls::ServerConfig;
use smol::channel::Sender;
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::TcpListener;
use smol::{Executor, future};
use wsio_host::demo_server::TlsIdentity;

use super::observations::{Handshake, Observations, TlsSession};

/// Any byte stream a fixture or test client talks over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A server-side WebSocket over plain TCP or TLS.
pub type ServerWs = WebSocketStream<Box<dyn Io>>;

/// How long a fixture waits for a TLS or WebSocket handshake, or for the
/// client's reply to a close it sent, before giving up on the connection.
pub const FIXTURE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const THREAD_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The one certificate every TLS fixture presents (generated once per test
/// binary: key generation is the slow part). Trust it with
/// `support::tls_client_config()` or `identity.cert_der()`.
pub fn tls_identity() -> &'static TlsIdentity {
    static IDENTITY: OnceLock<TlsIdentity> = OnceLock::new();
    IDENTITY.get_or_init(TlsIdentity::self_signed)
}

/// One accepted connection, handed to a server's `serve` function.
pub struct Connection {
    pub stream: Box<dyn Io>,
    pub peer: SocketAddr,
    pub observations: Arc<Observations>,
}

/// A listening fixture thread; stops on drop.
pub struct Fixture {
    addr: SocketAddr,
    tls: bool,
    observations: Arc<Observations>,
    /// Dropped to close the listener (connections stay up).
    accepting: Option<Sender<()>>,
    /// Acknowledges that the listener is closed.
    not_accepting: mpsc::Receiver<()>,
    /// Dropped to end the thread, cutting every connection.
    running: Option<Sender<()>>,
    finished: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Fixture {
    /// Binds 127.0.0.1:`port` (0 = any free port) and serves each
    /// connection with `serve`, after a TLS handshake when `tls` is set.
    /// Panics when the port cannot be bound: a fixture that cannot start
    /// is a broken test, not a case to handle.
    pub fn start<F, Fut>(port: u16, tls: bool, serve: F) -> Fixture
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let tls_config = tls.then(|| tls_identity().server_config().expect("fixture TLS config"));
        Self::start_with_tls(port, tls_config, serve)
    }

    /// [`start`](Self::start) with a TLS configuration of the caller's (a
    /// test PKI's certificate, client authentication), or plain TCP for
    /// `None`. Each TLS handshake is recorded in `tls_sessions` (with the
    /// client's certificate, if it presented one) or `tls_failures`.
    pub fn start_with_tls<F, Fut>(
        port: u16,
        tls_config: Option<Arc<ServerConfig>>,
        serve: F,
    ) -> Fixture
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let tls = tls_config.is_some();
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("fixture cannot bind 127.0.0.1:{port}: {e}"));
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let listener = TcpListener::try_from(listener).expect("register listener with smol");
        let acceptor = tls_config.map(TlsAcceptor::from);
        let observations = Arc::new(Observations::default());
        let (accepting, stop_accepting) = smol::channel::bounded::<()>(1);
        let (not_accepting_tx, not_accepting) = mpsc::channel();
        let (running, stop_running) = smol::channel::bounded::<()>(1);
        let (finished_tx, finished) = mpsc::channel();
        let shared = observations.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fixture-{}", addr.port()))
            .spawn(move || {
                let executor = Executor::new();
                smol::block_on(executor.run(async {
                    // `recv` fails when the Fixture drops the sender: the signal.
                    future::or(
                        accept_loop(&executor, listener, acceptor, shared, serve),
                        async {
                            let _ = stop_accepting.recv().await;
                        },
                    )
                    .await;
                    // The accept loop, and with it the listener, is gone.
                    let _ = not_accepting_tx.send(());
                    let _ = stop_running.recv().await;
                }));
                // Dropping the executor cancels every connection task, which
                // drops (closes) every socket still open.
                drop(executor);
                let _ = finished_tx.send(());
            })
            .expect("spawn fixture thread");
        Fixture {
            addr,
            tls,
            observations,
            accepting: Some(accepting),
            not_accepting,
            running: Some(running),
            finished,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ws://127.0.0.1:PORT<path>` (`wss://` for TLS fixtures; the
    /// certificate covers 127.0.0.1). `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn observations(&self) -> &Arc<Observations> {
        &self.observations
    }

    /// Closes the listener (new connections are refused) and returns once
    /// it is closed; open connections carry on. Lets a server close its
    /// clients gracefully without a reconnecting client slipping back in.
    pub fn stop_accepting(&mut self) {
        if self.accepting.take().is_some() {
            let _ = self.not_accepting.recv_timeout(THREAD_STOP_TIMEOUT);
        }
    }

    /// Stops accepting, cuts every connection, and joins the thread (bounded).
    pub fn stop(&mut self) {
        self.stop_accepting();
        if self.running.take().is_none() {
            return;
        }
        match self.finished.recv_timeout(THREAD_STOP_TIMEOUT) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Do not hang the test (maybe already panicking) on a join.
                eprintln!(
                    "fixture on {} did not stop in time; leaving its thread",
                    self.addr
                );
            }
            _ => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop<F, Fut>(
    executor: &Executor<'_>,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    observations: Arc<Observations>,
    serve: F,
) where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            // Out of descriptors, most likely: pause rather than spin.
            smol::Timer::after(Duration::from_millis(10)).await;
            continue;
        };
        observations.record(|o| o.accepted.push(Instant::now()));
        let ended = EndRecorder(observations.clone());
        let (acceptor, observations, serve) =
            (acceptor.clone(), observations.clone(), serve.clone());
        executor
            .spawn(async move {
                let _ended = ended;
                let stream: Box<dyn Io> = match acceptor {
                    None => Box::new(tcp),
                    Some(acceptor) => {
                        match within(FIXTURE_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Some(Ok(tls)) => {
                                let session = TlsSession::of(tls.get_ref().1);
                                observations.record(|o| o.tls_sessions.push(session));
                                Box::new(tls)
                            }
                            Some(Err(error)) => {
                                let error = error.to_string();
                                observations.record(|o| o.tls_failures.push(error));
                                return;
                            }
                            None => {
                                let error = "TLS handshake timed out".to_string();
                                observations.record(|o| o.tls_failures.push(error));
                                return;
                            }
                        }
                    }
                };
                serve(Connection {
                    stream,
                    peer,
                    observations,
                })
                .await;
            })
            .detach();
    }
}

/// How a fixture answers an upgrade request.
pub enum Answer {
    Accept,
    /// Accept, naming this subprotocol in `Sec-WebSocket-Protocol`.
    AcceptProtocol(String),
    /// Refuse with this HTTP status and a short body.
    Refuse(u16),
}

/// Runs the server side of the WebSocket handshake, recording the request.
/// `on_request` runs before the response is written, so whatever it
/// registers is in place by the time the client sees the handshake complete
/// (no race between a test's "connected" and a server-side "send to all").
/// `None` when the handshake failed, timed out or was refused.
pub async fn accept_websocket(
    stream: Box<dyn Io>,
    observations: &Observations,
    on_request: impl FnOnce() -> Answer + Unpin,
) -> Option<ServerWs> {
    accept_websocket_with(stream, observations, |_| on_request()).await
}

/// [`accept_websocket`] deciding the answer from the request (e.g. which
/// of the offered subprotocols to pick).
pub async fn accept_websocket_with(
    stream: Box<dyn Io>,
    observations: &Observations,
    on_request: impl FnOnce(&Handshake) -> Answer + Unpin,
) -> Option<ServerWs> {
    // The shape (an HTTP response as the error) is tungstenite's Callback.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let handshake = Handshake {
            path: request
                .uri()
                .path_and_query()
                .map_or_else(|| request.uri().to_string(), |p| p.to_string()),
            headers: request
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            at: Instant::now(),
        };
        let answer = on_request(&handshake);
        observations.record(|o| o.handshakes.push(handshake));
        match answer {
            Answer::Accept => Ok(response),
            Answer::AcceptProtocol(protocol) => {
                let mut response = response;
                let value = http::HeaderValue::from_str(&protocol)
                    .expect("a subprotocol the fixture supports is a valid header value");
                response
                    .headers_mut()
                    .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
                Ok(response)
            }
            Answer::Refuse(status) => {
                let body = format!("{status} refused by the fixture server\n");
                Err(http::Response::builder()
                    .status(status)
                    .header("content-type", "text/plain")
                    .header("content-length", body.len())
                    .header("connection", "close")
                    .body(Some(body))
                    .expect("valid HTTP status for RefuseServer"))
            }
        }
    };
    let handshake = async_tungstenite::accept_hdr_async(stream, callback);
    within(FIXTURE_HANDSHAKE_TIMEOUT, handshake).await?.ok()
}

/// `Some(output)`, or `None` if `future` takes longer than `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(future.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

/// Counts the connection as ended however its task finishes, including
/// being cancelled when the fixture stops.
struct EndRecorder(Arc<Observations>);

impl Drop for EndRecorder {
    fn drop(&mut self) {
        self.0.record(|o| o.disconnects += 1);
    }
}
