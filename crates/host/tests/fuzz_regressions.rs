//! Regression tests for what the fuzz targets (fuzz/) found: each test
//! names the target and keeps the smallest input that showed the problem,
//! so it stays fixed under a plain `cargo test`.

use serde_json::json;
use wsio::Properties;
use wsio::testing::parse_proxy;

/// fuzz target `properties_json`: a proxy password containing `@` made the
/// error message show the part after the first `@` (the URL's userinfo ends
/// at the *last* `@`), e.g. `http://admin:***@ssw0rd@proxy` for the
/// password `p@ssw0rd`; and a password holding `://`.
#[test]
fn regression_properties_json_proxy_password_with_at_sign_is_not_shown() {
    for text in [
        "https://admin:p@ssw0rd@proxy.lan:3128",
        "http://admin:p@ssw0rd@proxy.lan:99999",
        "admin:p@ss@w0rd@[::1:3128",
        "http://admin:p@ssw0rd@",
    ] {
        let error = parse_proxy(text, "Proxy").expect_err(text).to_string();
        assert!(
            !error.contains("ssw0rd") && !error.contains("w0rd"),
            "{error}"
        );
        assert!(error.contains("admin:***@"), "{error}");
        let error = Properties::from_json(&json!({"Hostname": "h", "Proxy": text}))
            .expect_err(text)
            .to_string();
        assert!(!error.contains("w0rd"), "{error}");
    }
    // The same target then found a password holding "://" with no scheme
    // in front: the text before it was taken for a scheme and shown.
    for text in [
        "admin:Kq7://Vz3@proxy.lan:99999",
        "admin:Kq7@x://Vz3@proxy.lan:99999",
    ] {
        let error = parse_proxy(text, "Proxy").expect_err(text).to_string();
        assert!(!error.contains("Kq7") && !error.contains("Vz3"), "{error}");
        assert!(error.contains("***@proxy.lan:99999"), "{error}");
    }
    // A password with '@' that parses is accepted whole.
    let proxy = parse_proxy("http://admin:p@ssw0rd@proxy.lan:3128", "Proxy").unwrap();
    assert_eq!(proxy.host, "proxy.lan");
    assert_eq!(proxy.auth.unwrap().password.expose(), "p@ssw0rd");
}
