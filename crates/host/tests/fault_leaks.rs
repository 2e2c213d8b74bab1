//! Fault loops that watch memory and descriptors: a connection reset 500
//! times in a row, and a million small messages as fast as the server can
//! send them. Alone in their test binary (and one at a time) because they
//! measure the whole process: VmRSS and /proc/self/fd.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use support::{
    EchoServer, Peer, Recorder, ScriptServer, TIMEOUT, assert_invariants, burst_message,
    connect_instance, disconnected, fault_instance, fault_properties, open_fds, rss_kib,
};
use wsio::Trigger;

/// The tests measure the whole process: one at a time.
static ALONE: Mutex<()> = Mutex::new(());

#[test]
fn five_hundred_resets_in_a_row_leak_neither_memory_nor_descriptors() {
    let _alone = ALONE.lock().unwrap_or_else(|p| p.into_inner());
    let server = ScriptServer::after_upgrade(Peer::reset);
    // Connect drives each cycle: no backoff to wait out.
    let (rec, instance) = fault_instance(server.port(), json!({"Auto-Reconnect": false}));
    let mut baseline = None;
    for cycle in 1..=500 {
        rec.expect("Disconnected", disconnected(cycle));
        // Both ends of the connection are gone before the next one.
        assert!(server.wait_for(|o| o.disconnects == cycle, TIMEOUT));
        if cycle == 50 {
            baseline = Some((rss_kib(), open_fds()));
        }
        instance
            .action(
                "Connect",
                &json!({"Bearer Token": support::TOKEN}),
                &[] as &[&str],
            )
            .unwrap();
    }
    rec.expect("the last Disconnected", disconnected(501));
    assert!(server.wait_for(|o| o.disconnects == 501, TIMEOUT));
    let (rss_before, fds_before) = baseline.expect("measured at cycle 50");
    let (rss_after, fds_after) = (rss_kib(), open_fds());
    println!(
        "RSS {rss_before} KiB after 50 resets, {rss_after} KiB after 500; fds {fds_before} → {fds_after}"
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over 450 resets"
    );
    // A leak would show as hundreds; a socket still closing, as one or two.
    assert!(
        fds_after <= fds_before + 2,
        "descriptors grew from {fds_before} to {fds_after} over 450 resets"
    );
    // Each cycle reached Connected and ended once; a reset may come before
    // or after the client read the 101, so Established is not counted.
    let e = rec.snapshot();
    assert_eq!(e.count(Trigger::Connected), 501);
    assert_invariants(&rec, instance, Some(0));
}

#[test]
fn a_million_small_messages_as_fast_as_the_server_sends_fire_a_million_triggers_in_order() {
    let _alone = ALONE.lock().unwrap_or_else(|p| p.into_inner());
    const COUNT: usize = 1_000_000;
    let server = EchoServer::start_burst(COUNT);
    // Checked as they arrive (msg-000001, msg-000002, …), not kept.
    let rec = Recorder::checking(|n, data| burst_message(n + 1).into_data().as_ref() == data);
    let rss_before = rss_kib();
    let instance = connect_instance(&rec, fault_properties(server.port()));
    rec.expect_within("a million messages", Duration::from_secs(120), |e| {
        e.message_count == COUNT
    });
    rec.expect("Messages In", |e| {
        e.status_value("MessagesIn") == Some(COUNT.to_string())
    });
    rec.expect("Last Received", |e| {
        e.status_value("LastReceived").as_deref() == burst_message(COUNT).to_text().ok()
    });
    let rss_after = rss_kib();
    println!("RSS {rss_before} KiB before a million messages, {rss_after} KiB after");
    // The recorder keeps two bytes per trigger; the module must keep nothing.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over a million messages"
    );
    let e = rec.snapshot();
    assert_eq!(e.count(Trigger::Disconnected), 0, "{}", e.describe());
    assert_eq!(e.triggers.len(), COUNT + 2);
    assert_invariants(&rec, instance, Some(COUNT));
}
