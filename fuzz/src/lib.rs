//! What the fuzz targets share: splitting one input into parts, keeping the
//! filesystem out of reach, and the secret-marker checks.

use serde_json::Value;

/// A string that appears in no seed and that the targets plant as a secret
/// (password, bearer token): no error, note or debug text may contain it.
pub const MARKER: &str = "Zq9xSECRETmarker";

/// Splits `data` at NUL bytes into at most `n` UTF-8 (lossy) parts; missing
/// parts are empty. Seeds are written the same way (see docs/reliability.md,
/// fuzzing).
pub fn parts(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// The properties whose value may be a file path (PEM text or a path).
const PATH_PROPERTIES: [&str; 3] = ["CA Certificate", "Client Certificate", "Client Key"];

/// Replaces a file path in the PEM-or-path properties by a path that does
/// not exist: the parser's "cannot read the file" branch still runs, but a
/// fuzzer never makes it read /dev/zero or a FIFO (unbounded reads are a
/// property of the file named, not of the parser).
pub fn neutralize_paths(value: &mut Value) {
    if let Some(object) = value.as_object_mut() {
        for key in PATH_PROPERTIES {
            if let Some(Value::String(s)) = object.get_mut(key) {
                let t = s.trim();
                if !t.is_empty() && !t.starts_with("-----BEGIN") {
                    *s = "/nonexistent/wsio-fuzz.pem".to_owned();
                }
            }
        }
    }
}

/// Whether parsed JSON already holds the marker in a key or a string: JSON
/// escapes (`\u0053`) can spell it without the raw text containing it.
/// `MARKER` has no character JSON escapes, so the serialized form shows it
/// whenever some key or string holds it.
pub fn value_has_marker(value: &Value) -> bool {
    value.to_string().contains(MARKER)
}

/// Panics (a fuzz crash) when `text` shows the planted secret.
pub fn assert_no_marker(what: &str, text: &str) {
    assert!(
        !text.contains(MARKER),
        "the planted secret leaked into {what}: {text}"
    );
}
