//! Health, readiness, metrics, OpenAPI and offline docs.

use serde_json::Value;

use crate::helpers::{
    TcpProxy, assert_problem, base_settings, fresh_database, spawn_app, spawn_app_with_redis, start,
};

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    let health: Value = app.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready: Value = app.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["postgres"], "ok");
    assert_eq!(ready["redis"], "disabled");

    let clustered = spawn_app_with_redis().await;
    let ready: Value = clustered.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["redis"], "ok");
}

#[tokio::test]
async fn readyz_fails_naming_postgres_when_it_is_unreachable() {
    let database = fresh_database().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut settings = base_settings(&database);
    let url = settings["database_url"].replace("127.0.0.1:5432", &proxy.addr.to_string());
    settings.insert("database_url".into(), url);
    let app = start(database, settings).await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);

    proxy.cut();
    let body = assert_problem(app.get("/readyz", None).await, 503, "unavailable").await;
    assert!(
        body["detail"].as_str().unwrap().contains("postgres"),
        "{body}"
    );
    assert_eq!(body["errors"][0]["field"], "postgres");
    // Liveness does not depend on Postgres.
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn readyz_fails_naming_redis_when_it_is_unreachable() {
    let database = fresh_database().await;
    let target = crate::helpers::redis_url()
        .trim_start_matches("redis://")
        .to_owned();
    let proxy = TcpProxy::start(target.parse().unwrap()).await;
    let mut settings = base_settings(&database);
    settings.insert("redis_url".into(), format!("redis://{}", proxy.addr));
    let app = start(database, settings).await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);

    proxy.cut();
    let body = assert_problem(app.get("/readyz", None).await, 503, "unavailable").await;
    assert_eq!(body["errors"][0]["field"], "redis", "{body}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    let user = app.register("metricuser").await;
    app.get(
        &format!("/v1/users/{}", user.user_id),
        Some(&user.access_token),
    )
    .await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains(r#"guildhall_http_requests_total{method="POST",route="/v1/auth/register",status="201"} 1"#), "{text}");
    assert!(text.contains(r#"route="/v1/users/{user_id}""#), "{text}");
    assert!(
        !text.contains(&user.user_id.to_string()),
        "raw paths must not become labels"
    );
    assert!(text.contains("guildhall_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"guildhall_db_pool_connections{state="idle"}"#));
}

#[tokio::test]
async fn served_openapi_matches_the_committed_file() {
    let app = spawn_app().await;
    let served: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let committed: Value = serde_json::from_str(include_str!("../../openapi/openapi.json"))
        .expect("openapi/openapi.json is JSON");
    assert_eq!(served, committed);
    assert!(served["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn served_asyncapi_matches_the_committed_file() {
    let app = spawn_app().await;
    let response = app.get("/asyncapi.yaml", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let committed = include_str!("../../openapi/asyncapi.yaml");
    assert!(response.text().await.unwrap() == committed);
}

#[test]
fn committed_openapi_is_not_stale() {
    let generated = guildhall::openapi::spec_json();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    assert!(
        generated == committed,
        "openapi/openapi.json is stale: run `guildhall openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_documents_its_responses() {
    let spec: Value = serde_json::from_str(&guildhall::openapi::spec_json()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            assert!(operation["tags"].is_array(), "{method} {path} has a tag");
        }
    }
}

/// What SDK generators (scripts/sdk) need of the document: unique operation ids that are
/// identifiers in Python and TypeScript and not reserved words there, a description on every
/// response (OpenAPI requires one), an explicit security requirement on every operation, and no
/// anonymous object variants in a `oneOf`.
#[test]
fn operations_are_fit_for_sdk_generators() {
    const RESERVED: &[&str] = &[
        "delete", "new", "default", "import", "export", "class", "function", "return", "in", "is",
        "from", "async", "await", "with", "yield", "lambda", "pass", "global", "type", "get",
        "post", "put", "patch", "request", "client", "me", "user", "send", "search", "read",
    ];
    let spec: Value = serde_json::from_str(&guildhall::openapi::spec_json()).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && id.starts_with(|c: char| c.is_ascii_lowercase()),
                "{method} {path}: operationId {id:?} is not snake_case"
            );
            assert!(
                !RESERVED.contains(&id),
                "{method} {path}: operationId {id:?} is reserved or too generic"
            );
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("operationId {id:?} of {method} {path} is also {other}");
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
            assert!(
                operation["security"].is_array(),
                "{method} {path} does not say its security (`security: []` when public)"
            );
        }
    }
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        assert!(
            !name.contains('_'),
            "schema {name}: a generic instance, name it"
        );
        for variant in schema["oneOf"].as_array().into_iter().flatten() {
            assert!(
                variant.get("$ref").is_some()
                    || variant.get("title").is_some()
                    || variant["type"] != "object",
                "schema {name}: an anonymous object variant"
            );
        }
    }
}

#[tokio::test]
async fn docs_load_without_internet() {
    let app = spawn_app().await;
    let page = app.get("/docs/", None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("https://"),
        "the docs page must not load assets from the internet"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let response = app.get(&format!("/docs/{asset}"), None).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
}
