//! Regressions found by `scripts/schemathesis` (property-based runs against the OpenAPI
//! document): each test pins one server fix so it holds without the fuzzer.

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, problem_fields, spawn_app};
use crate::realtime::body_of;

async fn community(app: &TestApp, token: &str, visibility: &str) -> Uuid {
    let body = body_of(
        app.post(
            "/v1/communities",
            Some(token),
            json!({"name": "regressions", "visibility": visibility}),
        )
        .await,
        StatusCode::CREATED,
        "create community",
    )
    .await;
    body["id"].as_str().unwrap().parse().unwrap()
}

/// Two policy changes in one community at once each took a key-share lock on the community
/// row (the audit row's foreign key) and then asked for the row lock that serializes policy
/// changes: a lock upgrade on both sides, so Postgres aborted one with "deadlock detected" (500).
#[tokio::test]
async fn concurrent_policy_changes_in_one_community_do_not_deadlock() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let token = owner.access_token.as_str();
    let id = community(&app, token, "private").await;
    let mut roles = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let role = body_of(
            app.post(
                &format!("/v1/communities/{id}/roles"),
                Some(token),
                json!({"name": name, "permissions": ["view"]}),
            )
            .await,
            StatusCode::CREATED,
            "create role",
        )
        .await;
        roles.push(role["id"].as_str().unwrap().to_owned());
    }

    let app = &app;
    for round in 0..5 {
        let patches = (0..16).map(|i| {
            let role = &roles[i % roles.len()];
            let permissions = if (i + round) % 2 == 0 {
                json!(["view", "create_rooms"])
            } else {
                json!(["view"])
            };
            let path = format!("/v1/communities/{id}/roles/{role}");
            async move {
                app.request(
                    Method::PATCH,
                    &path,
                    Some(token),
                    Some(json!({"permissions": permissions})),
                )
                .await
            }
        });
        let creates = (0..4).map(|i| {
            let path = format!("/v1/communities/{id}/roles");
            let body = json!({"name": format!("r{round}-{i}"), "permissions": []});
            async move { app.post(&path, Some(token), body).await }
        });
        let (patched, created) = tokio::join!(join_all(patches), join_all(creates));
        for response in patched {
            body_of(response, StatusCode::OK, "concurrent role patch").await;
        }
        for response in created {
            body_of(response, StatusCode::CREATED, "concurrent role create").await;
        }
    }
}

/// JSON has one number type and the schema says `integer`, for which `2.0` is valid: bodies
/// with integral floats were refused with 422 (`invalid type: floating point`).
#[tokio::test]
async fn integral_floats_are_accepted_as_integers() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let token = owner.access_token.as_str();
    let id = community(&app, token, "private").await;

    let invite = body_of(
        app.post(
            &format!("/v1/communities/{id}/invites"),
            Some(token),
            json!({"max_uses": 3.0, "expires_in_s": 3600.0}),
        )
        .await,
        StatusCode::CREATED,
        "invite with float counts",
    )
    .await;
    assert_eq!(invite["max_uses"], 3);

    let room = body_of(
        app.post(
            &format!("/v1/communities/{id}/rooms"),
            Some(token),
            json!({"name": "general"}),
        )
        .await,
        StatusCode::CREATED,
        "room",
    )
    .await;
    let room = room["id"].as_str().unwrap();
    body_of(
        app.post(
            &format!("/v1/rooms/{room}/messages"),
            Some(token),
            json!({"content": "hello"}),
        )
        .await,
        StatusCode::CREATED,
        "message",
    )
    .await;
    let marker = body_of(
        app.post(
            &format!("/v1/rooms/{room}/read"),
            Some(token),
            json!({"seq": 1.0}),
        )
        .await,
        StatusCode::OK,
        "read marker at 1.0",
    )
    .await;
    assert_eq!(marker["seq"], 1, "{marker}");

    // A fraction is still not an integer.
    let problem = assert_problem(
        app.post(
            &format!("/v1/rooms/{room}/read"),
            Some(token),
            json!({"seq": 1.5}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "seq", "{problem}");
}

/// serde reads a struct from a JSON array (fields by position), so `[null, null]` patched a
/// group and `[null, null]` created an invite. Bodies are objects.
#[tokio::test]
async fn array_bodies_are_refused() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let token = owner.access_token.as_str();
    let id = community(&app, token, "private").await;
    let group = body_of(
        app.post(
            &format!("/v1/communities/{id}/groups"),
            Some(token),
            json!({"name": "projects"}),
        )
        .await,
        StatusCode::CREATED,
        "group",
    )
    .await;
    let group = group["id"].as_str().unwrap();

    for (method, path) in [
        (Method::PATCH, format!("/v1/groups/{group}")),
        (Method::POST, format!("/v1/communities/{id}/invites")),
        (Method::PATCH, format!("/v1/communities/{id}")),
    ] {
        let response = app
            .request(
                method.clone(),
                &path,
                Some(token),
                Some(json!([null, null])),
            )
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(
            problem["errors"][0]["field"], "body",
            "{method} {path}: {problem}"
        );
    }
    // Nothing was created.
    let tree = body_of(
        app.get(&format!("/v1/communities/{id}"), Some(token)).await,
        StatusCode::OK,
        "community",
    )
    .await;
    assert_eq!(tree["name"], "regressions");
}

/// The ban body is optional (the spec says so now): no body and a `null` body both ban with no
/// reason; `null` was a 422.
#[tokio::test]
async fn ban_body_is_optional_and_may_be_null() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let token = owner.access_token.as_str();
    let id = community(&app, token, "public").await;
    for name in ["first", "second"] {
        let member = app.register(name).await;
        body_of(
            app.post(
                &format!("/v1/communities/{id}/join"),
                Some(&member.access_token),
                json!({}),
            )
            .await,
            StatusCode::OK,
            "join",
        )
        .await;
        let path = format!("/v1/communities/{id}/bans/{}", member.user_id);
        let request = app
            .client
            .put(app.url(&path))
            .bearer_auth(token)
            .header("content-type", "application/json");
        let request = if name == "first" {
            request
        } else {
            request.body("null")
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "ban ({name})");
    }
}

/// What the kernel answers is in the document for every operation: 401 where a token is
/// required, 404 and 422 where the path names a resource, 400/413/415/422 where there is a
/// JSON body; and a missing resource really answers a declared 404 (the audit log, a group
/// patch and a simulate used to answer undeclared 404s).
#[tokio::test]
async fn the_document_declares_the_kernel_responses() {
    let app = spawn_app().await;
    let spec = body_of(app.get("/openapi.json", None).await, StatusCode::OK, "spec").await;
    let mut missing = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let mut want = Vec::new();
            let security = operation["security"].as_array();
            if security
                .is_some_and(|s| !s.is_empty() && s.iter().all(|r| r.get("bearer").is_some()))
            {
                want.push("401");
            }
            let params = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if params.iter().any(|p| p["in"] == "path") {
                want.extend(["404", "422"]);
            }
            if params.iter().any(|p| p["in"] == "query") {
                want.push("422");
            }
            if operation.get("requestBody").is_some() {
                want.extend(["400", "413", "415", "422"]);
            }
            for status in want {
                if !responses.contains_key(status) {
                    missing.insert(format!("{} {path}: {status}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undeclared kernel responses: {missing:#?}"
    );

    let owner = app.register("owner").await;
    let token = owner.access_token.as_str();
    let random = Uuid::new_v4();
    for (method, path, body, template) in [
        (
            Method::GET,
            format!("/v1/communities/{random}/audit-log"),
            None,
            "/v1/communities/{community_id}/audit-log",
        ),
        (
            Method::PATCH,
            format!("/v1/groups/{random}"),
            Some(json!({})),
            "/v1/groups/{group_id}",
        ),
        (
            Method::POST,
            format!("/v1/rooms/{random}/permissions/simulate"),
            Some(json!({"changes": []})),
            "/v1/rooms/{room_id}/permissions/simulate",
        ),
    ] {
        let declared = &spec["paths"][template][method.as_str().to_lowercase()]["responses"];
        assert!(
            declared.get("404").is_some(),
            "{method} {template} declares 404"
        );
        assert_problem(
            app.request(method, &path, Some(token), body).await,
            404,
            "not_found",
        )
        .await;
    }
}

/// `Option<Uuid>` / `Option<DateTime>` fields are `oneOf` a formatted string and null: with a
/// type list generators dropped the format and sent `""` as a valid id.
#[tokio::test]
async fn nullable_formatted_fields_keep_their_format() {
    let app = spawn_app().await;
    let spec = body_of(app.get("/openapi.json", None).await, StatusCode::OK, "spec").await;
    let schemas = &spec["components"]["schemas"];
    for (schema, field, format) in [
        ("CreateRoom", "group_id", "uuid"),
        ("SendRequest", "reply_to", "uuid"),
        ("UpdateEvent", "ends_at", "date-time"),
        ("CreatePoll", "closes_at", "date-time"),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(
            property["oneOf"],
            json!([{"type": "string", "format": format}, {"type": "null"}]),
            "{schema}.{field}: {property}"
        );
    }
}

/// Display texts were trimmed before they were checked, so `"\r"` (a control character the
/// OpenAPI pattern forbids) was accepted as an empty description, a name of 100 characters
/// plus a space passed `maxLength: 100`, and a lone U+FEFF (blank to the pattern's `\s`)
/// passed as a name. Now the text as sent is checked, and only the minimum after trimming.
#[tokio::test]
async fn display_texts_are_checked_as_sent() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let token = Some(owner.access_token.as_str());
    let long = format!("{} ", "n".repeat(100));
    let refused = [
        json!({"name": "ok", "description": "\r", "visibility": "public"}),
        json!({"name": "ok\u{7}", "visibility": "public"}),
        json!({"name": long, "visibility": "public"}),
        json!({"name": "\u{feff}", "visibility": "public"}),
    ];
    for (body, field) in refused
        .into_iter()
        .zip(["description", "name", "name", "name"])
    {
        let response = app.post("/v1/communities", token, body.clone()).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem_fields(&problem), [field], "{body}");
    }

    let body =
        json!({"name": "  spaced\u{feff} ", "description": "two\nlines ", "visibility": "public"});
    let created = body_of(
        app.post("/v1/communities", token, body).await,
        StatusCode::CREATED,
        "create community",
    )
    .await;
    assert_eq!(created["name"], "spaced");
    assert_eq!(created["description"], "two\nlines");
}
