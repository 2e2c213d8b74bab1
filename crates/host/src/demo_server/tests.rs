//! The hub and URL parsing in isolation; the server over real sockets is
//! tested in `tests/demo_server.rs`.

use super::*;

fn hub(capacity: usize) -> (Arc<Hub>, Receiver<()>) {
    let (alive, all_gone) = smol::channel::bounded(1);
    (Arc::new(Hub::new(capacity, alive)), all_gone)
}

fn text(s: &str) -> Message {
    Message::text(s.to_string())
}

#[test]
fn parse_target_accepts_piesocket_urls() {
    let target = parse_target("/v3/1", Some("api_key=demo&notify_self=1")).unwrap();
    assert_eq!(
        target,
        Target {
            channel: "1".into(),
            notify_self: true
        }
    );
    let target = parse_target("/v3/lobby", Some("notify_self&api_key=k")).unwrap();
    assert!(target.notify_self, "bare notify_self counts");
    let target = parse_target("/v3/lobby", Some("api_key=k")).unwrap();
    assert!(!target.notify_self);
}

#[test]
fn parse_target_refuses_missing_or_empty_api_key_with_4001() {
    for query in [
        None,
        Some(""),
        Some("api_key="),
        Some("api_key"),
        Some("notify_self=1"),
    ] {
        let refusal = parse_target("/v3/1", query).unwrap_err();
        assert_eq!(u16::from(refusal.code), 4001, "query {query:?}");
        assert_eq!(refusal.reason.as_str(), REASON_NO_API_KEY);
    }
}

#[test]
fn parse_target_refuses_other_paths_with_4004() {
    for path in ["/", "/v3", "/v3/", "/v2/1", "/v3/1/extra", "/chat"] {
        let refusal = parse_target(path, Some("api_key=k")).unwrap_err();
        assert_eq!(u16::from(refusal.code), 4004, "path {path:?}");
        assert!(refusal.reason.contains("/v3/<channel>"));
    }
}

#[test]
fn broadcast_skips_sender_unless_notify_self() {
    let (hub, _all_gone) = hub(8);
    let quiet = hub.join("c", false).unwrap();
    let echoing = hub.join("c", true).unwrap();
    let elsewhere = hub.join("other", true).unwrap();

    assert_eq!(hub.broadcast("c", quiet.id, &text("a")), 1);
    assert_eq!(hub.broadcast("c", echoing.id, &text("b")), 2);

    assert_eq!(quiet.queue.try_recv().unwrap(), text("b"));
    assert!(quiet.queue.try_recv().is_err());
    assert_eq!(echoing.queue.try_recv().unwrap(), text("a"));
    assert_eq!(echoing.queue.try_recv().unwrap(), text("b"));
    assert!(elsewhere.queue.try_recv().is_err());
}

#[test]
fn full_queue_kicks_only_the_slow_client_with_1008() {
    let (hub, _all_gone) = hub(2);
    let sender = hub.join("c", false).unwrap();
    let slow = hub.join("c", false).unwrap();
    let fast = hub.join("c", false).unwrap();

    for n in 0..3 {
        hub.broadcast("c", sender.id, &text(&n.to_string()));
        // `fast` keeps up; `slow` never reads.
        assert_eq!(fast.queue.try_recv().unwrap(), text(&n.to_string()));
    }

    let kick = slow.kick.try_recv().expect("slow client kicked");
    assert_eq!(u16::from(kick.code), 1008);
    assert_eq!(kick.reason.as_str(), REASON_TOO_SLOW);
    // It keeps what was queued before the overflow and gets nothing after.
    assert_eq!(slow.queue.len(), 2);
    assert_eq!(hub.broadcast("c", sender.id, &text("after")), 1);
    assert!(fast.kick.try_recv().is_err());
}

#[test]
fn shut_down_kicks_everyone_and_refuses_new_members() {
    let (hub, all_gone) = hub(8);
    let a = hub.join("x", false).unwrap();
    let b = hub.join("y", true).unwrap();
    hub.shut_down(close_frame(1001, REASON_SHUTTING_DOWN));
    for member in [&a, &b] {
        assert_eq!(u16::from(member.kick.try_recv().unwrap().code), 1001);
    }
    assert!(hub.join("x", false).is_none());
    // The shutdown wait ends exactly when the last membership is gone.
    drop(a);
    assert!(all_gone.try_recv().is_err() && !all_gone.is_closed());
    drop(b);
    assert!(all_gone.is_closed());
}

#[test]
fn leaving_removes_empty_channels() {
    let (hub, _all_gone) = hub(8);
    let member = hub.join("x", false).unwrap();
    drop(member);
    assert!(hub.lock().channels.is_empty());
}
