//! Scenario (v): two Guildhall nodes through Redis, and the latency the cross-node hop adds.
//!
//! Senders are on node 1; each room's receivers are split between node 1 (same-node) and node 2
//! (cross-node, reached through Redis pub/sub). Both halves see the same messages at the same
//! moment, so cross-node minus same-node latency is the hop's cost, with the rest (persistence,
//! the load generator) cancelling out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use crate::Section;
use crate::api::Api;
use crate::db::{create_database, drop_database};
use crate::fanout::{Sender, Shape, Slot, Target, guildhall_rooms, open_sender, play};
use crate::report::{Percentiles, micros, ms, per, per_unit};
use crate::server::Server;
use futures::{FutureExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// One load shape: rooms × receivers (half on each node), one sender per room on node 1.
struct Case {
    label: &'static str,
    title: &'static str,
    rooms: usize,
    /// Accounts per room; receivers cycle over them (argon2 registration is the slow part).
    members_per_room: usize,
    /// Both nodes together; the first half connects to node 1, the rest to node 2.
    receivers_per_room: usize,
    rate_per_room: f64,
    run: Duration,
}

const FULL: [Case; 2] = [
    Case {
        label: "low",
        title: "low load: 1 room, 50 msg/s",
        rooms: 1,
        members_per_room: 10,
        receivers_per_room: 20,
        rate_per_room: 50.0,
        run: Duration::from_secs(10),
    },
    Case {
        label: "a20",
        title: "A20: 10 rooms × 100, 200 msg/s",
        rooms: 10,
        members_per_room: 20,
        receivers_per_room: 100,
        rate_per_room: 20.0,
        run: Duration::from_secs(10),
    },
];

const SMOKE: [Case; 2] = [
    Case {
        label: "low",
        title: "low load (smoke): 1 room, 50 msg/s",
        rooms: 1,
        members_per_room: 2,
        receivers_per_room: 4,
        rate_per_room: 50.0,
        run: Duration::from_secs(1),
    },
    Case {
        label: "a20",
        title: "A20 (smoke): 2 rooms × 4, 40 msg/s",
        rooms: 2,
        members_per_room: 2,
        receivers_per_room: 4,
        rate_per_room: 20.0,
        run: Duration::from_secs(1),
    },
];

pub(crate) async fn run(full: bool) -> Section {
    let database = create_database().await;
    // Drop the database even when a run panics (the servers die with their handles).
    let outcome = AssertUnwindSafe(scenario(&database, full))
        .catch_unwind()
        .await;
    drop_database(&database).await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

struct Node {
    server: Server,
    api: Api,
}

impl Node {
    async fn start(database: &str, prefix: &str) -> Self {
        let env = [
            ("GUILDHALL_REDIS_URL", REDIS_URL.to_owned()),
            ("GUILDHALL_REDIS_PREFIX", prefix.to_owned()),
        ];
        let server = Server::start_with(database, &env).await;
        let api = Api::new(server.addr);
        Self { server, api }
    }

    fn target(&self) -> Target<'_> {
        Target::Guildhall {
            api: &self.api,
            server: &self.server,
        }
    }
}

async fn scenario(database: &str, full: bool) -> Section {
    // A random prefix keeps concurrent runs (and tests) on the same Redis apart.
    let prefix = format!("ghbench-{}:", Uuid::new_v4().simple());
    let nodes = [
        Node::start(database, &prefix).await,
        Node::start(database, &prefix).await,
    ];
    let mut results = Vec::new();
    for case in if full { &FULL } else { &SMOKE } {
        results.push((case, measure(&nodes, case).await));
    }
    let mut warnings = Vec::new();
    for node in nodes {
        let (exit, notable) = node.server.stop().await;
        warnings.push((exit, notable));
    }
    section(&results, &warnings, full)
}

/// Sets a case up, proves the Redis link with one message per room, runs it, tears it down.
async fn measure(nodes: &[Node; 2], case: &Case) -> Outcome {
    let setup = Setup::open(nodes, case).await;
    let probe = setup.load(nodes, 1, 1.0, 1).await;
    assert!(
        probe.acked == case.rooms as u64 && probe.lost == 0 && probe.delivered[1] > 0,
        "{}: a message sent on node 1 did not reach every receiver on node 2 through Redis \
         (acked {}, lost {}, node-2 deliveries {})",
        case.label,
        probe.acked,
        probe.lost,
        probe.delivered[1]
    );
    let count = (case.rate_per_room * case.run.as_secs_f64()).round() as u64;
    let outcome = setup.load(nodes, 2, case.rate_per_room, count).await;
    setup.stop.cancel();
    outcome
}

struct Receiver {
    slot: Slot,
    /// Connected to node 2: its messages crossed Redis.
    cross: bool,
}

struct Setup {
    receivers: Vec<Receiver>,
    senders: Vec<Sender>,
    stop: CancellationToken,
}

impl Setup {
    async fn open(nodes: &[Node; 2], case: &Case) -> Self {
        let shape = Shape {
            rooms: case.rooms,
            members_per_room: case.members_per_room,
            receivers_per_room: case.receivers_per_room,
        };
        let label = format!("x{}", case.label);
        let (rooms, owners, members) = guildhall_rooms(&nodes[0].api, shape, &label).await;
        let stop = CancellationToken::new();
        let half = case.receivers_per_room / 2;
        let receivers: Vec<Receiver> = (0..case.rooms)
            .flat_map(|room_index| {
                let members = &members;
                (0..case.receivers_per_room).map(move |j| Receiver {
                    slot: Slot {
                        room_index,
                        token: members
                            [room_index * case.members_per_room + j % case.members_per_room]
                            .token
                            .clone(),
                        stats: Arc::default(),
                    },
                    cross: j >= half,
                })
            })
            .collect();
        stream::iter(&receivers)
            .map(|r| {
                let node = &nodes[usize::from(r.cross)];
                r.slot.open(node.target(), rooms[r.slot.room_index], &stop)
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        let mut senders = Vec::with_capacity(case.rooms);
        for (room_index, (&room, owner)) in rooms.iter().zip(&owners).enumerate() {
            let node1 = Target::Guildhall {
                api: &nodes[0].api,
                server: &nodes[0].server,
            };
            senders.push(open_sender(node1, Some(owner), room, room_index, &stop).await);
        }
        Self {
            receivers,
            senders,
            stop,
        }
    }

    /// `count` messages per room at `rate` each; waits for acks, then for every receiver.
    async fn load(&self, nodes: &[Node; 2], run: u64, rate: f64, count: u64) -> Outcome {
        let cpu_before = nodes.each_ref().map(|n| n.server.cpu_us());
        let slots: Vec<&Slot> = self.receivers.iter().map(|r| &r.slot).collect();
        let (start_ns, acked) = play(&slots, &self.senders, run, rate, count).await;
        let cpu = [0, 1].map(|i| nodes[i].server.cpu_us().saturating_sub(cpu_before[i]));
        let mut outcome = self.gather(&acked, start_ns, 1.0 / rate);
        outcome.cpu_us = cpu;
        outcome
    }

    fn gather(&self, acked: &[u64], start_ns: u64, interval: f64) -> Outcome {
        let mut o = Outcome::default();
        for s in &self.senders {
            let s = s.stats.lock().expect("stats");
            o.sent += s.sent;
            o.acked += s.acked;
            o.send_errors += s.errors.values().sum::<u64>();
            o.last_send_ns = o.last_send_ns.max(s.last_send_ns);
        }
        let mut samples = [Vec::new(), Vec::new()];
        let mut last_delivery = 0;
        for r in &self.receivers {
            let node = usize::from(r.cross);
            let expected = acked[r.slot.room_index];
            let mut s = r.slot.stats.lock().expect("stats");
            o.receivers[node] += 1;
            o.delivered[node] += s.count;
            o.lost += expected.saturating_sub(s.count);
            o.extra += s.count.saturating_sub(expected);
            o.disorder += s.disorder;
            if let Some(reason) = &s.closed {
                *o.disconnects.entry(reason.clone()).or_default() += 1;
            }
            last_delivery = last_delivery.max(s.last_ns);
            samples[node].extend(s.received.iter().map(|&(_, sent, got)| micros(got, sent)));
            s.received = Vec::new();
        }
        let [same, cross] = samples;
        o.same = Percentiles::of(same);
        o.cross = Percentiles::of(cross);
        // As in fanout.rs: over the schedule's span plus one send interval.
        let span = last_delivery.saturating_sub(start_ns) as f64 / 1e9 + interval;
        o.delivered_per_s = (o.delivered[0] + o.delivered[1]) as f64 / span;
        o.tail = Duration::from_nanos(last_delivery.saturating_sub(o.last_send_ns));
        o
    }
}

/// One run's figures; index 0 is node 1 (same-node), 1 is node 2 (cross-node).
#[derive(Default)]
struct Outcome {
    receivers: [usize; 2],
    sent: u64,
    acked: u64,
    send_errors: u64,
    delivered: [u64; 2],
    lost: u64,
    extra: u64,
    disorder: u64,
    disconnects: BTreeMap<String, u64>,
    delivered_per_s: f64,
    same: Percentiles,
    cross: Percentiles,
    last_send_ns: u64,
    /// Last delivery after the last send.
    tail: Duration,
    cpu_us: [u64; 2],
}

impl Outcome {
    fn added(&self) -> (i64, i64) {
        (
            self.cross.p50 - self.same.p50,
            self.cross.p99 - self.same.p99,
        )
    }

    /// The cross-node targets: added ≤ 0.3 ms at p50 and ≤ 1 ms at p99.
    fn within_target(&self) -> bool {
        let (p50, p99) = self.added();
        p50 <= 300 && p99 <= 1_000
    }

    /// Each node's CPU over its own deliveries (node 1 also persists and publishes), then both
    /// nodes' CPU over all deliveries.
    fn cpu_per_delivery(&self) -> [f64; 3] {
        [
            per_unit(self.cpu_us[0], self.delivered[0]),
            per_unit(self.cpu_us[1], self.delivered[1]),
            per_unit(
                self.cpu_us[0] + self.cpu_us[1],
                self.delivered[0] + self.delivered[1],
            ),
        ]
    }
}

fn three(p: &Percentiles) -> String {
    format!("{} / {} / {}", ms(p.p50), ms(p.p99), ms(p.p999))
}

fn row(case: &Case, o: &Outcome) -> String {
    let (p50, p99) = o.added();
    let total = o.delivered[0] + o.delivered[1];
    format!(
        "| {} | {} + {} | {:.0} | {} | {} | {} | {} / {} | {} / {} / {} |",
        case.title,
        o.receivers[0],
        o.receivers[1],
        o.delivered_per_s,
        o.lost,
        three(&o.same),
        three(&o.cross),
        ms(p50),
        ms(p99),
        per(o.cpu_us[0], o.delivered[0]),
        per(o.cpu_us[1], o.delivered[1]),
        per(o.cpu_us[0] + o.cpu_us[1], total),
    )
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({ "p50": p.p50, "p99": p.p99, "p999": p.p999, "max": p.max })
}

fn case_json(case: &Case, o: &Outcome) -> Value {
    let (p50, p99) = o.added();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let cpu = o.cpu_per_delivery().map(round);
    json!({
        "rooms": case.rooms,
        "receivers": { "node1": o.receivers[0], "node2": o.receivers[1] },
        "rate_msgs_per_s": case.rate_per_room * case.rooms as f64,
        "seconds": case.run.as_secs_f64(),
        "sent": o.sent,
        "acked": o.acked,
        "send_errors": o.send_errors,
        "delivered": { "node1": o.delivered[0], "node2": o.delivered[1] },
        "delivered_per_s": o.delivered_per_s.round(),
        "lost": o.lost,
        "extra": o.extra,
        "disorder": o.disorder,
        "disconnects": o.disconnects,
        "tail_ms": o.tail.as_secs_f64() * 1e3,
        "same_node_us": percentiles_json(&o.same),
        "cross_node_us": percentiles_json(&o.cross),
        "added_us": { "p50": p50, "p99": p99 },
        "server_cpu_us": { "node1": o.cpu_us[0], "node2": o.cpu_us[1] },
        "server_cpu_us_per_delivery": { "node1": cpu[0], "node2": cpu[1], "combined": cpu[2] },
    })
}

fn section(
    results: &[(&Case, Outcome)],
    warnings: &[(String, Vec<String>)],
    full: bool,
) -> Section {
    let mut md = String::from("### Two nodes through Redis\n\n");
    md.push_str(
        "One database, two `guildhall serve` nodes on one Redis (random key prefix); each room's \
         sender is on node 1 (unsubscribed, so it only gets acks) and its receivers are split \
         evenly between node 1 (same-node) and node 2 (cross-node); latency is receipt minus the \
         send time carried in the content, on one clock, and added = cross-node minus same-node.\n\n",
    );
    md.push_str(
        "| scenario | receivers (node 1 + node 2) | delivered/s | lost | same-node p50 / p99 / p999 \
         | cross-node p50 / p99 / p999 | added p50 / p99 \
         | server CPU µs/delivery (node 1 / node 2 / both) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (case, o) in results {
        let _ = writeln!(md, "{}", row(case, o));
    }
    md.push('\n');
    md.push_str(&notes(results, warnings, full));
    let mut json = serde_json::Map::new();
    for (case, o) in results {
        json.insert(case.label.to_owned(), case_json(case, o));
    }
    let verdict = results
        .first()
        .filter(|_| full)
        .map(|(_, o)| o.within_target());
    json.insert("low_load_added_within_target".to_owned(), json!(verdict));
    json.insert("server_warnings".to_owned(), json!(warnings_of(warnings)));
    Section {
        name: "cross-node",
        markdown: md,
        json: Value::Object(json),
        ..Section::default()
    }
}

/// Targets, anything that went wrong, and how CPU per delivery is divided.
fn notes(results: &[(&Case, Outcome)], warnings: &[(String, Vec<String>)], full: bool) -> String {
    let mut md = String::new();
    if let Some((_, low)) = results.first() {
        let (p50, p99) = low.added();
        // A smoke run's few hundred samples say nothing about p99.
        let verdict = match (full, low.within_target()) {
            (false, _) => "not judged at smoke scale",
            (true, true) => "met",
            (true, false) => "NOT met",
        };
        let _ = writeln!(
            md,
            "Low-load target (added ≤ 0.3 ms p50, ≤ 1 ms p99): {verdict} ({} / {}).",
            ms(p50),
            ms(p99)
        );
    }
    for (case, o) in results {
        let clean = o.lost == 0 && o.extra == 0 && o.disorder == 0 && o.acked == o.sent;
        if !clean || o.send_errors > 0 || !o.disconnects.is_empty() {
            let _ = writeln!(
                md,
                "{}: sent {}, acked {}, send errors {}, extra {}, out of order {}, disconnects {:?}.",
                case.title, o.sent, o.acked, o.send_errors, o.extra, o.disorder, o.disconnects
            );
        }
    }
    let warned = warnings_of(warnings);
    if !warned.is_empty() {
        let _ = writeln!(md, "Server warnings: {}.", warned.join(" | "));
    }
    md.push_str(
        "CPU per delivery: each node's CPU (from /proc) over its own deliveries (node 1 also \
         persists and publishes to Redis), and both nodes' CPU over all deliveries.\n",
    );
    md
}

fn warnings_of(warnings: &[(String, Vec<String>)]) -> Vec<String> {
    warnings
        .iter()
        .enumerate()
        .flat_map(|(i, (exit, notable))| {
            let exit = (!exit.contains("exit status: 0")).then(|| format!("node {} {exit}", i + 1));
            exit.into_iter().chain(
                notable
                    .iter()
                    .take(5)
                    .map(move |l| format!("node {}: {l}", i + 1)),
            )
        })
        .collect()
}
