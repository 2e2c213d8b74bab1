//! The reference host's HTTP API and live feed, read over plain TCP: one
//! request per connection (`http`), and `GET /events` (Server-Sent Events)
//! parsed as it arrives, waited on with deadlines (`EventStream`).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use serde_json::Value;

use super::HOST_TIMEOUT as TIMEOUT;

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(addr: &str, method: &str, path: &str, body: &str, headers: &[&str]) -> Response {
    http_as(addr, addr, method, path, body, headers)
}

/// The same, naming `host` in the Host header.
pub fn http_as(
    addr: &str,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[&str],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("bad response: {response}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status: {head}"));
    let mut response = Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    };
    // A large body (status variables holding long messages) comes chunked.
    if response
        .header("Transfer-Encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        response.body = dechunk(&response.body);
    }
    response
}

/// A whole chunked body, decoded.
fn dechunk(chunked: &str) -> String {
    let mut rest = chunked.as_bytes();
    let mut body = Vec::new();
    loop {
        let line = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("bad chunk: {chunked}"));
        let size = std::str::from_utf8(&rest[..line])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or_else(|| panic!("bad chunk size in: {chunked}"));
        if size == 0 {
            return String::from_utf8(body).unwrap();
        }
        rest = &rest[line + 2..];
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// `GET /events`, read as it comes: chunked transfer decoded, SSE events
/// parsed into (event name, JSON data).
pub struct EventStream {
    stream: TcpStream,
    /// Bytes read and not yet de-chunked.
    pub raw: Vec<u8>,
    /// De-chunked bytes not yet parsed into events.
    pub body: Vec<u8>,
    events: VecDeque<(String, Value)>,
    /// Everything the stream carried, to search and to show on failure.
    pub all: String,
    /// Set once the response head is read: what follows is chunked.
    in_body: bool,
    /// Every event taken out so far.
    received: Vec<(String, Value)>,
}

impl EventStream {
    pub fn open(addr: &str) -> EventStream {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut events = EventStream {
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            events: VecDeque::new(),
            all: String::new(),
            in_body: false,
            received: Vec::new(),
        };
        let deadline = Instant::now() + TIMEOUT;
        let head = loop {
            if let Some(end) = find(&events.raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&events.raw[..end]).into_owned();
                events.raw.drain(..end + 4);
                events.in_body = true;
                events.dechunk();
                break head;
            }
            assert!(events.read(deadline), "the stream closed before its head");
        };
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        events
    }

    /// Reads what arrives before the deadline; false at end of stream.
    pub fn read(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the stream timed out; it carried:\n{}",
            self.all
        );
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut buffer = [0u8; 16 * 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buffer[..n]);
                if self.in_body {
                    self.dechunk();
                }
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "nothing more on the stream within {TIMEOUT:?}; it carried:\n{}",
                    self.all
                )
            }
            Err(e) => panic!("reading the stream: {e}"),
        }
    }

    fn dechunk(&mut self) {
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..line_end]).unwrap();
            let size = usize::from_str_radix(size.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            let chunk = self.raw[start..start + size].to_vec();
            self.all.push_str(&String::from_utf8_lossy(&chunk));
            self.body.extend_from_slice(&chunk);
            self.raw.drain(..start + size + 2);
        }
        while let Some(end) = find(&self.body, b"\n\n") {
            let block = String::from_utf8(self.body[..end].to_vec()).unwrap();
            self.body.drain(..end + 2);
            let (mut event, mut data) = ("message".to_string(), None);
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_string();
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(json).unwrap());
                }
            }
            // Comments (keep-alives) and `retry:` alone carry no data.
            if let Some(data) = data {
                self.events.push_back((event, data));
            }
        }
    }

    /// The next event, waiting for it up to the deadline.
    pub fn next(&mut self, deadline: Instant) -> (String, Value) {
        loop {
            if let Some(event) = self.events.pop_front() {
                self.received.push(event.clone());
                return event;
            }
            assert!(
                self.read(deadline),
                "the stream ended; it carried:\n{}",
                self.all
            );
        }
    }

    /// The first event of kind `event` that satisfies `matches`, among all
    /// those received so far or, failing that, the next ones. (The order
    /// of events of different kinds is not the tests' business: a status
    /// change an action causes may arrive before the action's log entry.)
    pub fn wait_for(&mut self, event: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let found = |(name, data): &(String, Value)| name == event && matches(data);
        if let Some((_, data)) = self.received.iter().find(|e| found(e)) {
            return data.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let next = self.next(deadline);
            if found(&next) {
                return next.1;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn is_log(data: &Value, kind: &str, instance: &str, name: &str) -> bool {
    data["kind"] == kind && data["instance"] == instance && data["name"] == name
}

pub fn is_status(data: &Value, instance: &str, key: &str, value: &str) -> bool {
    data["instance"] == instance && data["key"] == key && data["value"] == value
}
