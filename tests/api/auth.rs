use futures::future::join_all;
use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Session, assert_problem, problem_fields, spawn_app};

#[tokio::test]
async fn register_login_and_read_profiles() {
    let app = spawn_app().await;

    let response = app
        .post(
            "/v1/auth/register",
            None,
            json!({"username": "Alice", "password": PASSWORD, "display_name": "  Alice L.  "}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["user"]["username"], "alice",
        "usernames are stored lower-case"
    );
    assert_eq!(body["user"]["display_name"], "Alice L.");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let alice = Session::from_json(&body);

    let login = app
        .post(
            "/v1/auth/login",
            None,
            json!({"username": "ALICE", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let login = Session::from_json(&login.json().await.unwrap());
    assert_eq!(login.user_id, alice.user_id);
    assert_ne!(
        login.refresh_token, alice.refresh_token,
        "each login is its own session"
    );

    let me: Value = app
        .get("/v1/users/me", Some(&login.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], alice.user_id.to_string());
    assert!(me.get("password_hash").is_none());

    let bob = app.register("bob").await;
    let seen: Value = app
        .get(
            &format!("/v1/users/{}", alice.user_id),
            Some(&bob.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["username"], "alice");
    assert_eq!(seen["display_name"], "Alice L.");

    let missing = app
        .get(
            &format!("/v1/users/{}", uuid::Uuid::now_v7()),
            Some(&bob.access_token),
        )
        .await;
    assert_problem(missing, 404, "not_found").await;
    let anonymous = app.get(&format!("/v1/users/{}", alice.user_id), None).await;
    assert_problem(anonymous, 401, "unauthorized").await;
}

#[tokio::test]
async fn duplicate_usernames_conflict_case_insensitively() {
    let app = spawn_app().await;
    app.register("carol").await;
    let again = app
        .post(
            "/v1/auth/register",
            None,
            json!({"username": "CAROL", "password": PASSWORD}),
        )
        .await;
    let body = assert_problem(again, 409, "conflict").await;
    assert_eq!(problem_fields(&body), ["username"]);
}

#[tokio::test]
async fn invalid_registrations_name_every_bad_field() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/v1/auth/register",
            None,
            json!({"username": "dave", "password": "short", "display_name": "   "}),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&body), ["password", "display_name"]);

    for (username, password) in [
        ("a", PASSWORD),
        ("no spaces", PASSWORD),
        ("_x_", PASSWORD),
        ("erin", "erin"),
    ] {
        let response = app
            .post(
                "/v1/auth/register",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert!(!problem_fields(&body).is_empty());
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = spawn_app().await;
    app.register("frank").await;
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            json!({"username": "frank", "password": "not the password"}),
        )
        .await;
    let wrong = assert_problem(wrong, 401, "unauthorized").await;
    let unknown = app
        .post(
            "/v1/auth/login",
            None,
            json!({"username": "nobody", "password": "not the password"}),
        )
        .await;
    let unknown = assert_problem(unknown, 401, "unauthorized").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
}

async fn refresh(app: &crate::helpers::TestApp, token: &str) -> reqwest::Response {
    app.post("/v1/auth/refresh", None, json!({"refresh_token": token}))
        .await
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let first = app.register("grace").await;

    let second = refresh(&app, &first.refresh_token).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second = Session::from_json(&second.json().await.unwrap());
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        app.get("/v1/users/me", Some(&second.access_token))
            .await
            .status(),
        200
    );

    let third = Session::from_json(
        &refresh(&app, &second.refresh_token)
            .await
            .json()
            .await
            .unwrap(),
    );

    // The spent first token comes back: the whole session is revoked, including `third`.
    assert_problem(
        refresh(&app, &first.refresh_token).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        refresh(&app, &third.refresh_token).await,
        401,
        "unauthorized",
    )
    .await;

    // Another session of the same user is unaffected.
    let other = app
        .post(
            "/v1/auth/login",
            None,
            json!({"username": "grace", "password": PASSWORD}),
        )
        .await;
    let other = Session::from_json(&other.json().await.unwrap());
    assert_eq!(
        refresh(&app, &other.refresh_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_yield_one_winner() {
    let app = spawn_app().await;
    let session = app.register("heidi").await;
    let attempts = (0..8).map(|_| refresh(&app, &session.refresh_token));
    let statuses: Vec<u16> = join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    let session = app.register("ivan").await;
    let db = app.db().await;
    db.execute_unprepared("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    let body = assert_problem(
        refresh(&app, &session.refresh_token).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let session = app.register("judy").await;
    let response = app
        .post(
            "/v1/auth/logout",
            None,
            json!({"refresh_token": session.refresh_token}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(
        refresh(&app, &session.refresh_token).await,
        401,
        "unauthorized",
    )
    .await;
    // Idempotent: logging out again, or with an unknown token, is fine.
    let again = app
        .post("/v1/auth/logout", None, json!({"refresh_token": "unknown"}))
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id() {
    let app = spawn_app().await;
    app.register("mallory").await;
    let db = app.db().await;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT password_hash FROM users WHERE username = 'mallory'",
        ))
        .await
        .unwrap()
        .unwrap();
    let hash: String = row.try_get("", "password_hash").unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}
