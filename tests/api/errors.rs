//! problem+json for every error class, including those raised outside handlers.

use serde_json::json;

use crate::helpers::{assert_problem, problem_fields, spawn_app, spawn_app_with};

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "validation_failed").await;
}

#[tokio::test]
async fn missing_field_and_wrong_type_are_422_naming_the_field() {
    let app = spawn_app().await;
    let missing = app
        .post("/v1/auth/login", None, json!({"username": "x"}))
        .await;
    assert_eq!(
        problem_fields(&assert_problem(missing, 422, "validation_failed").await),
        ["password"]
    );
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            json!({"username": 5, "password": "p"}),
        )
        .await;
    assert_eq!(
        problem_fields(&assert_problem(wrong, 422, "validation_failed").await),
        ["username"]
    );
}

#[tokio::test]
async fn bad_path_parameter_is_422_naming_it() {
    let app = spawn_app().await;
    let user = app.register("pathuser").await;
    let response = app
        .get("/v1/users/not-a-uuid", Some(&user.access_token))
        .await;
    assert_eq!(
        problem_fields(&assert_problem(response, 422, "validation_failed").await),
        ["user_id"]
    );
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let app = spawn_app().await;
    assert_problem(app.get("/v1/nope", None).await, 404, "not_found").await;
    let response = app
        .client
        .delete(app.url("/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app_with(|s| {
        s.insert("body_limit_bytes".into(), "1024".into());
    })
    .await;
    let big = json!({"username": "x".repeat(4096), "password": "p"});
    assert_problem(
        app.post("/v1/auth/login", None, big).await,
        413,
        "payload_too_large",
    )
    .await;
    // Chunked (no Content-Length) bodies hit the same limit while being read.
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn conflict_is_409() {
    let app = spawn_app().await;
    app.register("dupe").await;
    let again = app
        .post(
            "/v1/auth/register",
            None,
            json!({"username": "dupe", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_problem(again, 409, "conflict").await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let ok = app.get("/healthz", None).await;
    let id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    let failed = app.get("/v1/nope", None).await;
    assert!(failed.headers().contains_key("x-request-id"));
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
}
