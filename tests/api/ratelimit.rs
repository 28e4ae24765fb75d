//! Login and register limits: 429 with Retry-After, per username and per IP, shared across nodes
//! through Redis, and off with GUILDHALL_RATE_LIMITS=off.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_problem, redis_url, spawn_app_with, start};

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
