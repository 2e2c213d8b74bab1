//! A local stand-in for the demo.piesocket.com channel API, so the module can
//! be tried and tested without the internet: `wsio demo-server` runs it alone,
//! `wsio run` embeds it, and the integration tests start one per test on
//! port 0.
//!
//! Protocol, as piesocket's demo server behaves:
//!
//! - URL form `/v3/<channel>?api_key=<key>&notify_self=1`. Every text or
//!   binary message a client sends is broadcast, unchanged and unmerged, to
//!   every other client of the same channel, and echoed to the sender too when
//!   its query contains `notify_self` (with any value, or bare).
//! - Refusals are WebSocket close frames, not HTTP errors: the handshake is
//!   accepted, then the server closes with 4004 (path not `/v3/<channel>`) or
//!   4001 (`api_key` missing or empty) and a reason saying what is accepted.
//!   piesocket does the same, and it is the only way a WebSocket client (a
//!   controller log, a browser console) gets to see *why* it was refused: an
//!   HTTP 4xx only surfaces as "handshake failed".
//! - The API key is never checked against anything and never logged: it is
//!   the user's secret on the real service.
//! - Pings are answered (tungstenite queues the pong while we keep reading).
//!
//! Shape: [`DemoServer::start`] binds on the caller's thread (so a busy port
//! is an `Err` at once, and port 0 resolves before `start` returns), then runs
//! one `smol::Executor` on a thread of its own with one task per connection.
//! Each channel is a broadcast hub holding a bounded queue per client; a
//! client whose queue overflows is disconnected with 1008 "client too slow"
//! and a log line, so one stalled reader never blocks a channel nor loses
//! messages silently. Stopping (or dropping) the server closes every client
//! with 1001 "server shutting down", bounded in time.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::server::{Request, Response};
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::{WebSocketReceiver, WebSocketSender};
use futures_rustls::TlsAcceptor;
use futures_util::{SinkExt, StreamExt};
use smol::channel::{Receiver, Sender};
use smol::future;
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::TcpListener;
use smol::{Executor, Timer};

mod hub;
mod identity;

use hub::{Hub, Membership};
pub use identity::TlsIdentity;

/// Port of the default listen address; a number the controller docs can quote.
pub const DEFAULT_PORT: u16 = 8765;

/// Messages a client may have waiting before it counts as too slow. Large
/// enough for bursts of thousands of small messages, small enough that a
/// stalled client cannot eat the machine's memory.
const QUEUE_CAPACITY: usize = 4096;
/// How many queued messages one flush may carry: batching makes heavy traffic
/// cheap, the bound keeps a kick (slow client, shutdown) from waiting long.
const WRITE_BATCH: usize = 64;
/// A TCP connection that does not finish its TLS and WebSocket handshakes in
/// this time is dropped, so silent sockets do not pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for a client to answer its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for clients to complete the close handshake before
/// cutting the remaining connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

const REASON_BAD_PATH: &str = "path must be /v3/<channel>?api_key=<key>";
const REASON_NO_API_KEY: &str = "api_key is required: use /v3/<channel>?api_key=<key>";
const REASON_SHUTTING_DOWN: &str = "server shutting down";
const REASON_TOO_SLOW: &str = "client too slow";

/// Where and how a [`DemoServer`] listens.
#[derive(Clone, Debug)]
pub struct DemoServerConfig {
    /// Address to bind; port 0 picks a free port (tests do this).
    pub listen: SocketAddr,
    /// Serve `wss://` with this identity instead of plain `ws://`.
    pub tls: Option<TlsIdentity>,
}

impl Default for DemoServerConfig {
    /// `127.0.0.1:8765`, plain WebSocket: local only, as nothing here is
    /// authenticated.
    fn default() -> Self {
        DemoServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            tls: None,
        }
    }
}

/// A running demo server. Stops on [`stop`](Self::stop) or drop.
///
/// ```no_run
/// use wsio_host::demo_server::{DemoServer, DemoServerConfig};
/// let server = DemoServer::start(DemoServerConfig::default())?;
/// println!("try {}", server.url("1", "demo"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct DemoServer {
    local_addr: SocketAddr,
    tls: bool,
    stop: Option<Sender<()>>,
    finished: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl DemoServer {
    /// Binds `config.listen` and starts serving on a thread of its own.
    ///
    /// Errors: the address cannot be bound (in use, not local), the TLS
    /// identity is unusable, or the thread cannot be spawned.
    pub fn start(config: DemoServerConfig) -> io::Result<DemoServer> {
        let acceptor = match &config.tls {
            Some(identity) => Some(TlsAcceptor::from(
                identity.server_config().map_err(io::Error::other)?,
            )),
            None => None,
        };
        let listener = std::net::TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let listener = TcpListener::try_from(listener)?;
        let tls = acceptor.is_some();

        let (stop, stop_requested) = smol::channel::bounded::<()>(1);
        let (finished_tx, finished) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wsio-demo-server".into())
            .spawn(move || {
                run(listener, acceptor, stop_requested);
                let _ = finished_tx.send(());
            })?;

        let scheme = if tls { "wss" } else { "ws" };
        log::info!("demo-server: listening on {scheme}://{local_addr}/v3/<channel>?api_key=<key>");
        Ok(DemoServer {
            local_addr,
            tls,
            stop: Some(stop),
            finished,
            thread: Some(thread),
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A URL a client can use for `channel`, with `notify_self=1` so a lone
    /// client sees its own messages come back, e.g.
    /// `ws://127.0.0.1:8765/v3/1?api_key=demo&notify_self=1`.
    pub fn url(&self, channel: &str, api_key: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let mut addr = self.local_addr;
        // A server bound to every interface is still reached through one.
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("{scheme}://{addr}/v3/{channel}?api_key={api_key}&notify_self=1")
    }

    /// Stops accepting, closes every client with 1001 "server shutting
    /// down", and waits (bounded) for the server thread to end.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        // Dropping the sender is the stop signal; it also works if the
        // thread is already gone.
        if self.stop.take().is_none() {
            return;
        }
        let bound = SHUTDOWN_GRACE + CLOSE_TIMEOUT + Duration::from_secs(1);
        match self.finished.recv_timeout(bound) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Never hang the caller (often a Drop during a panic): leave
                // the thread behind, it ends with the process.
                log::warn!("demo-server: did not stop within {bound:?}; leaving its thread behind");
            }
            _ => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
                log::info!("demo-server: stopped ({})", self.local_addr);
            }
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The server thread: accept until asked to stop, then close every client.
fn run(listener: TcpListener, acceptor: Option<TlsAcceptor>, stop_requested: Receiver<()>) {
    let executor = Executor::new();
    let (alive, all_gone) = smol::channel::bounded::<()>(1);
    let hub = Arc::new(Hub::new(QUEUE_CAPACITY, alive));

    smol::block_on(executor.run(async {
        let accepting = accept_loop(&executor, listener, acceptor, &hub);
        // `recv` fails once the DemoServer drops its sender: that is the signal.
        future::or(accepting, async {
            let _ = stop_requested.recv().await;
        })
        .await;
        // The listener is dropped with the accept loop: no new connections.
        hub.shut_down(close_frame(1001, REASON_SHUTTING_DOWN));
        // Every member holds an `alive` sender; `recv` fails when the last
        // one is dropped, that is when every client has gone.
        let _ = timeout(SHUTDOWN_GRACE, all_gone.recv()).await;
    }));
    // Dropping the executor cancels what is left (clients that never
    // answered the close, connections still in their handshake).
}

async fn accept_loop(
    executor: &Executor<'_>,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    hub: &Arc<Hub>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically out of file descriptors: pause instead of spinning
                // on an error that will repeat at once.
                log::warn!("demo-server: accept failed: {error}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        log::debug!("demo-server: TCP connection from {peer}");
        let hub = hub.clone();
        match &acceptor {
            None => executor.spawn(serve(tcp, peer, hub)).detach(),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                executor
                    .spawn(async move {
                        match timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Some(Ok(tls)) => serve(tls, peer, hub).await,
                            Some(Err(error)) => {
                                log::debug!(
                                    "demo-server: TLS handshake with {peer} failed: {error}"
                                )
                            }
                            None => log::debug!("demo-server: TLS handshake with {peer} timed out"),
                        }
                    })
                    .detach();
            }
        }
    }
}

/// Where a client asked to go, from its request URI.
#[derive(Debug, PartialEq)]
struct Target {
    channel: String,
    notify_self: bool,
}

/// Reads `/v3/<channel>?api_key=<key>[&notify_self[=...]]`, or says which
/// close code and reason refuse it.
fn parse_target(path: &str, query: Option<&str>) -> Result<Target, CloseFrame> {
    let channel = path
        .strip_prefix("/v3/")
        .filter(|channel| !channel.is_empty() && !channel.contains('/'))
        .ok_or_else(|| close_frame(4004, REASON_BAD_PATH))?;
    let mut api_key = false;
    let mut notify_self = false;
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "api_key" if !value.is_empty() => api_key = true,
            "notify_self" => notify_self = true,
            _ => {}
        }
    }
    if !api_key {
        return Err(close_frame(4001, REASON_NO_API_KEY));
    }
    Ok(Target {
        channel: channel.to_string(),
        notify_self,
    })
}

/// One client from WebSocket handshake to disconnect.
async fn serve<S>(stream: S, peer: SocketAddr, hub: Arc<Hub>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut target = None;
    // The callback's error type is tungstenite's (an HTTP response); it is
    // never used here, refusals are close frames.
    #[allow(clippy::result_large_err)]
    let record_target = |request: &Request, response: Response| {
        let uri = request.uri();
        target = Some(parse_target(uri.path(), uri.query()));
        Ok(response)
    };
    let handshake = async_tungstenite::accept_hdr_async(stream, record_target);
    let mut ws = match timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Some(Ok(ws)) => ws,
        Some(Err(error)) => {
            log::debug!("demo-server: WebSocket handshake with {peer} failed: {error}");
            return;
        }
        None => {
            log::debug!("demo-server: WebSocket handshake with {peer} timed out");
            return;
        }
    };
    let refusal = match target {
        Some(Ok(target)) => match hub.join(&target.channel, target.notify_self) {
            Some(member) => return serve_member(ws, peer, member).await,
            None => close_frame(1001, REASON_SHUTTING_DOWN),
        },
        Some(Err(refusal)) => refusal,
        // tungstenite calls the callback before any handshake succeeds; if
        // that ever changed, refuse rather than panic the server thread.
        None => close_frame(4004, REASON_BAD_PATH),
    };
    log::info!(
        "demo-server: refused {peer}: {} {}",
        u16::from(refusal.code),
        refusal.reason
    );
    let _ = timeout(CLOSE_TIMEOUT, async {
        ws.close(Some(refusal)).await?;
        // Keep reading so tungstenite sees the client's close reply and the
        // close handshake completes cleanly on both sides.
        while ws.next().await.is_some() {}
        Ok::<(), WsError>(())
    })
    .await;
}

async fn serve_member<S>(
    ws: async_tungstenite::WebSocketStream<S>,
    peer: SocketAddr,
    member: Membership,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (id, channel) = (member.id, member.channel.clone());
    log::info!(
        "demo-server: client {id} ({peer}) joined channel {channel:?} (notify_self: {})",
        if member.notify_self { "yes" } else { "no" }
    );
    let (mut sink, mut stream) = ws.split();
    let mut client_close = None;
    // Reads and writes run side by side so a client that is slow to read
    // still gets its own messages broadcast, and pings answered.
    let why = future::or(
        async {
            read_loop(&mut stream, &member, &mut client_close).await;
            match &client_close {
                Some(Some(frame)) => format!(
                    "closed by client ({} {})",
                    u16::from(frame.code),
                    frame.reason
                ),
                Some(None) => "closed by client (no code)".to_string(),
                None => "connection lost".to_string(),
            }
        },
        async {
            match write_loop(&mut sink, &member).await {
                WriteEnd::Kicked(frame) => {
                    let why = format!(
                        "closed by server ({} {})",
                        u16::from(frame.code),
                        frame.reason
                    );
                    let _ = timeout(CLOSE_TIMEOUT, sink.close(Some(frame))).await;
                    // The read loop ends (and wins this race) when the
                    // client's close reply arrives; this bounds the wait.
                    Timer::after(CLOSE_TIMEOUT).await;
                    why
                }
                WriteEnd::Failed(error) => {
                    // Usually the client just closed or vanished: give the
                    // read loop the chance to end first and say which.
                    Timer::after(CLOSE_TIMEOUT).await;
                    format!("write failed ({error})")
                }
            }
        },
    )
    .await;
    log::info!("demo-server: client {id} ({peer}) left channel {channel:?}: {why}");
}

/// Broadcasts what the client sends until it closes or the socket fails.
async fn read_loop<S>(
    stream: &mut WebSocketReceiver<S>,
    member: &Membership,
    client_close: &mut Option<Option<CloseFrame>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = stream.next().await {
        match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                let delivered = member.hub.broadcast(&member.channel, member.id, &message);
                log::debug!(
                    "demo-server: client {} sent {} bytes to channel {:?}, queued for {delivered}",
                    member.id,
                    message.len(),
                    member.channel
                );
            }
            // tungstenite has queued the reply; the next read flushes it and
            // then ends the stream.
            Ok(Message::Close(frame)) => *client_close = Some(frame),
            // Pings are answered by tungstenite itself; pongs need nothing.
            Ok(_) => {}
            Err(error) => {
                log::debug!("demo-server: client {} read error: {error}", member.id);
                return;
            }
        }
    }
}

enum WriteEnd {
    /// The hub asked for this close frame (slow client or shutdown).
    Kicked(CloseFrame),
    Failed(WsError),
}

/// Sends the client's queue in order until the hub kicks it out.
async fn write_loop<S>(sink: &mut WebSocketSender<S>, member: &Membership) -> WriteEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    enum Next {
        Kick(CloseFrame),
        Write(Result<(), WsError>),
    }
    loop {
        // The kick is polled first: a full queue must not delay it.
        let first = match future::or(async { Err(member.kicked().await) }, async {
            Ok(member.queue.recv().await)
        })
        .await
        {
            Err(frame) => return WriteEnd::Kicked(frame),
            Ok(Ok(message)) => message,
            // The hub dropped the member without a kick: only at shutdown.
            Ok(Err(_)) => return WriteEnd::Kicked(close_frame(1001, REASON_SHUTTING_DOWN)),
        };
        let write = async {
            sink.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match member.queue.try_recv() {
                    Ok(message) => sink.feed(message).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        // A client that stopped reading blocks the write; the kick must still
        // get through, so it interrupts the write.
        match future::or(async { Next::Kick(member.kicked().await) }, async {
            Next::Write(write.await)
        })
        .await
        {
            Next::Kick(frame) => return WriteEnd::Kicked(frame),
            Next::Write(Ok(())) => {}
            Next::Write(Err(error)) => return WriteEnd::Failed(error),
        }
    }
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }
}

/// `Some(output)`, or `None` if `future` takes longer than `limit`.
async fn timeout<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(future.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

#[cfg(test)]
mod tests;
