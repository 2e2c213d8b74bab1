//! The WebSocket Client module end to end through its Rust API, against the
//! fixture servers on 127.0.0.1: every trigger, action and status variable.

mod support;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{
    BlackHoleServer, CloseServer, EchoServer, Recorder, RefuseServer, SilentServer, TIMEOUT,
    assert_unknown_ca, tls_identity,
};
use wsio::Timing;
use wsio::Trigger;
use wsio::{ActionError, Instance, Options};

fn instance_with(
    recorder: &Arc<Recorder>,
    properties: serde_json::Value,
    options: Options,
) -> Instance {
    Instance::from_json(&properties.to_string(), recorder.host(), options)
        .expect("valid properties")
}

fn ws(port: u16) -> serde_json::Value {
    json!({"Hostname": "127.0.0.1", "Port": port, "Path": "/echo"})
}

/// A new recorder and an instance reporting to it, for 127.0.0.1:`port`
/// (`/echo`) with `more` properties.
fn recorded(port: u16, more: serde_json::Value, options: Options) -> (Arc<Recorder>, Instance) {
    let rec = Recorder::new();
    let instance = instance_with(&rec, support::with(ws(port), more), options);
    (rec, instance)
}

/// The same, connected: once WebSocket Established has fired.
fn connected(port: u16, more: serde_json::Value, options: Options) -> (Arc<Recorder>, Instance) {
    let (rec, instance) = recorded(port, more, options);
    instance.connect(None).unwrap();
    rec.expect("WebSocket Established", established);
    (rec, instance)
}

/// Connects `instance` and returns why its first connection ended.
fn first_ending(rec: &Recorder, instance: &Instance) -> String {
    instance.connect(None).unwrap();
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    rec.snapshot().data_of(Trigger::Disconnected).remove(0)
}

fn established(r: &support::Recorded) -> bool {
    r.count(Trigger::Established) > 0
}

#[test]
fn last_sent_and_the_counters_end_at_the_last_message_of_a_burst() {
    // Last Sent is set once per burst (from its last message), not per
    // message: what the controller sees at the end must still be exact.
    let server = EchoServer::start();
    let (rec, instance) = connected(server.port(), json!({}), Options::default());
    for i in 1..=5000 {
        instance.send_message(format!("burst {i}")).unwrap();
    }
    instance
        .send(wsio::Outbound::Binary(bytes::Bytes::from_static(&[
            0xab, 0x01,
        ])))
        .unwrap();
    assert!(server.wait_for(|o| o.messages.len() >= 5001, TIMEOUT));
    rec.expect("Last Sent = the binary message, in hex", |r| {
        r.status_value("LastSent").as_deref() == Some("ab01")
    });
    rec.expect("Messages Out = 5001", |r| {
        r.status_value("MessagesOut").as_deref() == Some("5001")
    });
    let texts = server.snapshot().texts();
    assert_eq!(texts.len(), 5000);
    assert_eq!(texts.last().map(String::as_str), Some("burst 5000"));
}

#[test]
fn a_session_fires_every_trigger_in_order_and_updates_every_status_variable() {
    let server = EchoServer::start();
    let (rec, instance) = recorded(server.port(), json!({}), Options::default());
    assert_eq!(instance.status()[0].value, "Disconnected");

    instance.connect(None).unwrap();
    rec.expect("WebSocket Established", established);
    rec.expect("Connection Status = Established", |r| {
        r.status_value("ConnectionStatus").as_deref() == Some("Established")
    });
    instance.send_message("hello, server").unwrap();
    rec.expect("the echo", |r| r.count(Trigger::MessagesReceived) == 1);
    rec.expect("Last Received", |r| {
        r.status_value("LastReceived").as_deref() == Some("hello, server")
    });
    instance.disconnect().unwrap();
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);

    let r = rec.snapshot();
    assert_eq!(
        r.trigger_names(),
        vec![
            Trigger::Connected,
            Trigger::Established,
            Trigger::MessagesReceived,
            Trigger::Disconnected
        ]
    );
    assert_eq!(r.data_of(Trigger::MessagesReceived), vec!["hello, server"]);
    assert_eq!(r.data_of(Trigger::Disconnected), vec!["Disconnect action"]);
    assert_eq!(r.status_value("LastSent").as_deref(), Some("hello, server"));
    assert_eq!(
        r.status_value("ConnectionStatus").as_deref(),
        Some("Disconnected: Disconnect action")
    );
    // Every pushed value carries an RFC 3339 timestamp with an offset.
    for v in &r.status {
        chrono::DateTime::parse_from_rfc3339(&v.timestamp).expect(&v.timestamp);
    }
    // The snapshot agrees with what was pushed.
    let snapshot = instance.status();
    assert_eq!(snapshot[1].value, "hello, server");
    assert_eq!(snapshot[2].label, "Last Received");
    // The server saw the message, then a clean close with 1000.
    assert!(server.wait_for(|o| o.closes.iter().any(|c| c.code == 1000), TIMEOUT));
    assert_eq!(server.snapshot().texts(), vec!["hello, server"]);
}

#[test]
fn the_bearer_token_reaches_the_server_and_never_the_log() {
    let server = EchoServer::start();
    let (rec, instance) = recorded(
        server.port(),
        json!({"Extended Logging": true, "Log Comms": true}),
        Options::default(),
    );
    instance
        .action(
            "Connect",
            &json!({"Bearer Token": "s3cr3t-T0KEN"}),
            &[] as &[&str],
        )
        .unwrap();
    rec.expect("established", established);
    instance.send_message("x").unwrap();
    rec.expect("echo", |r| r.count(Trigger::MessagesReceived) == 1);
    drop(instance);
    let handshake = server.snapshot().handshakes[0].clone();
    assert_eq!(
        handshake.header("authorization"),
        Some("Bearer s3cr3t-T0KEN")
    );
    let r = rec.snapshot();
    assert!(
        r.log_text().contains("comms -> text 1 bytes"),
        "{}",
        r.log_text()
    );
    for text in [r.log_text(), format!("{:?}", r.status)] {
        assert!(!text.contains("s3cr3t"), "token leaked: {text}");
    }
}

#[test]
fn send_message_while_not_established_is_an_error_and_sends_nothing() {
    let server = EchoServer::start();
    let (rec, instance) = recorded(server.port(), json!({}), Options::default());
    let error = instance.send_message("too early").unwrap_err();
    assert_eq!(
        error,
        ActionError::NotEstablished {
            state: "disconnected"
        }
    );
    rec.expect("the error in the log", |r| {
        r.log_text()
            .contains("not established (state: disconnected)")
    });
    instance.connect(None).unwrap();
    rec.expect("established", established);
    instance.send_message("on time").unwrap();
    assert!(server.wait_for(|o| !o.messages.is_empty(), TIMEOUT));
    assert_eq!(
        server.snapshot().texts(),
        vec!["on time"],
        "nothing was queued"
    );
}

#[test]
fn a_burst_of_ten_thousand_messages_fires_ten_thousand_triggers_in_order() {
    let server = EchoServer::start_burst(10_000);
    let (rec, instance) = recorded(server.port(), json!({}), Options::default());
    instance.connect(None).unwrap();
    rec.expect("10,000 messages", |r| {
        r.count(Trigger::MessagesReceived) == 10_000
    });
    let received = rec.snapshot().data_of(Trigger::MessagesReceived);
    for (i, message) in received.iter().enumerate() {
        assert_eq!(
            message,
            support::burst_message(i + 1).to_text().unwrap(),
            "message {i}"
        );
    }
    rec.expect("Last Received = the last message", |r| {
        r.status_value("LastReceived").as_deref()
            == Some(support::burst_message(10_000).to_text().unwrap())
    });
    // Message status is coalesced while messages flow: Last Received is
    // pushed at most once per STATUS_EVERY (20 ms), not per message or read.
    let r = rec.snapshot();
    let pushed: Vec<_> = r
        .status
        .iter()
        .zip(&r.status_at)
        .filter(|(v, _)| v.key == "LastReceived")
        .map(|(_, at)| *at)
        .collect();
    assert!(!pushed.is_empty() && pushed.len() < 10_000);
    for pair in pushed.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= wsio::testing::STATUS_EVERY - Duration::from_millis(1),
            "Last Received pushed {gap:?} after the previous push ({} pushes)",
            pushed.len()
        );
    }
}

#[test]
fn a_close_from_the_server_shows_code_and_reason() {
    let server = CloseServer::new(4000, "maintenance");
    let (rec, instance) = recorded(server.port(), json!({}), Options::default());
    instance.connect(None).unwrap();
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    let r = rec.snapshot();
    assert_eq!(
        r.data_of(Trigger::Disconnected),
        vec!["closed by server: 4000 maintenance"]
    );
    assert_eq!(
        r.status_value("ConnectionStatus").as_deref(),
        Some(
            "Disconnected: closed by server: 4000 maintenance; no retry will follow (Auto-Reconnect is off)"
        )
    );
    drop(instance);
    assert_eq!(
        rec.snapshot().count(Trigger::Disconnected),
        1,
        "once per connection"
    );
}

#[test]
fn a_refused_handshake_is_connected_then_disconnected_with_the_status_code() {
    for (status, text) in [
        (401, "401 Unauthorized"),
        (404, "404 Not Found"),
        (500, "500 Internal Server Error"),
    ] {
        let server = RefuseServer::new(status);
        let (rec, instance) = recorded(server.port(), json!({}), Options::default());
        instance.connect(None).unwrap();
        rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
        let r = rec.snapshot();
        assert_eq!(
            r.trigger_names(),
            vec![Trigger::Connected, Trigger::Disconnected]
        );
        assert_eq!(
            r.data_of(Trigger::Disconnected),
            vec![format!("HTTP upgrade refused: {text}")]
        );
        drop(instance);
    }
}

#[test]
fn a_refused_tcp_connect_fires_nothing_and_is_shown_in_status_and_log() {
    // A port with nothing listening.
    let port = support::free_port();
    let (rec, instance) = recorded(port, json!({}), Options::default());
    instance.connect(None).unwrap();
    // The two status variables arrive in two callbacks: wait for both.
    rec.expect("Connect failed status and state", |r| {
        r.status_value("ConnectionStatus")
            .is_some_and(|v| v.starts_with("Connect failed: TCP connect to 127.0.0.1"))
            && r.status_value("ConnectionState").as_deref() == Some("failed")
    });
    let r = rec.snapshot();
    assert!(
        r.triggers.is_empty(),
        "no Connected, no Disconnected: {:?}",
        r.trigger_names()
    );
    assert!(r.log_text().contains("Critical: connect to ws://127.0.0.1"));
    let status = r.status_value("ConnectionStatus").unwrap_or_default();
    assert!(
        status.ends_with("; no retry will follow (Auto-Reconnect is off)"),
        "{status}"
    );
    assert_eq!(r.status_value("ConnectionState").as_deref(), Some("failed"));
}

#[test]
fn auto_reconnect_recovers_after_the_server_restarts() {
    let server = EchoServer::start();
    let port = server.port();
    let (rec, instance) = connected(port, json!({"Auto-Reconnect": true}), Options::default());
    server.abort_all();
    drop(server);
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    rec.expect("a reconnect scheduled", |r| {
        r.status_value("ConnectionStatus")
            .is_some_and(|v| v.starts_with("Reconnecting in"))
    });
    let server = EchoServer::start_on(port);
    // The backoff grows while the server is down, so allow its cap.
    assert!(rec.wait_for(
        |r| r.count(Trigger::Established) == 2,
        Duration::from_secs(70)
    ));
    instance.send_message("back").unwrap();
    rec.expect("echo after reconnect", |r| {
        r.data_of(Trigger::MessagesReceived)
            .contains(&"back".to_owned())
    });
    assert_eq!(rec.snapshot().count(Trigger::Disconnected), 1);
    drop(server);
}

fn fast_keepalive() -> Options {
    Options {
        timing: Timing {
            keepalive_interval: Duration::from_millis(300),
            pong_timeout: Duration::from_millis(300),
            ..Timing::default()
        },
        ..Options::default()
    }
}

/// Connected with keep-alive every 300 ms and a 300 ms pong timeout.
fn connected_keeping_alive(port: u16, more: serde_json::Value) -> (Arc<Recorder>, Instance) {
    connected(port, more, fast_keepalive())
}

#[test]
fn a_half_open_connection_is_detected_by_keep_alive_and_reconnected() {
    let server = SilentServer::start();
    let (rec, instance) = connected_keeping_alive(server.port(), json!({"Auto-Reconnect": true}));
    rec.expect("dead link detected", |r| {
        r.count(Trigger::Disconnected) == 1
    });
    let reason = rec.snapshot().data_of(Trigger::Disconnected).remove(0);
    assert!(reason.contains("no answer to keep-alive ping"), "{reason}");
    // It reconnects to the (still silent) server on its own.
    assert!(server.wait_for(|o| o.connections() >= 2, TIMEOUT));
    drop(instance);
}

#[test]
fn keep_alive_off_sends_no_pings() {
    let server = EchoServer::start();
    let (_rec, instance) =
        connected_keeping_alive(server.port(), json!({"Send keep alive?": false}));
    // Several keep-alive intervals pass: no ping may arrive.
    assert!(!server.wait_for(|o| o.pings > 0, Duration::from_millis(1500)));
    assert!(instance.is_established());

    let (_rec, instance) = connected_keeping_alive(server.port(), json!({}));
    assert!(
        server.wait_for(|o| o.pings > 0, TIMEOUT),
        "keep-alive on pings"
    );
    assert!(instance.is_established(), "the echo server answers pings");
}

#[test]
fn disconnect_during_the_handshake_fires_disconnected_once() {
    let server = BlackHoleServer::start();
    let (rec, instance) = recorded(server.port(), json!({}), Options::default());
    instance.connect(None).unwrap();
    rec.expect("Connected", |r| r.count(Trigger::Connected) == 1);
    instance.disconnect().unwrap();
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    assert_eq!(
        rec.snapshot().trigger_names(),
        vec![Trigger::Connected, Trigger::Disconnected]
    );
}

#[test]
fn connect_while_connected_is_ignored_with_a_log_line() {
    let server = EchoServer::start();
    let (rec, instance) = connected(server.port(), json!({}), Options::default());
    instance.connect(None).unwrap();
    rec.expect("the log line", |r| {
        r.log_text()
            .contains("Connect ignored: already established")
    });
    assert_eq!(server.snapshot().connections(), 1);
}

#[test]
fn dropping_the_instance_closes_with_1000_and_fires_disconnected_last() {
    let server = EchoServer::start();
    let (rec, instance) = connected(server.port(), json!({}), Options::default());
    drop(instance);
    // Drop returned: Disconnected already fired, nothing more can arrive.
    let r = rec.snapshot();
    assert_eq!(r.trigger_names().last(), Some(&Trigger::Disconnected));
    assert_eq!(r.data_of(Trigger::Disconnected), vec!["instance removed"]);
    assert!(server.wait_for(|o| o.closes.iter().any(|c| c.code == 1000), TIMEOUT));
}

#[test]
fn wss_works_end_to_end_when_the_certificate_is_trusted() {
    let server = EchoServer::start_tls();
    let rec = Recorder::new();
    let mut props = ws(server.port());
    props["Protocol"] = json!("WSS");
    props["Hostname"] = json!("localhost");
    let options = Options {
        extra_root_certificates: vec![tls_identity().cert_der().clone()],
        ..Options::default()
    };
    let instance = instance_with(&rec, props.clone(), options);
    instance.connect(None).unwrap();
    rec.expect("established over TLS", established);
    instance.send_message("secure hello").unwrap();
    rec.expect("echo over TLS", |r| {
        r.data_of(Trigger::MessagesReceived) == vec!["secure hello".to_owned()]
    });
    drop(instance);

    // Without trusting it, the certificate is refused: no trust by default.
    let rec = Recorder::new();
    let instance = instance_with(&rec, props, Options::default());
    let reason = first_ending(&rec, &instance);
    assert_unknown_ca(&reason);
}

#[test]
fn extended_logging_adds_decisions_and_stays_quiet_when_off() {
    let port = support::free_port();
    let run = |extended: bool| {
        let (rec, instance) = recorded(
            port,
            json!({"Extended Logging": extended, "Auto-Reconnect": true}),
            Options::default(),
        );
        instance.connect(None).unwrap();
        rec.expect("a reconnect scheduled", |r| {
            r.status_value("ConnectionStatus")
                .is_some_and(|v| v.starts_with("Reconnecting"))
        });
        drop(instance);
        rec.snapshot().log_text()
    };
    let on = run(true);
    assert!(
        on.contains("Extended: connecting to ws://127.0.0.1"),
        "{on}"
    );
    assert!(
        on.contains("Extended: auto-reconnect: attempt 2 in"),
        "{on}"
    );
    let off = run(false);
    assert!(!off.contains("Extended:"), "{off}");
    assert!(
        off.contains("Critical: connect to ws://127.0.0.1"),
        "errors are always logged"
    );
}

#[test]
fn pings_from_the_server_are_answered_while_nothing_is_sent() {
    let server = EchoServer::start();
    let (_rec, instance) = connected(
        server.port(),
        json!({"Send keep alive?": false}),
        Options::default(),
    );
    for n in 1..=3 {
        server.send_to_all(async_tungstenite::tungstenite::Message::Ping(
            vec![n].into(),
        ));
        assert!(
            server.wait_for(|o| o.pongs == n as usize, TIMEOUT),
            "pong {n}"
        );
    }
    assert!(
        server.snapshot().messages.is_empty(),
        "the module sent nothing but pongs"
    );
    assert!(instance.is_established());
}

#[test]
fn two_instances_talk_through_a_piesocket_style_channel() {
    use wsio_host::demo_server::{DemoServer, DemoServerConfig};
    let server = DemoServer::start(DemoServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    })
    .unwrap();
    let props = |path: &str| json!({"Hostname": "127.0.0.1", "Port": server.local_addr().port(), "Path": path});
    let (a_rec, b_rec) = (Recorder::new(), Recorder::new());
    let a = instance_with(
        &a_rec,
        props("/v3/7?api_key=demo&notify_self=1"),
        Options::default(),
    );
    let b = instance_with(&b_rec, props("/v3/7?api_key=demo"), Options::default());
    a.connect(None).unwrap();
    b.connect(None).unwrap();
    a_rec.expect("a established", established);
    b_rec.expect("b established", established);
    a.send_message("to the channel").unwrap();
    b_rec.expect("b hears a", |r| {
        r.data_of(Trigger::MessagesReceived) == vec!["to the channel".to_owned()]
    });
    a_rec.expect("a hears itself (notify_self)", |r| {
        r.data_of(Trigger::MessagesReceived) == vec!["to the channel".to_owned()]
    });
    b.send_message("reply").unwrap();
    a_rec.expect("a hears b", |r| r.count(Trigger::MessagesReceived) == 2);
    assert!(
        !b_rec.wait_for(
            |r| r.count(Trigger::MessagesReceived) > 1,
            std::time::Duration::from_millis(300)
        ),
        "b has no notify_self: it does not hear itself"
    );

    // Without api_key the server closes with 4001 and says why.
    let rec = Recorder::new();
    let c = instance_with(&rec, props("/v3/7"), Options::default());
    let reason = first_ending(&rec, &c);
    assert!(
        reason.starts_with("closed by server: 4001 api_key is required"),
        "{reason}"
    );
}
