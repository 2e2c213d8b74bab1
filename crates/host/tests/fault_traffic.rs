//! Fault injection, traffic: a 50 MiB message (accepted under a raised Max
//! Message Size, closed with 1009 under the default), messages cut into
//! 1-byte frames, a server that stops reading while the controller keeps
//! sending, and frames no server may send (invalid UTF-8, masked,
//! reserved opcodes and bits). The million-message flood, which watches
//! memory, is in `fault_leaks.rs`.
//!
//! Each test: the fault, the triggers in order, the status afterwards,
//! recovery, then `support::assert_invariants`. No test sleeps.

mod support;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::frame::Frame;
use async_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use serde_json::json;
use support::{
    EchoServer, Recorder, ScriptServer, TIMEOUT, assert_invariants, assert_last_error,
    connect_instance, disconnected, ending, established, fault_instance, fault_properties,
    one_connection, raw_frame, status,
};
use wsio::Trigger;
use wsio::{ActionError, Instance, SEND_BACKLOG, SEND_BACKLOG_BYTES};

const MIB: usize = 1024 * 1024;

/// 50 MiB of text with a pattern, so a message cut or spliced shows.
fn big_text() -> String {
    (0..50 * MIB)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

#[test]
fn a_50_mib_message_arrives_whole_when_max_message_size_is_64_mib() {
    let server = EchoServer::start();
    let (rec, instance) = fault_instance(server.port(), json!({"Max Message Size": 64 * MIB}));
    rec.expect("WebSocket Established", established(1));
    let text = big_text();
    assert_eq!(server.send_to_all(text.clone()), 1);
    rec.expect_within("the 50 MiB message", 3 * TIMEOUT, |e| e.message_count == 1);
    let e = rec.snapshot();
    assert_eq!(e.messages[0].len(), 50 * MIB);
    assert!(
        e.messages[0] == text.as_bytes(),
        "the message arrived altered"
    );
    assert_eq!(
        e.triggers,
        [
            Trigger::Connected,
            Trigger::Established,
            Trigger::MessagesReceived
        ]
    );
    rec.expect("Bytes In", |e| {
        status(e, "BytesIn") == (50 * MIB).to_string()
    });
    // Log Comms shows the first 200 bytes, not 50 MiB.
    assert!(
        e.logs.iter().all(|(_, line)| line.len() < 1000),
        "a log line carries the whole message"
    );
    drop(e);
    assert_invariants(&rec, instance, Some(1));
}

#[test]
fn a_50_mib_message_over_the_default_16_mib_closes_with_1009_and_reconnects() {
    let server = EchoServer::start();
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("WebSocket Established", established(1));
    assert_eq!(server.send_to_all(big_text()), 1);
    rec.expect("Disconnected", disconnected(1));
    let e = rec.snapshot();
    let reason = ending(&e, &one_connection(0));
    assert!(
        reason.ends_with("larger than Max Message Size (16777216 bytes); closed with 1009"),
        "{reason}"
    );
    assert_eq!(
        status(&e, "LastClose"),
        "1009 message too big (closed by client)"
    );
    assert_last_error(&e, &reason, "WebSocket");
    // The server is told why.
    assert!(
        server.wait_for(|o| o.closes.iter().any(|c| c.code == 1009), TIMEOUT),
        "{:?}",
        server.snapshot().closes
    );
    rec.expect("re-established", established(2));
    instance.send_message("small again").unwrap();
    rec.expect("the echo", |e| e.message_count == 1);
    assert_invariants(&rec, instance, Some(1));
}

/// `payload` as a message cut into 1-byte frames: the first with `opcode`,
/// the rest continuations; a ping goes in between after the third byte
/// (control frames may come between fragments).
fn one_byte_frames(opcode: Data, payload: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    for (i, byte) in payload.iter().enumerate() {
        let code = if i == 0 { opcode } else { Data::Continue };
        frames.push(raw_frame(
            OpCode::Data(code),
            i + 1 == payload.len(),
            &[*byte],
        ));
        if i == 2 {
            frames.push(Frame::ping(b"between fragments".to_vec()));
        }
    }
    frames
}

#[test]
fn messages_cut_into_1_byte_frames_arrive_as_one_message_each() {
    // Multi-byte characters are split across frames too.
    let text = "fragmented héllo, ünïcødé ✓";
    let long: String = "0123456789".repeat(1000);
    let binary = [0x00u8, 0xff, 0x7e, 0x80];
    let server = ScriptServer::start(move |mut peer| {
        if !peer.upgrade() {
            return;
        }
        let mut frames = one_byte_frames(Data::Text, text.as_bytes());
        frames.extend(one_byte_frames(Data::Binary, &binary));
        frames.extend(one_byte_frames(Data::Text, long.as_bytes()));
        for frame in frames {
            if !peer.send_frame(frame) {
                return;
            }
        }
        if peer.send_text("end") {
            peer.hold();
        }
    });
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("four messages", |e| e.message_count == 4);
    let e = rec.snapshot();
    assert_eq!(e.texts()[0], text);
    assert_eq!(e.texts()[1], "00ff7e80", "binary is shown as hex");
    assert_eq!(e.texts()[2], "0123456789".repeat(1000));
    assert_eq!(e.texts()[3], "end");
    // The pings between fragments were answered.
    assert!(server.wait_for(|o| o.connections() == 1, TIMEOUT));
    assert_eq!(e.count(Trigger::Disconnected), 0);
    assert_invariants(&rec, instance, Some(4));
}

/// Opens once (for the test's go-ahead to a server thread).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Whether it opened within `limit`.
    fn wait(&self, limit: Duration) -> bool {
        let guard = self.open.lock().unwrap();
        *self
            .opened
            .wait_timeout_while(guard, limit, |open| !*open)
            .unwrap()
            .0
    }
}

/// Opens the gate when dropped: a test that fails before opening it must
/// not leave a server thread waiting on it.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A server that reads nothing until `reading` opens, and an instance
/// established with it. The gate opens when the returned `OpenOnDrop` is
/// dropped, before the server (declared first) is.
fn connect_to_a_server_that_waits_to_read()
-> (ScriptServer, Arc<Gate>, OpenOnDrop, Arc<Recorder>, Instance) {
    let reading = Arc::new(Gate::default());
    let gate = reading.clone();
    let server = ScriptServer::start(move |mut peer| {
        if peer.upgrade() && gate.wait(6 * TIMEOUT) {
            peer.hold();
        }
    });
    let open = OpenOnDrop(reading.clone());
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("WebSocket Established", established(1));
    (server, reading, open, rec, instance)
}

#[test]
fn a_server_that_reads_nothing_never_blocks_send_message_and_the_backlog_is_bounded() {
    // Dropped right to left: the gate opens before the server stops.
    let (server, reading, _open, rec, instance) = connect_to_a_server_that_waits_to_read();

    // The server reads nothing: the socket fills, then the module's
    // backlog. Every call returns (the loop goes on); past the backlog the
    // module refuses, with an error.
    let payload = "x".repeat(1000);
    let message = |n: usize| format!("{n:07} {payload}");
    let most = 20 * SEND_BACKLOG;
    let mut accepted = 0;
    let mut refusal = None;
    while accepted < most {
        match instance.send_message(message(accepted)) {
            Ok(()) => accepted += 1,
            Err(error @ ActionError::Backlog { .. }) => {
                refusal = Some(error);
                break;
            }
            Err(other) => panic!("unexpected error after {accepted} sends: {other}"),
        }
    }
    let refusal = refusal.unwrap_or_else(|| {
        panic!(
            "{accepted} messages accepted for a server that reads nothing: the backlog is unbounded"
        )
    });
    assert!(refusal.to_string().contains("limit 10000"), "{refusal}");
    rec.expect("the refusal in the log", |e| {
        e.logs
            .iter()
            .any(|(_, line)| line.starts_with("Send Message refused: "))
    });
    // Once the module has taken in everything it accepted, the server still
    // reads nothing. The kernel may yet take in more as it grows its socket
    // buffers (receive autotuning), so a few more sends can be accepted;
    // but refusals must come back long before `most`: the backlog stays
    // bounded whatever the kernel does.
    rec.expect("every accepted message handed on", |e| {
        status(e, "MessagesOut") == accepted.to_string()
    });
    let mut refused_again = false;
    while accepted < most {
        match instance.send_message(message(accepted)) {
            Ok(()) => accepted += 1,
            Err(ActionError::Backlog { .. }) => {
                refused_again = true;
                break;
            }
            Err(other) => panic!("unexpected error after {accepted} sends: {other}"),
        }
    }
    assert!(
        refused_again,
        "{accepted} messages accepted for a server that reads nothing: the backlog is unbounded"
    );
    assert!(instance.is_established(), "a slow server is not an error");

    // The server reads again: everything accepted arrives, in order.
    reading.open();
    assert!(
        server.wait_for(|o| o.messages.len() == accepted, 3 * TIMEOUT),
        "the server got {} of {accepted}",
        server.snapshot().messages.len()
    );
    let texts = server.snapshot().texts();
    for (n, text) in texts.iter().enumerate() {
        assert_eq!(text, &message(n), "message {n}");
    }
    instance.send_message("after the backlog").unwrap();
    assert!(server.wait_for(|o| o.messages.len() == accepted + 1, TIMEOUT));
    assert_invariants(&rec, instance, Some(0));
}

#[test]
fn the_send_backlog_is_bounded_in_bytes_and_one_message_above_the_limit_still_goes() {
    // Dropped right to left: the gate opens before the server stops.
    let (server, reading, _open, rec, instance) = connect_to_a_server_that_waits_to_read();

    // With nothing waiting, one message larger than the byte limit is
    // accepted: the limit bounds a backlog, not a message.
    let big = "b".repeat(SEND_BACKLOG_BYTES + 1);
    instance.send_message(big.clone()).unwrap();
    // The server reads nothing: 64 KiB messages are refused long before
    // the 10,000-message limit, once the waiting bytes reach 16 MiB.
    let payload = "z".repeat(64 * 1024);
    let message = |n: usize| format!("{n:07} {payload}");
    let mut accepted = 0;
    let refusal = loop {
        match instance.send_message(message(accepted)) {
            Ok(()) => accepted += 1,
            Err(error @ ActionError::Backlog { .. }) => break error,
            Err(other) => panic!("unexpected error after {accepted} sends: {other}"),
        }
        assert!(
            accepted < SEND_BACKLOG / 10,
            "{accepted} messages of 64 KiB accepted for a server that reads nothing: the bytes are not bounded"
        );
    };
    assert!(
        refusal.to_string().contains("or 16777216 bytes"),
        "{refusal}"
    );
    rec.expect("every accepted message handed on", |e| {
        status(e, "MessagesOut") == (accepted + 1).to_string()
    });
    assert!(instance.is_established(), "a slow server is not an error");

    // The server reads again: everything accepted arrives, whole and in
    // order.
    reading.open();
    assert!(
        server.wait_for(|o| o.messages.len() == accepted + 1, 3 * TIMEOUT),
        "the server got {} of {}",
        server.snapshot().messages.len(),
        accepted + 1
    );
    let texts = server.snapshot().texts();
    assert!(texts[0] == big, "the large message arrived changed");
    for (n, text) in texts[1..].iter().enumerate() {
        assert!(*text == message(n), "message {n} arrived changed");
    }
    instance.send_message("after the backlog").unwrap();
    assert!(server.wait_for(|o| o.messages.len() == accepted + 2, TIMEOUT));
    assert_invariants(&rec, instance, Some(0));
}

/// Sends numbered 1 KB messages of `fill` until Send Message refuses for
/// the backlog; returns how many were accepted.
fn fill_the_backlog(instance: &Instance, fill: char) -> usize {
    let payload = fill.to_string().repeat(1000);
    let mut accepted = 0;
    loop {
        match instance.send_message(format!("{accepted:07} {payload}")) {
            Ok(()) => accepted += 1,
            Err(ActionError::Backlog { .. }) => return accepted,
            Err(other) => panic!("unexpected error after {accepted} sends: {other}"),
        }
        assert!(accepted < 20 * SEND_BACKLOG, "the backlog is unbounded");
    }
}

#[test]
fn a_half_open_link_with_a_backlog_says_how_many_messages_were_not_sent() {
    // The server neither reads nor answers: the client's keep-alive ping
    // waits behind its own backlog and the pong timeout ends the link
    // without a close handshake.
    let server = ScriptServer::after_upgrade(|peer| peer.hold_without_reading());
    let (rec, instance) = fault_instance(
        server.port(),
        json!({"Auto-Reconnect": false, "Keep Alive Interval": 1, "Pong Timeout": 1}),
    );
    rec.expect("WebSocket Established", established(1));
    let accepted = fill_the_backlog(&instance, 'h');
    rec.expect_within("the pong timeout", 3 * TIMEOUT, disconnected(1));
    let e = rec.snapshot();
    let reason = &e.reasons.last().unwrap().1;
    let (dead, unsent) = reason
        .split_once("; ")
        .unwrap_or_else(|| panic!("no count of unsent messages in {reason:?}"));
    assert!(dead.contains("no answer to keep-alive ping"), "{reason}");
    let count: usize = unsent
        .strip_suffix(" queued message(s) were not sent")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of unsent messages in {reason:?}"));
    // The outbox held most of the backlog; the kernel and the WebSocket
    // took the rest before the link stalled.
    assert!(
        count > 0 && count <= accepted,
        "{count} unsent of {accepted} accepted"
    );
    assert!(
        e.logs.iter().any(|(_, line)| line.contains(unsent)),
        "the count is not in the log"
    );
    assert_invariants(&rec, instance, None);
}

#[test]
fn a_server_that_closes_on_a_backlog_ends_the_connection_saying_what_was_not_sent() {
    let reading = Arc::new(Gate::default());
    let gate = reading.clone();
    let server = ScriptServer::start(move |mut peer| {
        if !peer.upgrade() {
            return;
        }
        if peer.index == 0 {
            // Reads nothing until the client has a backlog, then says it
            // is going away and reads what the client still writes.
            if !gate.wait(6 * TIMEOUT) {
                return;
            }
            let mut payload = 1001u16.to_be_bytes().to_vec();
            payload.extend_from_slice(b"going away");
            if peer.send_frame(raw_frame(OpCode::Control(Control::Close), true, &payload)) {
                peer.read_until_close();
            }
            return;
        }
        peer.hold();
    });
    let _open = OpenOnDrop(reading.clone());
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("WebSocket Established", established(1));
    let accepted = fill_the_backlog(&instance, 'y');
    rec.expect("every accepted message handed on", |e| {
        status(e, "MessagesOut") == accepted.to_string()
    });

    // The server closes while thousands of messages wait for it: the
    // Disconnected reason is the server's close and says how many of them
    // were never sent, so none is lost silently.
    reading.open();
    rec.expect("Disconnected", disconnected(1));
    let e = rec.snapshot();
    let reason = e.reasons_of(Trigger::Disconnected).remove(0);
    assert!(
        reason.starts_with("closed by server: 1001 going away; "),
        "{reason}"
    );
    let unsent: usize = reason
        .rsplit("; ")
        .next()
        .and_then(|note| note.strip_suffix(" queued message(s) were not sent"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of unsent messages in {reason:?}"));
    let received = server.snapshot().messages.len();
    assert!(unsent > 0, "{reason}");
    assert!(
        received + unsent <= accepted,
        "the server got {received} and {unsent} were not sent, of {accepted}"
    );
    assert_eq!(
        status(&e, "LastClose"),
        "1001 going away (closed by server)"
    );
    // The backlog is free again: the next connection sends at once.
    rec.expect("re-established", established(2));
    instance.send_message("after the close").unwrap();
    assert!(server.wait_for(
        |o| o.texts().iter().any(|t| t == "after the close"),
        TIMEOUT
    ));
    assert_invariants(&rec, instance, Some(0));
}

/// A server that sends "before", then `frames` (a protocol violation),
/// then reads until the client is gone; its next connections are healthy
/// ("welcome back").
fn violation_story(name: &str, frames: Vec<Frame>, reason: &str) {
    let server = ScriptServer::start(move |mut peer| {
        if !peer.upgrade() {
            return;
        }
        if peer.index > 0 {
            if peer.send_text("welcome back") {
                peer.hold();
            }
            return;
        }
        if !peer.send_text("before") {
            return;
        }
        for frame in frames.clone() {
            if !peer.send_frame(frame) {
                return;
            }
        }
        peer.hold();
    });
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect(&format!("{name}: Disconnected"), disconnected(1));
    let e = rec.snapshot();
    assert_eq!(e.triggers, one_connection(1), "{name}");
    assert_eq!(e.texts(), ["before"], "{name}");
    let shown = e.reasons_of(Trigger::Disconnected).remove(0);
    assert_eq!(shown, reason, "{name}");
    assert_eq!(
        status(&e, "LastError"),
        format!("{reason} (stage: WebSocket)"),
        "{name}"
    );
    assert!(
        status(&e, "ConnectionStatus").contains(reason),
        "{name}: {}",
        status(&e, "ConnectionStatus")
    );
    // RFC 6455 7.1.7: the client says why it fails the connection.
    let (code, close) = if reason.contains("UTF-8") {
        (1007, "1007 invalid UTF-8 (closed by client)")
    } else {
        (1002, "1002 protocol error (closed by client)")
    };
    assert_eq!(status(&e, "LastClose"), close, "{name}");
    rec.expect(&format!("{name}: re-established"), established(2));
    rec.expect(&format!("{name}: the healthy greeting"), |e| {
        e.message_count == 2
    });
    let closes = server.snapshot().closes;
    assert!(
        closes.iter().any(|c| c.code == code),
        "{name}: the server saw close frames {closes:?}, not {code}"
    );
    assert_invariants(&rec, instance, Some(2));
}

#[test]
fn invalid_utf8_masked_frames_and_reserved_opcodes_or_bits_are_protocol_errors() {
    let masked = {
        let mut frame = raw_frame(OpCode::Data(Data::Text), true, b"masked");
        frame.header_mut().mask = Some([1, 2, 3, 4]);
        frame
    };
    let rsv1 = {
        let mut frame = raw_frame(OpCode::Data(Data::Text), true, b"compressed?");
        frame.header_mut().rsv1 = true;
        frame
    };
    let stories = [
        (
            "invalid UTF-8",
            vec![raw_frame(OpCode::Data(Data::Text), true, b"ok \xff\xfe")],
            "the server sent a text message that is not valid UTF-8",
        ),
        (
            "invalid UTF-8 across fragments",
            vec![
                raw_frame(OpCode::Data(Data::Text), false, b"ok \xc3"),
                raw_frame(OpCode::Data(Data::Continue), true, b"("),
            ],
            "the server sent a text message that is not valid UTF-8",
        ),
        (
            "masked",
            vec![masked],
            "WebSocket protocol error from the server: Received a masked frame from server",
        ),
        (
            "reserved data opcode 3",
            vec![raw_frame(OpCode::Data(Data::Reserved(3)), true, b"?")],
            "WebSocket protocol error from the server: Encountered invalid opcode: 3",
        ),
        (
            "reserved control opcode 11",
            vec![raw_frame(OpCode::Control(Control::Reserved(11)), true, b"")],
            "WebSocket protocol error from the server: Encountered invalid opcode: 11",
        ),
        (
            "reserved bit RSV1",
            vec![rsv1],
            "WebSocket protocol error from the server: Reserved bits are non-zero",
        ),
    ];
    std::thread::scope(|scope| {
        for (name, frames, reason) in stories {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn_scoped(scope, move || violation_story(name, frames, reason))
                .expect("spawn a story");
        }
    });
}

#[test]
fn a_ping_storm_between_messages_loses_and_merges_nothing() {
    // Not a violation: pings are answered and messages still come one by one.
    let server = ScriptServer::start(|mut peer| {
        if !peer.upgrade() {
            return;
        }
        for n in 0..500 {
            if !peer.send_frame(Frame::ping(vec![])) || !peer.send_text(&format!("m{n}")) {
                return;
            }
        }
        peer.hold();
    });
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("500 messages", |e| e.message_count == 500);
    let expected: Vec<String> = (0..500).map(|n| format!("m{n}")).collect();
    assert_eq!(rec.read(|e| e.texts()), expected);
    assert_invariants(&rec, instance, Some(500));
}
