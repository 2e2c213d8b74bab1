//! The demo server (`wsio demo-server`, the local stand-in for
//! demo.piesocket.com) over real 127.0.0.1 sockets, with a plain
//! async-tungstenite client: channel broadcast, notify_self, refusals with
//! close codes, ordering, binary, pings, TLS, and shutdown.

mod support;

use std::net::{Ipv4Addr, SocketAddr};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use futures_util::SinkExt;
use support::{
    ClientWs, assert_ping_answered, connect, connect_with, deadline, recv, recv_close, recv_text,
};
use wsio_host::demo_server::{DemoServer, DemoServerConfig, TlsIdentity};

fn start() -> DemoServer {
    DemoServer::start(DemoServerConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        tls: None,
    })
    .expect("start the demo server on a free port")
}

/// A URL without `notify_self`: this client does not hear itself.
fn quiet_url(server: &DemoServer, channel: &str) -> String {
    format!("ws://{}/v3/{channel}?api_key=demo", server.local_addr())
}

fn close_frame(code: u16, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code: code.into(),
        reason: reason.to_string().into(),
    })
}

/// Connects a client that hears itself and returns once the server has
/// joined it to the channel (its own hello came back).
async fn join_echoing(server: &DemoServer, channel: &str) -> ClientWs {
    let (mut ws, _) = connect(server.url(channel, "demo")).await.unwrap();
    ws.send(Message::text("joined")).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "joined");
    ws
}

/// Connects a client that does not hear itself and returns once the server
/// has joined it: its hello reached `witness`, already in the channel.
async fn join_quiet(server: &DemoServer, channel: &str, witness: &mut ClientWs) -> ClientWs {
    let (mut ws, _) = connect(quiet_url(server, channel)).await.unwrap();
    ws.send(Message::text("quiet joined")).await.unwrap();
    assert_eq!(recv_text(witness).await, "quiet joined");
    ws
}

#[test]
fn url_has_the_piesocket_form() {
    let server = start();
    let port = server.local_addr().port();
    assert_eq!(
        server.url("1", "demo"),
        format!("ws://127.0.0.1:{port}/v3/1?api_key=demo&notify_self=1")
    );
}

#[test]
fn messages_are_broadcast_to_the_other_clients_of_the_channel_only() {
    let server = start();
    smol::block_on(async {
        let mut a = join_echoing(&server, "1").await;
        let mut b = join_quiet(&server, "1", &mut a).await;
        let mut elsewhere = join_echoing(&server, "2").await;

        b.send(Message::text("from b")).await.unwrap();
        assert_eq!(recv_text(&mut a).await, "from b");
        a.send(Message::text("from a")).await.unwrap();
        assert_eq!(recv_text(&mut b).await, "from a");

        // Channel 2 heard nothing of channel 1: its next message is its own.
        elsewhere.send(Message::text("only me")).await.unwrap();
        assert_eq!(recv_text(&mut elsewhere).await, "only me");
    });
}

#[test]
fn notify_self_echoes_to_the_sender_and_its_absence_does_not() {
    let server = start();
    smol::block_on(async {
        let mut echoing = join_echoing(&server, "1").await;
        let mut quiet = join_quiet(&server, "1", &mut echoing).await;

        echoing.send(Message::text("e1")).await.unwrap();
        assert_eq!(recv_text(&mut echoing).await, "e1", "notify_self echoes");
        assert_eq!(recv_text(&mut quiet).await, "e1");

        quiet.send(Message::text("q1")).await.unwrap();
        assert_eq!(recv_text(&mut echoing).await, "q1");
        // Had "q1" been echoed to `quiet`, it would arrive before "e2": the
        // hub queued it before `echoing` could even see "q1".
        echoing.send(Message::text("e2")).await.unwrap();
        assert_eq!(
            recv_text(&mut quiet).await,
            "e2",
            "no echo without notify_self"
        );
    });
}

#[test]
fn bare_notify_self_counts() {
    let server = start();
    smol::block_on(async {
        let url = format!("ws://{}/v3/x?notify_self&api_key=k", server.local_addr());
        let (mut ws, _) = connect(url).await.unwrap();
        ws.send(Message::text("me")).await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "me");
    });
}

#[test]
fn missing_or_empty_api_key_is_closed_with_4001_and_a_reason() {
    let server = start();
    let addr = server.local_addr();
    smol::block_on(async {
        for url in [
            format!("ws://{addr}/v3/1"),
            format!("ws://{addr}/v3/1?api_key=&notify_self=1"),
        ] {
            let (mut ws, _) = connect(url.as_str()).await.unwrap();
            assert_eq!(
                recv_close(&mut ws).await,
                close_frame(4001, "api_key is required: use /v3/<channel>?api_key=<key>"),
                "{url}"
            );
        }
    });
}

#[test]
fn a_path_other_than_v3_channel_is_closed_with_4004_naming_the_form() {
    let server = start();
    smol::block_on(async {
        let url = format!("ws://{}/chat?api_key=demo", server.local_addr());
        let (mut ws, _) = connect(url).await.unwrap();
        let frame = recv_close(&mut ws)
            .await
            .expect("a close frame with a code");
        assert_eq!(u16::from(frame.code), 4004);
        assert!(frame.reason.contains("/v3/<channel>"), "{}", frame.reason);
    });
}

#[test]
fn binary_stays_binary_and_text_stays_text() {
    let server = start();
    smol::block_on(async {
        let mut a = join_echoing(&server, "1").await;
        let mut b = join_quiet(&server, "1", &mut a).await;
        let bytes = vec![0u8, 1, 0x9f, 0xff, b'\n'];
        a.send(Message::binary(bytes.clone())).await.unwrap();
        a.send(Message::text("after binary")).await.unwrap();
        assert_eq!(recv(&mut b).await, Message::binary(bytes));
        assert_eq!(recv(&mut b).await, Message::text("after binary"));
    });
}

#[test]
fn a_thousand_messages_arrive_in_order_and_unmerged() {
    let server = start();
    smol::block_on(async {
        let mut a = join_echoing(&server, "1").await;
        let mut b = join_quiet(&server, "1", &mut a).await;
        for n in 0..1000 {
            a.feed(Message::text(format!("m{n:04}"))).await.unwrap();
        }
        a.flush().await.unwrap();
        for n in 0..1000 {
            let expected = Message::text(format!("m{n:04}"));
            assert_eq!(recv(&mut b).await, expected);
            assert_eq!(recv(&mut a).await, expected);
        }
    });
}

#[test]
fn pings_are_answered() {
    let server = start();
    smol::block_on(async {
        let mut ws = join_echoing(&server, "1").await;
        assert_ping_answered(&mut ws, b"are you there").await;
    });
}

#[test]
fn tls_works_when_the_client_trusts_the_generated_certificate() {
    let identity = TlsIdentity::self_signed();
    let server = DemoServer::start(DemoServerConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        tls: Some(identity.clone()),
    })
    .unwrap();
    let url = server.url("1", "demo");
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    // What `wsio demo-server --tls` hands to users: the certificate as PEM.
    let dir = std::env::temp_dir().join(format!("wsio-demo-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("demo-server.pem");
    identity.write_cert_pem(&path).unwrap();
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(
        !pem.contains("PRIVATE KEY"),
        "only the certificate is written"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    smol::block_on(async {
        let trusting = support::client_config_trusting(identity.cert_der());
        let (mut ws, _) = connect_with(url.as_str(), trusting).await.unwrap();
        ws.send(Message::text("secure hello")).await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "secure hello");
    });
}

#[test]
fn stop_closes_every_client_with_1001_and_frees_the_port() {
    let server = start();
    let addr = server.local_addr();
    smol::block_on(async {
        let mut a = join_echoing(&server, "1").await;
        let mut b = join_echoing(&server, "2").await;
        // `stop` waits for the clients' close replies: run it elsewhere so
        // this thread can answer.
        let stopping = std::thread::spawn(move || server.stop());
        let expected = close_frame(1001, "server shutting down");
        assert_eq!(recv_close(&mut a).await, expected);
        assert_eq!(recv_close(&mut b).await, expected);
        deadline("stop to return", smol::unblock(move || stopping.join()))
            .await
            .unwrap();
        assert!(
            connect(format!("ws://{addr}/v3/1?api_key=k"))
                .await
                .is_err()
        );
    });
    // The port is free again.
    DemoServer::start(DemoServerConfig {
        listen: addr,
        tls: None,
    })
    .expect("rebind the stopped server's port");
}

#[test]
fn a_busy_port_is_an_error_from_start() {
    let server = start();
    let again = DemoServer::start(DemoServerConfig {
        listen: server.local_addr(),
        tls: None,
    });
    assert!(again.is_err());
}

#[test]
fn every_one_of_many_clients_receives_a_broadcast() {
    // Client and server sockets share this process's descriptor limit, so
    // stay well below the ~1000 clients the server is meant for.
    const CLIENTS: usize = 200;
    let server = start();
    smol::block_on(async {
        let mut clients = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            clients.push(join_echoing(&server, "crowd").await);
        }
        clients[0].send(Message::text("to all")).await.unwrap();
        for (index, ws) in clients.iter_mut().enumerate() {
            // Each client first hears every later client join, then the
            // broadcast: nothing lost, nothing reordered.
            for _ in index + 1..CLIENTS {
                assert_eq!(recv_text(ws).await, "joined");
            }
            assert_eq!(recv_text(ws).await, "to all");
        }
    });
}
