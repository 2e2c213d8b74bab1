//! The fixture servers, one per behaviour a client must cope with. Each binds
//! 127.0.0.1 (port 0 unless asked), runs on its own thread, records what it
//! observed (see `observations.rs`) and shuts down on drop, bounded in time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_rustls::rustls::ServerConfig;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use smol::channel::Sender;
use smol::future;

use super::fixture::{
    Answer, FIXTURE_HANDSHAKE_TIMEOUT, Fixture, accept_websocket, accept_websocket_with,
    tls_identity, within,
};
use super::observations::{CloseReceived, Handshake, Observations, Observed};

/// How long a dropped EchoServer waits for its clients to answer its 1001.
const GRACEFUL_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The inherent accessors every fixture server has, delegated to its
/// `Fixture` (inherent, so tests need no trait import).
macro_rules! fixture_accessors {
    ($server:ty) => {
        impl $server {
            pub fn addr(&self) -> SocketAddr {
                self.fixture.addr()
            }

            pub fn port(&self) -> u16 {
                self.fixture.port()
            }

            /// `ws://127.0.0.1:PORT<path>`, or `wss://` for a TLS server.
            pub fn url(&self, path: &str) -> String {
                self.fixture.url(path)
            }

            pub fn observations(&self) -> &Arc<Observations> {
                self.fixture.observations()
            }

            /// A copy of what the server observed so far.
            pub fn snapshot(&self) -> Observed {
                self.fixture.observations().snapshot()
            }

            /// Blocks until `predicate` holds over the observations (true)
            /// or `timeout` passes (false).
            pub fn wait_for(
                &self,
                predicate: impl FnMut(&Observed) -> bool,
                timeout: Duration,
            ) -> bool {
                self.fixture.observations().wait_for(predicate, timeout)
            }
        }
    };
}

/// Options for [`EchoServer::start_with`].
#[derive(Clone, Debug, Default)]
pub struct EchoOptions {
    /// 0 = any free port; a previous server's port to simulate a restart.
    pub port: u16,
    /// Serve `wss://` with `support::tls_identity()`.
    pub tls: bool,
    /// On each connection, first send this many texts `msg-000001`,
    /// `msg-000002`, … as fast as the socket takes them.
    pub burst: usize,
    /// Serve `wss://` with this configuration instead (a test PKI's
    /// certificate, client authentication); overrides `tls`.
    pub tls_config: Option<Arc<ServerConfig>>,
    /// Subprotocols the server speaks: it answers with the first of the
    /// client's offers in this list, and with none when nothing matches
    /// (or this is empty).
    pub subprotocols: Vec<String>,
}

/// Echoes every text and binary message back to its sender, answers pings,
/// and lets the test push messages or closes to every client.
///
/// On drop it stops accepting, closes every client with 1001 "fixture
/// stopping" (waiting up to 2 s for the replies), then cuts what is left.
/// Use [`abort_all`](Self::abort_all) first for an abrupt network loss.
pub struct EchoServer {
    fixture: Fixture,
    clients: Arc<Clients>,
}

fixture_accessors!(EchoServer);

impl EchoServer {
    pub fn start() -> EchoServer {
        Self::start_with(EchoOptions::default())
    }

    pub fn start_tls() -> EchoServer {
        Self::start_with(EchoOptions {
            tls: true,
            ..EchoOptions::default()
        })
    }

    /// On a given port: drop a server, then start this on its port to test
    /// reconnecting after a server restart.
    pub fn start_on(port: u16) -> EchoServer {
        Self::start_with(EchoOptions {
            port,
            ..EchoOptions::default()
        })
    }

    /// `wss://` with a TLS configuration of the test's, e.g.
    /// `support::test_pki().server_config(ClientAuth::Required)`.
    pub fn start_tls_with(tls_config: Arc<ServerConfig>) -> EchoServer {
        Self::start_with(EchoOptions {
            tls_config: Some(tls_config),
            ..EchoOptions::default()
        })
    }

    /// Negotiates a subprotocol: answers with the first of the client's
    /// offers that is in `supported`, or with none.
    pub fn start_with_subprotocols(supported: &[&str]) -> EchoServer {
        Self::start_with(EchoOptions {
            subprotocols: supported.iter().map(|s| s.to_string()).collect(),
            ..EchoOptions::default()
        })
    }

    /// Sends `count` messages `msg-000001`… to each client on connect.
    pub fn start_burst(count: usize) -> EchoServer {
        Self::start_with(EchoOptions {
            burst: count,
            ..EchoOptions::default()
        })
    }

    pub fn start_with(options: EchoOptions) -> EchoServer {
        let clients = Arc::new(Clients::default());
        let shared = clients.clone();
        let burst = options.burst;
        let subprotocols = Arc::new(options.subprotocols);
        let tls_config = options.tls_config.or_else(|| {
            options
                .tls
                .then(|| tls_identity().server_config().expect("fixture TLS config"))
        });
        let fixture = Fixture::start_with_tls(options.port, tls_config, move |connection| {
            serve_echo(connection, shared.clone(), burst, subprotocols.clone())
        });
        EchoServer { fixture, clients }
    }

    /// Sends `message` (a `&str`/`String` for text, `Vec<u8>` for binary) to
    /// every client whose handshake has been answered; returns how many.
    pub fn send_to_all(&self, message: impl Into<Message>) -> usize {
        let message = message.into();
        self.clients.command_all(|| Command::Send(message.clone()))
    }

    /// Sends a close frame with `code` and `reason` to every client (the
    /// connection ends when the client answers); returns how many.
    pub fn close_all(&self, code: u16, reason: &str) -> usize {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        self.clients.command_all(|| Command::Close(frame.clone()))
    }

    /// Drops every connection without a close frame, as a network failure
    /// or a crashed server would; returns how many.
    pub fn abort_all(&self) -> usize {
        self.clients.command_all(|| Command::Abort)
    }

    /// Stops now (what drop does), for tests that read better with it.
    pub fn stop(self) {}
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.fixture.stop_accepting();
        if self.close_all(1001, "fixture stopping") > 0 {
            self.wait_for(|o| o.open_connections() == 0, GRACEFUL_CLOSE_TIMEOUT);
        }
        // The fixture field's drop then ends the thread.
    }
}

enum Command {
    Send(Message),
    Close(CloseFrame),
    Abort,
}

/// The EchoServer's live connections, for commands from the test.
#[derive(Default)]
struct Clients {
    next_id: AtomicU64,
    senders: Mutex<Vec<(u64, Sender<Command>)>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Sender<Command>)>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn command_all(&self, command: impl Fn() -> Command) -> usize {
        self.lock()
            .iter()
            .filter(|(_, sender)| sender.try_send(command()).is_ok())
            .count()
    }
}

/// Removes a connection from [`Clients`] however its task ends.
struct Registration {
    clients: Arc<Clients>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.lock().retain(|(id, _)| *id != self.id);
    }
}

async fn serve_echo(
    connection: super::fixture::Connection,
    clients: Arc<Clients>,
    burst: usize,
    subprotocols: Arc<Vec<String>>,
) {
    let observations = connection.observations;
    let (commands_tx, commands) = smol::channel::unbounded();
    let id = clients.next_id.fetch_add(1, Ordering::Relaxed);
    let registration = Registration { clients, id };
    let register = {
        let (clients, commands_tx) = (registration.clients.clone(), commands_tx.clone());
        move |request: &Handshake| {
            clients.lock().push((id, commands_tx));
            match choose_subprotocol(request, &subprotocols) {
                Some(protocol) => Answer::AcceptProtocol(protocol),
                None => Answer::Accept,
            }
        }
    };
    let Some(ws) = accept_websocket_with(connection.stream, &observations, register).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let reader = record_incoming(&mut stream, &observations, |message| {
        let _ = commands_tx.try_send(Command::Send(message));
    });
    let writer = async {
        let _ = send_burst(&mut sink, burst).await;
        while let Ok(command) = commands.recv().await {
            // Write errors are left to the reader, which sees the same
            // broken socket and ends the connection after recording why.
            match command {
                Command::Send(message) => {
                    let _ = sink.send(message).await;
                }
                Command::Close(frame) => {
                    let _ = sink.close(Some(frame)).await;
                }
                Command::Abort => return,
            }
        }
    };
    future::or(reader, writer).await;
    drop(registration);
}

/// The first subprotocol the client offers (`Sec-WebSocket-Protocol`, in
/// its order) that the server supports.
fn choose_subprotocol(request: &Handshake, supported: &[String]) -> Option<String> {
    request
        .headers
        .iter()
        .filter(|(name, _)| name == "sec-websocket-protocol")
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .find(|offered| supported.iter().any(|s| s == offered))
        .map(str::to_string)
}

/// Completes the handshake, optionally sends a burst of messages, then
/// closes with the code and reason it was made with, and records the
/// client's close reply.
pub struct CloseServer {
    fixture: Fixture,
}

fixture_accessors!(CloseServer);

impl CloseServer {
    pub fn new(code: u16, reason: &str) -> CloseServer {
        Self::after_messages(0, code, reason)
    }

    /// Sends `messages` texts `msg-000001`… before closing.
    pub fn after_messages(messages: usize, code: u16, reason: &str) -> CloseServer {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let fixture = Fixture::start(0, false, move |connection| {
            let frame = frame.clone();
            async move {
                let observations = connection.observations;
                let Some(mut ws) =
                    accept_websocket(connection.stream, &observations, || Answer::Accept).await
                else {
                    return;
                };
                if send_burst(&mut ws, messages).await.is_err()
                    || ws.close(Some(frame)).await.is_err()
                {
                    return;
                }
                within(
                    FIXTURE_HANDSHAKE_TIMEOUT,
                    record_incoming(&mut ws, &observations, |_| {}),
                )
                .await;
            }
        });
        CloseServer { fixture }
    }
}

/// Answers every upgrade request with an HTTP error status and a short
/// body; records each attempt (`accepted` holds the instants, for backoff).
pub struct RefuseServer {
    fixture: Fixture,
}

fixture_accessors!(RefuseServer);

impl RefuseServer {
    /// `status` must be an HTTP error status (4xx or 5xx).
    pub fn new(status: u16) -> RefuseServer {
        assert!(
            (400..600).contains(&status),
            "RefuseServer needs an error status, got {status}"
        );
        let fixture = Fixture::start(0, false, move |connection| async move {
            let refuse = move || Answer::Refuse(status);
            accept_websocket(connection.stream, &connection.observations, refuse).await;
        });
        RefuseServer { fixture }
    }
}

/// Completes the handshake, then never reads nor writes again while keeping
/// the TCP connection open: pings go unanswered, as with a half-open
/// connection or a server that drops pings.
pub struct SilentServer {
    fixture: Fixture,
}

fixture_accessors!(SilentServer);

impl SilentServer {
    pub fn start() -> SilentServer {
        let fixture = Fixture::start(0, false, |connection| async move {
            let observations = connection.observations;
            let ws = accept_websocket(connection.stream, &observations, || Answer::Accept).await;
            // Holding the socket without polling it is the whole point.
            let _ws = ws;
            future::pending::<()>().await;
        });
        SilentServer { fixture }
    }
}

/// Accepts TCP connections and never answers anything on them: for connect
/// and handshake timeouts. Records only `accepted`.
pub struct BlackHoleServer {
    fixture: Fixture,
}

fixture_accessors!(BlackHoleServer);

impl BlackHoleServer {
    pub fn start() -> BlackHoleServer {
        let fixture = Fixture::start(0, false, |connection| async move {
            let _stream = connection.stream;
            future::pending::<()>().await;
        });
        BlackHoleServer { fixture }
    }
}

/// Reads until the connection ends, recording messages, pings and close
/// frames; hands each text or binary message to `on_message` after
/// recording it (so a test that sees the echo also sees the record).
async fn record_incoming<S>(
    stream: &mut S,
    observations: &Observations,
    mut on_message: impl FnMut(Message),
) where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                observations.record(|o| o.messages.push(message.clone()));
                on_message(message);
            }
            // tungstenite has already queued the pong.
            Message::Ping(_) => observations.record(|o| o.pings += 1),
            Message::Close(frame) => {
                let close = match frame {
                    Some(frame) => CloseReceived {
                        code: frame.code.into(),
                        reason: frame.reason.to_string(),
                    },
                    None => CloseReceived {
                        code: 1005,
                        reason: String::new(),
                    },
                };
                observations.record(|o| o.closes.push(close));
            }
            Message::Pong(_) => observations.record(|o| o.pongs += 1),
            Message::Frame(_) => {}
        }
    }
}

/// Sends `msg-000001` … `msg-{count}` in one go (a single flush at the end,
/// so the client sees them as fast as TCP allows).
async fn send_burst<S>(sink: &mut S, count: usize) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    for n in 1..=count {
        sink.feed(burst_message(n)).await?;
    }
    sink.flush().await
}

/// The `n`th burst message (1-based): `msg-000001`.
pub fn burst_message(n: usize) -> Message {
    Message::text(format!("msg-{n:06}"))
}
