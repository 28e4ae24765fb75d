//! Test harness: every test gets its own database (cloned from a migrated template), its own
//! Redis key prefix, and a real app on a random port.
#![allow(dead_code)] // Shared by all test modules; not every helper is used by each one.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use guildhall::{App, Config};
use reqwest::{Method, Response, StatusCode};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789";
pub const PASSWORD: &str = "correct horse battery";

pub fn admin_url() -> String {
    std::env::var("GUILDHALL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://guildhall:guildhall@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("GUILDHALL_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `postgres://.../postgres` -> `postgres://.../<name>`.
pub fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

async fn admin_connection() -> DatabaseConnection {
    let mut options = ConnectOptions::new(admin_url());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .expect("connect to the admin database")
}

/// Template name from the migrations' source, so a changed migration gets a fresh template.
fn template_name() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migration/src");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        std::fs::read(&file).unwrap().hash(&mut hasher);
    }
    format!("gh_tmpl_{:016x}", hasher.finish())
}

async fn exec(db: &DatabaseConnection, sql: &str) -> Result<(), sea_orm::DbErr> {
    db.execute_unprepared(sql).await.map(|_| ())
}

async fn database_exists(db: &DatabaseConnection, name: &str) -> bool {
    let stmt = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT 1 FROM pg_database WHERE datname = $1",
        [name.into()],
    );
    db.query_one_raw(stmt).await.unwrap().is_some()
}

/// Builds the template once across all test processes (advisory lock), under a temporary
/// name renamed at the end, so a crash never leaves a half-migrated template behind.
async fn ensure_template(admin: &DatabaseConnection) -> String {
    let template = template_name();
    exec(admin, "SELECT pg_advisory_lock(727274)")
        .await
        .unwrap();
    if !database_exists(admin, &template).await {
        let building = format!("{template}_building");
        exec(admin, &format!("DROP DATABASE IF EXISTS {building}"))
            .await
            .unwrap();
        exec(admin, &format!("CREATE DATABASE {building}"))
            .await
            .unwrap();
        let db = Database::connect(database_url(&building)).await.unwrap();
        guildhall::db::migrate_up(&db, None).await.unwrap();
        db.close().await.unwrap();
        exec(
            admin,
            &format!("ALTER DATABASE {building} RENAME TO {template}"),
        )
        .await
        .unwrap();
    }
    exec(admin, "SELECT pg_advisory_unlock(727274)")
        .await
        .unwrap();
    template
}

/// A fresh, migrated database for one test.
pub async fn fresh_database() -> String {
    let admin = admin_connection().await;
    let template = ensure_template(&admin).await;
    let name = format!("gh_test_{}", Uuid::new_v4().simple());
    for attempt in 0.. {
        match exec(
            &admin,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await
        {
            Ok(()) => break,
            // Another process may be copying the same template at this instant.
            Err(err) if attempt < 50 && err.to_string().contains("being accessed") => {
                tokio::time::sleep(Duration::from_millis(20 + attempt * 10)).await;
            }
            Err(err) => panic!("create test database: {err}"),
        }
    }
    admin.close().await.unwrap();
    name
}

/// Settings as the TOML file / env would give them; tests add or override keys.
pub fn base_settings(database: &str) -> BTreeMap<String, String> {
    [
        ("bind", "127.0.0.1:0".to_owned()),
        ("database_url", database_url(database)),
        ("database_max_connections", "5".to_owned()),
        // Dozens of apps share two cores in the suite: a pool wait of the default 2 s, meant
        // to answer `unavailable` quickly when Postgres is gone, is reached by load alone.
        ("database_acquire_timeout_s", "10".to_owned()),
        ("jwt_secret", TEST_SECRET.to_owned()),
        (
            "redis_prefix",
            format!("gh-test-{}:", Uuid::new_v4().simple()),
        ),
        ("log", "warn".to_owned()),
        // Tests of ordering and loss send fast; tests/api/ratelimit.rs sets its own limits.
        ("rate_limit_messages_burst", "100000".to_owned()),
        ("rate_limit_typing_burst", "100000".to_owned()),
        ("rate_limit_uploads_burst", "100000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub database: String,
    pub settings: BTreeMap<String, String>,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with_redis() -> TestApp {
    spawn_app_with(|s| {
        s.insert("redis_url".into(), redis_url());
    })
    .await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut BTreeMap<String, String>)) -> TestApp {
    let database = fresh_database().await;
    let mut settings = base_settings(&database);
    customize(&mut settings);
    start(database, settings).await
}

/// Starts an app on existing settings (e.g. a second node on the same database and Redis).
pub async fn start(database: String, settings: BTreeMap<String, String>) -> TestApp {
    let config = Config::from_raw(&settings).expect("test settings are valid");
    guildhall::telemetry::init(&config.log, config.log_format);
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        database,
        settings,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        shutdown,
        server,
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: Uuid,
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl Session {
    pub fn from_json(body: &Value) -> Self {
        Self {
            user_id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            username: body["user"]["username"].as_str().unwrap().to_owned(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Registers `username` with `PASSWORD`, asserting success.
    pub async fn register(&self, username: &str) -> Session {
        let response = self
            .post(
                "/v1/auth/register",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "register {username}"
        );
        Session::from_json(&response.json().await.unwrap())
    }

    /// A direct connection to this test's database (for arranging states the API cannot reach).
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(database_url(&self.database))
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server stops in time")
            .unwrap()
            .unwrap();
    }
}

/// Asserts an RFC 9457 body with our stable fields; returns it for further checks.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:guildhall:problem:{code}"));
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// Field names listed in a validation problem.
pub fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A TCP proxy to `target` that can be cut, to make a dependency unreachable mid-test.
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: CancellationToken,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = CancellationToken::new();
        let token = cut.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let token = token.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    /// Closes every proxied connection and stops accepting new ones.
    pub fn cut(&self) {
        self.cut.cancel();
    }
}
