//! `guildhall admin ...`: the real binary against the test's database, effects checked through
//! the HTTP API of an app running on the same database.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TEST_SECRET, TestApp, database_url, spawn_app};
use crate::ws::WsClient;

fn admin(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Output {
    let url = database_url(&app.database);
    let mut child = Command::new(env!("CARGO_BIN_EXE_guildhall"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("GUILDHALL_DATABASE_URL", url.as_str()),
            ("GUILDHALL_JWT_SECRET", TEST_SECRET),
            ("GUILDHALL_LOG", "error"),
        ])
        .arg("admin")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A failing run: non-zero exit, the message on stderr, nothing on stdout.
fn fails(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
    assert!(output.stdout.is_empty());
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post(
        "/v1/auth/login",
        None,
        json!({"username": username, "password": password}),
    )
    .await
}

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

async fn create_community(app: &TestApp, token: &str, visibility: &str) -> String {
    let body = json!({"name": "Ops Test", "visibility": visibility});
    let community = json_of(
        app.post("/v1/communities", Some(token), body).await,
        StatusCode::CREATED,
    )
    .await;
    community["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn create_user_with_a_generated_or_piped_password() {
    let app = spawn_app().await;
    let out = ok(admin(&app, &["create-user", "--username", "Dora"], None));
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password (shown only now): "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(out.starts_with("created user dora "), "{out}");
    assert_eq!(password.len(), 24);
    let session = json_of(login(&app, "dora", password).await, StatusCode::OK).await;
    assert_eq!(session["user"]["display_name"], "dora");

    let out = ok(admin(
        &app,
        &[
            "create-user",
            "--username",
            "eve",
            "--display-name",
            "Eve Ops",
            "--password-stdin",
        ],
        Some("piped-password-1\n"),
    ));
    assert!(!out.contains("password"), "a piped password is not echoed");
    let session = json_of(login(&app, "eve", "piped-password-1").await, StatusCode::OK).await;
    assert_eq!(session["user"]["display_name"], "Eve Ops");

    fails(
        &admin(&app, &["create-user", "--username", "eve"], None),
        "username is taken",
    );
    fails(
        &admin(&app, &["create-user", "--username", "no spaces"], None),
        "username",
    );
    fails(
        &admin(
            &app,
            &["create-user", "--username", "frank", "--password-stdin"],
            Some("short\n"),
        ),
        "password",
    );
}

#[tokio::test]
async fn make_owner_brings_a_user_into_a_private_community_as_owner() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &alice.access_token, "private").await;
    let path = format!("/v1/communities/{community}");
    assert_eq!(
        app.get(&path, Some(&bob.access_token)).await.status(),
        StatusCode::NOT_FOUND
    );

    let out = ok(admin(
        &app,
        &["make-owner", "--community", &community, "--user", "bob"],
        None,
    ));
    assert!(out.contains("joined and is now an owner"), "{out}");
    // Owner things: ownership is only revocable by owners; bob takes alice's.
    let roles = json_of(
        app.get(&format!("{path}/roles"), Some(&bob.access_token))
            .await,
        StatusCode::OK,
    )
    .await;
    let owner_role = roles
        .as_array()
        .or_else(|| roles["items"].as_array())
        .unwrap()
        .iter()
        .find(|r| r["name"] == "owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = app
        .request(
            Method::DELETE,
            &format!("{path}/members/{}/roles/{owner_role}", alice.user_id),
            Some(&bob.access_token),
            None,
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    // The audit log names no acting user for the operator's grant.
    let audit = json_of(
        app.get(&format!("{path}/audit-log"), Some(&bob.access_token))
            .await,
        StatusCode::OK,
    )
    .await;
    let entries = audit["items"].as_array().unwrap();
    let grant = entries
        .iter()
        .find(|e| {
            e["action"] == "role_grants.insert" && e["after"]["user_id"] == bob.user_id.to_string()
        })
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(grant["actor_id"].is_null(), "{grant}");

    let again = ok(admin(
        &app,
        &[
            "make-owner",
            "--community",
            &community,
            "--user",
            &bob.user_id.to_string(),
        ],
        None,
    ));
    assert!(again.contains("already was an owner"), "{again}");
    let unknown = uuid::Uuid::now_v7().to_string();
    fails(
        &admin(
            &app,
            &["make-owner", "--community", &unknown, "--user", "bob"],
            None,
        ),
        &format!("unknown community: {unknown}"),
    );
    fails(
        &admin(
            &app,
            &["make-owner", "--community", &community, "--user", "nobody"],
            None,
        ),
        "unknown user: nobody",
    );
}

/// Polls `check` until it holds (the cutoff reaches the running app by NOTIFY).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn revoke_sessions_ends_refresh_tokens_access_tokens_and_websockets() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let second = json_of(login(&app, "alice", PASSWORD).await, StatusCode::OK).await;
    let bob = app.register("bob").await;
    let (mut socket, _) = WsClient::ready(&app, &alice.access_token).await;

    let out = ok(admin(&app, &["revoke-sessions", "--user", "alice"], None));
    assert!(out.contains("revoked 2 refresh token(s) of alice"), "{out}");

    for refresh in [
        alice.refresh_token.as_str(),
        second["refresh_token"].as_str().unwrap(),
    ] {
        let response = app
            .post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The open socket is told and closed with 1008.
    let notice = socket.next(Duration::from_secs(5)).await;
    let notice = notice.expect("a frame before the close");
    assert_eq!(notice["code"], "unauthorized", "{notice}");
    let close = tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::next(&mut socket.stream),
    )
    .await
    .expect("closed in time");
    match close {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Access tokens issued before the revocation are refused, on REST and the WebSocket.
    eventually("old access token refused", || async {
        app.get("/v1/users/me", Some(&alice.access_token))
            .await
            .status()
            == StatusCode::UNAUTHORIZED
    })
    .await;
    let handshake = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/ws?token={}",
        app.addr, alice.access_token
    ))
    .await;
    assert!(handshake.is_err(), "a revoked token cannot open a socket");
    // Others are untouched; alice can log in again.
    assert_eq!(
        app.get("/v1/users/me", Some(&bob.access_token))
            .await
            .status(),
        StatusCode::OK
    );
    let fresh = json_of(login(&app, "alice", PASSWORD).await, StatusCode::OK).await;
    let token = fresh["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/users/me", Some(&token)).await.status(),
        StatusCode::OK,
        "a token of a login right after the revocation is accepted"
    );

    fails(
        &admin(&app, &["revoke-sessions", "--user", "nobody"], None),
        "unknown user: nobody",
    );
}

#[tokio::test]
async fn export_community_writes_the_tree_members_and_messages() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let token = alice.access_token.as_str();
    let community = create_community(&app, token, "public").await;
    let join = app
        .post(
            &format!("/v1/communities/{community}/join"),
            Some(&bob.access_token),
            json!({}),
        )
        .await;
    assert!(join.status().is_success());
    let group = json_of(
        app.post(
            &format!("/v1/communities/{community}/groups"),
            Some(token),
            json!({"name": "General"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let room = json_of(
        app.post(
            &format!("/v1/communities/{community}/rooms"),
            Some(token),
            json!({"name": "chat", "group_id": group["id"], "private": false}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let room_id = room["id"].as_str().unwrap();
    let messages: usize = std::env::var("GUILDHALL_EXPORT_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut first = None;
    for i in 0..messages {
        let sender = if i % 2 == 0 { token } else { &bob.access_token };
        let message = json_of(
            app.post(
                &format!("/v1/rooms/{room_id}/messages"),
                Some(sender),
                json!({"content": format!("message number {i}")}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        first.get_or_insert(message);
    }
    let first = first.unwrap();
    let react = app
        .request(
            Method::PUT,
            &format!(
                "/v1/rooms/{room_id}/messages/{}/reactions/tada",
                first["id"].as_str().unwrap()
            ),
            Some(&bob.access_token),
            None,
        )
        .await;
    assert_eq!(react.status(), StatusCode::NO_CONTENT);
    let poll = app
        .post(
            &format!("/v1/rooms/{room_id}/polls"),
            Some(token),
            json!({"question": "Lunch?", "options": ["yes", "no"]}),
        )
        .await;
    assert_eq!(poll.status(), StatusCode::CREATED);

    let file = std::env::temp_dir().join(format!("gh-export-{}.json", uuid::Uuid::new_v4()));
    let started = Instant::now();
    let output = admin(
        &app,
        &[
            "export-community",
            "--community",
            &community,
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    println!("export of {messages} messages: {took:?} ({stderr})");
    let export: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    std::fs::remove_file(&file).unwrap();

    assert_eq!(export["format_version"], 1);
    assert_eq!(export["community"]["id"], community.as_str());
    assert_eq!(export["groups"][0]["name"], "General");
    assert!(
        export["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == room_id && r["group_id"] == group["id"])
    );
    let members = export["members"].as_array().unwrap();
    let alice_row = members.iter().find(|m| m["username"] == "alice").unwrap();
    assert!(
        alice_row["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["role"] == "owner"),
        "{alice_row}"
    );
    assert!(members.iter().any(|m| m["username"] == "bob"));
    assert!(
        export["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["builtin"] == "owner")
    );
    // Every message sent (plus the one carrying the poll), in seq order, with the reaction.
    let exported = export["messages"].as_array().unwrap();
    let texts: Vec<&str> = exported
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    for i in 0..messages {
        assert!(
            texts.contains(&format!("message number {i}").as_str()),
            "message {i}"
        );
    }
    let seqs: Vec<i64> = exported
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order");
    let reacted = exported.iter().find(|m| m["id"] == first["id"]).unwrap();
    assert_eq!(reacted["reactions"][0]["emoji"], "tada");
    assert_eq!(reacted["reactions"][0]["user_id"], bob.user_id.to_string());
    let polls = export["polls"].as_array().unwrap();
    assert_eq!(polls.len(), 1);
    assert_eq!(polls[0]["options"].as_array().unwrap().len(), 2);
    for section in ["overrides", "bans", "attachments", "surveys", "events"] {
        assert!(export[section].is_array(), "{section}");
    }
    assert!(
        stderr.contains(&format!("{} messages", messages + 1)),
        "{stderr}"
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    fails(
        &admin(&app, &["export-community", "--community", &unknown], None),
        "unknown community",
    );
}
