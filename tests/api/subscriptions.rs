//! Sessions follow membership as it changes, and hear about it.

use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::ws::WsClient;

#[tokio::test]
async fn joining_a_community_later_subscribes_open_sessions_to_its_rooms() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let newcomer = app.register("newcomer").await;
    let community: Value = app
        .post(
            "/v1/communities",
            Some(&owner.access_token),
            json!({"name": "later", "visibility": "public"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let community = community["id"].as_str().unwrap().to_owned();
    let room: Value = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&owner.access_token),
            json!({"name": "general"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let room = room["id"].as_str().unwrap().to_owned();
    let (mut socket, ready) = WsClient::ready(&app, &newcomer.access_token).await;
    assert_eq!(ready["room_ids"], json!([]));

    app.post(
        &format!("/v1/communities/{community}/join"),
        Some(&newcomer.access_token),
        json!({}),
    )
    .await;
    let joined = socket.expect("member.joined").await;
    assert_eq!(joined["community_id"], community.as_str());
    // Posting until one arrives: the session picks the room up within the re-check interval.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut n = 0;
    loop {
        n += 1;
        let body = json!({"content": format!("hello {n}")});
        app.post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&owner.access_token),
            body,
        )
        .await;
        if let Some(frame) = socket.next(std::time::Duration::from_millis(300)).await
            && frame["type"] == "message.created"
        {
            assert_eq!(frame["room_id"], room.as_str());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new room's messages never arrived"
        );
    }
}

#[tokio::test]
async fn room_updates_reach_the_room() {
    let app = spawn_app().await;
    let (alice, bob, room) = crate::realtime::room_with_two(&app).await;
    let (mut socket, _) = WsClient::ready(&app, &bob.access_token).await;
    let patch = json!({"topic": "new topic"});
    let response = app
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/rooms/{room}"),
            Some(&alice.access_token),
            Some(patch),
        )
        .await;
    assert_eq!(response.status(), 200);
    let updated = socket.expect("room.updated").await;
    assert_eq!(updated["room"]["topic"], "new topic");
}

#[tokio::test]
async fn browser_origins_must_be_allowed() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = crate::helpers::spawn_app_with(|s| {
        s.insert("ws_origins".into(), "https://app.example".into());
    })
    .await;
    let user = app.register("browser").await;
    let connect = |origin: &'static str| {
        let url = format!("ws://{}/v1/ws?token={}", app.addr, user.access_token);
        async move {
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        }
    };
    assert!(connect("https://app.example").await.is_ok());
    let refused = connect("https://evil.example").await.unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 403),
        other => panic!("expected an HTTP 403, got {other:?}"),
    }
}
