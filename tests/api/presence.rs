//! Presence across nodes.

use serde_json::Value;

use crate::realtime::room_with_two;
use crate::ws::WsClient;

/// The next `presence` frame about `user` (others, e.g. the watcher's own, are skipped).
async fn presence_of(client: &mut WsClient, user: uuid::Uuid) -> Value {
    loop {
        let frame = client.expect("presence").await;
        if frame["user_id"] == user.to_string() {
            return frame;
        }
    }
}

#[tokio::test]
async fn presence_goes_online_and_offline_on_one_node() {
    let app = crate::helpers::spawn_app().await;
    let (alice, bob, _room) = room_with_two(&app).await;
    let (mut watcher, _) = WsClient::ready(&app, &alice.access_token).await;
    let (bob_socket, _) = WsClient::ready(&app, &bob.access_token).await;
    let online = presence_of(&mut watcher, bob.user_id).await;
    assert_eq!(online["user_id"], bob.user_id.to_string());
    assert_eq!(online["status"], "online");
    drop(bob_socket);
    let offline = presence_of(&mut watcher, bob.user_id).await;
    assert_eq!(offline["status"], "offline");
}

#[tokio::test]
async fn presence_goes_online_and_offline_across_nodes() {
    let node_a = crate::helpers::spawn_app_with_redis().await;
    let node_b = crate::helpers::start(node_a.database.clone(), node_a.settings.clone()).await;
    let (alice, bob, _room) = room_with_two(&node_a).await;
    let (mut watcher, _) = WsClient::ready(&node_a, &alice.access_token).await;
    let (bob_socket, _) = WsClient::ready(&node_b, &bob.access_token).await;
    let online = presence_of(&mut watcher, bob.user_id).await;
    assert_eq!(online["user_id"], bob.user_id.to_string());
    assert_eq!(online["status"], "online");
    drop(bob_socket);
    let offline = presence_of(&mut watcher, bob.user_id).await;
    assert_eq!(offline["user_id"], bob.user_id.to_string());
    assert_eq!(offline["status"], "offline");
}

/// `online` of each member in `GET /v1/communities/{id}/members`, by user id.
async fn listed_online(
    app: &crate::helpers::TestApp,
    token: &str,
    room: &str,
) -> Vec<(String, bool)> {
    let room: Value = app
        .get(&format!("/v1/rooms/{room}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    let community = room["community_id"].as_str().unwrap();
    let page: Value = app
        .get(&format!("/v1/communities/{community}/members"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    let mut members: Vec<(String, bool)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().to_owned(),
                m["online"].as_bool().unwrap(),
            )
        })
        .collect();
    members.sort();
    members
}

#[tokio::test]
async fn member_lists_show_who_is_online_on_any_node() {
    let node_a = crate::helpers::spawn_app_with_redis().await;
    let node_b = crate::helpers::start(node_a.database.clone(), node_a.settings.clone()).await;
    let (alice, bob, room) = room_with_two(&node_a).await;
    let listed = |alice_online: bool, bob_online: bool| {
        vec![
            ("alice".to_owned(), alice_online),
            ("bob".to_owned(), bob_online),
        ]
    };
    assert_eq!(
        listed_online(&node_a, &alice.access_token, &room).await,
        listed(false, false)
    );

    let (mut watcher, _) = WsClient::ready(&node_a, &alice.access_token).await;
    let (bob_socket, _) = WsClient::ready(&node_b, &bob.access_token).await;
    presence_of(&mut watcher, bob.user_id).await;
    assert_eq!(
        listed_online(&node_a, &alice.access_token, &room).await,
        listed(true, true)
    );
    assert_eq!(
        listed_online(&node_b, &alice.access_token, &room).await,
        listed(true, true)
    );

    drop(bob_socket);
    assert_eq!(
        presence_of(&mut watcher, bob.user_id).await["status"],
        "offline"
    );
    assert_eq!(
        listed_online(&node_a, &alice.access_token, &room).await,
        listed(true, false)
    );
}

#[tokio::test]
async fn member_lists_show_who_is_online_without_redis() {
    let app = crate::helpers::spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let (mut watcher, _) = WsClient::ready(&app, &alice.access_token).await;
    let (bob_socket, _) = WsClient::ready(&app, &bob.access_token).await;
    presence_of(&mut watcher, bob.user_id).await;
    let both = vec![("alice".to_owned(), true), ("bob".to_owned(), true)];
    assert_eq!(listed_online(&app, &alice.access_token, &room).await, both);
    drop(bob_socket);
    presence_of(&mut watcher, bob.user_id).await;
    let alice_only = vec![("alice".to_owned(), true), ("bob".to_owned(), false)];
    assert_eq!(
        listed_online(&app, &alice.access_token, &room).await,
        alice_only
    );
}
