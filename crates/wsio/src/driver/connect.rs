//! One connection attempt, as a task of its own: DNS, TCP (or a proxy
//! tunnel), TLS for WSS, the WebSocket handshake. It reports to its runner
//! through the inbox (`TcpConnected`, then `Established` or `Failed`), each
//! failure naming its stage.

use super::endings::{handshake_failure, tls_connect_failure};
use super::executor::driver;
use super::{Input, proxy};
use crate::inbox::Inbox;
use crate::machine::{ConnId, Ending, Stage};
use crate::properties::Properties;
use crate::read_ahead::ReadAhead;
use crate::vocabulary::Secret;
use async_tungstenite::stream::Stream as MaybeTls;
use async_tungstenite::tungstenite;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use base64::Engine;
use futures_rustls::TlsConnector;
use futures_rustls::pki_types::ServerName;
use futures_rustls::rustls::ClientConfig;
use smol::net::TcpStream;
use std::sync::Arc;

/// The WebSocket settings of a connection: made when it opens, not kept by
/// every idle runner (its size, per instance, is what idle memory is made of).
///
/// The read buffer is tungstenite's `read_buffer_size`, allocated and
/// zeroed per connection, and zeroed again up to its size before every
/// read: the library's 128 KiB would be most of an idle connection's
/// memory. The driver's is 4 KiB; bulk traffic then does not take a system
/// call per 4 KiB because the read-ahead under it ([`ReadAhead`]) reads
/// 64 KiB at a time, and holds that buffer only while data keeps coming
/// (docs/performance.md has the measurements). `WSIO_READ_BUFFER` (bytes)
/// overrides it for measuring: the executor reads it once, when it starts
/// ([`super::executor`]).
pub(super) fn ws_config(props: &Properties) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(driver().read_buffer)
        .max_message_size(Some(props.max_message_size))
        .max_frame_size(Some(props.max_message_size))
}

/// One connection attempt: DNS, TCP or a proxy tunnel (reported as TCP
/// up), TLS, WebSocket handshake. Each failure names its stage.
///
/// Each stage's future is boxed, so the attempt holds only the stage it is
/// in: inline, every attempt would hold room for all the stages' states at
/// once, and a storm of connects would leave that much free-but-resident
/// heap behind every instance.
pub(super) async fn open_connection(
    conn: ConnId,
    props: Arc<Properties>,
    bearer_token: Option<Secret>,
    tls: Option<Arc<ClientConfig>>,
    ws_config: WebSocketConfig,
    inputs: Inbox<Input>,
) {
    let result = async {
        let host = props.hostname.as_str();
        let tcp = match proxy::resolve(&props.proxy, host, tls.is_some())? {
            Some(via) => Box::pin(proxy::connect(&via, host, props.port)).await?,
            None => Box::pin(connect_tcp(host, props.port)).await?,
        };
        // Small messages are the norm; don't let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let _ = inputs.push(Input::TcpConnected(conn));
        let tcp = ReadAhead::new(tcp);
        let socket = match tls {
            None => MaybeTls::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                    Ending::error(
                        Stage::Tls,
                        format!("{host} is not a valid TLS server name: {e}"),
                    )
                })?;
                let tls = Box::pin(TlsConnector::from(config).connect(name, tcp))
                    .await
                    .map_err(|e| tls_connect_failure(&props, &e))?;
                MaybeTls::Tls(Box::new(tls))
            }
        };
        let request = build_request(&props, bearer_token.as_ref())?;
        let (ws, response) = Box::pin(async_tungstenite::client_async_with_config(
            request,
            socket,
            Some(ws_config),
        ))
        .await
        .map_err(|e| handshake_failure(&props, &e))?;
        let subprotocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok::<_, Ending>((ws, subprotocol))
    }
    .await;
    let input = match result {
        Ok(established) => Input::Established(conn, Box::new(established)),
        Err(ending) => Input::Failed(conn, Box::new(ending)),
    };
    let _ = inputs.push(input);
}

async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Ending> {
    let addrs = smol::net::resolve((host, port))
        .await
        .map_err(|e| Ending::error(Stage::Dns, format!("DNS lookup of {host} failed: {e}")))?;
    let mut last = Ending::error(
        Stage::Dns,
        format!("DNS lookup of {host} returned no address"),
    );
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                last = Ending::error(Stage::Tcp, format!("TCP connect to {addr} failed: {e}"))
            }
        }
    }
    Err(last)
}

/// The handshake request: URL, credentials, headers, subprotocols, Origin.
/// Header values (tokens, passwords, custom headers) are marked sensitive
/// and never formatted into anything that is logged.
fn build_request(
    props: &Properties,
    bearer_token: Option<&Secret>,
) -> Result<tungstenite::handshake::client::Request, Ending> {
    let mut request = props.url().into_client_request().map_err(|e| {
        Ending::error(
            Stage::WebSocket,
            format!("cannot build a request for {}: {e}", props.display_url()),
        )
    })?;
    let headers = request.headers_mut();
    let sensitive = |text: String, what: &str| {
        HeaderValue::from_str(&text)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| {
                Ending::error(
                    Stage::WebSocket,
                    format!("{what} is not a valid header value"),
                )
            })
    };
    for header in &props.headers {
        let name =
            tungstenite::http::HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
                Ending::error(Stage::WebSocket, format!("bad header name {}", header.name))
            })?;
        headers.append(
            name,
            sensitive(header.value.expose().to_owned(), &header.name)?,
        );
    }
    if let Some(origin) = &props.origin {
        headers.insert("Origin", sensitive(origin.clone(), "Origin")?);
    }
    if !props.subprotocols.is_empty() {
        headers.insert(
            "Sec-WebSocket-Protocol",
            sensitive(props.subprotocols.join(", "), "Subprotocols")?,
        );
    }
    // A Bearer Token given to Connect takes precedence over Basic.
    if let Some(token) = bearer_token {
        headers.insert(
            "Authorization",
            sensitive(format!("Bearer {}", token.expose()), "Bearer Token")?,
        );
    } else if let Some(basic) = &props.basic_auth {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            basic.username,
            basic.password.expose()
        ));
        headers.insert(
            "Authorization",
            sensitive(format!("Basic {credentials}"), "Username/Password")?,
        );
    }
    Ok(request)
}
