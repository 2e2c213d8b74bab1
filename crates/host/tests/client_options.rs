//! The connection options (issue 5) end to end through the Rust API, against
//! the fixture servers on 127.0.0.1: TLS trust (CA, pin, insecure, mutual
//! TLS), HTTP CONNECT proxies, handshake credentials and headers, the
//! reconnect policy with Gave Up and Reset Reconnect, the timeouts, Max
//! Message Size, subprotocols, the new status variables, and the property
//! errors. Each test is one short story; none sleeps.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::{
    BlackHoleServer, ClientAuth, ConnectProxy, Credential, EchoServer, RSA_CLIENT_KEY_FILE,
    Recorded, Recorder, RefuseServer, SilentServer, TIMEOUT, assert_unknown_ca, free_port,
    sha256_fingerprint, sha256_fingerprint_colons, test_pki, tls_identity, with,
};
use wsio::Trigger;
use wsio::{Instance, InstanceError, Options};

/// How long a test listens to prove that something does *not* happen (no
/// retry after Gave Up): longer than the 1 s first-retry ceiling the tests
/// configure, so a retry would have shown up.
const QUIET: Duration = Duration::from_millis(1500);

fn instance_with(recorder: &Arc<Recorder>, properties: Value) -> Instance {
    match Instance::from_json(&properties.to_string(), recorder.host(), Options::default()) {
        Ok(instance) => instance,
        Err(e) => panic!("properties refused: {e}"),
    }
}

/// The error `Instance::from_json` gives for `properties` (which must be a
/// property error).
fn property_error(properties: Value) -> String {
    let recorder = Recorder::new();
    match Instance::from_json(&properties.to_string(), recorder.host(), Options::default()) {
        Ok(_) => panic!("accepted bad properties: {properties}"),
        Err(InstanceError::Properties(e)) => e.to_string(),
        Err(other) => panic!("expected a property error, got {other}"),
    }
}

fn ws(port: u16) -> Value {
    json!({"Hostname": "127.0.0.1", "Port": port, "Path": "/echo"})
}

fn wss(host: &str, port: u16) -> Value {
    json!({"Hostname": host, "Port": port, "Path": "/echo", "Protocol": "WSS"})
}

/// Auto-Reconnect with the first retry within 1 s.
fn reconnecting() -> Value {
    json!({"Auto-Reconnect": true, "Reconnect Min Delay": 1, "Reconnect Max Delay": 1})
}

fn established(r: &Recorded) -> bool {
    r.count(Trigger::Established) > 0
}

fn gave_up(r: &Recorded) -> bool {
    r.count(Trigger::GaveUp) > 0
}

/// Everything an instance showed: log lines and every status value pushed.
fn everything_shown(r: &Recorded) -> String {
    let status: Vec<String> = r.status.iter().map(|v| v.value.clone()).collect();
    let triggers = r.all_data();
    format!(
        "{}\n{}\n{}",
        r.log_text(),
        status.join("\n"),
        triggers.join("\n")
    )
}

fn assert_never_shown(r: &Recorded, secrets: &[&str]) {
    let shown = everything_shown(r);
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} leaked:\n{shown}");
    }
}

/// Connects, sends one message and waits for its echo.
fn connect_and_echo(rec: &Arc<Recorder>, instance: &Instance, message: &str) {
    instance.connect(None).unwrap();
    rec.expect("WebSocket Established", established);
    instance.send_message(message).unwrap();
    rec.expect("the echo", |r| {
        r.data_of(Trigger::MessagesReceived)
            .contains(&message.to_owned())
    });
}

/// The first Disconnected reason.
fn disconnect_reason(rec: &Arc<Recorder>) -> String {
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) > 0);
    rec.snapshot().data_of(Trigger::Disconnected).remove(0)
}

fn last_error(rec: &Arc<Recorder>) -> String {
    rec.expect("LastError", |r| {
        r.status_value("LastError").is_some_and(|v| !v.is_empty())
    });
    rec.snapshot().status_value("LastError").unwrap()
}

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("wsio-options-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ------------------------------------------------------------------ TLS trust

#[test]
fn a_ca_given_as_pem_text_or_as_a_file_path_is_trusted() {
    let pki = test_pki();
    let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::None));
    let ca_file = TempFile::new("ca.pem", pki.ca.cert_pem());
    for ca in [pki.ca.cert_pem(), ca_file.path()] {
        let rec = Recorder::new();
        let props = with(
            wss("localhost", server.port()),
            json!({"CA Certificate": ca}),
        );
        let instance = instance_with(&rec, props);
        connect_and_echo(&rec, &instance, "trusted by the given CA");
    }
    assert_eq!(server.snapshot().tls_sessions.len(), 2);
}

#[test]
fn instances_with_the_same_tls_settings_share_one_configuration() {
    // Sharing the rustls configuration is what keeps an idle wss instance
    // small (docs/performance.md). It shows on the wire: the second
    // instance resumes the TLS session the first one's handshake left in
    // their configuration's session cache, while an instance whose settings
    // differ in anything (here: no extra root) has its own configuration,
    // and so no session to resume.
    let pki = test_pki();
    let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::None));
    let props = with(
        wss("localhost", server.port()),
        json!({"CA Certificate": pki.ca.cert_pem()}),
    );
    // An extra root no other test uses: no other test's instance shares
    // this configuration (and its session cache) while this one runs.
    let unique = || Options {
        extra_root_certificates: vec![pki.other_ca.cert_der().clone()],
        ..Options::default()
    };
    let create = |options: Options| {
        let rec = Recorder::new();
        match Instance::from_json(&props.to_string(), rec.host(), options) {
            Ok(instance) => (rec, instance),
            Err(e) => panic!("properties refused: {e}"),
        }
    };
    let (rec, first) = create(unique());
    connect_and_echo(&rec, &first, "first");
    let (rec, second) = create(unique());
    connect_and_echo(&rec, &second, "second, same settings");
    let (rec, other) = create(Options::default());
    connect_and_echo(&rec, &other, "other settings");
    let resumed: Vec<bool> = server
        .snapshot()
        .tls_sessions
        .iter()
        .map(|s| s.resumed)
        .collect();
    assert_eq!(resumed, [false, true, false]);
}

#[test]
fn without_the_ca_the_certificate_is_refused_and_auto_reconnect_gives_up_at_once() {
    let pki = test_pki();
    let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::None));
    let rec = Recorder::new();
    let instance = instance_with(&rec, with(wss("localhost", server.port()), reconnecting()));
    instance.connect(None).unwrap();
    let reason = disconnect_reason(&rec);
    assert_unknown_ca(&reason);
    rec.expect("Gave Up", gave_up);
    assert!(
        last_error(&rec).ends_with("(stage: TLS)"),
        "{}",
        last_error(&rec)
    );
    rec.expect("NextRetry = gave up", |r| {
        r.status_value("NextRetry").as_deref() == Some("gave up")
    });
    assert!(
        !server.wait_for(|o| o.connections() >= 2, QUIET),
        "a certificate failure is fatal: no retry"
    );
    assert_eq!(rec.snapshot().count(Trigger::GaveUp), 1);
}

#[test]
fn trust_only_given_ca_trusts_that_ca_and_nothing_else() {
    let pki = test_pki();
    let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::None));
    let trusting = |ca: &Credential| {
        with(
            wss("localhost", server.port()),
            json!({"CA Certificate": ca.cert_pem, "Trust Only Given CA": true}),
        )
    };
    let rec = Recorder::new();
    let instance = instance_with(&rec, trusting(&pki.ca.credential));
    connect_and_echo(&rec, &instance, "only this CA");
    drop(instance);

    let rec = Recorder::new();
    let instance = instance_with(&rec, trusting(&pki.other_ca.credential));
    instance.connect(None).unwrap();
    let reason = disconnect_reason(&rec);
    assert_unknown_ca(&reason);
    assert_eq!(rec.snapshot().count(Trigger::Established), 0);
}

#[test]
fn a_pinned_self_signed_certificate_is_accepted_without_any_ca() {
    let server = EchoServer::start_tls();
    // Colons and upper case, as openssl prints it; and bare lower-case hex.
    for pin in [
        sha256_fingerprint_colons(tls_identity().cert_der()),
        sha256_fingerprint(tls_identity().cert_der()),
    ] {
        let rec = Recorder::new();
        let props = with(wss("127.0.0.1", server.port()), json!({"Pin SHA-256": pin}));
        let instance = instance_with(&rec, props);
        connect_and_echo(&rec, &instance, "pinned");
    }
}

#[test]
fn a_wrong_pin_is_refused_and_auto_reconnect_gives_up() {
    let server = EchoServer::start_tls();
    let rec = Recorder::new();
    let props = with(
        wss("127.0.0.1", server.port()),
        with(
            reconnecting(),
            json!({"Pin SHA-256": test_pki().server.sha256()}),
        ),
    );
    let instance = instance_with(&rec, props);
    instance.connect(None).unwrap();
    let reason = disconnect_reason(&rec);
    assert!(
        reason.starts_with("TLS handshake with 127.0.0.1 failed"),
        "{reason}"
    );
    rec.expect("Gave Up", gave_up);
    assert!(
        !server.wait_for(|o| o.connections() >= 2, QUIET),
        "no retry"
    );
    assert_eq!(server.snapshot().handshakes.len(), 0, "no HTTP was sent");
}

#[test]
fn skipping_verification_connects_and_warns_on_every_connection() {
    let server = EchoServer::start_tls();
    let rec = Recorder::new();
    let props = with(
        wss("localhost", server.port()),
        json!({"Skip Certificate Verification (insecure)": true}),
    );
    let instance = instance_with(&rec, props);
    connect_and_echo(&rec, &instance, "anyone could read this");
    instance.disconnect().unwrap();
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    instance.connect(None).unwrap();
    rec.expect("established again", |r| r.count(Trigger::Established) == 2);
    let warnings = |r: &Recorded| {
        r.logs
            .iter()
            .filter(|(_, line)| line.contains("certificate verification is OFF"))
            .count()
    };
    rec.expect("a warning per connection", |r| warnings(r) == 2);
}

// ----------------------------------------------------------------- mutual TLS

#[test]
fn mutual_tls_works_with_ecdsa_ed25519_and_rsa_client_keys() {
    let pki = test_pki();
    let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::Required));
    let rsa_key_path = format!("{}/../../{RSA_CLIENT_KEY_FILE}", env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (&pki.client_ecdsa, pki.client_ecdsa.key_pem.clone()),
        (&pki.client_ed25519, pki.client_ed25519.key_pem.clone()),
        // The key as a file path, the certificate as text.
        (&pki.client_rsa, rsa_key_path),
    ];
    for (n, (client, key)) in cases.into_iter().enumerate() {
        let rec = Recorder::new();
        let props = with(
            wss("localhost", server.port()),
            json!({
                "CA Certificate": pki.ca.cert_pem(),
                "Client Certificate": client.cert_pem,
                "Client Key": key,
                "Extended Logging": true,
                "Log Comms": true,
            }),
        );
        let instance = instance_with(&rec, props);
        connect_and_echo(&rec, &instance, "mutual");
        let seen = server.snapshot();
        assert_eq!(
            seen.tls_sessions[n].client_certificate.as_ref(),
            Some(&client.cert_der),
            "case {n}: the server saw our client certificate"
        );
        drop(instance);
        // A line of the key's base64 body never shows.
        let key_line = client.key_pem.lines().nth(1).unwrap();
        assert_never_shown(&rec.snapshot(), &[key_line]);
    }
}

#[test]
fn mutual_tls_without_an_accepted_client_certificate_is_fatal() {
    let pki = test_pki();
    let untrusted = json!({
        "Client Certificate": pki.client_untrusted.cert_pem,
        "Client Key": pki.client_untrusted.key_pem,
    });
    for client in [json!({}), untrusted] {
        let server = EchoServer::start_tls_with(pki.server_config(ClientAuth::Required));
        let rec = Recorder::new();
        let props = with(
            wss("localhost", server.port()),
            with(
                with(reconnecting(), json!({"CA Certificate": pki.ca.cert_pem()})),
                client.clone(),
            ),
        );
        let instance = instance_with(&rec, props);
        instance.connect(None).unwrap();
        rec.expect("Gave Up", gave_up);
        let reason = disconnect_reason(&rec);
        assert!(
            reason.starts_with("TLS handshake with localhost failed"),
            "{client}: {reason}"
        );
        assert!(
            last_error(&rec).ends_with("(stage: TLS)"),
            "{client}: {}",
            last_error(&rec)
        );
        assert!(server.wait_for(|o| o.tls_failures.len() == 1, TIMEOUT));
        assert!(
            !server.wait_for(|o| o.connections() >= 2, QUIET),
            "no retry"
        );
        assert_eq!(rec.snapshot().count(Trigger::Established), 0);
    }
}

// --------------------------------------------------------------------- proxies

#[test]
fn a_proxy_tunnels_ws_and_wss() {
    let proxy = ConnectProxy::start();
    let echo = EchoServer::start();
    let rec = Recorder::new();
    let instance = instance_with(&rec, with(ws(echo.port()), json!({"Proxy": proxy.url()})));
    connect_and_echo(&rec, &instance, "through the proxy");
    drop(instance);
    let seen = proxy.snapshot();
    assert_eq!(
        seen.tunnelled_targets(),
        [format!("127.0.0.1:{}", echo.port())]
    );
    assert_eq!(seen.requests[0].proxy_authorization, None);

    let pki = test_pki();
    let secure = EchoServer::start_tls_with(pki.server_config(ClientAuth::None));
    let rec = Recorder::new();
    let props = with(
        wss("localhost", secure.port()),
        json!({"Proxy": proxy.url(), "CA Certificate": pki.ca.cert_pem()}),
    );
    let instance = instance_with(&rec, props);
    connect_and_echo(&rec, &instance, "TLS inside the tunnel");
    assert_eq!(
        proxy.snapshot().tunnelled_targets()[1],
        format!("localhost:{}", secure.port())
    );
}

#[test]
fn proxy_credentials_reach_the_proxy_and_never_the_log() {
    let proxy = ConnectProxy::requiring("alice", "pr0xy-pa55");
    let echo = EchoServer::start();
    let rec = Recorder::new();
    let props = with(
        ws(echo.port()),
        json!({
            "Proxy": format!("http://alice:pr0xy-pa55@{}", proxy.addr()),
            "Extended Logging": true,
            "Log Comms": true,
        }),
    );
    let instance = instance_with(&rec, props);
    connect_and_echo(&rec, &instance, "authenticated tunnel");
    drop(instance);
    let seen = proxy.snapshot();
    assert_eq!(seen.tunnels, 1);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:pr0xy-pa55")
    );
    assert_eq!(
        seen.requests[0].proxy_authorization.as_deref(),
        Some(expected.as_str())
    );
    assert_eq!(
        echo.snapshot().handshakes[0].header("proxy-authorization"),
        None,
        "proxy credentials stay with the proxy"
    );
    let connecting = format!(
        "connecting to ws://127.0.0.1:{}/echo via proxy http://{} (the Proxy property) (attempt 1)",
        echo.port(),
        proxy.addr()
    );
    assert!(
        rec.snapshot().log_text().contains(&connecting),
        "{connecting:?} not in\n{}",
        rec.snapshot().log_text()
    );
    assert_never_shown(&rec.snapshot(), &["pr0xy-pa55", &expected[6..]]);
}

#[test]
fn a_proxy_answering_407_is_fatal() {
    let proxy = ConnectProxy::requiring("alice", "right");
    let echo = EchoServer::start();
    let rec = Recorder::new();
    let props = with(
        ws(echo.port()),
        with(
            reconnecting(),
            json!({"Proxy": format!("http://alice:wr0ng-pw@{}", proxy.addr())}),
        ),
    );
    let instance = instance_with(&rec, props);
    instance.connect(None).unwrap();
    rec.expect("Gave Up", gave_up);
    let error = last_error(&rec);
    assert!(
        error.contains(
            "the proxy refused the credentials (407 Proxy Authentication Required): check the user \"alice\" and its password in the Proxy property"
        ),
        "{error}"
    );
    assert!(error.ends_with("(stage: Proxy)"), "{error}");
    assert!(
        !proxy.wait_for(|o| o.connections >= 2, QUIET),
        "no retry after 407"
    );
    assert_eq!(echo.snapshot().connections(), 0);
    assert_never_shown(&rec.snapshot(), &["wr0ng-pw"]);
}

/// A `wsio run` process whose output is read line by line (see
/// tests/host_end_to_end.rs for the full harness).
struct HostProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    project: TempFile,
}

impl HostProcess {
    /// Runs `project` with the given environment (and no proxy variables
    /// inherited from ours).
    fn run(name: &str, project: &str, env: &[(&str, &str)]) -> HostProcess {
        let project = TempFile::new(&format!("{name}.toml"), project);
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsio"));
        command
            .args(["run", project.path(), "--http", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for variable in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "no_proxy",
            "all_proxy",
        ] {
            command.env_remove(variable);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().unwrap();
        let (sender, lines) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        HostProcess {
            child,
            lines,
            seen: Vec::new(),
            project,
        }
    }

    fn wait_for_line(&mut self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.seen.iter().any(|line| line.contains(needle)) {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no line with {needle:?} from wsio (project {}); output:\n{}",
                    self.project.path(),
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn use_system_proxy_follows_http_proxy_and_honours_no_proxy() {
    let proxy = ConnectProxy::start();
    let echo = EchoServer::start();
    let project = support::project_instance(
        "viaenv",
        echo.port(),
        "/echo",
        "\"Use System Proxy\" = true\n",
    );
    let proxy_url = proxy.url();
    let mut host = HostProcess::run("system-proxy", &project, &[("HTTP_PROXY", &proxy_url)]);
    host.wait_for_line("viaenv: WebSocket Established fired");
    assert_eq!(
        proxy.snapshot().tunnelled_targets(),
        [format!("127.0.0.1:{}", echo.port())],
        "HTTP_PROXY is used for WS"
    );
    drop(host);

    let mut host = HostProcess::run(
        "no-proxy",
        &project,
        &[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "127.0.0.1")],
    );
    host.wait_for_line("viaenv: WebSocket Established fired");
    assert_eq!(echo.snapshot().connections(), 2);
    assert_eq!(
        proxy.snapshot().connections,
        1,
        "NO_PROXY matched: connected directly"
    );
}

// ----------------------------------------------- credentials and extra headers

#[test]
fn basic_auth_custom_headers_and_origin_reach_the_server_and_never_the_log() {
    let server = EchoServer::start();
    let rec = Recorder::new();
    let props = with(
        ws(server.port()),
        json!({
            "Username": "operator",
            "Password": "pa55-w0rd",
            "Headers": "X-Api-Key: k3y-VALUE-1\n\nX-Site:  n0rth-WING ",
            "Origin": "https://panel.example.com",
            "Extended Logging": true,
            "Log Comms": true,
        }),
    );
    let instance = instance_with(&rec, props);
    connect_and_echo(&rec, &instance, "authenticated");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("operator:pa55-w0rd")
    );
    let handshake = server.snapshot().handshakes[0].clone();
    assert_eq!(handshake.header("authorization"), Some(basic.as_str()));
    assert_eq!(handshake.header("x-api-key"), Some("k3y-VALUE-1"));
    assert_eq!(handshake.header("x-site"), Some("n0rth-WING"));
    assert_eq!(
        handshake.header("origin"),
        Some("https://panel.example.com")
    );
    instance.disconnect().unwrap();
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);

    // A Bearer Token given to Connect takes precedence over Basic.
    instance.connect(Some("b3arer-T0KEN")).unwrap();
    rec.expect("established again", |r| r.count(Trigger::Established) == 2);
    let handshake = server.snapshot().handshakes[1].clone();
    let authorizations: Vec<&str> = handshake
        .headers
        .iter()
        .filter(|(name, _)| name == "authorization")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(authorizations, ["Bearer b3arer-T0KEN"]);
    assert_eq!(handshake.header("x-api-key"), Some("k3y-VALUE-1"));
    drop(instance);
    assert_never_shown(
        &rec.snapshot(),
        &[
            "pa55-w0rd",
            &basic[6..],
            "k3y-VALUE-1",
            "n0rth-WING",
            "b3arer-T0KEN",
        ],
    );
}

#[test]
fn a_401_gives_up_at_once_with_the_stage_in_last_error() {
    let server = RefuseServer::new(401);
    let rec = Recorder::new();
    let instance = instance_with(&rec, with(ws(server.port()), reconnecting()));
    instance.connect(None).unwrap();
    rec.expect("Gave Up", gave_up);
    let r = rec.snapshot();
    assert_eq!(
        r.data_of(Trigger::Disconnected),
        ["HTTP upgrade refused: 401 Unauthorized"]
    );
    assert!(
        r.data_of(Trigger::GaveUp)[0].contains("HTTP upgrade refused: 401 Unauthorized"),
        "{:?}",
        r.data_of(Trigger::GaveUp)
    );
    assert_eq!(
        last_error(&rec),
        "HTTP upgrade refused: 401 Unauthorized (stage: HTTP upgrade)"
    );
    rec.expect("NextRetry = gave up", |r| {
        r.status_value("NextRetry").as_deref() == Some("gave up")
    });
    assert!(
        !server.wait_for(|o| o.connections() >= 2, QUIET),
        "no retry"
    );
    // Status values are pushed on change: the snapshot shows the unchanged 0.
    let reconnects = instance
        .status()
        .into_iter()
        .find(|v| v.key == "Reconnects");
    assert_eq!(reconnects.unwrap().value, "0");
}

#[test]
fn without_auto_reconnect_a_fatal_refusal_does_not_fire_gave_up() {
    let server = RefuseServer::new(401);
    let rec = Recorder::new();
    let instance = instance_with(&rec, ws(server.port()));
    instance.connect(None).unwrap();
    let reason = disconnect_reason(&rec);
    assert_eq!(reason, "HTTP upgrade refused: 401 Unauthorized");
    assert!(
        !rec.wait_for(gave_up, Duration::from_millis(500)),
        "Gave Up is about Auto-Reconnect"
    );
    assert_eq!(server.snapshot().connections(), 1);
}

#[test]
fn a_403_or_404_is_fatal_too_but_a_500_is_retried() {
    for status in [403, 404] {
        let server = RefuseServer::new(status);
        let rec = Recorder::new();
        let instance = instance_with(&rec, with(ws(server.port()), reconnecting()));
        instance.connect(None).unwrap();
        rec.expect("Gave Up", gave_up);
        assert!(
            !server.wait_for(|o| o.connections() >= 2, QUIET),
            "{status}: no retry"
        );
    }
    let server = RefuseServer::new(500);
    let rec = Recorder::new();
    let instance = instance_with(&rec, with(ws(server.port()), reconnecting()));
    instance.connect(None).unwrap();
    assert!(
        server.wait_for(|o| o.connections() >= 2, TIMEOUT),
        "a 500 may pass: retried"
    );
    assert_eq!(rec.snapshot().count(Trigger::GaveUp), 0);
}

// ------------------------------------------------------------ reconnect policy

#[test]
fn reconnect_max_attempts_gives_up_and_reset_reconnect_connects_again() {
    let port = free_port();
    let rec = Recorder::new();
    let props = with(
        ws(port),
        with(reconnecting(), json!({"Reconnect Max Attempts": 3})),
    );
    let instance = instance_with(&rec, props);
    instance.connect(Some("t0ken-for-reset")).unwrap();
    rec.expect("Gave Up", gave_up);
    // Three failed attempts: the first connect and two automatic retries.
    let r = rec.snapshot();
    assert_eq!(r.status_value("Reconnects").as_deref(), Some("2"));
    assert_eq!(r.status_value("NextRetry").as_deref(), Some("gave up"));
    let error = last_error(&rec);
    assert!(error.ends_with("(stage: TCP)"), "{error}");
    assert!(
        !rec.wait_for(
            |r| r.status_value("Reconnects").as_deref() != Some("2"),
            QUIET
        ),
        "no attempt after Gave Up"
    );
    assert_eq!(rec.snapshot().count(Trigger::GaveUp), 1);

    let server = EchoServer::start_on(port);
    instance
        .action("Reset Reconnect", &json!({}), &[] as &[&str])
        .unwrap();
    rec.expect("established after Reset Reconnect", established);
    assert_eq!(
        server.snapshot().handshakes[0].header("authorization"),
        Some("Bearer t0ken-for-reset"),
        "the last Connect's token"
    );
    rec.expect("NextRetry cleared", |r| {
        r.status_value("NextRetry").as_deref() == Some("")
    });
}

#[test]
fn status_shows_reconnects_next_retry_and_last_close_across_restarts() {
    let server = EchoServer::start();
    let rec = Recorder::new();
    let instance = instance_with(&rec, with(ws(server.port()), reconnecting()));
    let initial = |key: &str| {
        instance
            .status()
            .into_iter()
            .find(|v| v.key == key)
            .unwrap_or_else(|| panic!("no status variable {key}"))
            .value
    };
    assert_eq!(initial("Reconnects"), "0");
    assert_eq!(initial("NextRetry"), "");
    assert_eq!(initial("LastClose"), "");
    assert_eq!(initial("Subprotocol"), "");
    instance.connect(None).unwrap();
    rec.expect("established", established);

    // The server closes: a retry is scheduled at a time shown in RFC 3339.
    server.close_all(4001, "restarting");
    rec.expect("LastClose by the server", |r| {
        r.status_value("LastClose").as_deref() == Some("4001 restarting (closed by server)")
    });
    rec.expect("reconnected", |r| r.count(Trigger::Established) == 2);
    let r = rec.snapshot();
    let next = r
        .status
        .iter()
        .find(|v| v.key == "NextRetry" && !v.value.is_empty())
        .expect("a NextRetry was shown");
    chrono::DateTime::parse_from_rfc3339(&next.value).expect(&next.value);
    rec.expect("one reconnect counted, NextRetry cleared", |r| {
        r.status_value("Reconnects").as_deref() == Some("1")
            && r.status_value("NextRetry").as_deref() == Some("")
    });

    // The connection is lost without a close frame.
    server.abort_all();
    rec.expect("LastClose without a close frame", |r| {
        r.status_value("LastClose").as_deref()
            == Some("1006 (connection lost without a close frame)")
    });
    rec.expect("reconnected again", |r| r.count(Trigger::Established) == 3);
    rec.expect("two reconnects", |r| {
        r.status_value("Reconnects").as_deref() == Some("2")
    });

    instance.disconnect().unwrap();
    rec.expect("LastClose by the client", |r| {
        r.status_value("LastClose").as_deref() == Some("1000 (closed by client)")
    });
    assert_eq!(
        rec.snapshot().status_value("NextRetry").as_deref(),
        Some("")
    );
    assert!(server.wait_for(|o| o.closes.iter().any(|c| c.code == 1000), TIMEOUT));
}

// -------------------------------------------------------------------- timeouts

#[test]
fn connect_timeout_fails_the_attempt_naming_its_stage() {
    let server = BlackHoleServer::start();
    let rec = Recorder::new();
    let instance = instance_with(&rec, with(ws(server.port()), json!({"Connect Timeout": 1})));
    let started = Instant::now();
    instance.connect(None).unwrap();
    let reason = disconnect_reason(&rec);
    assert!(reason.contains("timed out after 1 s"), "{reason}");
    assert!(started.elapsed() >= Duration::from_millis(900), "{reason}");
    let error = last_error(&rec);
    assert!(error.ends_with("(stage: Connect timeout)"), "{error}");
}

#[test]
fn idle_timeout_closes_a_connection_that_stays_silent() {
    let server = SilentServer::start();
    let rec = Recorder::new();
    let props = with(
        ws(server.port()),
        json!({"Send keep alive?": false, "Idle Timeout": 1}),
    );
    let instance = instance_with(&rec, props);
    instance.connect(None).unwrap();
    rec.expect("established", established);
    let reason = disconnect_reason(&rec);
    assert!(reason.contains("Idle Timeout"), "{reason}");
    let error = last_error(&rec);
    assert!(error.ends_with("(stage: Idle timeout)"), "{error}");
    assert_eq!(server.snapshot().pings, 0, "keep-alive is off");
}

#[test]
fn keep_alive_interval_pings_and_shows_the_round_trip_time() {
    let server = EchoServer::start();
    let rec = Recorder::new();
    let instance = instance_with(
        &rec,
        with(ws(server.port()), json!({"Keep Alive Interval": 1})),
    );
    instance.connect(None).unwrap();
    rec.expect("established", established);
    rec.expect("PingRtt in milliseconds", |r| {
        r.status_value("PingRtt")
            .is_some_and(|v| v.parse::<u64>().is_ok())
    });
    assert!(server.snapshot().pings >= 1);
    assert!(instance.is_established());
}

// ---------------------------------------------------------- messages and protocol

#[test]
fn a_message_over_max_message_size_closes_with_1009_and_auto_reconnect_reconnects() {
    let server = EchoServer::start();
    let rec = Recorder::new();
    let props = with(
        ws(server.port()),
        with(reconnecting(), json!({"Max Message Size": 1024})),
    );
    let instance = instance_with(&rec, props);
    instance.connect(None).unwrap();
    rec.expect("established", established);
    instance.send_message("x".repeat(2000)).unwrap();
    assert!(
        server.wait_for(|o| o.closes.iter().any(|c| c.code == 1009), TIMEOUT),
        "the server saw close 1009: {:?}",
        server.snapshot().closes
    );
    let reason = disconnect_reason(&rec);
    assert!(reason.contains("Max Message Size"), "{reason}");
    assert_eq!(rec.snapshot().count(Trigger::MessagesReceived), 0);
    rec.expect("reconnected", |r| r.count(Trigger::Established) == 2);
    // A message within the limit still flows.
    instance.send_message("x".repeat(1000)).unwrap();
    rec.expect("the small echo", |r| {
        r.count(Trigger::MessagesReceived) == 1
    });
}

#[test]
fn subprotocols_are_offered_in_order_and_the_servers_choice_is_shown() {
    let server = EchoServer::start_with_subprotocols(&["v1.foo"]);
    let rec = Recorder::new();
    let props = with(ws(server.port()), json!({"Subprotocols": "v2.bar, v1.foo"}));
    let instance = instance_with(&rec, props.clone());
    connect_and_echo(&rec, &instance, "negotiated");
    rec.expect("Subprotocol = v1.foo", |r| {
        r.status_value("Subprotocol").as_deref() == Some("v1.foo")
    });
    let offered = server.snapshot().handshakes[0]
        .header("sec-websocket-protocol")
        .unwrap()
        .to_string();
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    assert_eq!(offered, ["v2.bar", "v1.foo"]);
    drop(instance);

    // A server that picks none of the offered ones is refused.
    let server = EchoServer::start();
    let props = with(props, json!({"Port": server.port()}));
    let rec = Recorder::new();
    let instance = instance_with(&rec, props);
    instance.connect(None).unwrap();
    let error = last_error(&rec);
    assert!(
        error.ends_with("(stage: HTTP upgrade)") || error.ends_with("(stage: WebSocket)"),
        "{error}"
    );
    rec.expect("Disconnected", |r| r.count(Trigger::Disconnected) == 1);
    assert_eq!(rec.snapshot().count(Trigger::Established), 0);
}

// ------------------------------------------------------------- property errors

#[test]
fn bad_option_values_are_refused_naming_the_property() {
    let base = ws(8765);
    let cases = [
        (
            json!({"Headers": "X-Fine: 1\nsecret-line-without-colon"}),
            "Headers line 2:",
        ),
        (
            json!({"Pin SHA-256": "ab:cd"}),
            "Pin SHA-256 must be 64 hexadecimal digits",
        ),
        (
            json!({"Reconnect Min Delay": 5, "Reconnect Max Delay": 2}),
            "Reconnect Min Delay (5 s) must not exceed Reconnect Max Delay (2 s)",
        ),
        (
            json!({"Trust Only Given CA": true}),
            "Trust Only Given CA is on but CA Certificate is blank",
        ),
        (
            json!({"Client Certificate": test_pki().client_ecdsa.cert_pem}),
            "Client Certificate is set but Client Key is blank",
        ),
        (
            json!({"Proxy": "http://u:pr0xy-secret@h:99999"}),
            "Proxy \"http://u:***@h",
        ),
        (json!({"Max Message Size": 100}), "Max Message Size"),
        (json!({"Subprotocols": "v1 foo"}), "Subprotocols"),
        (
            json!({
                "Client Certificate": test_pki().client_ecdsa.cert_pem,
                "Client Key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n",
            }),
            "Client Key",
        ),
    ];
    for (bad, expected) in cases {
        let error = property_error(with(base.clone(), bad.clone()));
        assert!(error.contains(expected), "{bad}: {error}");
        for secret in [
            "secret-line-without-colon",
            "pr0xy-secret",
            "c2VjcmV0LWtleS1ieXRlcw",
        ] {
            assert!(!error.contains(secret), "{bad}: {error}");
        }
    }
}
