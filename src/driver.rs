//! The driver: runs every instance's [`Machine`] on one module-owned thread.
//!
//! One smol executor on one background thread serves all instances, so
//! threads do not grow with instances. Per instance there is one task (the
//! *runner*) that owns the machine, the status variables and the read half of
//! the socket; it feeds actions, socket events and the clock into the machine
//! and executes the effects that come out. Connection attempts and the write
//! half run as their own tasks, so a server that stops reading never blocks
//! reads, actions or other instances. Host callbacks are all made from the
//! driver thread, one at a time, in event order.

use crate::instance::{Host, Shared};
use crate::machine::{ConnId, Effect, LogLevel, Machine};
use crate::matching::Trigger;
use crate::properties::{Properties, Secret};
use crate::status::StatusVariables;
use async_tungstenite::WebSocketStream;
use async_tungstenite::stream::Stream as MaybeTls;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use async_tungstenite::{WebSocketReceiver, WebSocketSender};
use bytes::Bytes;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use futures_rustls::pki_types::ServerName;
use futures_rustls::rustls::ClientConfig;
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use smol::channel::{Receiver, Sender};
use smol::net::TcpStream;
use smol::{Executor, Task, Timer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::thread::ThreadId;
use std::time::Instant;

/// The byte stream under the WebSocket: TCP, or TLS over TCP for WSS.
pub type Socket = MaybeTls<TcpStream, TlsStream<TcpStream>>;
type Ws = WebSocketStream<Socket>;

/// Frames handled per wake before yielding to actions and other instances.
const BATCH: usize = 1024;
/// Log Comms shows at most this many bytes of each frame.
const COMMS_PREVIEW: usize = 200;

/// The module's executor thread.
struct Driver {
    executor: Arc<Executor<'static>>,
    thread: ThreadId,
}

fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let executor = Arc::new(Executor::new());
        let runner = executor.clone();
        let handle = std::thread::Builder::new()
            .name("wsio-driver".into())
            .spawn(move || {
                // A panic in a task is a bug; it must not take every other
                // instance down with the thread. Tasks catch their own (see
                // `spawn`); this loop is the last line.
                loop {
                    let run = runner.run(std::future::pending::<()>());
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        smol::block_on(run)
                    }));
                }
            })
            .expect("the OS can start the driver thread");
        Driver {
            executor,
            thread: handle.thread().id(),
        }
    })
}

/// Spawns a task on the driver thread.
pub(crate) fn spawn<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Task<T> {
    driver().executor.spawn(future)
}

/// Whether the caller is the driver thread (i.e. inside a host callback),
/// where blocking on an instance would deadlock.
pub fn on_driver_thread() -> bool {
    std::thread::current().id() == driver().thread
}

/// Everything that reaches a runner: actions from the controller and events
/// from its connection tasks. One channel keeps them in one order.
pub(crate) enum Input {
    Connect(Option<Secret>),
    Disconnect,
    Send(Utf8Bytes),
    Network(bool),
    Shutdown,
    /// A log line decided outside the driver thread (e.g. a refused action).
    Log(LogLevel, String),
    TcpConnected(ConnId),
    Established(ConnId, Box<Ws>),
    Failed(ConnId, String),
    WriterFailed(ConnId, String),
}

/// What the writer task sends.
enum Outgoing {
    Message(Message),
    Close(CloseFrame),
}

/// The live connection of a runner.
struct Connection {
    id: ConnId,
    reader: WebSocketReceiver<Socket>,
    writer: Sender<Outgoing>,
    _writer_task: Task<()>,
    /// The close frame the server sent, for the Disconnected reason.
    server_close: Option<String>,
    we_closed: bool,
}

/// One instance's task. See the module documentation.
pub(crate) struct Runner {
    pub machine: Machine,
    pub props: Arc<Properties>,
    pub host: Arc<dyn Host>,
    pub tls: Option<Arc<ClientConfig>>,
    pub status: StatusVariables,
    pub shared: Arc<Shared>,
    pub inputs: Sender<Input>,
    pub ws_config: WebSocketConfig,
    connection: Option<Connection>,
    attempt: Option<(ConnId, Task<()>)>,
    shutting_down: bool,
}

enum Wake {
    Input(Input),
    InputsClosed,
    Frame(Option<Result<Message, tungstenite::Error>>),
    Deadline,
}

impl Runner {
    pub fn new(
        machine: Machine,
        props: Arc<Properties>,
        host: Arc<dyn Host>,
        tls: Option<Arc<ClientConfig>>,
        shared: Arc<Shared>,
        inputs: Sender<Input>,
    ) -> Self {
        Runner {
            machine,
            props,
            host,
            tls,
            status: StatusVariables::new(),
            shared,
            inputs,
            ws_config: WebSocketConfig::default(),
            connection: None,
            attempt: None,
            shutting_down: false,
        }
    }

    /// The runner's life: until shutdown completes or the instance handle is gone.
    pub async fn run(mut self, inputs: Receiver<Input>) {
        let mut inputs = std::pin::pin!(inputs);
        let mut timer = Timer::never();
        let mut armed: Option<Instant> = None;
        loop {
            self.execute_effects();
            self.publish();
            if self.shutting_down && self.machine.is_idle() {
                break;
            }
            // Re-arm only for an earlier deadline: a later one is caught when
            // the old timer fires and handle_timeout finds nothing due yet.
            match (self.machine.poll_deadline(), armed) {
                (Some(d), Some(a)) if d >= a => {}
                (Some(d), _) => {
                    timer.set_at(d);
                    armed = Some(d);
                }
                (None, _) => {}
            }
            let wake = std::future::poll_fn(|cx| {
                if let Poll::Ready(item) = inputs.as_mut().poll_next(cx) {
                    return Poll::Ready(item.map_or(Wake::InputsClosed, Wake::Input));
                }
                if let Some(conn) = self.connection.as_mut()
                    && let Poll::Ready(frame) = conn.reader.poll_next_unpin(cx)
                {
                    return Poll::Ready(Wake::Frame(frame));
                }
                if armed.is_some() && Pin::new(&mut timer).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Deadline);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Input(input) => {
                    self.handle_input(input);
                    // Drain what else is queued (a burst of Send Message).
                    for _ in 0..BATCH {
                        match inputs.try_recv() {
                            Ok(input) => self.handle_input(input),
                            Err(_) => break,
                        }
                    }
                }
                Wake::InputsClosed => {
                    // Unreachable while the runner holds a sender itself;
                    // treated as a shutdown should that ever change.
                    if !self.shutting_down {
                        self.handle_input(Input::Shutdown);
                    } else {
                        break;
                    }
                }
                Wake::Frame(frame) => {
                    self.handle_frame(frame);
                    for _ in 0..BATCH {
                        let Some(conn) = self.connection.as_mut() else {
                            break;
                        };
                        match conn.reader.next().now_or_never() {
                            Some(frame) => self.handle_frame(frame),
                            None => break,
                        }
                    }
                }
                Wake::Deadline => {
                    armed = None;
                    self.machine.handle_timeout(Instant::now());
                }
            }
        }
        self.execute_effects();
        self.publish();
    }

    fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Connect(token) => self.machine.handle_connect(now, token),
            Input::Disconnect => self.machine.handle_disconnect(now),
            Input::Send(text) => {
                self.shared.pending_sends.fetch_sub(1, Ordering::Relaxed);
                self.machine.handle_send(now, text);
            }
            Input::Network(up) => self.machine.handle_network(now, up),
            Input::Shutdown => {
                self.shutting_down = true;
                self.machine.handle_shutdown(now);
            }
            Input::Log(level, message) => self.host.log(level, &message),
            Input::TcpConnected(conn) => self.machine.handle_tcp_connected(now, conn),
            Input::Established(conn, ws) => {
                if self.attempt.as_ref().is_some_and(|(id, _)| *id == conn) {
                    self.attempt = None;
                    self.start_connection(conn, *ws);
                    self.machine.handle_established(now, conn);
                }
            }
            Input::Failed(conn, reason) => {
                if self.attempt.as_ref().is_some_and(|(id, _)| *id == conn) {
                    self.attempt = None;
                }
                self.machine.handle_closed(now, conn, reason);
            }
            Input::WriterFailed(conn, reason) => {
                if self.connection.as_ref().is_some_and(|c| c.id == conn) {
                    self.connection = None;
                    self.machine.handle_closed(now, conn, reason);
                }
            }
        }
    }

    fn handle_frame(&mut self, frame: Option<Result<Message, tungstenite::Error>>) {
        let now = Instant::now();
        let Some(conn) = self.connection.as_mut() else {
            return;
        };
        let id = conn.id;
        match frame {
            Some(Ok(message)) => {
                if self.props.log_comms {
                    self.host
                        .log(LogLevel::Extended, &comms_line("<-", &message));
                }
                match message {
                    Message::Text(text) => self.machine.handle_message(now, id, Bytes::from(text)),
                    Message::Binary(data) => {
                        self.machine.handle_activity(now, id);
                        self.host.log(
                            LogLevel::Normal,
                            &format!(
                                "binary message of {} bytes received; this module version delivers text messages only, so it fired no trigger",
                                data.len()
                            ),
                        );
                    }
                    Message::Close(frame) => {
                        conn.server_close = Some(describe_close("server", frame.as_ref()));
                        self.machine.handle_activity(now, id);
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                        self.machine.handle_activity(now, id);
                    }
                }
            }
            Some(Err(error)) => {
                let reason = match (&error, conn.server_close.take()) {
                    (tungstenite::Error::ConnectionClosed, Some(close)) => close,
                    _ => describe_error(&error),
                };
                self.connection = None;
                self.machine.handle_closed(now, id, reason);
            }
            None => {
                let reason = match (conn.server_close.take(), conn.we_closed) {
                    (Some(close), _) => close,
                    (None, true) => "closed".to_owned(),
                    (None, false) => {
                        "connection closed by the server without a close frame".to_owned()
                    }
                };
                self.connection = None;
                self.machine.handle_closed(now, id, reason);
            }
        }
    }

    fn execute_effects(&mut self) {
        while let Some(effect) = self.machine.poll_effect() {
            match effect {
                Effect::Open { conn, bearer_token } => {
                    let task = spawn(open_connection(
                        conn,
                        self.props.clone(),
                        bearer_token,
                        self.tls.clone(),
                        self.ws_config,
                        self.inputs.clone(),
                    ));
                    self.attempt = Some((conn, task));
                }
                Effect::Send { conn, text } => {
                    let message = Message::Text(text);
                    if self.props.log_comms {
                        self.host
                            .log(LogLevel::Extended, &comms_line("->", &message));
                    }
                    self.send_to_writer(conn, Outgoing::Message(message));
                }
                Effect::Ping { conn } => {
                    if self.props.log_comms {
                        self.host
                            .log(LogLevel::Extended, "comms -> ping (keep-alive)");
                    }
                    self.send_to_writer(conn, Outgoing::Message(Message::Ping(Bytes::new())));
                }
                Effect::Close { conn, code, reason } => {
                    if let Some(c) = self.connection.as_mut().filter(|c| c.id == conn) {
                        c.we_closed = true;
                    }
                    self.send_to_writer(
                        conn,
                        Outgoing::Close(CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        }),
                    );
                }
                Effect::Abort { conn } => {
                    if self.connection.as_ref().is_some_and(|c| c.id == conn) {
                        self.connection = None;
                    }
                    if self.attempt.as_ref().is_some_and(|(id, _)| *id == conn) {
                        self.attempt = None;
                    }
                }
                Effect::Fire { trigger, data } => {
                    // Connection triggers see up-to-date status (and the
                    // established flag Send Message checks); message
                    // triggers leave Last Received to the batch flush.
                    if trigger != Trigger::MessagesReceived {
                        self.publish();
                    }
                    self.host.fire_trigger(trigger, &data);
                }
                Effect::Status { key, value } => self.status.set(key, value),
                Effect::StatusPayload { key, payload } => self.status.set_payload(key, payload),
                Effect::Log { level, message } => self.host.log(level, &message),
            }
        }
    }

    fn send_to_writer(&mut self, conn: ConnId, outgoing: Outgoing) {
        if let Some(c) = self.connection.as_ref().filter(|c| c.id == conn) {
            // Unbounded here; the backlog is bounded where sends enter
            // (Instance::action counts pending sends).
            let _ = c.writer.try_send(outgoing);
        }
    }

    fn start_connection(&mut self, id: ConnId, ws: Ws) {
        let (sender, reader) = ws.split();
        let (writer, queue) = smol::channel::unbounded();
        let task = spawn(write_loop(id, sender, queue, self.inputs.clone()));
        self.connection = Some(Connection {
            id,
            reader,
            writer,
            _writer_task: task,
            server_close: None,
            we_closed: false,
        });
    }

    /// Pushes coalesced status changes to the host and the shared snapshot.
    fn publish(&mut self) {
        self.shared
            .established
            .store(self.machine.is_established(), Ordering::Relaxed);
        *self
            .shared
            .state_name
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.machine.state_name();
        if !self.status.is_dirty() {
            return;
        }
        let changed = self.status.flush(chrono::Local::now());
        *self.shared.status.lock().unwrap_or_else(|e| e.into_inner()) = self.status.snapshot();
        for variable in &changed {
            self.host.status_changed(variable);
        }
    }
}

/// One connection attempt: DNS, TCP (reported), TLS, WebSocket handshake.
async fn open_connection(
    conn: ConnId,
    props: Arc<Properties>,
    bearer_token: Option<Secret>,
    tls: Option<Arc<ClientConfig>>,
    ws_config: WebSocketConfig,
    inputs: Sender<Input>,
) {
    let result = async {
        let host = props.hostname.as_str();
        let addrs = smol::net::resolve((host, props.port))
            .await
            .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?;
        let mut last_error = format!("DNS lookup of {host} returned no address");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last_error = format!("TCP connect to {addr} failed: {e}"),
            }
        }
        let tcp = tcp.ok_or(last_error)?;
        // Small messages are the norm; don't let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let _ = inputs.send(Input::TcpConnected(conn)).await;
        let socket = match tls {
            None => MaybeTls::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| format!("TLS: {host} is not a valid server name: {e}"))?;
                let tls = TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
                MaybeTls::Tls(tls)
            }
        };
        let mut request = props
            .url()
            .into_client_request()
            .map_err(|e| format!("cannot build a request for {}: {e}", props.display_url()))?;
        if let Some(token) = bearer_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| "Bearer Token is not a valid header value".to_owned())?;
            value.set_sensitive(true);
            request.headers_mut().insert("Authorization", value);
        }
        let (ws, _response) =
            async_tungstenite::client_async_with_config(request, socket, Some(ws_config))
                .await
                .map_err(|e| describe_handshake_error(&e))?;
        Ok::<_, String>(ws)
    }
    .await;
    let input = match result {
        Ok(ws) => Input::Established(conn, Box::new(ws)),
        Err(reason) => Input::Failed(conn, reason),
    };
    let _ = inputs.send(input).await;
}

/// The write half: takes messages in order, writes them in batches.
async fn write_loop(
    conn: ConnId,
    mut sink: WebSocketSender<Socket>,
    queue: Receiver<Outgoing>,
    inputs: Sender<Input>,
) {
    let result = async {
        while let Ok(first) = queue.recv().await {
            let mut next = Some(first);
            while let Some(outgoing) = next.take() {
                match outgoing {
                    Outgoing::Message(message) => sink.feed(message).await?,
                    Outgoing::Close(frame) => {
                        sink.close(Some(frame)).await?;
                        return Ok(());
                    }
                }
                next = queue.try_recv().ok();
            }
            sink.flush().await?;
        }
        Ok::<_, tungstenite::Error>(())
    }
    .await;
    if let Err(error) = result {
        let dropped = queue.len();
        let mut reason = describe_error(&error);
        if dropped > 0 {
            reason.push_str(&format!("; {dropped} queued message(s) were not sent"));
        }
        let _ = inputs.send(Input::WriterFailed(conn, reason)).await;
    }
}

/// "closed by server: 1000 bye".
fn describe_close(who: &str, frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("closed by {who}: {}", u16::from(f.code)),
        Some(f) => format!("closed by {who}: {} {}", u16::from(f.code), f.reason),
        None => format!("closed by {who} (no close code)"),
    }
}

fn describe_error(error: &tungstenite::Error) -> String {
    use tungstenite::Error as E;
    match error {
        E::ConnectionClosed | E::AlreadyClosed => "connection closed".to_owned(),
        E::Io(e) => format!("connection lost: {e}"),
        E::Protocol(e) => format!("WebSocket protocol error from the server: {e}"),
        E::Capacity(e) => format!("message too large: {e}"),
        E::Utf8(_) => "the server sent a text message that is not valid UTF-8".to_owned(),
        other => format!("WebSocket error: {other}"),
    }
}

/// Handshake errors, without echoing request headers (the token).
fn describe_handshake_error(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            format!(
                "HTTP upgrade refused: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned()
        }
        tungstenite::Error::Io(e) => format!("WebSocket handshake failed: {e}"),
        other => format!("WebSocket handshake failed: {other}"),
    }
}

/// A Log Comms line: direction, opcode, length, the first bytes.
fn comms_line(direction: &str, message: &Message) -> String {
    let (opcode, payload): (&str, &[u8]) = match message {
        Message::Text(t) => ("text", t.as_bytes()),
        Message::Binary(b) => ("binary", b),
        Message::Ping(b) => ("ping", b),
        Message::Pong(b) => ("pong", b),
        Message::Close(_) => ("close", &[]),
        Message::Frame(f) => ("frame", f.payload()),
    };
    let shown = &payload[..payload.len().min(COMMS_PREVIEW)];
    let more = if payload.len() > COMMS_PREVIEW {
        "…"
    } else {
        ""
    };
    format!(
        "comms {direction} {opcode} {} bytes: {:?}{more}",
        payload.len(),
        String::from_utf8_lossy(shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comms_lines_show_direction_opcode_length_and_the_first_200_bytes() {
        let long = "x".repeat(500);
        let line = comms_line("<-", &Message::text(long));
        assert!(line.starts_with("comms <- text 500 bytes: \"xxx"));
        let shown = line.split_once(": ").unwrap().1;
        assert_eq!(shown.matches('x').count(), COMMS_PREVIEW);
        assert!(line.ends_with('…'));
        let line = comms_line("->", &Message::binary(vec![0u8, 159, 146, 150]));
        assert!(line.starts_with("comms -> binary 4 bytes: "), "{line}");
    }

    #[test]
    fn close_and_handshake_descriptions_are_readable() {
        let frame = CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        };
        assert_eq!(
            describe_close("server", Some(&frame)),
            "closed by server: 4000 bye"
        );
        assert_eq!(
            describe_close("server", None),
            "closed by server (no close code)"
        );
    }
}
