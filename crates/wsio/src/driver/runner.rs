//! The runner: one instance's task on the driver thread.
//!
//! It owns the machine, the status variables and the WebSocket; it feeds
//! actions, socket events and the clock into the machine and executes the
//! effects that come out. It reads and writes the one (unsplit) WebSocket
//! in the same poll: messages to send wait in its outbox and go out as the
//! socket accepts them (`poll_ready`/`start_send`/`poll_flush`), while
//! reading goes on. So a server that stops reading never blocks reads,
//! actions or other instances, and there is no writer task, channel or lock
//! between the runner and the socket.

use super::comms::comms_line;
use super::connect::{open_connection, ws_config};
use super::endings::{closed_by_client, lost, server_closed};
use super::executor::spawn;
use super::outbox::Connection;
use super::{Input, Shared, Ws};
use crate::host::Host;
use crate::inbox::Inbox;
use crate::machine::{
    Closure, ConnId, Counters, Effect, Ending, Machine, Outbound, Received, Stage,
};
use crate::properties::{Properties, Protocol};
use crate::status::StatusChanges;
use crate::vocabulary::{LogLevel, StatusKey, Trigger};
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use bytes::Bytes;
use futures_rustls::rustls::ClientConfig;
use futures_util::StreamExt;
use smol::{Task, Timer};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Frames handled per wake before yielding to actions and other instances.
const BATCH: usize = 1024;
/// Within a batch, the clock is read again every this many frames…
const CLOCK_EVERY: usize = 16;
/// …and after every frame larger than this (bytes).
const BIG_FRAME: usize = 4096;
/// While messages flow, their status (Last Sent, Last Received, the message
/// and byte counters) is pushed to the host at most once per this long:
/// formatting and pushing a large Last Received every few frames is a
/// visible share of a bulk receive, and one every round trip would sit
/// between an echo's request and its reply. A message after a quiet spell is pushed at once;
/// every other status change is pushed at once, with what traffic waits.
pub const STATUS_EVERY: Duration = Duration::from_millis(20);

/// One instance's task. See the module documentation.
pub(crate) struct Runner {
    pub(super) machine: Machine,
    pub(super) props: Arc<Properties>,
    pub(super) host: Arc<dyn Host>,
    pub(super) tls: Option<Arc<ClientConfig>>,
    /// Status values set since the last publish.
    pub(super) status: StatusChanges,
    pub(super) shared: Arc<Shared>,
    pub(super) inputs: Inbox<Input>,
    pub(super) connection: Option<Connection>,
    pub(super) attempt: Option<(ConnId, Task<()>)>,
    pub(super) shutting_down: bool,
    pub(super) close_timeout: Duration,
    /// The counters as last pushed to the status variables.
    pub(super) published: Counters,
    /// Send Messages taken from the inputs and not yet subtracted from
    /// `Shared::pending_sends` (done once per burst).
    pub(super) sends_taken: usize,
    /// Their payload bytes, for `Shared::pending_send_bytes`.
    pub(super) send_bytes_taken: usize,
    /// `Shared::unwritten` and `Shared::unwritten_bytes` as last stored.
    pub(super) unwritten: (usize, usize),
    /// A connection was just established: once its burst of effects is
    /// done, the queues it grew give their memory back.
    pub(super) settled: bool,
    /// The inbox's byte chunks not yet consumed by `Input::SendText`s, and
    /// how far into the first one they are consumed.
    pub(super) texts: VecDeque<Bytes>,
    pub(super) text_at: usize,
    /// The newest message, for Last Received at the next publish: one
    /// store per message rather than a status update.
    pub(super) last_received: Option<Bytes>,
    /// When status changes were last pushed to the host.
    pub(super) published_at: Option<Instant>,
    /// Traffic status waits until then (`STATUS_EVERY`).
    pub(super) status_due: Option<Instant>,
    /// Flow control: triggers the host refused (the first) or that came
    /// after a refused one, oldest first. While any is held the connection
    /// is not read (TCP pushes back on the server), so this holds at most
    /// one message plus the connection triggers that fire without reading.
    pub(super) held: VecDeque<(Trigger, Bytes, bool)>,
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
            held: VecDeque::new(),
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
                if self.reading()
                    && let Some(conn) = self.connection.as_mut()
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
                        if !self.reading() {
                            break;
                        }
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
        self.offer_held_at_the_end();
        self.publish();
    }

    /// Whether the connection is read: not while triggers are held for the
    /// host (flow control), except to finish a close (once a close has
    /// begun, messages fire no trigger, so reading holds nothing more).
    fn reading(&self) -> bool {
        self.held.is_empty() || !self.machine.is_established()
    }

    /// Fires a trigger, or holds it when the host refuses it or something
    /// is held already (order is kept).
    fn fire(&mut self, trigger: Trigger, data: &Bytes, binary: bool) {
        if self.held.is_empty() && self.host.try_fire_trigger(trigger, data, binary) {
            return;
        }
        if self.held.is_empty() {
            self.machine.handle_reading_paused(Instant::now(), true);
        }
        self.held.push_back((trigger, data.clone(), binary));
    }

    /// The host has room again: offers what is held, oldest first, until
    /// it refuses one; once all are taken, reading resumes.
    fn offer_held(&mut self, now: Instant) {
        while let Some((trigger, data, binary)) = self.held.front() {
            if !self.host.try_fire_trigger(*trigger, data, *binary) {
                return;
            }
            self.held.pop_front();
        }
        self.machine.handle_reading_paused(now, false);
    }

    /// The instance is going away: what is held is offered once more, and
    /// what the host still refuses is dropped, saying how many.
    fn offer_held_at_the_end(&mut self) {
        let mut dropped = 0usize;
        while let Some((trigger, data, binary)) = self.held.pop_front() {
            if !self.host.try_fire_trigger(trigger, &data, binary) {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.host.log(
                LogLevel::Critical,
                &format!(
                    "{dropped} trigger(s) held for the host were dropped: the instance was destroyed while the host still refused them"
                ),
            );
        }
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
            Input::Resume => self.offer_held(now),
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
                    self.fire(Trigger::MessagesReceived, &data, binary);
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
                    self.fire(Trigger::MessagesReceived, &data, binary);
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
                self.fire(trigger, &data, binary);
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
}
