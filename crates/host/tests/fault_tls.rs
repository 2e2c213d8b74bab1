//! Fault injection, TLS: a certificate from an unknown CA, an expired one,
//! one for another host name, and a server that takes the ClientHello and
//! never answers. Certificate failures are fatal (retrying cannot help):
//! Gave Up fires at once and nothing is retried until the server is fixed
//! and Reset Reconnect is run. A stalled handshake is not: the Connect
//! Timeout ends it and the module retries.
//!
//! Each test: the fault, the triggers in order, the status afterwards,
//! recovery, then `support::assert_invariants`. No test sleeps.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Credential, EchoOptions, EchoServer, QUIET, Recorder, SLACK, ScriptServer, assert_invariants,
    assert_last_error, connect_instance, ending, expect_handshake_timeout, fault_properties,
    status, test_pki, with,
};
use wsio::Trigger;

/// WSS to 127.0.0.1:`port`, trusting the test CA.
fn wss(port: u16) -> Value {
    with(
        fault_properties(port),
        json!({"Protocol": "WSS", "CA Certificate": test_pki().ca.cert_pem()}),
    )
}

fn tls_server(port: u16, cert: &Credential) -> EchoServer {
    EchoServer::start_with(EchoOptions {
        port,
        tls_config: Some(cert.server_config()),
        ..EchoOptions::default()
    })
}

/// A server presenting `cert` is refused for `why`, fatally; once it
/// presents a valid certificate, Reset Reconnect gets through.
fn certificate_story(name: &str, cert: &Credential, why: &str) {
    let server = tls_server(0, cert);
    let port = server.port();
    let rec = Recorder::new();
    let instance = connect_instance(&rec, wss(port));
    rec.expect(&format!("{name}: Gave Up"), |e| {
        e.count(Trigger::GaveUp) == 1
    });
    let e = rec.snapshot();
    let reason = ending(
        &e,
        &[Trigger::Connected, Trigger::Disconnected, Trigger::GaveUp],
    );
    assert!(
        reason.starts_with("TLS handshake with 127.0.0.1 failed: invalid peer certificate: ")
            && reason.contains(why),
        "{name}: {reason}"
    );
    // No rustls error as Rust Debug text.
    for debug in ["(UNIX)", "DnsName(", "\\\"", "Other(", "Context"] {
        assert!(!reason.contains(debug), "{name}: {debug} in {reason}");
    }
    assert_last_error(&e, &reason, "TLS");
    assert_eq!(status(&e, "NextRetry"), "gave up", "{name}");
    assert!(
        status(&e, "ConnectionStatus").starts_with("Gave up: "),
        "{name}: {}",
        status(&e, "ConnectionStatus")
    );
    // The server saw the client refuse its certificate, and no retry.
    assert!(
        server.wait_for(|o| !o.tls_failures.is_empty(), support::TIMEOUT),
        "{name}"
    );
    assert!(
        !server.wait_for(|o| o.connections() > 1, QUIET),
        "{name}: retried after a certificate failure"
    );

    // The operator installs a valid certificate, then resets.
    drop(server);
    let _fixed = tls_server(port, &test_pki().server);
    instance
        .action("Reset Reconnect", &json!({}), &[] as &[&str])
        .unwrap();
    rec.expect(&format!("{name}: established once fixed"), |e| {
        e.count(Trigger::Established) == 1
    });
    instance.send_message("secure again").unwrap();
    rec.expect(&format!("{name}: echo"), |e| e.message_count == 1);
    assert_invariants(&rec, instance, Some(1));
}

#[test]
fn a_certificate_from_an_unknown_ca_is_fatal() {
    certificate_story(
        "unknown CA",
        &test_pki().unknown_ca,
        "issued by an unknown CA: give the CA that signed the server's certificate (or a self-signed certificate itself) in CA Certificate, or use Pin SHA-256",
    );
}

#[test]
fn an_expired_certificate_is_fatal() {
    // Dates as RFC 3339, not UNIX seconds; "now" is today's date.
    let today = chrono::Utc::now().format("%Y-%m-%dT").to_string();
    certificate_story(
        "expired",
        &test_pki().expired,
        &format!(
            "certificate expired: it was valid until 2021-01-01T00:00:00Z, and it is now {today}"
        ),
    );
}

#[test]
fn a_certificate_for_another_host_name_is_fatal() {
    certificate_story(
        "wrong host name",
        &test_pki().wrong_name,
        "certificate not valid for name 127.0.0.1: it is valid for wrong.example; ",
    );
}

#[test]
fn a_server_that_stalls_after_the_client_hello_hits_the_connect_timeout_and_is_retried() {
    // Once healed, connections are relayed to a real TLS echo server.
    let good = tls_server(0, &test_pki().server);
    let good_addr: SocketAddr = good.addr();
    let healed = Arc::new(AtomicBool::new(false));
    let relay = healed.clone();
    let server = ScriptServer::start(move |mut peer| {
        if relay.load(Ordering::SeqCst) {
            peer.relay_to(good_addr);
            return;
        }
        // Take the ClientHello, answer nothing, keep the connection open.
        let mut hello = [0u8; 4096];
        if matches!(peer.stream.read(&mut hello), Ok(n) if n > 5 && hello[0] == 0x16) {
            peer.hold_without_reading();
        }
    });
    let rec = Recorder::new();
    let started = Instant::now();
    let instance = connect_instance(
        &rec,
        with(wss(server.port()), json!({"Connect Timeout": 2})),
    );
    expect_handshake_timeout(&rec, started);
    // Not fatal: retried within the 1 s backoff.
    assert!(server.wait_for(|o| o.connections() >= 2, Duration::from_secs(1) + SLACK));
    assert_eq!(rec.read(|e| e.count(Trigger::GaveUp)), 0);

    healed.store(true, Ordering::SeqCst);
    rec.expect_within(
        "established once the server answers",
        Duration::from_secs(2) + Duration::from_secs(1) + SLACK + SLACK,
        |e| e.count(Trigger::Established) == 1,
    );
    instance.send_message("through").unwrap();
    rec.expect("echo", |e| e.message_count == 1);
    assert_invariants(&rec, instance, Some(1));
}
