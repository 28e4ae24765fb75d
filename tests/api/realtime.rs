//! The WebSocket gateway end to end.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    Session, TEST_SECRET, TestApp, spawn_app, spawn_app_with, spawn_app_with_redis, start,
};
use crate::ws::WsClient;

/// A public community with one room; `alice` owns it, `bob` joined.
pub async fn room_with_two(
    app: &TestApp,
) -> (crate::helpers::Session, crate::helpers::Session, String) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let community: Value = app
        .post(
            "/v1/communities",
            Some(&alice.access_token),
            json!({"name": "c", "visibility": "public"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let community = community["id"].as_str().unwrap().to_owned();
    let room: Value = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&alice.access_token),
            json!({"name": "general"}),
        )
        .await
        .json()
        .await
        .unwrap();
    app.post(
        &format!("/v1/communities/{community}/join"),
        Some(&bob.access_token),
        json!({}),
    )
    .await;
    (alice, bob, room["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn send_is_acked_after_commit_and_delivered_to_members() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let (mut a, ready) = WsClient::ready(&app, &alice.access_token).await;
    assert!(
        ready["room_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == room.as_str()),
        "{ready}"
    );
    let (mut b, _) = WsClient::ready(&app, &bob.access_token).await;
    a.send(
        json!({"type": "send", "room_id": room, "client_msg_id": "m1", "content": "hello @bob"}),
    )
    .await;
    let ack = a.expect("ack").await;
    assert_eq!(ack["client_msg_id"], "m1");
    assert_eq!(ack["message"]["seq"], 1);
    let created = b.expect("message.created").await;
    assert_eq!(created["message"]["content"], "hello @bob");
    assert_eq!(created["message"]["id"], ack["message"]["id"]);
    assert_eq!(created["message"]["mentions"][0], bob.user_id.to_string());
    let history: Value = app
        .get(
            &format!("/v1/rooms/{room}/messages"),
            Some(&bob.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["messages"][0]["id"], ack["message"]["id"],
        "acked means stored"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers of the tests below
// ---------------------------------------------------------------------------------------------

/// Upper bound for anything a test waits for.
const BOUND: Duration = Duration::from_secs(10);
/// How long a test listens for frames that must not arrive.
pub(crate) const QUIET: Duration = Duration::from_millis(500);

pub(crate) async fn body_of(response: reqwest::Response, status: StatusCode, what: &str) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{what}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

pub(crate) async fn community_of(app: &TestApp, user: &Session, room: &str) -> String {
    let room = app
        .get(&format!("/v1/rooms/{room}"), Some(&user.access_token))
        .await;
    let room = body_of(room, StatusCode::OK, "get room").await;
    room["community_id"].as_str().unwrap().to_owned()
}

/// A private (invite-only) community with one room; `alice` owns it, `bob` accepted an invite.
/// Returns (alice, bob, community_id, room_id).
pub(crate) async fn private_room_with_two(app: &TestApp) -> (Session, Session, String, String) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let community = app
        .post(
            "/v1/communities",
            Some(&alice.access_token),
            json!({"name": "p", "visibility": "private"}),
        )
        .await;
    let community = body_of(community, StatusCode::CREATED, "create community").await;
    let community = community["id"].as_str().unwrap().to_owned();
    let room = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&alice.access_token),
            json!({"name": "general"}),
        )
        .await;
    let room = body_of(room, StatusCode::CREATED, "create room").await;
    let invite = app
        .post(
            &format!("/v1/communities/{community}/invites"),
            Some(&alice.access_token),
            json!({}),
        )
        .await;
    let invite = body_of(invite, StatusCode::CREATED, "invite").await;
    let accepted = app
        .post(
            &format!("/v1/invites/{}/accept", invite["code"].as_str().unwrap()),
            Some(&bob.access_token),
            json!({}),
        )
        .await;
    body_of(accepted, StatusCode::OK, "accept invite").await;
    let room = room["id"].as_str().unwrap().to_owned();
    (alice, bob, community, room)
}

pub(crate) async fn role_id(app: &TestApp, owner: &Session, community: &str, name: &str) -> String {
    let roles = app
        .get(
            &format!("/v1/communities/{community}/roles"),
            Some(&owner.access_token),
        )
        .await;
    let roles = body_of(roles, StatusCode::OK, "list roles").await;
    roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no role {name}: {roles}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `PUT /v1/rooms/{room}/overrides/{subject}` with only a deny set.
pub(crate) async fn deny_in_room(
    app: &TestApp,
    owner: &Session,
    room: &str,
    subject: &str,
    deny: &[&str],
) {
    let response = app
        .request(
            Method::PUT,
            &format!("/v1/rooms/{room}/overrides/{subject}"),
            Some(&owner.access_token),
            Some(json!({"allow": [], "deny": deny})),
        )
        .await;
    body_of(response, StatusCode::NO_CONTENT, "set override").await;
}

pub(crate) async fn rest_post(app: &TestApp, user: &Session, room: &str, body: Value) -> Value {
    let response = app
        .post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&user.access_token),
            body,
        )
        .await;
    body_of(response, StatusCode::CREATED, "send message").await
}

pub(crate) async fn rest_send(app: &TestApp, user: &Session, room: &str, content: &str) -> Value {
    rest_post(app, user, room, json!({"content": content})).await
}

/// The room's whole history in seq order, paged with `after=`.
pub(crate) async fn history_all(app: &TestApp, user: &Session, room: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(
                &format!("/v1/rooms/{room}/messages?after={after}&limit=100"),
                Some(&user.access_token),
            )
            .await;
        let page = body_of(page, StatusCode::OK, "history").await;
        let messages = page["messages"].as_array().unwrap();
        all.extend(messages.iter().cloned());
        if page["has_more"] != true {
            return all;
        }
        after = messages.last().expect("has_more with an empty page")["seq"]
            .as_i64()
            .unwrap();
    }
}

fn send_frame(room: &str, client_msg_id: &str, content: &str) -> Value {
    json!({"type": "send", "room_id": room, "client_msg_id": client_msg_id, "content": content})
}

fn resume_frame(room: &str, seq: i64) -> Value {
    json!({"type": "resume", "positions": {room: seq}})
}

/// `WsClient::ready` with Nagle's algorithm off on the client side, so pipelined small frames
/// are not held back waiting for delayed ACKs.
pub(crate) async fn ready(app: &TestApp, user: &Session) -> WsClient {
    let (client, _) = WsClient::ready(app, &user.access_token).await;
    if let MaybeTlsStream::Plain(tcp) = client.stream.get_ref() {
        tcp.set_nodelay(true).unwrap();
    }
    client
}

/// Skips frames until the ack of one of `pending` (client_msg_ids, repeats allowed) arrives;
/// removes that entry and returns the acked message. Panics on an error frame for one of them.
async fn next_ack(client: &mut WsClient, pending: &mut Vec<String>) -> Value {
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = client
            .next(left)
            .await
            .unwrap_or_else(|| panic!("no ack before timeout/close for {pending:?}"));
        let reference = match frame["type"].as_str() {
            Some("ack") => &frame["client_msg_id"],
            Some("error") => &frame["ref"],
            _ => continue,
        };
        let Some(i) = pending.iter().position(|p| reference == p.as_str()) else {
            continue;
        };
        assert_eq!(frame["type"], "ack", "send refused: {frame}");
        pending.swap_remove(i);
        return frame["message"].clone();
    }
}

/// Waits for one ack per entry of `wanted`; returns the acked messages in arrival order.
async fn acks(client: &mut WsClient, wanted: &[String]) -> Vec<Value> {
    let mut pending = wanted.to_vec();
    let mut got = Vec::new();
    while !pending.is_empty() {
        got.push(next_ack(client, &mut pending).await);
    }
    got
}

/// A `send` frame and its ack's message.
async fn ws_send(client: &mut WsClient, room: &str, client_msg_id: &str, content: &str) -> Value {
    client.send(send_frame(room, client_msg_id, content)).await;
    acks(client, &[client_msg_id.to_owned()]).await.remove(0)
}

fn is_created_in(frame: &Value, room: &str) -> bool {
    frame["type"] == "message.created" && frame["room_id"] == room
}

/// Messages of `message.created` frames of `room`: until `n` arrived (or `BOUND` passed), then
/// whatever else arrives within `linger` (to catch duplicates and strays).
pub(crate) async fn collect_created(
    client: &mut WsClient,
    room: &str,
    n: usize,
    linger: Duration,
) -> Vec<Value> {
    collect_created_within(client, room, n, linger, BOUND).await
}

/// `collect_created` waiting up to `bound` for the `n` messages.
async fn collect_created_within(
    client: &mut WsClient,
    room: &str,
    n: usize,
    linger: Duration,
    bound: Duration,
) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = Instant::now() + bound;
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(frame) = client.next(left).await else {
            break;
        };
        if is_created_in(&frame, room) {
            got.push(frame["message"].clone());
        }
    }
    let until = Instant::now() + linger;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Some(frame) = client.next(left).await else {
            break;
        };
        if is_created_in(&frame, room) {
            got.push(frame["message"].clone());
        }
    }
    got
}

/// Every text frame that arrives within `within`.
pub(crate) async fn frames_within(client: &mut WsClient, within: Duration) -> Vec<Value> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        match client.next(left).await {
            Some(frame) => got.push(frame),
            None => return got,
        }
    }
}

pub(crate) fn seqs(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

pub(crate) fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn one_to(n: usize) -> Vec<i64> {
    (1..=n as i64).collect()
}

/// Reads until the server closes: the text frames before, and the close code (`None` when the
/// stream ended without a close frame or nothing came within `within`).
async fn until_close(client: &mut WsClient, within: Duration) -> (Vec<Value>, Option<u16>) {
    let deadline = Instant::now() + within;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                frames.push(serde_json::from_str(text.as_str()).unwrap_or(Value::Null));
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (frames, frame.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(None | Some(Err(_))) | Err(_) => return (frames, None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fan-out and ordering
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_fan_out_to_every_subscriber_in_history_order() {
    const SENDERS: usize = 8;
    const PER_SENDER: usize = 25;
    const SUBSCRIBERS: usize = 20;
    let total = SENDERS * PER_SENDER;
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let users = [&alice, &bob];
    let mut subscribers = Vec::new();
    for i in 0..SUBSCRIBERS {
        subscribers.push(ready(&app, users[i % 2]).await);
    }
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(ready(&app, users[i % 2]).await);
    }

    let receiving: Vec<_> = subscribers
        .into_iter()
        .map(|mut client| {
            let room = room.clone();
            tokio::spawn(async move { collect_created(&mut client, &room, total, QUIET).await })
        })
        .collect();
    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(s, mut client)| {
            let room = room.clone();
            tokio::spawn(async move {
                let keys: Vec<String> = (0..PER_SENDER).map(|i| format!("s{s}-{i}")).collect();
                for key in &keys {
                    client
                        .send(send_frame(&room, key, &format!("from {key}")))
                        .await;
                }
                acks(&mut client, &keys).await
            })
        })
        .collect();

    let mut acked = BTreeSet::new();
    for task in sending {
        for message in task.await.unwrap() {
            acked.insert(message["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        acked.len(),
        total,
        "every send is acked with its own message"
    );
    let history = history_all(&app, &alice, &room).await;
    assert_eq!(seqs(&history), one_to(total), "history is gapless from 1");
    assert_eq!(
        ids(&history).into_iter().collect::<BTreeSet<_>>(),
        acked,
        "history holds exactly the acked messages"
    );
    for (i, task) in receiving.into_iter().enumerate() {
        let got = task.await.unwrap();
        assert_eq!(
            seqs(&got),
            one_to(total),
            "subscriber {i}: every seq once, in order"
        );
        assert_eq!(ids(&got), ids(&history), "subscriber {i}: history's order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_every_message_exactly_once_in_order() {
    const PER_SENDER: usize = 20;
    let node_a = spawn_app_with_redis().await;
    let node_b = start(node_a.database.clone(), node_a.settings.clone()).await;
    let (alice, bob, room) = room_with_two(&node_a).await;
    let nodes = [&node_a, &node_b];
    let users = [&alice, &bob];
    let mut subscribers = Vec::new();
    for i in 0..6 {
        let client = ready(nodes[i % 2], users[(i / 2) % 2]).await;
        subscribers.push((i % 2, client));
    }
    let mut senders = Vec::new();
    for i in 0..4 {
        senders.push(ready(nodes[i % 2], users[(i / 2) % 2]).await);
    }
    let total = senders.len() * PER_SENDER;

    let receiving: Vec<_> = subscribers
        .into_iter()
        .map(|(node, mut client)| {
            let room = room.clone();
            let task =
                tokio::spawn(
                    async move { collect_created(&mut client, &room, total, QUIET).await },
                );
            (node, task)
        })
        .collect();
    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(s, mut client)| {
            let room = room.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..PER_SENDER {
                    let key = format!("n{s}-{i}");
                    acked.push(ws_send(&mut client, &room, &key, &key).await);
                }
                acked
            })
        })
        .collect();
    for task in sending {
        assert_eq!(task.await.unwrap().len(), PER_SENDER);
    }

    let history = history_all(&node_b, &bob, &room).await;
    assert_eq!(seqs(&history), one_to(total));
    for (i, (node, task)) in receiving.into_iter().enumerate() {
        let got = task.await.unwrap();
        let node = ["A", "B"][node];
        assert_eq!(
            seqs(&got),
            one_to(total),
            "subscriber {i} on node {node}: each message exactly once, in order"
        );
        assert_eq!(ids(&got), ids(&history), "subscriber {i} on node {node}");
    }
}

#[tokio::test]
async fn a_retried_client_msg_id_is_one_message_over_ws_and_rest() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut sender = ready(&app, &alice).await;
    let mut watcher = ready(&app, &bob).await;

    // Two sends of the same key in flight at once, then a retry over REST.
    let frame = send_frame(&room, "retry-1", "only once");
    sender.send(frame.clone()).await;
    sender.send(frame).await;
    let over_ws = acks(&mut sender, &["retry-1".to_owned(), "retry-1".to_owned()]).await;
    let over_rest = rest_post(
        &app,
        &alice,
        &room,
        json!({"content": "only once", "client_msg_id": "retry-1"}),
    )
    .await;

    let original = &over_ws[0];
    assert_eq!(original["seq"], 1);
    for copy in [&over_ws[1], &over_rest] {
        assert_eq!(copy["id"], original["id"], "{copy}");
        assert_eq!(copy["seq"], 1, "{copy}");
    }
    let history = history_all(&app, &alice, &room).await;
    assert_eq!(ids(&history), [original["id"].as_str().unwrap()]);
    let delivered = collect_created(&mut watcher, &room, 1, QUIET).await;
    assert_eq!(
        ids(&delivered),
        ids(&history),
        "one message.created, no repeat"
    );

    // The key belongs to its sender: bob's same key is a new message.
    let bobs = rest_post(
        &app,
        &bob,
        &room,
        json!({"content": "mine", "client_msg_id": "retry-1"}),
    )
    .await;
    assert_ne!(bobs["id"], original["id"]);
    assert_eq!(bobs["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_disconnects_with_resume_lose_nothing_and_keep_order() {
    const ROUNDS: usize = 5;
    let seed: u64 = std::env::var("GUILDHALL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_201);
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;

    let mut sender = ready(&app, &alice).await;
    // The sender does not follow the room: its acks come quickly, so traffic is dense.
    sender
        .send(json!({"type": "unsubscribe", "room_ids": [room]}))
        .await;
    sender.expect("unsubscribed").await;
    let stop = CancellationToken::new();
    let mut sending = Some(tokio::spawn({
        let (stop, room) = (stop.clone(), room.clone());
        async move {
            let mut last = 0;
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let key = format!("r{n}");
                last = ws_send(&mut sender, &room, &key, &key).await["seq"]
                    .as_i64()
                    .unwrap();
                // A steady stream, not a burst: resumes race live traffic all the time.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            last
        }
    }));

    let mut last_seen = 0;
    // Per connection: the position it resumed from and the seqs it received.
    let mut connections: Vec<(i64, Vec<i64>)> = Vec::new();
    for round in 0..=ROUNDS {
        let mut client = ready(&app, &bob).await;
        client.send(resume_frame(&room, last_seen)).await;
        let got = if round < ROUNDS {
            let take = rng.random_range(0..=40);
            let got = collect_created(&mut client, &room, take, Duration::ZERO).await;
            if rng.random_bool(0.5) {
                let _ = client.stream.close(None).await;
            }
            drop(client);
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
            got
        } else {
            stop.cancel();
            let last = sending.take().unwrap().await.unwrap();
            let mut got = Vec::new();
            let deadline = Instant::now() + BOUND;
            while got
                .last()
                .map_or(last_seen, |m: &Value| m["seq"].as_i64().unwrap())
                < last
                && Instant::now() < deadline
            {
                got.extend(collect_created(&mut client, &room, 1, Duration::ZERO).await);
            }
            got.extend(collect_created(&mut client, &room, 0, QUIET).await);
            got
        };
        let seen = seqs(&got);
        connections.push((last_seen, seen.clone()));
        last_seen = seen.into_iter().max().unwrap_or(0).max(last_seen);
    }

    let history = history_all(&app, &alice, &room).await;
    let total = history.len();
    assert!(total > 0, "the sender sent something (seed {seed})");
    for (i, (from, seen)) in connections.iter().enumerate() {
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "connection {i} (resumed from {from}, seed {seed}) is out of order: {seen:?}"
        );
        if let Some(first) = seen.first() {
            assert_eq!(
                *first,
                from + 1,
                "connection {i}: the replay comes before live frames (seed {seed}): {seen:?}"
            );
        }
    }
    let union: BTreeSet<i64> = connections.iter().flat_map(|(_, s)| s.clone()).collect();
    let lost: Vec<i64> = one_to(total)
        .into_iter()
        .filter(|s| !union.contains(s))
        .collect();
    assert!(lost.is_empty(), "lost seqs {lost:?} (seed {seed})");
    assert_eq!(union.len(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_on_another_node_after_the_first_stops_replays_exactly_the_gap() {
    let node_a = spawn_app_with_redis().await;
    let node_b = start(node_a.database.clone(), node_a.settings.clone()).await;
    let (alice, bob, room) = room_with_two(&node_a).await;
    let mut on_a = ready(&node_a, &bob).await;
    for i in 1..=3 {
        rest_send(&node_a, &alice, &room, &format!("before {i}")).await;
    }
    let seen = collect_created(&mut on_a, &room, 3, Duration::ZERO).await;
    assert_eq!(seqs(&seen), [1, 2, 3]);

    node_a.stop().await;
    let (_, close) = until_close(&mut on_a, BOUND).await;
    assert_eq!(close, Some(1001), "a stopping node says going away");
    let mut missed = Vec::new();
    for i in 4..=7 {
        missed.push(rest_send(&node_b, &alice, &room, &format!("missed {i}")).await);
    }
    let mut on_b = ready(&node_b, &bob).await;
    on_b.send(resume_frame(&room, 3)).await;
    let live = rest_send(&node_b, &alice, &room, "live").await;

    let got = collect_created(&mut on_b, &room, 5, QUIET).await;
    assert_eq!(seqs(&got), [4, 5, 6, 7, 8], "the gap, then live, once each");
    assert_eq!(ids(&got[..4]), ids(&missed));
    assert_eq!(got[4]["id"], live["id"]);
}

#[tokio::test]
async fn a_gap_longer_than_resume_max_messages_asks_for_a_resync() {
    let app = spawn_app_with(|s| {
        s.insert("resume_max_messages".into(), "5".into());
    })
    .await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut client = ready(&app, &bob).await;
    rest_send(&app, &alice, &room, "seen").await;
    let seen = collect_created(&mut client, &room, 1, Duration::ZERO).await;
    assert_eq!(seqs(&seen), [1]);
    drop(client);

    for i in 2..=11 {
        rest_send(&app, &alice, &room, &format!("while away {i}")).await;
    }
    let mut client = ready(&app, &bob).await;
    client.send(resume_frame(&room, 1)).await;
    let mut before = Vec::new();
    let deadline = Instant::now() + BOUND;
    let resync = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = client.next(left).await.expect("resync_required");
        if frame["type"] == "resync_required" {
            break frame;
        }
        before.push(frame);
    };
    assert_eq!(resync["room_id"], room);
    assert_eq!(resync["last_seq"], 11);
    assert!(
        !before.iter().any(|f| is_created_in(f, &room)),
        "no partial replay before the resync: {before:?}"
    );
    let live = rest_send(&app, &alice, &room, "after the resync").await;
    let got = collect_created(&mut client, &room, 1, QUIET).await;
    assert_eq!(
        ids(&got),
        ids(&[live]),
        "live again from last_seq, nothing replayed"
    );
    drop(client);

    // A gap of exactly the cap is still replayed.
    for i in 13..=17 {
        rest_send(&app, &alice, &room, &format!("again {i}")).await;
    }
    let mut client = ready(&app, &bob).await;
    client.send(resume_frame(&room, 12)).await;
    let got = collect_created(&mut client, &room, 5, QUIET).await;
    assert_eq!(seqs(&got), [13, 14, 15, 16, 17]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_without_slowing_the_others() {
    const MESSAGES: usize = 500;
    // Room for a reader starved of CPU by the parallel suite (4 MiB of frames: the kernel
    // queues at most 128 KiB unsent, src/serve.rs); the stalled one overflows anyway.
    let app = spawn_app_with(|s| {
        s.insert("ws_outbox".into(), "256".into());
    })
    .await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut stalled = ready(&app, &bob).await;
    let mut healthy = ready(&app, &bob).await;
    // An answered heartbeat means the session's writer runs (see the startup test below).
    healthy.send(json!({"type": "heartbeat"})).await;
    healthy.expect("heartbeat_ack").await;
    // 16 KB per frame: 500 of them are more than the kernel's socket buffers take in.
    let content = "\u{1F600}".repeat(4000);

    let receiving = tokio::spawn({
        let room = room.clone();
        // Sending 500 frames of 16 KB can itself take 10 s in a busy suite: the bound here is
        // generous, and the assertion below judges how soon after the last send they arrived.
        async move {
            let bound = Duration::from_secs(60);
            collect_created_within(&mut healthy, &room, MESSAGES, Duration::ZERO, bound).await
        }
    });
    // The stalled client reads again as soon as it is cut off: it is told why (a client that
    // stays silent past the goodbye's 3 s is dropped untold, tests/api/slow_consumer.rs).
    let stalled_reads = tokio::spawn({
        let app_url = app.url("/metrics");
        async move {
            while slow_consumer_disconnects(&app_url).await == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            until_close(&mut stalled, BOUND).await
        }
    });
    let started = Instant::now();
    for _ in 0..MESSAGES {
        rest_send(&app, &alice, &room, &content).await;
    }
    let sent_after = started.elapsed();
    let got = receiving.await.unwrap();
    let received_after = started.elapsed();
    assert_eq!(
        seqs(&got),
        one_to(MESSAGES),
        "the reading subscriber got everything"
    );
    assert!(
        received_after < sent_after + Duration::from_secs(2),
        "the reading subscriber kept up: sent in {sent_after:?}, received in {received_after:?}"
    );

    let (frames, close) = tokio::time::timeout(BOUND, stalled_reads)
        .await
        .expect("the stalled client was not cut off")
        .unwrap();
    let delivered = frames.iter().filter(|f| is_created_in(f, &room)).count();
    assert!(delivered < MESSAGES, "the stalled client was not cut off");
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "slow_consumer"),
        "told why: last frame types {:?}",
        frames
            .iter()
            .rev()
            .take(3)
            .map(|f| f["type"].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(close, Some(1008));
}

async fn slow_consumer_disconnects(metrics_url: &str) -> u64 {
    let text = reqwest::get(metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("guildhall_slow_consumer_disconnects_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A session starting while its rooms are busy: nothing may hold up its writer long enough for
/// events to overflow the outbox of a client that reads from the first frame on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_client_is_not_cut_off_while_its_session_starts() {
    let app = spawn_app_with(|s| {
        s.insert("ws_outbox".into(), "8".into());
    })
    .await;
    let (alice, bob, room) = room_with_two(&app).await;
    let community = community_of(&app, &alice, &room).await;
    // Each user's first session is the one that sets up their presence.
    let mut readers = vec![bob];
    for name in ["carol", "dave", "erin", "frank"] {
        let user = app.register(name).await;
        let joined = app
            .post(
                &format!("/v1/communities/{community}/join"),
                Some(&user.access_token),
                json!({}),
            )
            .await;
        assert!(joined.status().is_success(), "{name} joins");
        readers.push(user);
    }
    // Steady traffic, one message at a time: far below what a reading client absorbs.
    let mut sender = ready(&app, &alice).await;
    sender
        .send(json!({"type": "unsubscribe", "room_ids": [room]}))
        .await;
    sender.expect("unsubscribed").await;
    let stop = CancellationToken::new();
    let sending = tokio::spawn({
        let (stop, room) = (stop.clone(), room.clone());
        async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                ws_send(&mut sender, &room, &format!("t{n}"), "tick").await;
            }
        }
    });

    let mut cut_off = Vec::new();
    for reader in &readers {
        let mut client = ready(&app, reader).await;
        let frames = frames_within(&mut client, Duration::from_millis(300)).await;
        if let Some(error) = frames.iter().find(|f| f["type"] == "error") {
            cut_off.push((reader.username.clone(), error.clone()));
        }
    }
    stop.cancel();
    sending.await.unwrap();
    assert!(
        cut_off.is_empty(),
        "reading clients were cut off: {cut_off:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Typing, permissions, receipts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn typing_reaches_others_is_never_stored_and_needs_send_permission() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let community = community_of(&app, &alice, &room).await;
    let mut a = ready(&app, &alice).await;
    let mut b = ready(&app, &bob).await;

    a.send(json!({"type": "typing", "room_id": room})).await;
    let typing = b.expect("typing").await;
    assert_eq!(typing["room_id"], room);
    assert_eq!(typing["user_id"], alice.user_id.to_string());
    assert!(
        typing["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{typing}"
    );
    assert!(
        history_all(&app, &alice, &room).await.is_empty(),
        "typing is not stored"
    );

    let member = role_id(&app, &alice, &community, "member").await;
    deny_in_room(
        &app,
        &alice,
        &room,
        &format!("role:{member}"),
        &["send_messages"],
    )
    .await;
    b.send(json!({"type": "typing", "room_id": room})).await;
    let refused = b.expect("error").await;
    assert_eq!(
        refused["code"], "forbidden",
        "visible but not permitted: {refused}"
    );
    let leaked: Vec<Value> = frames_within(&mut a, QUIET)
        .await
        .into_iter()
        .filter(|f| f["type"] == "typing")
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    b.send(send_frame(&room, "denied", "hello")).await;
    let refused = b.expect("error").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(refused["ref"], "denied");
    assert!(history_all(&app, &alice, &room).await.is_empty());
}

/// Bob is subscribed; the owner denies him `denied` in the room with a user override. Messages
/// sent more than a second later never reach him; alice still gets them.
async fn a_user_override_stops_delivery_within_a_second(denied: &str) {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut a = ready(&app, &alice).await;
    let mut b = ready(&app, &bob).await;
    rest_send(&app, &alice, &room, "everyone").await;
    assert_eq!(
        seqs(&collect_created(&mut b, &room, 1, Duration::ZERO).await),
        [1]
    );
    assert_eq!(
        seqs(&collect_created(&mut a, &room, 1, Duration::ZERO).await),
        [1]
    );

    let subject = format!("user:{}", bob.user_id);
    deny_in_room(&app, &alice, &room, &subject, &[denied]).await;
    // The contract's bound for a policy change to reach open sessions.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 2..=4 {
        rest_send(&app, &alice, &room, &format!("not for bob {i}")).await;
    }
    assert_eq!(
        seqs(&collect_created(&mut a, &room, 3, Duration::ZERO).await),
        [2, 3, 4]
    );
    let leaked = collect_created(&mut b, &room, 0, QUIET).await;
    assert!(
        leaked.is_empty(),
        "bob, denied {denied}, still receives: {:?}",
        seqs(&leaked)
    );
}

#[tokio::test]
async fn an_override_denying_read_history_stops_delivery_within_a_second() {
    a_user_override_stops_delivery_within_a_second("read_history").await;
}

#[tokio::test]
async fn an_override_denying_view_stops_delivery_within_a_second() {
    a_user_override_stops_delivery_within_a_second("view").await;
}

#[tokio::test]
async fn a_kicked_member_stops_receiving_the_room_within_a_second() {
    let app = spawn_app().await;
    let (alice, bob, community, room) = private_room_with_two(&app).await;
    let mut a = ready(&app, &alice).await;
    let mut b = ready(&app, &bob).await;
    rest_send(&app, &alice, &room, "everyone").await;
    assert_eq!(
        seqs(&collect_created(&mut b, &room, 1, Duration::ZERO).await),
        [1]
    );

    let kicked = app
        .request(
            Method::DELETE,
            &format!("/v1/communities/{community}/members/{}", bob.user_id),
            Some(&alice.access_token),
            None,
        )
        .await;
    body_of(kicked, StatusCode::NO_CONTENT, "kick").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 2..=4 {
        rest_send(&app, &alice, &room, &format!("not for bob {i}")).await;
    }
    assert_eq!(
        seqs(&collect_created(&mut a, &room, 4, Duration::ZERO).await),
        [1, 2, 3, 4]
    );
    let leaked = collect_created(&mut b, &room, 0, QUIET).await;
    assert!(leaked.is_empty(), "bob still receives: {:?}", seqs(&leaked));
}

async fn unread_of(app: &TestApp, user: &Session, room: &str) -> Value {
    let unread = app.get("/v1/unread", Some(&user.access_token)).await;
    let unread = body_of(unread, StatusCode::OK, "unread").await;
    unread["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room)
        .unwrap_or_else(|| panic!("room not in unread: {unread}"))
        .clone()
}

#[tokio::test]
async fn read_receipts_reach_members_and_unread_counts_follow() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut a = ready(&app, &alice).await;
    let mut b = ready(&app, &bob).await;
    rest_send(&app, &alice, &room, "one").await;
    rest_send(&app, &alice, &room, "hey @bob, look").await;
    rest_send(&app, &alice, &room, "three").await;

    let before = unread_of(&app, &bob, &room).await;
    assert_eq!(before["last_seq"], 3, "{before}");
    assert_eq!(before["last_read_seq"], 0, "{before}");
    assert_eq!(before["unread"], 3, "{before}");
    assert_eq!(before["mentions"], 1, "{before}");
    assert_eq!(unread_of(&app, &alice, &room).await["mentions"], 0);

    b.send(json!({"type": "read", "room_id": room, "seq": 3}))
        .await;
    let receipt = a.expect("receipt").await;
    assert_eq!(receipt["room_id"], room);
    assert_eq!(receipt["user_id"], bob.user_id.to_string());
    assert_eq!(receipt["seq"], 3);
    let after = unread_of(&app, &bob, &room).await;
    assert_eq!(after["last_read_seq"], 3, "{after}");
    assert_eq!(after["unread"], 0, "{after}");
    assert_eq!(after["mentions"], 0, "{after}");

    // The marker never moves back; a new mention counts again.
    let back = app
        .post(
            &format!("/v1/rooms/{room}/read"),
            Some(&bob.access_token),
            json!({"seq": 1}),
        )
        .await;
    assert_eq!(body_of(back, StatusCode::OK, "read").await["seq"], 3);
    rest_send(&app, &alice, &room, "@bob again").await;
    let again = unread_of(&app, &bob, &room).await;
    assert_eq!(again["unread"], 1, "{again}");
    assert_eq!(again["mentions"], 1, "{again}");
    drop(b);
}

// ---------------------------------------------------------------------------------------------
// Protocol errors and authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_and_unknown_frames_get_errors_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let (alice, _bob, _room) = room_with_two(&app).await;
    let mut client = ready(&app, &alice).await;
    for bad in [
        "{not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"send"}"#,
        "42",
    ] {
        client
            .stream
            .send(Message::Text(bad.to_owned().into()))
            .await
            .unwrap();
        let error = client.expect("error").await;
        assert!(
            error["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{bad}: {error}"
        );
        client.send(json!({"type": "heartbeat"})).await;
        client.expect("heartbeat_ack").await;
    }
}

#[tokio::test]
async fn an_oversized_frame_closes_1009() {
    let app = spawn_app().await;
    let (alice, _bob, _room) = room_with_two(&app).await;
    let mut client = ready(&app, &alice).await;
    let padding = "x".repeat(70 * 1024);
    client
        .send(json!({"type": "heartbeat", "padding": padding}))
        .await;
    let (_, close) = until_close(&mut client, BOUND).await;
    assert_eq!(close, Some(1009));
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_1007() {
    let app = spawn_app().await;
    let (alice, _bob, _room) = room_with_two(&app).await;
    let mut client = ready(&app, &alice).await;
    let payload: &[u8] = b"{\"type\":\"heartbeat\",\"x\":\"\xff\xfe\"}";
    let frame = Frame::message(payload.to_vec(), OpCode::Data(Data::Text), true);
    client.stream.send(Message::Frame(frame)).await.unwrap();
    let (_, close) = until_close(&mut client, BOUND).await;
    assert_eq!(close, Some(1007));
}

async fn upgrade_status(app: &TestApp, query: &str) -> u16 {
    let url = format!("ws://{}/v1/ws{query}", app.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => panic!("upgrade failed without a response: {err}"),
    }
}

#[tokio::test]
async fn an_upgrade_without_a_valid_token_is_401() {
    let app = spawn_app().await;
    let user = app.register("alice").await;
    let now = jsonwebtoken::get_current_timestamp();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user.user_id, "iat": now - 7200, "exp": now - 3600,
                "iss": "guildhall", "aud": "guildhall-clients"}),
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();

    assert_eq!(upgrade_status(&app, "").await, 401, "no token");
    assert_eq!(upgrade_status(&app, "?token=garbage").await, 401, "garbage");
    assert_eq!(
        upgrade_status(&app, &format!("?token={expired}")).await,
        401,
        "expired"
    );
    assert_eq!(
        upgrade_status(&app, &format!("?token={}", user.access_token)).await,
        101,
        "control: the real token upgrades"
    );
}

#[tokio::test]
async fn an_open_socket_is_closed_when_its_token_expires() {
    let app = spawn_app_with(|s| {
        s.insert("access_token_ttl_s".into(), "2".into());
    })
    .await;
    let user = app.register("alice").await;
    let mut client = ready(&app, &user).await;
    let connected = Instant::now();
    client.send(json!({"type": "heartbeat"})).await;
    client.expect("heartbeat_ack").await;

    let (frames, close) = until_close(&mut client, Duration::from_secs(5)).await;
    assert_eq!(
        close,
        Some(1008),
        "closed for the expired token: {frames:?}"
    );
    assert!(connected.elapsed() < Duration::from_secs(5));
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "unauthorized"),
        "{frames:?}"
    );
}
