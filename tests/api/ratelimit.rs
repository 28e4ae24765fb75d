//! Rate limits: logins and registrations per username and IP, message sends (REST and WebSocket
//! together), typing; 429 / `rate_limited` with the wait, shared across nodes through Redis, and
//! off with GUILDHALL_RATE_LIMITS=off. Uploads are checked in media.rs, which has object storage.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_problem, redis_url, spawn_app_with, start};
use crate::realtime::room_with_two;
use crate::ws::WsClient;

async fn login(app: &TestApp, username: &str) -> reqwest::Response {
    app.post(
        "/v1/auth/login",
        None,
        json!({"username": username, "password": PASSWORD}),
    )
    .await
}

async fn assert_limited(response: reqwest::Response) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = assert_problem(response, 429, "rate_limited").await;
    assert_eq!(body["retry_after"], retry_after);
}

async fn limits_logins_per_username(redis: bool) {
    let app = spawn_app_with(|s| {
        s.insert("rate_limit_auth_per_username_per_min".into(), "3".into());
        if redis {
            s.insert("redis_url".into(), redis_url());
        }
    })
    .await;
    app.register("target").await;
    for _ in 0..3 {
        assert_eq!(login(&app, "target").await.status(), 200);
    }
    assert_limited(login(&app, "target").await).await;
    assert_limited(login(&app, "TARGET").await).await;
    // Other accounts are not affected by guessing against one.
    app.register("bystander").await;
    assert_eq!(login(&app, "bystander").await.status(), 200);
}

#[tokio::test]
async fn logins_are_limited_per_username_in_process() {
    limits_logins_per_username(false).await;
}

#[tokio::test]
async fn logins_are_limited_per_username_through_redis() {
    limits_logins_per_username(true).await;
}

#[tokio::test]
async fn registrations_are_limited_per_ip() {
    let app = spawn_app_with(|s| {
        s.insert("rate_limit_auth_per_ip_per_min".into(), "2".into());
    })
    .await;
    app.register("one").await;
    app.register("two").await;
    let third = app
        .post(
            "/v1/auth/register",
            None,
            json!({"username": "three", "password": PASSWORD}),
        )
        .await;
    assert_limited(third).await;
}

#[tokio::test]
async fn two_nodes_share_one_limit_through_redis() {
    let node_a = spawn_app_with(|s| {
        s.insert("rate_limit_auth_per_username_per_min".into(), "2".into());
        s.insert("redis_url".into(), redis_url());
    })
    .await;
    let node_b = start(node_a.database.clone(), node_a.settings.clone()).await;
    node_a.register("shared").await;
    assert_eq!(login(&node_a, "shared").await.status(), 200);
    assert_eq!(login(&node_b, "shared").await.status(), 200);
    assert_limited(login(&node_a, "shared").await).await;
    assert_limited(login(&node_b, "shared").await).await;
}

#[tokio::test]
async fn rate_limits_off_disables_them() {
    let app = spawn_app_with(|s| {
        s.insert("rate_limits".into(), "off".into());
        s.insert("rate_limit_auth_per_username_per_min".into(), "1".into());
    })
    .await;
    app.register("free").await;
    for _ in 0..5 {
        assert_eq!(login(&app, "free").await.status(), 200);
    }
}

/// Sends as `user` as fast as it can for `span`, alternating over `nodes`; returns how many
/// were accepted and how long it took. Every refusal must be a proper 429.
async fn send_for(
    nodes: &[&TestApp],
    token: &str,
    room: &str,
    span: std::time::Duration,
) -> (u32, f64) {
    let started = std::time::Instant::now();
    let mut accepted = 0;
    for i in 0.. {
        if started.elapsed() >= span {
            break;
        }
        let node = nodes[i % nodes.len()];
        let response = node
            .post(
                &format!("/v1/rooms/{room}/messages"),
                Some(token),
                json!({"content": format!("m{i}"), "client_msg_id": format!("k{i}")}),
            )
            .await;
        if response.status() == 201 {
            accepted += 1;
        } else {
            assert_limited(response).await;
        }
    }
    (accepted, started.elapsed().as_secs_f64())
}

/// What a bucket of `burst` refilled at `per_sec` may grant over `elapsed` seconds (+1: the
/// token that comes back while the last request is in flight).
fn bound(burst: u32, per_sec: f64, elapsed: f64) -> f64 {
    f64::from(burst) + per_sec * elapsed + 1.0
}

fn message_limit(s: &mut std::collections::BTreeMap<String, String>, burst: u32, per_min: u32) {
    s.insert("rate_limit_messages_burst".into(), burst.to_string());
    s.insert("rate_limit_messages_per_min".into(), per_min.to_string());
}

#[tokio::test]
async fn message_sends_are_limited_per_user_over_rest_and_websocket() {
    let app = spawn_app_with(|s| message_limit(s, 5, 600)).await;
    let (alice, bob, room) = room_with_two(&app).await;
    let (accepted, elapsed) =
        send_for(&[&app], &alice.access_token, &room, Duration::from_secs(1)).await;
    assert!(accepted >= 5, "the burst is granted: {accepted}");
    assert!(
        f64::from(accepted) <= bound(5, 10.0, elapsed),
        "{accepted} in {elapsed:.2} s"
    );
    // The WebSocket spends the same bucket: a burst over it is refused frame by frame.
    let (mut ws, _) = WsClient::ready(&app, &alice.access_token).await;
    for i in 0..10 {
        ws.send(json!({"type": "send", "room_id": room, "client_msg_id": format!("w{i}"), "content": "x"}))
            .await;
    }
    let (mut replies, mut refused) = (0, 0);
    while replies < 10 {
        let frame = ws
            .next(Duration::from_secs(5))
            .await
            .expect("a reply per send");
        match frame["type"].as_str() {
            Some("ack") => replies += 1,
            Some("error") => {
                replies += 1;
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                assert!(frame["ref"].as_str().unwrap().starts_with('w'), "{frame}");
                let wait = frame["retry_after_ms"].as_u64().unwrap();
                assert!((1..=100).contains(&wait), "one token is 100 ms: {frame}");
                refused += 1;
            }
            _ => {}
        }
    }
    assert!(refused >= 5, "{refused} of 10 refused");
    // Bob has a bucket of his own.
    let (bob_accepted, _) =
        send_for(&[&app], &bob.access_token, &room, Duration::from_millis(1)).await;
    assert_eq!(bob_accepted, 1);
}

#[tokio::test]
async fn two_nodes_share_one_message_bucket_through_redis() {
    let node_a = spawn_app_with(|s| {
        message_limit(s, 4, 60);
        s.insert("redis_url".into(), redis_url());
    })
    .await;
    let node_b = start(node_a.database.clone(), node_a.settings.clone()).await;
    let (alice, _bob, room) = room_with_two(&node_a).await;
    let (accepted, elapsed) = send_for(
        &[&node_a, &node_b],
        &alice.access_token,
        &room,
        Duration::from_millis(1500),
    )
    .await;
    // Two separate buckets would grant 8 at once.
    assert!(accepted >= 4, "{accepted}");
    assert!(
        f64::from(accepted) <= bound(4, 1.0, elapsed),
        "{accepted} in {elapsed:.2} s"
    );
}

#[tokio::test]
async fn typing_beyond_its_rate_is_refused_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.insert("rate_limit_typing_burst".into(), "1".into());
        s.insert("rate_limit_typing_per_min".into(), "1".into());
    })
    .await;
    let (alice, bob, room) = room_with_two(&app).await;
    let (mut a, _) = WsClient::ready(&app, &alice.access_token).await;
    let (mut b, _) = WsClient::ready(&app, &bob.access_token).await;
    a.send(json!({"type": "typing", "room_id": room})).await;
    assert_eq!(
        b.expect("typing").await["user_id"],
        alice.user_id.to_string()
    );
    // Past the per-room coalescing window, the user's bucket is what refuses.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send(json!({"type": "typing", "room_id": room})).await;
    let error = a.expect("error").await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    let wait = error["retry_after_ms"].as_u64().unwrap();
    assert!((50_000..=60_000).contains(&wait), "{error}");
    while let Some(frame) = b.next(Duration::from_millis(300)).await {
        assert_ne!(frame["type"], "typing", "a refused notice is not relayed");
    }
}
