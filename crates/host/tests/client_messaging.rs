//! Messaging beyond the classic module, end to end on 127.0.0.1: binary
//! frames, forwarding a message as it came (Message Type As Received), the offline queue across a server restart, rate limits (checked
//! by counting, never by timing), the traffic counters, and messages of
//! every size in bulk and in a trickle (the driver's read-ahead).

mod support;

use async_tungstenite::tungstenite::Message;
use serde_json::json;
use std::sync::Arc;
use support::{EchoServer, Recorder, TIMEOUT, send_hex, tls_identity};
use wsio::{ActionError, Instance, Options};
use wsio::{PreparedAction, PreparedTrigger, Trigger};

fn start(rec: &Arc<Recorder>, mut props: serde_json::Value, port: u16) -> Instance {
    props["Hostname"] = json!("127.0.0.1");
    props["Port"] = json!(port);
    Instance::from_json(&props.to_string(), rec.host(), Options::default()).expect("valid")
}

fn established(r: &support::Recorded) -> bool {
    r.count(Trigger::Established) > 0
}

/// An instance with `props` connected to a fresh echo server, once
/// WebSocket Established has fired.
fn connected_to_echo(props: serde_json::Value) -> (EchoServer, Arc<Recorder>, Instance) {
    let server = EchoServer::start();
    let rec = Recorder::new();
    let instance = start(&rec, props, server.port());
    instance.connect(None).unwrap();
    rec.expect("established", established);
    (server, rec, instance)
}

/// Each message arrived whole and unchanged, in order (`len` measures
/// one for the failure message).
fn assert_each_arrived<T: PartialEq>(got: &[T], want: &[T], len: fn(&T) -> usize) {
    for (i, (got, want)) in got.iter().zip(want).enumerate() {
        assert!(
            got == want,
            "message {i} ({} bytes) arrived as {} bytes, or changed",
            len(want),
            len(got)
        );
    }
}

fn status(instance: &Instance, key: &str) -> String {
    instance
        .status()
        .into_iter()
        .find(|v| v.key == key)
        .map(|v| v.value)
        .unwrap_or_default()
}

#[test]
fn binary_messages_round_trip_as_hex_with_their_message_type() {
    let (server, rec, instance) = connected_to_echo(json!({}));
    send_hex(&instance, "00 ff 7e 41").unwrap();
    rec.expect("the binary echo", |r| {
        r.count(Trigger::MessagesReceived) == 1
    });
    let snapshot = server.snapshot();
    assert_eq!(
        snapshot.messages[0],
        async_tungstenite::tungstenite::Message::Binary(vec![0x00, 0xff, 0x7e, 0x41].into()),
        "a binary frame went out"
    );
    let r = rec.snapshot();
    let fired = r.data_of(Trigger::MessagesReceived).remove(0);
    assert_eq!(fired, "00ff7e41");
    let index = r
        .trigger_names()
        .iter()
        .position(|t| *t == Trigger::MessagesReceived)
        .unwrap();
    assert!(r.binary[index], "fired as binary");
    // The trigger test gives the Message Type as the last variable.
    let t =
        PreparedTrigger::prepare("Messages Received", &json!({"Match String": "ff7e"})).unwrap();
    assert!(t.test(fired.as_bytes()));
    assert_eq!(
        t.variables(fired.as_bytes(), true),
        vec!["00ff7e41", "binary"]
    );
    rec.expect("Last Sent/Received in hex", |r| {
        r.status_value("LastSent").as_deref() == Some("00ff7e41")
            && r.status_value("LastReceived").as_deref() == Some("00ff7e41")
    });
}

#[test]
fn log_comms_shows_binary_frames_as_hex_both_ways() {
    let (_server, rec, instance) = connected_to_echo(json!({"Log Comms": true}));
    // 300 bytes, most of them not UTF-8: the log shows the first 200 as hex.
    let bytes: Vec<u8> = (0..=255u8).rev().cycle().take(300).collect();
    send_hex(&instance, &hex::encode(&bytes)).unwrap();
    rec.expect("the binary echo", |r| {
        r.count(Trigger::MessagesReceived) == 1
    });
    let shown = format!("binary 300 bytes: {}…", hex::encode(&bytes[..200]));
    rec.expect("both comms lines", |r| {
        let log = r.log_text();
        log.contains(&format!("comms -> {shown}")) && log.contains(&format!("comms <- {shown}"))
    });
    let log = rec.snapshot().log_text();
    assert!(
        !log.contains('\u{fffd}'),
        "no replacement characters: {log}"
    );
}

#[test]
fn binary_as_text_delivers_valid_utf8_as_text() {
    let (_server, rec, instance) = connected_to_echo(json!({"Binary As Text": true}));
    send_hex(&instance, "68 c3 a9").unwrap();
    rec.expect("the echo", |r| r.count(Trigger::MessagesReceived) == 1);
    assert_eq!(
        rec.snapshot().data_of(Trigger::MessagesReceived),
        vec!["hé"]
    );
}

/// A wire "Messages Received → Send Message `<1>` As Received" run by hand
/// on the message that fired last, as a controller runs it.
fn forward_last(rec: &Recorder, instance: &Instance) -> Result<(), ActionError> {
    let when = PreparedTrigger::prepare("Messages Received", &json!({})).unwrap();
    let then = PreparedAction::prepare(
        "Send Message",
        &json!({"Message": "<1>", "Message Type": "As Received"}),
    )
    .unwrap();
    let (data, binary) = rec.read(|r| {
        let binary = *r.message_binary_flags().last().unwrap();
        (r.messages.last().unwrap().clone(), binary)
    });
    assert!(when.test(&data));
    instance.run(then.action(&when.variables(&data, binary))?)
}

#[test]
fn as_received_sends_each_message_back_the_way_it_came() {
    let (server, rec, instance) = connected_to_echo(json!({}));
    let large: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let messages = [
        Message::Binary(vec![0x00, 0xff, 0x7e, 0x80].into()),
        Message::Text("héllo 00ff".into()),
        Message::Binary(Vec::new().into()),
        Message::Binary(b"ascii, still binary".to_vec().into()),
        Message::Binary(large.into()),
    ];
    for (i, message) in messages.iter().enumerate() {
        assert_eq!(server.send_to_all(message.clone()), 1);
        // Each forwarded message is echoed back: two triggers per message.
        rec.expect("the message", |r| {
            r.count(Trigger::MessagesReceived) == 2 * i + 1
        });
        forward_last(&rec, &instance).unwrap();
        assert!(
            server.wait_for(|o| o.messages.len() == i + 1, TIMEOUT),
            "message {i} came back"
        );
        rec.expect("its echo", |r| {
            r.count(Trigger::MessagesReceived) == 2 * i + 2
        });
    }
    let back = server.snapshot().messages;
    assert_each_arrived(&back, &messages, Message::len);
    assert_eq!(
        rec.snapshot().message_binary_flags(),
        [true, true, false, false, true, true, true, true, true, true]
    );
}

#[test]
fn as_received_refuses_the_text_of_binary_as_text_instead_of_guessing() {
    let (server, rec, instance) = connected_to_echo(json!({"Binary As Text": true}));
    assert_eq!(
        server.send_to_all(Message::Binary(b"h\xc3\xa9".to_vec().into())),
        1
    );
    rec.expect("the message", |r| r.count(Trigger::MessagesReceived) == 1);
    let ActionError::Invalid(e) = forward_last(&rec, &instance).unwrap_err() else {
        panic!("not refused as invalid")
    };
    assert!(
        e.message.contains("'h' at offset 0") && e.message.contains("turn it off"),
        "{}",
        e.message
    );
    assert!(server.snapshot().messages.is_empty(), "nothing was sent");
}

#[test]
fn bad_hex_is_an_error_naming_the_offset() {
    let server = EchoServer::start();
    let rec = Recorder::new();
    let instance = start(&rec, json!({}), server.port());
    let error = send_hex(&instance, "00 fg").unwrap_err();
    let ActionError::Invalid(e) = error else {
        panic!("{error:?}")
    };
    assert!(
        e.message.contains("'g' at offset 4 is not a hex digit"),
        "{}",
        e.message
    );
    let error = send_hex(&instance, "abc").unwrap_err();
    assert!(error.to_string().contains("odd count"), "{error}");
}

#[test]
fn the_offline_queue_delivers_in_order_after_a_server_restart() {
    let server = EchoServer::start();
    let port = server.port();
    let rec = Recorder::new();
    let instance = start(
        &rec,
        json!({"Auto-Reconnect": true, "Queue While Disconnected": true, "Reconnect Max Delay": 1}),
        port,
    );
    instance.connect(None).unwrap();
    rec.expect("established", established);
    server.abort_all();
    drop(server);
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    for i in 1..=3 {
        instance
            .send_message(format!("queued {i}"))
            .expect("queued, not refused");
    }
    rec.expect("Queue Depth 3", |r| {
        r.status_value("QueueDepth").as_deref() == Some("3")
    });
    let server = EchoServer::start_on(port);
    assert!(server.wait_for(|o| o.messages.len() >= 3, TIMEOUT));
    instance.send_message("after").unwrap();
    assert!(server.wait_for(|o| o.messages.len() == 4, TIMEOUT));
    assert_eq!(
        server.snapshot().texts(),
        vec!["queued 1", "queued 2", "queued 3", "after"],
        "flushed first, in order"
    );
    rec.expect("Queue Depth 0", |r| {
        r.status_value("QueueDepth").as_deref() == Some("0")
    });
    assert_eq!(status(&instance, "Dropped"), "0");
}

#[test]
fn without_the_queue_sends_while_down_are_refused_as_in_the_classic_module() {
    let rec = Recorder::new();
    let instance = start(&rec, json!({}), 9);
    assert!(matches!(
        instance.send_message("x"),
        Err(ActionError::NotEstablished { .. })
    ));
    assert_eq!(status(&instance, "QueueDepth"), "0");
}

#[test]
fn max_send_rate_delivers_everything_in_order() {
    let (server, rec, instance) =
        connected_to_echo(json!({"Max Send Rate": 50, "Queue Size": 1000}));
    for i in 0..40 {
        instance.send_message(format!("m{i:02}")).unwrap();
    }
    assert!(server.wait_for(|o| o.messages.len() == 40, TIMEOUT));
    let expected: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    assert_eq!(server.snapshot().texts(), expected);
    rec.expect("counters", |r| {
        r.status_value("MessagesOut").as_deref() == Some("40")
    });
    assert_eq!(status(&instance, "Dropped"), "0");
}

#[test]
fn trigger_rate_limit_counts_every_message_it_suppresses() {
    let server = EchoServer::start_burst(2_000);
    let rec = Recorder::new();
    let instance = start(&rec, json!({"Trigger Rate Limit": 100}), server.port());
    instance.connect(None).unwrap();
    rec.expect("all 2,000 counted in", |r| {
        r.status_value("MessagesIn").as_deref() == Some("2000")
    });
    let fired = rec.snapshot().count(Trigger::MessagesReceived) as u64;
    let suppressed: u64 = status(&instance, "Suppressed").parse().unwrap();
    assert!(suppressed > 0, "the burst was limited");
    assert_eq!(fired + suppressed, 2_000, "nothing lost from the count");
}

#[test]
fn traffic_counters_count_messages_and_bytes() {
    let (_server, rec, instance) = connected_to_echo(json!({}));
    instance.send_message("12345").unwrap();
    instance.send_message("678").unwrap();
    rec.expect("two echoes", |r| r.count(Trigger::MessagesReceived) == 2);
    rec.expect("counters", |r| {
        r.status_value("BytesIn").as_deref() == Some("8")
            && r.status_value("MessagesIn").as_deref() == Some("2")
    });
    assert_eq!(status(&instance, "MessagesOut"), "2");
    assert_eq!(status(&instance, "BytesOut"), "8");
}

/// Send Message texts up to COPIED_TEXT bytes travel copied into the
/// instance's inbox, longer ones and binary data as shared buffers: a burst
/// that mixes them, around the threshold, arrives whole and in order, and
/// Last Sent and the counters show the last one.
#[test]
fn sent_messages_of_every_size_and_kind_arrive_intact_and_in_order() {
    use wsio::Outbound;
    use wsio::testing::COPIED_TEXT;
    let (server, rec, instance) = connected_to_echo(json!({}));
    let sizes = [
        0,
        1,
        31,
        COPIED_TEXT - 1,
        COPIED_TEXT,
        COPIED_TEXT + 1,
        65_536,
    ];
    let mut expected = Vec::new();
    for round in 0..3 {
        for (i, size) in sizes.into_iter().enumerate() {
            let text = sized_text(round * 100 + i, size);
            match i % 3 {
                0 => instance.send_message(text.clone()).unwrap(),
                1 => instance.send_text(&text).unwrap(),
                _ => instance.send(Outbound::Text(text.clone().into())).unwrap(),
            }
            expected.push(Message::text(text));
            let binary: Vec<u8> = (0..size).map(|k| (k + i) as u8).collect();
            instance
                .send(Outbound::Binary(binary.clone().into()))
                .unwrap();
            expected.push(Message::binary(binary));
        }
    }
    let count = expected.len();
    assert!(server.wait_for(|o| o.messages.len() >= count, TIMEOUT));
    let got = server.snapshot().messages;
    assert_eq!(got.len(), count, "nothing more, nothing less");
    assert_each_arrived(&got, &expected, Message::len);
    let bytes: usize = expected.iter().map(Message::len).sum();
    let (count, bytes) = (count.to_string(), bytes.to_string());
    rec.expect("counters and Last Sent", |r| {
        r.status_value("MessagesOut").as_deref() == Some(count.as_str())
            && r.status_value("BytesOut").as_deref() == Some(bytes.as_str())
    });
    // The last message was binary: Last Sent shows its hex.
    let last: Vec<u8> = (0..65_536).map(|k| (k + 6) as u8).collect();
    assert_eq!(status(&instance, "LastSent"), hex::encode(last));
}

/// Text of `size` bytes that differs from message to message: its index,
/// then letters starting at a letter of its own.
fn sized_text(index: usize, size: usize) -> String {
    let head = format!("{index:04}-");
    let letters = (0..size).map(|k| (b'a' + ((index + k) % 26) as u8) as char);
    head.chars().chain(letters).take(size).collect()
}

/// Around every read size that matters to the read-ahead (tungstenite's and
/// rustls's 4 KiB, a TLS record, the 64 KiB bulk read) and well past it.
const SIZES: [usize; 13] = [
    0, 1, 31, 4095, 4096, 4097, 16_384, 16_385, 65_535, 65_536, 65_537, 200_000, 1_000_000,
];

/// Every message of `SIZES`, sent all at once (bulk, then the driver reads
/// ahead) and then one at a time (a trickle: small reads, no buffer), text
/// and binary, arrives intact, whole and in order.
fn messages_of_every_size_arrive_intact_and_in_order(tls: bool) {
    let server = if tls {
        EchoServer::start_tls()
    } else {
        EchoServer::start()
    };
    let rec = Recorder::new();
    let mut props = json!({"Hostname": "127.0.0.1", "Port": server.port()});
    let mut options = Options::default();
    if tls {
        props["Protocol"] = json!("WSS");
        options.extra_root_certificates = vec![tls_identity().cert_der().clone()];
    }
    let instance =
        Instance::from_json(&props.to_string(), rec.host(), options).expect("valid properties");
    instance.connect(None).unwrap();
    rec.expect("established", established);
    let mut expected = Vec::new();
    // Bulk: every size, back to back, twice.
    for round in 0..2 {
        for (i, size) in SIZES.into_iter().enumerate() {
            let text = sized_text(round * 100 + i, size);
            assert_eq!(server.send_to_all(text.clone()), 1);
            expected.push(text);
        }
        let binary: Vec<u8> = (0..100_000).map(|k| (k * 7 + round) as u8).collect();
        expected.push(hex::encode(&binary));
        assert_eq!(server.send_to_all(binary), 1);
    }
    let count = expected.len();
    rec.expect("the bulk messages", |r| {
        r.count(Trigger::MessagesReceived) >= count
    });
    // Trickle: each one waits for the one before.
    for (i, size) in SIZES.into_iter().rev().enumerate() {
        let text = sized_text(500 + i, size);
        assert_eq!(server.send_to_all(text.clone()), 1);
        expected.push(text);
        let count = expected.len();
        rec.expect("a trickled message", |r| {
            r.count(Trigger::MessagesReceived) >= count
        });
    }
    let received = rec.snapshot().data_of(Trigger::MessagesReceived);
    assert_eq!(received.len(), expected.len(), "one trigger per message");
    assert_each_arrived(&received, &expected, String::len);
    let count = expected.len().to_string();
    rec.expect("MessagesIn counts them all", |r| {
        r.status_value("MessagesIn").as_deref() == Some(count.as_str())
    });
}

#[test]
fn messages_of_every_size_arrive_intact_and_in_order_over_ws() {
    messages_of_every_size_arrive_intact_and_in_order(false);
}

#[test]
fn messages_of_every_size_arrive_intact_and_in_order_over_wss() {
    messages_of_every_size_arrive_intact_and_in_order(true);
}
