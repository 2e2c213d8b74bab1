//! Log Comms: one log line per frame, in either direction, that shows its
//! kind, its length and its first bytes.

use async_tungstenite::tungstenite::Message;

/// Log Comms shows at most this many bytes of each frame.
const COMMS_PREVIEW: usize = 200;

/// A Log Comms line: direction, opcode, length, the first bytes.
pub(super) fn comms_line(direction: &str, message: &Message) -> String {
    let (opcode, payload): (&str, &[u8]) = match message {
        Message::Text(t) => ("text", t.as_bytes()),
        Message::Binary(b) => ("binary", b),
        Message::Ping(b) => ("ping", b),
        Message::Pong(b) => ("pong", b),
        Message::Frame(f) => ("frame", f.payload()),
        // The code and reason, not the raw payload.
        Message::Close(Some(f)) => {
            let code = u16::from(f.code);
            return format!("comms {direction} close {code} {:?}", f.reason.as_str());
        }
        Message::Close(None) => return format!("comms {direction} close without a code"),
    };
    let shown = &payload[..payload.len().min(COMMS_PREVIEW)];
    let more = if payload.len() > COMMS_PREVIEW {
        "…"
    } else {
        ""
    };
    format!(
        "comms {direction} {opcode} {} bytes: {:?}{more}",
        payload.len(),
        String::from_utf8_lossy(shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_tungstenite::tungstenite::protocol::CloseFrame;

    #[test]
    fn comms_lines_show_direction_opcode_length_and_the_first_200_bytes() {
        let long = "x".repeat(500);
        let line = comms_line("<-", &Message::text(long));
        assert!(line.starts_with("comms <- text 500 bytes: \"xxx"));
        let shown = line.split_once(": ").unwrap().1;
        assert_eq!(shown.matches('x').count(), COMMS_PREVIEW);
        assert!(line.ends_with('…'));
        let line = comms_line("->", &Message::binary(vec![0u8, 159, 146, 150]));
        assert!(line.starts_with("comms -> binary 4 bytes: "), "{line}");
        let bye = Message::Close(Some(CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        }));
        assert_eq!(comms_line("<-", &bye), "comms <- close 4000 \"bye\"");
        assert_eq!(
            comms_line("->", &Message::Close(None)),
            "comms -> close without a code"
        );
    }
}
