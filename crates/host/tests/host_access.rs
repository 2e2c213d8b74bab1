//! Access control of the real `wsio` binary (issue 18), over HTTP on
//! 127.0.0.1: every route of the role table against every role, with
//! tokens and with sessions; the session cookie; sign-in throttling;
//! removal of users and tokens taking effect at once; the start-up
//! refusals; HTTPS with a self-signed certificate; and no secret in any
//! response or log line.

mod support;

use std::sync::Arc;

use futures_rustls::rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;
use support::access::{
    PASSWORD, ROLES, add_one_of_each, add_token, add_user, bearer, cookie, head_only, login,
    run_host, session_of, sign_in_each, test_dir, users_file, wsio, wsio_ok,
};
use support::host_http::{Response, http};
use support::{EchoServer, project_instance};
use wsio_host::http::{Need, ROUTES, Route};
use wsio_host::users::Role;

fn echo_project(server: &EchoServer) -> String {
    project_instance("ws", server.port(), "/echo", "\"Auto-Reconnect\" = false\n")
}

/// A concrete path for a route's pattern.
fn path_of(route: &Route) -> String {
    route
        .pattern
        .replace("{instance}", "ws")
        .replace("{action}", "Disconnect")
        .replace("{trigger}", "Messages%20Received")
        .replace("{file}", "page.css")
        .replace("{id}", "1")
}

/// Every route but signing in and out (which the session tests cover, and
/// which would count as failed sign-ins here).
fn checked_routes() -> impl Iterator<Item = &'static Route> {
    ROUTES
        .iter()
        .filter(|r| !matches!(r.pattern, "/login" | "/logout") || r.method == "GET")
}

/// One request; bodies are invalid JSON, so a request the gate lets
/// through is refused by the endpoint (400) and changes nothing.
fn request(addr: &str, route: &Route, headers: &[&str]) -> (u16, String) {
    if route.pattern == "/events" {
        return head_only(addr, route.method, "/events", headers);
    }
    let body = if route.method == "GET" {
        ""
    } else {
        "not json"
    };
    let response = http(addr, route.method, &path_of(route), body, headers);
    (response.status, response.body)
}

fn check_matrix(addr: &str, credentials: &[(&str, String)]) {
    for route in checked_routes() {
        let what = format!("{} {}", route.method, route.pattern);
        let (status, body) = request(addr, route, &[]);
        match route.need {
            Need::Public => assert!(status < 400, "{what} without credentials: {status} {body}"),
            Need::Role(_) => assert_eq!(status, 401, "{what} without credentials: {body}"),
        }
        for (role, header) in credentials {
            let role: Role = role.parse().unwrap();
            let (status, body) = request(addr, route, &[header]);
            match route.need {
                Need::Role(needed) if role < needed => {
                    assert_eq!(status, 403, "{what} as {role}: {body}");
                    assert!(
                        body.contains(&format!("needs the {needed} role")),
                        "{what} as {role}: {body}"
                    );
                }
                _ => assert!(
                    status != 401 && status != 403,
                    "{what} as {role}: {status} {body}"
                ),
            }
        }
    }
}

#[test]
fn every_route_answers_each_role_by_the_table_with_tokens_and_with_sessions() {
    let server = EchoServer::start();
    let dir = test_dir("matrix", &echo_project(&server));
    let tokens = add_one_of_each(&dir);
    let host = run_host(&dir, &[], "info");
    let with_tokens: Vec<(&str, String)> = ROLES.iter().map(|r| (*r, bearer(&tokens[r]))).collect();
    check_matrix(&host.addr, &with_tokens);
    let sessions = sign_in_each(&host.addr);
    let with_sessions: Vec<(&str, String)> =
        ROLES.iter().map(|r| (*r, cookie(&sessions[r]))).collect();
    check_matrix(&host.addr, &with_sessions);
}

#[test]
fn with_no_users_this_machine_may_do_everything_and_the_page_says_so() {
    let server = EchoServer::start();
    let dir = test_dir("no-users", &echo_project(&server));
    let host = run_host(&dir, &[], "info");
    for route in checked_routes() {
        let (status, body) = request(&host.addr, route, &[]);
        assert!(
            status != 401 && status != 403,
            "{} {}: {status} {body}",
            route.method,
            route.pattern
        );
    }
    let page = http(&host.addr, "GET", "/", "", &[]);
    assert!(
        page.body.contains(r#"<body data-role="admin">"#),
        "{}",
        page.body
    );
    assert!(page.body.contains("no users: this machine only"));
    let session = http(&host.addr, "GET", "/session", "", &[]).json();
    assert_eq!(session["users"], false);
}

#[test]
fn a_session_cookie_is_http_only_strict_and_ends_on_logout() {
    let server = EchoServer::start();
    let dir = test_dir("cookie", &echo_project(&server));
    add_user(&dir, "alice", "operator", PASSWORD);
    let host = run_host(&dir, &[], "info");

    let page = http(&host.addr, "GET", "/", "", &[]);
    assert_eq!(page.status, 401);
    assert!(
        page.body.contains("url=/login"),
        "the page sends a browser to sign in"
    );

    let signed_in = login(&host.addr, "alice", PASSWORD);
    assert_eq!(signed_in.header("Location"), Some("/"));
    let set_cookie = signed_in.header("Set-Cookie").unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "no TLS here: {set_cookie}");
    let session = session_of(&signed_in);
    assert!(session.len() >= 64, "256 random bits");

    let me = http(&host.addr, "GET", "/session", "", &[&cookie(&session)]).json();
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("alice"), Some("operator"))
    );
    let page = http(&host.addr, "GET", "/", "", &[&cookie(&session)]);
    assert!(page.body.contains(r#"<body data-role="operator">"#));
    assert!(page.body.contains("Sign out"));

    let out = http(&host.addr, "POST", "/logout", "", &[&cookie(&session)]);
    assert_eq!((out.status, out.header("Location")), (303, Some("/login")));
    let after = http(&host.addr, "GET", "/io_modules", "", &[&cookie(&session)]);
    assert_eq!(after.status, 401, "{}", after.body);
}

#[test]
fn five_failed_sign_ins_within_a_minute_get_429_even_with_the_right_password() {
    let server = EchoServer::start();
    let dir = test_dir("throttle", &echo_project(&server));
    add_user(&dir, "alice", "viewer", PASSWORD);
    let mut host = run_host(&dir, &[], "info");
    for n in 1..=5 {
        let wrong = login(&host.addr, "alice", &format!("wrong-guess-{n}"));
        assert_eq!(wrong.status, 401, "try {n}");
        assert!(wrong.body.contains("Wrong user name or password"));
    }
    let right = login(&host.addr, "alice", PASSWORD);
    assert_eq!(right.status, 429, "{}", right.body);
    assert!(right.header("Set-Cookie").is_none());
    assert!(right.header("Retry-After").is_some());
    host.wait_for_line(r#"sign-in failed for user "alice" from 127.0.0.1"#);
    host.wait_for_line("refusing sign-ins from it for a minute");
    host.terminate();
    assert!(
        !host.seen.iter().any(|l| l.contains("wrong-guess")),
        "a password was logged"
    );
}

#[test]
fn removing_a_token_or_a_user_or_changing_a_password_takes_effect_at_once() {
    let server = EchoServer::start();
    let dir = test_dir("removal", &echo_project(&server));
    let token = add_token(&dir, "ci", "viewer");
    add_user(&dir, "alice", "viewer", PASSWORD);
    add_user(&dir, "bob", "viewer", PASSWORD);
    let host = run_host(&dir, &[], "info");
    let file = users_file(&dir);
    let get = |header: &str| http(&host.addr, "GET", "/io_modules", "", &[header]).status;

    assert_eq!(get(&bearer(&token)), 200);
    wsio_ok(&["token", "remove", "ci", "--users", &file], "");
    assert_eq!(get(&bearer(&token)), 401);

    let alice = session_of(&login(&host.addr, "alice", PASSWORD));
    assert_eq!(get(&cookie(&alice)), 200);
    wsio_ok(&["user", "remove", "alice", "--users", &file], "");
    assert_eq!(get(&cookie(&alice)), 401);

    let bob = session_of(&login(&host.addr, "bob", PASSWORD));
    assert_eq!(get(&cookie(&bob)), 200);
    add_user(&dir, "bob", "viewer", "another-password");
    assert_eq!(get(&cookie(&bob)), 401, "a new password ends the session");
}

#[test]
fn removing_a_token_ends_its_open_event_stream_at_the_next_event() {
    use std::io::{Read, Write};
    let server = EchoServer::start();
    let dir = test_dir("stream", &echo_project(&server));
    let viewer = add_token(&dir, "watcher", "viewer");
    let admin = add_token(&dir, "admin", "admin");
    let host = run_host(&dir, &[], "info");
    let mut stream = std::net::TcpStream::connect(&host.addr).unwrap();
    stream
        .set_read_timeout(Some(support::HOST_TIMEOUT))
        .unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {}\r\n{}\r\n\r\n",
        host.addr,
        bearer(&viewer)
    )
    .unwrap();
    let mut first = [0u8; 15];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");

    wsio_ok(
        &["token", "remove", "watcher", "--users", &users_file(&dir)],
        "",
    );
    // Any event makes the stream write, and so look at the token again.
    let ran = http(
        &host.addr,
        "POST",
        "/io_modules/ws/actions/Disconnect",
        "",
        &[&bearer(&admin)],
    );
    assert_eq!(ran.status, 200, "{}", ran.body);
    // Read until the last chunk; a stream that went on would time out.
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    while !rest.ends_with(b"0\r\n\r\n") {
        let n = stream
            .read(&mut buf)
            .expect("the stream ends rather than going on");
        assert!(
            n > 0,
            "closed without the last chunk: {}",
            String::from_utf8_lossy(&rest)
        );
        rest.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_network_address_without_users_and_a_public_users_file_are_refused_at_start() {
    let server = EchoServer::start();
    let dir = test_dir("refusals", &echo_project(&server));
    let project = dir.join("project.toml");
    let project = project.to_str().unwrap();
    let out = wsio(&["run", project, "--http", "0.0.0.0:0"], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "serving on 0.0.0.0:0 would make this controller reachable from the network; \
             add a user first: wsio user add admin --role admin"
        ),
        "{stderr}"
    );

    add_user(&dir, "alice", "admin", PASSWORD);
    let file = users_file(&dir);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = wsio(&["run", project, "--http", "127.0.0.1:0"], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("chmod 600 {file}")), "{stderr}");

    // With users, a network address is served, with a warning when it is
    // not HTTPS. (It listens on every interface for a moment; the test
    // sends nothing anywhere.)
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut host = support::HostProcess::spawn(&["run", project, "--http", "0.0.0.0:0"], "info");
    host.wait_for_lines(&[
        "without TLS: passwords, tokens and session cookies travel in clear; \
         use --tls-cert FILE --tls-key FILE or --tls self-signed",
    ]);
    host.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn https_with_a_self_signed_certificate_that_the_client_trusts_alone() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let server = EchoServer::start();
    let dir = test_dir("tls", &echo_project(&server));
    let token = add_token(&dir, "ci", "viewer");
    add_user(&dir, "alice", "viewer", PASSWORD);
    let mut host = run_host(&dir, &["--tls", "self-signed"], "info");
    let printed = host.wait_for_line("TLS certificate SHA-256 fingerprint: ");
    let cert = CertificateDer::from_pem_file(dir.join("wsio-tls-cert.pem")).unwrap();
    assert!(
        printed.ends_with(&support::sha256_fingerprint_colons(&cert)),
        "{printed}"
    );
    let key = dir.join("wsio-tls-key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let trusting = support::client_config_trusting(&cert);
    let addr = host.addr.clone();
    let get = format!(
        "GET /io_modules HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{}\r\n\r\n",
        bearer(&token)
    );
    let response = https(&addr, &trusting, &get).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"instances\""), "{response}");
    let body = format!("user=alice&password={PASSWORD}");
    let login = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://{addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = https(&addr, &trusting, &login).unwrap();
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    assert!(
        response.contains("; Secure"),
        "the cookie is Secure under TLS: {response}"
    );

    // A client that trusts another certificate gets no answer.
    let other = support::client_config_trusting(support::test_pki().ca.cert_der());
    let refused = https(&addr, &other, &login);
    assert!(refused.is_err(), "{refused:?}");
    host.terminate();
}

#[test]
fn https_with_a_given_certificate_and_key_and_clear_errors_for_bad_files() {
    let server = EchoServer::start();
    let dir = test_dir("tls-files", &echo_project(&server));
    let token = add_token(&dir, "ci", "viewer");
    let pki = support::test_pki();
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, &pki.server.cert_pem).unwrap();
    std::fs::write(&key, &pki.server.key_pem).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let project = dir.join("project.toml");
    let project = project.to_str().unwrap();
    let missing = dir.join("missing.key");
    let missing = missing.to_str().unwrap();
    let out = wsio(
        &[
            "run",
            project,
            "--http",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            missing,
        ],
        "",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read the TLS private key {missing}")),
        "{stderr}"
    );
    let out = wsio(&["run", project, "--tls-cert", cert], "");
    assert!(!out.status.success(), "--tls-cert without --tls-key");

    let host = run_host(&dir, &["--tls-cert", cert, "--tls-key", key], "info");
    let trusting = support::client_config_trusting(pki.ca.cert_der());
    let get = format!(
        "GET /io_modules HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}\r\n\r\n",
        host.addr,
        bearer(&token)
    );
    let response = https(&host.addr, &trusting, &get).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// One request over TLS with this client configuration; the answer, or
/// the TLS error (an untrusted certificate).
fn https(addr: &str, config: &Arc<ClientConfig>, request: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(support::HOST_TIMEOUT))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = StreamOwned::new(connection, tcp);
    tls.write_all(request.as_bytes())?;
    tls.flush()?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[test]
fn no_secret_appears_in_any_response_or_log_line() {
    const INSTANCE_PASSWORD: &str = "inst-pass-s3cret";
    const BEARER: &str = "bearer-s3cret-token";
    const PROXY_PASSWORD: &str = "pr0xy-s3cret";
    let server = EchoServer::start();
    let client = &support::test_pki().client_ecdsa;
    let key_pem = client.key_pem.trim().to_string();
    let project = format!(
        r#"
[[instance]]
name = "ws"
[instance.properties]
Hostname = "127.0.0.1"
Port = {port}
Path = "/echo"
Username = "user"
Password = "{INSTANCE_PASSWORD}"
Proxy = "http://user:{PROXY_PASSWORD}@127.0.0.1:9/"
"Client Certificate" = '''{cert}'''
"Client Key" = '''{key_pem}'''
"Auto-Reconnect" = false

[[startup]]
instance = "ws"
action = "Connect"
properties = {{ "Bearer Token" = "{BEARER}" }}
"#,
        port = server.port(),
        cert = client.cert_pem.trim(),
    );
    let dir = test_dir("secrets", &project);
    let tokens = add_one_of_each(&dir);
    let mut host = run_host(&dir, &[], "debug");
    let sessions = sign_in_each(&host.addr);
    let failed = login(&host.addr, "admin-user", "a-wrong-s3cret-password");
    assert_eq!(failed.status, 401);

    let key_line = key_pem.lines().nth(1).unwrap().to_string();
    let mut secrets = vec![
        PASSWORD.to_string(),
        "a-wrong-s3cret-password".to_string(),
        INSTANCE_PASSWORD.to_string(),
        BEARER.to_string(),
        PROXY_PASSWORD.to_string(),
        key_line,
    ];
    secrets.extend(tokens.values().cloned());
    secrets.extend(sessions.values().cloned());
    let mut answers: Vec<String> = Vec::new();
    for route in checked_routes() {
        for header in [bearer(&tokens["admin"]), cookie(&sessions["admin"])] {
            let (status, body) = request(&host.addr, route, &[&header]);
            answers.push(format!(
                "{} {} -> {status}\n{body}",
                route.method, route.pattern
            ));
        }
    }
    let out: Response = http(
        &host.addr,
        "POST",
        "/logout",
        "",
        &[&cookie(&sessions["viewer"])],
    );
    answers.push(format!("{}\n{}", out.head, out.body));
    host.terminate();
    for secret in &secrets {
        for answer in &answers {
            assert!(
                !answer.contains(secret.as_str()),
                "a secret in an answer:\n{answer}"
            );
        }
        for line in &host.seen {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the log: {line}"
            );
        }
    }
}
