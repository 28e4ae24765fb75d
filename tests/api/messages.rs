//! Messaging over REST: send, history paging, limits, edit, delete, reactions, search, access.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Session, TestApp, assert_problem, problem_fields, spawn_app, spawn_app_with};
use crate::realtime::{
    QUIET, body_of, community_of, deny_in_room, history_all, ids, one_to, ready, rest_send,
    room_with_two, seqs,
};
use crate::ws::WsClient;

fn messages_of(room: &str) -> String {
    format!("/v1/rooms/{room}/messages")
}

async fn post_message(app: &TestApp, user: &Session, room: &str, body: Value) -> reqwest::Response {
    app.post(&messages_of(room), Some(&user.access_token), body)
        .await
}

/// One history page: (seqs, has_more).
async fn page(app: &TestApp, user: &Session, room: &str, query: &str) -> (Vec<i64>, bool) {
    let response = app
        .get(
            &format!("{}?{query}", messages_of(room)),
            Some(&user.access_token),
        )
        .await;
    let body = body_of(response, StatusCode::OK, query).await;
    let messages = body["messages"].as_array().unwrap();
    (seqs(messages), body["has_more"].as_bool().unwrap())
}

async fn create_community(app: &TestApp, owner: &Session, visibility: &str) -> String {
    let response = app
        .post(
            "/v1/communities",
            Some(&owner.access_token),
            json!({"name": format!("{visibility} place"), "visibility": visibility}),
        )
        .await;
    let body = body_of(response, StatusCode::CREATED, "create community").await;
    body["id"].as_str().unwrap().to_owned()
}

async fn create_room(
    app: &TestApp,
    owner: &Session,
    community: &str,
    name: &str,
    private: bool,
) -> String {
    let response = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&owner.access_token),
            json!({"name": name, "private": private}),
        )
        .await;
    let body = body_of(response, StatusCode::CREATED, "create room").await;
    body["id"].as_str().unwrap().to_owned()
}

async fn join(app: &TestApp, user: &Session, community: &str) {
    let response = app
        .post(
            &format!("/v1/communities/{community}/join"),
            Some(&user.access_token),
            json!({}),
        )
        .await;
    assert!(
        response.status().is_success(),
        "join: {}",
        response.status()
    );
}

fn message_path(room: &str, message: &Value) -> String {
    format!("{}/{}", messages_of(room), message["id"].as_str().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Send and history
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn history_pages_by_seq_without_gaps_or_overlap_while_messages_arrive() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    for i in 1..=25 {
        rest_send(&app, &alice, &room, &format!("m{i}")).await;
    }

    // Backwards from the newest, with new messages arriving between the pages.
    let newest = page(&app, &bob, &room, "limit=10").await;
    assert_eq!(newest, ((16..=25).collect(), true));
    for i in 26..=28 {
        rest_send(&app, &alice, &room, &format!("late {i}")).await;
    }
    let older = page(&app, &bob, &room, "before=16&limit=10").await;
    assert_eq!(older, ((6..=15).collect(), true));
    rest_send(&app, &alice, &room, "later still").await;
    let oldest = page(&app, &bob, &room, "before=6&limit=10").await;
    assert_eq!(oldest, ((1..=5).collect(), false));
    let mut walked: Vec<i64> = [oldest.0, older.0, newest.0].concat();
    walked.sort_unstable();
    assert_eq!(walked, one_to(25), "no gap, no overlap");

    // Forwards.
    assert_eq!(
        page(&app, &bob, &room, "after=0&limit=10").await,
        ((1..=10).collect(), true)
    );
    assert_eq!(
        page(&app, &bob, &room, "after=20&limit=100").await,
        ((21..=29).collect(), false)
    );
    assert_eq!(
        page(&app, &bob, &room, "after=29").await,
        (Vec::new(), false)
    );

    // The default page is the newest 50.
    for i in 30..=60 {
        rest_send(&app, &alice, &room, &format!("more {i}")).await;
    }
    assert_eq!(
        page(&app, &bob, &room, "").await,
        ((11..=60).collect(), true)
    );

    for bad in ["limit=0", "limit=101", "before=5&after=1"] {
        let response = app
            .get(
                &format!("{}?{bad}", messages_of(&room)),
                Some(&bob.access_token),
            )
            .await;
        assert_problem(response, 422, "validation_failed").await;
    }
}

#[tokio::test]
async fn a_sent_message_has_its_documented_shape() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let response = post_message(
        &app,
        &alice,
        &room,
        json!({"content": "hi @bob", "client_msg_id": "c-1"}),
    )
    .await;
    let message = body_of(response, StatusCode::CREATED, "send").await;
    assert_eq!(message["room_id"], room);
    assert_eq!(message["seq"], 1);
    assert_eq!(message["sender_id"], alice.user_id.to_string());
    assert_eq!(message["content"], "hi @bob");
    assert_eq!(message["client_msg_id"], "c-1");
    assert_eq!(message["mentions"], json!([bob.user_id.to_string()]));
    assert_eq!(message["attachments"], json!([]));
    assert_eq!(message["reply_to"], Value::Null);
    assert_eq!(message["edited_at"], Value::Null);
    assert_eq!(message["deleted"], false);
    assert!(message["created_at"].as_str().is_some(), "{message}");
    let stored = &history_all(&app, &bob, &room).await[0];
    assert_eq!(stored["id"], message["id"]);
    assert_eq!(stored["reactions"], json!([]));
}

/// The writer reserves a batch's seqs itself; the trigger keeps any other insert honest: a row
/// without seq gets the next one, a row with a seq the room never reserved is refused.
#[tokio::test]
async fn a_stored_message_cannot_take_a_seq_its_room_did_not_reserve() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    for i in 0..3 {
        post_message(&app, &alice, &room, json!({"content": format!("m{i}")})).await;
    }
    let db = app.db().await;
    let insert = |seq: &str| {
        format!(
            "INSERT INTO messages (id, room_id, sender_id, content, seq) \
             VALUES (gen_random_uuid(), '{room}', '{}', 'raw', {seq})",
            alice.user_id
        )
    };
    for bad in ["4", "0", "-1", "1000"] {
        let err = db
            .execute_unprepared(&insert(bad))
            .await
            .expect_err("an unreserved seq is refused");
        assert!(err.to_string().contains("not reserved"), "seq {bad}: {err}");
    }
    let err = db
        .execute_unprepared(&insert("2"))
        .await
        .expect_err("a taken seq is refused");
    assert!(
        err.to_string().contains("messages_room_id_seq_key"),
        "{err}"
    );
    db.execute_unprepared(&insert("NULL"))
        .await
        .expect("no seq: the trigger assigns one");
    let sent = post_message(&app, &alice, &room, json!({"content": "after"})).await;
    assert_eq!(body_of(sent, StatusCode::CREATED, "send").await["seq"], 5);
    assert_eq!(seqs(&history_all(&app, &bob, &room).await), [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn content_must_be_non_empty_and_at_most_4000_characters() {
    let app = spawn_app().await;
    let (alice, _bob, room) = room_with_two(&app).await;

    // Characters, not bytes: 4000 four-byte characters are fine.
    let longest = "\u{1F600}".repeat(4000);
    let response = post_message(&app, &alice, &room, json!({"content": longest})).await;
    let stored = body_of(response, StatusCode::CREATED, "4000 characters").await;
    assert_eq!(stored["content"], longest);

    let response = post_message(&app, &alice, &room, json!({"content": "x".repeat(4001)})).await;
    assert_problem(response, 413, "payload_too_large").await;
    for empty in ["", "   \n\t"] {
        let response = post_message(&app, &alice, &room, json!({"content": empty})).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem_fields(&problem), ["content"], "{empty:?}");
    }
    let response = post_message(&app, &alice, &room, json!({})).await;
    assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        seqs(&history_all(&app, &alice, &room).await),
        [1],
        "nothing else stored"
    );
}

#[tokio::test]
async fn message_max_chars_sets_the_limit() {
    let app = spawn_app_with(|s| {
        s.insert("message_max_chars".into(), "10".into());
    })
    .await;
    let (alice, _bob, room) = room_with_two(&app).await;
    let response = post_message(&app, &alice, &room, json!({"content": "0123456789"})).await;
    body_of(response, StatusCode::CREATED, "10 characters").await;
    let response = post_message(&app, &alice, &room, json!({"content": "0123456789a"})).await;
    assert_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn reply_to_must_name_a_message_of_the_same_room() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let community = community_of(&app, &alice, &room).await;
    let other_room = create_room(&app, &alice, &community, "other", false).await;
    let here = rest_send(&app, &alice, &room, "question").await;
    let elsewhere = rest_send(&app, &alice, &other_room, "elsewhere").await;

    let response = post_message(
        &app,
        &bob,
        &room,
        json!({"content": "answer", "reply_to": here["id"]}),
    )
    .await;
    let reply = body_of(response, StatusCode::CREATED, "reply").await;
    assert_eq!(reply["reply_to"], here["id"]);

    for (what, target) in [
        ("a message of another room", elsewhere["id"].clone()),
        ("no message", json!(uuid::Uuid::now_v7())),
    ] {
        let response = post_message(
            &app,
            &bob,
            &room,
            json!({"content": "answer", "reply_to": target}),
        )
        .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem_fields(&problem), ["reply_to"], "{what}");
    }
    assert_eq!(seqs(&history_all(&app, &bob, &room).await), [1, 2]);
}

// ---------------------------------------------------------------------------------------------
// Edit and delete
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_sender_edits_their_message_and_members_see_the_update() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let original = rest_send(&app, &alice, &room, "frist").await;
    let mut watcher = ready(&app, &bob).await;

    let response = app
        .request(
            Method::PATCH,
            &message_path(&room, &original),
            Some(&alice.access_token),
            Some(json!({"content": "first, @bob"})),
        )
        .await;
    let edited = body_of(response, StatusCode::OK, "edit").await;
    assert_eq!(edited["id"], original["id"]);
    assert_eq!(edited["seq"], original["seq"]);
    assert_eq!(edited["content"], "first, @bob");
    assert!(edited["edited_at"].is_string(), "{edited}");
    assert_eq!(edited["mentions"], json!([bob.user_id.to_string()]));

    let updated = watcher.expect("message.updated").await;
    assert_eq!(updated["room_id"], room);
    assert_eq!(updated["message"]["id"], original["id"]);
    assert_eq!(updated["message"]["content"], "first, @bob");
    assert!(updated["message"]["edited_at"].is_string(), "{updated}");
    let stored = &history_all(&app, &bob, &room).await[0];
    assert_eq!(stored["content"], "first, @bob");
    assert_eq!(stored["edited_at"], edited["edited_at"]);
}

#[tokio::test]
async fn editing_someone_elses_message_is_forbidden() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let bobs = rest_send(&app, &bob, &room, "bob's words").await;

    // Not even the owner rewrites someone else's words.
    let response = app
        .request(
            Method::PATCH,
            &message_path(&room, &bobs),
            Some(&alice.access_token),
            Some(json!({"content": "not what bob said"})),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = app
        .request(
            Method::PATCH,
            &message_path(&room, &json!({"id": uuid::Uuid::now_v7()})),
            Some(&bob.access_token),
            Some(json!({"content": "nothing there"})),
        )
        .await;
    assert_problem(response, 404, "not_found").await;
    let stored = &history_all(&app, &bob, &room).await[0];
    assert_eq!(stored["content"], "bob's words");
    assert_eq!(stored["edited_at"], Value::Null);
}

async fn delete(app: &TestApp, who: &Session, room: &str, message: &Value) -> reqwest::Response {
    app.request(
        Method::DELETE,
        &message_path(room, message),
        Some(&who.access_token),
        None,
    )
    .await
}

#[tokio::test]
async fn deleting_leaves_a_tombstone_and_needs_manage_messages_for_others() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let first = rest_send(&app, &alice, &room, "alice 1").await;
    let bobs = rest_send(&app, &bob, &room, "bob 1").await;
    let second = rest_send(&app, &alice, &room, "alice 2").await;
    let bobs_own = rest_send(&app, &bob, &room, "bob 2").await;
    let mut watcher = ready(&app, &bob).await;
    // Own message: a tombstone that keeps its seq.
    body_of(
        delete(&app, &alice, &room, &first).await,
        StatusCode::NO_CONTENT,
        "delete own",
    )
    .await;
    let deleted = watcher.expect("message.deleted").await;
    assert_eq!(deleted["message"]["id"], first["id"]);
    assert_eq!(deleted["message"]["deleted"], true);
    assert_eq!(deleted["message"]["content"], "");

    // Someone else's: members lack manage_messages, owners have it.
    assert_problem(delete(&app, &bob, &room, &second).await, 403, "forbidden").await;
    body_of(
        delete(&app, &alice, &room, &bobs).await,
        StatusCode::NO_CONTENT,
        "owner deletes",
    )
    .await;
    body_of(
        delete(&app, &bob, &room, &bobs_own).await,
        StatusCode::NO_CONTENT,
        "bob deletes own",
    )
    .await;

    let history = history_all(&app, &bob, &room).await;
    assert_eq!(seqs(&history), [1, 2, 3, 4], "tombstones keep their seq");
    let shown: Vec<(bool, &str)> = history
        .iter()
        .map(|m| {
            (
                m["deleted"].as_bool().unwrap(),
                m["content"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [(true, ""), (true, ""), (false, "alice 2"), (true, "")]
    );
    assert_eq!(history[0]["id"], first["id"]);
}

// ---------------------------------------------------------------------------------------------
// Reactions
// ---------------------------------------------------------------------------------------------

async fn react(app: &TestApp, user: &Session, room: &str, message: &Value, emoji: &str, add: bool) {
    let method = if add { Method::PUT } else { Method::DELETE };
    let response = app
        .request(
            method,
            &format!("{}/reactions/{emoji}", message_path(room, message)),
            Some(&user.access_token),
            None,
        )
        .await;
    body_of(response, StatusCode::NO_CONTENT, emoji).await;
}

async fn reactions_of(app: &TestApp, user: &Session, room: &str, message: &Value) -> Value {
    history_all(app, user, room)
        .await
        .into_iter()
        .find(|m| m["id"] == message["id"])
        .unwrap()["reactions"]
        .clone()
}

#[tokio::test]
async fn reactions_are_idempotent_counted_in_history_and_announced_once() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let message = rest_send(&app, &alice, &room, "react to me").await;
    let mut watcher = ready(&app, &alice).await;

    react(&app, &bob, &room, &message, "\u{1F44D}", true).await;
    react(&app, &bob, &room, &message, "\u{1F44D}", true).await;
    react(&app, &alice, &room, &message, "\u{1F44D}", true).await;
    react(&app, &alice, &room, &message, "tada", true).await;
    assert_eq!(
        reactions_of(&app, &bob, &room, &message).await,
        json!([{"emoji": "\u{1F44D}", "count": 2}, {"emoji": "tada", "count": 1}])
    );
    let added: Vec<Value> = crate::realtime::frames_within(&mut watcher, QUIET)
        .await
        .into_iter()
        .filter(|f| f["type"] == "reaction.added")
        .collect();
    assert_eq!(
        added.len(),
        3,
        "a repeated add is not announced again: {added:?}"
    );
    assert_eq!(added[0]["room_id"], room);
    assert_eq!(added[0]["message_id"], message["id"]);
    assert_eq!(added[0]["user_id"], bob.user_id.to_string());
    assert_eq!(added[0]["emoji"], "\u{1F44D}");

    react(&app, &bob, &room, &message, "\u{1F44D}", false).await;
    react(&app, &bob, &room, &message, "\u{1F44D}", false).await;
    let removed = watcher.expect("reaction.removed").await;
    assert_eq!(removed["user_id"], bob.user_id.to_string());
    assert_eq!(
        reactions_of(&app, &bob, &room, &message).await,
        json!([{"emoji": "\u{1F44D}", "count": 1}, {"emoji": "tada", "count": 1}])
    );
}

// ---------------------------------------------------------------------------------------------
// Search and access
// ---------------------------------------------------------------------------------------------

async fn search(app: &TestApp, user: &Session, query: &str) -> BTreeSet<String> {
    let response = app
        .get(&format!("/v1/search?{query}"), Some(&user.access_token))
        .await;
    let body = body_of(response, StatusCode::OK, query).await;
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn search_finds_words_only_in_rooms_the_caller_can_read() {
    let app = spawn_app().await;
    let (alice, bob, general) = room_with_two(&app).await;
    let carol = app.register("carol").await;
    let ours = community_of(&app, &alice, &general).await;
    let secret = create_room(&app, &alice, &ours, "secret", true).await;
    let theirs = create_community(&app, &carol, "public").await;
    let lounge = create_room(&app, &carol, &theirs, "lounge", false).await;
    join(&app, &bob, &theirs).await;
    let closed = create_community(&app, &carol, "private").await;
    let hidden = create_room(&app, &carol, &closed, "hidden", false).await;

    rest_send(&app, &alice, &general, "A Zebra, striped (general)").await;
    rest_send(&app, &alice, &secret, "zebra in secret").await;
    rest_send(&app, &alice, &secret, "okapi in secret").await;
    rest_send(&app, &carol, &lounge, "zebra in lounge").await;
    rest_send(&app, &carol, &hidden, "zebra in hidden").await;

    assert_eq!(
        search(&app, &bob, "q=zebra").await,
        set(&["A Zebra, striped (general)", "zebra in lounge"])
    );
    assert_eq!(
        search(&app, &bob, &format!("q=zebra&community_id={ours}")).await,
        set(&["A Zebra, striped (general)"])
    );
    assert_eq!(
        search(&app, &bob, &format!("q=zebra&room_id={lounge}")).await,
        set(&["zebra in lounge"])
    );
    assert!(
        search(&app, &bob, &format!("q=zebra&room_id={secret}"))
            .await
            .is_empty()
    );
    assert!(search(&app, &bob, "q=okapi").await.is_empty());
    assert_eq!(
        search(&app, &alice, "q=okapi").await,
        set(&["okapi in secret"])
    );
    assert_eq!(
        search(&app, &carol, &format!("q=zebra&community_id={closed}")).await,
        set(&["zebra in hidden"])
    );

    let response = app.get("/v1/search?q=%20", Some(&bob.access_token)).await;
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn search_skips_a_room_whose_view_is_denied_to_the_caller() {
    let app = spawn_app().await;
    let (alice, bob, general) = room_with_two(&app).await;
    let community = community_of(&app, &alice, &general).await;
    let muted = create_room(&app, &alice, &community, "muted", false).await;
    rest_send(&app, &alice, &general, "quokka in general").await;
    rest_send(&app, &alice, &muted, "quokka in muted").await;
    let subject = format!("user:{}", bob.user_id);
    deny_in_room(&app, &alice, &muted, &subject, &["view"]).await;

    // The room is invisible to bob now...
    let history = app.get(&messages_of(&muted), Some(&bob.access_token)).await;
    assert_problem(history, 404, "not_found").await;
    // ...so search, unread and the WebSocket's rooms leave it out as well.
    assert_eq!(
        search(&app, &bob, "q=quokka").await,
        set(&["quokka in general"])
    );
    let unread = app.get("/v1/unread", Some(&bob.access_token)).await;
    let unread = body_of(unread, StatusCode::OK, "unread").await;
    let listed: Vec<&Value> = unread["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["room_id"])
        .collect();
    assert!(
        !listed.contains(&&json!(muted)),
        "unread lists the hidden room: {unread}"
    );
    let (_, ready_frame) = WsClient::ready(&app, &bob.access_token).await;
    assert!(
        !ready_frame["room_ids"]
            .as_array()
            .unwrap()
            .contains(&json!(muted)),
        "ready lists the hidden room: {ready_frame}"
    );
}

#[tokio::test]
async fn outsiders_get_404_and_members_without_send_get_403() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let closed = create_community(&app, &alice, "private").await;
    let room = create_room(&app, &alice, &closed, "inner", false).await;
    let message = rest_send(&app, &alice, &room, "members only").await;

    let path = message_path(&room, &message);
    let attempts = [
        (Method::GET, messages_of(&room), None),
        (
            Method::POST,
            messages_of(&room),
            Some(json!({"content": "let me in"})),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"content": "defaced"})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::PUT, format!("{path}/reactions/tada"), None),
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            Some(json!({"seq": 1})),
        ),
    ];
    for (method, path, body) in attempts {
        let response = app
            .request(method.clone(), &path, Some(&bob.access_token), body)
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_problem(response, 404, "not_found").await;
    }
    let unread = app.get("/v1/unread", Some(&bob.access_token)).await;
    assert_eq!(
        body_of(unread, StatusCode::OK, "unread").await["rooms"],
        json!([])
    );
    assert_eq!(
        ids(&history_all(&app, &alice, &room).await),
        ids(&[message])
    );

    // A private room of a public community is just as closed to other members.
    let (carol, dave, general) = {
        let carol = app.register("carol").await;
        let dave = app.register("dave").await;
        let open = create_community(&app, &carol, "public").await;
        join(&app, &dave, &open).await;
        let general = create_room(&app, &carol, &open, "general", false).await;
        let private = create_room(&app, &carol, &open, "staff", true).await;
        rest_send(&app, &carol, &private, "staff only").await;
        let history = app
            .get(&messages_of(&private), Some(&dave.access_token))
            .await;
        assert_problem(history, 404, "not_found").await;
        let send = post_message(&app, &dave, &private, json!({"content": "hello?"})).await;
        assert_problem(send, 404, "not_found").await;
        (carol, dave, general)
    };

    // Visible but not permitted: 403.
    let community = community_of(&app, &carol, &general).await;
    let member = crate::realtime::role_id(&app, &carol, &community, "member").await;
    deny_in_room(
        &app,
        &carol,
        &general,
        &format!("role:{member}"),
        &["send_messages"],
    )
    .await;
    let send = post_message(&app, &dave, &general, json!({"content": "hello?"})).await;
    assert_problem(send, 403, "forbidden").await;
    let read = app
        .get(&messages_of(&general), Some(&dave.access_token))
        .await;
    body_of(read, StatusCode::OK, "dave still reads").await;
}
