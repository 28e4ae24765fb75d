//! History pages at 10M stored messages (bulk-loaded with COPY), read through the server's
//! `GET /v1/rooms/{id}/messages` and, as the reference, the same SQL straight on Postgres.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Section;
use crate::api::{Account, Api};
use crate::db::{create_database, database_url, drop_database};
use crate::report::{Percentiles, counts, ms, per};
use crate::server::{CpuSnapshot, CpuUse, Server};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};
use uuid::Uuid;

/// Rooms the messages are spread over, round-robin (one room's page is scattered over the heap
/// the way interleaved real traffic is, not one contiguous run).
const ROOMS: usize = 5;
const SENDERS: usize = 4;
const PAGE: i64 = 50;
/// Rows per generated chunk (a few MB of COPY text) and per COPY statement (progress lines;
/// bounds the after-trigger queue when FK checks have to stay on).
const CHUNK_ROWS: u64 = 20_000;
const COPY_ROWS: u64 = 1_000_000;
/// Spacing of `created_at` between consecutive messages.
const STEP_MS: i64 = 100;
const VOCABULARY: u64 = 4096;

/// The endpoint's SQL (src/messages/repo.rs `history`, `reaction_counts`; the repo is private).
const HISTORY_SQL: &str = "SELECT id, room_id, seq, sender_id, content, reply_to, client_msg_id, \
    attachments, mentions, created_at, edited_at, deleted_at, poll_id, survey_id FROM messages \
    WHERE room_id = $1 AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3";
const REACTIONS_SQL: &str = "SELECT message_id, emoji, count(*) AS count FROM reactions \
    WHERE message_id = ANY($1) GROUP BY message_id, emoji ORDER BY message_id, min(created_at)";

pub(crate) async fn run(full: bool) -> Section {
    let mut guard = DatabaseGuard(Some(create_database().await));
    let name = guard.0.clone().unwrap_or_default();
    let section = scenario(&name, full).await;
    guard.drop_now().await;
    section
}

/// Drops the database if the scenario panics or is cancelled by the suite's time bound.
struct DatabaseGuard(Option<String>);

impl DatabaseGuard {
    async fn drop_now(&mut self) {
        if let Some(name) = self.0.take() {
            drop_database(&name).await;
        }
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        let Some(name) = self.0.take() else { return };
        // Drop cannot await: a thread with its own runtime, so this works inside the bench's.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(drop_database(&name)))
        })
        .join();
    }
}

/// Where the rows went, and what loading them cost.
struct Loaded {
    rooms: Arc<Vec<Uuid>>,
    per_room: i64,
    copy: Duration,
    vacuum: Duration,
    bytes: i64,
    how: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// `before` uniform over the whole history (the page ends just below it).
    Random,
    /// No `before`: the newest page.
    Newest,
}

impl Pick {
    fn before(self, rng: &mut StdRng, per_room: i64) -> Option<i64> {
        match self {
            Self::Random => Some(rng.random_range(2..=per_room + 1)),
            Self::Newest => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Random => "random page",
            Self::Newest => "newest page",
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    pages: u64,
    errors: BTreeMap<String, u64>,
    lat_us: Vec<i64>,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.pages += other.pages;
        self.lat_us.extend(other.lat_us);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn error(&mut self, what: String) {
        *self.errors.entry(what).or_default() += 1;
    }
}

struct Measured {
    label: String,
    pick: Pick,
    clients: usize,
    tally: Tally,
    latency: Percentiles,
    cpu: CpuUse,
}

impl Measured {
    fn new(label: String, pick: Pick, clients: usize, mut tally: Tally, cpu: CpuUse) -> Self {
        let latency = Percentiles::of(std::mem::take(&mut tally.lat_us));
        Self {
            label,
            pick,
            clients,
            tally,
            latency,
            cpu,
        }
    }

    fn pages_per_s(&self) -> f64 {
        self.tally.pages as f64 / self.cpu.wall.as_secs_f64().max(1e-9)
    }

    fn json(&self) -> Value {
        let pages = self.tally.pages.max(1) as f64;
        json!({
            "what": self.label,
            "page": self.pick.label(),
            "clients": self.clients,
            "pages": self.tally.pages,
            "pages_per_s": self.pages_per_s(),
            "p50_us": self.latency.p50,
            "p99_us": self.latency.p99,
            "p999_us": self.latency.p999,
            "max_us": self.latency.max,
            "errors": self.tally.errors.values().sum::<u64>(),
            "error_kinds": self.tally.errors,
            "server_cpu_us_per_page": self.cpu.server as f64 / pages,
            "postgres_cpu_us_per_page": self.cpu.postgres as f64 / pages,
        })
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            self.label,
            self.pick.label(),
            self.clients,
            self.pages_per_s(),
            self.latency.short(),
            counts(&self.tally.errors),
            per(self.cpu.server, self.tally.pages),
            per(self.cpu.postgres, self.tally.pages),
        )
    }
}

async fn scenario(database: &str, full: bool) -> Section {
    let total: u64 = if full { 10_000_000 } else { 20_000 };
    let run_for = Duration::from_secs(if full { 10 } else { 1 });
    let server = Server::start(database).await;
    let api = Api::new(server.addr);
    let mut readers = vec![api.register("history-owner".to_owned()).await];
    let others = (1..SENDERS).map(|i| format!("history-{i}")).collect();
    readers.extend(api.register_all(others).await);
    let (community, rooms) = api.community(&readers[0], "History", ROOMS).await;
    api.join_all(community, &readers[1..]).await;

    let mut conn = PgConnection::connect(&database_url(database))
        .await
        .expect("connect to the bench database");
    let loaded = load(&mut conn, rooms, total).await;

    // Warm-up (not recorded): the first pass over the indexes after VACUUM.
    let warm = Duration::from_millis(if full { 2000 } else { 200 });
    http_run(&api, &server, &readers, &loaded, Pick::Random, 4, warm).await;
    let mut runs = Vec::new();
    for (pick, clients) in [(Pick::Random, 1), (Pick::Random, 16), (Pick::Newest, 16)] {
        runs.push(http_run(&api, &server, &readers, &loaded, pick, clients, run_for).await);
    }
    let alone = postgres_run(&mut conn, &server, &loaded, run_for).await;
    conn.close().await.ok();
    let (exit, notable) = server.stop().await;
    render(total, run_for, &loaded, &runs, &alone, (&exit, &notable))
}

/// COPYs `total` messages into `rooms` (seq supplied, the seq trigger skipped), then sets what
/// the trigger would have maintained and VACUUM ANALYZEs. All production indexes stay in place.
async fn load(conn: &mut PgConnection, rooms: Vec<Uuid>, total: u64) -> Loaded {
    let senders: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM users ORDER BY username")
        .fetch_all(&mut *conn)
        .await
        .expect("the bench users");
    let total = total - total % ROOMS as u64;
    let how = skip_seq_trigger(conn).await;
    let base = Utc::now() - chrono::Duration::milliseconds(total as i64 * STEP_MS);
    let started = Instant::now();
    copy_rows(conn, Generator::new(&rooms, &senders, base), total).await;
    let copy = started.elapsed();
    restore_seq_trigger(conn, how).await;

    let started = Instant::now();
    // What messages_assign_seq maintains: the room's last seq and last message time.
    sqlx::raw_sql(
        "UPDATE rooms r SET last_seq = m.seq, last_message_at = m.created_at FROM rooms r2 \
         CROSS JOIN LATERAL (SELECT seq, created_at FROM messages WHERE room_id = r2.id \
         ORDER BY seq DESC LIMIT 1) m WHERE r.id = r2.id",
    )
    .execute(&mut *conn)
    .await
    .expect("rooms.last_seq");
    // Hint bits, visibility map and statistics now, not by autovacuum during the measurement.
    sqlx::raw_sql("VACUUM (ANALYZE) messages")
        .execute(&mut *conn)
        .await
        .expect("vacuum analyze");
    let vacuum = started.elapsed();
    let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('messages')")
        .fetch_one(&mut *conn)
        .await
        .unwrap_or(0);
    Loaded {
        rooms: Arc::new(rooms),
        per_room: (total / ROOMS as u64) as i64,
        copy,
        vacuum,
        bytes,
        how,
    }
}

const REPLICA: &str = "session_replication_role = replica";
const DISABLED: &str = "ALTER TABLE messages DISABLE TRIGGER messages_assign_seq";

/// Replica mode needs superuser (it also skips the FK checks); the table owner can at least
/// disable the one trigger that would overwrite the supplied seq.
async fn skip_seq_trigger(conn: &mut PgConnection) -> &'static str {
    if sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .is_ok()
    {
        return REPLICA;
    }
    sqlx::raw_sql("ALTER TABLE messages DISABLE TRIGGER messages_assign_seq")
        .execute(&mut *conn)
        .await
        .expect("disable the seq trigger");
    DISABLED
}

async fn restore_seq_trigger(conn: &mut PgConnection, how: &str) {
    let sql = if how == REPLICA {
        "RESET session_replication_role"
    } else {
        "ALTER TABLE messages ENABLE TRIGGER messages_assign_seq"
    };
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .expect("restore the seq trigger");
}

/// Streams generated chunks into COPY statements of `COPY_ROWS` rows; generation runs on its
/// own thread so it overlaps with Postgres parsing and indexing.
async fn copy_rows(conn: &mut PgConnection, mut generator: Generator, total: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Vec<u8>)>(4);
    let producer = std::thread::spawn(move || {
        let mut next = 0;
        while next < total {
            let end = (next + CHUNK_ROWS).min(total);
            if tx
                .blocking_send((end - next, generator.chunk(next..end)))
                .is_err()
            {
                break;
            }
            next = end;
        }
    });
    let started = Instant::now();
    let mut done = 0;
    let sql = "COPY messages (id, room_id, seq, sender_id, content, created_at) FROM STDIN";
    // One COPY statement per COPY_ROWS rows, opened when its first chunk is ready.
    while let Some((rows, chunk)) = rx.recv().await {
        let mut writer = conn.copy_in_raw(sql).await.expect("COPY starts");
        writer.send(chunk).await.expect("COPY data");
        let mut in_copy = rows;
        while in_copy < COPY_ROWS {
            let Some((rows, chunk)) = rx.recv().await else {
                break;
            };
            writer.send(chunk).await.expect("COPY data");
            in_copy += rows;
        }
        writer.finish().await.expect("COPY completes");
        done += in_copy;
        let secs = started.elapsed().as_secs_f64();
        eprintln!("bench: history: {done} / {total} messages loaded ({secs:.0} s)");
    }
    producer.join().expect("generator thread");
}

/// Deterministic message rows: row `i` is seq `i / ROOMS + 1` of room `i % ROOMS`.
struct Generator {
    rooms: Vec<String>,
    senders: Vec<String>,
    base: DateTime<Utc>,
    rng: StdRng,
}

impl Generator {
    fn new(rooms: &[Uuid], senders: &[Uuid], base: DateTime<Utc>) -> Self {
        Self {
            rooms: rooms.iter().map(Uuid::to_string).collect(),
            senders: senders.iter().map(Uuid::to_string).collect(),
            base,
            rng: StdRng::seed_from_u64(7),
        }
    }

    /// COPY text for rows `range` (tab-separated; the words need no escaping).
    fn chunk(&mut self, range: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::with_capacity((range.end - range.start) as usize * 180);
        for i in range {
            let at = self.base + chrono::Duration::milliseconds(i as i64 * STEP_MS);
            // Time-ordered ids, as the server's Uuid::now_v7, but at the message's own time.
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                at.timestamp() as u64,
                at.timestamp_subsec_nanos(),
            );
            let room = &self.rooms[i as usize % ROOMS];
            let seq = i / ROOMS as u64 + 1;
            let sender = &self.senders[(i / 3 % self.senders.len() as u64) as usize];
            let _ = write!(out, "{}\t{room}\t{seq}\t{sender}\t", Uuid::new_v7(ts));
            self.content(&mut out);
            let _ = writeln!(out, "\t{}", at.format("%Y-%m-%d %H:%M:%S%.3f+00"));
        }
        out
    }

    /// 4–12 words, skewed toward a few common ones (chat-like lexeme frequencies for the GIN).
    fn content(&mut self, out: &mut Vec<u8>) {
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "ta", "shi", "vo", "de", "pa", "zu", "ge", "bo", "fi",
            "ha", "jo",
        ];
        let words = self.rng.random_range(4..=12);
        for w in 0..words {
            let u: f64 = self.rng.random();
            let k = (u * u * VOCABULARY as f64) as u64;
            if w > 0 {
                out.push(b' ');
            }
            for s in [k >> 8, (k >> 4) & 15, k & 15] {
                out.extend_from_slice(SYLLABLES[s as usize].as_bytes());
            }
        }
    }
}

/// Closed loop through the server: `clients` tasks, each one request at a time until `run_for`.
async fn http_run(
    api: &Api,
    server: &Server,
    readers: &[Account],
    loaded: &Loaded,
    pick: Pick,
    clients: usize,
    run_for: Duration,
) -> Measured {
    let cpu = CpuSnapshot::take(server.pid);
    let deadline = Instant::now() + run_for;
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let (api, rooms) = (api.clone(), loaded.rooms.clone());
            let token = readers[i % readers.len()].token.clone();
            let per_room = loaded.per_room;
            tokio::spawn(http_worker(
                api, token, rooms, per_room, pick, i as u64, deadline,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.expect("history worker"));
    }
    Measured::new(
        "Guildhall".to_owned(),
        pick,
        clients,
        tally,
        cpu.since(server.pid),
    )
}

async fn http_worker(
    api: Api,
    token: String,
    rooms: Arc<Vec<Uuid>>,
    per_room: i64,
    pick: Pick,
    seed: u64,
    deadline: Instant,
) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let room = rooms[rng.random_range(0..rooms.len())];
        let before = pick.before(&mut rng, per_room);
        let query = before.map_or(String::new(), |b| format!("&before={b}"));
        let path = format!("/v1/rooms/{room}/messages?limit={PAGE}{query}");
        let started = Instant::now();
        let answer = api.call(Method::GET, &path, Some(&token), None).await;
        tally.lat_us.push(started.elapsed().as_micros() as i64);
        match answer {
            Ok((StatusCode::OK, body)) => {
                let seqs: Vec<i64> = body["messages"]
                    .as_array()
                    .map(|m| m.iter().filter_map(|m| m["seq"].as_i64()).collect())
                    .unwrap_or_default();
                // Seq order puts the page's newest message last.
                match check_page(&seqs, seqs.last().copied(), before, per_room) {
                    Ok(()) => tally.pages += 1,
                    Err(what) => tally.error(what),
                }
            }
            Ok((status, _)) => tally.error(status.to_string()),
            Err(err) => tally.error(
                if err.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                }
                .into(),
            ),
        }
    }
    tally
}

/// A full page that ends right below `before` (or at the newest message).
fn check_page(
    seqs: &[i64],
    top: Option<i64>,
    before: Option<i64>,
    per_room: i64,
) -> Result<(), String> {
    let want_top = before.map_or(per_room, |b| b - 1);
    let want_len = PAGE.min(want_top) as usize;
    if seqs.len() == want_len && top == Some(want_top) {
        Ok(())
    } else {
        Err("wrong page".to_owned())
    }
}

/// The reference: the endpoint's two statements (page, then its reaction counts), prepared,
/// from one connection, one page at a time.
async fn postgres_run(
    conn: &mut PgConnection,
    server: &Server,
    loaded: &Loaded,
    run_for: Duration,
) -> Measured {
    let mut rng = StdRng::seed_from_u64(99);
    let mut tally = Tally::default();
    let cpu = CpuSnapshot::take(server.pid);
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        let room = loaded.rooms[rng.random_range(0..loaded.rooms.len())];
        let before = Pick::Random.before(&mut rng, loaded.per_room);
        let started = Instant::now();
        let page = postgres_page(conn, room, before).await;
        tally.lat_us.push(started.elapsed().as_micros() as i64);
        let checked = page.map_err(|err| err.to_string()).and_then(|seqs| {
            // ORDER BY seq DESC: the newest is first (the server reverses it).
            check_page(&seqs, seqs.first().copied(), before, loaded.per_room)
        });
        match checked {
            Ok(()) => tally.pages += 1,
            Err(what) => tally.error(what),
        }
    }
    let label = "Postgres alone (page + reactions SQL, 1 connection)".to_owned();
    Measured::new(label, Pick::Random, 1, tally, cpu.since(server.pid))
}

async fn postgres_page(
    conn: &mut PgConnection,
    room: Uuid,
    before: Option<i64>,
) -> Result<Vec<i64>, sqlx::Error> {
    // limit + 1, as the handler asks, to learn has_more.
    let rows = sqlx::query(HISTORY_SQL)
        .bind(room)
        .bind(before)
        .bind(PAGE + 1)
        .fetch_all(&mut *conn)
        .await?;
    let rows = &rows[..rows.len().min(PAGE as usize)];
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect();
    sqlx::query(REACTIONS_SQL)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.iter().map(|r| r.get("seq")).collect())
}

fn render(
    total: u64,
    run_for: Duration,
    loaded: &Loaded,
    runs: &[Measured],
    alone: &Measured,
    (exit, notable): (&str, &[String]),
) -> Section {
    let copy_s = loaded.copy.as_secs_f64();
    let rate = total as f64 / copy_s.max(1e-9);
    let gb = loaded.bytes as f64 / 1e9;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### History at {} messages\n\n{ROOMS} public rooms × {} messages (rows interleaved \
         round-robin, so one room's page spans heap pages as real traffic does), {SENDERS} senders, \
         4–12 words per message from a {VOCABULARY}-word vocabulary, no reactions. Loaded with \
         COPY into the migrated table with every production index ({}; seq supplied, \
         `rooms.last_seq` set afterwards): {copy_s:.0} s ({} rows/s), then VACUUM (ANALYZE) \
         {:.0} s; table + indexes {gb:.2} GB. Each request is `GET /v1/rooms/{{id}}/messages?limit={PAGE}` \
         in a random room with `before` uniform over the whole history (or none: the newest page), \
         closed loop, every page checked ({PAGE} messages ending at `before` − 1). \
         {} s per row after a warm-up.\n",
        thousands(total),
        thousands(total / ROOMS as u64),
        loaded.how,
        thousands(rate as u64),
        loaded.vacuum.as_secs_f64(),
        run_for.as_secs(),
    );
    let _ = writeln!(
        md,
        "| reader | page | clients | pages/s | p50 / p99 / p99.9 / max | errors | server CPU µs/page | Postgres CPU µs/page |\n|---|---|---|---|---|---|---|---|"
    );
    for m in runs.iter().chain([alone]) {
        let _ = writeln!(md, "{}", m.row());
    }
    if let Some(one) = runs
        .iter()
        .find(|m| m.clients == 1 && m.pick == Pick::Random)
    {
        let _ = writeln!(
            md,
            "\nOne client, random pages: Guildhall p50 {} vs Postgres alone {} ({:.1}×).",
            ms(one.latency.p50),
            ms(alone.latency.p50),
            one.latency.p50 as f64 / alone.latency.p50.max(1) as f64
        );
    }
    if !notable.is_empty() || !exit.contains("exit status: 0") {
        let _ = writeln!(
            md,
            "\nServer exit: {exit}; {} warnings/errors logged.",
            notable.len()
        );
    }
    let json = json!({
        "messages": total,
        "rooms": ROOMS,
        "per_room": loaded.per_room,
        "load": {
            "copy_s": copy_s,
            "rows_per_s": rate,
            "vacuum_analyze_s": loaded.vacuum.as_secs_f64(),
            "total_relation_bytes": loaded.bytes,
            "seq_trigger_skipped_by": loaded.how,
        },
        "runs": runs.iter().map(Measured::json).collect::<Vec<_>>(),
        "postgres_alone": alone.json(),
        "server_exit": exit,
        "server_log_notable": notable,
    });
    Section {
        name: "history",
        markdown: md,
        json,
        seconds: 0.0,
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
