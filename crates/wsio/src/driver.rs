//! The driver: runs every instance's [`Machine`] on one module-owned thread.
//!
//! One smol executor on one background thread serves all instances, so
//! threads do not grow with instances. Per instance there is one task (the
//! *runner*) that owns the machine, the status variables and the WebSocket;
//! it feeds actions, socket events and the clock into the machine and
//! executes the effects that come out. Connection attempts run as their own
//! tasks.
//!
//! The runner reads and writes the one (unsplit) WebSocket in the same poll:
//! messages to send wait in its outbox and go out as the socket accepts them
//! (`poll_ready`/`start_send`/`poll_flush`), while reading goes on. So a
//! server that stops reading never blocks reads, actions or other instances,
//! and there is no writer task, channel or lock between the runner and the
//! socket. Host callbacks are all made from the driver thread, one at a
//! time, in event order.

use crate::inbox::Inbox;
use crate::instance::{Host, Shared};
use crate::machine::{
    Closure, ConnId, Counters, Effect, Ending, LogLevel, Machine, Outbound, Received, Stage,
    unsent_note,
};
use crate::matching::Trigger;
use crate::properties::{Properties, Protocol, Secret};
use crate::proxy;
use crate::read_ahead::ReadAhead;
use crate::status::StatusChanges;
use crate::status::StatusKey;
use crate::tls::is_certificate_failure;
use async_tungstenite::WebSocketStream;
use async_tungstenite::stream::Stream as MaybeTls;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use base64::Engine;
use bytes::Bytes;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use futures_rustls::pki_types::ServerName;
use futures_rustls::rustls::{self, ClientConfig};
use futures_util::{Sink, StreamExt};
use smol::net::TcpStream;
use smol::{Executor, Task, Timer};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// The byte stream under the WebSocket: TCP, or TLS over TCP for WSS, with
/// read-ahead on the TCP socket (under TLS, so that rustls's 4 KiB reads
/// gain from it too). The TLS state is boxed: inline it made every ws
/// connection as large as a wss one (about 1.2 KiB more).
pub type Socket = MaybeTls<ReadAhead<TcpStream>, Box<TlsStream<ReadAhead<TcpStream>>>>;
type Ws = WebSocketStream<Socket>;

/// Frames handled per wake before yielding to actions and other instances.
const BATCH: usize = 1024;
/// Within a batch, the clock is read again every this many frames…
const CLOCK_EVERY: usize = 16;
/// …and after every frame larger than this (bytes).
const BIG_FRAME: usize = 4096;
/// While messages flow, their status (Last Sent, Last Received, the message
/// and byte counters) is pushed to the host at most once per this long:
/// formatting and pushing a 64 KiB Last Received every few frames cost a
/// tenth of a bulk receive, and one every round trip sat between an echo's
/// request and its reply. A message after a quiet spell is pushed at once;
/// every other status change is pushed at once, with what traffic waits.
pub const STATUS_EVERY: Duration = Duration::from_millis(20);
/// Log Comms shows at most this many bytes of each frame.
const COMMS_PREVIEW: usize = 200;

/// The read buffer of each connection: tungstenite's `read_buffer_size`,
/// allocated and zeroed per connection, and zeroed again up to its size
/// before every read. The library's 128 KiB made an idle connection cost
/// ~150 KiB of RSS. With 4 KiB, bulk traffic would take a system call per
/// 4 KiB; the read-ahead under it ([`ReadAhead`]) reads 64 KiB at a time
/// instead, and holds that buffer only while data keeps coming (README,
/// "Performance"). WSIO_READ_BUFFER (bytes) overrides it, for measuring.
fn read_buffer_size() -> usize {
    std::env::var("WSIO_READ_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(READ_BUFFER)
}

const READ_BUFFER: usize = 4 * 1024;

/// The WebSocket settings of a connection: made when it opens, not kept by
/// every idle runner (its size, per instance, is what idle memory is made of).
fn ws_config(props: &Properties) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer_size())
        .max_message_size(Some(props.max_message_size))
        .max_frame_size(Some(props.max_message_size))
}

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
/// from its connection tasks. One inbox keeps them in one order. The rare,
/// large events are boxed: the inbox holds every item at the size of the
/// largest variant.
pub(crate) enum Input {
    Connect(Option<Secret>),
    Disconnect,
    ResetReconnect,
    Send(Outbound),
    /// Send Message of a text of this many bytes, copied into the inbox's
    /// byte buffer (`Instance::send_text`).
    SendText(usize),
    ClearQueue,
    Network(bool),
    Shutdown,
    /// A log line decided outside the driver thread (e.g. a refused action).
    Log(LogLevel, String),
    TcpConnected(ConnId),
    /// The WebSocket and the subprotocol the server chose.
    Established(ConnId, Box<(Ws, Option<String>)>),
    Failed(ConnId, Box<Ending>),
}

/// The live connection of a runner.
struct Connection {
    id: ConnId,
    ws: Ws,
    /// Messages the machine sent that the WebSocket has not taken yet
    /// (in order; the count is `Shared::unwritten`).
    outbox: VecDeque<Message>,
    /// The payload bytes in `outbox` (`Shared::unwritten_bytes`).
    outbox_bytes: usize,
    /// Messages were pushed to the outbox in the current pass over the
    /// effects (Last Sent is the newest of them).
    sent_this_pass: bool,
    /// Our close frame, sent after the outbox.
    close: Option<CloseFrame>,
    /// The WebSocket holds frames not yet flushed to the socket.
    unflushed: bool,
    /// Our close frame has gone to the WebSocket: nothing more is written.
    close_sent: bool,
    /// The close frame the server sent (Some(None): one without a code).
    server_close: Option<Option<CloseFrame>>,
    we_closed: bool,
}

impl Connection {
    fn new(id: ConnId, ws: Ws) -> Self {
        Connection {
            id,
            ws,
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            sent_this_pass: false,
            close: None,
            unflushed: false,
            close_sent: false,
            server_close: None,
            we_closed: false,
        }
    }

    /// Hands the outbox (then our close frame) to the WebSocket as fast as
    /// the socket takes it. Returns without waiting: what the socket cannot
    /// take now waits, and `cx` is woken when it can. [`Connection::poll_flush`]
    /// then sends it.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), tungstenite::Error> {
        while self.may_write() && (!self.outbox.is_empty() || self.close.is_some()) {
            let mut ws = Pin::new(&mut self.ws);
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Err(error),
                Poll::Pending => return Ok(()),
            }
            let message = match self.outbox.pop_front() {
                Some(message) => {
                    self.outbox_bytes = self.outbox_bytes.saturating_sub(message.len());
                    message
                }
                None => {
                    self.close_sent = true;
                    Message::Close(self.close.take())
                }
            };
            ws.as_mut().start_send(message)?;
            self.unflushed = true;
        }
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Result<(), tungstenite::Error> {
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(error)) => return Err(error),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Whether anything waits to be written or flushed.
    fn writing(&self) -> bool {
        self.unflushed || (self.may_write() && (!self.outbox.is_empty() || self.close.is_some()))
    }

    /// Messages go out until our close frame has, or the server's has come
    /// (the WebSocket then only answers it).
    fn may_write(&self) -> bool {
        !self.close_sent && self.server_close.is_none()
    }

    /// Notes on `ending` what the outbox still held when the connection
    /// ended: nothing is dropped without saying so.
    fn note_unsent(&self, ending: &mut Ending) {
        if !self.outbox.is_empty() {
            ending.reason.push_str(&unsent_note(self.outbox.len()));
        }
    }
}

/// One instance's task. See the module documentation.
pub(crate) struct Runner {
    pub machine: Machine,
    pub props: Arc<Properties>,
    pub host: Arc<dyn Host>,
    pub tls: Option<Arc<ClientConfig>>,
    /// Status values set since the last publish.
    pub status: StatusChanges,
    pub shared: Arc<Shared>,
    pub inputs: Inbox<Input>,
    connection: Option<Connection>,
    attempt: Option<(ConnId, Task<()>)>,
    shutting_down: bool,
    close_timeout: Duration,
    /// The counters as last pushed to the status variables.
    published: Counters,
    /// Send Messages taken from the inputs and not yet subtracted from
    /// `Shared::pending_sends` (done once per burst).
    sends_taken: usize,
    /// Their payload bytes, for `Shared::pending_send_bytes`.
    send_bytes_taken: usize,
    /// `Shared::unwritten` and `Shared::unwritten_bytes` as last stored.
    unwritten: (usize, usize),
    /// A connection was just established: once its burst of effects is
    /// done, the queues it grew give their memory back.
    settled: bool,
    /// The inbox's byte chunks not yet consumed by `Input::SendText`s, and
    /// how far into the first one they are consumed.
    texts: VecDeque<Bytes>,
    text_at: usize,
    /// The newest message, for Last Received at the next publish: one
    /// store per message rather than a status update.
    last_received: Option<Bytes>,
    /// When status changes were last pushed to the host.
    published_at: Option<Instant>,
    /// Traffic status waits until then (`STATUS_EVERY`).
    status_due: Option<Instant>,
}

enum Wake {
    /// Inputs were taken into the runner's batch.
    Inputs,
    Frame(Option<Result<Message, tungstenite::Error>>),
    WriteFailed(tungstenite::Error),
    Deadline,
}

impl Runner {
    pub fn new(
        machine: Machine,
        props: Arc<Properties>,
        host: Arc<dyn Host>,
        tls: Option<Arc<ClientConfig>>,
        shared: Arc<Shared>,
        inputs: Inbox<Input>,
    ) -> Self {
        let close_timeout = machine.close_timeout();
        Runner {
            close_timeout,
            machine,
            props,
            host,
            tls,
            status: StatusChanges::new(),
            shared,
            inputs,
            connection: None,
            attempt: None,
            shutting_down: false,
            published: Counters::default(),
            sends_taken: 0,
            send_bytes_taken: 0,
            unwritten: (0, 0),
            settled: false,
            texts: VecDeque::new(),
            text_at: 0,
            last_received: None,
            published_at: None,
            status_due: None,
        }
    }

    /// The runner's life: until shutdown completes or the instance handle is gone.
    /// Boxed: a future keeps its argument and the moved-in runner in separate
    /// slots, so `self` by value made every task twice the runner's size.
    pub async fn run(mut self: Box<Self>) {
        // However the runner ends, later actions are refused (Stopped).
        struct CloseOnDrop(Inbox<Input>);
        impl Drop for CloseOnDrop {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let inputs = self.inputs.clone();
        let _close = CloseOnDrop(inputs.clone());
        // A batch of inputs, taken under one lock.
        let mut taken = std::collections::VecDeque::new();
        let mut timer = Timer::never();
        let mut armed: Option<Instant> = None;
        // The task's own waker, for reading frames outside the poll below:
        // registering the same waker again is cheap, where a no-op waker
        // (`now_or_never`) traded places with it on every burst.
        let mut task_waker = std::task::Waker::noop().clone();
        loop {
            self.execute_effects();
            // One update of the counters the host threads read, per burst
            // rather than per message: the burst's sends move from
            // `pending_sends` to `unwritten` with no moment in neither.
            self.store_unwritten();
            if self.sends_taken > 0 {
                self.shared
                    .pending_sends
                    .fetch_sub(std::mem::take(&mut self.sends_taken), Ordering::SeqCst);
                self.shared
                    .pending_send_bytes
                    .fetch_sub(std::mem::take(&mut self.send_bytes_taken), Ordering::SeqCst);
            }
            self.publish_coalesced();
            if std::mem::take(&mut self.settled) {
                self.machine.release_spare_capacity();
                inputs.release_spare_capacity();
                taken = std::collections::VecDeque::new();
            }
            if self.shutting_down && self.machine.is_idle() {
                break;
            }
            // Re-arm only for an earlier deadline: a later one is caught when
            // the old timer fires and handle_timeout finds nothing due yet.
            let deadline = match (self.machine.poll_deadline(), self.status_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match (deadline, armed) {
                (Some(d), Some(a)) if d >= a => {}
                (Some(d), _) => {
                    timer.set_at(d);
                    armed = Some(d);
                }
                (None, _) => {}
            }
            let wake = std::future::poll_fn(|cx| {
                task_waker.clone_from(cx.waker());
                // Writes first: what the last pass sent goes out now.
                if let Some(conn) = self.connection.as_mut()
                    && conn.writing()
                {
                    if let Err(error) = conn.poll_write(cx) {
                        return Poll::Ready(Wake::WriteFailed(error));
                    }
                    // What the WebSocket took leaves the Send Message
                    // backlog before it can reach the server: the runner may
                    // sleep after this poll, with no pass to do it.
                    self.store_unwritten();
                    if let Some(conn) = self.connection.as_mut()
                        && let Err(error) = conn.poll_flush(cx)
                    {
                        return Poll::Ready(Wake::WriteFailed(error));
                    }
                }
                if inputs
                    .poll_take(cx, &mut taken, &mut self.texts, BATCH)
                    .is_ready()
                {
                    return Poll::Ready(Wake::Inputs);
                }
                if let Some(conn) = self.connection.as_mut()
                    && let Poll::Ready(frame) = conn.ws.poll_next_unpin(cx)
                {
                    return Poll::Ready(Wake::Frame(frame));
                }
                if armed.is_some() && Pin::new(&mut timer).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Deadline);
                }
                Poll::Pending
            })
            .await;
            self.store_unwritten();
            match wake {
                Wake::Inputs => {
                    // One clock read for the burst, like frames below.
                    let now = Instant::now();
                    while let Some(input) = taken.pop_front() {
                        self.handle_input(now, input);
                    }
                }
                Wake::Frame(frame) => {
                    // The clock is read once per CLOCK_EVERY small frames (a
                    // read per frame cost more than the rest of the frame);
                    // a large frame takes long enough to read it again.
                    let mut now = Instant::now();
                    let mut big = self.handle_frame(now, frame);
                    self.execute_effects();
                    let mut cx = Context::from_waker(&task_waker);
                    for n in 1..=BATCH {
                        let Some(conn) = self.connection.as_mut() else {
                            break;
                        };
                        let Poll::Ready(frame) = conn.ws.poll_next_unpin(&mut cx) else {
                            break;
                        };
                        if big || n % CLOCK_EVERY == 0 {
                            now = Instant::now();
                        }
                        big = self.handle_frame(now, frame);
                        // Fire as each frame is parsed: the callback comes
                        // at once, and the frame's buffer is released before
                        // the next read.
                        self.execute_effects();
                    }
                }
                Wake::WriteFailed(error) => self.write_failed(Instant::now(), &error),
                Wake::Deadline => {
                    armed = None;
                    self.machine.set_unwritten(self.outbox_len());
                    self.machine.handle_timeout(Instant::now());
                }
            }
        }
        self.execute_effects();
        self.publish();
    }

    fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Connect(token) => self.machine.handle_connect(now, token),
            Input::Disconnect => {
                self.machine.handle_disconnect(now);
                // Not established any more before the pending count drops:
                // a Send Message checking both can never slip in between.
                self.shared
                    .established
                    .store(self.machine.is_established(), Ordering::SeqCst);
                self.shared
                    .disconnects_pending
                    .fetch_sub(1, Ordering::SeqCst);
            }
            Input::ResetReconnect => self.machine.handle_reset_reconnect(now),
            Input::Send(message) => {
                // Leaves pending_sends with the rest of its burst (run).
                self.sends_taken += 1;
                self.send_bytes_taken += message.len();
                self.send_message(now, message);
            }
            Input::SendText(len) => {
                self.sends_taken += 1;
                self.send_bytes_taken += len;
                match self.take_text(len) {
                    Some(text) => self.send_message(now, Outbound::Text(text)),
                    // Not reachable: an item's bytes are taken with it.
                    None => self.host.log(
                        LogLevel::Critical,
                        "Send Message failed: internal error: its text was not in the inbox; nothing was sent",
                    ),
                }
            }
            Input::ClearQueue => self.machine.handle_clear_queue(now),
            Input::Network(up) => {
                self.machine.set_unwritten(self.outbox_len());
                self.machine.handle_network(now, up);
            }
            Input::Shutdown => {
                self.shutting_down = true;
                self.machine.handle_shutdown(now);
            }
            Input::Log(level, message) => self.host.log(level, &message),
            Input::TcpConnected(conn) => self.machine.handle_tcp_connected(now, conn),
            Input::Established(conn, established) => {
                if self.attempt.as_ref().is_some_and(|(id, _)| *id == conn) {
                    let (ws, subprotocol) = *established;
                    self.attempt = None;
                    self.start_connection(conn, ws);
                    self.machine.handle_established(now, conn, subprotocol);
                    self.settled = true;
                }
            }
            Input::Failed(conn, reason) => {
                if self.attempt.as_ref().is_some_and(|(id, _)| *id == conn) {
                    self.attempt = None;
                }
                self.machine.handle_closed(now, conn, *reason);
            }
        }
    }

    /// A Send Message taken from the inbox. The per-message path: what
    /// Effect::Send does, without the effect queue when nothing waits.
    fn send_message(&mut self, now: Instant, message: Outbound) {
        if let Some((conn, message)) = self.machine.send_message(now, message) {
            self.write_message(conn, message);
        }
    }

    /// The next `len` bytes of the inbox's byte chunks, as the text of an
    /// `Input::SendText` (shared with the chunk, not copied again).
    fn take_text(&mut self, len: usize) -> Option<Utf8Bytes> {
        if len == 0 {
            return Some(Utf8Bytes::from_static(""));
        }
        let front = self.texts.front()?;
        let end = self
            .text_at
            .checked_add(len)
            .filter(|&end| end <= front.len())?;
        let bytes = front.slice(self.text_at..end);
        if end == front.len() {
            self.texts.pop_front();
            self.text_at = 0;
        } else {
            self.text_at = end;
        }
        // Copied from a &str: valid UTF-8; checked all the same, at the cost
        // of a scan, rather than trusted without a check.
        Utf8Bytes::try_from(bytes).ok()
    }

    /// Writing to the connection failed: it is lost, with what was never
    /// written.
    fn write_failed(&mut self, now: Instant, error: &tungstenite::Error) {
        let Some(conn) = self.connection.take() else {
            return;
        };
        let mut ending = match &conn.server_close {
            Some(frame) => server_closed(frame.as_ref()),
            None => lost(error),
        };
        conn.note_unsent(&mut ending);
        self.machine.handle_closed(now, conn.id, ending);
    }

    /// Messages in the connection's outbox.
    fn outbox_len(&self) -> usize {
        self.connection.as_ref().map_or(0, |c| c.outbox.len())
    }

    /// Publishes the outbox length as `Shared::unwritten` (the Send
    /// Message backlog also counts it), when it changed.
    fn store_unwritten(&mut self) {
        let unwritten = self
            .connection
            .as_ref()
            .map_or((0, 0), |c| (c.outbox.len(), c.outbox_bytes));
        if unwritten != self.unwritten {
            // Bytes first: a Send Message that reads between the stores
            // sees at worst the old count with the new bytes.
            if unwritten.1 != self.unwritten.1 {
                self.shared
                    .unwritten_bytes
                    .store(unwritten.1, Ordering::SeqCst);
            }
            if unwritten.0 != self.unwritten.0 {
                self.shared.unwritten.store(unwritten.0, Ordering::SeqCst);
            }
            self.unwritten = unwritten;
        }
    }

    /// Feeds a frame (or the end of the stream) to the machine. Returns
    /// whether it was a large data frame.
    fn handle_frame(
        &mut self,
        now: Instant,
        frame: Option<Result<Message, tungstenite::Error>>,
    ) -> bool {
        let Some(conn) = self.connection.as_mut() else {
            return false;
        };
        let big = matches!(&frame, Some(Ok(m)) if m.len() > BIG_FRAME);
        let id = conn.id;
        match frame {
            Some(Ok(message)) => {
                if self.props.log_comms {
                    self.host
                        .log(LogLevel::Extended, &comms_line("<-", &message));
                }
                let received = match message {
                    Message::Text(text) => {
                        self.machine
                            .receive_message(now, id, Bytes::from(text), false)
                    }
                    Message::Binary(data) => self.machine.receive_message(now, id, data, true),
                    Message::Close(frame) => {
                        self.machine
                            .handle_server_close(now, id, server_closed(frame.as_ref()));
                        conn.server_close = Some(frame);
                        None
                    }
                    Message::Pong(_) => {
                        self.machine.handle_pong(now, id);
                        None
                    }
                    Message::Ping(_) | Message::Frame(_) => {
                        self.machine.handle_activity(now, id);
                        None
                    }
                };
                // The per-message path: what Effect::Fire does, without the
                // effect queue.
                if let Some(Received { data, binary }) = received {
                    self.host
                        .fire_trigger(Trigger::MessagesReceived, &data, binary);
                    self.last_received = Some(data);
                }
            }
            Some(Err(tungstenite::Error::Capacity(error))) => {
                let reason = format!(
                    "{error}: larger than Max Message Size ({} bytes); closed with 1009",
                    self.props.max_message_size
                );
                let mut ending = Ending::error(Stage::WebSocket, reason);
                ending.close = Some(Closure::by_client(1009, "message too big"));
                self.close_and_drop(1009, "message too big");
                self.machine.handle_closed(now, id, ending);
            }
            // RFC 6455 7.1.7: a client that fails the connection should say
            // why: 1007 for bad UTF-8, 1002 for other protocol errors.
            Some(Err(error @ (tungstenite::Error::Utf8(_) | tungstenite::Error::Protocol(_))))
                if !matches!(
                    error,
                    tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                    )
                ) =>
            {
                let (code, why) = match error {
                    tungstenite::Error::Utf8(_) => (1007, "invalid UTF-8"),
                    _ => (1002, "protocol error"),
                };
                let mut ending = lost(&error);
                ending.close = Some(Closure::by_client(code, why));
                self.close_and_drop(code, why);
                self.machine.handle_closed(now, id, ending);
            }
            Some(Err(error)) => {
                let ending = match (&error, conn.server_close.take()) {
                    (tungstenite::Error::ConnectionClosed, _) if conn.we_closed => {
                        closed_by_client()
                    }
                    (tungstenite::Error::ConnectionClosed, Some(frame)) => {
                        server_closed(frame.as_ref())
                    }
                    _ => lost(&error),
                };
                let mut ending = ending;
                conn.note_unsent(&mut ending);
                self.connection = None;
                self.machine.handle_closed(now, id, ending);
            }
            None => {
                // Our close comes first: the server's frame is then its reply.
                let ending = match (conn.server_close.take(), conn.we_closed) {
                    (_, true) => closed_by_client(),
                    (Some(frame), false) => server_closed(frame.as_ref()),
                    (None, false) => Ending {
                        close: Some(Closure::Lost),
                        ..Ending::from("connection closed by the server without a close frame")
                    },
                };
                let mut ending = ending;
                conn.note_unsent(&mut ending);
                self.connection = None;
                self.machine.handle_closed(now, id, ending);
            }
        }
        big
    }

    fn execute_effects(&mut self) {
        self.execute_each_effect();
        self.flush_outbox();
    }

    fn execute_each_effect(&mut self) {
        while let Some(effect) = self.machine.poll_effect() {
            match effect {
                // The one effect of a message: kept apart from the rest so
                // that the per-message path stays small.
                Effect::Fire {
                    trigger: Trigger::MessagesReceived,
                    data,
                    binary,
                } => {
                    self.host
                        .fire_trigger(Trigger::MessagesReceived, &data, binary);
                    // The message is Last Received (Effect::Fire); status
                    // is left to the publish.
                    self.last_received = Some(data);
                }
                effect => self.execute_effect(effect),
            }
        }
    }

    #[inline(never)]
    fn execute_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Open { conn, bearer_token } => {
                let task = spawn(open_connection(
                    conn,
                    self.props.clone(),
                    bearer_token,
                    self.tls.clone(),
                    ws_config(&self.props),
                    self.inputs.clone(),
                ));
                if self.props.protocol == Protocol::Wss
                    && self.props.tls.skip_verification
                    && self.props.tls.pin_sha256.is_none()
                {
                    self.host.log(
                            LogLevel::Terse,
                            &format!(
                                "WARNING: certificate verification is OFF for {} (Skip Certificate Verification (insecure)): anyone on the network path can read and change this connection; use Pin SHA-256 instead",
                                self.props.display_url()
                            ),
                        );
                }
                self.attempt = Some((conn, task));
            }
            Effect::Send { conn, message } => self.write_message(conn, message),
            Effect::Ping { conn } => {
                if self.props.log_comms {
                    self.host
                        .log(LogLevel::Extended, "comms -> ping (keep-alive)");
                }
                if let Some(c) = self.connection.as_mut().filter(|c| c.id == conn) {
                    c.outbox.push_back(Message::Ping(Bytes::new()));
                }
            }
            Effect::Close { conn, code, reason } => {
                if let Some(c) = self.connection.as_mut().filter(|c| c.id == conn) {
                    c.we_closed = true;
                    c.close.get_or_insert(CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    });
                }
            }
            Effect::Abort { conn } => {
                if self.connection.as_ref().is_some_and(|c| c.id == conn) {
                    self.connection = None;
                }
                if self.attempt.as_ref().is_some_and(|(id, _)| *id == conn) {
                    self.attempt = None;
                }
            }
            Effect::Fire {
                trigger,
                data,
                binary,
            } => {
                // Connection triggers see up-to-date status (and the
                // established flag Send Message checks).
                self.publish();
                self.host.fire_trigger(trigger, &data, binary);
            }
            Effect::Status { key, value } => self.status.set(key, value),
            Effect::StatusPayload {
                key: StatusKey::LastReceived,
                payload,
            } => self.last_received = Some(payload),
            Effect::StatusPayload { key, payload } => self.status.set_payload(key, payload),
            Effect::StatusAt { key, at } => {
                let ahead = at.saturating_duration_since(Instant::now());
                let wall =
                    chrono::Local::now() + chrono::Duration::from_std(ahead).unwrap_or_default();
                self.status.set(key, crate::status::format_timestamp(wall));
            }
            Effect::Log { level, message } => self.host.log(level, &message),
        }
    }

    /// Puts a message the machine sent in its connection's outbox (Last
    /// Sent is set once per pass, by `flush_outbox`).
    fn write_message(&mut self, conn: ConnId, message: Outbound) {
        let message = match message {
            Outbound::Text(text) => Message::Text(text),
            Outbound::Binary(data) => Message::Binary(data),
        };
        if self.props.log_comms {
            self.host
                .log(LogLevel::Extended, &comms_line("->", &message));
        }
        if let Some(c) = self.connection.as_mut().filter(|c| c.id == conn) {
            c.outbox_bytes += message.len();
            c.outbox.push_back(message);
            c.sent_this_pass = true;
        }
    }

    /// Drops the connection after sending a close frame: a task of its
    /// own finishes the close, bounded by the close timeout. What waited in
    /// the outbox is not sent.
    fn close_and_drop(&mut self, code: u16, reason: &'static str) {
        if let Some(conn) = self.connection.take() {
            let mut ws = conn.ws;
            let frame = CloseFrame {
                code: code.into(),
                reason: reason.into(),
            };
            let limit = self.close_timeout;
            spawn(async move {
                smol::future::or(
                    async move {
                        let _ = ws.close(Some(frame)).await;
                    },
                    async {
                        Timer::after(limit).await;
                    },
                )
                .await;
            })
            .detach();
        }
    }

    /// Ends a pass over the effects: Last Sent is the newest message the
    /// pass sent (one copy per burst, not per message). The runner's next
    /// poll writes the outbox.
    fn flush_outbox(&mut self) {
        if let Some(c) = self.connection.as_mut()
            && std::mem::take(&mut c.sent_this_pass)
        {
            // Pings may follow it; the pass sent at least one message.
            if let Some(shown) = c.outbox.iter().rev().find_map(|m| match m {
                Message::Text(text) => Some(Bytes::from(text.clone())),
                Message::Binary(data) => Some(Bytes::from(hex::encode(data))),
                _ => None,
            }) {
                self.status.set_payload(StatusKey::LastSent, shown);
            }
        }
    }

    fn start_connection(&mut self, id: ConnId, ws: Ws) {
        self.connection = Some(Connection::new(id, ws));
    }

    /// The loop's publish: traffic status waits while it was pushed less
    /// than `STATUS_EVERY` ago (a deadline brings it); anything else goes at
    /// once ([`Runner::publish`]).
    fn publish_coalesced(&mut self) {
        self.stage_last_received();
        if let Some(at) = self.published_at
            && self.status.is_traffic_only()
        {
            let counters = self.machine.counters();
            let p = &self.published;
            let traffic_only = counters.dropped == p.dropped
                && counters.suppressed == p.suppressed
                && counters.queue_depth == p.queue_depth;
            let due = at + STATUS_EVERY;
            if traffic_only && Instant::now() < due {
                if self.status.is_dirty() || counters != self.published {
                    self.status_due.get_or_insert(due);
                }
                self.publish_state();
                return;
            }
        }
        self.publish();
    }

    /// Hands the newest message to the status list as Last Received.
    fn stage_last_received(&mut self) {
        if let Some(data) = self.last_received.take() {
            self.status.set_payload(StatusKey::LastReceived, data);
        }
    }

    /// What Send Message and status reads check: up to date at once.
    fn publish_state(&self) {
        self.shared
            .established
            .store(self.machine.is_established(), Ordering::Relaxed);
        *self
            .shared
            .state_name
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.machine.state_name();
    }

    /// Pushes the status changes (coalesced since the last push) to the
    /// host and the shared snapshot.
    fn publish(&mut self) {
        self.stage_last_received();
        self.publish_state();
        self.status_due = None;
        let counters = self.machine.counters();
        if counters != self.published {
            let pairs = [
                (
                    StatusKey::MessagesIn,
                    counters.messages_in,
                    self.published.messages_in,
                ),
                (
                    StatusKey::MessagesOut,
                    counters.messages_out,
                    self.published.messages_out,
                ),
                (
                    StatusKey::BytesIn,
                    counters.bytes_in,
                    self.published.bytes_in,
                ),
                (
                    StatusKey::BytesOut,
                    counters.bytes_out,
                    self.published.bytes_out,
                ),
                (StatusKey::Dropped, counters.dropped, self.published.dropped),
                (
                    StatusKey::Suppressed,
                    counters.suppressed,
                    self.published.suppressed,
                ),
                (
                    StatusKey::QueueDepth,
                    counters.queue_depth as u64,
                    self.published.queue_depth as u64,
                ),
            ];
            for (key, now, before) in pairs {
                if now != before {
                    self.status.set(key, now.to_string());
                }
            }
            self.published = counters;
        }
        if !self.status.is_dirty() {
            return;
        }
        self.published_at = Some(Instant::now());
        // The values live once, in the shared state the instance handle
        // reads; only what changed is copied out for the host.
        let changed = {
            let mut current = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
            self.status.apply(&mut current, chrono::Local::now())
        };
        for variable in &changed {
            self.host.status_changed(variable);
        }
    }
}

/// One connection attempt: DNS, TCP or a proxy tunnel (reported as TCP
/// up), TLS, WebSocket handshake. Each failure names its stage.
///
/// Each stage's future is boxed, so the attempt holds only the stage it is
/// in: inline, the stages' states took 11 KiB per attempt, and a storm of
/// connects left that much free-but-resident heap behind every instance.
async fn open_connection(
    conn: ConnId,
    props: Arc<Properties>,
    bearer_token: Option<Secret>,
    tls: Option<Arc<ClientConfig>>,
    ws_config: WebSocketConfig,
    inputs: Inbox<Input>,
) {
    let result = async {
        let host = props.hostname.as_str();
        let tcp = match proxy::resolve(&props.proxy, host, tls.is_some())? {
            Some(via) => Box::pin(proxy::connect(&via, host, props.port)).await?,
            None => Box::pin(connect_tcp(host, props.port)).await?,
        };
        // Small messages are the norm; don't let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let _ = inputs.push(Input::TcpConnected(conn));
        let tcp = ReadAhead::new(tcp);
        let socket = match tls {
            None => MaybeTls::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                    Ending::error(
                        Stage::Tls,
                        format!("{host} is not a valid TLS server name: {e}"),
                    )
                })?;
                let tls = Box::pin(TlsConnector::from(config).connect(name, tcp))
                    .await
                    .map_err(|e| tls_failure(host, &e))?;
                MaybeTls::Tls(Box::new(tls))
            }
        };
        let request = build_request(&props, bearer_token.as_ref())?;
        let (ws, response) = Box::pin(async_tungstenite::client_async_with_config(
            request,
            socket,
            Some(ws_config),
        ))
        .await
        .map_err(|e| handshake_failure(host, &e))?;
        let subprotocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok::<_, Ending>((ws, subprotocol))
    }
    .await;
    let input = match result {
        Ok(established) => Input::Established(conn, Box::new(established)),
        Err(ending) => Input::Failed(conn, Box::new(ending)),
    };
    let _ = inputs.push(input);
}

async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Ending> {
    let addrs = smol::net::resolve((host, port))
        .await
        .map_err(|e| Ending::error(Stage::Dns, format!("DNS lookup of {host} failed: {e}")))?;
    let mut last = Ending::error(
        Stage::Dns,
        format!("DNS lookup of {host} returned no address"),
    );
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                last = Ending::error(Stage::Tcp, format!("TCP connect to {addr} failed: {e}"))
            }
        }
    }
    Err(last)
}

/// The handshake request: URL, credentials, headers, subprotocols, Origin.
/// Header values (tokens, passwords, custom headers) are marked sensitive
/// and never formatted into anything that is logged.
fn build_request(
    props: &Properties,
    bearer_token: Option<&Secret>,
) -> Result<tungstenite::handshake::client::Request, Ending> {
    let mut request = props.url().into_client_request().map_err(|e| {
        Ending::error(
            Stage::WebSocket,
            format!("cannot build a request for {}: {e}", props.display_url()),
        )
    })?;
    let headers = request.headers_mut();
    let sensitive = |text: String, what: &str| {
        HeaderValue::from_str(&text)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| {
                Ending::error(
                    Stage::WebSocket,
                    format!("{what} is not a valid header value"),
                )
            })
    };
    for header in &props.headers {
        let name =
            tungstenite::http::HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
                Ending::error(Stage::WebSocket, format!("bad header name {}", header.name))
            })?;
        headers.append(
            name,
            sensitive(header.value.expose().to_owned(), &header.name)?,
        );
    }
    if let Some(origin) = &props.origin {
        headers.insert("Origin", sensitive(origin.clone(), "Origin")?);
    }
    if !props.subprotocols.is_empty() {
        headers.insert(
            "Sec-WebSocket-Protocol",
            sensitive(props.subprotocols.join(", "), "Subprotocols")?,
        );
    }
    // A Bearer Token given to Connect takes precedence over Basic.
    if let Some(token) = bearer_token {
        headers.insert(
            "Authorization",
            sensitive(format!("Bearer {}", token.expose()), "Bearer Token")?,
        );
    } else if let Some(basic) = &props.basic_auth {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            basic.username,
            basic.password.expose()
        ));
        headers.insert(
            "Authorization",
            sensitive(format!("Basic {credentials}"), "Username/Password")?,
        );
    }
    Ok(request)
}

/// The rustls error inside an I/O error, if any.
fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}

fn tls_failure(host: &str, error: &std::io::Error) -> Ending {
    let fatal = rustls_error(error).is_some_and(is_certificate_failure);
    Ending {
        fatal,
        ..Ending::error(
            Stage::Tls,
            format!("TLS handshake with {host} failed: {error}"),
        )
    }
}

/// Handshake errors, without echoing request headers (the token).
fn handshake_failure(host: &str, error: &tungstenite::Error) -> Ending {
    use tungstenite::error::ProtocolError;
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let reason = format!(
                "HTTP upgrade refused: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            Ending {
                fatal: matches!(status.as_u16(), 401 | 403 | 404),
                ..Ending::error(Stage::HttpUpgrade, reason.trim_end().to_owned())
            }
        }
        // TLS 1.3 reports a refused client certificate after the client's
        // side of the handshake, i.e. while reading the HTTP answer.
        tungstenite::Error::Io(e) if rustls_error(e).is_some() => tls_failure(host, e),
        tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => {
            Ending::error(
                Stage::HttpUpgrade,
                format!("subprotocol negotiation failed: {e}"),
            )
        }
        tungstenite::Error::Io(e) => Ending::error(
            Stage::HttpUpgrade,
            format!("WebSocket handshake failed: {e}"),
        ),
        other => Ending::error(
            Stage::WebSocket,
            format!("WebSocket handshake failed: {other}"),
        ),
    }
}

/// Our close handshake (Disconnect, removal) completed.
fn closed_by_client() -> Ending {
    Ending::closed_by_client()
}

/// The server closed with `frame`: "closed by server: 1000 bye".
fn server_closed(frame: Option<&CloseFrame>) -> Ending {
    Ending::closed_by_server(frame.map(|f| (u16::from(f.code), f.reason.as_str())))
}

/// The connection broke: an error (Last Error) and no close handshake.
fn lost(error: &tungstenite::Error) -> Ending {
    use tungstenite::Error as E;
    let (stage, reason) = match error {
        E::ConnectionClosed | E::AlreadyClosed => {
            (Stage::WebSocket, "connection closed".to_owned())
        }
        E::Io(e) if rustls_error(e).is_some() => (Stage::Tls, format!("TLS error: {e}")),
        E::Io(e) => (Stage::Tcp, format!("connection lost: {e}")),
        E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => (
            Stage::Tcp,
            "connection closed by the server without a close frame".to_owned(),
        ),
        E::Protocol(e) => (
            Stage::WebSocket,
            format!("WebSocket protocol error from the server: {e}"),
        ),
        E::Capacity(e) => (Stage::WebSocket, format!("message too large: {e}")),
        E::Utf8(_) => (
            Stage::WebSocket,
            "the server sent a text message that is not valid UTF-8".to_owned(),
        ),
        other => (Stage::WebSocket, format!("WebSocket error: {other}")),
    };
    Ending {
        close: Some(Closure::Lost),
        ..Ending::error(stage, reason)
    }
}

/// A Log Comms line: direction, opcode, length, the first bytes.
fn comms_line(direction: &str, message: &Message) -> String {
    let (opcode, payload): (&str, &[u8]) = match message {
        Message::Text(t) => ("text", t.as_bytes()),
        Message::Binary(b) => ("binary", b),
        Message::Ping(b) => ("ping", b),
        Message::Pong(b) => ("pong", b),
        Message::Frame(f) => ("frame", f.payload()),
        // The code and reason, not the raw payload.
        Message::Close(Some(f)) => {
            let code = u16::from(f.code);
            return format!("comms {direction} close {code} {:?}", f.reason.as_str());
        }
        Message::Close(None) => return format!("comms {direction} close without a code"),
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
        let bye = Message::Close(Some(CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        }));
        assert_eq!(comms_line("<-", &bye), "comms <- close 4000 \"bye\"");
        assert_eq!(
            comms_line("->", &Message::Close(None)),
            "comms -> close without a code"
        );
    }

    #[test]
    fn close_and_handshake_descriptions_are_readable() {
        let frame = CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        };
        let ending = server_closed(Some(&frame));
        assert_eq!(ending.reason, "closed by server: 4000 bye");
        assert_eq!(
            ending.close.map(|c| c.to_string()).as_deref(),
            Some("4000 bye (closed by server)")
        );
        assert_eq!(
            server_closed(None).reason,
            "closed by server (no close code)"
        );
    }
}
