//! A plain async-tungstenite client for tests that check a server (the
//! fixtures themselves, the demo server) rather than the wsio driver, plus
//! the TLS trust and timeout helpers such tests share.

use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::handshake::client::Response;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_rustls::TlsConnector;
use futures_rustls::rustls::{ClientConfig, RootCertStore};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use smol::net::TcpStream;

use super::fixture::{Io, tls_identity, within};

/// The bound on every wait in a test: generous for a loaded 2-core machine,
/// short enough that a hang fails the run quickly.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub type ClientWs = WebSocketStream<Box<dyn Io>>;

/// Awaits `future`, panicking with `what` if it takes longer than [`TIMEOUT`].
pub async fn deadline<T>(what: &str, future: impl Future<Output = T>) -> T {
    match within(TIMEOUT, future).await {
        Some(output) => output,
        None => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// A rustls client configuration trusting only `certificate` (ring
/// provider, safe default protocol versions).
pub fn client_config_trusting(certificate: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(certificate.clone())
        .expect("fixture certificate is a valid root");
    let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Trusts the certificate of the TLS fixtures (`support::tls_identity()`).
pub fn tls_client_config() -> Arc<ClientConfig> {
    client_config_trusting(tls_identity().cert_der())
}

/// Opens a WebSocket to `request` (a URL or a `Request` with extra headers);
/// `wss://` is verified against `tls_config`.
pub async fn connect_with(
    request: impl IntoClientRequest,
    tls_config: Arc<ClientConfig>,
) -> Result<(ClientWs, Response), WsError> {
    let request = request.into_client_request()?;
    let uri = request.uri();
    let host = uri.host().unwrap_or("127.0.0.1").to_string();
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let stream: Box<dyn Io> = if tls {
        let name = ServerName::try_from(host).map_err(std::io::Error::other)?;
        Box::new(TlsConnector::from(tls_config).connect(name, tcp).await?)
    } else {
        Box::new(tcp)
    };
    async_tungstenite::client_async(request, stream).await
}

/// [`connect_with`] trusting the fixtures' certificate.
pub async fn connect(request: impl IntoClientRequest) -> Result<(ClientWs, Response), WsError> {
    connect_with(request, tls_client_config()).await
}

/// A handshake request for `url` with the header `name: value` added.
pub fn request_with(
    url: &str,
    name: &'static str,
    value: &str,
) -> async_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().expect("a valid test URL");
    request
        .headers_mut()
        .insert(name, value.parse().expect("a valid header value"));
    request
}

/// Sends a ping with `payload` and asserts the next message is its pong.
pub async fn assert_ping_answered(ws: &mut ClientWs, payload: &[u8]) {
    ws.send(Message::Ping(payload.to_vec().into()))
        .await
        .expect("send a ping");
    assert_eq!(recv(ws).await, Message::Pong(payload.to_vec().into()));
}

/// The next message (pings and pongs included), panicking on timeout, error
/// or end of stream.
pub async fn recv(ws: &mut ClientWs) -> Message {
    match deadline("a message", ws.next()).await {
        Some(Ok(message)) => message,
        Some(Err(error)) => panic!("connection failed while waiting for a message: {error}"),
        None => panic!("connection ended while waiting for a message"),
    }
}

/// The next text message, panicking if something else comes.
pub async fn recv_text(ws: &mut ClientWs) -> String {
    match recv(ws).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Waits for the peer's close frame, then for the connection to end (the
/// client's reply is sent while reading on); returns the frame. Text and
/// binary messages before it are a test failure.
pub async fn recv_close(ws: &mut ClientWs) -> Option<CloseFrame> {
    let frame = loop {
        match recv(ws).await {
            Message::Close(frame) => break frame,
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    deadline("the end of the connection after the close", async {
        while ws.next().await.is_some() {}
    })
    .await;
    frame
}
