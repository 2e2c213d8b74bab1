//! Soak: many instances against a local echo server that keeps failing, for
//! minutes, proving that nothing is lost, nothing leaks and nothing spins.
//!
//! ```sh
//! cargo run --release --example soak -- --instances 100 --minutes 10
//! ```
//!
//! Every instance connects (with a bearer token that must never show up in a
//! log line) to its own path on an in-process echo server and sends numbered
//! messages, at most `--window` unanswered at a time, at most `--rate` a
//! second. Meanwhile a fault thread, every 1–5 s, does one of: restart the
//! server (every connection cut at once, the port refused for 0.5–3 s),
//! reset a few connections (TCP RST: SO_LINGER 0), or close a few with
//! 1000, 1001, 1011 or 4000. Auto-Reconnect brings every instance back.
//!
//! Each instance's host checks, as the triggers arrive, that every echo is
//! the oldest message still unanswered on that connection: an echo that
//! skips one is a *lost* message, one that is not expected a duplicate or a
//! foreign one. Messages still unanswered when a fault cuts the connection
//! are *in flight at a fault* (WebSocket has no acknowledgements: the
//! module handed them to the socket, the network or the server lost them),
//! counted but not lost. It also checks that Disconnected fires once per
//! Connected. At the end the faults stop, every instance must come back and
//! get every further message echoed; the summary then prints counters, peak
//! RSS and file descriptors, and the exit code is 0 only if nothing was
//! lost, duplicated, reordered or leaked.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use clap::Parser;
use futures_util::StreamExt;
use serde_json::json;
use smol::channel::Sender;
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Task, future};
use wsio::LogLevel;
use wsio::StatusVariable;
use wsio::Trigger;
use wsio::{Host, Instance, Options};

/// The bearer token every instance connects with; it must appear in no log
/// line, status value or trigger.
const TOKEN: &str = "TOKEN-s3cr3t-123";

#[derive(Parser, Debug)]
#[command(
    about = "Soak the WebSocket Client module: N instances, random server and network faults, M minutes"
)]
struct Args {
    /// Instances, each on its own connection.
    #[arg(long, default_value_t = 100)]
    instances: usize,
    /// Minutes of faults (the final recovery check comes on top, at most ~1.5 min).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Messages per second per instance, at most.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Messages per instance that may wait for their echo.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Seed of the fault schedule (default: random; printed).
    #[arg(long)]
    seed: Option<u64>,
}

fn main() {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    println!(
        "soak: {} instances, {} min of faults, {} msg/s per instance (window {}), seed {seed}",
        args.instances, args.minutes, args.rate, args.window
    );
    let server = EchoServer::start();
    // The baseline: the module's driver thread and the I/O reactor are
    // process-wide and stay, so start them before counting descriptors.
    let fds_before = baseline_fds(server.port());
    let mut soak = Soak::start(&args, server.port());
    let memory = Sampler::start(Duration::from_secs(1));

    let fault_end = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let faults = Faults::run(&server, seed, fault_end, &soak);
    let rss_after_faults = rss_kib();

    // Recovery: no more faults; every instance must come back and get every
    // further message echoed.
    let recovered = soak.wait_all_up(Duration::from_secs(60));
    let drained = soak.drain(Duration::from_secs(30));
    soak.stop_sending();
    let report = soak.report();
    let server_stats = server.stats();
    let secret_leaks = soak.secret_leaks();
    drop(soak);
    // Every instance is gone: the server sees its connections end.
    wait_until(Duration::from_secs(10), || open_fds() <= fds_before);
    let fds_after = open_fds();
    drop(server);
    let (rss, fds) = memory.stop();

    let lost = report.lost + report.unanswered_at_end;
    let clean = report.duplicates + report.foreign + report.pairing_errors + secret_leaks;
    let fd_leak = fds_after > fds_before + 4;
    let rss_growth = rss_after_faults.saturating_sub(rss.warm);
    let ok = lost == 0
        && clean == 0
        && recovered
        && drained
        && !fd_leak
        && report.not_established == 0
        && rss_growth < 64 * 1024;
    println!("---- soak summary (seed {seed})");
    println!(
        "faults injected: {} server restarts, {} connection resets, {} server closes ({})",
        faults.restarts,
        faults.resets,
        faults.closes.values().sum::<u64>(),
        faults
            .closes
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "connections: {} Connected, {} WebSocket Established, {} Disconnected, {} automatic reconnect attempts; server accepted {}",
        report.connected,
        report.established,
        report.disconnected,
        report.reconnects,
        server_stats.accepted
    );
    println!(
        "messages: {} sent, {} echoed back in order, {} in flight when a fault cut their connection, {} refused while not established; server received {}",
        report.sent, report.echoed, report.cut, report.refused, server_stats.received
    );
    println!(
        "lost: {lost}, duplicated: {}, foreign: {}, Disconnected without its Connected: {}, secrets in logs: {secret_leaks}, not established at the end: {}",
        report.duplicates, report.foreign, report.pairing_errors, report.not_established
    );
    println!(
        "recovery: every instance re-established: {recovered}, every final message echoed: {drained}"
    );
    println!(
        "memory: RSS {} MiB after warm-up, {} MiB at the end of the faults (growth {} MiB), peak {} MiB",
        mib(rss.warm),
        mib(rss_after_faults),
        mib(rss_growth),
        mib(rss.peak)
    );
    println!(
        "file descriptors: {fds_before} before the instances, peak {}, {fds_after} after they were dropped",
        fds.peak
    );
    println!("cpu: {:.1} s user+system", cpu_seconds());
    println!("result: {}", if ok { "PASS" } else { "FAIL" });
    std::process::exit(if ok { 0 } else { 1 });
}

/// Open descriptors once the driver and the reactor run: one instance made,
/// connected and dropped.
fn baseline_fds(port: u16) -> usize {
    let checker = Arc::new(Checker::default());
    let properties = json!({"Hostname": "127.0.0.1", "Port": port, "Path": "/warm-up"});
    let instance =
        Instance::from_json(&properties.to_string(), checker.clone(), Options::default())
            .expect("warm-up properties are valid");
    instance.connect(None).expect("Connect is accepted");
    wait_until(Duration::from_secs(10), || checker.lock().up);
    drop(instance);
    let settled = open_fds();
    wait_until(Duration::from_secs(5), || open_fds() < settled);
    open_fds()
}

fn mib(kib: u64) -> u64 {
    kib / 1024
}

// ------------------------------------------------------------ the instances

/// What one instance's host has seen, checked as it arrives.
#[derive(Default)]
struct Track {
    /// WebSocket Established and not yet Disconnected: messages may be sent.
    up: bool,
    /// Connected and not yet Disconnected.
    connected_open: bool,
    next_seq: u64,
    /// Sent on the current connection and not echoed yet, oldest first.
    pending: VecDeque<u64>,
    /// When the next message may go (rate).
    next_send: Option<Instant>,
    counts: Counts,
    secret_leaks: u64,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    connected: u64,
    established: u64,
    disconnected: u64,
    reconnects: u64,
    sent: u64,
    echoed: u64,
    cut: u64,
    refused: u64,
    lost: u64,
    duplicates: u64,
    foreign: u64,
    pairing_errors: u64,
    unanswered_at_end: u64,
    not_established: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.connected += o.connected;
        self.established += o.established;
        self.disconnected += o.disconnected;
        self.reconnects += o.reconnects;
        self.sent += o.sent;
        self.echoed += o.echoed;
        self.cut += o.cut;
        self.refused += o.refused;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.foreign += o.foreign;
        self.pairing_errors += o.pairing_errors;
        self.unanswered_at_end += o.unanswered_at_end;
        self.not_established += o.not_established;
    }
}

/// The host of one instance: a checker, not a recorder (a 10-minute soak
/// must not keep every message).
#[derive(Default)]
struct Checker {
    track: Mutex<Track>,
}

impl Checker {
    fn lock(&self) -> MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Host for Checker {
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], _binary: bool) {
        let mut t = self.lock();
        if data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()) {
            t.secret_leaks += 1;
        }
        match trigger {
            Trigger::Connected => {
                if t.connected_open {
                    t.counts.pairing_errors += 1;
                }
                t.connected_open = true;
                t.counts.connected += 1;
            }
            Trigger::Established => {
                t.counts.established += 1;
                t.up = true;
            }
            Trigger::Disconnected => {
                if !t.connected_open {
                    t.counts.pairing_errors += 1;
                }
                t.connected_open = false;
                t.up = false;
                t.counts.disconnected += 1;
                t.counts.cut += t.pending.len() as u64;
                t.pending.clear();
            }
            Trigger::MessagesReceived => {
                let Some(seq) = std::str::from_utf8(data)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    t.counts.foreign += 1;
                    return;
                };
                match t.pending.iter().position(|&s| s == seq) {
                    Some(skipped) => {
                        // Everything sent on this connection before it and
                        // not echoed is lost: the connection is still up.
                        t.counts.lost += skipped as u64;
                        t.pending.drain(..=skipped);
                        t.counts.echoed += 1;
                    }
                    None if seq < t.next_seq => t.counts.duplicates += 1,
                    None => t.counts.foreign += 1,
                }
            }
            Trigger::GaveUp => {}
        }
    }

    fn status_changed(&self, variable: &StatusVariable) {
        if variable.value.contains(TOKEN) {
            self.lock().secret_leaks += 1;
        }
        if variable.key == "Reconnects" {
            self.lock().counts.reconnects = variable.value.parse().unwrap_or(0);
        }
    }

    fn log(&self, _level: LogLevel, message: &str) {
        if message.contains(TOKEN) {
            self.lock().secret_leaks += 1;
        }
    }
}

struct Soak {
    instances: Arc<Vec<(Instance, Arc<Checker>)>>,
    sending: Arc<AtomicBool>,
    sender: Option<std::thread::JoinHandle<()>>,
}

impl Soak {
    fn start(args: &Args, port: u16) -> Soak {
        let mut instances = Vec::with_capacity(args.instances);
        for i in 0..args.instances {
            let checker = Arc::new(Checker::default());
            // A few instances log everything, to prove the token stays out.
            let verbose = i < 5;
            let properties = json!({
                "Hostname": "127.0.0.1",
                "Port": port,
                "Path": format!("/soak/{i}"),
                "Auto-Reconnect": true,
                "Reconnect Min Delay": 1,
                "Reconnect Max Delay": 5,
                "Keep Alive Interval": 10,
                "Pong Timeout": 5,
                "Connect Timeout": 5,
                "Extended Logging": verbose,
                "Log Comms": verbose,
            });
            let host: Arc<dyn Host> = checker.clone();
            let instance = Instance::from_json(&properties.to_string(), host, Options::default())
                .expect("soak properties are valid");
            instance
                .action("Connect", &json!({"Bearer Token": TOKEN}), &[] as &[&str])
                .expect("Connect is accepted");
            instances.push((instance, checker));
        }
        let instances = Arc::new(instances);
        let sending = Arc::new(AtomicBool::new(true));
        let sender = {
            let (instances, sending) = (instances.clone(), sending.clone());
            let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
            let window = args.window.max(1);
            std::thread::Builder::new()
                .name("soak-sender".into())
                .spawn(move || send_loop(&instances, &sending, interval, window))
                .expect("spawn the sender")
        };
        Soak {
            instances,
            sending,
            sender: Some(sender),
        }
    }

    fn all_up(&self) -> bool {
        self.instances.iter().all(|(_, c)| c.lock().up)
    }

    fn wait_all_up(&self, limit: Duration) -> bool {
        wait_until(limit, || self.all_up())
    }

    /// Waits until every instance has sent a few more messages and has no
    /// echo outstanding.
    fn drain(&self, limit: Duration) -> bool {
        let marks: Vec<u64> = self
            .instances
            .iter()
            .map(|(_, c)| c.lock().next_seq + 3)
            .collect();
        wait_until(limit, || {
            self.instances.iter().zip(&marks).all(|((_, c), mark)| {
                let t = c.lock();
                t.next_seq >= *mark && t.pending.is_empty()
            })
        })
    }

    fn stop_sending(&mut self) {
        self.sending.store(false, Ordering::Relaxed);
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
        // What is still unanswered now was sent on a live connection.
        for (_, c) in self.instances.iter() {
            let mut t = c.lock();
            t.counts.unanswered_at_end = t.pending.len() as u64;
        }
    }

    fn report(&self) -> Counts {
        let mut total = Counts::default();
        for (instance, c) in self.instances.iter() {
            // The runner's own view must agree with the triggers: a runner
            // that died (a panic) would leave it stale.
            if instance.state_name() != "established" || !instance.is_established() {
                total.not_established += 1;
            }
            total.add(&c.lock().counts);
        }
        total
    }

    fn secret_leaks(&self) -> u64 {
        self.instances
            .iter()
            .map(|(_, c)| c.lock().secret_leaks)
            .sum()
    }
}

impl Drop for Soak {
    fn drop(&mut self) {
        self.sending.store(false, Ordering::Relaxed);
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

fn send_loop(
    instances: &[(Instance, Arc<Checker>)],
    sending: &AtomicBool,
    interval: Duration,
    window: usize,
) {
    while sending.load(Ordering::Relaxed) {
        let now = Instant::now();
        for (instance, checker) in instances {
            let mut t = checker.lock();
            if !t.up || t.pending.len() >= window || t.next_send.is_some_and(|at| now < at) {
                continue;
            }
            // Sent under the host's lock: Disconnected (which needs the lock)
            // cannot slip between the check and the send.
            let seq = t.next_seq;
            t.pending.push_back(seq);
            match instance.send_message(seq.to_string()) {
                Ok(()) => {
                    t.next_seq += 1;
                    t.counts.sent += 1;
                    t.next_send = Some(now + interval);
                }
                Err(_) => {
                    t.pending.pop_back();
                    t.counts.refused += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

// ------------------------------------------------------------ the faults

#[derive(Default)]
struct FaultCounts {
    restarts: u64,
    resets: u64,
    closes: std::collections::BTreeMap<u16, u64>,
}

struct Faults;

impl Faults {
    fn run(server: &EchoServer, seed: u64, until: Instant, soak: &Soak) -> FaultCounts {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut counts = FaultCounts::default();
        let started = Instant::now();
        let mut next_report = started + Duration::from_secs(30);
        while Instant::now() < until {
            let pause = Duration::from_millis(rng.u64(1000..=5000));
            std::thread::sleep(pause.min(until.saturating_duration_since(Instant::now())));
            if Instant::now() >= until {
                break;
            }
            match rng.u32(0..100) {
                0..10 => {
                    server.stop_listening_and_cut_all();
                    std::thread::sleep(Duration::from_millis(rng.u64(500..=3000)));
                    server.listen();
                    counts.restarts += 1;
                }
                10..55 => {
                    let n = rng.usize(1..=10);
                    counts.resets += server.command_some(&mut rng, n, || Command::Reset) as u64;
                }
                _ => {
                    let n = rng.usize(1..=10);
                    let code = [1000u16, 1001, 1011, 4000][rng.usize(0..4)];
                    let done = server.command_some(&mut rng, n, || {
                        Command::Close(code, "soak fault".to_owned())
                    });
                    *counts.closes.entry(code).or_default() += done as u64;
                }
            }
            if Instant::now() >= next_report {
                next_report += Duration::from_secs(30);
                let r = soak.report_quiet();
                println!(
                    "[{:>4} s] restarts {}, resets {}, closes {}; Connected {}, sent {}, echoed {}, cut {}, lost {}, RSS {} MiB, fds {}",
                    started.elapsed().as_secs(),
                    counts.restarts,
                    counts.resets,
                    counts.closes.values().sum::<u64>(),
                    r.connected,
                    r.sent,
                    r.echoed,
                    r.cut,
                    r.lost,
                    mib(rss_kib()),
                    open_fds()
                );
            }
        }
        counts
    }
}

impl Soak {
    fn report_quiet(&self) -> Counts {
        let mut total = Counts::default();
        for (_, c) in self.instances.iter() {
            total.add(&c.lock().counts);
        }
        total
    }
}

// ------------------------------------------------------------ the server

enum Command {
    /// Reset the TCP connection (SO_LINGER 0): no close frame, an RST.
    Reset,
    /// Send a close frame with this code and reason.
    Close(u16, String),
}

#[derive(Default)]
struct ServerState {
    connections: Mutex<HashMap<u64, Sender<Command>>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    received: AtomicU64,
}

struct ServerStats {
    accepted: u64,
    received: u64,
}

/// An echo server on a thread of its own that the fault thread can restart
/// on the same port and whose connections it can reset or close.
struct EchoServer {
    port: u16,
    executor: Arc<Executor<'static>>,
    state: Arc<ServerState>,
    listening: Mutex<Option<Task<()>>>,
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let thread = {
            let executor = executor.clone();
            std::thread::Builder::new()
                .name("soak-server".into())
                .spawn(move || {
                    smol::block_on(executor.run(async {
                        let _ = stopped.recv().await;
                    }))
                })
                .expect("spawn the server thread")
        };
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = EchoServer {
            port,
            executor,
            state: Arc::new(ServerState::default()),
            listening: Mutex::new(None),
            stop: Some(stop),
            thread: Some(thread),
        };
        server.listen();
        server
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn listen(&self) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let listener = std::net::TcpListener::bind(addr)
            .and_then(TcpListener::try_from)
            .expect("rebind the soak server's port");
        let (executor, state) = (self.executor.clone(), self.state.clone());
        let task = self.executor.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    smol::Timer::after(Duration::from_millis(10)).await;
                    continue;
                };
                state.accepted.fetch_add(1, Ordering::Relaxed);
                executor.spawn(serve(tcp, state.clone())).detach();
            }
        });
        *self.listening.lock().unwrap() = Some(task);
    }

    /// A crash: the port refuses connections and every connection is reset.
    fn stop_listening_and_cut_all(&self) {
        drop(self.listening.lock().unwrap().take());
        let all: Vec<Sender<Command>> = self
            .state
            .connections
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect();
        for connection in all {
            let _ = connection.try_send(Command::Reset);
        }
    }

    /// Sends `command` to `n` random connections; returns how many got it.
    fn command_some(
        &self,
        rng: &mut fastrand::Rng,
        n: usize,
        command: impl Fn() -> Command,
    ) -> usize {
        let connections = self.state.connections.lock().unwrap();
        let mut ids: Vec<u64> = connections.keys().copied().collect();
        rng.shuffle(&mut ids);
        ids.iter()
            .take(n)
            .filter(|id| connections[*id].try_send(command()).is_ok())
            .count()
    }

    fn stats(&self) -> ServerStats {
        ServerStats {
            accepted: self.state.accepted.load(Ordering::Relaxed),
            received: self.state.received.load(Ordering::Relaxed),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop_listening_and_cut_all();
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(tcp: TcpStream, state: Arc<ServerState>) {
    let raw = tcp.clone();
    let Some(Ok(mut ws)) = within(
        Duration::from_secs(10),
        async_tungstenite::accept_async(tcp),
    )
    .await
    else {
        return;
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let (commands_tx, commands) = smol::channel::bounded(4);
    state.connections.lock().unwrap().insert(id, commands_tx);
    let _registration = Registration(state.clone(), id);
    loop {
        let next = future::or(async { Event::Frame(ws.next().await) }, async {
            Event::Command(commands.recv().await.ok())
        })
        .await;
        match next {
            Event::Frame(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) => {
                state.received.fetch_add(1, Ordering::Relaxed);
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            Event::Frame(Some(Ok(_))) => {}
            Event::Frame(_) => return,
            Event::Command(Some(Command::Reset)) | Event::Command(None) => {
                reset(&raw);
                return;
            }
            Event::Command(Some(Command::Close(code, reason))) => {
                let frame = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                let _ = ws.close(Some(frame)).await;
                // Read the client's reply (and anything still in flight).
                within(Duration::from_secs(3), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                return;
            }
        }
    }
}

enum Event {
    Frame(Option<Result<Message, async_tungstenite::tungstenite::Error>>),
    Command(Option<Command>),
}

struct Registration(Arc<ServerState>, u64);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.connections.lock().unwrap().remove(&self.1);
    }
}

/// Makes the coming close of `tcp` send an RST instead of a FIN.
fn reset(tcp: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor (kept open by `tcp`) and a pointer
    // to a `linger` of the size passed.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(future.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

// ------------------------------------------------------------ the process

/// RSS after warm-up, and the peaks of RSS and open descriptors, sampled.
struct Sampler {
    running: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Rss, Fds)>,
}

#[derive(Default)]
struct Rss {
    warm: u64,
    peak: u64,
}

#[derive(Default)]
struct Fds {
    peak: usize,
}

impl Sampler {
    fn start(every: Duration) -> Sampler {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut rss, mut fds) = (Rss::default(), Fds::default());
            while flag.load(Ordering::Relaxed) {
                let now = rss_kib();
                rss.peak = rss.peak.max(now);
                fds.peak = fds.peak.max(open_fds());
                // Warm-up: every connection made and buffers grown once.
                if rss.warm == 0 && started.elapsed() >= Duration::from_secs(60) {
                    rss.warm = now;
                }
                std::thread::sleep(every);
            }
            if rss.warm == 0 {
                rss.warm = rss.peak;
            }
            (rss, fds)
        });
        Sampler { running, thread }
    }

    fn stop(self) -> (Rss, Fds) {
        self.running.store(false, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// User + system CPU time of the process (utime + stime, clock ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) in parens.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}
