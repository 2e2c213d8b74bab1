//! Fault injection, network: a link that goes silent after the connection
//! is up (half-open), an address that swallows every packet (black hole),
//! and a host name that does not resolve.
//!
//! The first two need a network namespace (`support::NetNs`: a veth pair,
//! then `tc` dropping every packet), so they run as root with iproute2; a
//! test that cannot create one prints `SKIPPED …` and passes, unless
//! `WSIO_REQUIRE_NETNS=1` (set by `.ci/run`). The namespace is removed
//! however the test ends. No test sleeps.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    NetNs, Recorder, SLACK, ServerProcess, assert_invariants, assert_last_error, attempts_between,
    connect_instance, demo_path, ending, fault_properties, one_connection, status, with,
};
use wsio::Trigger;

/// The demo server's port inside a namespace (each test has its own).
const PORT: u16 = 8765;

/// The fault properties for the demo server on [`PORT`] inside `netns`,
/// with `more`.
fn in_netns(netns: &NetNs, more: Value) -> Value {
    let server = json!({"Hostname": netns.ns_addr.to_string(), "Path": demo_path("demo")});
    with(with(fault_properties(PORT), server), more)
}

#[test]
fn a_half_open_link_is_found_by_keep_alive_within_interval_plus_timeout_and_healed_links_reconnect()
{
    let Some(netns) = NetNs::create_or_skip("half-open link") else {
        return;
    };
    let _server = ServerProcess::start_in(&netns, SocketAddr::from((netns.ns_addr, PORT)));
    let rec = Recorder::new();
    let properties = in_netns(
        &netns,
        json!({"Keep Alive Interval": 1, "Pong Timeout": 1, "Connect Timeout": 2}),
    );
    let instance = connect_instance(&rec, properties);
    rec.expect("WebSocket Established", |e| {
        e.count(Trigger::Established) == 1
    });
    instance.send_message("before").unwrap();
    rec.expect("the echo", |e| e.message_count == 1);
    // Keep-alive works while the path does: a ping's round trip is shown.
    rec.expect("a keep-alive round trip", |e| {
        e.status_value("PingRtt").is_some()
    });

    // Every packet now vanishes: no FIN, no RST, nothing.
    let how = netns.drop_all_packets();
    let cut = Instant::now();
    println!("packets dropped with {how}");
    rec.expect_within(
        "the dead link detected",
        Duration::from_secs(1 + 1) + SLACK,
        |e| e.count(Trigger::Disconnected) == 1,
    );
    println!("half-open link detected {:?} after the cut", cut.elapsed());
    let e = rec.snapshot();
    let reason = ending(&e, &one_connection(1));
    assert_eq!(
        reason,
        "no answer to keep-alive ping within 1 s: connection is dead"
    );
    assert_last_error(&e, &reason, "Ping timeout");
    assert_eq!(
        status(&e, "LastClose"),
        "1006 (connection dropped by client)"
    );
    // While the path is down, attempts time out and are retried.
    rec.expect_within(
        "an attempt timing out on the dead path",
        Duration::from_secs(1 + 2) + SLACK,
        |e| e.status_has("LastError", "TCP connect timed out after 2 s"),
    );

    netns.heal();
    rec.expect_within(
        "re-established once the path heals",
        Duration::from_secs(2 + 1) + SLACK,
        |e| e.count(Trigger::Established) == 2,
    );
    instance.send_message("after").unwrap();
    rec.expect("the echo after", |e| e.message_count == 2);
    assert_eq!(rec.read(|e| e.texts()), ["before", "after"]);
    assert_invariants(&rec, instance, Some(2));
}

#[test]
fn a_connect_to_a_black_holed_address_fails_after_the_connect_timeout_without_hanging_or_spinning()
{
    let Some(netns) = NetNs::create_or_skip("black-holed address") else {
        return;
    };
    println!("packets dropped with {}", netns.drop_all_packets());
    let rec = Recorder::new();
    let properties = in_netns(&netns, json!({"Connect Timeout": 2}));
    let started = Instant::now();
    let instance = connect_instance(&rec, properties);
    rec.expect_within(
        "the first attempt to fail",
        Duration::from_secs(2) + SLACK,
        |e| e.status_has("LastError", "(stage: Connect timeout)"),
    );
    let failed_after = started.elapsed();
    assert!(
        failed_after >= Duration::from_millis(1900),
        "failed after {failed_after:?}, before the 2 s Connect Timeout"
    );
    let e = rec.snapshot();
    assert!(e.triggers.is_empty(), "no Connected: {:?}", e.triggers);
    assert_eq!(
        status(&e, "LastError"),
        "TCP connect timed out after 2 s (Connect Timeout) (stage: Connect timeout)"
    );
    // "Reconnecting in 0.4 s (attempt 2); Connect failed: TCP connect …"
    assert!(
        status(&e, "ConnectionStatus")
            .ends_with("Connect failed: TCP connect timed out after 2 s (Connect Timeout)"),
        "{}",
        e.describe()
    );

    // No busy loop, no hang: in a measured window, attempts go on but each
    // takes the whole Connect Timeout (at most 1 + 4.5 / 2.1 = 3 of them).
    let window = Duration::from_millis(4500);
    let from = Instant::now();
    let too_many = rec.wait_for(|e| attempts_between(e, from, Instant::now()) > 3, window);
    let attempts = rec.read(|e| attempts_between(e, from, Instant::now()));
    assert!(!too_many, "{attempts} attempts in {window:?}: a busy loop");
    assert!(attempts >= 1, "no attempt in {window:?}: the module hangs");

    // The path heals and a server starts: the next attempt gets through.
    netns.heal();
    let _server = ServerProcess::start_in(&netns, SocketAddr::from((netns.ns_addr, PORT)));
    rec.expect_within(
        "established once the path works",
        Duration::from_secs(2 + 1) + SLACK,
        |e| e.count(Trigger::Established) == 1,
    );
    assert_invariants(&rec, instance, Some(0));
}

#[test]
fn a_host_name_that_does_not_resolve_fails_fast_at_the_dns_stage() {
    // RFC 2606: .invalid never resolves, online or off.
    let rec = Recorder::new();
    let properties = with(
        fault_properties(80),
        json!({"Hostname": "wsio-fault-suite.invalid"}),
    );
    let started = Instant::now();
    let instance = connect_instance(&rec, properties);
    rec.expect("the DNS failure", |e| {
        e.status_has("LastError", "(stage: DNS)")
    });
    let took = started.elapsed();
    println!("the DNS failure took {took:?}");
    // It fails on the answer, not on the 10 s Connect Timeout.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let e = rec.snapshot();
    assert!(e.triggers.is_empty(), "no Connected: {:?}", e.triggers);
    assert!(
        status(&e, "LastError").starts_with("DNS lookup of wsio-fault-suite.invalid failed"),
        "{}",
        status(&e, "LastError")
    );
    assert!(
        status(&e, "ConnectionStatus")
            .contains("; Connect failed: DNS lookup of wsio-fault-suite.invalid failed"),
        "{}",
        e.describe()
    );
    // It keeps retrying at the backoff's pace (checked by the invariants).
    rec.expect("a second attempt", |e| e.attempts.len() >= 2);
    assert_invariants(&rec, instance, Some(0));
}
