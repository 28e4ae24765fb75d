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
