//! Idle capacity: many connections, memory per connection, connect rate, failures, against
//! Guildhall and the bare reference server in the same shape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::bare::{Bare, rss_kb};
use crate::db::{create_database, drop_database};
use crate::report::{Percentiles, counts, ms, per_unit};
use crate::server::Server;
use crate::ws::{Ws, heartbeat_of, next_json, text_frame};
use crate::{READ_BUFFER, Section};
use futures::stream::{self};
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Connects in flight at once: enough to keep both cores busy, few enough not to overflow the
/// listen backlog.
const CONNECT_CONCURRENCY: usize = 64;
/// Connections opened and closed before the "before" RSS, so allocator arenas and lazily
/// built state are already there and the delta is what the connections themselves hold.
const WARM_UP: usize = 100;
/// Sessions per Guildhall account: registration is argon2 (slow), and Guildhall has no
/// per-user session limit, so a few accounts carry all connections.
const SESSIONS_PER_ACCOUNT: usize = 100;
const BARE_ROOMS: usize = 100;
const CONNECT_BOUND: Duration = Duration::from_secs(20);

/// The server under test, whichever it is: where its process's counters are read.
trait Probe {
    fn pid(&self) -> u32;
    fn rss_kb(&self) -> u64;
    fn cpu_us(&self) -> u64;
}

impl Probe for Server {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn rss_kb(&self) -> u64 {
        rss_kb(self.pid)
    }
    fn cpu_us(&self) -> u64 {
        Server::cpu_us(self)
    }
}

impl Probe for Bare {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn rss_kb(&self) -> u64 {
        Bare::rss_kb(self)
    }
    fn cpu_us(&self) -> u64 {
        Bare::cpu_us(self)
    }
}

/// What one server did with `attempted` idle connections.
#[derive(Debug, Default)]
struct Outcome {
    attempted: usize,
    connected: usize,
    /// Connect failures and connections the server closed while they sat idle, by reason.
    failures: BTreeMap<String, u64>,
    connect_wall: Duration,
    ready_us: Percentiles,
    rss_before_kb: u64,
    rss_after_kb: u64,
    rss_end_kb: u64,
    connect_cpu_us: u64,
    server_fd_limit: String,
}

impl Outcome {
    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn kb_per_connection(&self) -> f64 {
        self.rss_after_kb.saturating_sub(self.rss_before_kb) as f64 / self.connected.max(1) as f64
    }

    fn connects_per_s(&self) -> f64 {
        self.connected as f64 / self.connect_wall.as_secs_f64().max(1e-9)
    }

    fn cpu_per_connect(&self) -> f64 {
        per_unit(self.connect_cpu_us, self.connected as u64)
    }
}

pub(crate) async fn run(full: bool) -> Section {
    let count = if full { 15_000 } else { 200 };
    let hold = Duration::from_secs(if full { 5 } else { 1 });
    let guildhall = guildhall(count, hold).await;
    let bare = bare(count, hold).await;
    render(count, hold, &guildhall, &bare)
}

async fn guildhall(count: usize, hold: Duration) -> (Outcome, String) {
    let database = create_database().await;
    // Panics (server start, registration) still drop the database; the server child is
    // killed on drop.
    let outcome = AssertUnwindSafe(guildhall_on(&database, count, hold))
        .catch_unwind()
        .await;
    drop_database(&database).await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

async fn guildhall_on(database: &str, count: usize, hold: Duration) -> (Outcome, String) {
    let server = Server::start(database).await;
    let api = Api::new(server.addr);
    let names = (0..count.div_ceil(SESSIONS_PER_ACCOUNT))
        .map(|k| format!("idle-{k}"))
        .collect();
    let accounts = api.register_all(names).await;
    let urls = (0..count)
        .map(|i| {
            format!(
                "ws://{}/v1/ws?token={}",
                server.addr,
                accounts[i % accounts.len()].token
            )
        })
        .collect();
    let outcome = measure(&server, urls, hold).await;
    let (exit, notable) = server.stop().await;
    let log = if notable.is_empty() {
        format!("{exit}, no warnings")
    } else {
        format!(
            "{exit}, {} warnings/errors, first: {}",
            notable.len(),
            notable[0]
        )
    };
    (outcome, log)
}

async fn bare(count: usize, hold: Duration) -> Outcome {
    let bare = Bare::start().await;
    let rooms: Vec<Uuid> = (0..BARE_ROOMS).map(|_| Uuid::new_v4()).collect();
    let urls = (0..count)
        .map(|i| format!("ws://{}/v1/ws?room={}", bare.addr, rooms[i % rooms.len()]))
        .collect();
    let outcome = measure(&bare, urls, hold).await;
    bare.stop().await;
    outcome
}

/// Warm-up, then every url connected (bounded concurrency), held idle, closed.
async fn measure(server: &impl Probe, urls: Vec<String>, hold: Duration) -> Outcome {
    let mut outcome = Outcome {
        attempted: urls.len(),
        server_fd_limit: open_files_limit(&format!("/proc/{}/limits", server.pid())),
        ..Outcome::default()
    };
    warm_up(&urls[..WARM_UP.min(urls.len())]).await;
    outcome.rss_before_kb = server.rss_kb();
    let stop = CancellationToken::new();
    let cpu_before = server.cpu_us();
    let started = Instant::now();
    let opened: Vec<_> = stream::iter(urls)
        .map(|url| open_and_idle(url, stop.clone()))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    outcome.connect_wall = started.elapsed();
    outcome.connect_cpu_us = server.cpu_us().saturating_sub(cpu_before);
    outcome.rss_after_kb = server.rss_kb();
    let mut ready_us = Vec::with_capacity(opened.len());
    let mut idlers = Vec::with_capacity(opened.len());
    for result in opened {
        match result {
            Ok((idler, ready)) => {
                ready_us.push(ready.as_micros() as i64);
                idlers.push(idler);
            }
            Err(reason) => *outcome.failures.entry(reason).or_default() += 1,
        }
    }
    outcome.connected = idlers.len();
    outcome.ready_us = Percentiles::of(ready_us);
    tokio::time::sleep(hold).await;
    outcome.rss_end_kb = server.rss_kb();
    stop.cancel();
    for idler in idlers {
        if let Ok(Some(reason)) = idler.await {
            *outcome
                .failures
                .entry(format!("closed while idle: {reason}"))
                .or_default() += 1;
        }
    }
    outcome
}

async fn warm_up(urls: &[String]) {
    let opened: Vec<_> = stream::iter(urls.iter().cloned())
        .map(open)
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    for (mut ws, _, _) in opened.into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    // Let the server finish tearing those sessions down before RSS is read.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Connects, then leaves a task holding the connection until `stop`.
async fn open_and_idle(
    url: String,
    stop: CancellationToken,
) -> Result<(JoinHandle<Option<String>>, Duration), String> {
    let (ws, ready, took) = open(url).await?;
    Ok((tokio::spawn(idle(ws, heartbeat_of(&ready), stop)), took))
}

/// A connection and its `ready`, or why not (failures are counted, not fatal); the duration
/// is from the start of the TCP connect to `ready`.
async fn open(url: String) -> Result<(Ws, Value, Duration), String> {
    let started = Instant::now();
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (mut ws, _) = tokio::time::timeout(CONNECT_BOUND, connecting)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|err| reason(&err))?;
    let ready = next_json(&mut ws, CONNECT_BOUND)
        .await
        .ok_or_else(|| "no first frame".to_owned())?;
    if ready["type"] != "ready" {
        return Err(format!("first frame {}", ready["type"]));
    }
    Ok((ws, ready, started.elapsed()))
}

/// A short, stable failure label (addresses and byte counts left out, so failures group).
fn reason(err: &WsError) -> String {
    match err {
        WsError::Io(io) => format!("io {:?}", io.kind()),
        WsError::Http(response) => format!("http {}", response.status()),
        WsError::Protocol(protocol) => format!("protocol {protocol}"),
        other => other.to_string().chars().take(60).collect(),
    }
}

/// Drains frames and heartbeats until `stop`; `Some(reason)` if the server ended it first.
async fn idle(mut ws: Ws, heartbeat: Duration, stop: CancellationToken) -> Option<String> {
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let early = loop {
        tokio::select! {
            () = stop.cancelled() => break None,
            _ = beat.tick() => {
                if let Err(err) = ws.send(text_frame(&json!({"type": "heartbeat"}))).await {
                    break Some(reason(&err));
                }
            }
            next = ws.next() => match next {
                Some(Ok(Message::Close(_))) | None => break Some("closed by server".to_owned()),
                Some(Err(err)) => break Some(reason(&err)),
                Some(Ok(_)) => {}
            },
        }
    };
    if early.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    early
}

/// The soft "Max open files" of a process, from its /proc limits file.
fn open_files_limit(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            Some(
                l.strip_prefix("Max open files")?
                    .split_whitespace()
                    .next()?
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

fn row(name: &str, o: &Outcome) -> String {
    format!(
        "| {name} | {} | {} | {} | {:.0} | {} / {} | {} / {} / {} | {:.1} | {:.0} | {} |",
        o.attempted,
        o.connected,
        o.failed(),
        o.connects_per_s(),
        ms(o.ready_us.p50),
        ms(o.ready_us.p99),
        mb(o.rss_before_kb),
        mb(o.rss_after_kb),
        mb(o.rss_end_kb),
        o.kb_per_connection(),
        o.cpu_per_connect(),
        o.server_fd_limit,
    )
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "-".to_owned()
    }
}

fn render(
    count: usize,
    hold: Duration,
    (guildhall, log): &(Outcome, String),
    bare: &Outcome,
) -> Section {
    let bench_fds = open_files_limit("/proc/self/limits");
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Idle capacity\n\n{count} idle WebSocket connections per server, {CONNECT_CONCURRENCY} \
         connects in flight, held {} s. The bench process holds all client sockets itself and its \
         open-file limit is {bench_fds} (`ulimit -n`, not raised), which caps a run at under that \
         many connections; each server child has its own limit (last column). Guildhall sessions \
         ({SESSIONS_PER_ACCOUNT} per account) follow no rooms; bare ones follow one of \
         {BARE_ROOMS} rooms. RSS before is after a warm-up of {WARM_UP} connections; KB per \
         connection = (after − before) / connected; CPU is the server's over the connect phase.\n",
        hold.as_secs(),
    );
    let _ = writeln!(
        md,
        "| server | attempted | connected | failures | connects/s | ready p50 / p99 | RSS before / after / end of hold (MB) | KB per connection | server CPU µs per connect | server fd limit |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let _ = writeln!(md, "{}", row("Guildhall", guildhall));
    let _ = writeln!(md, "{}", row("bare", bare));
    let _ = writeln!(
        md,
        "| Guildhall / bare | | | | {} | | | {} | {} | |\n",
        ratio(guildhall.connects_per_s(), bare.connects_per_s()),
        ratio(guildhall.kb_per_connection(), bare.kb_per_connection()),
        ratio(guildhall.cpu_per_connect(), bare.cpu_per_connect()),
    );
    let _ = writeln!(
        md,
        "Failures: Guildhall {}; bare {}. Guildhall server: {log}.\n",
        counts(&guildhall.failures),
        counts(&bare.failures)
    );
    Section {
        name: "idle",
        markdown: md,
        json: json!({
            "connections": count,
            "bench_open_files_limit": bench_fds,
            "guildhall": outcome_json(guildhall),
            "bare": outcome_json(bare),
            "guildhall_log": log,
        }),
        seconds: 0.0,
    }
}

fn outcome_json(o: &Outcome) -> Value {
    json!({
        "attempted": o.attempted,
        "connected": o.connected,
        "failures": o.failed(),
        "failure_reasons": o.failures,
        "connect_seconds": o.connect_wall.as_secs_f64(),
        "connects_per_s": o.connects_per_s(),
        "ready_p50_us": o.ready_us.p50,
        "ready_p99_us": o.ready_us.p99,
        "rss_before_kb": o.rss_before_kb,
        "rss_after_kb": o.rss_after_kb,
        "rss_end_kb": o.rss_end_kb,
        "kb_per_connection": o.kb_per_connection(),
        "server_cpu_us_per_connect": o.cpu_per_connect(),
        "server_open_files_limit": o.server_fd_limit,
    })
}
