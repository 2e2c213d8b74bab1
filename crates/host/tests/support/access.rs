//! A `wsio` host with users and tokens (`tests/host_access.rs`): the users
//! file made with the real `wsio user` / `wsio token` commands, sign-in
//! through `POST /login`, and requests with a token or a session.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::HostProcess;
use super::host_http::{Response, http};

/// The password every test user gets (long enough for `wsio user add`).
pub const PASSWORD: &str = "correct-horse-battery";

/// Runs `wsio ARGS` to the end, with `stdin` as its standard input.
pub fn wsio(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsio"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `wsio ARGS` that must succeed; its stdout.
pub fn wsio_ok(args: &[&str], stdin: &str) -> String {
    let out = wsio(args, stdin);
    assert!(
        out.status.success(),
        "wsio {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh folder for a test, with `project.toml`.
pub fn test_dir(test: &str, project: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsio-access-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("project.toml"), project).unwrap();
    dir
}

pub fn users_file(dir: &Path) -> String {
    dir.join("users.toml").to_str().unwrap().to_string()
}

pub fn add_user(dir: &Path, name: &str, role: &str, password: &str) {
    let file = users_file(dir);
    wsio_ok(
        &[
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--users",
            &file,
        ],
        &format!("{password}\n"),
    );
}

/// Adds a token; returns it.
pub fn add_token(dir: &Path, name: &str, role: &str) -> String {
    let file = users_file(dir);
    wsio_ok(
        &["token", "add", name, "--role", role, "--users", &file],
        "",
    )
    .trim()
    .to_string()
}

/// `wsio run` on the folder's project (users.toml beside it), on a free
/// loopback port, with `more` arguments.
pub fn run_host(dir: &Path, more: &[&str], log: &str) -> HostProcess {
    let project = dir.join("project.toml");
    let mut args = vec!["run", project.to_str().unwrap(), "--http", "127.0.0.1:0"];
    args.extend_from_slice(more);
    let mut host = HostProcess::spawn(&args, log);
    host.dir = Some(dir.to_path_buf());
    host
}

/// The three roles: a user (signed in, with a session) and a token each.
pub struct Credentials {
    pub tokens: HashMap<&'static str, String>,
    pub sessions: HashMap<&'static str, String>,
}

pub const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

/// A user and a token per role, in the users file (before the host runs).
pub fn add_one_of_each(dir: &Path) -> HashMap<&'static str, String> {
    ROLES
        .iter()
        .map(|role| {
            add_user(dir, &format!("{role}-user"), role, PASSWORD);
            (*role, add_token(dir, &format!("{role}-token"), role))
        })
        .collect()
}

/// Signs in each role's user; the session ids.
pub fn sign_in_each(addr: &str) -> HashMap<&'static str, String> {
    ROLES
        .iter()
        .map(|role| {
            (
                *role,
                session_of(&login(addr, &format!("{role}-user"), PASSWORD)),
            )
        })
        .collect()
}

/// `POST /login` as the form sends it.
pub fn login(addr: &str, user: &str, password: &str) -> Response {
    http(
        addr,
        "POST",
        "/login",
        &format!("user={user}&password={password}"),
        &[],
    )
}

/// The session id a sign-in's `Set-Cookie` hands out.
pub fn session_of(response: &Response) -> String {
    assert_eq!(response.status, 303, "{}\n{}", response.head, response.body);
    let cookie = response.header("Set-Cookie").expect("a Set-Cookie");
    cookie
        .strip_prefix("wsio_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("not a session cookie: {cookie}"))
        .to_string()
}

pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

pub fn cookie(session: &str) -> String {
    format!("Cookie: wsio_session={session}")
}

/// The status line and headers only: for `GET /events`, which stays open.
pub fn head_only(addr: &str, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(super::HOST_TIMEOUT)).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad head: {head}"));
    (status, head)
}
