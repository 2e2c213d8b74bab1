//! The live connection of a runner and its outbox: messages the machine
//! sent wait here in order and go to the WebSocket as fast as the socket
//! takes them, without ever blocking the runner's reads.

use super::Ws;
use crate::machine::{ConnId, Ending, unsent_note};
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{self, Message};
use futures_util::Sink;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The live connection of a runner.
pub(super) struct Connection {
    pub(super) id: ConnId,
    pub(super) ws: Ws,
    /// Messages the machine sent that the WebSocket has not taken yet
    /// (in order; the count is `Shared::unwritten`).
    pub(super) outbox: VecDeque<Message>,
    /// The payload bytes in `outbox` (`Shared::unwritten_bytes`).
    pub(super) outbox_bytes: usize,
    /// Messages were pushed to the outbox in the current pass over the
    /// effects (Last Sent is the newest of them).
    pub(super) sent_this_pass: bool,
    /// Our close frame, sent after the outbox.
    pub(super) close: Option<CloseFrame>,
    /// The WebSocket holds frames not yet flushed to the socket.
    pub(super) unflushed: bool,
    /// Our close frame has gone to the WebSocket: nothing more is written.
    pub(super) close_sent: bool,
    /// The close frame the server sent (Some(None): one without a code).
    pub(super) server_close: Option<Option<CloseFrame>>,
    pub(super) we_closed: bool,
}

impl Connection {
    pub(super) fn new(id: ConnId, ws: Ws) -> Self {
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
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), tungstenite::Error> {
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

    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Result<(), tungstenite::Error> {
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
    pub(super) fn writing(&self) -> bool {
        self.unflushed || (self.may_write() && (!self.outbox.is_empty() || self.close.is_some()))
    }

    /// Messages go out until our close frame has, or the server's has come
    /// (the WebSocket then only answers it).
    pub(super) fn may_write(&self) -> bool {
        !self.close_sent && self.server_close.is_none()
    }

    /// Notes on `ending` what the outbox still held when the connection
    /// ended: nothing is dropped without saying so.
    pub(super) fn note_unsent(&self, ending: &mut Ending) {
        if !self.outbox.is_empty() {
            ending.reason.push_str(&unsent_note(self.outbox.len()));
        }
    }
}
