//! A server that misbehaves byte by byte, for the fault suite.
//!
//! The fixture servers speak correct WebSocket through tungstenite; the
//! faults need what tungstenite will not write: an HTTP answer of our
//! choosing, a handshake answer trickled a byte a second, a TCP reset, a
//! FIN without a close frame, masked or reserved frames, invalid UTF-8,
//! 1-byte fragments. So each connection here is plain blocking TCP on a
//! thread of its own, run by a *script* that gets a [`Peer`]; frames are
//! built with tungstenite's own [`Frame`] and [`FrameHeader`].
//!
//! What the server observes is recorded in the same [`Observations`] as
//! the fixtures (accepted connections, handshakes, messages and close
//! frames the client sent, ended connections). Dropping the server shuts
//! every connection down and joins every thread, bounded: scripts wait
//! with [`Peer::pause`] and [`Peer::hold`], which end when it stops.

use std::collections::HashMap;
use std::io::{Cursor, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use async_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use super::observations::{CloseReceived, Handshake, Observations, Observed};

/// Longest HTTP request head a script reads.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    stop_lock: Mutex<()>,
    stopped: Condvar,
    /// A clone of every open connection, to shut them down on stop.
    peers: Mutex<HashMap<usize, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    connections: AtomicUsize,
}

/// A listener on 127.0.0.1 that runs a script per connection.
pub struct ScriptServer {
    addr: SocketAddr,
    observations: Arc<Observations>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl ScriptServer {
    /// Listens on 127.0.0.1 (any free port); each connection runs `script`
    /// on a thread of its own.
    /// A server that completes every handshake, then runs `then`.
    pub fn after_upgrade(then: impl Fn(Peer) + Send + Sync + 'static) -> ScriptServer {
        Self::start(move |mut peer| {
            if peer.upgrade() {
                then(peer);
            }
        })
    }

    pub fn start(script: impl Fn(Peer) + Send + Sync + 'static) -> ScriptServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a bound address");
        let observations = Arc::new(Observations::default());
        let shared = Arc::new(Shared::default());
        let script = Arc::new(script);
        let accept = {
            let (observations, shared) = (observations.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("script-{}", addr.port()))
                .spawn(move || accept_loop(listener, observations, shared, script))
                .expect("spawn the accept thread")
        };
        ScriptServer {
            addr,
            observations,
            shared,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn observations(&self) -> &Arc<Observations> {
        &self.observations
    }

    pub fn snapshot(&self) -> Observed {
        self.observations.snapshot()
    }

    /// Blocks until `predicate` holds over the observations (true) or
    /// `timeout` passes (false).
    pub fn wait_for(&self, predicate: impl FnMut(&Observed) -> bool, timeout: Duration) -> bool {
        self.observations.wait_for(predicate, timeout)
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        {
            let _guard = self
                .shared
                .stop_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.shared.stopping.store(true, Ordering::SeqCst);
            self.shared.stopped.notify_all();
        }
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for peer in self
            .shared
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            let _ = peer.1.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self
            .shared
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    observations: Arc<Observations>,
    shared: Arc<Shared>,
    script: Arc<dyn Fn(Peer) + Send + Sync>,
) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        observations.record(|o| o.accepted.push(Instant::now()));
        let index = shared.connections.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            shared
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(index, clone);
        }
        let peer = Peer {
            stream,
            index,
            observations: observations.clone(),
            shared: shared.clone(),
            buffered: Vec::new(),
        };
        let script = script.clone();
        let thread = std::thread::spawn(move || {
            let (observations, shared) = (peer.observations.clone(), peer.shared.clone());
            script(peer);
            shared
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&index);
            observations.record(|o| o.disconnects += 1);
        });
        let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
        // Join the finished ones as we go: a long fault loop makes thousands.
        let (finished, running): (Vec<_>, Vec<_>) =
            threads.drain(..).partition(|t| t.is_finished());
        *threads = running;
        threads.push(thread);
        drop(threads);
        for thread in finished {
            let _ = thread.join();
        }
    }
}

/// One connection, as a script sees it. Dropping it closes the socket
/// (a FIN, or an RST after [`reset`](Self::reset)).
pub struct Peer {
    pub stream: TcpStream,
    /// 0 for the first connection the server accepted, 1 for the next…
    pub index: usize,
    observations: Arc<Observations>,
    shared: Arc<Shared>,
    /// Bytes read past the request head (the client's first frames).
    buffered: Vec<u8>,
}

impl Peer {
    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Reads the HTTP request head and records it as a handshake. None if
    /// the client went away first.
    pub fn read_request(&mut self) -> Option<Handshake> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1024];
        let end = loop {
            if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if head.len() > MAX_REQUEST {
                return None;
            }
            match self.stream.read(&mut byte) {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&byte[..n]),
            }
        };
        self.buffered = head.split_off(end);
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let handshake = Handshake {
            path,
            headers,
            at: Instant::now(),
        };
        self.observations
            .record(|o| o.handshakes.push(handshake.clone()));
        Some(handshake)
    }

    /// The `101 Switching Protocols` answer to `request`.
    pub fn upgrade_response(request: &Handshake) -> String {
        let key = request.header("sec-websocket-key").unwrap_or("");
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
    }

    /// Reads the request and completes the handshake: the WebSocket is open.
    pub fn upgrade(&mut self) -> bool {
        match self.read_request() {
            Some(request) => self.write(Self::upgrade_response(&request).as_bytes()),
            None => false,
        }
    }

    /// Writes all of `bytes`; false if the connection is gone.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .is_ok()
    }

    /// Writes one frame as built (a server's frames are unmasked unless the
    /// test sets a mask on purpose).
    pub fn send_frame(&mut self, frame: Frame) -> bool {
        let mut bytes = Vec::with_capacity(frame.len());
        frame
            .format(&mut bytes)
            .expect("a frame formats into a Vec");
        self.write(&bytes)
    }

    /// A complete text message in one frame.
    pub fn send_text(&mut self, text: &str) -> bool {
        self.send_frame(Frame::message(
            text.as_bytes().to_vec(),
            OpCode::Data(Data::Text),
            true,
        ))
    }

    /// Waits `duration`, or less if the server stops (then false).
    pub fn pause(&self, duration: Duration) -> bool {
        let guard = self
            .shared
            .stop_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let _ = self
            .shared
            .stopped
            .wait_timeout_while(guard, duration, |_| !self.stopping())
            .unwrap_or_else(|p| p.into_inner());
        !self.stopping()
    }

    /// Keeps the connection open without reading from it until the server
    /// stops: what the client sends piles up in the socket buffers.
    pub fn hold_without_reading(&self) {
        while self.pause(Duration::from_secs(3600)) {}
    }

    /// Reads the client's frames until it closes the connection or the
    /// server stops, recording messages and close frames.
    /// A close frame is answered, as a well-behaved server does, so the
    /// client's close handshake completes at once instead of timing out.
    pub fn hold(&mut self) {
        while let Some((header, payload)) = self.next_frame() {
            if matches!(header.opcode, OpCode::Control(Control::Close)) {
                let code = &payload[..payload.len().min(2)];
                self.send_frame(raw_frame(OpCode::Control(Control::Close), true, code));
                return;
            }
        }
    }

    /// Reads the client's frames (recording them) until its close frame or
    /// the end of the connection, and answers nothing: for a server that
    /// closed first, the client's close frame is the reply.
    pub fn read_until_close(&mut self) {
        while let Some((header, _)) = self.next_frame() {
            if matches!(header.opcode, OpCode::Control(Control::Close)) {
                return;
            }
        }
    }

    /// Reads the client's frames (recording them) until a text or binary
    /// message arrives, and returns it; None if the connection ends first.
    pub fn receive(&mut self) -> Option<Message> {
        loop {
            let (header, payload) = self.next_frame()?;
            match header.opcode {
                OpCode::Data(Data::Text) => {
                    return Some(Message::text(
                        String::from_utf8_lossy(&payload).into_owned(),
                    ));
                }
                OpCode::Data(Data::Binary) => return Some(Message::binary(payload)),
                _ => {}
            }
        }
    }

    /// The next frame from the client, unmasked and recorded.
    fn next_frame(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((header, payload)) = parse_client_frame(&mut self.buffered) {
                self.record_frame(&header, &payload);
                return Some((header, payload));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffered.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    fn record_frame(&self, header: &FrameHeader, payload: &[u8]) {
        match header.opcode {
            OpCode::Data(Data::Text) => self.observations.record(|o| {
                o.messages
                    .push(Message::text(String::from_utf8_lossy(payload).into_owned()))
            }),
            OpCode::Data(Data::Binary) => self
                .observations
                .record(|o| o.messages.push(Message::binary(payload.to_vec()))),
            OpCode::Control(Control::Close) => {
                let close = if payload.len() >= 2 {
                    CloseReceived {
                        code: u16::from_be_bytes([payload[0], payload[1]]),
                        reason: String::from_utf8_lossy(&payload[2..]).into_owned(),
                    }
                } else {
                    CloseReceived {
                        code: 1005,
                        reason: String::new(),
                    }
                };
                self.observations.record(|o| o.closes.push(close));
            }
            OpCode::Control(Control::Ping) => self.observations.record(|o| o.pings += 1),
            _ => {}
        }
    }

    /// Relays this connection to `addr` byte for byte (both ways, until
    /// either side closes): the script hands over to a real server.
    pub fn relay_to(mut self, addr: SocketAddr) {
        let Ok(mut upstream) = TcpStream::connect(addr) else {
            return;
        };
        if upstream.write_all(&self.buffered).is_err() {
            return;
        }
        let (Ok(mut from_upstream), Ok(mut to_client)) =
            (upstream.try_clone(), self.stream.try_clone())
        else {
            return;
        };
        let down = std::thread::spawn(move || {
            let _ = std::io::copy(&mut from_upstream, &mut to_client);
            let _ = to_client.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut self.stream, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Both);
        let _ = down.join();
    }

    /// Ends the connection with a TCP reset (SO_LINGER 0), not a FIN.
    pub fn reset(self) {
        set_linger_zero(&self.stream);
        drop(self);
    }

    /// Sends a FIN (no close frame) and reads until the client closes too.
    pub fn finish(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.hold();
    }
}

/// One complete client frame from the front of `buffer` (unmasked), if
/// there is one.
fn parse_client_frame(buffer: &mut Vec<u8>) -> Option<(FrameHeader, Vec<u8>)> {
    let mut cursor = Cursor::new(&buffer[..]);
    let (header, length) = FrameHeader::parse(&mut cursor).ok()??;
    let start = cursor.position() as usize;
    let end = start + usize::try_from(length).ok()?;
    if buffer.len() < end {
        return None;
    }
    let mut payload = buffer[start..end].to_vec();
    if let Some(mask) = header.mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    buffer.drain(..end);
    Some((header, payload))
}

/// Makes the coming close of `stream` send an RST instead of a FIN.
pub fn set_linger_zero(stream: &impl AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor (the caller keeps it open) and a
    // pointer to a `linger` of the size passed.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        result,
        0,
        "setsockopt(SO_LINGER): {}",
        std::io::Error::last_os_error()
    );
}

/// A frame with any header the test wants: reserved opcodes and bits,
/// masks, fragments.
pub fn raw_frame(opcode: OpCode, is_final: bool, payload: &[u8]) -> Frame {
    let header = FrameHeader {
        is_final,
        opcode,
        ..FrameHeader::default()
    };
    Frame::from_payload(header, payload.to_vec().into())
}
