//! The WebSocket gateway end to end.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
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
