//! Send Message's Message Type: how the Message property, with its `<n>`
//! placeholders filled from the firing trigger's variables, becomes the
//! frame that is sent.
//!
//! Text sends the filled Message as a text frame; Binary reads it as hex
//! digits and sends those bytes in a binary frame. As Received forwards a
//! message the way it came: actions see a fired message only through the
//! trigger variables (strings, in the Rust API and the C ABI alike), where a
//! binary message is its lowercase hex and the Message Type variable, always
//! the last one of Messages Received, says `binary`. So As Received is
//! Binary when the variables say so ([`fired_binary`]) and Text otherwise,
//! and `<1>` turns back into the original bytes. The rule needs nothing but
//! the variables a host already passes, so every host that hands a wired
//! action its trigger's variables gets it.

use crate::machine::Outbound;
use crate::manifest::names;
use crate::matching::fill_placeholders;
use crate::properties::PropertyError;
use async_tungstenite::tungstenite::Utf8Bytes;

/// The Message Type option of Send Message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Text,
    Binary,
    /// Binary when the firing trigger's message was binary, else Text.
    AsReceived,
}

impl MessageType {
    /// The manifest option (already checked against the manifest's list).
    pub fn from_option(option: &str) -> MessageType {
        match option {
            "Binary" => MessageType::Binary,
            "As Received" => MessageType::AsReceived,
            _ => MessageType::Text,
        }
    }
}

/// Whether the firing trigger's message was binary, read from its
/// variables: those of Messages Received (at least the message and its
/// Message Type) whose last one is exactly `binary`. No variables (an
/// action run by hand, a connection trigger) or a single one (the reason of
/// Disconnected) mean text. The convention is the one `iom.h` documents.
pub fn fired_binary<S: AsRef<str>>(variables: &[S]) -> bool {
    variables.len() >= 2 && variables.last().is_some_and(|v| v.as_ref() == "binary")
}

/// The frame Send Message sends: `template` (the Message property) with its
/// placeholders filled from `variables`, as text or as the bytes its hex
/// digits spell. A Message that is exactly one placeholder of a binary
/// message (`<1>`, surrounding whitespace allowed) is decoded straight from
/// the variable, without a copy of the hex first.
pub fn compose<S: AsRef<str>>(
    template: &str,
    kind: MessageType,
    variables: &[S],
) -> Result<Outbound, PropertyError> {
    let as_received = kind == MessageType::AsReceived;
    let binary = match kind {
        MessageType::Text => false,
        MessageType::Binary => true,
        MessageType::AsReceived => fired_binary(variables),
    };
    if !binary {
        return Ok(Outbound::Text(Utf8Bytes::from(fill_placeholders(
            template, variables,
        ))));
    }
    let bytes = match lone_placeholder(template).and_then(|n| variables.get(n - 1)) {
        Some(variable) => parse_hex(variable.as_ref()),
        None => parse_hex(&fill_placeholders(template, variables)),
    };
    bytes.map(|b| Outbound::Binary(b.into())).map_err(|mut e| {
        if as_received {
            e.message = format!(
                "{}; with Message Type As Received the firing message was binary, so Message must be hex once its placeholders are filled (<1> is the message's hex unless the receiving instance has Binary As Text on: turn it off to forward binary messages)",
                e.message
            );
        }
        e
    })
}

/// The number n when `template` is `<n>` and nothing else but whitespace.
fn lone_placeholder(template: &str) -> Option<usize> {
    let digits = template.trim().strip_prefix('<')?.strip_suffix('>')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n >= 1)
}

/// Hex digits (whitespace allowed between bytes) to bytes; an error names
/// the offset of the first bad character in the Message text. Hex without
/// whitespace (a forwarded message's `<1>`, up to Max Message Size) is
/// decoded in one pass with no intermediate copy.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, PropertyError> {
    let has_space = text.bytes().any(|b| b.is_ascii_whitespace()) || !text.is_ascii();
    let compact: std::borrow::Cow<'_, str> = if has_space {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    } else {
        text.into()
    };
    hex::decode(compact.as_bytes()).map_err(|_| {
        // `hex` checks the length before the digits and reports bytes, not
        // characters: find the first character that is not a hex digit.
        let bad = text
            .char_indices()
            .find(|(_, c)| !c.is_whitespace() && !c.is_ascii_hexdigit());
        let message = match bad {
            Some((offset, c)) => format!(
                "Message is not hex: '{c}' at offset {offset} is not a hex digit (Message Type Binary takes hex such as 01 ff 7e)"
            ),
            None => format!(
                "Message is not hex: {} hex digit(s) is an odd count; every byte takes two digits",
                compact.len()
            ),
        };
        PropertyError {
            property: names::MESSAGE.to_owned(),
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(bytes: &[u8]) -> Outbound {
        Outbound::Binary(bytes.to_vec().into())
    }

    fn text(s: &str) -> Outbound {
        Outbound::Text(s.into())
    }

    #[test]
    fn as_received_sends_a_binary_message_back_as_its_bytes() {
        let vars = ["00ff7e80", "binary"];
        assert_eq!(
            compose("<1>", MessageType::AsReceived, &vars).unwrap(),
            binary(&[0x00, 0xff, 0x7e, 0x80])
        );
        assert_eq!(
            compose(" <1>\n", MessageType::AsReceived, &vars).unwrap(),
            binary(&[0x00, 0xff, 0x7e, 0x80])
        );
        // The empty binary message is an empty binary frame.
        assert_eq!(
            compose("<1>", MessageType::AsReceived, &["", "binary"]).unwrap(),
            binary(&[])
        );
        // Regex captures and JSON values come before the Message Type.
        let vars = ["0102ff", "ff", "binary"];
        assert_eq!(
            compose("<2>", MessageType::AsReceived, &vars).unwrap(),
            binary(&[0xff])
        );
    }

    #[test]
    fn as_received_sends_text_as_text() {
        assert_eq!(
            compose("<1>", MessageType::AsReceived, &["00ff", "text"]).unwrap(),
            text("00ff")
        );
        // No Message Type variable: not a fired message, so text.
        assert_eq!(
            compose("<1>", MessageType::AsReceived, &["binary"]).unwrap(),
            text("binary")
        );
        assert_eq!(
            compose("hi", MessageType::AsReceived, &[] as &[&str]).unwrap(),
            text("hi")
        );
        // Disconnected's reason is one variable, whatever it says.
        assert_eq!(
            compose(
                "<1>",
                MessageType::AsReceived,
                &["closed by server: 1000 binary"]
            )
            .unwrap(),
            text("closed by server: 1000 binary")
        );
    }

    #[test]
    fn a_longer_message_of_a_binary_message_is_hex_too() {
        let vars = ["7e80", "binary"];
        assert_eq!(
            compose("01 <1> 02", MessageType::AsReceived, &vars).unwrap(),
            binary(&[0x01, 0x7e, 0x80, 0x02])
        );
        let e = compose("got <1>", MessageType::AsReceived, &vars).unwrap_err();
        assert_eq!(e.property, "Message");
        assert!(
            e.message.starts_with("Message is not hex: 'g' at offset 0")
                && e.message
                    .contains("As Received the firing message was binary")
                && e.message.contains("Binary As Text"),
            "{}",
            e.message
        );
        // Binary As Text delivered text: not hex, said so.
        let e = compose("<1>", MessageType::AsReceived, &["héllo", "binary"]).unwrap_err();
        assert!(e.message.contains("Binary As Text"), "{}", e.message);
        // The same text with Message Type Text is simply sent.
        assert_eq!(
            compose("got <1>", MessageType::Text, &vars).unwrap(),
            text("got 7e80")
        );
    }

    #[test]
    fn binary_and_text_do_not_depend_on_the_firing_message() {
        assert_eq!(
            compose("<1>", MessageType::Binary, &["0a0b", "text"]).unwrap(),
            binary(&[0x0a, 0x0b])
        );
        assert_eq!(
            compose("<1>", MessageType::Text, &["0a0b", "binary"]).unwrap(),
            text("0a0b")
        );
    }

    #[test]
    fn placeholders_alone_are_recognised() {
        assert_eq!(lone_placeholder("<1>"), Some(1));
        assert_eq!(lone_placeholder(" <12> "), Some(12));
        for not in ["<0>", "<>", "<1>x", "<a>", "x<1>", "<1><2>", "<+1>"] {
            assert_eq!(lone_placeholder(not), None, "{not}");
        }
        // A lone placeholder with no such variable stays literal, like
        // every placeholder: not hex.
        assert!(compose("<3>", MessageType::AsReceived, &["00", "binary"]).is_err());
    }

    #[test]
    fn hex_errors_name_the_offset_in_the_message() {
        assert_eq!(parse_hex("00 ff\t7e\n41").unwrap(), [0, 0xff, 0x7e, 0x41]);
        assert_eq!(parse_hex("ABcd").unwrap(), [0xab, 0xcd]);
        let e = parse_hex("00 fg").unwrap_err();
        assert!(e.message.contains("'g' at offset 4"), "{}", e.message);
        let e = parse_hex("é0").unwrap_err();
        assert!(e.message.contains("'é' at offset 0"), "{}", e.message);
        let e = parse_hex("0 0 0").unwrap_err();
        assert!(e.message.contains("3 hex digit(s)"), "{}", e.message);
    }

    #[test]
    fn a_large_binary_message_round_trips() {
        let original: Vec<u8> = (0..4 * 1024 * 1024u32)
            .map(|i| (i * 7 + i / 256) as u8)
            .collect();
        let vars = [hex::encode(&original), "binary".to_owned()];
        let Outbound::Binary(sent) = compose("<1>", MessageType::AsReceived, &vars).unwrap() else {
            panic!("not binary")
        };
        assert!(sent[..] == original[..]);
    }
}
