//! A network namespace reached through a veth pair, whose path can be cut
//! so that packets vanish silently (a half-open connection, a black-holed
//! address) and healed again.
//!
//! Needs root (CAP_NET_ADMIN) and iproute2. [`NetNs::create`] says why it
//! cannot when it cannot; tests then print that and skip, unless
//! `WSIO_REQUIRE_NETNS=1` (set by `.ci/run`) makes it a failure. Names are
//! unique per test process and namespace (`wsf<pid>n<k>`); the namespace
//! and the veth pair are deleted on drop, also when the test panics, and
//! leftovers of killed test processes are removed on the next create.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace with `ns_addr` inside, reachable from here at `ns_addr`
/// through a veth pair (`host_addr` on our side).
pub struct NetNs {
    name: String,
    host_if: String,
    ns_if: String,
    pub host_addr: Ipv4Addr,
    pub ns_addr: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<Output, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (install iproute2): {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn tc(args: &[&str]) -> Result<(), String> {
    let output = Command::new("tc")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `tc` (install iproute2): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`tc {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl NetNs {
    /// Creates the namespace and the veth pair, or says why it cannot.
    pub fn create() -> Result<NetNs, String> {
        remove_leftovers();
        let pid = std::process::id();
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("wsf{pid}n{k}");
        // A /30 per namespace in 10.213.0.0/16, spread by pid and counter.
        let slot = (pid.wrapping_mul(16).wrapping_add(k)) % 16384;
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + slot * 4;
        let (host_addr, ns_addr) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        ip(&["netns", "add", &name])?;
        let netns = NetNs {
            host_if: format!("{name}h"),
            ns_if: format!("{name}i"),
            name,
            host_addr,
            ns_addr,
        };
        // From here on, drop cleans up whatever was made.
        netns.set_up()?;
        Ok(netns)
    }

    fn set_up(&self) -> Result<(), String> {
        let (name, host_if, ns_if) = (&self.name, &self.host_if, &self.ns_if);
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", ns_if,
        ])?;
        ip(&["link", "set", ns_if, "netns", name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", self.host_addr),
            "dev",
            host_if,
        ])?;
        ip(&["link", "set", host_if, "up"])?;
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{}/30", self.ns_addr),
            "dev",
            ns_if,
        ])?;
        ip(&["-n", name, "link", "set", ns_if, "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Creates a namespace, or prints why the calling test is skipped and
    /// returns None (a failure instead with `WSIO_REQUIRE_NETNS=1`).
    pub fn create_or_skip(test: &str) -> Option<NetNs> {
        match NetNs::create() {
            Ok(netns) => Some(netns),
            Err(why) if std::env::var("WSIO_REQUIRE_NETNS").is_ok_and(|v| v == "1") => {
                panic!("{test}: a network namespace is required (WSIO_REQUIRE_NETNS=1): {why}")
            }
            Err(why) => {
                // Straight to stderr: the test harness would swallow an
                // eprintln! of a passing test.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: cannot create a network namespace ({why}); run as root with iproute2 to cover it"
                );
                None
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// From now on every packet in both directions vanishes without a
    /// trace: no RST, no ICMP, the sender's TCP just retransmits. `netem
    /// loss 100%` where the kernel has netem, else the `blackhole` qdisc
    /// (the same effect: drop, and report success to the sender). Returns
    /// which one it used.
    pub fn drop_all_packets(&self) -> &'static str {
        // Pin each side's neighbour first: with ARP dropped too, the kernel
        // gives up on the address after its ARP retries and fails the next
        // connects at once (EHOSTUNREACH), which is not a black hole.
        let ns_mac = self.mac(Some(&self.name), &self.ns_if);
        let host_mac = self.mac(None, &self.host_if);
        let (ns_addr, host_addr) = (self.ns_addr.to_string(), self.host_addr.to_string());
        ip(&[
            "neigh",
            "replace",
            &ns_addr,
            "lladdr",
            &ns_mac,
            "dev",
            &self.host_if,
            "nud",
            "permanent",
        ])
        .unwrap_or_else(|e| panic!("cannot pin the neighbour {ns_addr}: {e}"));
        ip(&[
            "-n",
            &self.name,
            "neigh",
            "replace",
            &host_addr,
            "lladdr",
            &host_mac,
            "dev",
            &self.ns_if,
            "nud",
            "permanent",
        ])
        .unwrap_or_else(|e| panic!("cannot pin the neighbour {host_addr}: {e}"));
        let mut used = "netem loss 100%";
        for (namespace, dev) in [(None, &self.host_if), (Some(&self.name), &self.ns_if)] {
            let mut base: Vec<&str> = Vec::new();
            if let Some(namespace) = namespace {
                base.extend(["-n", namespace]);
            }
            base.extend(["qdisc", "replace", "dev", dev, "root"]);
            let netem = [base.clone(), vec!["netem", "loss", "100%"]].concat();
            let blackhole = [base, vec!["blackhole"]].concat();
            if let Err(netem_error) = tc(&netem) {
                tc(&blackhole)
                    .unwrap_or_else(|e| panic!("cannot drop packets on {dev}: {netem_error}; {e}"));
                used = "the blackhole qdisc (no netem in this kernel)";
            }
        }
        used
    }

    /// The MAC address of `dev` (inside `namespace`, if given).
    fn mac(&self, namespace: Option<&str>, dev: &str) -> String {
        let mut args: Vec<&str> = Vec::new();
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        args.extend(["link", "show", "dev", dev]);
        let out = ip(&args).unwrap_or_else(|e| panic!("cannot read {dev}'s address: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .skip_while(|word| *word != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no link/ether address for {dev}"))
            .to_owned()
    }

    /// The path works again.
    pub fn heal(&self) {
        let _ = tc(&["qdisc", "del", "dev", &self.host_if, "root"]);
        let _ = tc(&["-n", &self.name, "qdisc", "del", "dev", &self.ns_if, "root"]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Namespaces `wsf<pid>n<k>` of test processes that no longer run (killed
/// before their drop could clean up).
fn remove_leftovers() {
    let Ok(output) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("wsf")
            .and_then(|rest| rest.split_once('n'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["link", "del", &format!("{name}h")]);
            let _ = ip(&["netns", "del", name]);
        }
    }
}
