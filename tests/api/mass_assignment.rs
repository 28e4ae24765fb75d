//! Mass assignment: fields a client has no say over (owner, role, community, sender, ids,
//! counters, seq) are ignored in request bodies; what is stored comes from the path and the
//! token.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, spawn_app};

async fn call(app: &TestApp, method: Method, path: &str, user: &Session, body: Value) -> Value {
    let response = app
        .request(
            method,
            path,
            Some(&user.access_token),
            (!body.is_null()).then_some(body),
        )
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    json!({"status": status, "body": body})
}

async fn member_ids(app: &TestApp, user: &Session, community: &str) -> Vec<String> {
    let page = call(
        app,
        Method::GET,
        &format!("/v1/communities/{community}/members"),
        user,
        Value::Null,
    )
    .await;
    let mut ids: Vec<String> = page["body"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn fields_a_client_may_not_set_are_ignored() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chosen = Uuid::now_v7();
    let (a, b) = (alice.user_id.to_string(), bob.user_id.to_string());

    let created = call(
        &app,
        Method::POST,
        "/v1/communities",
        &alice,
        json!({
            "name": "c", "visibility": "public", "id": chosen, "owner_id": b,
            "created_by": b, "member_count": 999, "role": "member"
        }),
    )
    .await;
    assert_eq!(created["status"], 201, "{created}");
    let community = created["body"]["id"].as_str().unwrap().to_owned();
    assert_ne!(community, chosen.to_string(), "the server picks ids");
    assert_eq!(created["body"]["member_count"], 1);
    assert_eq!(member_ids(&app, &alice, &community).await, [a.as_str()]);
    // Alice is its owner whatever `owner_id` and `role` said: she may manage it.
    let renamed = call(
        &app,
        Method::PATCH,
        &format!("/v1/communities/{community}"),
        &alice,
        json!({"name": "c2"}),
    )
    .await;
    assert_eq!(renamed["status"], 200, "{renamed}");

    let joined = call(
        &app,
        Method::POST,
        &format!("/v1/communities/{community}/join"),
        &bob,
        json!({"role": "owner", "roles": ["owner"], "user_id": a}),
    )
    .await;
    assert!(
        joined["status"] == 200 || joined["status"] == 201,
        "{joined}"
    );
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(member_ids(&app, &alice, &community).await, both);
    let takeover = call(
        &app,
        Method::PATCH,
        &format!("/v1/communities/{community}"),
        &bob,
        json!({"name": "mine", "owner_id": b}),
    )
    .await;
    assert_eq!(
        takeover["status"], 403,
        "a member asking to be owner is still a member: {takeover}"
    );

    // A room made in Alice's community stays there, whatever community_id the body names.
    let bobs = call(
        &app,
        Method::POST,
        "/v1/communities",
        &bob,
        json!({"name": "b", "visibility": "public"}),
    )
    .await;
    let bobs = bobs["body"]["id"].as_str().unwrap().to_owned();
    let room = call(
        &app,
        Method::POST,
        &format!("/v1/communities/{community}/rooms"),
        &alice,
        json!({"name": "general", "community_id": bobs, "id": chosen}),
    )
    .await;
    assert_eq!(room["status"], 201, "{room}");
    assert_eq!(room["body"]["community_id"], community.as_str());
    assert_ne!(room["body"]["id"], chosen.to_string());
    let room = room["body"]["id"].as_str().unwrap().to_owned();

    // A message is the caller's, numbered by the room.
    let sent = call(
        &app,
        Method::POST,
        &format!("/v1/rooms/{room}/messages"),
        &alice,
        json!({
            "content": "hi", "sender_id": b, "seq": 100, "id": chosen, "room_id": bobs,
            "created_at": "2001-01-01T00:00:00Z"
        }),
    )
    .await;
    assert_eq!(sent["status"], 201, "{sent}");
    assert_eq!(sent["body"]["sender_id"], a.as_str());
    assert_eq!(sent["body"]["seq"], 1);
    assert_eq!(sent["body"]["room_id"], room.as_str());
    assert_ne!(sent["body"]["id"], chosen.to_string());
    assert_ne!(sent["body"]["created_at"], "2001-01-01T00:00:00Z");
}
