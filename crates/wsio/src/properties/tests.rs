//! Unit tests of property parsing: every error names the property and
//! what is accepted.

use super::*;
use serde_json::json;

fn err(v: Value) -> String {
    Properties::from_json(&v).unwrap_err().message
}

#[test]
fn minimal_properties_take_manifest_defaults() {
    let p = Properties::from_json(&json!({"Hostname": "demo.piesocket.com"})).unwrap();
    assert_eq!(p.hostname, "demo.piesocket.com");
    assert_eq!(p.path, "/");
    assert_eq!(p.protocol, Protocol::Ws);
    assert_eq!(p.port, 80);
    assert!(p.keep_alive, "keep-alive defaults on");
    assert!(!p.auto_reconnect);
    assert!(!p.extended_logging && !p.log_comms);
    assert_eq!(p.url(), "ws://demo.piesocket.com:80/");
}

#[test]
fn port_zero_means_the_protocol_default() {
    let p = Properties::from_json(&json!({"Hostname": "h", "Protocol": "WSS", "Port": 0})).unwrap();
    assert_eq!(p.port, 443);
    let p =
        Properties::from_json(&json!({"Hostname": "h", "Protocol": "wss", "Port": 8443})).unwrap();
    assert_eq!((p.protocol, p.port), (Protocol::Wss, 8443));
}

#[test]
fn scheme_in_hostname_names_the_fix() {
    assert_eq!(
        err(json!({"Hostname": "wss://demo.piesocket.com"})),
        "Hostname \"wss://demo.piesocket.com\" must not include a scheme such as wss://; choose WSS in Protocol instead"
    );
}

#[test]
fn bad_hostnames_are_refused_with_the_reason() {
    assert!(err(json!({})).starts_with("Hostname is required"));
    assert!(err(json!({"Hostname": "  "})).starts_with("Hostname is required"));
    assert!(err(json!({"Hostname": "demo.com/v3/1"})).contains("must not include a path"));
    assert!(err(json!({"Hostname": "demo.com:8080"})).contains("set the Port property"));
    assert!(err(json!({"Hostname": "bad host"})).contains("not a valid host name"));
    assert!(err(json!({"Hostname": "-bad.com"})).contains("not a valid host name"));
    assert!(err(json!({"Hostname": "[zz::1]"})).contains("not a valid IPv6"));
}

#[test]
fn ip_addresses_are_accepted_and_ipv6_is_bracketed_in_the_url() {
    let p = Properties::from_json(&json!({"Hostname": "::1", "Port": 9000})).unwrap();
    assert_eq!(p.url(), "ws://[::1]:9000/");
    let p = Properties::from_json(&json!({"Hostname": "[::1]"})).unwrap();
    assert_eq!(p.hostname, "::1");
    let p = Properties::from_json(&json!({"Hostname": "127.0.0.1"})).unwrap();
    assert_eq!(p.hostname, "127.0.0.1");
}

#[test]
fn port_out_of_range_and_wrong_types() {
    assert_eq!(
        err(json!({"Hostname": "h", "Port": 70000})),
        "Port must be an integer from 0 to 65535, got 70000"
    );
    assert_eq!(
        err(json!({"Hostname": "h", "Port": "80"})),
        "Port must be an integer from 0 to 65535, got \"80\""
    );
    assert_eq!(
        err(json!({"Hostname": "h", "Port": -1})),
        "Port must be an integer from 0 to 65535, got -1"
    );
    assert_eq!(
        err(json!({"Hostname": "h", "Auto-Reconnect": "yes"})),
        "Auto-Reconnect must be true or false, got \"yes\""
    );
    assert_eq!(
        err(json!({"Hostname": 5})),
        "Hostname must be a string, got 5"
    );
    assert!(err(json!([1, 2])).starts_with("instance properties must be a JSON object"));
}

#[test]
fn unknown_protocol_lists_the_options() {
    assert_eq!(
        err(json!({"Hostname": "h", "Protocol": "HTTP"})),
        "Protocol must be one of \"WS\", \"WSS\", got \"HTTP\""
    );
}

#[test]
fn unknown_property_lists_the_accepted_names() {
    let message = err(json!({"Hostname": "h", "Colour": "x"}));
    assert!(message.starts_with("unknown instance property \"Colour\"; accepted: \"Hostname\""));
    assert!(message.contains("\"Log Comms\""));
}

#[test]
fn a_name_off_by_case_or_a_small_typo_gets_a_suggestion() {
    assert_eq!(
        err(json!({"hostname": "h"})),
        "unknown instance property \"hostname\"; did you mean \"Hostname\"?"
    );
    assert_eq!(
        err(json!({"Hostname": "h", "Hostnme": "x"})),
        "unknown instance property \"Hostnme\"; did you mean \"Hostname\"?"
    );
    assert_eq!(
        err(json!({"Hostname": "h", "auto-reconect": true})),
        "unknown instance property \"auto-reconect\"; did you mean \"Auto-Reconnect\"?"
    );
    // Trigger and action properties say the same.
    let trigger = wsio_trigger_error("Messages Received", json!({"match string": "x"}));
    assert_eq!(
        trigger,
        "unknown trigger \"Messages Received\" property \"match string\"; did you mean \"Match String\"?"
    );
    let action = PropertyValues::parse(
        &crate::manifest::Manifest::get()
            .action("Send Message")
            .unwrap()
            .properties,
        &json!({"Mesage": "x"}),
        "action \"Send Message\"",
    )
    .unwrap_err()
    .message;
    assert_eq!(
        action,
        "unknown action \"Send Message\" property \"Mesage\"; did you mean \"Message\"?"
    );
}

fn wsio_trigger_error(trigger: &str, properties: serde_json::Value) -> String {
    match crate::matching::PreparedTrigger::prepare(trigger, &properties) {
        Ok(_) => panic!("{trigger} accepted {properties}"),
        Err(e) => e.message,
    }
}

#[test]
fn closest_name_offers_only_close_names() {
    let known = ["Hostname", "Port", "Path", "Log Comms"];
    let closest = |name: &str| closest_name(name, known.iter().copied());
    assert_eq!(closest("PORT"), Some("Port"));
    assert_eq!(
        closest("Pth"),
        None,
        "short names need an exact match apart from case"
    );
    assert_eq!(closest("Paht"), Some("Path"), "a swap is one edit");
    assert_eq!(closest("log coms"), Some("Log Comms"));
    assert_eq!(closest("Colour"), None);
    assert_eq!(closest("Host"), None);
}

#[test]
fn path_is_normalised_and_validated() {
    let p = Properties::from_json(&json!({"Hostname": "h", "Path": "v3/1?api_key=k"})).unwrap();
    assert_eq!(p.path, "/v3/1?api_key=k");
    assert_eq!(
        p.notes.len(),
        1,
        "the normalisation is reported for the log"
    );
    let p = Properties::from_json(&json!({"Hostname": "h", "Path": ""})).unwrap();
    assert_eq!(p.path, "/");
    assert!(err(json!({"Hostname": "h", "Path": "/a b"})).contains("percent-encode"));
    assert!(err(json!({"Hostname": "h", "Path": "/é"})).contains("must be ASCII"));
    assert!(err(json!({"Hostname": "h", "Path": "ws://h/x"})).contains("not a URL"));
}

#[test]
fn display_url_hides_the_query() {
    let p = Properties::from_json_str(
        r#"{"Hostname": "h", "Path": "/v3/1?api_key=SECRETKEY&notify_self=1"}"#,
    )
    .unwrap();
    assert_eq!(p.display_url(), "ws://h:80/v3/1?…");
    assert!(!p.display_url().contains("SECRETKEY"));
}

#[test]
fn invalid_json_text_is_reported() {
    let e = Properties::from_json_str("{\"Hostname\": ").unwrap_err();
    assert!(
        e.message
            .starts_with("instance properties are not valid JSON")
    );
}

#[test]
fn bearer_token_syntax_never_echoes_the_token() {
    assert!(validate_bearer_token("abc.DEF-123_~+/==").is_ok());
    let e = validate_bearer_token("abc def-SECRET").unwrap_err();
    assert!(e.message.contains("position 4"));
    assert!(!e.message.contains("SECRET"));
    assert!(validate_bearer_token("==").is_err());
}

#[test]
fn connection_options_default_to_the_classic_behaviour() {
    let p = Properties::from_json(&json!({"Hostname": "h"})).unwrap();
    assert_eq!(p.connect_timeout, Duration::from_secs(10));
    assert_eq!(p.keepalive_interval, Duration::from_secs(30));
    assert_eq!(p.pong_timeout, Duration::from_secs(10));
    assert_eq!(p.idle_timeout, None);
    assert_eq!(p.reconnect.min_delay, Duration::from_secs(1));
    assert_eq!(p.reconnect.max_delay, Duration::from_secs(60));
    assert_eq!(p.reconnect.max_attempts, 0);
    assert!(p.headers.is_empty() && p.subprotocols.is_empty());
    assert!(p.origin.is_none() && p.basic_auth.is_none());
    assert!(!p.tls.is_configured());
    assert!(matches!(p.proxy, ProxySetting::Direct));
    assert_eq!(p.max_message_size, 16 * 1024 * 1024);
}

#[test]
fn headers_are_parsed_and_bad_lines_named_without_values() {
    let p = Properties::from_json(
        &json!({"Hostname": "h", "Headers": "X-Site: north\n\nX-Key: s3cr3t"}),
    )
    .unwrap();
    assert_eq!(p.headers.len(), 2);
    assert_eq!(p.headers[1].name, "X-Key");
    assert_eq!(p.headers[1].value.expose(), "s3cr3t");
    let e = err(json!({"Hostname": "h", "Headers": "X-A: 1\nno colon s3cr3t"}));
    assert!(
        e.starts_with("Headers line 2: expected 'Name: Value'"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"));
    let e = err(json!({"Hostname": "h", "Headers": "Bad Name: v"}));
    assert!(e.contains("\"Bad Name\" is not a valid header name"));
    let e = err(json!({"Hostname": "h", "Headers": "Sec-WebSocket-Protocol: x"}));
    assert!(e.contains("use the Subprotocols property"));
    let e = err(json!({"Hostname": "h", "Headers": "X-A: bad\u{1}value"}));
    assert!(e.contains("the value of X-A has a character not allowed") && !e.contains("bad"));
}

#[test]
fn subprotocols_basic_auth_and_origin_are_checked() {
    let p =
        Properties::from_json(&json!({"Hostname": "h", "Subprotocols": " v2.bar, v1.foo ,v2.bar"}))
            .unwrap();
    assert_eq!(p.subprotocols, vec!["v2.bar", "v1.foo"]);
    assert!(
        err(json!({"Hostname": "h", "Subprotocols": "a b"}))
            .contains("\"a b\" is not a valid subprotocol")
    );
    let p = Properties::from_json(&json!({"Hostname": "h", "Username": "u", "Password": "pw"}))
        .unwrap();
    assert_eq!(p.basic_auth.unwrap().password.expose(), "pw");
    assert!(
        err(json!({"Hostname": "h", "Password": "pw"}))
            .starts_with("Password is set but Username is blank")
    );
    assert!(err(json!({"Hostname": "h", "Username": "a:b"})).contains("must not contain ':'"));
    assert!(err(json!({"Hostname": "h", "Origin": "bad\u{1}"})).starts_with("Origin"));
}

#[test]
fn reconnect_delays_must_be_ordered() {
    assert_eq!(
        err(json!({"Hostname": "h", "Reconnect Min Delay": 5, "Reconnect Max Delay": 2})),
        "Reconnect Min Delay (5 s) must not exceed Reconnect Max Delay (2 s)"
    );
    assert!(err(json!({"Hostname": "h", "Max Message Size": 10})).contains("from 1024 to"));
}

#[test]
fn tls_options_are_parsed_and_checked() {
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = ca.cert.pem();
    let p = Properties::from_json(&json!({"Hostname": "h", "Protocol": "WSS", "CA Certificate": pem, "Trust Only Given CA": true})).unwrap();
    assert_eq!(p.tls.ca_certificates.len(), 1);
    assert!(p.tls.trust_only_given_ca && p.notes.is_empty());
    let p = Properties::from_json(&json!({"Hostname": "h", "CA Certificate": pem})).unwrap();
    assert!(p.notes[0].contains("ignored with Protocol WS"));
    assert!(
        err(json!({"Hostname": "h", "CA Certificate": "/nonexistent/ca.pem"}))
            .contains("cannot read the file \"/nonexistent/ca.pem\"")
    );
    assert!(
        err(json!({"Hostname": "h", "Trust Only Given CA": true}))
            .starts_with("Trust Only Given CA is on but CA Certificate is blank")
    );
    assert!(
        err(json!({"Hostname": "h", "Client Certificate": pem}))
            .starts_with("Client Certificate is set but Client Key is blank")
    );
    let key_pem = ca.signing_key.serialize_pem();
    let p = Properties::from_json(
        &json!({"Hostname": "h", "Client Certificate": pem, "Client Key": key_pem}),
    )
    .unwrap();
    assert!(p.tls.client_identity.is_some());
    assert!(
        !format!("{p:?}").contains(key_pem.lines().nth(1).unwrap()),
        "the key never prints"
    );
    let e = err(
        json!({"Hostname": "h", "Client Certificate": pem, "Client Key": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----"}),
    );
    assert!(
        e.starts_with("Client Key is not a usable") && !e.contains("bm90"),
        "{e}"
    );
}

#[test]
fn pins_take_hex_with_colons() {
    let hex = "AB:".repeat(31) + "AB";
    let p = Properties::from_json(&json!({"Hostname": "h", "Pin SHA-256": hex})).unwrap();
    assert_eq!(p.tls.pin_sha256, Some([0xAB; 32]));
    assert!(
        err(json!({"Hostname": "h", "Pin SHA-256": "abcd"}))
            .starts_with("Pin SHA-256 must be 64 hexadecimal digits")
    );
    assert!(
        err(json!({"Hostname": "h", "Pin SHA-256": "zz".repeat(32)})).starts_with("Pin SHA-256")
    );
    assert!(err(json!({"Hostname": "h", "Pin SHA-256": hex, "Skip Certificate Verification (insecure)": true})).contains("contradict"));
}

#[test]
fn proxies_parse_and_never_show_the_password() {
    let p = Properties::from_json(
        &json!({"Hostname": "h", "Proxy": "http://us%20er:p%40ss@proxy.lan:3128"}),
    )
    .unwrap();
    let ProxySetting::Explicit(proxy) = p.proxy else {
        panic!("explicit proxy")
    };
    assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.lan", 3128));
    let auth = proxy.auth.unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.expose()),
        ("us er", "p@ss")
    );
    let p = Properties::from_json(&json!({"Hostname": "h", "Proxy": "proxy.lan:8080"})).unwrap();
    assert!(matches!(p.proxy, ProxySetting::Explicit(ref c) if c.port == 8080));
    let e = err(json!({"Hostname": "h", "Proxy": "https://u:hunter2@proxy:1"}));
    assert!(e.contains("u:***@proxy:1") && !e.contains("hunter2"), "{e}");
    let p = Properties::from_json(&json!({"Hostname": "h", "Use System Proxy": true})).unwrap();
    assert!(matches!(p.proxy, ProxySetting::System));
}

#[test]
fn tls_files_must_be_small_regular_files() {
    let e = err(json!({"Hostname": "h", "CA Certificate": "/dev/zero"}));
    assert!(e.contains("not a regular file"), "{e}");
    let e = err(json!({"Hostname": "h", "CA Certificate": "/tmp"}));
    assert!(e.contains("not a regular file"), "{e}");
}
