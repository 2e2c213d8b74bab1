//! How a connection ended, as the driver saw it: tungstenite's and rustls's
//! errors and the close frames turned into an [`Ending`] (stage, reason,
//! close, fatal) for the machine. Nothing here echoes a request header, so
//! no secret reaches the text.

use crate::machine::{Closure, Ending, Stage};
use crate::presentation::wrong_peer_advice;
use crate::properties::Properties;
use crate::tls::{explain_io, is_certificate_failure};
use async_tungstenite::tungstenite;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use futures_rustls::rustls;

/// The rustls error inside an I/O error, if any.
pub(super) fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}

pub(super) fn tls_failure(host: &str, error: &std::io::Error) -> Ending {
    let fatal = rustls_error(error).is_some_and(is_certificate_failure);
    Ending {
        fatal,
        ..Ending::error(
            Stage::Tls,
            format!("TLS handshake with {host} failed: {}", explain_io(error)),
        )
    }
}

/// The TLS handshake failed. A peer that does not speak TLS at all (a
/// plain WebSocket or HTTP port) is told apart from a TLS failure: it
/// closes on the client's hello, or answers with bytes that are no TLS
/// record, and the advice is then about the port and protocol.
pub(super) fn tls_connect_failure(props: &Properties, error: &std::io::Error) -> Ending {
    let host = props.hostname.as_str();
    let what = match rustls_error(error) {
        Some(rustls::Error::InvalidMessage(_)) => {
            "the server answered with something that is not TLS"
        }
        Some(_) => return tls_failure(host, error),
        None if closed_early(error) => "the server closed the connection without answering TLS",
        None => return tls_failure(host, error),
    };
    Ending::error(
        Stage::Tls,
        format!(
            "TLS handshake with {host} failed: {what}; {}",
            wrong_peer_advice(&props.subprotocols)
        ),
    )
}

/// The peer ended the connection while the client waited for its answer.
fn closed_early(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Handshake errors, without echoing request headers (the token).
pub(super) fn handshake_failure(props: &Properties, error: &tungstenite::Error) -> Ending {
    use tungstenite::error::ProtocolError;
    let host = props.hostname.as_str();
    let wrong_peer = |what: String| {
        Ending::error(
            Stage::WebSocket,
            format!(
                "WebSocket handshake failed: {what}; {}",
                wrong_peer_advice(&props.subprotocols)
            ),
        )
    };
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let reason = format!(
                "HTTP upgrade refused: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            Ending {
                fatal: matches!(status.as_u16(), 401 | 403 | 404),
                ..Ending::error(Stage::HttpUpgrade, reason.trim_end().to_owned())
            }
        }
        // TLS 1.3 reports a refused client certificate after the client's
        // side of the handshake, i.e. while reading the HTTP answer.
        tungstenite::Error::Io(e) if rustls_error(e).is_some() => tls_failure(host, e),
        tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => {
            Ending::error(
                Stage::HttpUpgrade,
                format!("subprotocol negotiation failed: {e}"),
            )
        }
        // Closed unanswered: a TLS port spoken to in plain WebSocket, or a
        // server refusing the request (mosquitto does so for a subprotocol
        // it does not know).
        tungstenite::Error::Protocol(ProtocolError::HandshakeIncomplete) => {
            wrong_peer("the server closed the connection without answering".to_owned())
        }
        tungstenite::Error::Io(e) if closed_early(e) => wrong_peer(format!(
            "the server closed the connection without answering ({e})"
        )),
        // Bytes that are not an HTTP answer: often a TLS alert from a port
        // that wants WSS.
        tungstenite::Error::Protocol(ProtocolError::HttparseError(e)) => {
            wrong_peer(format!("the server's answer is not HTTP ({e})"))
        }
        tungstenite::Error::Io(e) => Ending::error(
            Stage::HttpUpgrade,
            format!("WebSocket handshake failed: {e}"),
        ),
        other => Ending::error(
            Stage::WebSocket,
            format!("WebSocket handshake failed: {other}"),
        ),
    }
}

/// Our close handshake (Disconnect, removal) completed.
pub(super) fn closed_by_client() -> Ending {
    Ending::closed_by_client()
}

/// The server closed with `frame`: "closed by server: 1000 bye".
pub(super) fn server_closed(frame: Option<&CloseFrame>) -> Ending {
    Ending::closed_by_server(frame.map(|f| (u16::from(f.code), f.reason.as_str())))
}

/// The connection broke: an error (Last Error) and no close handshake.
pub(super) fn lost(error: &tungstenite::Error) -> Ending {
    use tungstenite::Error as E;
    let (stage, reason) = match error {
        E::ConnectionClosed | E::AlreadyClosed => {
            (Stage::WebSocket, "connection closed".to_owned())
        }
        E::Io(e) if rustls_error(e).is_some() => {
            (Stage::Tls, format!("TLS error: {}", explain_io(e)))
        }
        E::Io(e) => (Stage::Tcp, format!("connection lost: {e}")),
        E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => (
            Stage::Tcp,
            "connection closed by the server without a close frame".to_owned(),
        ),
        E::Protocol(e) => (
            Stage::WebSocket,
            format!("WebSocket protocol error from the server: {e}"),
        ),
        E::Capacity(e) => (Stage::WebSocket, format!("message too large: {e}")),
        E::Utf8(_) => (
            Stage::WebSocket,
            "the server sent a text message that is not valid UTF-8".to_owned(),
        ),
        other => (Stage::WebSocket, format!("WebSocket error: {other}")),
    };
    Ending {
        close: Some(Closure::Lost),
        ..Ending::error(stage, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_and_handshake_descriptions_are_readable() {
        let frame = CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        };
        let ending = server_closed(Some(&frame));
        assert_eq!(ending.reason, "closed by server: 4000 bye");
        assert_eq!(
            ending.close.map(|c| c.to_string()).as_deref(),
            Some("4000 bye (closed by server)")
        );
        assert_eq!(
            server_closed(None).reason,
            "closed by server (no close code)"
        );
    }
}
