//! Proves the fixture servers in `tests/support` behave as documented, so a
//! failing client test points at the client, not at its fixture. The client
//! here is plain async-tungstenite, not the wsio driver.

mod support;

use std::time::Duration;

use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_util::StreamExt;
use support::{
    BlackHoleServer, CloseReceived, CloseServer, EchoServer, RefuseServer, SilentServer, TIMEOUT,
    assert_ping_answered, burst_message, connect, deadline, recv, recv_close, recv_text,
    request_with, within,
};

/// How long a test listens to prove that something does *not* happen (no
/// pong, no handshake answer). The only fixed waits in this file: absence
/// cannot be awaited as an event.
const QUIET: Duration = Duration::from_millis(300);

fn close_frame(code: u16, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code: code.into(),
        reason: reason.to_string().into(),
    })
}

#[test]
fn echo_server_echoes_text_and_binary_in_order_and_records_them() {
    let server = EchoServer::start();
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/chat?room=1")).await.unwrap();
        ws.send(Message::text("hello")).await.unwrap();
        ws.send(Message::binary(vec![0u8, 159, 255])).await.unwrap();
        assert_eq!(recv(&mut ws).await, Message::text("hello"));
        assert_eq!(recv(&mut ws).await, Message::binary(vec![0u8, 159, 255]));
    });
    let seen = server.snapshot();
    assert_eq!(
        seen.messages,
        [Message::text("hello"), Message::binary(vec![0u8, 159, 255])]
    );
    assert_eq!(seen.connections(), 1);
    assert_eq!(seen.handshakes[0].path, "/chat?room=1");
}

#[test]
fn echo_server_records_the_authorization_header_of_each_handshake() {
    let server = EchoServer::start();
    smol::block_on(async {
        let request = request_with(&server.url("/"), "Authorization", "Bearer s3cret");
        let (_ws, _) = connect(request).await.unwrap();
        let (_ws2, _) = connect(server.url("/")).await.unwrap();
    });
    let seen = server.snapshot();
    assert_eq!(seen.handshakes.len(), 2);
    assert_eq!(
        seen.handshakes[0].header("authorization"),
        Some("Bearer s3cret")
    );
    assert_eq!(seen.handshakes[1].header("Authorization"), None);
}

#[test]
fn echo_server_answers_and_counts_pings() {
    let server = EchoServer::start();
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/")).await.unwrap();
        assert_ping_answered(&mut ws, b"keepalive").await;
    });
    assert_eq!(server.snapshot().pings, 1);
}

#[test]
fn echo_server_records_the_close_code_and_reason_the_client_sent() {
    let server = EchoServer::start();
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/")).await.unwrap();
        ws.close(close_frame(4000, "bye now")).await.unwrap();
        // The server answers the close, then ends the connection.
        deadline("the close reply", async {
            while ws.next().await.is_some() {}
        })
        .await;
    });
    assert!(server.wait_for(|o| o.disconnects == 1, TIMEOUT));
    assert_eq!(
        server.snapshot().closes,
        [CloseReceived {
            code: 4000,
            reason: "bye now".into()
        }]
    );
}

#[test]
fn echo_server_pushes_messages_and_closes_on_request() {
    let server = EchoServer::start();
    smol::block_on(async {
        let (mut a, _) = connect(server.url("/")).await.unwrap();
        let (mut b, _) = connect(server.url("/")).await.unwrap();
        // Clients are registered before their handshake is answered.
        assert_eq!(server.send_to_all("from the server"), 2);
        assert_eq!(recv_text(&mut a).await, "from the server");
        assert_eq!(recv_text(&mut b).await, "from the server");

        assert_eq!(server.close_all(4100, "go away"), 2);
        assert_eq!(recv_close(&mut a).await, close_frame(4100, "go away"));
        assert_eq!(recv_close(&mut b).await, close_frame(4100, "go away"));
    });
    assert!(server.wait_for(|o| o.open_connections() == 0, TIMEOUT));
    // The clients' replies echo the code, as RFC 6455 asks.
    assert_eq!(server.snapshot().closes.len(), 2);
}

#[test]
fn echo_server_abort_all_drops_connections_without_a_close_frame() {
    let server = EchoServer::start();
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/")).await.unwrap();
        assert_eq!(server.abort_all(), 1);
        match deadline("the connection to drop", ws.next()).await {
            None | Some(Err(WsError::Protocol(_) | WsError::Io(_))) => {}
            other => panic!("expected an abrupt end, got {other:?}"),
        }
    });
    assert!(server.snapshot().closes.is_empty());
}

#[test]
fn echo_server_over_tls_works_when_the_client_trusts_the_fixture_certificate() {
    let server = EchoServer::start_tls();
    assert!(server.url("/").starts_with("wss://127.0.0.1:"));
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/secure")).await.unwrap();
        ws.send(Message::text("over tls")).await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "over tls");
    });
    assert_eq!(server.snapshot().handshakes[0].path, "/secure");
}

#[test]
fn echo_server_over_tls_is_refused_by_a_client_trusting_other_roots() {
    let server = EchoServer::start_tls();
    let stranger = wsio_host::demo_server::TlsIdentity::self_signed();
    let config = support::client_config_trusting(stranger.cert_der());
    smol::block_on(async {
        let result = support::connect_with(server.url("/"), config).await;
        assert!(result.is_err(), "an untrusted certificate must fail");
    });
}

#[test]
fn echo_server_can_be_restarted_on_the_same_port() {
    let server = EchoServer::start();
    let port = server.port();
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/")).await.unwrap();
        // Dropping blocks until clients answer its 1001, so drop elsewhere.
        let stopping = std::thread::spawn(move || drop(server));
        assert_eq!(
            recv_close(&mut ws).await,
            close_frame(1001, "fixture stopping")
        );
        stopping.join().unwrap();
        assert!(connect(format!("ws://127.0.0.1:{port}/")).await.is_err());

        let restarted = EchoServer::start_on(port);
        let (mut ws, _) = connect(restarted.url("/")).await.unwrap();
        ws.send(Message::text("again")).await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "again");
        assert_eq!(restarted.port(), port);
    });
}

#[test]
fn burst_sends_ten_thousand_numbered_messages_in_order() {
    let server = EchoServer::start_burst(10_000);
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/")).await.unwrap();
        for n in 1..=10_000 {
            assert_eq!(recv(&mut ws).await, burst_message(n));
        }
        assert_eq!(burst_message(1), Message::text("msg-000001"));
        // Echo still works after the burst.
        ws.send(Message::text("after")).await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "after");
    });
}

#[test]
fn close_server_sends_messages_then_closes_with_its_code_and_records_the_reply() {
    let server = CloseServer::after_messages(3, 4321, "maintenance");
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/")).await.unwrap();
        for n in 1..=3 {
            assert_eq!(recv(&mut ws).await, burst_message(n));
        }
        assert_eq!(recv_close(&mut ws).await, close_frame(4321, "maintenance"));
    });
    assert!(server.wait_for(|o| o.disconnects == 1, TIMEOUT));
    assert_eq!(server.snapshot().closes[0].code, 4321);
}

#[test]
fn close_server_without_messages_closes_at_once_and_serves_every_connection() {
    let server = CloseServer::new(1011, "internal error");
    smol::block_on(async {
        for _ in 0..2 {
            let (mut ws, _) = connect(server.url("/")).await.unwrap();
            assert_eq!(
                recv_close(&mut ws).await,
                close_frame(1011, "internal error")
            );
        }
    });
    assert_eq!(server.snapshot().connections(), 2);
}

#[test]
fn refuse_server_answers_with_its_status_and_counts_attempts() {
    let server = RefuseServer::new(401);
    smol::block_on(async {
        for _ in 0..2 {
            let request = request_with(&server.url("/"), "Authorization", "Bearer wrong");
            match connect(request).await {
                Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
                Err(other) => panic!("expected HTTP 401, got error {other}"),
                Ok(_) => panic!("expected HTTP 401, got a WebSocket"),
            }
        }
    });
    let seen = server.snapshot();
    assert_eq!(seen.connections(), 2);
    assert!(seen.accepted[0] <= seen.accepted[1]);
    assert_eq!(
        seen.handshakes[1].header("authorization"),
        Some("Bearer wrong")
    );
}

#[test]
fn silent_server_completes_the_handshake_then_never_answers_pings() {
    let server = SilentServer::start();
    smol::block_on(async {
        let request = request_with(&server.url("/quiet"), "Authorization", "Bearer t");
        let (mut ws, _) = connect(request).await.unwrap();
        ws.send(Message::Ping(b"anyone?".to_vec().into()))
            .await
            .unwrap();
        // No pong, no close, no end of stream: the connection is half-open.
        assert!(within(QUIET, ws.next()).await.is_none());
    });
    let seen = server.snapshot();
    assert_eq!(seen.connections(), 1);
    assert_eq!(seen.handshakes[0].header("authorization"), Some("Bearer t"));
    assert_eq!(seen.pings, 0, "a silent server does not even read");
}

#[test]
fn black_hole_server_accepts_tcp_but_never_answers_the_handshake() {
    let server = BlackHoleServer::start();
    smol::block_on(async {
        assert!(within(QUIET, connect(server.url("/"))).await.is_none());
    });
    assert!(server.wait_for(|o| o.connections() == 1, TIMEOUT));
    assert!(server.snapshot().handshakes.is_empty());
}

#[test]
fn observations_can_be_awaited_while_the_client_runs_on_the_same_thread() {
    let server = EchoServer::start();
    smol::block_on(async {
        let (mut ws, _) = connect(server.url("/")).await.unwrap();
        let observations = server.observations().clone();
        let sending = async {
            for n in 0..100 {
                ws.send(Message::text(n.to_string())).await.unwrap();
            }
        };
        let waiting = observations.wait_for_async(|o| o.messages.len() == 100, TIMEOUT);
        let ((), seen_all) = smol::future::zip(sending, waiting).await;
        assert!(seen_all);
    });
    assert!(
        !server.wait_for(|o| o.messages.len() > 100, Duration::ZERO),
        "a timed-out wait reports false"
    );
}

// ------------------------------------------ fixtures for the connection options

use std::sync::Arc;

use futures_rustls::rustls::{ClientConfig, RootCertStore};
use support::{
    ClientAuth, ConnectProxy, Credential, Io, connect_with, sha256_fingerprint, test_pki,
};

/// A rustls client trusting `root`, presenting `identity` if given.
fn pki_client(
    root: &rustls_pki_types::CertificateDer<'static>,
    identity: Option<&Credential>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert_der.clone()], c.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects, sends one text and returns its echo (or the error).
async fn echo_once(url: String, tls: Arc<ClientConfig>) -> Result<String, WsError> {
    let (mut ws, _) = connect_with(url, tls).await?;
    ws.send(Message::text("over tls")).await?;
    match deadline("the echo", ws.next()).await {
        Some(Ok(Message::Text(text))) => Ok(text.to_string()),
        Some(Ok(other)) => panic!("expected the echo, got {other:?}"),
        Some(Err(e)) => Err(e),
        None => Err(WsError::ConnectionClosed),
    }
}

#[test]
fn pki_echo_server_is_trusted_through_the_test_ca_only() {
    let pki = test_pki();
    let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::None));
    assert!(server.url("/").starts_with("wss://127.0.0.1:"));
    smol::block_on(async {
        let trusted = pki_client(pki.ca.cert_der(), None);
        assert_eq!(
            echo_once(server.url("/"), trusted).await.unwrap(),
            "over tls"
        );
        let other = pki_client(pki.other_ca.cert_der(), None);
        let error = echo_once(server.url("/"), other).await.unwrap_err();
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    });
    assert!(server.wait_for(|o| o.tls_failures.len() == 1, TIMEOUT));
    let seen = server.snapshot();
    assert_eq!(seen.tls_sessions.len(), 1);
    assert!(seen.tls_sessions[0].client_certificate.is_none());
}

#[test]
fn pki_echo_server_requiring_client_certificates_records_which_one_came() {
    let pki = test_pki();
    let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::Required));
    smol::block_on(async {
        for client in [&pki.client_ecdsa, &pki.client_ed25519, &pki.client_rsa] {
            let tls = pki_client(pki.ca.cert_der(), Some(client));
            assert_eq!(echo_once(server.url("/"), tls).await.unwrap(), "over tls");
        }
        for client in [None, Some(&pki.client_untrusted)] {
            let tls = pki_client(pki.ca.cert_der(), client);
            assert!(echo_once(server.url("/"), tls).await.is_err());
        }
    });
    assert!(server.wait_for(|o| o.tls_failures.len() == 2, TIMEOUT));
    let seen = server.snapshot();
    let presented: Vec<_> = seen
        .tls_sessions
        .iter()
        .map(|s| s.client_certificate.clone().unwrap())
        .collect();
    assert_eq!(
        presented,
        [
            pki.client_ecdsa.cert_der.clone(),
            pki.client_ed25519.cert_der.clone(),
            pki.client_rsa.cert_der.clone()
        ]
    );
    assert_eq!(seen.handshakes.len(), 3, "refused clients never reach HTTP");
}

#[test]
fn sha256_fingerprints_are_64_hex_digits_of_the_der() {
    let fingerprint = sha256_fingerprint(support::tls_identity().cert_der());
    assert_eq!(fingerprint.len(), 64);
    assert!(
        fingerprint
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let colons = support::sha256_fingerprint_colons(support::tls_identity().cert_der());
    assert_eq!(colons.replace(':', "").to_lowercase(), fingerprint);
    assert_ne!(fingerprint, test_pki().server.sha256());
}

#[test]
fn subprotocol_server_answers_with_the_first_offer_it_supports() {
    let server = EchoServer::start_with_subprotocols(&["v1.foo", "v3.baz"]);
    let offer = |protocols: &str| {
        if protocols.is_empty() {
            server.url("/").into_client_request().unwrap()
        } else {
            request_with(&server.url("/"), "Sec-WebSocket-Protocol", protocols)
        }
    };
    smol::block_on(async {
        let (_ws, response) = connect(offer("v2.bar, v1.foo, v3.baz")).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "v1.foo"
        );
        let (_ws, response) = connect(offer("")).await.unwrap();
        assert!(response.headers().get("sec-websocket-protocol").is_none());
        // Offered, none supported: the server names none, which tungstenite's
        // client refuses.
        let Err(error) = connect(offer("v2.bar")).await else {
            panic!("a handshake without the offered subprotocol was accepted");
        };
        assert!(
            error.to_string().to_lowercase().contains("subprotocol"),
            "{error}"
        );
    });
    assert_eq!(server.snapshot().handshakes.len(), 3);
}

/// Sends a CONNECT for `target` to the proxy; returns the stream and the
/// response head.
async fn proxy_connect(
    proxy: &ConnectProxy,
    target: &str,
    authorization: Option<&str>,
) -> (smol::net::TcpStream, String) {
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = smol::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let auth = authorization
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read the head byte by byte: nothing after it may be consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if deadline("the proxy's answer", stream.read(&mut byte))
            .await
            .unwrap()
            == 0
        {
            break;
        }
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

#[test]
fn connect_proxy_tunnels_a_websocket_and_records_the_request() {
    let echo = EchoServer::start();
    let proxy = ConnectProxy::start();
    let target = echo.addr().to_string();
    smol::block_on(async {
        let (tunnel, head) = proxy_connect(&proxy, &target, None).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        let stream: Box<dyn Io> = Box::new(tunnel);
        let (mut ws, _) = async_tungstenite::client_async(echo.url("/tunnelled"), stream)
            .await
            .unwrap();
        ws.send(Message::text("through the proxy")).await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "through the proxy");
    });
    let seen = proxy.snapshot();
    assert_eq!(seen.tunnels, 1);
    assert_eq!(seen.tunnelled_targets(), [target]);
    assert_eq!(seen.requests[0].method, "CONNECT");
    assert_eq!(seen.requests[0].proxy_authorization, None);
    assert_eq!(echo.snapshot().handshakes[0].path, "/tunnelled");
}

#[test]
fn connect_proxy_with_credentials_answers_407_without_them_and_403_off_loopback() {
    let echo = EchoServer::start();
    let proxy = ConnectProxy::requiring("alice", "pw");
    let target = echo.addr().to_string();
    // base64("alice:pw")
    let right = "Basic YWxpY2U6cHc=";
    smol::block_on(async {
        let (_s, head) = proxy_connect(&proxy, &target, None).await;
        assert!(head.starts_with("HTTP/1.1 407 "), "{head}");
        assert!(head.contains("Proxy-Authenticate: Basic"), "{head}");
        let (_s, head) = proxy_connect(&proxy, &target, Some("Basic d3Jvbmc6d3Jvbmc=")).await;
        assert!(head.starts_with("HTTP/1.1 407 "), "{head}");
        let (_s, head) = proxy_connect(&proxy, &target, Some(right)).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        let (_s, head) = proxy_connect(&proxy, "example.invalid:443", Some(right)).await;
        assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    });
    let seen = proxy.snapshot();
    let statuses: Vec<u16> = seen.requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [407, 407, 200, 403]);
    assert_eq!(seen.requests[2].proxy_authorization.as_deref(), Some(right));
    assert_eq!(seen.tunnels, 1);
    assert_eq!(seen.connections, 4);
}
