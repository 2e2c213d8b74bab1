//! Fault injection, server side: the server process killed mid-stream, a
//! TCP reset, a FIN without a close frame, closes with 1000/1001/1011/4000,
//! a close frame not followed by the end of TCP,
//! handshakes answered with redirects, refusals, plain HTTP or garbage, a
//! handshake answer trickled a byte a second, servers that close without
//! answering (a refused subprotocol), WS aimed at a TLS port and WSS at a
//! plain one. (The long loops that watch
//! memory and descriptors are in `fault_leaks.rs`, alone in their process.)
//!
//! Each test is one story: the fault, the triggers in order, the status
//! variables afterwards, recovery once the fault ends, and then the
//! invariants every fault must keep (`support::assert_invariants`). No
//! test sleeps: waits are condition variables with timeouts.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::coding::{Control, OpCode};
use serde_json::json;
use support::{
    CloseServer, Peer, QUIET, Recorder, SLACK, ScriptServer, ServerProcess, TIMEOUT,
    assert_invariants, assert_last_error, connect_instance, demo_path, disconnected, ending,
    established, expect_handshake_timeout, fault_instance, fault_properties, free_port,
    one_connection, raw_frame, status, with,
};
use wsio::Trigger;
use wsio::testing::CLOSE_TIMEOUT;

#[test]
fn a_server_process_killed_mid_stream_is_a_lost_link_and_its_restart_is_found_within_the_backoff() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut server = ServerProcess::start(addr);
    let (rec, instance) = fault_instance(addr.port(), json!({"Path": demo_path("demo")}));
    rec.expect("WebSocket Established", established(1));

    // Mid-stream: thousands of messages on their way both ways.
    for n in 0..2000 {
        instance.send_message(format!("m{n}")).unwrap();
    }
    rec.expect("the first echoes", |e| e.message_count >= 50);
    server.kill();
    rec.expect("Disconnected", disconnected(1));
    rec.expect("a reconnect scheduled", |e| {
        e.status_has("ConnectionStatus", "Reconnecting in")
    });
    // While it is down, attempts are refused and retried.
    rec.expect("a refused attempt", |e| {
        e.status_has("LastError", "Connection refused")
    });
    let e = rec.snapshot();
    println!(
        "killed: {:?}; {}",
        e.reasons_of(Trigger::Disconnected),
        status(&e, "LastError")
    );
    // What arrived is a prefix of what was sent, in order, nothing merged.
    let echoed = e.message_count;
    let expected: Vec<String> = (0..echoed).map(|n| format!("m{n}")).collect();
    assert_eq!(e.texts(), expected);
    assert_eq!(
        e.triggers[..2],
        [Trigger::Connected, Trigger::Established],
        "{}",
        e.describe()
    );
    assert_eq!(e.triggers.last(), Some(&Trigger::Disconnected));
    assert_eq!(
        status(&e, "LastClose"),
        "1006 (connection lost without a close frame)"
    );
    assert!(
        status(&e, "LastError").ends_with("(stage: TCP)"),
        "{}",
        status(&e, "LastError")
    );

    // The server comes back on the same port: with Reconnect Max Delay
    // 1 s the next attempt finds it within 1 s.
    let _server = ServerProcess::start(addr);
    rec.expect_within(
        "re-established within the backoff bound",
        Duration::from_secs(1) + SLACK,
        established(2),
    );
    instance.send_message("after the restart").unwrap();
    rec.expect("the echo after the restart", |e| {
        e.message_count == echoed + 1
    });
    assert_eq!(
        rec.read(|e| e.texts().last().cloned()).as_deref(),
        Some("after the restart")
    );
    assert!(rec.read(|e| status(e, "Reconnects").parse::<u64>().unwrap() >= 1));
    assert_invariants(&rec, instance, Some(echoed + 1));
}

/// The first connection runs `fault`; every later one is a healthy server
/// that says "welcome back" and then echoes nothing, reading until closed.
fn first_connection_then_healthy(fault: impl Fn(Peer) + Send + Sync + 'static) -> ScriptServer {
    ScriptServer::start(move |mut peer| {
        if peer.index == 0 {
            fault(peer);
        } else if peer.upgrade() && peer.send_text("welcome back") {
            peer.hold();
        }
    })
}

#[test]
fn a_tcp_reset_fires_disconnected_once_with_1006_and_auto_reconnect_recovers() {
    let server = first_connection_then_healthy(|mut peer| {
        if peer.upgrade() && peer.send_text("one") && peer.send_text("two") {
            // Reset only once the client has read both (a reset discards
            // what the client has not read yet).
            let _ = peer.receive();
            peer.reset();
        }
    });
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("both messages", |e| e.message_count == 2);
    instance.send_message("got them").unwrap();
    rec.expect("Disconnected", disconnected(1));
    let e = rec.snapshot();
    let reason = ending(&e, &one_connection(2));
    println!("TCP reset: {reason}");
    assert!(
        reason.starts_with("connection lost: ") && reason.contains("reset"),
        "{reason}"
    );
    assert_eq!(
        status(&e, "LastClose"),
        "1006 (connection lost without a close frame)"
    );
    assert_last_error(&e, &reason, "TCP");

    rec.expect("re-established", established(2));
    rec.expect("the healthy server's greeting", |e| e.message_count == 3);
    assert_eq!(rec.read(|e| e.texts()), ["one", "two", "welcome back"]);
    assert_invariants(&rec, instance, Some(3));
}

#[test]
fn a_fin_without_a_close_frame_delivers_what_came_before_and_is_a_lost_link() {
    let server = first_connection_then_healthy(|mut peer| {
        if peer.upgrade() && peer.send_text("one") && peer.send_text("two") {
            peer.finish();
        }
    });
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("Disconnected", disconnected(1));
    let e = rec.snapshot();
    // The FIN comes after the data: both messages arrive first.
    let reason = ending(&e, &one_connection(2));
    assert_eq!(e.texts(), ["one", "two"]);
    println!("FIN without a close frame: {reason}");
    assert!(reason.contains("without"), "{reason}");
    assert_eq!(
        status(&e, "LastClose"),
        "1006 (connection lost without a close frame)"
    );
    assert!(
        status(&e, "ConnectionStatus").contains(&reason),
        "{}",
        e.describe()
    );

    rec.expect("re-established", established(2));
    rec.expect("the healthy server's greeting", |e| e.message_count == 3);
    assert_invariants(&rec, instance, Some(3));
}

#[test]
fn every_server_close_code_is_shown_with_its_reason_and_auto_reconnect_follows() {
    for (code, reason) in [
        (1000, "bye"),
        (1001, "going away"),
        (1011, "internal error"),
        (4000, "maintenance"),
    ] {
        let server = CloseServer::after_messages(2, code, reason);
        let rec = Recorder::new();
        let instance = connect_instance(&rec, fault_properties(server.port()));
        rec.expect("Disconnected", disconnected(1));
        let e = rec.snapshot();
        assert_eq!(
            e.triggers[..5],
            one_connection(2),
            "{code}: {}",
            e.describe()
        );
        assert_eq!(e.texts()[..2], ["msg-000001", "msg-000002"]);
        let shown = format!("closed by server: {code} {reason}");
        assert_eq!(e.reasons_of(Trigger::Disconnected)[0], shown);
        assert_eq!(
            status(&e, "LastClose"),
            format!("{code} {reason} (closed by server)")
        );
        assert!(
            status(&e, "ConnectionStatus").ends_with(&format!("Disconnected: {shown}")),
            "{code}: {}",
            status(&e, "ConnectionStatus")
        );
        // An orderly close is not an error.
        assert_eq!(status(&e, "LastError"), "", "{code}");
        // The client completed the close handshake with the same code.
        assert!(
            server.wait_for(|o| o.closes.iter().any(|c| c.code == code), TIMEOUT),
            "{code}: {:?}",
            server.snapshot().closes
        );
        // Auto-Reconnect reconnects after any close the client did not ask
        // for (and this server closes every connection the same way).
        rec.expect("re-established, closed again", disconnected(2));
        assert_invariants(&rec, instance, None);
        // Every connection brought its two messages, none lost or merged.
        let e = rec.snapshot();
        let mut per_connection = Vec::new();
        for t in &e.triggers {
            match t {
                Trigger::Established => per_connection.push(0),
                Trigger::MessagesReceived => *per_connection.last_mut().unwrap() += 1,
                _ => {}
            }
        }
        let (last, completed) = per_connection.split_last().unwrap();
        assert!(
            completed.iter().all(|n| *n == 2),
            "{code}: {per_connection:?}"
        );
        assert!(*last <= 2, "{code}: {per_connection:?}");
    }
}

/// One way a server can answer the upgrade request instead of `101`.
struct BadAnswer {
    name: &'static str,
    answer: &'static [u8],
    /// Disconnected's reason.
    reason: &'static str,
    stage: &'static str,
    /// Retrying cannot help: Gave Up at once, no retry.
    fatal: bool,
}

const fn refusal(
    name: &'static str,
    answer: &'static [u8],
    reason: &'static str,
    fatal: bool,
) -> BadAnswer {
    BadAnswer {
        name,
        answer,
        reason,
        stage: "HTTP upgrade",
        fatal,
    }
}

const BAD_ANSWERS: [BadAnswer; 8] = [
    refusal(
        "301",
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: ws://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
        "HTTP upgrade refused: 301 Moved Permanently",
        false,
    ),
    refusal(
        "401",
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n",
        "HTTP upgrade refused: 401 Unauthorized",
        true,
    ),
    refusal(
        "403",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        "HTTP upgrade refused: 403 Forbidden",
        true,
    ),
    refusal(
        "404",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "HTTP upgrade refused: 404 Not Found",
        true,
    ),
    refusal(
        "500",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        "HTTP upgrade refused: 500 Internal Server Error",
        false,
    ),
    refusal(
        "503",
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
        "HTTP upgrade refused: 503 Service Unavailable",
        false,
    ),
    // A plain web server that knows nothing of WebSocket.
    refusal(
        "plain HTTP",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 35\r\n\r\n<html><body>It works!</body></html>",
        "HTTP upgrade refused: 200 OK",
        false,
    ),
    BadAnswer {
        name: "garbage",
        answer: b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\xff\xfe\x00garbage\r\n\r\n",
        reason: "WebSocket handshake failed: ",
        stage: "WebSocket",
        fatal: false,
    },
];

/// The server answers the upgrade with `bad.answer` (keeping the
/// connection open) until healed, then accepts.
fn answer_until_healed(bad: &'static BadAnswer, healed: Arc<AtomicBool>) -> ScriptServer {
    ScriptServer::start(move |mut peer| {
        let Some(request) = peer.read_request() else {
            return;
        };
        if healed.load(Ordering::SeqCst) {
            if peer.write(Peer::upgrade_response(&request).as_bytes()) {
                peer.hold();
            }
        } else if peer.write(bad.answer) {
            peer.hold();
        }
    })
}

fn bad_answer_story(bad: &'static BadAnswer) {
    let healed = Arc::new(AtomicBool::new(false));
    let server = answer_until_healed(bad, healed.clone());
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("Disconnected", disconnected(1));
    let what = bad.name;
    if bad.fatal {
        rec.expect("Gave Up", |e| e.count(Trigger::GaveUp) == 1);
        let e = rec.snapshot();
        assert_eq!(
            e.triggers,
            [Trigger::Connected, Trigger::Disconnected, Trigger::GaveUp],
            "{what}"
        );
        assert_eq!(status(&e, "NextRetry"), "gave up", "{what}");
        assert!(
            !server.wait_for(|o| o.connections() > 1, QUIET),
            "{what}: retried after a fatal refusal"
        );
    } else {
        assert!(
            server.wait_for(|o| o.connections() >= 2, Duration::from_secs(1) + SLACK),
            "{what}: not retried within the 1 s backoff"
        );
    }
    let e = rec.snapshot();
    assert_eq!(
        e.triggers[..2],
        [Trigger::Connected, Trigger::Disconnected],
        "{what}"
    );
    let reason = e.reasons_of(Trigger::Disconnected).remove(0);
    println!("{what}: {reason}");
    assert!(reason.starts_with(bad.reason), "{what}: {reason}");
    let last_error = format!("{reason} (stage: {})", bad.stage);
    assert!(
        e.status
            .iter()
            .any(|v| v.key == "LastError" && v.value == last_error),
        "{what}: LastError {last_error:?} never shown\n{}",
        e.describe()
    );
    assert_eq!(e.count(Trigger::Established), 0, "{what}");

    // The server is fixed: a retry (or, after Gave Up, Reset Reconnect)
    // gets through.
    healed.store(true, Ordering::SeqCst);
    if bad.fatal {
        instance
            .action("Reset Reconnect", &json!({}), &[] as &[&str])
            .unwrap();
    }
    rec.expect(&format!("{what}: established once healed"), established(1));
    assert_invariants(&rec, instance, Some(0));
}

#[test]
fn handshakes_answered_301_401_403_404_500_503_plain_http_or_garbage_fail_cleanly() {
    // The stories are independent: run them side by side.
    std::thread::scope(|scope| {
        for bad in &BAD_ANSWERS {
            std::thread::Builder::new()
                .name(bad.name.to_owned())
                .spawn_scoped(scope, move || bad_answer_story(bad))
                .expect("spawn a story");
        }
    });
}

#[test]
fn a_handshake_answer_trickled_a_byte_a_second_hits_the_connect_timeout() {
    let healed = Arc::new(AtomicBool::new(false));
    let slow = healed.clone();
    let server = ScriptServer::start(move |mut peer| {
        let Some(request) = peer.read_request() else {
            return;
        };
        let answer = Peer::upgrade_response(&request);
        if slow.load(Ordering::SeqCst) {
            if peer.write(answer.as_bytes()) {
                peer.hold();
            }
            return;
        }
        // Slow loris: one byte, then a second's pause, and so on.
        for byte in answer.as_bytes() {
            if !peer.write(&[*byte]) || !peer.pause(Duration::from_secs(1)) {
                return;
            }
        }
    });
    let rec = Recorder::new();
    let started = Instant::now();
    let instance = connect_instance(
        &rec,
        with(
            fault_properties(server.port()),
            json!({"Connect Timeout": 2}),
        ),
    );
    expect_handshake_timeout(&rec, started);
    // It keeps trying, at the backoff's pace.
    assert!(server.wait_for(|o| o.connections() >= 2, Duration::from_secs(1) + SLACK));

    healed.store(true, Ordering::SeqCst);
    rec.expect_within(
        "established once the server answers at full speed",
        Duration::from_secs(2) + Duration::from_secs(1) + SLACK + SLACK,
        established(1),
    );
    assert_invariants(&rec, instance, Some(0));
}

#[test]
fn a_server_that_sends_close_but_keeps_tcp_open_is_dropped_after_the_close_timeout() {
    // The first connection: one message, close 1000 "bye", then the
    // connection stays open: the server reads the client's answer and
    // then only waits for the client to end TCP (it never does itself).
    let server = first_connection_then_healthy(|mut peer| {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        if peer.upgrade()
            && peer.send_text("one")
            && peer.send_frame(raw_frame(OpCode::Control(Control::Close), true, &payload))
        {
            peer.read_until_close();
            // Returns at the client's FIN (or a second close, never sent).
            peer.read_until_close();
        }
    });
    let rec = Recorder::new();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect("the message", |e| e.message_count == 1);
    rec.expect_within(
        "Disconnected within the close timeout",
        CLOSE_TIMEOUT + SLACK,
        disconnected(1),
    );
    let e = rec.snapshot();
    ending(&e, &one_connection(1));
    // The close handshake completed: an orderly close by the server, not
    // an error; the log says why the client ended TCP itself.
    assert_eq!(
        e.reasons_of(Trigger::Disconnected),
        ["closed by server: 1000 bye"]
    );
    assert_eq!(status(&e, "LastClose"), "1000 bye (closed by server)");
    assert_eq!(status(&e, "LastError"), "");
    assert!(
        e.status
            .iter()
            .any(|v| v.key == "ConnectionStatus" && v.value == "Closing"),
        "{}",
        e.describe()
    );
    assert!(
        e.log_text().contains(
            "the server sent its close frame but did not close the connection within 5 s; the client closed it"
        ),
        "{}",
        e.describe()
    );
    assert!(
        e.log_text().contains("comms <- close 1000 \"bye\""),
        "{}",
        e.describe()
    );
    // The client answered the close and then closed the connection.
    assert!(
        server.wait_for(
            |o| o.closes.iter().any(|c| c.code == 1000) && o.disconnects >= 1,
            TIMEOUT
        ),
        "{:?}",
        server.snapshot()
    );
    // Auto-Reconnect follows, as after any server close.
    rec.expect("re-established", established(2));
    rec.expect("the healthy server's greeting", |e| e.message_count == 2);
    assert_eq!(rec.read(|e| e.texts()), ["one", "welcome back"]);
    assert_invariants(&rec, instance, Some(2));
}

/// The first ending of an instance with `more` properties (Auto-Reconnect
/// off) against 127.0.0.1:`port`: Disconnected's reason and Last Error.
fn first_ending_against(port: u16, more: serde_json::Value) -> (String, String) {
    let rec = Recorder::new();
    let properties = with(
        with(fault_properties(port), json!({"Auto-Reconnect": false})),
        more,
    );
    let _instance = connect_instance(&rec, properties);
    rec.expect("Disconnected", disconnected(1));
    rec.expect("Last Error", |e| !status(e, "LastError").is_empty());
    let e = rec.snapshot();
    (
        e.reasons_of(Trigger::Disconnected).remove(0),
        status(&e, "LastError"),
    )
}

const CHECK_PORT: &str =
    "check Port and Protocol (WS for a plain port, WSS for a TLS port) and Path";

#[test]
fn a_server_that_closes_before_answering_the_handshake_is_told_with_what_to_check() {
    let server = ScriptServer::start(|mut peer| {
        if peer.read_request().is_some() {
            drop(peer);
        }
    });
    let (reason, last_error) = first_ending_against(server.port(), json!({}));
    let expected = format!(
        "WebSocket handshake failed: the server closed the connection without answering; {CHECK_PORT}"
    );
    assert_eq!(reason, expected);
    assert_eq!(last_error, format!("{expected} (stage: WebSocket)"));
    assert!(!reason.contains("Handshake not finished"), "{reason}");
}

#[test]
fn a_server_that_refuses_the_subprotocol_by_closing_names_the_subprotocols_asked_for() {
    // What mosquitto does with a subprotocol it does not know: it reads the
    // request and closes without an answer.
    let server = ScriptServer::start(|mut peer| {
        let Some(request) = peer.read_request() else {
            return;
        };
        if request.header("sec-websocket-protocol") == Some("mqttv9, mqtt-x") {
            drop(peer);
        } else if peer.write(Peer::upgrade_response(&request).as_bytes()) {
            peer.hold();
        }
    });
    let (reason, _) =
        first_ending_against(server.port(), json!({"Subprotocols": "mqttv9, mqtt-x"}));
    assert_eq!(
        reason,
        format!(
            "WebSocket handshake failed: the server closed the connection without answering; {CHECK_PORT}; \
             a server also closes like this when it accepts none of the Subprotocols asked for (\"mqttv9\", \"mqtt-x\")"
        )
    );
    assert_eq!(server.snapshot().handshakes.len(), 1);
}

#[test]
fn ws_pointed_at_a_tls_port_says_to_check_the_protocol() {
    let server = support::EchoServer::start_tls();
    let (reason, last_error) = first_ending_against(server.port(), json!({"Protocol": "WS"}));
    assert!(
        reason.starts_with("WebSocket handshake failed: the server's answer is not HTTP ("),
        "{reason}"
    );
    assert!(reason.ends_with(&format!("; {CHECK_PORT}")), "{reason}");
    assert!(last_error.ends_with("(stage: WebSocket)"), "{last_error}");
}

#[test]
fn wss_pointed_at_a_plain_port_says_to_check_the_protocol() {
    // A WebSocket server closes on a TLS hello.
    let plain = support::EchoServer::start();
    let (reason, last_error) = first_ending_against(plain.port(), json!({"Protocol": "WSS"}));
    let expected = format!(
        "TLS handshake with 127.0.0.1 failed: the server closed the connection without answering TLS; {CHECK_PORT}"
    );
    assert_eq!(reason, expected);
    assert_eq!(last_error, format!("{expected} (stage: TLS)"));
    assert!(!reason.contains("tls handshake eof"), "{reason}");

    // A plain HTTP server answers a TLS hello with an HTTP error instead.
    let http = ScriptServer::start(|mut peer| {
        let mut hello = [0u8; 5];
        if std::io::Read::read_exact(&mut peer.stream, &mut hello).is_ok()
            && peer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        {
            peer.hold();
        }
    });
    let (reason, _) = first_ending_against(http.port(), json!({"Protocol": "WSS"}));
    assert_eq!(
        reason,
        format!(
            "TLS handshake with 127.0.0.1 failed: the server answered with something that is not TLS; {CHECK_PORT}"
        )
    );
}
