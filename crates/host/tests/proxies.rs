//! The Proxy and Use System Proxy options against real proxies installed
//! from Debian: tinyproxy and squid, each requiring Basic credentials and
//! started by the test on a free 127.0.0.1 port (support/real_proxy.rs),
//! tunnelling to an echo fixture on 127.0.0.1.
//!
//! The stories: the right password tunnels and the log names the proxy,
//! never the password; a wrong one is fatal at once (tinyproxy answers 401,
//! squid 407), Gave Up with advice naming where the credentials came from
//! (the Proxy property, or the environment with Use System Proxy), no retry
//! loop; no credentials at all say so.
//!
//! Without the proxies installed the tests say SKIPPED and pass;
//! `WSIO_PROXIES_REQUIRED=1` (CI) makes that a failure.

mod support;

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use support::{
    EchoServer, HostProcess, ProxyKind, QUIET, RealProxy, Recorded, Recorder, project_instance,
};
use wsio::{Instance, Options, Trigger};

const USER: &str = "alice";
const PASSWORD: &str = "pr0xy-s3cret";
const WRONG: &str = "wr0ng-pa55";

fn instance_with(recorder: &Arc<Recorder>, properties: Value) -> Instance {
    Instance::from_json(&properties.to_string(), recorder.host(), Options::default())
        .unwrap_or_else(|e| panic!("properties refused: {e}"))
}

/// WS to the echo fixture through `proxy_url`, logging every decision, and
/// retrying within 1 s if it were to retry at all.
fn through(echo: &EchoServer, proxy_url: &str) -> Value {
    json!({
        "Hostname": "127.0.0.1",
        "Port": echo.port(),
        "Path": "/echo",
        "Proxy": proxy_url,
        "Extended Logging": true,
        "Log Comms": true,
        "Auto-Reconnect": true,
        "Reconnect Min Delay": 1,
        "Reconnect Max Delay": 1,
    })
}

/// The log line that opens attempt `n` through `proxy`, from the property.
fn connecting_line(echo: &EchoServer, proxy: &RealProxy, n: u32) -> String {
    format!(
        "connecting to ws://127.0.0.1:{}/echo via proxy http://{} (the Proxy property) (attempt {n})",
        echo.port(),
        proxy.addr()
    )
}

fn attempts(r: &Recorded) -> usize {
    r.log_text().matches("connecting to ws://").count()
}

/// Everything the instance showed: log, every status value, trigger data.
fn everything_shown(r: &Recorded) -> String {
    let status: Vec<String> = r.status.iter().map(|v| v.value.clone()).collect();
    format!(
        "{}\n{}\n{}",
        r.log_text(),
        status.join("\n"),
        r.all_data().join("\n")
    )
}

fn assert_never_shown(r: &Recorded, secrets: &[&str]) {
    let shown = everything_shown(r);
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} shown:\n{shown}");
    }
}

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

fn the_right_password_tunnels_and_the_log_names_the_proxy(kind: ProxyKind) {
    let echo = EchoServer::start();
    let Some(proxy) = RealProxy::start(kind, USER, PASSWORD, echo.port()) else {
        return;
    };
    let rec = Recorder::new();
    let instance = instance_with(&rec, through(&echo, &proxy.url_with(USER, PASSWORD)));
    instance.connect(None).unwrap();
    rec.expect(&format!("{}: Established", kind.name()), |r| {
        r.count(Trigger::Established) == 1
    });
    instance.send_message("through a real proxy").unwrap();
    rec.expect("the echo", |r| {
        r.data_of(Trigger::MessagesReceived) == ["through a real proxy"]
    });
    let seen = echo.snapshot();
    assert_eq!(seen.connections(), 1, "{}", kind.name());
    assert_eq!(
        seen.handshakes[0].header("proxy-authorization"),
        None,
        "{}: the proxy's credentials stay with the proxy",
        kind.name()
    );
    let r = rec.snapshot();
    let line = connecting_line(&echo, &proxy, 1);
    assert!(
        r.log_text().contains(&line),
        "{line:?} not in\n{}",
        r.log_text()
    );
    assert_never_shown(&r, &[PASSWORD, &basic(USER, PASSWORD)]);
}

/// A wrong password: Gave Up at once with `advice`, and no second attempt.
fn a_wrong_password_is_fatal(kind: ProxyKind, status: &str) {
    let echo = EchoServer::start();
    let Some(proxy) = RealProxy::start(kind, USER, PASSWORD, echo.port()) else {
        return;
    };
    let rec = Recorder::new();
    let instance = instance_with(&rec, through(&echo, &proxy.url_with(USER, WRONG)));
    instance.connect(None).unwrap();
    rec.expect(&format!("{}: Gave Up", kind.name()), |r| {
        r.count(Trigger::GaveUp) == 1
    });
    let advice = format!(
        "the proxy refused the credentials ({status}): check the user \"{USER}\" and its password in the Proxy property"
    );
    let r = rec.snapshot();
    let last_error = r.status_value("LastError").unwrap_or_default();
    assert!(
        last_error.contains(&advice) && last_error.ends_with("(stage: Proxy)"),
        "{}: {last_error}",
        kind.name()
    );
    let connection_status = r.status_value("ConnectionStatus").unwrap_or_default();
    assert!(
        connection_status.starts_with("Gave up: ") && connection_status.contains(&advice),
        "{}: {connection_status}",
        kind.name()
    );
    assert!(
        r.log_text().contains(&connecting_line(&echo, &proxy, 1)),
        "{}",
        r.log_text()
    );
    // The first retry would come within 1 s: QUIET is longer.
    assert!(
        !rec.wait_for(|r| attempts(r) >= 2, QUIET),
        "{}: retried after refused credentials:\n{}\n{}",
        kind.name(),
        rec.snapshot().log_text(),
        proxy.diagnostics()
    );
    assert_eq!(rec.snapshot().count(Trigger::Established), 0);
    assert_eq!(echo.snapshot().connections(), 0);
    assert_never_shown(&rec.snapshot(), &[WRONG, &basic(USER, WRONG)]);
}

/// No credentials at all: fatal, and the advice says none were given.
fn no_credentials_say_none_were_given(kind: ProxyKind) {
    let echo = EchoServer::start();
    let Some(proxy) = RealProxy::start(kind, USER, PASSWORD, echo.port()) else {
        return;
    };
    let rec = Recorder::new();
    let instance = instance_with(&rec, through(&echo, &format!("http://{}", proxy.addr())));
    instance.connect(None).unwrap();
    rec.expect(&format!("{}: Gave Up", kind.name()), |r| {
        r.count(Trigger::GaveUp) == 1
    });
    let last_error = rec.snapshot().status_value("LastError").unwrap_or_default();
    assert!(
        last_error.starts_with("the proxy requires credentials (")
            && last_error.contains(") and none were given: write them into the Proxy property as http://user:password@host:port"),
        "{}: {last_error}",
        kind.name()
    );
    assert!(
        !rec.wait_for(|r| attempts(r) >= 2, QUIET),
        "{}: retried:\n{}\n{}",
        kind.name(),
        rec.snapshot().log_text(),
        proxy.diagnostics()
    );
}

/// Use System Proxy: the proxy comes from HTTP_PROXY (a `wsio run` child,
/// whose environment the test sets), and so does the advice.
fn the_environment_is_named_when_it_holds_the_credentials(kind: ProxyKind, status: &str) {
    let echo = EchoServer::start();
    let Some(proxy) = RealProxy::start(kind, USER, PASSWORD, echo.port()) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "wsio-proxies-{}-{}",
        kind.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let project = dir.join("project.toml");
    std::fs::write(
        &project,
        project_instance(
            "viaenv",
            echo.port(),
            "/echo",
            "\"Use System Proxy\" = true\n\"Extended Logging\" = true\n\"Auto-Reconnect\" = true\n\"Reconnect Min Delay\" = 1\n\"Reconnect Max Delay\" = 1\n",
        ),
    )
    .unwrap();
    let run = |password: &str| {
        let mut host = HostProcess::spawn_with_env(
            &["run", project.to_str().unwrap(), "--http", "127.0.0.1:0"],
            "info",
            &[
                ("HTTP_PROXY", &proxy.url_with(USER, password)),
                ("NO_PROXY", ""),
            ],
        );
        host.wait_for_line(&format!(
            "connecting to ws://127.0.0.1:{}/echo via proxy http://{} (HTTP_PROXY, Use System Proxy) (attempt 1)",
            echo.port(),
            proxy.addr()
        ));
        host
    };

    let mut host = run(WRONG);
    host.wait_for_line(&format!(
        "the proxy refused the credentials ({status}): check the user \"{USER}\" and its password in the environment variable HTTP_PROXY (Use System Proxy is on)"
    ));
    host.wait_for_line("viaenv: Gave Up fired");
    host.terminate();
    assert!(!host.saw("(attempt 2)"), "{}", host.seen.join("\n"));
    assert!(!host.saw(WRONG), "{}", host.seen.join("\n"));
    drop(host);

    let mut host = run(PASSWORD);
    host.wait_for_line("viaenv: WebSocket Established fired");
    host.terminate();
    assert!(!host.saw(PASSWORD), "{}", host.seen.join("\n"));
    assert_eq!(echo.snapshot().connections(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

// tinyproxy answers a wrong password with 401, not 407.
const TINYPROXY_REFUSAL: &str = "401 Unauthorized";
const SQUID_REFUSAL: &str = "407 Proxy Authentication Required";

#[test]
fn tinyproxy_tunnels_with_the_right_password_and_the_log_names_it() {
    the_right_password_tunnels_and_the_log_names_the_proxy(ProxyKind::Tinyproxy);
}

#[test]
fn squid_tunnels_with_the_right_password_and_the_log_names_it() {
    the_right_password_tunnels_and_the_log_names_the_proxy(ProxyKind::Squid);
}

#[test]
fn tinyproxy_401_for_a_wrong_password_is_fatal() {
    a_wrong_password_is_fatal(ProxyKind::Tinyproxy, TINYPROXY_REFUSAL);
}

#[test]
fn squid_407_for_a_wrong_password_is_fatal() {
    a_wrong_password_is_fatal(ProxyKind::Squid, SQUID_REFUSAL);
}

#[test]
fn tinyproxy_without_credentials_says_none_were_given() {
    no_credentials_say_none_were_given(ProxyKind::Tinyproxy);
}

#[test]
fn squid_without_credentials_says_none_were_given() {
    no_credentials_say_none_were_given(ProxyKind::Squid);
}

#[test]
fn tinyproxy_credentials_from_the_environment_are_named_in_the_advice() {
    the_environment_is_named_when_it_holds_the_credentials(ProxyKind::Tinyproxy, TINYPROXY_REFUSAL);
}

#[test]
fn squid_credentials_from_the_environment_are_named_in_the_advice() {
    the_environment_is_named_when_it_holds_the_credentials(ProxyKind::Squid, SQUID_REFUSAL);
}
