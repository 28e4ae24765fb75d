//! Realtime load against the real server: WebSocket fan-out and durable sends.
//!
//! `cargo bench --bench realtime` starts the `guildhall` binary (built by cargo for this bench,
//! release profile) as a child process on a fresh, migrated Postgres database with rate limits
//! off, registers users over REST, and measures over WebSocket (client read buffer 4 KiB):
//!
//! - fan-out: 1,000 receiving connections in 10 rooms of 100. Each room is the public room of
//!   its own public community; 20 member accounts joined to that community hold 5 connections
//!   each, so membership alone decides the subscription (checked on `ready`). One sender per
//!   room (the community owner, on its own connection, unsubscribed so it only gets acks) sends
//!   at a fixed total rate for 10 s. Every receiver counts what it got against what its room's
//!   sender had acked (loss), checks seq order, and takes the end-to-end latency from the send
//!   time embedded in the content (and, to separate fan-out from the commit, the receipt time
//!   minus the time the sender got its ack). Server CPU comes from /proc/<child>/stat, the load
//!   generator's from /proc/self/stat, Postgres' from its processes, the rest from /proc/stat.
//!   A rate counts as sustained with no loss, errors, disconnects or reordering, on schedule,
//!   and drained within 1 s of the last send.
//! - durable sends: N closed-loop senders (WebSocket `send` -> `ack`, and REST `POST`) spread
//!   over 50 rooms for 10 s: acked messages/s and ack latency, with Postgres'
//!   `synchronous_commit` as the server has it (the default is `on`; the table shows it).
//!
//! Everything is bounded in count and time and stays on loopback; the database is dropped at the
//! end. Without `--bench` (e.g. `cargo test --benches`) it runs a tiny version.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
const PASSWORD: &str = "correct horse battery";
/// Client read buffer (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 4096;
/// How long to wait for acks and deliveries after the last send.
const DRAIN_BOUND: Duration = Duration::from_secs(30);
/// Concurrent registrations (argon2 is deliberately slow; the server has 2 cores).
const REGISTER_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Scale {
    rooms: usize,
    members_per_room: usize,
    receivers_per_room: usize,
    /// Total send rates (messages/s over all rooms), each run in turn.
    rates: &'static [u32],
    run: Duration,
    durable_rooms: usize,
    durable_users: usize,
    durable_concurrency: &'static [usize],
    durable_run: Duration,
    /// Bound of the whole benchmark.
    total: Duration,
}

const FULL: Scale = Scale {
    rooms: 10,
    members_per_room: 20,
    receivers_per_room: 100,
    rates: &[2_000, 1_000, 500],
    run: Duration::from_secs(10),
    durable_rooms: 50,
    durable_users: 16,
    durable_concurrency: &[16, 128],
    durable_run: Duration::from_secs(10),
    total: Duration::from_secs(20 * 60),
};

const SMOKE: Scale = Scale {
    rooms: 2,
    members_per_room: 2,
    receivers_per_room: 4,
    rates: &[40],
    run: Duration::from_secs(1),
    durable_rooms: 4,
    durable_users: 2,
    durable_concurrency: &[4],
    durable_run: Duration::from_secs(1),
    total: Duration::from_secs(180),
};

/// One clock for the whole process: send times travel in message content as ns since `T0`.
static T0: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ns() -> u64 {
    T0.elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------------------
// Database (same steps as tests/api/helpers.rs: admin URL, fresh database, migrations).

fn admin_url() -> String {
    std::env::var("GUILDHALL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://guildhall:guildhall@127.0.0.1:5432/postgres".to_owned())
}

/// `postgres://.../postgres` -> `postgres://.../<name>`.
fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

async fn admin_connection() -> DatabaseConnection {
    let mut options = ConnectOptions::new(admin_url());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .expect("connect to the admin database")
}

/// Creates and migrates a fresh database; returns its name.
async fn create_database() -> String {
    let admin = admin_connection().await;
    let name = format!("gh_bench_{}", Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the bench database");
    admin.close().await.unwrap();
    let mut options = ConnectOptions::new(database_url(&name));
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    guildhall::db::migrate_up(&db, None)
        .await
        .expect("migrations apply");
    db.close().await.unwrap();
    name
}

async fn drop_database(name: &str) {
    let admin = admin_connection().await;
    let dropped = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    if let Err(err) = dropped {
        eprintln!("realtime bench: could not drop database {name}: {err}");
    }
    admin.close().await.unwrap();
}

/// `SHOW <setting>` on the bench database (the server's sessions use the same default).
async fn show_setting(database: &str, setting: &str) -> String {
    let mut options = ConnectOptions::new(database_url(database));
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SHOW {setting}"),
        ))
        .await
        .unwrap()
        .expect("SHOW answers a row");
    let value: String = row.try_get_by_index(0).unwrap();
    db.close().await.unwrap();
    value
}

// ---------------------------------------------------------------------------------------------
// The server, as a child process (so its CPU is measured apart from the load generator's).

static CLK_TCK: LazyLock<u64> = LazyLock::new(|| {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
});

/// utime + stime of a process (all its threads), in microseconds.
fn cpu_us(pid: Option<u32>) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(11) + field(12)) * 1_000_000 / *CLK_TCK
}

/// Busy CPU time of the whole machine (all CPUs) from /proc/stat, in microseconds.
fn machine_busy_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy * 1_000_000 / *CLK_TCK
}

/// CPU of every `postgres` process (the local server and all its backends), by pid.
fn postgres_us() -> HashMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .map(|pid| (pid, cpu_us(Some(pid))))
        .collect()
}

/// CPU counters at one instant.
struct CpuSnapshot {
    at: Instant,
    server: u64,
    client: u64,
    postgres: HashMap<u32, u64>,
    machine: u64,
}

/// CPU used between two snapshots, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    wall: Duration,
    server: u64,
    client: u64,
    /// Backends that exited in between are missed; ones that started count from zero.
    postgres: u64,
    machine: u64,
}

impl CpuSnapshot {
    fn take(server: &Server) -> Self {
        Self {
            at: Instant::now(),
            server: server.cpu_us(),
            client: cpu_us(None),
            postgres: postgres_us(),
            machine: machine_busy_us(),
        }
    }

    fn since(&self, server: &Server) -> CpuUse {
        let now = Self::take(server);
        CpuUse {
            wall: now.at - self.at,
            server: now.server.saturating_sub(self.server),
            client: now.client.saturating_sub(self.client),
            postgres: now
                .postgres
                .iter()
                .map(|(pid, us)| us.saturating_sub(self.postgres.get(pid).copied().unwrap_or(0)))
                .sum(),
            machine: now.machine.saturating_sub(self.machine),
        }
    }
}

impl CpuUse {
    fn cores(&self, us: u64) -> f64 {
        us as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }

    /// `server / client / postgres / rest of the machine` in cores.
    fn split(&self) -> String {
        let other = self
            .machine
            .saturating_sub(self.server + self.client + self.postgres);
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            self.cores(self.server),
            self.cores(self.client),
            self.cores(self.postgres),
            self.cores(other)
        )
    }
}

struct Server {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    async fn start(database: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log =
            std::env::temp_dir().join(format!("guildhall-bench-{}.log", Uuid::new_v4().simple()));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_guildhall"));
        command.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("GUILDHALL_") {
                command.env_remove(name);
            }
        }
        command
            .env("GUILDHALL_BIND", addr.to_string())
            .env("GUILDHALL_DATABASE_URL", database_url(database))
            .env("GUILDHALL_JWT_SECRET", SECRET)
            .env("GUILDHALL_RATE_LIMITS", "off")
            .env("GUILDHALL_ACCESS_TOKEN_TTL_S", "3600")
            .env("GUILDHALL_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command.spawn().expect("spawn the guildhall binary");
        let pid = child.id().expect("child pid");
        let server = Self {
            child,
            pid,
            addr,
            log,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("http://{addr}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "server not ready within 30 s; log: {}",
                server.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn cpu_us(&self) -> u64 {
        cpu_us(Some(self.pid))
    }

    /// SIGTERM, bounded wait, then the log's warnings and errors.
    async fn stop(mut self) -> (String, Vec<String>) {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        let exit = match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(err)) => format!("wait failed: {err}"),
            Err(_) => {
                let _ = self.child.kill().await;
                "did not stop within 15 s of SIGTERM (killed)".to_owned()
            }
        };
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let notable = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            // Expected: the bench turns rate limits off on purpose.
            .filter(|l| !l.contains("RATE_LIMITS=off"))
            .map(str::to_owned)
            .collect();
        let _ = std::fs::remove_file(&self.log);
        (exit, notable)
    }
}

// ---------------------------------------------------------------------------------------------
// REST.

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

#[derive(Debug, Clone)]
struct Account {
    token: String,
}

impl Api {
    fn new(addr: SocketAddr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A request that must succeed (setup).
    async fn ok(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Value {
        let (status, answer) = self
            .call(method.clone(), path, token, Some(&body))
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        answer
    }

    async fn register(&self, username: String) -> Account {
        let body = self
            .ok(
                Method::POST,
                "/v1/auth/register",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        Account {
            token: body["access_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn register_all(&self, names: Vec<String>) -> Vec<Account> {
        stream::iter(names)
            .map(|name| self.register(name))
            .buffered(REGISTER_CONCURRENCY)
            .collect()
            .await
    }

    /// A public community and `rooms` public rooms in it, owned by `owner`.
    async fn community(&self, owner: &Account, name: &str, rooms: usize) -> (Uuid, Vec<Uuid>) {
        let community = self
            .ok(
                Method::POST,
                "/v1/communities",
                Some(&owner.token),
                json!({"name": name, "visibility": "public"}),
            )
            .await;
        let id: Uuid = community["id"].as_str().unwrap().parse().unwrap();
        let mut room_ids = Vec::with_capacity(rooms);
        for k in 0..rooms {
            let room = self
                .ok(
                    Method::POST,
                    &format!("/v1/communities/{id}/rooms"),
                    Some(&owner.token),
                    json!({"name": format!("room-{k}"), "private": false}),
                )
                .await;
            room_ids.push(room["id"].as_str().unwrap().parse().unwrap());
        }
        (id, room_ids)
    }

    async fn join_all(&self, community: Uuid, members: &[Account]) {
        let path = format!("/v1/communities/{community}/join");
        stream::iter(members)
            .map(|m| self.ok(Method::POST, &path, Some(&m.token), json!({})))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }

    /// Selected counters and histogram sums from `/metrics`.
    async fn metrics(&self) -> Metrics {
        let text = match self.http.get(format!("{}/metrics", self.base)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| -> f64 {
            text.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Metrics {
            batch_sum: value("guildhall_persist_batch_size_sum"),
            batch_count: value("guildhall_persist_batch_size_count"),
            commit_seconds_sum: value("guildhall_persist_seconds_sum"),
            commit_count: value("guildhall_persist_seconds_count"),
            slow_consumers: value("guildhall_slow_consumer_disconnects_total"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    batch_sum: f64,
    batch_count: f64,
    commit_seconds_sum: f64,
    commit_count: f64,
    slow_consumers: f64,
}

impl Metrics {
    fn mean_commit_since(&self, before: &Self) -> Duration {
        let count = self.commit_count - before.commit_count;
        if count > 0.0 {
            Duration::from_secs_f64((self.commit_seconds_sum - before.commit_seconds_sum) / count)
        } else {
            Duration::ZERO
        }
    }

    fn mean_batch_since(&self, before: &Self) -> f64 {
        let count = self.batch_count - before.batch_count;
        if count > 0.0 {
            (self.batch_sum - before.batch_sum) / count
        } else {
            0.0
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket.

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr, token: &str) -> (Ws, Value) {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let url = format!("ws://{addr}/v1/ws?token={token}");
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async_with_config(url, Some(config), true),
    )
    .await
    .expect("ws connects within 20 s")
    .expect("ws connects");
    let ready = next_json(&mut ws, Duration::from_secs(20))
        .await
        .expect("a ready frame");
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

/// The next text frame as JSON, or `None` on close, error or timeout.
async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(within, ws.next()).await.ok()??.ok()? {
            Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Skips other frames until one of type `kind` (10 s bound).
async fn expect_frame(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = next_json(ws, left)
            .await
            .unwrap_or_else(|| panic!("no {kind} frame within 10 s"));
        if frame["type"] == kind {
            return frame;
        }
    }
}

fn uuids(value: &Value) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

fn heartbeat_of(ready: &Value) -> Duration {
    Duration::from_millis(ready["heartbeat_interval_ms"].as_u64().unwrap_or(10_000))
}

fn text_frame(value: &Value) -> Message {
    Message::Text(value.to_string().into())
}

async fn unsubscribe_all(ws: &mut Ws, ready: &Value) {
    ws.send(text_frame(
        &json!({"type": "unsubscribe", "room_ids": ready["room_ids"]}),
    ))
    .await
    .expect("unsubscribe sent");
    expect_frame(ws, "unsubscribed").await;
}

/// Fan-out content: `b <run> <send time ns> <k> ...`, so receivers can compute latency.
fn fanout_content(run: u64, sent_ns: u64, room: usize, k: u64) -> String {
    format!("b {run} {sent_ns} {k} room {room} lorem ipsum dolor sit amet")
}

/// What a fan-out message carries: its run, send time and index within the run.
#[derive(Debug, Clone, Copy)]
struct Tag {
    run: u64,
    sent_ns: u64,
    k: u32,
}

fn parse_content(content: &str) -> Option<Tag> {
    let mut words = content.strip_prefix("b ")?.split(' ');
    Some(Tag {
        run: words.next()?.parse().ok()?,
        sent_ns: words.next()?.parse().ok()?,
        k: words.next()?.parse().ok()?,
    })
}

/// `(seq, tag)` of a `message.created` frame, without a full JSON parse when the frame
/// has its usual shape (the load generator shares the 2 cores with the server).
fn parse_created(text: &str) -> Option<(i64, Tag)> {
    const SEQ: &str = r#""seq":"#;
    const CONTENT: &str = r#""content":""#;
    let rest = text.strip_prefix(r#"{"type":"message.created""#)?;
    let seq_text = &rest[rest.find(SEQ)? + SEQ.len()..];
    let seq = seq_text[..seq_text.find(|c: char| !c.is_ascii_digit())?]
        .parse()
        .ok()?;
    let content = &rest[rest.find(CONTENT)? + CONTENT.len()..];
    Some((seq, parse_content(content)?))
}

/// Same, from a parsed frame (the fallback when the fast path does not recognize the shape).
fn created_from_value(frame: &Value) -> Option<(i64, Tag)> {
    if frame["type"] != "message.created" {
        return None;
    }
    let message = &frame["message"];
    let tag = parse_content(message["content"].as_str()?)?;
    Some((message["seq"].as_i64()?, tag))
}

// ---------------------------------------------------------------------------------------------
// Fan-out: receivers.

#[derive(Debug, Default)]
struct RecvStats {
    run: u64,
    count: u64,
    /// (k, sent ns, received ns) of this run's messages.
    received: Vec<(u32, u64, u64)>,
    last_ns: u64,
    /// Last seq seen in the room (kept across runs; reset on reconnect).
    last_seq: Option<i64>,
    /// Frames whose seq was not last + 1.
    disorder: u64,
    errors: Vec<String>,
    closed: Option<String>,
}

impl RecvStats {
    fn reset(&mut self, run: u64) {
        self.run = run;
        self.count = 0;
        self.received.clear();
        self.last_ns = 0;
        self.disorder = 0;
        self.errors.clear();
    }

    fn on_frame(&mut self, text: &str) {
        let now = now_ns();
        let created = parse_created(text).or_else(|| {
            let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if frame["type"] == "error" && self.errors.len() < 10 {
                self.errors
                    .push(format!("{}: {}", frame["code"], frame["message"]));
            }
            created_from_value(&frame)
        });
        let Some((seq, tag)) = created else {
            return;
        };
        if self.last_seq.is_some_and(|last| seq != last + 1) {
            self.disorder += 1;
        }
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
        if tag.run == self.run {
            self.count += 1;
            self.received.push((tag.k, tag.sent_ns, now));
            self.last_ns = now;
        }
    }
}

async fn receive(
    ws: Ws,
    heartbeat: Duration,
    stats: Arc<Mutex<RecvStats>>,
    stop: CancellationToken,
) {
    let (mut sink, mut stream) = ws.split();
    let mut tick = tokio::time::interval(heartbeat);
    tick.tick().await;
    let beat = text_frame(&json!({"type": "heartbeat"}));
    let reason = loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            _ = tick.tick() => {
                if let Err(err) = sink.send(beat.clone()).await {
                    break format!("heartbeat failed: {err}");
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    stats.lock().expect("stats").on_frame(text.as_str());
                }
                Some(Ok(Message::Close(close))) => {
                    break format!("closed by server: {}", close.map_or_else(
                        || "no close frame".to_owned(),
                        |c| format!("{} {}", u16::from(c.code), c.reason),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => break format!("read error: {err}"),
                None => break "stream ended".to_owned(),
            },
        }
    };
    stats.lock().expect("stats").closed = Some(reason);
}

struct Slot {
    room_index: usize,
    token: String,
    stats: Arc<Mutex<RecvStats>>,
}

impl Slot {
    /// Connects, checks that membership subscribed exactly this room, and starts receiving.
    async fn open(&self, addr: SocketAddr, room: Uuid, stop: &CancellationToken) {
        let (ws, ready) = connect(addr, &self.token).await;
        assert_eq!(
            uuids(&ready["room_ids"]),
            vec![room],
            "a member's session follows exactly its community's room: {ready}"
        );
        {
            let mut stats = self.stats.lock().expect("stats");
            stats.closed = None;
            stats.last_seq = None;
        }
        tokio::spawn(receive(
            ws,
            heartbeat_of(&ready),
            self.stats.clone(),
            stop.clone(),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Fan-out: senders.

#[derive(Debug, Default)]
struct SendStats {
    run: u64,
    sent: u64,
    acked: u64,
    errors: BTreeMap<String, u64>,
    ack_lat_us: Vec<i64>,
    /// When the ack of message k arrived (ns; 0 = not acked).
    ack_at: Vec<u64>,
    first_send_ns: u64,
    last_send_ns: u64,
    /// Largest delay of a send behind its schedule.
    max_behind: Duration,
    closed: Option<String>,
}

impl SendStats {
    fn reset(&mut self, run: u64) {
        *self = Self {
            run,
            closed: self.closed.take(),
            ..Self::default()
        };
    }
}

struct Burst {
    run: u64,
    rate: f64,
    count: u64,
    start: tokio::time::Instant,
    done: oneshot::Sender<()>,
}

struct Sender {
    room: Uuid,
    bursts: mpsc::Sender<Burst>,
    stats: Arc<Mutex<SendStats>>,
}

/// Writes scheduled sends (and heartbeats between bursts).
async fn send_loop(
    mut sink: SplitSink<Ws, Message>,
    mut bursts: mpsc::Receiver<Burst>,
    (room, room_index): (Uuid, usize),
    heartbeat: Duration,
    stats: Arc<Mutex<SendStats>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(heartbeat);
    let beat = text_frame(&json!({"type": "heartbeat"}));
    loop {
        let burst = tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            _ = tick.tick() => {
                let _ = sink.send(beat.clone()).await;
                continue;
            }
            burst = bursts.recv() => match burst {
                Some(burst) => burst,
                None => return,
            },
        };
        for k in 0..burst.count {
            let at = burst.start + Duration::from_secs_f64(k as f64 / burst.rate);
            tokio::time::sleep_until(at).await;
            let behind = tokio::time::Instant::now().saturating_duration_since(at);
            let sent_ns = now_ns();
            let frame = json!({
                "type": "send",
                "room_id": room,
                "client_msg_id": format!("r{}-{k}", burst.run),
                "content": fanout_content(burst.run, sent_ns, room_index, k),
            });
            if sink.send(text_frame(&frame)).await.is_err() {
                break;
            }
            let mut stats = stats.lock().expect("stats");
            stats.sent += 1;
            if stats.first_send_ns == 0 {
                stats.first_send_ns = sent_ns;
            }
            stats.last_send_ns = sent_ns;
            stats.max_behind = stats.max_behind.max(behind);
        }
        let _ = burst.done.send(());
    }
}

/// Reads acks and errors for the sender.
async fn ack_loop(mut stream: SplitStream<Ws>, stats: Arc<Mutex<SendStats>>) {
    let reason = loop {
        let text = match stream.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) => break "closed by server".to_owned(),
            Some(Ok(_)) => continue,
            Some(Err(err)) => break format!("read error: {err}"),
            None => break "stream ended".to_owned(),
        };
        let now = now_ns();
        let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        let run_of = |id: &Value| -> Option<u64> {
            id.as_str()?
                .strip_prefix('r')?
                .split_once('-')?
                .0
                .parse()
                .ok()
        };
        let mut stats = stats.lock().expect("stats");
        match frame["type"].as_str() {
            Some("ack") if run_of(&frame["client_msg_id"]) == Some(stats.run) => {
                stats.acked += 1;
                if let Some(tag) = frame["message"]["content"].as_str().and_then(parse_content) {
                    stats.ack_lat_us.push(micros(now, tag.sent_ns));
                    let k = tag.k as usize;
                    if stats.ack_at.len() <= k {
                        stats.ack_at.resize(k + 1, 0);
                    }
                    stats.ack_at[k] = now;
                }
            }
            Some("error") if run_of(&frame["ref"]) == Some(stats.run) => {
                let code = frame["code"].as_str().unwrap_or("?").to_owned();
                *stats.errors.entry(code).or_default() += 1;
            }
            _ => {}
        }
    };
    stats.lock().expect("stats").closed = Some(reason);
}

// ---------------------------------------------------------------------------------------------
// Fan-out: the coordinator.

struct Fanout {
    addr: SocketAddr,
    rooms: Vec<Uuid>,
    slots: Vec<Slot>,
    senders: Vec<Sender>,
    users: usize,
    register_time: Duration,
    connect_time: Duration,
    stop: CancellationToken,
    next_run: u64,
}

#[derive(Debug)]
struct RateResult {
    target: u32,
    sent: u64,
    acked: u64,
    send_errors: BTreeMap<String, u64>,
    sender_closed: Vec<String>,
    expected: u64,
    delivered: u64,
    lost: u64,
    extra: u64,
    disorder: u64,
    disconnects: BTreeMap<String, u64>,
    receiver_errors: Vec<String>,
    send_rate: f64,
    delivery_rate: f64,
    latency: Percentiles,
    ack_latency: Percentiles,
    /// Receipt at a receiver minus receipt of the ack at the sender: the fan-out part.
    after_ack: Percentiles,
    max_behind: Duration,
    /// Last delivery after the last send.
    tail: Duration,
    cpu: CpuUse,
    mean_batch: f64,
    mean_commit: Duration,
    slow_consumers: f64,
    sustained: bool,
}

impl Fanout {
    async fn setup(api: &Api, addr: SocketAddr, scale: Scale) -> Self {
        let started = Instant::now();
        let owners = api
            .register_all((0..scale.rooms).map(|i| format!("owner-{i}")).collect())
            .await;
        let members = api
            .register_all(
                (0..scale.rooms * scale.members_per_room)
                    .map(|i| format!("fan-{i}"))
                    .collect(),
            )
            .await;
        let register_time = started.elapsed();
        let mut rooms = Vec::with_capacity(scale.rooms);
        for (i, owner) in owners.iter().enumerate() {
            let (community, room) = api.community(owner, &format!("Fan-out {i}"), 1).await;
            let start = i * scale.members_per_room;
            api.join_all(community, &members[start..start + scale.members_per_room])
                .await;
            rooms.push(room[0]);
        }
        let stop = CancellationToken::new();
        let slots: Vec<Slot> = (0..scale.rooms)
            .flat_map(|room_index| {
                let members = &members;
                (0..scale.receivers_per_room).map(move |j| Slot {
                    room_index,
                    token: members
                        [room_index * scale.members_per_room + j % scale.members_per_room]
                        .token
                        .clone(),
                    stats: Arc::default(),
                })
            })
            .collect();
        let connecting = Instant::now();
        stream::iter(&slots)
            .map(|slot| slot.open(addr, rooms[slot.room_index], &stop))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        let mut senders = Vec::with_capacity(scale.rooms);
        for (room_index, owner) in owners.iter().enumerate() {
            let room = rooms[room_index];
            let (mut ws, ready) = connect(addr, &owner.token).await;
            assert_eq!(uuids(&ready["room_ids"]), vec![room], "{ready}");
            unsubscribe_all(&mut ws, &ready).await;
            let (sink, stream) = ws.split();
            let (bursts, queue) = mpsc::channel(1);
            let stats: Arc<Mutex<SendStats>> = Arc::default();
            tokio::spawn(send_loop(
                sink,
                queue,
                (room, room_index),
                heartbeat_of(&ready),
                stats.clone(),
                stop.clone(),
            ));
            tokio::spawn(ack_loop(stream, stats.clone()));
            senders.push(Sender {
                room,
                bursts,
                stats,
            });
        }
        Self {
            addr,
            rooms,
            slots,
            senders,
            users: owners.len() + members.len(),
            register_time,
            connect_time: connecting.elapsed(),
            stop,
            next_run: 1,
        }
    }

    /// Reconnects receivers a previous run lost (e.g. cut off as slow consumers).
    async fn revive(&self) -> usize {
        let dead: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| s.stats.lock().expect("stats").closed.is_some())
            .collect();
        let count = dead.len();
        stream::iter(dead)
            .map(|slot| slot.open(self.addr, self.rooms[slot.room_index], &self.stop))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        count
    }

    async fn run(
        &mut self,
        api: &Api,
        server: &Server,
        rate: u32,
        duration: Duration,
    ) -> RateResult {
        let run = self.next_run;
        self.next_run += 1;
        for slot in &self.slots {
            slot.stats.lock().expect("stats").reset(run);
        }
        for sender in &self.senders {
            sender.stats.lock().expect("stats").reset(run);
        }
        let per_sender = f64::from(rate) / self.senders.len() as f64;
        let count = (per_sender * duration.as_secs_f64()).round() as u64;
        let metrics_before = api.metrics().await;
        let cpu = CpuSnapshot::take(server);
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let start_ns = now_ns() + 100_000_000;
        let mut done = Vec::new();
        for sender in &self.senders {
            let (tx, rx) = oneshot::channel();
            sender
                .bursts
                .send(Burst {
                    run,
                    rate: per_sender,
                    count,
                    start,
                    done: tx,
                })
                .await
                .expect("sender task alive");
            done.push(rx);
        }
        for rx in done {
            let _ = tokio::time::timeout(duration + DRAIN_BOUND, rx).await;
        }
        // Acks first (what was stored), then every receiver has what its room stored.
        let drain = Instant::now() + DRAIN_BOUND;
        while Instant::now() < drain
            && !self.senders.iter().all(|s| {
                let s = s.stats.lock().expect("stats");
                s.closed.is_some() || s.acked + s.errors.values().sum::<u64>() >= s.sent
            })
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let acked_by_room: HashMap<Uuid, u64> = self
            .senders
            .iter()
            .map(|s| (s.room, s.stats.lock().expect("stats").acked))
            .collect();
        let expected_of = |slot: &Slot| acked_by_room[&self.rooms[slot.room_index]];
        while Instant::now() < drain
            && !self.slots.iter().all(|slot| {
                let s = slot.stats.lock().expect("stats");
                s.closed.is_some() || s.count >= expected_of(slot)
            })
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu = cpu.since(server);
        let metrics_after = api.metrics().await;

        let mut result = RateResult {
            target: rate,
            sent: 0,
            acked: 0,
            send_errors: BTreeMap::new(),
            sender_closed: Vec::new(),
            expected: 0,
            delivered: 0,
            lost: 0,
            extra: 0,
            disorder: 0,
            disconnects: BTreeMap::new(),
            receiver_errors: Vec::new(),
            send_rate: 0.0,
            delivery_rate: 0.0,
            latency: Percentiles::default(),
            ack_latency: Percentiles::default(),
            after_ack: Percentiles::default(),
            max_behind: Duration::ZERO,
            tail: Duration::ZERO,
            cpu,
            mean_batch: metrics_after.mean_batch_since(&metrics_before),
            mean_commit: metrics_after.mean_commit_since(&metrics_before),
            slow_consumers: metrics_after.slow_consumers - metrics_before.slow_consumers,
            sustained: false,
        };
        let (mut first_send, mut last_send) = (u64::MAX, 0);
        let mut ack_lat = Vec::new();
        let mut ack_at = Vec::with_capacity(self.senders.len());
        for sender in &self.senders {
            let mut s = sender.stats.lock().expect("stats");
            result.sent += s.sent;
            result.acked += s.acked;
            for (code, n) in &s.errors {
                *result.send_errors.entry(code.clone()).or_default() += n;
            }
            if let Some(closed) = &s.closed {
                result.sender_closed.push(closed.clone());
            }
            first_send = first_send.min(s.first_send_ns);
            last_send = last_send.max(s.last_send_ns);
            result.max_behind = result.max_behind.max(s.max_behind);
            ack_lat.append(&mut s.ack_lat_us);
            ack_at.push(std::mem::take(&mut s.ack_at));
        }
        let mut latencies = Vec::with_capacity(self.slots.len() * count as usize);
        let mut after_ack = Vec::with_capacity(self.slots.len() * count as usize);
        let mut last_delivery = 0;
        for slot in &self.slots {
            let expected = expected_of(slot);
            let mut s = slot.stats.lock().expect("stats");
            result.expected += expected;
            result.delivered += s.count;
            result.lost += expected.saturating_sub(s.count);
            result.extra += s.count.saturating_sub(expected);
            result.disorder += s.disorder;
            if let Some(reason) = &s.closed {
                *result.disconnects.entry(reason.clone()).or_default() += 1;
            }
            for error in &s.errors {
                if result.receiver_errors.len() < 10 {
                    result.receiver_errors.push(error.clone());
                }
            }
            last_delivery = last_delivery.max(s.last_ns);
            let acks = &ack_at[slot.room_index];
            for &(k, sent, received) in &s.received {
                latencies.push(micros(received, sent));
                if let Some(&acked) = acks.get(k as usize).filter(|&&at| at > 0) {
                    after_ack.push(micros(received, acked));
                }
            }
            s.received = Vec::new();
        }
        result.latency = Percentiles::of(latencies);
        result.after_ack = Percentiles::of(after_ack);
        result.ack_latency = Percentiles::of(ack_lat);
        let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
        // Over the schedule's span: n sends at rate r span (n - 1) / r, plus one interval.
        let interval = 1.0 / per_sender;
        result.send_rate = result.acked as f64 / (secs(start_ns, last_send) + interval);
        result.delivery_rate = result.delivered as f64 / (secs(start_ns, last_delivery) + interval);
        result.tail = Duration::from_nanos(last_delivery.saturating_sub(last_send));
        result.sustained = result.lost == 0
            && result.extra == 0
            && result.disorder == 0
            && result.send_errors.is_empty()
            && result.sender_closed.is_empty()
            && result.disconnects.is_empty()
            && result.acked == result.sent
            && result.sent == count * self.senders.len() as u64
            && result.send_rate >= 0.97 * f64::from(rate)
            && result.tail < Duration::from_secs(1);
        result
    }
}

// ---------------------------------------------------------------------------------------------
// Durable sends.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    WebSocket,
    Rest,
}

#[derive(Debug, Default)]
struct WorkerStats {
    acked: u64,
    errors: BTreeMap<String, u64>,
    lat_us: Vec<i64>,
}

#[derive(Debug)]
struct DurableResult {
    transport: Transport,
    concurrency: usize,
    acked: u64,
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
    latency: Percentiles,
    cpu: CpuUse,
    mean_batch: f64,
    mean_commit: Duration,
}

struct Durable {
    rooms: Arc<Vec<Uuid>>,
    users: Vec<Account>,
}

impl Durable {
    async fn setup(api: &Api, scale: Scale) -> Self {
        let owner = api.register("durable-owner".to_owned()).await;
        let users = api
            .register_all(
                (0..scale.durable_users)
                    .map(|i| format!("dur-{i}"))
                    .collect(),
            )
            .await;
        let (community, rooms) = api.community(&owner, "Durable", scale.durable_rooms).await;
        api.join_all(community, &users).await;
        Self {
            rooms: Arc::new(rooms),
            users,
        }
    }

    async fn run(
        &self,
        api: &Api,
        server: &Server,
        transport: Transport,
        concurrency: usize,
        duration: Duration,
    ) -> DurableResult {
        // Connections first (WebSocket: unsubscribed, so only acks come back), then all start.
        let mut sockets = Vec::new();
        if transport == Transport::WebSocket {
            sockets = stream::iter(0..concurrency)
                .map(|i| async move {
                    let (mut ws, ready) =
                        connect(api.base_addr(), &self.users[i % self.users.len()].token).await;
                    unsubscribe_all(&mut ws, &ready).await;
                    ws
                })
                .buffered(16)
                .collect()
                .await;
        }
        let metrics_before = api.metrics().await;
        let cpu = CpuSnapshot::take(server);
        let started = Instant::now();
        let deadline = started + duration;
        let mut workers = Vec::with_capacity(concurrency);
        match transport {
            Transport::WebSocket => {
                for (i, ws) in sockets.into_iter().enumerate() {
                    workers.push(tokio::spawn(ws_worker(ws, i, self.rooms.clone(), deadline)));
                }
            }
            Transport::Rest => {
                for i in 0..concurrency {
                    let token = self.users[i % self.users.len()].token.clone();
                    workers.push(tokio::spawn(rest_worker(
                        api.clone(),
                        token,
                        i,
                        self.rooms.clone(),
                        deadline,
                    )));
                }
            }
        }
        let mut total = WorkerStats::default();
        for worker in workers {
            let mut stats = worker.await.expect("worker finished");
            total.acked += stats.acked;
            for (code, n) in stats.errors {
                *total.errors.entry(code).or_default() += n;
            }
            total.lat_us.append(&mut stats.lat_us);
        }
        let elapsed = started.elapsed();
        let cpu = cpu.since(server);
        let metrics_after = api.metrics().await;
        DurableResult {
            transport,
            concurrency,
            acked: total.acked,
            errors: total.errors,
            elapsed,
            latency: Percentiles::of(total.lat_us),
            cpu,
            mean_batch: metrics_after.mean_batch_since(&metrics_before),
            mean_commit: metrics_after.mean_commit_since(&metrics_before),
        }
    }
}

impl Api {
    fn base_addr(&self) -> SocketAddr {
        self.base
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .expect("base is http://<addr>")
    }
}

/// Closed loop: send, wait for the ack (or error), repeat until the deadline.
async fn ws_worker(
    mut ws: Ws,
    index: usize,
    rooms: Arc<Vec<Uuid>>,
    deadline: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut k = 0;
    while Instant::now() < deadline {
        let id = format!("w{index}-{k}");
        let frame = json!({
            "type": "send",
            "room_id": rooms[(index + k) % rooms.len()],
            "client_msg_id": id,
            "content": format!("durable {index} {k} lorem ipsum dolor sit amet"),
        });
        let sent = Instant::now();
        if ws.send(text_frame(&frame)).await.is_err() {
            *stats.errors.entry("socket closed".into()).or_default() += 1;
            return stats;
        }
        loop {
            let Some(answer) = next_json(&mut ws, Duration::from_secs(10)).await else {
                *stats
                    .errors
                    .entry("no ack within 10 s / closed".into())
                    .or_default() += 1;
                return stats;
            };
            if answer["type"] == "ack" && answer["client_msg_id"] == id.as_str() {
                stats.acked += 1;
                stats.lat_us.push(sent.elapsed().as_micros() as i64);
                break;
            }
            if answer["type"] == "error" && answer["ref"] == id.as_str() {
                let code = answer["code"].as_str().unwrap_or("?").to_owned();
                *stats.errors.entry(code).or_default() += 1;
                break;
            }
        }
        k += 1;
    }
    let _ = ws.close(None).await;
    stats
}

async fn rest_worker(
    api: Api,
    token: String,
    index: usize,
    rooms: Arc<Vec<Uuid>>,
    deadline: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut k = 0;
    while Instant::now() < deadline {
        let room = rooms[(index + k) % rooms.len()];
        let body = json!({
            "content": format!("durable {index} {k} lorem ipsum dolor sit amet"),
            "client_msg_id": format!("h{index}-{k}"),
        });
        let sent = Instant::now();
        match api
            .call(
                Method::POST,
                &format!("/v1/rooms/{room}/messages"),
                Some(&token),
                Some(&body),
            )
            .await
        {
            Ok((StatusCode::CREATED, _)) => {
                stats.acked += 1;
                stats.lat_us.push(sent.elapsed().as_micros() as i64);
            }
            Ok((status, answer)) => {
                let code = format!("{status} {}", answer["code"].as_str().unwrap_or("?"));
                *stats.errors.entry(code).or_default() += 1;
            }
            Err(err) => {
                *stats
                    .errors
                    .entry(format!("request failed: {err}"))
                    .or_default() += 1;
            }
        }
        k += 1;
    }
    stats
}

// ---------------------------------------------------------------------------------------------
// Reporting.

#[derive(Debug, Default, Clone, Copy)]
struct Percentiles {
    p50: i64,
    p99: i64,
    p999: i64,
    max: i64,
}

impl Percentiles {
    fn of(mut samples_us: Vec<i64>) -> Self {
        if samples_us.is_empty() {
            return Self::default();
        }
        samples_us.sort_unstable();
        let at = |q: f64| samples_us[((samples_us.len() - 1) as f64 * q).round() as usize];
        Self {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples_us[samples_us.len() - 1],
        }
    }

    fn short(&self) -> String {
        format!(
            "{} / {} / {} / {}",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// `to - from` (ns) in whole microseconds, negative when `to` is earlier.
fn micros(to: u64, from: u64) -> i64 {
    (to as i64 - from as i64) / 1_000
}

fn ms(us: i64) -> String {
    if us.abs() < 10_000 {
        format!("{:.2} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.0} ms", us as f64 / 1_000.0)
    }
}

fn per(cpu_us: u64, n: u64) -> String {
    if n == 0 {
        "-".to_owned()
    } else {
        format!("{:.2}", cpu_us as f64 / n as f64)
    }
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "0".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_owned();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), MemTotal {mem} kB, load average at start {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

async fn bench(scale: Scale, database: String) -> String {
    let machine = machine();
    let synchronous_commit = show_setting(&database, "synchronous_commit").await;
    let server = Server::start(&database).await;
    let api = Api::new(server.addr);
    let mut out = String::new();

    let mut fanout = Fanout::setup(&api, server.addr, scale).await;
    let mut results = Vec::new();
    let mut revived = Vec::new();
    for &rate in scale.rates {
        revived.push(fanout.revive().await);
        results.push(fanout.run(&api, &server, rate, scale.run).await);
    }
    fanout.stop.cancel();

    let durable = Durable::setup(&api, scale).await;
    let mut durable_results = Vec::new();
    for &concurrency in scale.durable_concurrency {
        for transport in [Transport::WebSocket, Transport::Rest] {
            durable_results.push(
                durable
                    .run(&api, &server, transport, concurrency, scale.durable_run)
                    .await,
            );
        }
    }
    let metrics = api.metrics().await;
    let (exit, notable) = server.stop().await;

    let _ = writeln!(out, "\n## Realtime load\n");
    let _ = writeln!(out, "| setup | value |\n|---|---|");
    let _ = writeln!(out, "| machine | {machine} |");
    let _ = writeln!(
        out,
        "| server | `guildhall serve` child process ({} build), single node, rate_limits=off, synchronous_commit={synchronous_commit} |",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let _ = writeln!(
        out,
        "| fan-out shape | {} rooms × {} receiving connections ({} member accounts per room) + {} sender connections; client read buffer {READ_BUFFER} B |",
        scale.rooms, scale.receivers_per_room, scale.members_per_room, scale.rooms
    );
    let _ = writeln!(
        out,
        "| registration ({} accounts, {REGISTER_CONCURRENCY} at a time) | {:.1} s |",
        fanout.users,
        fanout.register_time.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| {} WebSocket connects (to `ready`, 32 at a time) | {:.2} s |",
        fanout.slots.len(),
        fanout.connect_time.as_secs_f64()
    );

    let _ = writeln!(
        out,
        "\n**Fan-out** ({} s per rate; latency = send frame written -> `message.created` read, includes the durable commit)\n",
        scale.run.as_secs()
    );
    let _ = writeln!(
        out,
        "| target msg/s (deliveries/s) | acked msg/s | delivered/s | lost / expected | disconnects | e2e p50 / p99 / p99.9 / max | ack p50 / p99 | receipt minus ack p50 / p99 | tail after last send | sustained |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (r, reconnected) in results.iter().zip(&revived) {
        let disconnects: u64 = r.disconnects.values().sum();
        let _ = writeln!(
            out,
            "| {} ({}) | {:.0} | {:.0} | {} / {} | {disconnects}{} | {} | {} / {} | {} / {} | {} ms | {} |",
            r.target,
            u64::from(r.target) * scale.receivers_per_room as u64,
            r.send_rate,
            r.delivery_rate,
            r.lost,
            r.expected,
            if *reconnected > 0 {
                format!(" ({reconnected} reconnected before)")
            } else {
                String::new()
            },
            r.latency.short(),
            ms(r.ack_latency.p50),
            ms(r.ack_latency.p99),
            ms(r.after_ack.p50),
            ms(r.after_ack.p99),
            r.tail.as_millis(),
            if r.sustained { "yes" } else { "no" },
        );
    }
    let _ = writeln!(
        out,
        "\n| target msg/s | server CPU µs/delivery | client CPU µs/delivery | Postgres CPU µs/message | cores: server / client / Postgres / rest of machine | mean commit batch (duration) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in &results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1} ({}) |",
            r.target,
            per(r.cpu.server, r.delivered),
            per(r.cpu.client, r.delivered),
            per(r.cpu.postgres, r.acked),
            r.cpu.split(),
            r.mean_batch,
            ms(r.mean_commit.as_micros() as i64),
        );
    }
    for r in &results {
        let problems = [
            (!r.send_errors.is_empty()).then(|| format!("send errors: {}", counts(&r.send_errors))),
            (r.acked != r.sent).then(|| format!("sent {} acked {}", r.sent, r.acked)),
            (!r.sender_closed.is_empty()).then(|| format!("sender closed: {:?}", r.sender_closed)),
            (r.extra > 0).then(|| format!("{} extra deliveries", r.extra)),
            (r.disorder > 0).then(|| format!("{} out-of-order/gap frames", r.disorder)),
            (!r.disconnects.is_empty()).then(|| format!("disconnects: {}", counts(&r.disconnects))),
            (!r.receiver_errors.is_empty())
                .then(|| format!("receiver errors: {:?}", r.receiver_errors)),
            (r.slow_consumers > 0.0)
                .then(|| format!("{} slow-consumer cut-offs (metric)", r.slow_consumers)),
            (r.max_behind > Duration::from_millis(50)).then(|| {
                format!(
                    "senders fell up to {} ms behind schedule",
                    r.max_behind.as_millis()
                )
            }),
        ];
        let problems: Vec<String> = problems.into_iter().flatten().collect();
        if !problems.is_empty() {
            let _ = writeln!(out, "\n- {} msg/s: {}", r.target, problems.join("; "));
        }
    }

    let _ = writeln!(
        out,
        "\n**Durable sends** (closed loop: each sender waits for its ack; {} rooms; {} s each)\n",
        scale.durable_rooms,
        scale.durable_run.as_secs()
    );
    let _ = writeln!(
        out,
        "| transport | senders | acked msg/s | errors | ack p50 / p99 / p99.9 / max | server CPU µs/msg | Postgres CPU µs/msg | cores: server / client / Postgres / rest | mean commit batch (duration) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for d in &durable_results {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} ({}) |",
            match d.transport {
                Transport::WebSocket => "WebSocket send/ack",
                Transport::Rest => "REST POST",
            },
            d.concurrency,
            d.acked as f64 / d.elapsed.as_secs_f64(),
            counts(&d.errors),
            d.latency.short(),
            per(d.cpu.server, d.acked),
            per(d.cpu.postgres, d.acked),
            d.cpu.split(),
            d.mean_batch,
            ms(d.mean_commit.as_micros() as i64),
        );
    }
    let _ = writeln!(
        out,
        "\nServer: slow-consumer cut-offs total {}; exit after SIGTERM: {exit}; {} WARN/ERROR log lines{}",
        metrics.slow_consumers,
        notable.len(),
        if notable.is_empty() {
            String::new()
        } else {
            ":".to_owned()
        }
    );
    for line in notable.iter().take(10) {
        let _ = writeln!(out, "    {line}");
    }
    out
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { FULL } else { SMOKE };
    LazyLock::force(&T0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let database = create_database().await;
        // Not spawned: a panic is caught so the database is dropped anyway; on timeout the
        // future is dropped, which kills the server child (kill_on_drop).
        let outcome = tokio::time::timeout(
            scale.total,
            AssertUnwindSafe(bench(scale, database.clone())).catch_unwind(),
        )
        .await;
        drop_database(&database).await;
        match outcome {
            Ok(Ok(report)) => println!("{report}"),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(elapsed) => panic!(
                "the realtime bench exceeded its {:?} bound: {elapsed}",
                scale.total
            ),
        }
    });
}
