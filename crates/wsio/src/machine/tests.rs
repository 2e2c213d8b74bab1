//! The machine in virtual time: every trigger order, backoff and keep-alive,
//! with no sockets and no waiting.

use super::*;
use crate::vocabulary::{
    CLOSE_TIMEOUT, CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, PONG_TIMEOUT, RECONNECT_MAX, RECONNECT_MIN,
};

fn settings(keep_alive: bool, auto_reconnect: bool) -> Settings {
    Settings {
        timing: Timing::default(),
        reconnect: ReconnectPolicy::default(),
        messaging: Messaging::default(),
        keep_alive,
        auto_reconnect,
        extended_logging: true,
        display_url: "ws://example.test:80/".into(),
        route: None,
    }
}

/// A machine, a virtual clock and what came out of it.
struct Harness {
    m: Machine,
    now: Instant,
}

impl Harness {
    fn new(keep_alive: bool, auto_reconnect: bool) -> Self {
        Harness {
            m: Machine::new(settings(keep_alive, auto_reconnect), 7),
            now: Instant::now(),
        }
    }

    fn drain(&mut self) -> Vec<Effect> {
        std::iter::from_fn(|| self.m.poll_effect()).collect()
    }

    /// Advances the clock to the next deadline and handles it.
    fn fire_deadline(&mut self) -> Duration {
        let deadline = self.m.poll_deadline().expect("a deadline is scheduled");
        let waited = deadline.saturating_duration_since(self.now);
        self.now = deadline;
        self.m.handle_timeout(self.now);
        waited
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Connect, TCP up, handshake done; returns the connection.
    fn establish(&mut self) -> ConnId {
        self.m.handle_connect(self.now, None);
        let conn = open_conn(&self.drain());
        self.m.handle_tcp_connected(self.now, conn);
        self.m.handle_established(self.now, conn, None);
        self.drain();
        conn
    }
}

fn open_conn(effects: &[Effect]) -> ConnId {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Open { conn, .. } => Some(*conn),
            _ => None,
        })
        .expect("an Open effect")
}

fn triggers(effects: &[Effect]) -> Vec<(Trigger, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Fire { trigger, data, .. } => {
                Some((*trigger, String::from_utf8_lossy(data).into_owned()))
            }
            _ => None,
        })
        .collect()
}

fn trigger_names(effects: &[Effect]) -> Vec<Trigger> {
    triggers(effects).into_iter().map(|(t, _)| t).collect()
}

fn logs(effects: &[Effect]) -> Vec<(LogLevel, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log { level, message } => Some((*level, message.clone())),
            _ => None,
        })
        .collect()
}

fn last_connection_status(effects: &[Effect]) -> Option<String> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Status {
            key: StatusKey::ConnectionStatus,
            value,
        } => Some(value.clone()),
        _ => None,
    })
}

#[test]
fn triggers_fire_in_order_connected_established_message_disconnected() {
    let mut h = Harness::new(true, false);
    h.m.handle_connect(h.now, None);
    let mut all = h.drain();
    let conn = open_conn(&all);
    h.m.handle_tcp_connected(h.now, conn);
    h.m.handle_established(h.now, conn, None);
    h.m.handle_message(h.now, conn, Bytes::from_static(b"hello"), false);
    h.m.handle_closed(h.now, conn, "closed by server: 1000 bye");
    all.extend(h.drain());
    assert_eq!(
        triggers(&all),
        vec![
            (Trigger::Connected, String::new()),
            (Trigger::Established, String::new()),
            (Trigger::MessagesReceived, "hello".into()),
            (Trigger::Disconnected, "closed by server: 1000 bye".into()),
        ]
    );
    assert_eq!(
        last_connection_status(&all).unwrap(),
        "Disconnected: closed by server: 1000 bye; no retry will follow (Auto-Reconnect is off)"
    );
    assert!(h.m.is_idle(), "no auto-reconnect: stays disconnected");
}

#[test]
fn failed_tcp_connect_fires_no_trigger_but_is_logged_and_shown() {
    let mut h = Harness::new(true, false);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_closed(h.now, conn, "connection refused");
    let effects = h.drain();
    assert!(trigger_names(&effects).is_empty());
    assert!(
        logs(&effects)
            .iter()
            .any(|(l, m)| *l == LogLevel::Critical && m.contains("connection refused"))
    );
    assert_eq!(
        last_connection_status(&effects).unwrap(),
        "Connect failed: connection refused; no retry will follow (Auto-Reconnect is off)"
    );
}

/// Every Connection Status and Connection State value pushed, in order.
fn shown_states(effects: &[Effect]) -> Vec<(StatusKey, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Status { key, value }
                if matches!(
                    key,
                    StatusKey::ConnectionStatus | StatusKey::ConnectionState
                ) =>
            {
                Some((*key, value.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn without_auto_reconnect_the_status_says_no_retry_follows_once() {
    let mut h = Harness::new(false, false);
    let conn = h.establish();
    h.m.handle_closed(h.now, conn, "closed by server: 1000 bye");
    let effects = h.drain();
    assert_eq!(
        shown_states(&effects),
        vec![
            (
                StatusKey::ConnectionStatus,
                "Disconnected: closed by server: 1000 bye; no retry will follow (Auto-Reconnect is off)"
                    .to_owned()
            ),
            (StatusKey::ConnectionState, "disconnected".to_owned()),
        ],
        "pushed once, before Disconnected fires, with the loss's own word"
    );
    let status_at = effects.iter().position(|e| {
        matches!(
            e,
            Effect::Status {
                key: StatusKey::ConnectionStatus,
                ..
            }
        )
    });
    let fired_at = effects.iter().position(|e| {
        matches!(
            e,
            Effect::Fire {
                trigger: Trigger::Disconnected,
                ..
            }
        )
    });
    assert!(status_at < fired_at, "{effects:?}");
    assert!(h.m.is_idle());

    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_closed(h.now, conn, "connection refused");
    let effects = h.drain();
    assert_eq!(
        shown_states(&effects),
        vec![
            (
                StatusKey::ConnectionStatus,
                "Connect failed: connection refused; no retry will follow (Auto-Reconnect is off)"
                    .to_owned()
            ),
            (StatusKey::ConnectionState, "failed".to_owned()),
        ]
    );
}

#[test]
fn the_no_retry_note_is_only_for_losses_nothing_follows() {
    // A Disconnect action's ending says itself why nothing follows.
    let mut h = Harness::new(false, false);
    let conn = h.establish();
    h.m.handle_disconnect(h.now);
    h.m.handle_closed(h.now, conn, "closed");
    let status = last_connection_status(&h.drain()).unwrap();
    assert!(!status.contains("no retry"), "{status}");
    // With Auto-Reconnect on, a retry follows and the status says when.
    let mut h = Harness::new(false, true);
    let conn = h.establish();
    h.m.handle_closed(h.now, conn, "closed by server: 1000 bye");
    let status = last_connection_status(&h.drain()).unwrap();
    assert!(status.starts_with("Reconnecting in "), "{status}");
    assert!(!status.contains("no retry"), "{status}");
}

#[test]
fn disconnected_fires_once_however_many_end_events_arrive() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    h.m.handle_closed(h.now, conn, "connection reset");
    h.m.handle_closed(h.now, conn, "EOF");
    h.m.handle_timeout(h.now);
    let effects = h.drain();
    assert_eq!(trigger_names(&effects), vec![Trigger::Disconnected]);
}

#[test]
fn handshake_failure_after_connected_fires_disconnected() {
    let mut h = Harness::new(true, false);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.m.handle_closed(h.now, conn, "HTTP 401 Unauthorized");
    assert_eq!(
        trigger_names(&h.drain()),
        vec![Trigger::Connected, Trigger::Disconnected]
    );
}

#[test]
fn disconnect_action_closes_with_1000_and_stops_reconnecting() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    h.m.handle_disconnect(h.now);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Close {
        conn,
        code: 1000,
        reason: String::new()
    }));
    assert!(
        trigger_names(&effects).is_empty(),
        "Disconnected waits for the close"
    );
    h.m.handle_closed(h.now, conn, "closed by client: 1000");
    let effects = h.drain();
    assert_eq!(
        triggers(&effects),
        vec![(Trigger::Disconnected, "Disconnect action".into())]
    );
    assert!(h.m.is_idle(), "no reconnect after the Disconnect action");
    assert_eq!(h.m.poll_deadline(), None);
}

#[test]
fn close_that_the_server_never_answers_is_aborted_after_the_timeout() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    h.m.handle_disconnect(h.now);
    h.drain();
    assert_eq!(h.fire_deadline(), CLOSE_TIMEOUT);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    assert_eq!(trigger_names(&effects), vec![Trigger::Disconnected]);
}

fn server_close_1000_bye() -> Ending {
    Ending::closed_by_server(Some((1000, "bye")))
}

#[test]
fn after_the_servers_close_frame_the_connection_ends_as_the_driver_saw_it() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    h.m.handle_server_close(h.now, conn, server_close_1000_bye());
    let effects = h.drain();
    assert!(
        trigger_names(&effects).is_empty(),
        "Disconnected waits for TCP"
    );
    assert_eq!(last_connection_status(&effects).as_deref(), Some("Closing"));
    assert!(
        !h.m.is_established(),
        "no Send Message after the server's close"
    );
    // TCP ends at once, with messages that were still in the outbox: the
    // driver's ending (and its note) is the one reported.
    let mut ending = server_close_1000_bye();
    ending.reason.push_str(&unsent_note(2));
    h.m.handle_closed(h.now, conn, ending.clone());
    let effects = h.drain();
    assert_eq!(
        triggers(&effects),
        vec![(Trigger::Disconnected, ending.reason)]
    );
    assert!(!effects.contains(&Effect::Abort { conn }));
    // Auto-Reconnect follows, as after any close the client did not ask for.
    assert!(matches!(h.m.state, State::Waiting { .. }));
}

#[test]
fn a_server_that_closes_but_keeps_tcp_open_is_dropped_after_the_close_timeout() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    h.m.handle_server_close(h.now, conn, server_close_1000_bye());
    h.drain();
    // The close timeout comes before the keep-alive ping would.
    assert_eq!(h.fire_deadline(), CLOSE_TIMEOUT);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    assert_eq!(
        triggers(&effects),
        vec![(Trigger::Disconnected, "closed by server: 1000 bye".into())]
    );
    assert!(
        logs(&effects)
            .iter()
            .any(|(level, m)| *level == LogLevel::Normal
                && m.starts_with(
                    "the server sent its close frame but did not close the connection within 5 s"
                ))
    );
    assert!(effects.contains(&Effect::Status {
        key: StatusKey::LastClose,
        value: "1000 bye (closed by server)".into()
    }));
    assert!(
        !effects.iter().any(|e| matches!(
            e,
            Effect::Status {
                key: StatusKey::LastError,
                ..
            }
        )),
        "an orderly close is not an error"
    );
    assert!(h.m.is_idle());
}

#[test]
fn the_servers_answer_to_our_close_keeps_the_disconnect_reason() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    h.m.handle_disconnect(h.now);
    h.drain();
    h.m.handle_server_close(h.now, conn, server_close_1000_bye());
    h.m.handle_closed(h.now, conn, server_close_1000_bye());
    assert_eq!(
        triggers(&h.drain()),
        vec![(Trigger::Disconnected, "Disconnect action".into())]
    );
}

#[test]
fn disconnect_while_connecting_cancels_without_triggers() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_disconnect(h.now);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    assert!(trigger_names(&effects).is_empty());
    assert!(h.m.is_idle());
    // A late TCP success from the aborted attempt changes nothing.
    h.m.handle_tcp_connected(h.now, conn);
    assert!(trigger_names(&h.drain()).is_empty());
}

#[test]
fn disconnect_while_handshaking_drops_tcp_and_fires_disconnected() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.drain();
    h.m.handle_disconnect(h.now);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    assert_eq!(trigger_names(&effects), vec![Trigger::Disconnected]);
    h.m.handle_established(h.now, conn, None);
    assert!(
        trigger_names(&h.drain()).is_empty(),
        "stale handshake ignored"
    );
}

#[test]
fn connect_while_connected_is_ignored_with_a_log_line() {
    let mut h = Harness::new(true, false);
    h.establish();
    h.m.handle_connect(h.now, Some(Secret::new("other".into())));
    let effects = h.drain();
    assert!(!effects.iter().any(|e| matches!(e, Effect::Open { .. })));
    assert!(
        logs(&effects)
            .iter()
            .any(|(_, m)| m.starts_with("Connect ignored: already established"))
    );
}

#[test]
fn connect_during_closing_reconnects_once_closed() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    h.m.handle_disconnect(h.now);
    h.m.handle_connect(h.now, None);
    h.drain();
    h.m.handle_closed(h.now, conn, "closed");
    let effects = h.drain();
    assert_eq!(trigger_names(&effects), vec![Trigger::Disconnected]);
    assert!(open_conn(&effects) != conn);
}

#[test]
fn send_while_not_established_logs_the_state_and_sends_nothing() {
    let mut h = Harness::new(true, false);
    assert!(!h.m.handle_send(h.now, Outbound::Text("hi".into())));
    let effects = h.drain();
    assert!(!effects.iter().any(|e| matches!(e, Effect::Send { .. })));
    let (level, message) = &logs(&effects)[0];
    assert_eq!(*level, LogLevel::Critical);
    assert!(message.contains("not established (state: disconnected)"));
    // Nothing was queued: establishing later sends nothing by itself.
    h.establish();
    assert!(!h.drain().iter().any(|e| matches!(e, Effect::Send { .. })));
}

#[test]
fn send_while_established_sends_and_sets_last_sent() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    assert!(h.m.handle_send(h.now, Outbound::Text("hi".into())));
    let effects = h.drain();
    assert!(effects.contains(&Effect::Send {
        conn,
        message: Outbound::Text("hi".into())
    }));
    // Last Sent is the sent message itself (the driver shows the last of a
    // burst), not a status effect per message.
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::StatusPayload { .. }))
    );
    assert_eq!(
        Outbound::Text("hi".into()).shown(),
        Bytes::from_static(b"hi")
    );
    assert_eq!(
        Outbound::Binary(Bytes::from_static(&[1, 0xff])).shown(),
        Bytes::from_static(b"01ff")
    );
}

#[test]
fn a_burst_of_ten_thousand_messages_fires_ten_thousand_triggers_in_order() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    for i in 0..10_000 {
        h.m.handle_message(h.now, conn, Bytes::from(format!("msg-{i:06}")), false);
    }
    let fired = triggers(&h.drain());
    assert_eq!(fired.len(), 10_000);
    for (i, (t, data)) in fired.iter().enumerate() {
        assert_eq!(*t, Trigger::MessagesReceived);
        assert_eq!(data, &format!("msg-{i:06}"));
    }
}

#[test]
fn a_message_is_handed_straight_back_only_when_no_earlier_effect_waits() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    // Nothing waits: the caller fires it, and nothing is queued.
    let got =
        h.m.receive_message(h.now, conn, Bytes::from_static(b"a"), false);
    assert_eq!(
        got,
        Some(Received {
            data: Bytes::from_static(b"a"),
            binary: false
        })
    );
    assert!(h.drain().is_empty());
    // A send's effects wait: the message queues behind them, in order.
    h.m.handle_send(h.now, Outbound::Text("out".into()));
    let got =
        h.m.receive_message(h.now, conn, Bytes::from_static(&[0xff]), true);
    assert_eq!(got, None);
    let effects = h.drain();
    assert!(
        matches!(effects.first(), Some(Effect::Send { .. })),
        "{effects:?}"
    );
    assert_eq!(
        effects.last(),
        Some(&Effect::Fire {
            trigger: Trigger::MessagesReceived,
            data: Bytes::from_static(b"ff"),
            binary: true
        })
    );
    // Another connection's message is not this one's.
    assert_eq!(
        h.m.receive_message(h.now, ConnId(conn.0 + 1), Bytes::from_static(b"x"), false),
        None
    );
    assert!(h.drain().is_empty());
}

#[test]
fn a_send_is_handed_straight_back_only_when_nothing_waits_before_it() {
    let mut h = Harness::new(true, false);
    // Not established: not handed back (the classic error, in the log).
    assert_eq!(
        h.m.send_message(h.now, Outbound::Text("early".into())),
        None
    );
    assert!(
        h.drain().iter().any(
            |e| matches!(e, Effect::Log { message, .. } if message.contains("not established"))
        )
    );
    let conn = h.establish();
    // Nothing waits: the caller writes it, and it is counted.
    let got = h.m.send_message(h.now, Outbound::Text("a".into()));
    assert_eq!(got, Some((conn, Outbound::Text("a".into()))));
    assert!(h.drain().is_empty());
    assert_eq!(h.m.counters().messages_out, 1);
    assert_eq!(h.m.counters().bytes_out, 1);
    // An effect waits (a Disconnected trigger would, here a Send): the
    // message goes behind it, in order.
    h.m.handle_send(h.now, Outbound::Text("b".into()));
    assert_eq!(h.m.send_message(h.now, Outbound::Text("c".into())), None);
    let sent: Vec<_> = h
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [Outbound::Text("b".into()), Outbound::Text("c".into())]
    );
    assert_eq!(h.m.counters().messages_out, 3);
}

#[test]
fn keep_alive_pings_after_silence_and_declares_a_dead_link_after_the_pong_timeout() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    assert_eq!(h.fire_deadline(), KEEPALIVE_INTERVAL);
    assert_eq!(h.drain().first(), Some(&Effect::Ping { conn }));
    assert_eq!(h.fire_deadline(), PONG_TIMEOUT);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    let fired = triggers(&effects);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].0, Trigger::Disconnected);
    assert!(fired[0].1.contains("no answer to keep-alive ping"));
    assert!(
        last_connection_status(&effects)
            .unwrap()
            .starts_with("Reconnecting in")
    );
}

#[test]
fn a_dead_link_says_how_many_unwritten_messages_went_with_it_and_only_once() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    h.fire_deadline();
    assert_eq!(h.drain().first(), Some(&Effect::Ping { conn }));
    // The driver still held 3 messages for the socket when the pong
    // timeout came.
    h.m.set_unwritten(3);
    h.fire_deadline();
    let effects = h.drain();
    let fired = triggers(&effects);
    assert_eq!(fired[0].0, Trigger::Disconnected);
    assert!(
        fired[0]
            .1
            .ends_with("connection is dead; 3 queued message(s) were not sent"),
        "{}",
        fired[0].1
    );
    // The count belonged to that connection: the next loss does not
    // repeat it.
    let next = h.establish();
    h.m.handle_network(h.now, false);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn: next }));
    assert_eq!(triggers(&effects)[0].1, "network down");
}

#[test]
fn network_down_with_unwritten_messages_says_they_were_not_sent() {
    let mut h = Harness::new(true, true);
    h.establish();
    h.m.set_unwritten(1);
    h.m.handle_network(h.now, false);
    let effects = h.drain();
    assert_eq!(
        triggers(&effects)[0].1,
        "network down; 1 queued message(s) were not sent"
    );
}

#[test]
fn any_inbound_frame_is_proof_of_life() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    h.advance(Duration::from_secs(29));
    h.m.handle_message(h.now, conn, Bytes::from_static(b"x"), false);
    h.drain();
    assert_eq!(h.fire_deadline(), KEEPALIVE_INTERVAL);
    assert_eq!(h.drain().first(), Some(&Effect::Ping { conn }));
    h.advance(Duration::from_secs(5));
    h.m.handle_activity(h.now, conn); // the pong
    assert_eq!(
        h.fire_deadline(),
        KEEPALIVE_INTERVAL,
        "pong resets the clock"
    );
    assert_eq!(h.drain().first(), Some(&Effect::Ping { conn }));
}

#[test]
fn keep_alive_off_sends_no_pings_and_schedules_nothing() {
    let mut h = Harness::new(false, false);
    h.establish();
    assert_eq!(h.m.poll_deadline(), None);
    h.advance(Duration::from_secs(3600));
    h.m.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    assert!(h.m.is_established());
}

#[test]
fn while_reading_is_paused_keep_alive_neither_pings_nor_times_out_and_restarts_on_resume() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    // A ping is out when the host holds back triggers: its pong cannot be
    // read, so its timeout must not drop the link.
    assert_eq!(h.fire_deadline(), KEEPALIVE_INTERVAL);
    assert_eq!(h.drain().first(), Some(&Effect::Ping { conn }));
    h.m.handle_reading_paused(h.now, true);
    assert_eq!(h.m.poll_deadline(), None, "nothing is due while paused");
    h.advance(PONG_TIMEOUT * 10);
    h.m.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    assert!(h.m.is_established());
    // Resumed: the silence counts from now, a fresh ping follows after a
    // whole interval, and a dead link is still found after it.
    h.m.handle_reading_paused(h.now, false);
    assert_eq!(h.fire_deadline(), KEEPALIVE_INTERVAL);
    assert_eq!(h.drain().first(), Some(&Effect::Ping { conn }));
    assert_eq!(h.fire_deadline(), PONG_TIMEOUT);
    assert_eq!(trigger_names(&h.drain()), [Trigger::Disconnected]);
}

#[test]
fn backoff_is_exponential_with_full_jitter_capped_at_sixty_seconds() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    let mut delays = Vec::new();
    for _ in 0..12 {
        let conn = open_conn(&h.drain());
        h.m.handle_closed(h.now, conn, "connection refused");
        h.drain();
        delays.push(h.fire_deadline());
    }
    for (n, d) in delays.iter().enumerate() {
        let ceiling = RECONNECT_MIN
            .saturating_mul(1 << n.min(16) as u32)
            .min(RECONNECT_MAX);
        assert!(*d >= RECONNECT_FLOOR, "attempt {n}: {d:?} under the floor");
        assert!(
            *d <= ceiling.max(RECONNECT_FLOOR),
            "attempt {n}: {d:?} over {ceiling:?}"
        );
    }
    assert!(delays[0] <= Duration::from_secs(1), "first try within 1 s");
    // Jitter: the late delays are not all equal to the cap.
    assert!(delays[7..].iter().any(|d| *d < RECONNECT_MAX));
}

#[test]
fn backoff_sequence_is_deterministic_for_a_seed() {
    let run = || {
        let mut h = Harness::new(true, true);
        h.m.handle_connect(h.now, None);
        (0..8)
            .map(|_| {
                let conn = open_conn(&h.drain());
                h.m.handle_closed(h.now, conn, "refused");
                h.drain();
                h.fire_deadline()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn a_server_that_always_fails_is_never_hammered() {
    // Ten minutes of virtual time against a server that accepts TCP and
    // closes at once: the attempt count stays small.
    let mut h = Harness::new(true, true);
    let start = h.now;
    h.m.handle_connect(h.now, None);
    let mut attempts = 0;
    while h.now.duration_since(start) < Duration::from_secs(600) {
        let conn = open_conn(&h.drain());
        attempts += 1;
        h.m.handle_tcp_connected(h.now, conn);
        h.m.handle_established(h.now, conn, None);
        h.m.handle_closed(h.now, conn, "closed by server: 1011");
        h.drain();
        h.fire_deadline();
    }
    assert!(attempts < 60, "{attempts} attempts in 10 minutes");
}

#[test]
fn backoff_resets_after_a_stable_connection() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    for _ in 0..5 {
        let conn = open_conn(&h.drain());
        h.m.handle_closed(h.now, conn, "refused");
        h.drain();
        h.fire_deadline();
    }
    assert_eq!(h.m.attempt(), 5);
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.m.handle_established(h.now, conn, None);
    h.advance(STABLE_AFTER);
    h.m.handle_message(h.now, conn, Bytes::from_static(b"x"), false);
    h.m.handle_closed(h.now, conn, "closed by server: 1001");
    h.drain();
    assert_eq!(h.m.attempt(), 1, "counted from zero again");
    assert!(h.fire_deadline() <= RECONNECT_MIN);
}

#[test]
fn reconnects_reuse_the_bearer_token_of_the_last_connect() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, Some(Secret::new("tok-1".into())));
    let conn = open_conn(&h.drain());
    h.m.handle_closed(h.now, conn, "refused");
    h.drain();
    h.fire_deadline();
    let effects = h.drain();
    let token = effects.iter().find_map(|e| match e {
        Effect::Open { bearer_token, .. } => bearer_token.clone(),
        _ => None,
    });
    assert_eq!(token.unwrap().expose(), "tok-1");
}

#[test]
fn connect_during_backoff_connects_at_once_and_resets_the_count() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_closed(h.now, conn, "refused");
    h.drain();
    h.m.handle_connect(h.now, None);
    let effects = h.drain();
    assert!(open_conn(&effects) != conn);
    assert_eq!(h.m.attempt(), 0);
}

#[test]
fn disconnect_during_backoff_cancels_the_reconnect() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_closed(h.now, conn, "refused");
    h.m.handle_disconnect(h.now);
    h.drain();
    assert!(h.m.is_idle());
    assert_eq!(h.m.poll_deadline(), None);
}

#[test]
fn connect_timeout_aborts_without_triggers_and_handshake_timeout_fires_disconnected() {
    let mut h = Harness::new(true, false);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    assert_eq!(h.fire_deadline(), CONNECT_TIMEOUT);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    assert!(trigger_names(&effects).is_empty());

    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.drain();
    h.fire_deadline();
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    assert_eq!(trigger_names(&effects), vec![Trigger::Disconnected]);
}

#[test]
fn shutdown_closes_cleanly_and_fires_disconnected_once() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    h.m.handle_shutdown(h.now);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Close {
        conn,
        code: 1000,
        reason: String::new()
    }));
    assert!(!h.m.is_idle());
    h.m.handle_closed(h.now, conn, "closed");
    let effects = h.drain();
    assert_eq!(
        triggers(&effects),
        vec![(Trigger::Disconnected, "instance removed".into())]
    );
    assert!(h.m.is_idle(), "no reconnect after shutdown");
    h.m.handle_connect(h.now, None);
    assert!(h.drain().is_empty(), "nothing starts after shutdown");
}

#[test]
fn network_down_drops_the_connection_and_network_up_reconnects() {
    let mut h = Harness::new(true, true);
    let conn = h.establish();
    h.m.handle_network(h.now, false);
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    assert_eq!(trigger_names(&effects), vec![Trigger::Disconnected]);
    assert!(h.m.is_idle());
    assert_eq!(
        h.m.poll_deadline(),
        None,
        "no retries while the network is down"
    );
    h.m.handle_network(h.now, true);
    let effects = h.drain();
    assert!(open_conn(&effects) != conn);
}

#[test]
fn network_up_does_not_reconnect_without_auto_reconnect() {
    let mut h = Harness::new(true, false);
    h.establish();
    h.m.handle_network(h.now, false);
    h.m.handle_network(h.now, true);
    let effects = h.drain();
    assert!(!effects.iter().any(|e| matches!(e, Effect::Open { .. })));
}

#[test]
fn events_for_an_old_connection_are_ignored() {
    let mut h = Harness::new(true, true);
    let old = h.establish();
    h.m.handle_closed(h.now, old, "reset");
    h.drain();
    h.fire_deadline();
    let new = open_conn(&h.drain());
    h.m.handle_message(h.now, old, Bytes::from_static(b"late"), false);
    h.m.handle_closed(h.now, old, "late close");
    assert!(h.drain().is_empty());
    assert_eq!(h.m.current_conn(), Some(new));
}

#[test]
fn extended_logging_off_keeps_decisions_out_of_the_log() {
    let mut s = settings(true, true);
    s.extended_logging = false;
    let mut m = Machine::new(s, 1);
    let now = Instant::now();
    m.handle_connect(now, None);
    let effects: Vec<_> = std::iter::from_fn(|| m.poll_effect()).collect();
    assert!(logs(&effects).iter().all(|(l, _)| *l != LogLevel::Extended));
}

fn status_of(effects: &[Effect], key: StatusKey) -> Option<String> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Status { key: k, value } if *k == key => Some(value.clone()),
        _ => None,
    })
}

fn fatal(reason: &str) -> Ending {
    Ending {
        fatal: true,
        ..Ending::error(Stage::HttpUpgrade, reason.to_owned())
    }
}

#[test]
fn a_fatal_failure_gives_up_at_once_without_retrying() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.m.handle_closed(h.now, conn, fatal("HTTP upgrade refused: 401 Unauthorized"));
    let effects = h.drain();
    assert_eq!(
        trigger_names(&effects),
        vec![Trigger::Connected, Trigger::Disconnected, Trigger::GaveUp]
    );
    assert_eq!(
        status_of(&effects, StatusKey::LastError).unwrap(),
        "HTTP upgrade refused: 401 Unauthorized (stage: HTTP upgrade)"
    );
    assert_eq!(
        status_of(&effects, StatusKey::NextRetry).unwrap(),
        "gave up"
    );
    assert!(h.m.is_idle());
    assert_eq!(h.m.poll_deadline(), None, "no retry scheduled");
    // The network coming back does not undo a Gave Up.
    h.m.handle_network(h.now, false);
    h.m.handle_network(h.now, true);
    assert!(!h.drain().iter().any(|e| matches!(e, Effect::Open { .. })));
}

#[test]
fn max_attempts_counts_the_first_connect_and_then_gives_up() {
    let mut s = settings(true, true);
    s.reconnect.max_attempts = 3;
    let mut m = Machine::new(s, 3);
    let mut now = Instant::now();
    m.handle_connect(now, Some(Secret::new("t".into())));
    let mut opens = 0;
    let mut gave_up = Vec::new();
    for _ in 0..10 {
        let effects: Vec<_> = std::iter::from_fn(|| m.poll_effect()).collect();
        gave_up.extend(
            triggers(&effects)
                .into_iter()
                .filter(|(t, _)| *t == Trigger::GaveUp),
        );
        let Some(conn) = effects.iter().find_map(|e| match e {
            Effect::Open { conn, .. } => Some(*conn),
            _ => None,
        }) else {
            break;
        };
        opens += 1;
        m.handle_closed(now, conn, Ending::error(Stage::Tcp, "refused".into()));
        if let Some(d) = m.poll_deadline() {
            now = d;
            m.handle_timeout(now);
        }
    }
    let effects: Vec<_> = std::iter::from_fn(|| m.poll_effect()).collect();
    gave_up.extend(
        triggers(&effects)
            .into_iter()
            .filter(|(t, _)| *t == Trigger::GaveUp),
    );
    assert_eq!(opens, 3);
    assert_eq!(gave_up.len(), 1);
    assert!(
        gave_up[0]
            .1
            .contains("3 connection attempt(s) in a row failed")
    );
    // Reset Reconnect starts again, with the last Connect's token.
    m.handle_reset_reconnect(now);
    let effects: Vec<_> = std::iter::from_fn(|| m.poll_effect()).collect();
    let token = effects.iter().find_map(|e| match e {
        Effect::Open { bearer_token, .. } => bearer_token.clone(),
        _ => None,
    });
    assert_eq!(token.unwrap().expose(), "t");
    assert_eq!(m.attempt(), 0);
}

#[test]
fn reset_reconnect_without_a_connect_does_nothing() {
    let mut h = Harness::new(true, true);
    h.m.handle_reset_reconnect(h.now);
    let effects = h.drain();
    assert!(!effects.iter().any(|e| matches!(e, Effect::Open { .. })));
    assert!(logs(&effects)[0].1.contains("nothing to retry"));
}

#[test]
fn reconnects_and_next_retry_are_reported() {
    let mut h = Harness::new(true, true);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_closed(h.now, conn, Ending::error(Stage::Tcp, "refused".into()));
    let effects = h.drain();
    let at = effects.iter().find_map(|e| match e {
        Effect::StatusAt {
            key: StatusKey::NextRetry,
            at,
        } => Some(*at),
        _ => None,
    });
    assert_eq!(at, h.m.poll_deadline(), "Next Retry is the scheduled time");
    h.fire_deadline();
    let effects = h.drain();
    assert_eq!(status_of(&effects, StatusKey::Reconnects).unwrap(), "1");
    assert_eq!(status_of(&effects, StatusKey::NextRetry).unwrap(), "");
}

#[test]
fn idle_timeout_declares_a_silent_link_dead_even_without_keep_alive() {
    let mut s = settings(false, false);
    s.timing.idle_timeout = Some(Duration::from_secs(5));
    let mut h = Harness {
        m: Machine::new(s, 1),
        now: Instant::now(),
    };
    let conn = h.establish();
    h.advance(Duration::from_secs(3));
    h.m.handle_activity(h.now, conn);
    assert_eq!(h.fire_deadline(), Duration::from_secs(5));
    let effects = h.drain();
    assert!(effects.contains(&Effect::Abort { conn }));
    let fired = triggers(&effects);
    assert!(fired[0].1.contains("(Idle Timeout)"), "{fired:?}");
    assert!(
        status_of(&effects, StatusKey::LastError)
            .unwrap()
            .ends_with("(stage: Idle timeout)")
    );
}

#[test]
fn a_pong_reports_the_round_trip_time() {
    let mut h = Harness::new(true, false);
    let conn = h.establish();
    h.fire_deadline();
    h.drain();
    h.advance(Duration::from_millis(42));
    h.m.handle_pong(h.now, conn);
    assert_eq!(
        status_of(&h.drain(), StatusKey::PingRtt).as_deref(),
        Some("42")
    );
}

#[test]
fn the_negotiated_subprotocol_and_close_codes_are_shown() {
    let mut h = Harness::new(true, false);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.m.handle_established(h.now, conn, Some("v1.foo".into()));
    let effects = h.drain();
    assert_eq!(
        status_of(&effects, StatusKey::Subprotocol).unwrap(),
        "v1.foo"
    );
    h.m.handle_closed(h.now, conn, Ending::closed_by_server(Some((4000, "bye"))));
    let effects = h.drain();
    assert_eq!(
        status_of(&effects, StatusKey::LastClose).unwrap(),
        "4000 bye (closed by server)"
    );
    assert_eq!(
        status_of(&effects, StatusKey::LastError),
        None,
        "a close is no error"
    );
}

#[test]
fn reconnect_delays_follow_the_configured_policy() {
    let mut s = settings(true, true);
    s.reconnect.min_delay = Duration::from_secs(5);
    s.reconnect.max_delay = Duration::from_secs(7);
    let mut h = Harness {
        m: Machine::new(s, 9),
        now: Instant::now(),
    };
    h.m.handle_connect(h.now, None);
    for n in 0..6 {
        let conn = open_conn(&h.drain());
        h.m.handle_closed(h.now, conn, "refused");
        h.drain();
        let d = h.fire_deadline();
        let ceiling = if n == 0 { 5 } else { 7 };
        assert!(d <= Duration::from_secs(ceiling), "attempt {n}: {d:?}");
    }
}

fn messaging_harness(messaging: Messaging) -> Harness {
    let mut s = settings(true, true);
    s.messaging = messaging;
    Harness {
        m: Machine::new(s, 5),
        now: Instant::now(),
    }
}

fn sent(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                message: Outbound::Text(t),
                ..
            } => Some(t.to_string()),
            _ => None,
        })
        .collect()
}

fn text(s: &str) -> Outbound {
    Outbound::Text(s.to_owned().into())
}

#[test]
fn queued_messages_are_flushed_in_order_on_established_before_later_sends() {
    let mut h = messaging_harness(Messaging {
        queue_while_disconnected: true,
        ..Messaging::default()
    });
    for i in 0..3 {
        assert!(h.m.handle_send(h.now, text(&format!("q{i}"))));
    }
    assert_eq!(h.m.counters().queue_depth, 3);
    h.m.handle_connect(h.now, None);
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.m.handle_established(h.now, conn, None);
    h.m.handle_send(h.now, text("later"));
    assert_eq!(sent(&h.drain()), vec!["q0", "q1", "q2", "later"]);
    assert_eq!(h.m.counters().queue_depth, 0);
    assert_eq!(h.m.counters().messages_out, 4);
}

#[test]
fn queue_keeps_messages_across_a_lost_connection() {
    let mut h = messaging_harness(Messaging {
        queue_while_disconnected: true,
        ..Messaging::default()
    });
    let conn = h.establish();
    h.m.handle_closed(h.now, conn, "reset");
    h.drain();
    h.m.handle_send(h.now, text("while down"));
    h.fire_deadline(); // reconnect
    let conn = open_conn(&h.drain());
    h.m.handle_tcp_connected(h.now, conn);
    h.m.handle_established(h.now, conn, None);
    assert_eq!(sent(&h.drain()), vec!["while down"]);
}

#[test]
fn expired_messages_are_dropped_and_counted_at_their_ttl() {
    let mut h = messaging_harness(Messaging {
        queue_while_disconnected: true,
        queue_ttl: Some(Duration::from_secs(60)),
        ..Messaging::default()
    });
    h.m.handle_send(h.now, text("old"));
    h.advance(Duration::from_secs(30));
    h.m.handle_send(h.now, text("young"));
    assert_eq!(
        h.fire_deadline(),
        Duration::from_secs(30),
        "the old one's expiry"
    );
    let effects = h.drain();
    assert!(logs(&effects).iter().any(|(_, m)| {
        m.contains("1 queued message(s) dropped: older than Queue Message TTL (60 s)")
    }));
    assert_eq!(h.m.counters().dropped, 1);
    assert_eq!(h.m.counters().queue_depth, 1);
    let conn = h.establish();
    let _ = conn;
    assert_eq!(h.m.counters().messages_out, 1);
}

#[test]
fn drop_policies_drop_the_oldest_or_refuse_the_newest() {
    for (drop_oldest, expect) in [(true, vec!["b", "c"]), (false, vec!["a", "b"])] {
        let mut h = messaging_harness(Messaging {
            queue_while_disconnected: true,
            queue_size: 2,
            drop_oldest,
            ..Messaging::default()
        });
        assert!(h.m.handle_send(h.now, text("a")));
        assert!(h.m.handle_send(h.now, text("b")));
        assert_eq!(h.m.handle_send(h.now, text("c")), drop_oldest);
        assert_eq!(h.m.counters().dropped, 1);
        h.drain();
        h.m.handle_connect(h.now, None);
        let conn = open_conn(&h.drain());
        h.m.handle_tcp_connected(h.now, conn);
        h.m.handle_established(h.now, conn, None);
        assert_eq!(sent(&h.drain()), expect);
    }
}

#[test]
fn clear_queue_drops_and_counts_everything_waiting() {
    let mut h = messaging_harness(Messaging {
        queue_while_disconnected: true,
        ..Messaging::default()
    });
    h.m.handle_send(h.now, text("a"));
    h.m.handle_send(h.now, text("b"));
    h.m.handle_clear_queue(h.now);
    assert_eq!(
        h.m.counters(),
        Counters {
            dropped: 2,
            ..Counters::default()
        }
    );
}

#[test]
fn max_send_rate_paces_sends_in_order_without_dropping() {
    let mut h = messaging_harness(Messaging {
        max_send_rate: 10,
        queue_size: 1000,
        ..Messaging::default()
    });
    h.establish();
    for i in 0..50 {
        h.m.handle_send(h.now, text(&format!("m{i}")));
    }
    let mut out = sent(&h.drain());
    assert_eq!(out.len(), 1, "one token at first");
    // Count what went out after each virtual second.
    let start = h.now;
    let mut per_second = Vec::new();
    while out.len() < 50 {
        h.fire_deadline();
        out.extend(sent(&h.drain()));
        let elapsed = h.now.duration_since(start).as_secs_f64();
        per_second.push((elapsed, out.len()));
    }
    for (elapsed, count) in per_second {
        assert!(
            count as f64 <= 1.0 + 10.0 * elapsed + 1e-6,
            "{count} by {elapsed} s"
        );
    }
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(out, expected, "all sent, in order");
    assert_eq!(h.m.counters().dropped, 0);
}

#[test]
fn paced_messages_are_dropped_and_counted_when_the_link_drops_without_the_offline_queue() {
    let mut h = messaging_harness(Messaging {
        max_send_rate: 1,
        ..Messaging::default()
    });
    let conn = h.establish();
    for _ in 0..5 {
        h.m.handle_send(h.now, text("x"));
    }
    h.m.handle_closed(h.now, conn, "reset");
    let effects = h.drain();
    assert_eq!(h.m.counters().dropped, 4);
    assert!(
        logs(&effects)
            .iter()
            .any(|(_, m)| m.contains("4 queued message(s) dropped"))
    );
}

#[test]
fn trigger_rate_limit_suppresses_and_counts_the_excess() {
    let mut h = messaging_harness(Messaging {
        trigger_rate_limit: 100,
        ..Messaging::default()
    });
    let conn = h.establish();
    for i in 0..1000 {
        h.m.handle_message(h.now, conn, Bytes::from(format!("{i}")), false);
    }
    let fired = triggers(&h.drain()).len();
    let c = h.m.counters();
    assert_eq!(fired, 100, "a burst of one second's worth");
    assert_eq!(c.suppressed, 900);
    assert_eq!(c.messages_in, 1000, "every message is counted in");
    h.advance(Duration::from_secs(1));
    h.m.handle_message(h.now, conn, Bytes::from_static(b"later"), false);
    assert_eq!(triggers(&h.drain()).len(), 1);
}

#[test]
fn binary_messages_fire_hex_or_text() {
    for (as_text, payload, expect) in [
        (false, &b"\x00\xff"[..], "00ff"),
        (true, &b"hi"[..], "hi"),
        (true, &b"\xff"[..], "ff"),
    ] {
        let mut h = messaging_harness(Messaging {
            binary_as_text: as_text,
            ..Messaging::default()
        });
        let conn = h.establish();
        h.m.handle_message(h.now, conn, Bytes::copy_from_slice(payload), true);
        let effects = h.drain();
        let fired: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Fire { data, binary, .. } => Some((data.clone(), *binary)),
                _ => None,
            })
            .collect();
        assert_eq!(
            fired,
            vec![(Bytes::copy_from_slice(expect.as_bytes()), true)]
        );
    }
}

/// Every Connection State value the effects carry, in order.
fn connection_words(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Status {
                key: StatusKey::ConnectionState,
                value,
            } => Some(value.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn connection_state_follows_connection_status_as_one_word() {
    let mut h = Harness::new(true, true);
    assert_eq!(h.m.connection_state(), &ConnectionState::INITIAL);
    h.m.handle_connect(h.now, None);
    let mut all = h.drain();
    let conn = open_conn(&all);
    assert_eq!(
        h.m.connection_state(),
        &ConnectionState::Connecting { attempt: 1 }
    );
    h.m.handle_tcp_connected(h.now, conn);
    assert_eq!(h.m.connection_state(), &ConnectionState::Handshaking);
    h.m.handle_established(h.now, conn, None);
    h.m.handle_server_close(h.now, conn, Ending::closed_by_server(Some((1001, ""))));
    assert_eq!(h.m.connection_state(), &ConnectionState::Closing);
    h.m.handle_closed(h.now, conn, Ending::closed_by_server(Some((1001, ""))));
    all.extend(h.drain());
    assert_eq!(
        connection_words(&all),
        [
            "connecting",
            "handshaking",
            "established",
            "closing",
            "disconnected",
            "reconnecting"
        ]
    );
    let ConnectionState::Reconnecting {
        at,
        delay,
        attempt,
        after,
    } = h.m.connection_state().clone()
    else {
        panic!("reconnecting: {:?}", h.m.connection_state());
    };
    assert_eq!(attempt, 2);
    assert_eq!(at, h.now + delay);
    assert_eq!(Some(at), h.m.poll_deadline());
    assert_eq!(
        after,
        Loss::Disconnected {
            ending: Ending::closed_by_server(Some((1001, "")))
        }
    );
    assert_eq!(
        after.ending().close,
        Some(Closure::by_server(Some(1001), ""))
    );
    assert_eq!(
        status_of(&all, StatusKey::LastClose).unwrap(),
        "1001 (closed by server)"
    );
    // The words and the sentence come from the same state.
    assert_eq!(
        last_connection_status(&all).unwrap(),
        crate::presentation::connection_status(h.m.connection_state())
    );

    h.m.handle_network(h.now, false);
    assert_eq!(connection_words(&h.drain()), ["waiting-for-network"]);
    h.m.handle_network(h.now, true);
    let conn = open_conn(&h.drain());
    h.m.handle_closed(h.now, conn, fatal("HTTP upgrade refused: 401 Unauthorized"));
    assert_eq!(connection_words(&h.drain()), ["gave-up"]);
    assert!(matches!(
        h.m.connection_state(),
        ConnectionState::GaveUp {
            why: GiveUp::Fatal { .. }
        }
    ));
    h.m.handle_connect(h.now, None);
    h.m.handle_disconnect(h.now);
    let effects = h.drain();
    assert_eq!(connection_words(&effects), ["connecting", "disconnected"]);
    assert_eq!(
        last_connection_status(&effects).unwrap(),
        "Disconnected: Disconnect action"
    );
}
