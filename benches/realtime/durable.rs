//! Durable sends: closed-loop WebSocket and REST senders.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::{Account, Api};
use crate::db::{create_database, drop_database, show_setting};
use crate::report::Percentiles;
use crate::report::{counts, ms, per, per_unit};
use crate::server::{CpuSnapshot, CpuUse, Server};
use crate::ws::{Ws, connect, next_json, text_frame, unsubscribe_all};
use crate::{Scale, Section};
use futures::stream::{self};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    WebSocket,
    Rest,
}

#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) acked: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) lat_us: Vec<i64>,
}

#[derive(Debug)]
pub(crate) struct DurableResult {
    pub(crate) transport: Transport,
    pub(crate) concurrency: usize,
    pub(crate) acked: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Percentiles,
    pub(crate) cpu: CpuUse,
    pub(crate) mean_batch: f64,
    pub(crate) mean_commit: Duration,
}

pub(crate) struct Durable {
    pub(crate) rooms: Arc<Vec<Uuid>>,
    pub(crate) users: Vec<Account>,
}

impl Durable {
    pub(crate) async fn setup(api: &Api, scale: Scale) -> Self {
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

    pub(crate) async fn run(
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
        let cpu = CpuSnapshot::take(server.pid);
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
        let cpu = cpu.since(server.pid);
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
    pub(crate) fn base_addr(&self) -> SocketAddr {
        self.base
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .expect("base is http://<addr>")
    }
}

/// Closed loop: send, wait for the ack (or error), repeat until the deadline.
pub(crate) async fn ws_worker(
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

pub(crate) async fn rest_worker(
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

/// Scenario (iii): closed-loop senders over WebSocket and REST at each concurrency.
pub(crate) async fn section(scale: Scale) -> Section {
    let database = create_database().await;
    let synchronous_commit = show_setting(&database, "synchronous_commit").await;
    let server = Server::start(&database).await;
    let api = Api::new(server.addr);
    let durable = Durable::setup(&api, scale).await;
    let mut results = Vec::new();
    for &concurrency in scale.durable_concurrency {
        for transport in [Transport::WebSocket, Transport::Rest] {
            results.push(
                durable
                    .run(&api, &server, transport, concurrency, scale.durable_run)
                    .await,
            );
        }
    }
    let (exit, notable) = server.stop().await;
    drop_database(&database).await;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Durable sends\n\nClosed loop (each sender waits for its ack), {} rooms, {} s each, \
         synchronous_commit={synchronous_commit}; server exit after SIGTERM: {exit}; {} WARN/ERROR log lines.\n",
        scale.durable_rooms,
        scale.durable_run.as_secs(),
        notable.len()
    );
    let _ = writeln!(
        md,
        "| transport | senders | acked msg/s | errors | ack p50 / p99 / p99.9 / max | server CPU µs/msg | Postgres CPU µs/msg | cores: server / client / Postgres / rest | mean commit batch (duration) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for d in &results {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} ({}) |",
            d.transport.label(),
            d.concurrency,
            d.rate(),
            counts(&d.errors),
            d.latency.short(),
            per(d.cpu.server, d.acked),
            per(d.cpu.postgres, d.acked),
            d.cpu.split(),
            d.mean_batch,
            ms(d.mean_commit.as_micros() as i64),
        );
    }
    Section {
        name: "durable",
        markdown: md,
        seconds: 0.0,
        json: json!({
            "synchronous_commit": synchronous_commit,
            "rows": results.iter().map(DurableResult::json).collect::<Vec<Value>>(),
        }),
    }
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "WebSocket send/ack",
            Transport::Rest => "REST POST",
        }
    }
}

impl DurableResult {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64()
    }

    fn json(&self) -> Value {
        json!({
            "transport": self.transport.label(),
            "senders": self.concurrency,
            "acked_per_s": self.rate().round(),
            "errors": self.errors,
            "p50_us": self.latency.p50,
            "p99_us": self.latency.p99,
            "p999_us": self.latency.p999,
            "server_cpu_us_per_msg": per_unit(self.cpu.server, self.acked),
            "postgres_cpu_us_per_msg": per_unit(self.cpu.postgres, self.acked),
            "mean_batch": self.mean_batch,
        })
    }
}
