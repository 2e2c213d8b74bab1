//! The fast path of a wired Send Message: `{"Message":"…"}` read without a
//! JSON tree, for `iom_instance_action`, where building one and a property
//! map per call cost more than the rest of the action.

/// The Message of `{"Message":"…"}` (JSON whitespace allowed) when the
/// text has no escape: what a wired Send Message nearly always is. It is
/// exactly what the general path would make of it (Message Type defaults to
/// Text). Anything else (escapes, other properties, bad JSON) returns None
/// and takes the general path.
pub(super) fn plain_send_message(json: &str) -> Option<&str> {
    const WS: [char; 4] = [' ', '\t', '\n', '\r'];
    let rest = json.trim_start_matches(WS).strip_prefix('{')?;
    let rest = rest.trim_start_matches(WS).strip_prefix("\"Message\"")?;
    let rest = rest.trim_start_matches(WS).strip_prefix(':')?;
    let rest = rest.trim_start_matches(WS).strip_prefix('"')?;
    // The first quote or backslash (memchr: a large message is scanned at
    // memory speed); plain text has no escape and no control character
    // before it (checked without an early exit, so that it vectorizes).
    let bytes = rest.as_bytes();
    let end = memchr::memchr2(b'"', b'\\', bytes)?;
    if bytes[end] != b'"' || bytes[..end].iter().fold(false, |c, &b| c | (b < b' ')) {
        return None;
    }
    let after = rest[end + 1..].trim_start_matches(WS).strip_prefix('}')?;
    after.trim_matches(WS).is_empty().then_some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_message_fast_path_takes_only_what_the_general_path_reads_the_same() {
        assert_eq!(
            plain_send_message(r#"{"Message":"hi <1>"}"#),
            Some("hi <1>")
        );
        assert_eq!(plain_send_message(" {\n\"Message\" : \"\" }\r\n"), Some(""));
        assert_eq!(
            plain_send_message(r#"{"Message":"caf\u00e9 ☕"}"#),
            None,
            "escape"
        );
        assert_eq!(
            plain_send_message("{\"Message\":\"café ☕\"}"),
            Some("café ☕")
        );
        for general in [
            r#"{"Message":"a\"b"}"#,
            r#"{"Message":"a","Message Type":"Binary"}"#,
            r#"{"Message Type":"Text","Message":"a"}"#,
            r#"{"Message":5}"#,
            r#"{"Message":"a"} x"#,
            r#"{"Message":"a""#,
            "{\"Message\":\"tab\there\"}",
            "\u{a0}{\"Message\":\"a\"}",
            "",
        ] {
            assert_eq!(plain_send_message(general), None, "{general:?}");
        }
    }
}
