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

// ---------------------------------------------------------------------------------------------
// Monitoring files (scripts/monitoring) and structured logs
// ---------------------------------------------------------------------------------------------

/// Every sample name the server exports, including the histogram and counter suffixes of
/// families that have no samples yet.
fn exported_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                names.insert(format!("{}{suffix}", name.trim_end_matches("_total")));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// The `guildhall_*` metric names a PromQL expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("guildhall_") {
        let starts_word = rest[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if starts_word {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Every `expr` (and templating query) string anywhere in the dashboard.
fn dashboard_exprs(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(expr)) => out.push(expr.clone()),
                    _ => dashboard_exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// One rule of the alerts file, read by a parser for exactly the subset the file uses (a
/// list of `- alert:` maps with one-line values); anything else in a rule fails the test.
#[derive(Debug, Default)]
struct AlertRule {
    name: String,
    expr: String,
    duration: String,
    severity: String,
    summary: String,
}

fn parse_alerts(yaml: &str) -> Vec<AlertRule> {
    let mut rules: Vec<AlertRule> = Vec::new();
    for line in yaml.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let unquote = |v: &str| v.trim().trim_matches('"').to_owned();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            rules.push(AlertRule {
                name: unquote(name),
                ..AlertRule::default()
            });
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            continue;
        };
        let (key, value) = trimmed.split_once(':').unwrap_or((trimmed, ""));
        match key {
            "expr" => {
                assert!(
                    !matches!(value.trim(), "|" | ">" | "|-" | ">-"),
                    "one-line exprs only"
                );
                value.trim().clone_into(&mut rule.expr);
            }
            "for" => rule.duration = unquote(value),
            "severity" => rule.severity = unquote(value),
            "summary" => rule.summary = unquote(value),
            "labels" | "annotations" | "description" => {}
            other => panic!("unexpected key {other:?} in rule {}", rule.name),
        }
    }
    rules
}

#[tokio::test]
async fn monitoring_files_use_only_metrics_the_server_exports() {
    let app = spawn_app_with_redis().await;
    app.register("monitor").await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let exported = exported_names(&text);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/monitoring");

    let dashboard: Value =
        serde_json::from_slice(&std::fs::read(format!("{root}/grafana/guildhall.json")).unwrap())
            .unwrap();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    let rules =
        parse_alerts(&std::fs::read_to_string(format!("{root}/prometheus/alerts.yml")).unwrap());
    exprs.extend(rules.iter().map(|r| r.expr.clone()));
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty() || expr.contains("up{"),
            "an expression without a Guildhall metric: {expr}"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr}) is not exported; exported: {exported:?}"
            );
            used.insert(name);
        }
    }
    for needed in [
        "guildhall_ws_connections",
        "guildhall_broadcast_lag_seconds_count",
        "guildhall_broadcast_lag_seconds_bucket",
        "guildhall_slow_consumer_disconnects_total",
        "guildhall_bus_dropped_events_total",
        "guildhall_bus_publish_failures_total",
        "guildhall_persist_batch_size_bucket",
        "guildhall_persist_seconds_bucket",
        "guildhall_db_pool_connections",
        "guildhall_db_pool_max_connections",
        "guildhall_http_request_duration_seconds_bucket",
        "guildhall_http_requests_total",
    ] {
        assert!(used.contains(needed), "nothing shows {needed}");
    }
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    for needed in [
        "GuildhallInstanceDown",
        "GuildhallHigh5xxRate",
        "GuildhallBroadcastLagHigh",
        "GuildhallSlowConsumerDrops",
        "GuildhallDbPoolSaturated",
        "GuildhallRedisDegraded",
    ] {
        assert!(names.contains(&needed), "no {needed} alert in {names:?}");
    }
    for rule in &rules {
        assert!(
            !rule.expr.is_empty()
                && !rule.duration.is_empty()
                && ["warning", "critical"].contains(&rule.severity.as_str())
                && !rule.summary.is_empty(),
            "{rule:?}"
        );
    }
}

#[tokio::test]
async fn json_logs_carry_request_and_session_ids() {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let database = crate::helpers::fresh_database().await;
    let url = crate::helpers::database_url(&database);
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let bind = format!("127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("gh-json-log-{}.log", uuid::Uuid::new_v4()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_guildhall"))
        .env_clear()
        .envs([
            ("GUILDHALL_DATABASE_URL", url.as_str()),
            ("GUILDHALL_JWT_SECRET", crate::helpers::TEST_SECRET),
            ("GUILDHALL_BIND", &bind),
            ("GUILDHALL_LOG", "info,sqlx=warn"),
            ("GUILDHALL_LOG_FORMAT", "json"),
        ])
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{bind}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request_id = |value: Option<&str>| {
        let mut request = client.get(format!("{base}/healthz"));
        if let Some(value) = value {
            request = request.header("x-request-id", value);
        }
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(request_id(Some("ops-check-42")).await, "ops-check-42");
    for (given, why) in [
        (Some("bad id!"), "malformed"),
        (Some(&*"x".repeat(129)), "too long"),
        (None, "absent"),
    ] {
        let echoed = request_id(given).await;
        assert!(echoed.parse::<uuid::Uuid>().is_ok(), "{why}: {echoed}");
    }
    let session: Value = client
        .post(format!("{base}/v1/auth/register"))
        .json(&serde_json::json!({"username": "logger", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap();
    let user_id = session["user"]["id"].as_str().unwrap().to_owned();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{bind}/v1/ws?token={token}"))
            .await
            .unwrap();
    let ready: Value = loop {
        let frame = tokio::time::timeout(
            Duration::from_secs(10),
            futures::StreamExt::next(&mut socket),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            break serde_json::from_str(text.as_str()).unwrap();
        }
    };
    let session_id = ready["session_id"].as_str().unwrap().to_owned();
    drop(socket);

    let span_field = |line: &Value, field: &str| -> Option<String> {
        let spans = line["spans"].as_array().cloned().unwrap_or_default();
        std::iter::once(&line["span"])
            .chain(spans.iter())
            .find_map(|s| s[field].as_str().map(str::to_owned))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (request_line, session_line) = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let request_line = lines.iter().find(|l| {
            l["message"] == "request finished"
                && span_field(l, "request_id").as_deref() == Some("ops-check-42")
        });
        let session_line = lines.iter().find(|l| {
            span_field(l, "session_id").as_deref() == Some(session_id.as_str())
                && l["message"] == "websocket session ending"
        });
        if let (Some(r), Some(s)) = (request_line, session_line) {
            break (r.clone(), s.clone());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log lines missing:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(request_line["status"], 200, "{request_line}");
    assert!(request_line["latency_ms"].is_number(), "{request_line}");
    assert_eq!(
        span_field(&session_line, "user_id").as_deref(),
        Some(user_id.as_str())
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "server ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&log).unwrap();
}
