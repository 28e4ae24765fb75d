//! Faults on purpose (reliability items 1, 5): the server binary is killed with SIGKILL or
//! stopped with SIGTERM while clients send over WebSocket with `client_msg_id` and retry what
//! was not acked. Afterwards every acked message is in Postgres, exactly once, and the room's
//! seqs have no gaps.
//!
//! Sizes: `GUILDHALL_FAULT_MESSAGES` (default 2000; the reliability run uses 10000).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::helpers::{base_settings, database_url, fresh_database};
use crate::process::{Node, PrivatePostgres, PrivateRedis};

const SENDERS: usize = 4;
/// Sends one connection keeps unacked at a time.
const WINDOW: usize = 16;

fn message_count() -> usize {
    std::env::var("GUILDHALL_FAULT_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

/// What the clients saw: acks (client_msg_id -> message id) and how their sockets ended.
#[derive(Default)]
struct Outcome {
    acked: HashMap<String, String>,
    close_codes: Vec<Option<u16>>,
    /// Longest time from writing a send to its ack (or refusal).
    slowest_answer: Duration,
    /// Error codes the server answered sends with, and when.
    refusals: Vec<(String, Instant)>,
}

type Shared = Arc<Mutex<Outcome>>;

/// Sends every id until it is acked, reconnecting (with back-off while the server is down)
/// and resending what was in flight whenever the connection ends.
async fn send_all(url: String, room: String, ids: Vec<String>, outcome: Shared) {
    loop {
        let todo: VecDeque<String> = {
            let seen = outcome.lock().unwrap();
            ids.iter()
                .filter(|id| !seen.acked.contains_key(*id))
                .cloned()
                .collect()
        };
        if todo.is_empty() {
            return;
        }
        let Ok((stream, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let close = one_connection(stream, &room, todo, &outcome).await;
        outcome.lock().unwrap().close_codes.push(close);
    }
}

/// One connection's life: sends with a window, records acks; returns the close code, if any.
async fn one_connection(
    mut stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    room: &str,
    mut todo: VecDeque<String>,
    outcome: &Shared,
) -> Option<u16> {
    let mut in_flight = 0usize;
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    loop {
        while in_flight < WINDOW
            && let Some(id) = todo.pop_front()
        {
            let frame = json!({"type": "send", "room_id": room, "client_msg_id": id,
                "content": format!("durable {id}")});
            if stream.send(Message::text(frame.to_string())).await.is_err() {
                return None;
            }
            sent_at.insert(id, Instant::now());
            in_flight += 1;
        }
        if in_flight == 0 {
            let _ = stream.close(None).await;
            return None;
        }
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no frame for 30 s with {in_flight} sends in flight"));
        let frame: Value = match next {
            Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        };
        let answered = frame["client_msg_id"].as_str().or(frame["ref"].as_str());
        if let Some(started) = answered.and_then(|id| sent_at.remove(id)) {
            let mut outcome = outcome.lock().unwrap();
            outcome.slowest_answer = outcome.slowest_answer.max(started.elapsed());
        }
        match frame["type"].as_str() {
            Some("ack") => {
                in_flight -= 1;
                let id = frame["client_msg_id"].as_str().unwrap().to_owned();
                let message = frame["message"]["id"].as_str().unwrap().to_owned();
                let previous = outcome
                    .lock()
                    .unwrap()
                    .acked
                    .insert(id.clone(), message.clone());
                // A retry of an acked send must answer with the original message.
                assert!(
                    previous.is_none_or(|p| p == message),
                    "{id} acked as two messages"
                );
            }
            Some("error") if frame["ref"].is_string() => {
                // Refused while degraded (e.g. `unavailable`): retry it later on this socket.
                in_flight -= 1;
                let code = frame["code"].as_str().unwrap_or_default().to_owned();
                outcome
                    .lock()
                    .unwrap()
                    .refusals
                    .push((code, Instant::now()));
                todo.push_back(frame["ref"].as_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => {}
        }
    }
}

/// Starts the senders; each owns a disjoint slice of the ids.
fn start_senders(
    node: &Node,
    token: &str,
    room: &str,
    total: usize,
) -> (Shared, Vec<tokio::task::JoinHandle<()>>) {
    let outcome = Shared::default();
    let senders = (0..SENDERS)
        .map(|k| {
            let ids = (k..total)
                .step_by(SENDERS)
                .map(|i| format!("m{i:06}"))
                .collect();
            tokio::spawn(send_all(
                node.ws_url(token),
                room.to_owned(),
                ids,
                outcome.clone(),
            ))
        })
        .collect();
    (outcome, senders)
}

/// Waits (bounded) until every sender has had all its ids acked.
async fn join_senders(senders: Vec<tokio::task::JoinHandle<()>>, what: &str) {
    for sender in senders {
        tokio::time::timeout(Duration::from_secs(120), sender)
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .unwrap();
    }
}

async fn acked_count(outcome: &Shared) -> usize {
    outcome.lock().unwrap().acked.len()
}

async fn wait_for_acks(outcome: &Shared, at_least: usize) {
    tokio::time::timeout(Duration::from_secs(120), async {
        while acked_count(outcome).await < at_least {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("fewer than {at_least} acks in 120 s"));
}

/// Asserts what Postgres holds for the room: one row per client_msg_id, the very message each
/// ack named, every id sent, seqs 1..=n without a gap.
async fn assert_stored_exactly_once(database: &str, room: &str, outcome: &Shared, total: usize) {
    assert_stored_in(&database_url(database), room, outcome, total).await;
}

async fn assert_stored_in(url: &str, room: &str, outcome: &Shared, total: usize) {
    let db = Database::connect(url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT id::text AS id, client_msg_id, seq FROM messages \
                 WHERE room_id = '{room}' ORDER BY seq"
            ),
        ))
        .await
        .unwrap();
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let key: String = row.try_get("", "client_msg_id").unwrap();
        let id: String = row.try_get("", "id").unwrap();
        let seq: i64 = row.try_get("", "seq").unwrap();
        assert_eq!(seq, i as i64 + 1, "seq gap before {key}");
        assert!(
            stored.insert(key.clone(), id).is_none(),
            "{key} stored twice"
        );
    }
    let outcome = outcome.lock().unwrap();
    for (key, message) in &outcome.acked {
        assert_eq!(
            stored.get(key),
            Some(message),
            "acked {key} is not the stored row"
        );
    }
    assert_eq!(outcome.acked.len(), total, "every send acked in the end");
    assert_eq!(stored.len(), total, "rows = distinct keys = sends");
}

async fn loaded_node() -> (Node, String, String, String) {
    let database = fresh_database().await;
    let node = Node::start(base_settings(&database)).await;
    let owner = node
        .register(&format!("f{}", &Uuid::new_v4().simple().to_string()[..12]))
        .await;
    let room = node.room(&owner).await;
    (node, database, owner.access_token, room)
}

#[tokio::test]
async fn acked_messages_survive_three_sigkills_exactly_once() {
    let total = message_count();
    let (mut node, database, token, room) = loaded_node().await;
    let (outcome, senders) = start_senders(&node, &token, &room, total);
    for quarter in 1..=3 {
        wait_for_acks(&outcome, total * quarter / 4).await;
        node.kill9().await;
        node.restart().await;
    }
    join_senders(senders, "senders finish after the restarts").await;
    let ended = outcome.lock().unwrap().close_codes.len();
    assert!(
        ended >= 3,
        "the kills cut the senders' sockets ({ended} ends)"
    );
    assert_stored_exactly_once(&database, &room, &outcome, total).await;
}

#[tokio::test]
async fn sigterm_under_load_closes_with_going_away_and_loses_nothing() {
    let total = message_count();
    let (mut node, database, token, room) = loaded_node().await;
    let (outcome, senders) = start_senders(&node, &token, &room, total);
    wait_for_acks(&outcome, total / 2).await;
    node.sigterm();
    let status = node.wait_exit(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "SIGTERM exits 0: {status}; {}",
        node.log_tail()
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while outcome.lock().unwrap().close_codes.len() < SENDERS {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    ended.await.expect("every sender saw its socket end");
    {
        let outcome = outcome.lock().unwrap();
        for code in &outcome.close_codes {
            assert!(
                matches!(code, Some(1001 | 1012)),
                "close codes {:?}",
                outcome.close_codes
            );
        }
    }
    node.restart().await;
    join_senders(senders, "senders finish after the restart").await;
    assert_stored_exactly_once(&database, &room, &outcome, total).await;
}

/// Collects the seqs of `room`'s `message.created` events on one socket, heartbeating.
fn receive_seqs(
    url: String,
    room: String,
) -> (Arc<Mutex<BTreeSet<i64>>>, tokio::task::JoinHandle<()>) {
    let seqs = Arc::new(Mutex::new(BTreeSet::new()));
    let collected = seqs.clone();
    let task = tokio::spawn(async move {
        let (mut stream, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        loop {
            let message = tokio::select! {
                _ = beat.tick() => {
                    let frame = json!({"type": "heartbeat"}).to_string();
                    stream.send(Message::text(frame)).await.unwrap();
                    continue;
                }
                message = stream.next() => message,
            };
            let Some(Ok(Message::Text(text))) = message else {
                panic!("receiver socket ended: {message:?}");
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == "message.created" && frame["room_id"] == room.as_str() {
                let seq = frame["message"]["seq"].as_i64().unwrap();
                collected.lock().unwrap().insert(seq);
            }
        }
    });
    (seqs, task)
}

fn freeze_seconds() -> u64 {
    std::env::var("GUILDHALL_FAULT_REDIS_FREEZE_S")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
}

#[tokio::test]
async fn redis_frozen_then_killed_sends_are_acked_in_time_and_other_nodes_catch_up() {
    let total = message_count();
    let mut redis = PrivateRedis::start().await;
    let database = fresh_database().await;
    let mut settings = base_settings(&database);
    settings.insert("redis_url".into(), redis.url());
    let sender_node = Node::start(settings.clone()).await;
    let receiver_node = Node::start(settings).await;
    let owner = sender_node.register("redisfaults").await;
    let room = sender_node.room(&owner).await;
    let (seqs, receiver) = receive_seqs(receiver_node.ws_url(&owner.access_token), room.clone());
    // The receiver is subscribed before the first send (ready has gone out once it can get one).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = sender_node.rss_bytes();

    let (outcome, senders) = start_senders(&sender_node, &owner.access_token, &room, total);
    wait_for_acks(&outcome, total / 4).await;
    redis.freeze();
    tokio::time::sleep(Duration::from_secs(freeze_seconds())).await;
    redis.thaw();
    wait_for_acks(&outcome, total / 2).await;
    redis.kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart().await;
    join_senders(senders, "senders finish").await;
    let slowest = outcome.lock().unwrap().slowest_answer;
    assert!(
        slowest < Duration::from_secs(2),
        "a send waited {slowest:?} for its answer"
    );
    assert_stored_exactly_once(&database, &room, &outcome, total).await;

    // The other node's client ends with every stored seq: gaps from the outage filled.
    let caught_up = tokio::time::timeout(Duration::from_secs(30), async {
        while seqs.lock().unwrap().len() < total {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    if caught_up.await.is_err() {
        let got = seqs.lock().unwrap().len();
        if receiver.is_finished() {
            receiver.await.expect("receiver");
        }
        panic!("receiver has {got} of {total} seqs");
    }
    let seqs = seqs.lock().unwrap().clone();
    assert_eq!(seqs, (1..=total as i64).collect::<BTreeSet<_>>());
    receiver.abort();
    let grown = sender_node.rss_bytes().saturating_sub(baseline);
    eprintln!(
        "redis faults: slowest send answer {slowest:?}, server memory +{} KiB",
        grown >> 10
    );
    assert!(grown < 50 << 20, "server memory grew {} MiB", grown >> 20);
}

#[tokio::test]
async fn postgres_stopped_under_load_answers_unavailable_then_recovers_without_a_restart() {
    let total = message_count();
    let pg = PrivatePostgres::start().await;
    pg.psql("postgres", "CREATE DATABASE faults");
    let mut settings = base_settings("faults");
    settings.insert("database_url".into(), pg.url("faults"));
    settings.insert("auto_migrate".into(), "true".into());
    // The default wait, which is what answers `unavailable` within the 5 s.
    settings.insert("database_acquire_timeout_s".into(), "2".into());
    let node = Node::start(settings).await;
    let owner = node.register("pgfaults").await;
    let room = node.room(&owner).await;
    let (outcome, senders) = start_senders(&node, &owner.access_token, &room, total);
    wait_for_acks(&outcome, total / 4).await;

    pg.stop_immediate();
    let stopped = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        while !outcome
            .lock()
            .unwrap()
            .refusals
            .iter()
            .any(|(c, _)| c == "unavailable")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    refused
        .await
        .expect("sends answered `unavailable` within 5 s of Postgres stopping");
    // Commits that raced the stop may still be acked just after it; none can be later. (That
    // each ack has its committed row is checked at the end.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked_when_down = acked_count(&outcome).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored_before_stop = acked_count(&outcome).await;
    assert_eq!(
        acked_when_down, stored_before_stop,
        "acks while Postgres was down"
    );

    pg.ctl_start();
    let back = Instant::now();
    wait_for_acks(&outcome, stored_before_stop + 1).await;
    let recovered = back.elapsed();
    assert!(
        recovered < Duration::from_secs(10),
        "first ack {recovered:?} after Postgres returned"
    );

    // Every pooled connection cut at once: the pool replaces them, sends go on.
    wait_for_acks(&outcome, total / 2).await;
    pg.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = 'faults' AND pid <> pg_backend_pid()",
    );
    join_senders(senders, "senders finish without a server restart").await;
    eprintln!(
        "postgres faults: unavailable within {:?}, first ack {recovered:?} after the restart",
        outcome
            .lock()
            .unwrap()
            .refusals
            .first()
            .map(|(_, at)| at.duration_since(stopped))
    );
    assert_stored_in(&pg.url("faults"), &room, &outcome, total).await;
}
