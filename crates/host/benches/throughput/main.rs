//! `cargo bench --bench throughput [-- --quick] [--rows 1,2,3] [--runs N]`
//!
//! wsio through its C ABI, side by side with the library it is built on
//! (bare async-tungstenite on smol), a plain TCP socket, and — when
//! `benches/peers/setup.sh` has installed them — the Node `ws` and Python
//! `websockets` clients, all against the same loopback servers in one run.
//! Prints one Markdown table of medians (of `--runs` runs) with the ratios
//! the targets are stated in, and saves it to
//! `target/bench/throughput.md`. No row asserts a time: the table is the
//! result. Every wait is bounded; the server process ends with the bench.
//!
//! Rows: 1 receive throughput, 2 send throughput, 3 echo latency through a
//! wire, 4 idle cost of many instances, 5 connect storm, 6 reconnect
//! overhead, 7 match cost. See docs/performance.md.

mod module;
mod raw;
mod server;
mod wsio_rows;

use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::Ports;

const USAGE: &str = "\
usage: cargo bench --bench throughput -- [--quick] [--rows 1,2,...] [--runs N]
                                          [--peers | --no-peers] [--idle-secs S]
  --quick       a smoke run (< 2 min): 1/10 of the messages, 200 instances, 5 s idle, 1 run
  --rows LIST   only these rows (1 receive, 2 send, 3 echo, 4 idle, 5 storm, 6 reconnect, 7 match)
  --runs N      repeat every measurement N times and report medians (default 3; --quick: 1)
  --peers       require the Node/Python peer clients (install: bash benches/peers/setup.sh)
  --no-peers    skip them even when installed
  --idle-secs S how long row 4 measures CPU (default 60; --quick: 5)
  --instances N instances for rows 4 and 5 (default 1000; --quick: 200)
  --filter TEXT only the lines of rows 1-3 whose name contains TEXT (e.g. \"32 B ws\";
                a final $ anchors it at the end: \"32 B ws$\" leaves out wss)
  --only wsio|raw  only that client in rows 1-3 (for profiling); --n N messages per line
  --no-variants skip the variant lines of rows 1-2 (host thread, iom_instance_action)";

#[derive(Debug, Clone)]
struct Config {
    rows: Vec<u32>,
    runs: usize,
    peers: Option<bool>,
    small_n: usize,
    large_n: usize,
    echo_n: usize,
    instances: usize,
    idle_secs: u64,
    reconnect_k: usize,
    match_n: usize,
    quick: bool,
    /// Only lines whose name contains this (profiling one workload).
    filter: Option<String>,
    /// Only this client: "wsio" or "raw" (profiling).
    only: Option<String>,
    /// Skip the variant lines of rows 1-2 (profiling the main line).
    no_variants: bool,
}

impl Config {
    fn wants(&self, name: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| match f.strip_suffix('$') {
                Some(end) => name.ends_with(end),
                None => name.contains(f.as_str()),
            })
    }
    fn runs_client(&self, client: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o == client)
    }
}

fn parse_args(args: &[String]) -> Config {
    let quick = args.iter().any(|a| a == "--quick");
    let mut config = Config {
        rows: (1..=7).collect(),
        runs: if quick { 1 } else { 3 },
        peers: None,
        small_n: if quick { 100_000 } else { 1_000_000 },
        large_n: if quick { 2_000 } else { 20_000 },
        echo_n: if quick { 2_000 } else { 20_000 },
        instances: if quick { 200 } else { 1000 },
        idle_secs: if quick { 5 } else { 60 },
        reconnect_k: if quick { 4 } else { 10 },
        match_n: if quick { 100_000 } else { 1_000_000 },
        quick,
        filter: None,
        only: None,
        no_variants: false,
    };
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<String>, what: &str| -> String {
        it.next()
            .unwrap_or_else(|| fail(&format!("{what} needs a value")))
            .clone()
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" | "--bench" => {}
            "--rows" => {
                config.rows = value(&mut it, "--rows")
                    .split(',')
                    .map(|r| {
                        r.trim()
                            .parse()
                            .ok()
                            .filter(|r| (1..=7).contains(r))
                            .unwrap_or_else(|| fail(&format!("--rows: {r:?} is not a row 1-7")))
                    })
                    .collect()
            }
            "--runs" => {
                config.runs = value(&mut it, "--runs")
                    .parse()
                    .ok()
                    .filter(|n| (1..=20).contains(n))
                    .unwrap_or_else(|| fail("--runs takes 1 to 20"))
            }
            "--idle-secs" => {
                config.idle_secs = value(&mut it, "--idle-secs")
                    .parse()
                    .ok()
                    .filter(|n| (1..=600).contains(n))
                    .unwrap_or_else(|| fail("--idle-secs takes 1 to 600"))
            }
            "--instances" => {
                config.instances = value(&mut it, "--instances")
                    .parse()
                    .ok()
                    .filter(|n| (1..=5000).contains(n))
                    .unwrap_or_else(|| fail("--instances takes 1 to 5000"))
            }
            "--filter" => config.filter = Some(value(&mut it, "--filter")),
            "--only" => config.only = Some(value(&mut it, "--only")),
            "--no-variants" => config.no_variants = true,
            "--n" => {
                let n: usize = value(&mut it, "--n")
                    .parse()
                    .unwrap_or_else(|_| fail("--n takes a count"));
                config.small_n = n;
                config.large_n = n;
                config.echo_n = n;
            }
            "--peers" => config.peers = Some(true),
            "--no-peers" => config.peers = Some(false),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    config
}

fn fail(message: &str) -> ! {
    eprintln!("throughput: {message}\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--serve") => server::serve(),
        Some("--child") => children::run(&args[1..]),
        _ => {}
    }
    let config = parse_args(&args);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let peers = peers::find(&root, config.peers);
    let started = Instant::now();
    let (server, ports) = start_server();
    eprintln!(
        "throughput: module {}, server ws {} wss {} tcp {}, peers: {}, runs {}{}",
        module::module_path().display(),
        ports.ws,
        ports.wss,
        ports.tcp,
        peers.as_ref().map_or(
            "none (install: bash benches/peers/setup.sh; --no-peers skips)".to_owned(),
            |p| p.describe()
        ),
        config.runs,
        if config.quick { " (quick)" } else { "" }
    );
    let mut table = table::Table::default();
    for run in 0..config.runs {
        eprintln!("throughput: run {} of {}", run + 1, config.runs);
        measure(&config, &ports, peers.as_ref(), run, &mut table);
    }
    let text = table.render(&config, started.elapsed());
    println!("{text}");
    let out = root.join("../../target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("throughput.md"), &text);
    stop_server(server);
}

fn start_server() -> (Child, Ports) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the bench server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the server prints its ports");
    let ports: Ports = serde_json::from_str(&line).expect("ports JSON");
    (child, ports)
}

fn stop_server(mut server: Child) {
    drop(server.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// Runs a child process (this binary, a peer client) and returns the last
/// line it printed as JSON; killed after `limit`.
fn run_json(mut command: Command, limit: Duration) -> Result<Value, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut last = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !line.trim().is_empty() {
                last = line;
            }
        }
        last
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{command:?} did not finish within {limit:?}; killed"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let last = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{command:?} failed ({status})"));
    }
    serde_json::from_str(&last).map_err(|e| format!("{command:?} printed {last:?}: {e}"))
}

fn child(ports: &Ports, args: &[String], limit: Duration) -> Result<Value, String> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .arg("--child")
        .args(args)
        .env("WSIO_BENCH_PORTS", serde_json::to_string(ports).unwrap());
    run_json(command, limit)
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// One run of every selected row, each measured for every client in turn.
fn measure(
    config: &Config,
    ports: &Ports,
    peers: Option<&peers::Peers>,
    run: usize,
    table: &mut table::Table,
) {
    use table::{Col, Kind, Target};
    let tls_config = raw::tls_config(ports);
    let tls_of = |tls: bool| tls.then_some(&tls_config);
    let scheme = |tls: bool| if tls { "wss" } else { "ws" };
    let sizes = [
        (config.small_n, 32usize, "32 B"),
        (config.large_n, 64 * 1024, "64 KiB"),
    ];
    if config.rows.contains(&1) {
        for (n, size, label) in sizes {
            for tls in [false, true] {
                let name = format!("1 receive {label} {}", scheme(tls));
                if !config.wants(&name) {
                    continue;
                }
                let line = table.line(&name, Kind::Rate { size }, Target::RatioAtLeast(0.8));
                if config.runs_client("wsio") {
                    let r = wsio_rows::receive(ports, tls, n, size, true);
                    line.push(Col::Wsio, rate(n, r.elapsed));
                    line.note_value(
                        "status_changed callbacks per message (message status is pushed at most every 20 ms while messages flow)",
                        r.status_pushes as f64 / n as f64,
                    );
                }
                let raw_rate = config
                    .runs_client("raw")
                    .then(|| rate(n, raw::receive(ports, tls_of(tls), n, size)));
                if let Some(r) = raw_rate {
                    line.push(Col::Raw, r);
                }
                if !tls && config.only.is_none() {
                    line.push(Col::Tcp, rate(n, raw::tcp_receive(ports, n, size)));
                }
                // (With --only, for large messages too: for profiling.)
                if config.runs_client("wsio")
                    && !config.no_variants
                    && (size < 1024 || config.only.is_some())
                {
                    // The same, with the test on a host thread the callback
                    // queues to: the cost of that design on 2 cores.
                    let name = format!(
                        "1 receive {label} {} (tested on a host thread)",
                        scheme(tls)
                    );
                    let line = table.line(&name, Kind::Rate { size }, Target::None);
                    let r = wsio_rows::receive(ports, tls, n, size, false);
                    line.push(Col::Wsio, rate(n, r.elapsed));
                    if let Some(r) = raw_rate {
                        line.push(Col::Raw, r);
                    }
                }
                // `wsio run` as a user runs it: a child process with a
                // project file, its host testing wires where triggers arrive.
                for (what, wire, target) in [
                    ("no wire", None, 0.5),
                    (
                        "a Contains wire matching nothing",
                        Some("no such text"),
                        0.4,
                    ),
                ] {
                    let name = format!("1 receive {label} {} (wsio run, {what})", scheme(tls));
                    if tls || size >= 1024 || !config.wants(&name) || !config.runs_client("wsio") {
                        continue;
                    }
                    let line = table.line(&name, Kind::Rate { size }, Target::RatioAtLeast(target));
                    line.push(
                        Col::Wsio,
                        rate(n, wsio_rows::wsio_run_receive(ports, n, size, wire)),
                    );
                    if let Some(r) = raw_rate {
                        line.push(Col::Raw, r);
                    }
                }
                let line = table.line(&name, Kind::Rate { size }, Target::RatioAtLeast(0.8));
                if let Some(p) = peers.filter(|_| config.only.is_none()) {
                    p.rate(line, ports, "recv", tls, n, size);
                }
            }
        }
    }
    if config.rows.contains(&2) {
        for (n, size, label) in sizes {
            for tls in [false, true] {
                let name = format!("2 send {label} {}", scheme(tls));
                if !config.wants(&name) {
                    continue;
                }
                let line = table.line(&name, Kind::Rate { size }, Target::RatioAtLeast(0.8));
                if config.runs_client("wsio") {
                    let s = wsio_rows::send(ports, tls, n, size, true);
                    line.push(Col::Wsio, rate(n, s.elapsed));
                    line.note_value(
                        &format!("Send Message calls answered REJECTED (backlog of 10,000 messages or 16 MiB full; retried after 100 µs), of {n}"),
                        s.rejected as f64,
                    );
                }
                let raw_rate = config
                    .runs_client("raw")
                    .then(|| rate(n, raw::send(ports, tls_of(tls), n, size)));
                if let Some(r) = raw_rate {
                    line.push(Col::Raw, r);
                }
                if config.runs_client("wsio") && !config.no_variants {
                    // The same through iom_instance_action: JSON per call.
                    let name = format!("2 send {label} {} (iom_instance_action)", scheme(tls));
                    let line = table.line(&name, Kind::Rate { size }, Target::None);
                    let s = wsio_rows::send(ports, tls, n, size, false);
                    line.push(Col::Wsio, rate(n, s.elapsed));
                    if let Some(r) = raw_rate {
                        line.push(Col::Raw, r);
                    }
                }
                let line = table.line(&name, Kind::Rate { size }, Target::RatioAtLeast(0.8));
                if !tls && config.only.is_none() {
                    line.push(Col::Tcp, rate(n, raw::tcp_send(ports, n, size)));
                }
                if let Some(p) = peers.filter(|_| config.only.is_none()) {
                    p.rate(line, ports, "send", tls, n, size);
                }
            }
        }
    }
    if config.rows.contains(&3) {
        let n = config.echo_n;
        for tls in [false, true] {
            if !config.wants(&format!("3 echo round trip p50 {}", scheme(tls))) {
                continue;
            }
            let wsio = wsio_rows::echo(ports, tls, n, 32, true);
            let queued = wsio_rows::echo(ports, tls, n, 32, false);
            let raw = raw::echo(ports, tls_of(tls), n, 32);
            let tcp = (!tls).then(|| raw::tcp_echo(ports, n, 32));
            let peer = peers.map(|p| p.echo(ports, tls, n, 32));
            for (i, what) in ["p50", "p99", "max"].into_iter().enumerate() {
                let target = if i < 2 {
                    Target::RatioAtMost(1.5)
                } else {
                    Target::None
                };
                let name = format!("3 echo round trip {what} {}", scheme(tls));
                let line = table.line(&name, Kind::Micros, target);
                line.push(Col::Wsio, wsio[i] as f64 / 1000.0);
                line.push(Col::Raw, raw[i] as f64 / 1000.0);
                if let Some(t) = tcp {
                    line.push(Col::Tcp, t[i] as f64 / 1000.0);
                }
                if let Some((node, python)) = &peer {
                    if let Some(v) = node {
                        line.push(Col::Node, v[i] as f64 / 1000.0);
                    }
                    if let Some(v) = python {
                        line.push(Col::Python, v[i] as f64 / 1000.0);
                    }
                }
            }
            for (i, what) in ["p50", "p99"].into_iter().enumerate() {
                let name = format!(
                    "3 echo round trip {what} {} (wire on a host thread)",
                    scheme(tls)
                );
                let line = table.line(&name, Kind::Micros, Target::None);
                line.push(Col::Wsio, queued[i] as f64 / 1000.0);
                line.push(Col::Raw, raw[i] as f64 / 1000.0);
            }
        }
    }
    if config.rows.contains(&4) {
        let n = config.instances;
        for tls in [false, true] {
            let limit = Duration::from_secs(config.idle_secs + 180);
            let args = |who: &str| {
                vec![
                    "idle".to_owned(),
                    who.to_owned(),
                    scheme(tls).to_owned(),
                    n.to_string(),
                    config.idle_secs.to_string(),
                ]
            };
            let wsio = child(ports, &args("wsio"), limit);
            let raw = child(ports, &args("raw"), limit);
            let raw4k = child(ports, &args("raw4k"), limit);
            let budget = if tls { 32.0 } else { 16.0 };
            let get = |v: &Result<Value, String>, key: &str| -> Option<f64> {
                match v {
                    Ok(v) => v[key].as_f64(),
                    Err(e) => {
                        eprintln!("throughput: idle: {e}");
                        None
                    }
                }
            };
            let name = format!("4 idle RSS per instance {}", scheme(tls));
            let line = table.line(&name, Kind::Kib, Target::AtMost(budget));
            if let Some(v) = get(&wsio, "rss_kib_per_instance") {
                line.push(Col::Wsio, v);
            }
            if let Some(v) = get(&raw, "rss_kib_per_instance") {
                line.push(Col::Raw, v);
            }
            if let Some(v) = get(&raw4k, "rss_kib_per_instance") {
                line.note_value(
                    "raw async-tungstenite with a 4 KiB read buffer, KiB per connection",
                    v,
                );
            }
            let name = format!("4 idle threads added by {n} instances {}", scheme(tls));
            let line = table.line(&name, Kind::Count, Target::AtMost(0.0));
            if let Some(v) = get(&wsio, "threads_added") {
                line.push(Col::Wsio, v);
            }
            if let Some(v) = get(&raw, "threads_added") {
                line.push(Col::Raw, v);
            }
            let name = format!(
                "4 idle CPU of {n} instances over {} s, keep-alive on {}",
                config.idle_secs,
                scheme(tls)
            );
            let line = table.line(&name, Kind::Percent, Target::AtMost(1.0));
            if let Some(v) = get(&wsio, "cpu_percent") {
                line.push(Col::Wsio, v);
            }
            if let Some(v) = get(&wsio, "pings") {
                line.note_value(
                    "status pushes in the window (a Ping RTT per answered keep-alive ping)",
                    v,
                );
            }
        }
    }
    if config.rows.contains(&5) {
        let n = config.instances;
        for tls in [false, true] {
            let name = format!(
                "5 connect storm: {n} at once until all established {}",
                scheme(tls)
            );
            let line = table.line(&name, Kind::Millis, Target::RatioAtMost(1.5));
            let limit = Duration::from_secs(180);
            let args = |who: &str| {
                vec![
                    "storm".to_owned(),
                    who.to_owned(),
                    scheme(tls).to_owned(),
                    n.to_string(),
                ]
            };
            match child(ports, &args("wsio"), limit) {
                Ok(v) => line.push(Col::Wsio, v["ms"].as_f64().unwrap_or(f64::NAN)),
                Err(e) => eprintln!("throughput: storm: {e}"),
            }
            match child(ports, &args("raw"), limit) {
                Ok(v) => line.push(Col::Raw, v["ms"].as_f64().unwrap_or(f64::NAN)),
                Err(e) => eprintln!("throughput: storm: {e}"),
            }
        }
    }
    if config.rows.contains(&6) {
        for tls in [false, true] {
            let tag = format!("{}-{run}-{}", std::process::id(), scheme(tls));
            let mut overheads = wsio_rows::reconnect(ports, tls, config.reconnect_k, &tag);
            let p50 = median(&mut overheads.clone());
            let max = overheads.iter().cloned().fold(f64::MIN, f64::max);
            overheads.sort_by(|a, b| a.total_cmp(b));
            let name = format!(
                "6 reconnect: Established after the scheduled retry, p50 {}",
                scheme(tls)
            );
            table
                .line(&name, Kind::Millis, Target::AtMost(10.0))
                .push(Col::Wsio, p50);
            let name = format!(
                "6 reconnect: Established after the scheduled retry, max {}",
                scheme(tls)
            );
            let line = table.line(&name, Kind::Millis, Target::AtMost(10.0));
            line.push(Col::Wsio, max);
            line.note_value(
                "instances, each dropped by the server 50 ms after its first connect (NextRetry has ms resolution: ±1 ms)",
                config.reconnect_k as f64,
            );
            // The physical part: a bare client's connect + handshake.
            let start = Instant::now();
            smol::block_on(async {
                let mut ws = raw::connect(ports, tls_of(tls), "/idle", None).await;
                let _ = futures_util::SinkExt::close(&mut ws).await;
            });
            let connect_ms = start.elapsed().as_secs_f64() * 1000.0;
            let name = format!(
                "6 reconnect: a bare client's connect + handshake {}",
                scheme(tls)
            );
            table
                .line(&name, Kind::Millis, Target::None)
                .push(Col::Raw, connect_ms);
        }
    }
    if config.rows.contains(&7) {
        let messages = match_messages();
        for kind in ["Contains", "Regex", "JSON"] {
            let name = format!("7 match {kind} (test + variables on a match)");
            let line = table.line(&name, Kind::Nanos, Target::None);
            line.push(
                Col::Wsio,
                wsio_rows::match_cost(kind, &messages, config.match_n),
            );
            line.push(Col::Raw, raw_match_cost(kind, &messages, config.match_n));
        }
    }
}

/// 1,000 JSON messages, half of them from the kitchen.
fn match_messages() -> Vec<Vec<u8>> {
    let rooms = ["kitchen", "hall", "kitchen", "office"];
    (0..1000)
        .map(|i| {
            format!(
                r#"{{"type":"temperature","room":"{}","value":{}.5,"seq":{i}}}"#,
                rooms[i % rooms.len()],
                18 + i % 7
            )
            .into_bytes()
        })
        .collect()
}

/// The libraries the module matches with, called directly: the floor.
fn raw_match_cost(kind: &str, messages: &[Vec<u8>], n: usize) -> f64 {
    let finder = memchr::memmem::Finder::new("kitchen");
    let regex = regex::bytes::Regex::new(r#""room":"(k\w+)","value":([0-9.]+)"#).unwrap();
    let mut matched = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let m = std::hint::black_box(&messages[i % messages.len()]);
        let hit = match kind {
            "Contains" => finder.find(m).is_some(),
            "Regex" => regex.captures(m).is_some_and(|c| c.len() == 3),
            _ => serde_json::from_slice::<Value>(m)
                .ok()
                .is_some_and(|v| v.pointer("/room") == Some(&json!("kitchen"))),
        };
        matched += hit as usize;
    }
    let elapsed = start.elapsed();
    std::hint::black_box(matched);
    elapsed.as_nanos() as f64 / n as f64
}

/// Rows that run in a process of their own: their RSS, threads and CPU are
/// read from /proc/self and getrusage, so nothing else may live there.
mod children {
    use super::*;
    use crate::module::Host;

    pub fn run(args: &[String]) -> ! {
        server::raise_nofile();
        let ports: Ports =
            serde_json::from_str(&std::env::var("WSIO_BENCH_PORTS").expect("WSIO_BENCH_PORTS"))
                .expect("ports JSON");
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        let tls = arg(2) == "wss";
        let n: usize = arg(3).parse().expect("instances");
        let result = match (arg(0).as_str(), arg(1).as_str()) {
            ("idle", "wsio") => idle_wsio(&ports, tls, n, arg(4).parse().expect("seconds")),
            ("idle", who) => idle_raw(&ports, tls, n, who == "raw4k"),
            ("storm", "wsio") => storm_wsio(&ports, tls, n),
            ("storm", _) => storm_raw(&ports, tls, n),
            other => panic!("unknown child {other:?}"),
        };
        println!("{result}");
        std::io::stdout().flush().ok();
        // Exit without closing 1,000 connections one by one.
        std::process::exit(0);
    }

    fn rss_kib() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn threads() -> f64 {
        std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count()) as f64
    }

    /// User + system CPU time of the process, in seconds.
    fn cpu_secs() -> f64 {
        // SAFETY: getrusage fills a local struct.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    }

    fn idle_wsio(ports: &Ports, tls: bool, n: usize, secs: u64) -> Value {
        let host = Host::new();
        // The module loaded, its driver thread running, one instance warm:
        // the baseline every further instance is measured above.
        let warm = wsio_rows::create_many(&host, ports, tls, 1);
        warm[0].connect();
        wait(&host, 1);
        std::thread::sleep(Duration::from_millis(500));
        let (rss0, threads0) = (rss_kib(), threads());
        let instances = wsio_rows::create_many(&host, ports, tls, n);
        // WSIO_BENCH_NO_CONNECT: the cost of created, unconnected instances.
        let connect = std::env::var_os("WSIO_BENCH_NO_CONNECT").is_none();
        for instance in instances.iter().filter(|_| connect) {
            instance.connect();
        }
        wait(&host, if connect { n + 1 } else { 1 });
        std::thread::sleep(Duration::from_secs(2));
        let (rss1, threads1) = (rss_kib(), threads());
        let pushes = host.status_changes.load(Ordering::Relaxed);
        let (cpu0, start) = (cpu_secs(), Instant::now());
        std::thread::sleep(Duration::from_secs(secs));
        let (cpu1, wall) = (cpu_secs(), start.elapsed().as_secs_f64());
        let pushes = host.status_changes.load(Ordering::Relaxed) - pushes;
        json!({
            "rss_kib_per_instance": (rss1 - rss0) / n as f64,
            "rss_kib_per_instance_after_idle": (rss_kib() - rss0) / n as f64,
            "threads_added": threads1 - threads0,
            "cpu_percent": (cpu1 - cpu0) / wall * 100.0,
            // Each answered ping updates Ping RTT: a status push per ping.
            "pings": pushes,
        })
    }

    fn wait(host: &Host, count: usize) {
        let ok = host.wait_for(
            |h, _| h.established.load(Ordering::SeqCst) >= count,
            Duration::from_secs(120),
        );
        assert!(
            ok,
            "{} of {count} established",
            host.established.load(Ordering::SeqCst)
        );
    }

    fn idle_raw(ports: &Ports, tls: bool, n: usize, small_buffer: bool) -> Value {
        use async_tungstenite::tungstenite::protocol::WebSocketConfig;
        let tls_config = raw::tls_config(ports);
        let config = small_buffer.then(|| WebSocketConfig::default().read_buffer_size(4096));
        let ex: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || smol::block_on(ex.run(std::future::pending::<()>())));
        // One warm connection, then the baseline.
        let connect_one = |ready: std::sync::mpsc::Sender<()>| {
            let ports = ports.clone();
            let tls_config = tls_config.clone();
            ex.spawn(async move {
                let mut ws =
                    raw::connect(&ports, tls.then_some(&tls_config), "/idle", config).await;
                let _ = ready.send(());
                while let Some(Ok(_)) = futures_util::StreamExt::next(&mut ws).await {}
            })
            .detach();
        };
        connect_one(ready_tx.clone());
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("warm connection");
        std::thread::sleep(Duration::from_millis(500));
        let (rss0, threads0) = (rss_kib(), threads());
        for _ in 0..n {
            connect_one(ready_tx.clone());
        }
        for _ in 0..n {
            ready_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("raw idle connection");
        }
        std::thread::sleep(Duration::from_secs(2));
        json!({
            "rss_kib_per_instance": (rss_kib() - rss0) / n as f64,
            "threads_added": threads() - threads0,
        })
    }

    fn storm_wsio(ports: &Ports, tls: bool, n: usize) -> Value {
        let host = Host::new();
        let instances = wsio_rows::create_many(&host, ports, tls, n);
        let start = Instant::now();
        for instance in &instances {
            instance.connect();
        }
        wait(&host, n);
        json!({ "ms": start.elapsed().as_secs_f64() * 1000.0 })
    }

    fn storm_raw(ports: &Ports, tls: bool, n: usize) -> Value {
        let tls_config = raw::tls_config(ports);
        let ex = smol::LocalExecutor::new();
        let start = Instant::now();
        let elapsed = smol::block_on(ex.run(async {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (ports, tls_config) = (ports.clone(), tls_config.clone());
                    ex.spawn(async move {
                        raw::connect(&ports, tls.then_some(&tls_config), "/idle", None).await
                    })
                })
                .collect();
            let mut open = Vec::with_capacity(n);
            for task in tasks {
                open.push(task.await);
            }
            let elapsed = start.elapsed();
            drop(open);
            elapsed
        }));
        json!({ "ms": elapsed.as_secs_f64() * 1000.0 })
    }
}

/// The Node `ws` and Python `websockets` clients (benches/peers/).
mod peers {
    use super::*;
    use crate::table::{Col, Line};

    pub struct Peers {
        python: Option<PathBuf>,
        node_modules: Option<PathBuf>,
        scripts: PathBuf,
    }

    pub fn find(root: &std::path::Path, wanted: Option<bool>) -> Option<Peers> {
        if wanted == Some(false) {
            return None;
        }
        let dir = root.join("../../target/bench-peers");
        let python = dir.join("venv/bin/python");
        let node_modules = dir.join("node_modules");
        let peers = Peers {
            python: python.exists().then_some(python),
            node_modules: node_modules.join("ws").exists().then_some(node_modules),
            scripts: root.join("benches/peers"),
        };
        if peers.python.is_none() && peers.node_modules.is_none() {
            if wanted == Some(true) {
                fail("--peers: not installed; run bash benches/peers/setup.sh");
            }
            return None;
        }
        Some(peers)
    }

    impl Peers {
        pub fn describe(&self) -> String {
            format!(
                "node ws {}, python websockets {}",
                if self.node_modules.is_some() {
                    "yes"
                } else {
                    "no"
                },
                if self.python.is_some() { "yes" } else { "no" }
            )
        }

        fn run(
            &self,
            node: bool,
            ports: &Ports,
            mode: &str,
            tls: bool,
            n: usize,
            size: usize,
        ) -> Option<Value> {
            let url = format!(
                "{}://127.0.0.1:{}",
                if tls { "wss" } else { "ws" },
                if tls { ports.wss } else { ports.ws }
            );
            let args = [
                mode.to_owned(),
                url,
                n.to_string(),
                size.to_string(),
                ports.ca.clone(),
            ];
            let mut command = if node {
                let mut c = Command::new("node");
                c.arg(self.scripts.join("client.cjs"))
                    .env("NODE_PATH", self.node_modules.as_ref()?);
                c
            } else {
                let mut c = Command::new(self.python.as_ref()?);
                c.arg(self.scripts.join("client.py"));
                c
            };
            command.args(args).stdin(Stdio::null());
            match run_json(command, Duration::from_secs(300)) {
                Ok(v) => Some(v),
                Err(e) => {
                    eprintln!(
                        "throughput: peer {}: {e}",
                        if node { "node" } else { "python" }
                    );
                    None
                }
            }
        }

        pub fn rate(
            &self,
            line: &mut Line,
            ports: &Ports,
            mode: &str,
            tls: bool,
            n: usize,
            size: usize,
        ) {
            for (node, col) in [(true, Col::Node), (false, Col::Python)] {
                if let Some(secs) = self
                    .run(node, ports, mode, tls, n, size)
                    .and_then(|v| v["secs"].as_f64())
                {
                    line.push(col, n as f64 / secs);
                }
            }
        }

        pub fn echo(
            &self,
            ports: &Ports,
            tls: bool,
            n: usize,
            size: usize,
        ) -> (Option<[u64; 4]>, Option<[u64; 4]>) {
            let get = |node| {
                let v = self.run(node, ports, "echo", tls, n, size)?;
                Some(raw::parse_stats(v["stats"].as_str()?))
            };
            (get(true), get(false))
        }
    }
}

mod table {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Col {
        Wsio,
        Raw,
        Tcp,
        Node,
        Python,
    }

    #[derive(Clone, Copy)]
    pub enum Kind {
        /// Messages per second of `size` bytes.
        Rate {
            size: usize,
        },
        Micros,
        Millis,
        Nanos,
        Kib,
        Percent,
        Count,
    }

    #[derive(Clone, Copy)]
    pub enum Target {
        /// wsio / raw ≥ x (throughput).
        RatioAtLeast(f64),
        /// wsio / raw ≤ x (latency, time).
        RatioAtMost(f64),
        /// wsio ≤ x.
        AtMost(f64),
        None,
    }

    pub struct Line {
        name: String,
        kind: Kind,
        target: Target,
        values: [Vec<f64>; 5],
        notes: Vec<(String, Vec<f64>)>,
    }

    impl Line {
        pub fn push(&mut self, col: Col, value: f64) {
            self.values[col as usize].push(value);
        }

        /// A number seen in each run, shown as its median and range.
        pub fn note_value(&mut self, what: &str, value: f64) {
            match self.notes.iter_mut().find(|(w, _)| w == what) {
                Some((_, values)) => values.push(value),
                None => self.notes.push((what.to_owned(), vec![value])),
            }
        }

        fn all_notes(&self) -> Vec<String> {
            let fmt = |x: f64| {
                if x != 0.0 && x.abs() < 0.1 {
                    format!("{x:.4}")
                } else {
                    format!("{x:.1}")
                }
            };
            self.notes
                .iter()
                .map(|(what, values)| {
                    let mut v = values.clone();
                    let m = super::median(&mut v);
                    if v.len() > 1 {
                        let (lo, hi) = (v[0], v[v.len() - 1]);
                        format!("{what}: {} (runs: {} to {})", fmt(m), fmt(lo), fmt(hi))
                    } else {
                        format!("{what}: {}", fmt(m))
                    }
                })
                .collect()
        }

        fn median(&self, col: Col) -> Option<f64> {
            let mut v = self.values[col as usize].clone();
            (!v.is_empty()).then(|| super::median(&mut v))
        }

        fn cell(&self, col: Col) -> String {
            let Some(v) = self.median(col) else {
                return "—".to_owned();
            };
            match self.kind {
                Kind::Rate { size } => {
                    format!("{} msg/s · {:.0} MB/s", si(v), v * size as f64 / 1e6)
                }
                Kind::Micros => format!("{v:.1} µs"),
                Kind::Millis => format!("{v:.1} ms"),
                Kind::Nanos => format!("{v:.0} ns"),
                Kind::Kib => format!("{v:.1} KiB"),
                Kind::Percent => format!("{v:.2} %"),
                Kind::Count => format!("{v:.0}"),
            }
        }

        /// The ratio to raw and whether the target is met, in words.
        fn verdict(&self) -> (String, String) {
            let wsio = self.median(Col::Wsio);
            let raw = self.median(Col::Raw);
            let ratio = match (wsio, raw) {
                (Some(w), Some(r)) if r > 0.0 => Some(w / r),
                _ => None,
            };
            let ratio_text = ratio.map_or("—".to_owned(), |r| format!("{r:.2}×"));
            let higher_better = matches!(self.kind, Kind::Rate { .. });
            let peers_behind =
                [Col::Node, Col::Python]
                    .iter()
                    .all(|c| match (wsio, self.median(*c)) {
                        (Some(w), Some(p)) => {
                            if higher_better {
                                w > p
                            } else {
                                w < p
                            }
                        }
                        _ => true,
                    });
            let has_peers = [Col::Node, Col::Python]
                .iter()
                .any(|c| self.median(*c).is_some());
            let (goal, met) = match self.target {
                Target::RatioAtLeast(x) => (format!("≥ {x}× raw"), ratio.map(|r| r >= x)),
                Target::RatioAtMost(x) => (format!("≤ {x}× raw"), ratio.map(|r| r <= x)),
                Target::AtMost(x) => {
                    let unit = match self.kind {
                        Kind::Kib => " KiB",
                        Kind::Percent => " %",
                        Kind::Millis => " ms",
                        _ => "",
                    };
                    (format!("≤ {x}{unit}"), wsio.map(|w| w <= x))
                }
                Target::None => (String::new(), None),
            };
            let mut verdict = match met {
                Some(true) => format!("{goal}: met"),
                Some(false) => format!("{goal}: **missed**"),
                None if goal.is_empty() => String::new(),
                None => format!("{goal}: not measured"),
            };
            if has_peers && wsio.is_some() {
                if !verdict.is_empty() {
                    verdict.push_str("; ");
                }
                verdict.push_str(if peers_behind {
                    "ahead of peers"
                } else {
                    "**behind a peer**"
                });
            }
            (ratio_text, verdict)
        }
    }

    fn si(v: f64) -> String {
        if v >= 1e6 {
            format!("{:.2} M", v / 1e6)
        } else if v >= 1e3 {
            format!("{:.1} k", v / 1e3)
        } else {
            format!("{v:.0}")
        }
    }

    #[derive(Default)]
    pub struct Table {
        lines: Vec<Line>,
    }

    impl Table {
        pub fn line(&mut self, name: &str, kind: Kind, target: Target) -> &mut Line {
            if let Some(i) = self.lines.iter().position(|l| l.name == name) {
                return &mut self.lines[i];
            }
            self.lines.push(Line {
                name: name.to_owned(),
                kind,
                target,
                values: Default::default(),
                notes: Vec::new(),
            });
            self.lines.last_mut().unwrap()
        }

        pub fn render(&self, config: &Config, took: Duration) -> String {
            let mut out = String::new();
            let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
            out.push_str(&format!(
                "wsio throughput bench: medians of {} run(s){}, {cpus} CPU(s), took {:.0} s\n\n",
                config.runs,
                if config.quick {
                    " (--quick: 1/10 of the messages)"
                } else {
                    ""
                },
                took.as_secs_f64()
            ));
            out.push_str("| row | wsio (ABI) | raw async-tungstenite | raw TCP | Node ws | Python websockets | wsio / raw | target |\n");
            out.push_str("|---|---|---|---|---|---|---|---|\n");
            for line in &self.lines {
                let (ratio, verdict) = line.verdict();
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    line.name,
                    line.cell(Col::Wsio),
                    line.cell(Col::Raw),
                    line.cell(Col::Tcp),
                    line.cell(Col::Node),
                    line.cell(Col::Python),
                    ratio,
                    verdict
                ));
            }
            let notes: Vec<String> = self
                .lines
                .iter()
                .flat_map(|l| {
                    l.all_notes()
                        .into_iter()
                        .map(move |n| format!("- {}: {n}", l.name))
                })
                .collect();
            if !notes.is_empty() {
                out.push_str("\nNotes:\n");
                for note in notes {
                    out.push_str(&note);
                    out.push('\n');
                }
            }
            out
        }
    }
}
