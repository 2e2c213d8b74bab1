//! The driver: runs every instance's [`Machine`](crate::machine::Machine)
//! on one module-owned thread.
//!
//! One smol executor on one background thread serves all instances, so
//! threads do not grow with instances. Per instance there is one task (the
//! *runner*) that owns the machine, the status variables and the WebSocket;
//! it feeds actions, socket events and the clock into the machine and
//! executes the effects that come out. Connection attempts run as their own
//! tasks.
//!
//! Host callbacks are all made from the driver thread, one at a time, in
//! event order.
//!
//! The files follow one instance's flow: [`executor`] (the thread and its
//! tasks), [`runner`] (the instance's task and its loop), [`connect`] (one
//! connection attempt, with [`proxy`]), [`outbox`] (the live connection and
//! what waits to be written to it), [`publish`] (status and counters out to
//! the host and the instance handle), [`endings`] (how a connection ended, as
//! the machine and the user read it), [`comms`] (Log Comms lines). The
//! host-facing trait is [`crate::host::Host`]; the state an instance handle
//! shares with its runner is [`Shared`].

mod comms;
mod connect;
mod endings;
mod executor;
mod outbox;
mod proxy;
mod publish;
mod runner;
mod shared;

pub(crate) use executor::{on_driver_thread, spawn};
pub(crate) use proxy::shown_route;
pub(crate) use runner::Runner;
pub use runner::STATUS_EVERY;
pub(crate) use shared::Shared;

use crate::machine::{ConnId, Ending, Outbound};
use crate::read_ahead::ReadAhead;
use crate::vocabulary::{LogLevel, Secret};
use async_tungstenite::WebSocketStream;
use async_tungstenite::stream::Stream as MaybeTls;
use futures_rustls::client::TlsStream;
use smol::net::TcpStream;

/// The byte stream under the WebSocket: TCP, or TLS over TCP for WSS, with
/// read-ahead on the TCP socket (under TLS, so that rustls's 4 KiB reads
/// gain from it too). The TLS state is boxed: inline it would make every ws
/// connection as large as a wss one.
pub(crate) type Socket = MaybeTls<ReadAhead<TcpStream>, Box<TlsStream<ReadAhead<TcpStream>>>>;
type Ws = WebSocketStream<Socket>;

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
    /// Flow control: the host has room again for held triggers.
    Resume,
    Shutdown,
    /// A log line decided outside the driver thread (e.g. a refused action).
    Log(LogLevel, String),
    TcpConnected(ConnId),
    /// The WebSocket and the subprotocol the server chose.
    Established(ConnId, Box<(Ws, Option<String>)>),
    Failed(ConnId, Box<Ending>),
}
