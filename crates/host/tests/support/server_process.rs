//! The demo server as a real separate process (`wsio demo-server`), so a
//! test can kill it with SIGKILL mid-stream, as a crash or an OOM kill
//! would, and start it again on the same port.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use super::TIMEOUT;
use super::netns::NetNs;

/// The demo server's channel path with an API key and `notify_self`, so a
/// lone client gets its own messages back (an echo).
pub fn demo_path(api_key: &str) -> String {
    format!("/v3/1?api_key={api_key}&notify_self=1")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running `wsio demo-server`; killed (SIGKILL) and reaped on drop.
pub struct ServerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `wsio demo-server --listen addr` and waits until it listens;
    /// with port 0, `addr` is then the port it chose.
    pub fn start(addr: SocketAddr) -> ServerProcess {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_wsio")), addr)
    }

    /// The same, inside the network namespace `netns`.
    pub fn start_in(netns: &NetNs, addr: SocketAddr) -> ServerProcess {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns.name()])
            .arg(env!("CARGO_BIN_EXE_wsio"));
        Self::spawn(command, addr)
    }

    fn spawn(mut command: Command, addr: SocketAddr) -> ServerProcess {
        let mut child = command
            .args(["demo-server", "--listen", &addr.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsio demo-server");
        // It prints its URL once it listens; an error goes to stderr.
        let (lines, ready) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let out = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(format!("stderr: {line}"));
            }
        });
        let mut server = ServerProcess {
            child: Some(child),
            addr,
        };
        loop {
            match ready.recv_timeout(TIMEOUT) {
                // "demo server: ws://127.0.0.1:PORT/v3/1?..."
                Ok(line) if line.starts_with("demo server:") => {
                    if addr.port() == 0 {
                        server.addr.set_port(listening_port(&line));
                    }
                    return server;
                }
                Ok(line) if line.starts_with("stderr: error") => {
                    server.kill();
                    panic!("wsio demo-server on {addr} failed: {line}");
                }
                Ok(_) => {}
                Err(_) => {
                    server.kill();
                    panic!("wsio demo-server on {addr} did not start within {TIMEOUT:?}");
                }
            }
        }
    }

    /// SIGKILL: no close frame, no FIN handshake from the application; the
    /// kernel closes the sockets (an RST where data was unread).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The port of the URL the demo server prints once it listens.
fn listening_port(line: &str) -> u16 {
    line.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|host_port| host_port.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in the demo server's URL: {line}"))
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
