//! The realtime benchmark suite: Guildhall against a bare reference server on this machine.
//!
//! `scripts/bench` (or `cargo bench --bench realtime`) runs every scenario in turn, each on its
//! own fresh, migrated Postgres database and its own `guildhall serve` child process (release
//! build, rate limits off, Postgres' `synchronous_commit` as configured: `on` by default):
//!
//! - idle: many idle WebSocket sessions, memory per connection, connect rate (idle.rs);
//! - fanout: A (10 rooms × 100), B (one hot room of 100), C (a 10,000-connection room burst), each
//!   also against the bare reference broadcast (bare.rs, re-executed from this binary), so every
//!   row has a Guildhall / bare ratio; server CPU per delivery from /proc (fanout_table.rs);
//! - durable: closed-loop senders, acked messages/s and ack latency (durable.rs);
//! - history: history pages over millions of COPY-loaded messages (history.rs);
//! - cross-node: two nodes through Redis, added latency (cross_node.rs).
//!
//! The client read buffer is 4 KiB. Everything is bounded in count and time and stays on
//! loopback; databases are dropped at the end. `GUILDHALL_BENCH_SCENARIOS=fanout,durable`
//! selects scenarios; `GUILDHALL_BENCH_SERVER_BIN` runs another `guildhall` build (e.g. the
//! previous commit's) for comparison; `GUILDHALL_BENCH_WRITE=1` inserts the report as the newest
//! section of BENCHMARKS.md (markdown tables and the same figures as JSON), and
//! `GUILDHALL_BENCH_EXTRA=<file>` appends a markdown file (scripts/bench passes the permission
//! check bench's table). Without `--bench` (e.g. `cargo test --benches`) it runs a tiny version.

mod api;
mod bare;
mod cross_node;
mod db;
mod durable;
mod fanout;
mod fanout_table;
mod history;
mod idle;
mod report;
mod server;
mod ws;

use std::panic::AssertUnwindSafe;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::Value;

pub(crate) const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
pub(crate) const PASSWORD: &str = "correct horse battery";
/// Client read buffer (tungstenite's default is 128 KiB).
pub(crate) const READ_BUFFER: usize = 4096;
/// How long to wait for acks and deliveries after the last send.
pub(crate) const DRAIN_BOUND: Duration = Duration::from_secs(30);
/// Concurrent registrations (argon2 is deliberately slow; the server has 2 cores).
pub(crate) const REGISTER_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) durable_rooms: usize,
    pub(crate) durable_users: usize,
    pub(crate) durable_concurrency: &'static [usize],
    pub(crate) durable_run: Duration,
    /// Bound of each scenario.
    pub(crate) total: Duration,
}

pub(crate) const FULL: Scale = Scale {
    durable_rooms: 50,
    durable_users: 16,
    durable_concurrency: &[16, 128],
    durable_run: Duration::from_secs(10),
    total: Duration::from_secs(20 * 60),
};

pub(crate) const SMOKE: Scale = Scale {
    durable_rooms: 4,
    durable_users: 2,
    durable_concurrency: &[4],
    durable_run: Duration::from_secs(1),
    total: Duration::from_secs(180),
};

/// One scenario's results: a markdown part for BENCHMARKS.md and the same figures as JSON.
#[derive(Debug, Default)]
pub(crate) struct Section {
    pub(crate) name: &'static str,
    pub(crate) markdown: String,
    pub(crate) json: Value,
    pub(crate) seconds: f64,
}

impl Section {
    fn failed(name: &str, why: &str) -> Self {
        Self {
            name: "failed",
            markdown: format!("### {name}: FAILED\n\n{why}\n"),
            json: serde_json::json!({ "scenario": name, "failed": why }),
            seconds: 0.0,
        }
    }
}

/// One clock for the whole process: send times travel in message content as ns since `T0`.
pub(crate) static T0: LazyLock<Instant> = LazyLock::new(Instant::now);

pub(crate) fn now_ns() -> u64 {
    T0.elapsed().as_nanos() as u64
}

/// History runs last: dropping its 4.5 GB database leaves Postgres flushing to disk for a while,
/// which showed up as commit latency in whatever ran next (cross-node A20 p99 193 ms vs 29 ms alone).
const SCENARIOS: [&str; 5] = ["idle", "fanout", "durable", "cross-node", "history"];

async fn scenario(name: &str, full: bool) -> Section {
    let scale = if full { FULL } else { SMOKE };
    match name {
        "idle" => idle::run(full).await,
        "fanout" => fanout_table::run(full).await,
        "durable" => durable::section(scale).await,
        "history" => history::run(full).await,
        "cross-node" => cross_node::run(full).await,
        other => panic!("unknown scenario {other:?}; known: {SCENARIOS:?}"),
    }
}

fn selected() -> Vec<String> {
    std::env::var("GUILDHALL_BENCH_SCENARIOS").map_or_else(
        |_| SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        |list| {
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        },
    )
}

/// Runs one scenario within its bound; a panic is reported as that scenario's result.
async fn bounded(name: &str, full: bool) -> Section {
    let bound = if full { FULL.total } else { SMOKE.total };
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(bound, AssertUnwindSafe(scenario(name, full)).catch_unwind()).await;
    let mut section = match outcome {
        Ok(Ok(section)) => section,
        Ok(Err(panic)) if full => Section::failed(name, &panic_text(&panic)),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => {
            let text = format!("did not finish within {bound:?}");
            assert!(full, "{name}: {text}");
            Section::failed(name, &text)
        }
    };
    section.seconds = started.elapsed().as_secs_f64();
    section
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

fn main() {
    // The bare reference server runs as a re-executed child of this binary (its own process,
    // so its CPU and memory are read from /proc like Guildhall's).
    if std::env::args().any(|a| a == bare::SERVE_FLAG) {
        bare::serve_main();
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    LazyLock::force(&T0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let context = report::Context::capture();
    let mut sections = Vec::new();
    for name in selected() {
        eprintln!("bench: {name}...");
        let section = runtime.block_on(bounded(&name, full));
        eprintln!("bench: {name} done in {:.0} s", section.seconds);
        sections.push(section);
    }
    let report = report::render(&context, full, &sections);
    println!("{report}");
    if std::env::var("GUILDHALL_BENCH_WRITE").is_ok_and(|v| v == "1") {
        report::insert_into_benchmarks(&report);
    }
}
