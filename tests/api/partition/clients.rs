//! The partition tests' clients: paced senders that retry what was not acked, listeners that
//! resume where they stopped, and what Postgres stores, with the assertions that compare them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

/// What the sending clients saw.
#[derive(Default)]
pub(super) struct Sent {
    /// client_msg_id -> (message id, when the ack arrived).
    pub(super) acked: HashMap<String, (String, Instant)>,
    /// Every answer to a send: when the send was written, how long the answer took, and the
    /// error code when it was refused.
    pub(super) answers: Vec<(Instant, Duration, Option<String>)>,
}

pub(super) type SentLog = Arc<Mutex<Sent>>;

/// Sends `ids` at `per_second`, each until it is acked. When the connection ends, reconnects
/// to the next of `urls` and sends what was in flight again (same `client_msg_id`).
pub(super) async fn send_paced(
    urls: Vec<String>,
    room: String,
    ids: Vec<String>,
    per_second: u64,
    log: SentLog,
) {
    let mut todo: VecDeque<String> = ids.into();
    let mut in_flight: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for attempt in 0.. {
        if todo.is_empty() && in_flight.is_empty() {
            return;
        }
        let url = &urls[attempt % urls.len()];
        let Ok((mut stream, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        loop {
            if todo.is_empty() && in_flight.is_empty() {
                let _ = stream.close(None).await;
                return;
            }
            let next = tokio::select! {
                _ = tick.tick(), if !todo.is_empty() => {
                    let id = todo.pop_front().expect("not empty");
                    let frame = json!({"type": "send", "room_id": room, "client_msg_id": id,
                        "content": format!("partition {id}")});
                    in_flight.insert(id, Instant::now());
                    if stream.send(Message::text(frame.to_string())).await.is_err() {
                        break;
                    }
                    continue;
                }
                next = tokio::time::timeout(Duration::from_secs(30), stream.next()) => next
                    .unwrap_or_else(|_| panic!("no frame for 30 s with {} sends in flight", in_flight.len())),
            };
            let frame: Value = match next {
                Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => continue,
            };
            let answered = frame["client_msg_id"].as_str().or(frame["ref"].as_str());
            let Some((id, written)) = answered.and_then(|id| in_flight.remove_entry(id)) else {
                continue;
            };
            let mut log = log.lock().unwrap();
            match frame["type"].as_str() {
                Some("ack") => {
                    let message = frame["message"]["id"].as_str().unwrap().to_owned();
                    log.answers.push((written, written.elapsed(), None));
                    let previous = log
                        .acked
                        .insert(id.clone(), (message.clone(), Instant::now()));
                    // A retry of an acked send must answer with the original message.
                    assert!(
                        previous.is_none_or(|(p, _)| p == message),
                        "{id} acked as two messages"
                    );
                }
                _ => {
                    // Refused (e.g. `unavailable`): said so, and sent again later.
                    let code = frame["code"].as_str().unwrap_or("(no code)").to_owned();
                    log.answers.push((written, written.elapsed(), Some(code)));
                    todo.push_back(id);
                }
            }
        }
        // The connection ended: what it did not answer goes first on the next one.
        for id in in_flight.drain().map(|(id, _)| id) {
            todo.push_front(id);
        }
    }
}

/// What one listening client heard.
#[derive(Default)]
pub(super) struct Heard {
    /// The room's `message.created` frames in arrival order: (seq, message id, when).
    pub(super) messages: Vec<(i64, String, Instant)>,
    /// Each connection's `ready`: which of the urls, and when.
    pub(super) readies: Vec<(usize, Instant)>,
    /// Frames a listener that keeps up should never get (`resync_required`, errors).
    pub(super) surprises: Vec<String>,
}

pub(super) type HeardLog = Arc<Mutex<Heard>>;

/// Listens to `room` until aborted, heartbeating. When a connection ends, reconnects to the
/// next of `urls` and resumes from the last seq heard, as PROTOCOL.md tells clients to.
async fn listen(urls: Vec<String>, room: String, log: HeardLog) {
    for attempt in 0.. {
        let index = attempt % urls.len();
        let Ok((mut stream, _)) = tokio_tungstenite::connect_async(urls[index].as_str()).await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let ready = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = ready else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(frame["type"], "ready", "first frame: {frame}");
        let last = {
            let mut log = log.lock().unwrap();
            log.readies.push((index, Instant::now()));
            log.messages.last().map(|(seq, _, _)| *seq)
        };
        if let Some(last) = last {
            let resume = json!({"type": "resume", "positions": {room.as_str(): last}});
            if stream
                .send(Message::text(resume.to_string()))
                .await
                .is_err()
            {
                continue;
            }
        }
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        loop {
            let message = tokio::select! {
                _ = beat.tick() => {
                    let frame = json!({"type": "heartbeat"}).to_string();
                    if stream.send(Message::text(frame)).await.is_err() {
                        break;
                    }
                    continue;
                }
                message = stream.next() => message,
            };
            let Some(Ok(Message::Text(text))) = message else {
                if matches!(message, Some(Ok(Message::Ping(_) | Message::Pong(_)))) {
                    continue;
                }
                break;
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            match frame["type"].as_str() {
                Some("message.created") if frame["room_id"] == room.as_str() => {
                    let seq = frame["message"]["seq"].as_i64().unwrap();
                    let id = frame["message"]["id"].as_str().unwrap().to_owned();
                    log.lock().unwrap().messages.push((seq, id, Instant::now()));
                }
                Some("resync_required" | "error") => {
                    log.lock().unwrap().surprises.push(frame.to_string());
                }
                _ => {}
            }
        }
    }
}

pub(super) fn start_listeners(
    count: usize,
    urls: &[String],
    room: &str,
) -> (Vec<HeardLog>, Vec<tokio::task::JoinHandle<()>>) {
    let logs: Vec<HeardLog> = (0..count).map(|_| HeardLog::default()).collect();
    let tasks = logs
        .iter()
        .map(|log| tokio::spawn(listen(urls.to_vec(), room.to_owned(), log.clone())))
        .collect();
    (logs, tasks)
}

/// Where the listeners stand, for a failure message.
fn standing(heard: &[HeardLog]) -> String {
    let counts: Vec<usize> = heard
        .iter()
        .map(|h| h.lock().unwrap().messages.len())
        .collect();
    let connections: usize = heard.iter().map(|h| h.lock().unwrap().readies.len()).sum();
    let surprises: Vec<String> = heard
        .iter()
        .flat_map(|h| h.lock().unwrap().surprises.clone())
        .take(3)
        .collect();
    format!(
        "listeners heard {}..={} messages, {connections} connections, surprises {surprises:?}",
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0)
    )
}

/// Waits until every listener has heard `n` messages.
pub(super) async fn wait_heard(heard: &[HeardLog], n: usize, within: Duration) {
    let all = tokio::time::timeout(within, async {
        while !heard.iter().all(|h| h.lock().unwrap().messages.len() >= n) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(
        all.await.is_ok(),
        "listeners did not hear all {n} stored messages in {within:?}: {}",
        standing(heard)
    );
}

pub(super) async fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(within, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} (waited {within:?})"));
}

pub(super) async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>, what: &str) {
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .unwrap();
    }
}

/// The room's rows in seq order: (seq, message id, client_msg_id).
pub(super) async fn stored(url: &str, room: &str) -> Vec<(i64, String, String)> {
    let db = Database::connect(url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT seq, id::text AS id, client_msg_id FROM messages \
                 WHERE room_id = '{room}' ORDER BY seq"
            ),
        ))
        .await
        .unwrap();
    let rows = rows
        .iter()
        .map(|row| {
            (
                row.try_get("", "seq").unwrap(),
                row.try_get("", "id").unwrap(),
                row.try_get("", "client_msg_id").unwrap(),
            )
        })
        .collect();
    db.close().await.unwrap();
    rows
}

/// Postgres holds each sent id once, as the row its ack named, with seqs 1..=n.
pub(super) fn assert_stored_exactly_once(
    rows: &[(i64, String, String)],
    senders: &[SentLog],
    sent: usize,
) {
    let mut by_key: HashMap<&str, &str> = HashMap::new();
    for (i, (seq, id, key)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1, "seq gap before {key}");
        assert!(by_key.insert(key, id).is_none(), "{key} stored twice");
    }
    let mut acked = 0;
    for log in senders {
        for (key, (message, _)) in &log.lock().unwrap().acked {
            assert_eq!(
                by_key.get(key.as_str()),
                Some(&message.as_str()),
                "acked {key} is not the stored row"
            );
            acked += 1;
        }
    }
    assert_eq!(acked, sent, "every send acked in the end");
    assert_eq!(rows.len(), sent, "rows = distinct client_msg_ids = sends");
}

/// The listener heard exactly the stored messages: each (seq, id) once, in seq order.
pub(super) fn assert_heard_exactly(heard: &Heard, rows: &[(i64, String, String)], who: &str) {
    assert!(
        heard.surprises.is_empty(),
        "{who} got {:?}",
        heard.surprises
    );
    let got: Vec<(i64, &str)> = heard
        .messages
        .iter()
        .map(|(s, id, _)| (*s, id.as_str()))
        .collect();
    let want: Vec<(i64, &str)> = rows.iter().map(|(s, id, _)| (*s, id.as_str())).collect();
    if got != want {
        let distinct: HashSet<i64> = got.iter().map(|(s, _)| *s).collect();
        let first_off = got.iter().zip(&want).position(|(g, w)| g != w);
        panic!(
            "{who} heard {} frames ({} distinct seqs) for {} stored; first difference at index \
             {first_off:?}: heard {:?}, stored {:?}",
            got.len(),
            distinct.len(),
            want.len(),
            first_off.and_then(|i| got.get(i)),
            first_off.and_then(|i| want.get(i)),
        );
    }
}

pub(super) fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Lags from ack (on the sending node) to arrival (at a listener), of the messages acked
/// in `window`.
pub(super) fn lags(
    sent: &[SentLog],
    heard: &Heard,
    window: std::ops::Range<Instant>,
) -> Vec<Duration> {
    let acked_at: HashMap<String, Instant> = sent
        .iter()
        .flat_map(|l| {
            let l = l.lock().unwrap();
            l.acked
                .values()
                .map(|(id, at)| (id.clone(), *at))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut lags: Vec<Duration> = heard
        .messages
        .iter()
        .filter_map(|(_, id, at)| {
            let acked = acked_at.get(id)?;
            window
                .contains(acked)
                .then(|| at.saturating_duration_since(*acked))
        })
        .collect();
    lags.sort_unstable();
    lags
}
