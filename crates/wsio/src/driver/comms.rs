//! Log Comms: one log line per frame, in either direction, that shows its
//! kind, its length and its first bytes: text as quoted text, everything
//! else (binary, ping, pong payloads) as lowercase hex, so a binary
//! protocol reads byte for byte instead of as replacement characters.

use async_tungstenite::tungstenite::Message;

/// Log Comms shows at most this many bytes of each frame.
const COMMS_PREVIEW: usize = 200;

/// A Log Comms line: direction, opcode, length, the first bytes.
pub(super) fn comms_line(direction: &str, message: &Message) -> String {
    let (opcode, payload, text): (&str, &[u8], bool) = match message {
        Message::Text(t) => ("text", t.as_bytes(), true),
        Message::Binary(b) => ("binary", b, false),
        Message::Ping(b) => ("ping", b, false),
        Message::Pong(b) => ("pong", b, false),
        Message::Frame(f) => ("frame", f.payload(), false),
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
    let shown = if text {
        format!("{:?}", String::from_utf8_lossy(shown))
    } else {
        hex::encode(shown)
    };
    format!(
        "comms {direction} {opcode} {} bytes: {shown}{more}",
        payload.len()
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
        assert_eq!(line, "comms -> binary 4 bytes: 009f9296");
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

    #[test]
    fn binary_frames_show_their_first_200_bytes_as_hex() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        let line = comms_line("<-", &Message::binary(bytes.clone()));
        let expected = format!(
            "comms <- binary 300 bytes: {}…",
            hex::encode(&bytes[..COMMS_PREVIEW])
        );
        assert_eq!(line, expected);
        assert!(!line.contains('\u{fffd}'), "no replacement characters");
        assert_eq!(
            comms_line("->", &Message::Ping(vec![1, 2].into())),
            "comms -> ping 2 bytes: 0102"
        );
        assert_eq!(
            comms_line("<-", &Message::Pong(Vec::new().into())),
            "comms <- pong 0 bytes: "
        );
    }
}
