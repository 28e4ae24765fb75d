//! A network namespace of the test's own, joined to the host by a veth pair, so one server
//! process can be cut off from one peer (iptables inside the namespace) while everything else
//! keeps talking. Needs root, `ip` (iproute2) and `iptables`; scripts/test installs them.
//!
//! Names carry the test process's pid and the subnet is a random /30 checked against the
//! host's addresses, so tests in parallel (and nextest's process per test) never collide.
//! Dropping the value removes the namespace and the veth pair, also when the test panics;
//! what a killed test process left behind is removed by the next one (its pid is gone).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Netns {
    pub name: String,
    /// The host's end of the veth pair (its address is how the namespace reaches the host).
    pub host_ip: Ipv4Addr,
    /// The namespace's end: servers inside bind it, the host reaches them on it.
    pub inner_ip: Ipv4Addr,
    host_link: String,
}

/// Runs `args`, panicking with its output when it fails.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (scripts/test installs iproute2, iptables)"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    pub fn create() -> Self {
        remove_leftovers();
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ghp-{pid}-{n}");
        // Interface names are at most 15 bytes: "gh" + pid (<= 7 digits) + side + n.
        let host_link = format!("gh{pid}h{n}");
        let inner_link = format!("gh{pid}n{n}");
        let (host_ip, inner_ip) = free_subnet();
        let ns = Self {
            name: name.clone(),
            host_ip,
            inner_ip,
            host_link: host_link.clone(),
        };
        // From here on Drop undoes whatever part was made.
        run(&["ip", "netns", "add", &name]);
        run(&[
            "ip",
            "link",
            "add",
            &host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner_link,
            "netns",
            &name,
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &host_link,
        ]);
        run(&["ip", "link", "set", &host_link, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{inner_ip}/30"),
            "dev",
            &inner_link,
        ]);
        ns.exec(&["ip", "link", "set", &inner_link, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Drops every TCP packet between the namespace and `peer`, both directions, until
    /// `restore`.
    pub fn cut_from(&self, peer: SocketAddr) {
        for rule in Self::rules(peer) {
            let mut args = vec!["iptables", "-A"];
            args.extend(rule.iter().map(String::as_str));
            self.exec(&args);
        }
    }

    pub fn restore(&self, peer: SocketAddr) {
        for rule in Self::rules(peer) {
            let mut args = vec!["iptables", "-D"];
            args.extend(rule.iter().map(String::as_str));
            self.exec(&args);
        }
    }

    /// Blackholes one connection of the namespace to `peer`, the one from `local_port`, for
    /// good: the socket stays open, nothing gets through either way.
    pub fn blackhole(&self, peer: SocketAddr, local_port: u16) {
        let (ip, port, local) = (
            peer.ip().to_string(),
            peer.port().to_string(),
            local_port.to_string(),
        );
        self.exec(&[
            "iptables", "-A", "OUTPUT", "-d", &ip, "-p", "tcp", "--dport", &port, "--sport",
            &local, "-j", "DROP",
        ]);
        self.exec(&[
            "iptables", "-A", "INPUT", "-s", &ip, "-p", "tcp", "--sport", &port, "--dport", &local,
            "-j", "DROP",
        ]);
    }

    /// Packets the cut has dropped so far (both rules), proof that it bit.
    pub fn dropped_packets(&self, peer: SocketAddr) -> u64 {
        let mut total = 0;
        for chain in ["OUTPUT", "INPUT"] {
            let listing = self.exec(&["iptables", "-L", chain, "-v", "-n", "-x"]);
            total += listing
                .lines()
                .filter(|l| {
                    l.contains("DROP") && l.contains(&format!("{}:{}", pt(chain), peer.port()))
                })
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        total
    }

    fn rules(peer: SocketAddr) -> [Vec<String>; 2] {
        let (ip, port) = (peer.ip().to_string(), peer.port().to_string());
        let rule = |chain: &str, side: &str, port_side: &str| {
            [
                chain, side, &ip, "-p", "tcp", port_side, &port, "-j", "DROP",
            ]
            .map(str::to_owned)
            .to_vec()
        };
        [
            rule("OUTPUT", "-d", "--dport"),
            rule("INPUT", "-s", "--sport"),
        ]
    }
}

/// How `iptables -L` names the port match of each rule.
fn pt(chain: &str) -> &'static str {
    if chain == "OUTPUT" { "dpt" } else { "spt" }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both; the namespace goes once its last
        // process (a killed server) is gone.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A /30 in 10.200.0.0/14 that no host interface uses: (host end, namespace end).
fn free_subnet() -> (Ipv4Addr, Ipv4Addr) {
    let used = run(&["ip", "-4", "-o", "addr"]);
    for _ in 0..100 {
        let block = rand::random::<u32>() % (1 << 16);
        let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + block * 4;
        let (host, inner) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        if !used.contains(&format!(" {host}/")) && !used.contains(&format!(" {inner}/")) {
            return (host, inner);
        }
    }
    panic!("no free /30 in 10.200.0.0/14");
}

/// Namespaces (and their veths) of test processes that no longer run.
fn remove_leftovers() {
    let Ok(listing) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some((pid, n)) = name
            .strip_prefix("ghp-")
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = Command::new("ip")
            .args(["link", "del", &format!("gh{pid}h{n}")])
            .output();
        let _ = Command::new("ip").args(["netns", "del", name]).output();
    }
}

/// Forwards TCP connections from `listen` to `target` (so a server inside a namespace can
/// reach a service that listens on the host's loopback only). It runs on a thread and runtime
/// of its own, so a busy test runtime does not delay the server's every query. Stops, with
/// every forwarded connection, when dropped.
pub struct Forwarder {
    pub addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    pub async fn start(listen: Ipv4Addr, target: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind((listen, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(forward(listener, target, stopped));
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

async fn forward(listener: std::net::TcpListener, target: SocketAddr, stop: CancellationToken) {
    let listener = TcpListener::from_std(listener).unwrap();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return, // dropping the JoinSet aborts the connections
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
