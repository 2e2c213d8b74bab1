//! Presentation: the words a person reads, made from the machine's typed
//! outcomes ([`crate::machine::outcome`]).
//!
//! Connection Status, Last Error, Last Close, the reason a Disconnected or
//! Gave Up trigger carries, and the log lines that report an ending are all
//! written here and nowhere else, so a wording changes in one place and a
//! controller that needs to decide something reads the typed value (the
//! Connection State status variable) instead of parsing these sentences.

use crate::machine::{Closure, ConnectionState, Ending, Expired, GiveUp, Loss, Peer, Stage};
use std::fmt;
use std::time::Duration;

/// Stage names as Last Error shows them.
pub fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Dns => "DNS",
        Stage::Tcp => "TCP",
        Stage::Proxy => "Proxy",
        Stage::Tls => "TLS",
        Stage::HttpUpgrade => "HTTP upgrade",
        Stage::WebSocket => "WebSocket",
        Stage::ConnectTimeout => "Connect timeout",
        Stage::PingTimeout => "Ping timeout",
        Stage::IdleTimeout => "Idle timeout",
    }
}

/// Connection Status: `Connecting (attempt 2)`, `Disconnected: <reason>`,
/// `Reconnecting in 2.3 s (attempt 3); <last loss>`, …
pub fn connection_status(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Disconnected { why: None } => "Disconnected".to_owned(),
        ConnectionState::Disconnected { why: Some(why) } => {
            format!("Disconnected: {}", why.reason)
        }
        ConnectionState::Connecting { attempt } if *attempt <= 1 => "Connecting".to_owned(),
        ConnectionState::Connecting { attempt } => format!("Connecting (attempt {attempt})"),
        ConnectionState::Handshaking => "Connected, WebSocket handshake in progress".to_owned(),
        ConnectionState::Established => "Established".to_owned(),
        ConnectionState::Closing => "Closing".to_owned(),
        ConnectionState::Failed { ending } => format!("Connect failed: {}", ending.reason),
        ConnectionState::Reconnecting {
            delay,
            attempt,
            after,
            ..
        } => format!(
            "Reconnecting in {:.1} s (attempt {attempt}); {}",
            delay.as_secs_f64(),
            loss(after)
        ),
        ConnectionState::NoRetry { after } => {
            format!(
                "{}; no retry will follow (Auto-Reconnect is off)",
                loss(after)
            )
        }
        ConnectionState::GaveUp { why } => format!("Gave up: {}", give_up_reason(why)),
        ConnectionState::WaitingForNetwork { after: None } => "Waiting for the network".to_owned(),
        ConnectionState::WaitingForNetwork { after: Some(after) } => {
            format!("{}; waiting for the network", loss(after))
        }
    }
}

/// A loss as Connection Status says it on its own.
fn loss(loss: &Loss) -> String {
    connection_status(&loss.clone().state())
}

/// The reason Gave Up carries (also in Connection Status and the log).
pub fn give_up_reason(why: &GiveUp) -> String {
    match why {
        GiveUp::Fatal { ending } => format!("{} (retrying cannot help)", ending.reason),
        GiveUp::MaxAttempts {
            failures,
            max,
            last,
        } => format!(
            "{failures} connection attempt(s) in a row failed (Reconnect Max Attempts {max}); last: {}",
            last.reason
        ),
    }
}

/// Last Error: the reason and the stage it failed in, or None for an
/// orderly end.
pub fn last_error(ending: &Ending) -> Option<String> {
    let stage = ending.stage?;
    Some(format!("{} (stage: {})", ending.reason, stage_name(stage)))
}

/// Last Close: `1000 bye (closed by server)`, `1006 (connection lost
/// without a close frame)`, …
impl fmt::Display for Closure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closure::Handshake {
                by: Peer::Server,
                code: None,
                ..
            } => f.write_str("1005 (closed by server without a code)"),
            Closure::Handshake { by, code, reason } => {
                let by = match by {
                    Peer::Client => "client",
                    Peer::Server => "server",
                };
                let code = code.unwrap_or(1005);
                if reason.is_empty() {
                    write!(f, "{code} (closed by {by})")
                } else {
                    write!(f, "{code} {reason} (closed by {by})")
                }
            }
            Closure::Lost => f.write_str("1006 (connection lost without a close frame)"),
            Closure::Dropped => f.write_str("1006 (connection dropped by client)"),
        }
    }
}

/// The Disconnected reason of a close the server started:
/// `closed by server: 1000 bye`.
pub fn server_close_reason(close: &Closure) -> String {
    match close {
        Closure::Handshake {
            code: Some(code),
            reason,
            ..
        } if reason.is_empty() => format!("closed by server: {code}"),
        Closure::Handshake {
            code: Some(code),
            reason,
            ..
        } => format!("closed by server: {code} {reason}"),
        _ => "closed by server (no close code)".to_owned(),
    }
}

/// The reason of an ending the machine decided on a deadline.
pub fn expired_reason(expired: Expired) -> String {
    match expired {
        Expired::Connect { after } => {
            format!(
                "TCP connect timed out after {} (Connect Timeout)",
                secs(after)
            )
        }
        Expired::Handshake { after } => format!(
            "TLS/WebSocket handshake timed out after {} (Connect Timeout)",
            secs(after)
        ),
        Expired::Idle { after } => format!(
            "no frame from the server for {}: connection is dead (Idle Timeout)",
            secs(after)
        ),
        Expired::Pong { after } => format!(
            "no answer to keep-alive ping within {}: connection is dead",
            secs(after)
        ),
    }
}

/// The reason when our close frame got no answer: the Disconnect's own
/// reason, and what went wrong.
pub fn close_unanswered_reason(why: &str) -> String {
    format!("{why} (server did not answer the close frame)")
}

/// The log line when the server sent its close frame but kept TCP open
/// past the close timeout (the ending is then the server's close).
pub fn server_kept_tcp_open_log(close_timeout: Duration) -> String {
    format!(
        "the server sent its close frame but did not close the connection within {}; the client closed it",
        secs(close_timeout)
    )
}

/// What a loss adds to its reason when messages were still waiting to be
/// written: nothing is dropped without saying so.
pub fn unsent_note(messages: usize) -> String {
    format!("; {messages} queued message(s) were not sent")
}

/// The log line of a connection that ended after Connected.
pub fn disconnected_log(ending: &Ending) -> String {
    format!("disconnected: {}", ending.reason)
}

/// The log line of a connection attempt that failed before Connected.
pub fn connect_failed_log(url: &str, ending: &Ending) -> String {
    format!("connect to {url} failed: {}", ending.reason)
}

/// The log line when Auto-Reconnect stops.
pub fn gave_up_log(why: &GiveUp) -> String {
    format!("auto-reconnect gave up: {}", give_up_reason(why))
}

/// What to check when the server at the other end does not speak the
/// protocol the client started: the handshake was closed unanswered, or
/// answered with bytes that are not HTTP (WebSocket) or not TLS (WSS).
/// `subprotocols` are the ones the client asked for: a server that
/// supports none of them may close instead of answering.
pub fn wrong_peer_advice(subprotocols: &[String]) -> String {
    let mut advice =
        "check Port and Protocol (WS for a plain port, WSS for a TLS port) and Path".to_owned();
    if !subprotocols.is_empty() {
        let asked: Vec<String> = subprotocols.iter().map(|p| format!("\"{p}\"")).collect();
        advice.push_str(&format!(
            "; a server also closes like this when it accepts none of the Subprotocols asked for ({})",
            asked.join(", ")
        ));
    }
    advice
}

/// "30 s", "0.2 s": durations in log lines and reasons.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn connection_status_keeps_its_wording() {
        let refused = || Loss::ConnectFailed {
            ending: Ending::error(Stage::Tcp, "refused".into()),
        };
        let cases = [
            (ConnectionState::INITIAL, "Disconnected"),
            (
                ConnectionState::Disconnected {
                    why: Some(Ending::from("Disconnect action")),
                },
                "Disconnected: Disconnect action",
            ),
            (ConnectionState::Connecting { attempt: 1 }, "Connecting"),
            (
                ConnectionState::Connecting { attempt: 3 },
                "Connecting (attempt 3)",
            ),
            (
                ConnectionState::Handshaking,
                "Connected, WebSocket handshake in progress",
            ),
            (ConnectionState::Established, "Established"),
            (ConnectionState::Closing, "Closing"),
            (
                ConnectionState::Failed {
                    ending: Ending::error(Stage::Tcp, "refused".into()),
                },
                "Connect failed: refused",
            ),
            (
                ConnectionState::Reconnecting {
                    at: Instant::now(),
                    delay: Duration::from_millis(2_345),
                    attempt: 3,
                    after: refused(),
                },
                "Reconnecting in 2.3 s (attempt 3); Connect failed: refused",
            ),
            (
                ConnectionState::GaveUp {
                    why: GiveUp::Fatal {
                        ending: Ending::error(
                            Stage::HttpUpgrade,
                            "HTTP upgrade refused: 401 Unauthorized".into(),
                        ),
                    },
                },
                "Gave up: HTTP upgrade refused: 401 Unauthorized (retrying cannot help)",
            ),
            (
                ConnectionState::GaveUp {
                    why: GiveUp::MaxAttempts {
                        failures: 3,
                        max: 3,
                        last: Ending::error(Stage::Tcp, "refused".into()),
                    },
                },
                "Gave up: 3 connection attempt(s) in a row failed (Reconnect Max Attempts 3); last: refused",
            ),
            (
                ConnectionState::NoRetry { after: refused() },
                "Connect failed: refused; no retry will follow (Auto-Reconnect is off)",
            ),
            (
                ConnectionState::NoRetry {
                    after: Loss::Disconnected {
                        ending: Ending::from("closed by server: 1000 bye"),
                    },
                },
                "Disconnected: closed by server: 1000 bye; no retry will follow (Auto-Reconnect is off)",
            ),
            (
                ConnectionState::WaitingForNetwork { after: None },
                "Waiting for the network",
            ),
            (
                ConnectionState::WaitingForNetwork {
                    after: Some(Loss::Disconnected {
                        ending: Ending::from("network down"),
                    }),
                },
                "Disconnected: network down; waiting for the network",
            ),
        ];
        for (state, text) in cases {
            assert_eq!(connection_status(&state), text);
            assert!(ConnectionState::WORDS.contains(&state.word()));
        }
    }

    #[test]
    fn closes_read_as_last_close_and_reason() {
        let cases = [
            (
                Closure::by_server(Some(1000), "bye"),
                "1000 bye (closed by server)",
            ),
            (
                Closure::by_server(Some(1001), ""),
                "1001 (closed by server)",
            ),
            (
                Closure::by_server(None, ""),
                "1005 (closed by server without a code)",
            ),
            (Closure::by_client(1000, ""), "1000 (closed by client)"),
            (
                Closure::by_client(1009, "message too big"),
                "1009 message too big (closed by client)",
            ),
            (
                Closure::Lost,
                "1006 (connection lost without a close frame)",
            ),
            (Closure::Dropped, "1006 (connection dropped by client)"),
        ];
        for (close, text) in cases {
            assert_eq!(close.to_string(), text);
        }
        let ending = Ending::closed_by_server(Some((1000, "bye")));
        assert_eq!(ending.reason, "closed by server: 1000 bye");
        assert_eq!(
            Ending::closed_by_server(Some((1001, ""))).reason,
            "closed by server: 1001"
        );
        assert_eq!(
            Ending::closed_by_server(None).reason,
            "closed by server (no close code)"
        );
        assert_eq!(last_error(&ending), None, "an orderly close is no error");
        assert_eq!(
            last_error(&Ending::error(Stage::HttpUpgrade, "refused".into())).as_deref(),
            Some("refused (stage: HTTP upgrade)")
        );
    }
}
