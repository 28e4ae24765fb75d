//! The binary itself: configuration errors, migrations, `openapi`, `asyncapi`, SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{TEST_SECRET, database_url, fresh_database};

fn guildhall(envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guildhall"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn missing_or_invalid_settings_fail_with_one_line_naming_them() {
    let url = "postgres://u@127.0.0.1:1/db";
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("GUILDHALL_DATABASE_URL", url)], "GUILDHALL_JWT_SECRET"),
        (
            &[("GUILDHALL_JWT_SECRET", TEST_SECRET)],
            "GUILDHALL_DATABASE_URL",
        ),
        (
            &[
                ("GUILDHALL_DATABASE_URL", url),
                ("GUILDHALL_JWT_SECRET", TEST_SECRET),
                ("GUILDHALL_BIND", "nowhere"),
            ],
            "GUILDHALL_BIND",
        ),
        (
            &[
                ("GUILDHALL_DATABASE_URL", url),
                ("GUILDHALL_JWT_SECRET", TEST_SECRET),
                ("GUILDHALL_ACCESS_TOKEN_TTL_S", "-5"),
            ],
            "GUILDHALL_ACCESS_TOKEN_TTL_S",
        ),
    ];
    for (envs, setting) in cases {
        let output = guildhall(envs, &["serve"]);
        assert_eq!(output.status.code(), Some(2), "{setting}");
        let lines = stderr_lines(&output);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(setting), "{lines:?}");
    }
}

#[test]
fn secrets_never_reach_the_error_output() {
    let secret_url = "postgres://u:hunter2-secret@127.0.0.1:1/db";
    let output = guildhall(
        &[
            ("GUILDHALL_DATABASE_URL", secret_url),
            ("GUILDHALL_JWT_SECRET", "short-secret-value"),
        ],
        &["serve"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GUILDHALL_JWT_SECRET"));
    assert!(
        !stderr.contains("short-secret-value") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn config_file_is_layered_under_the_environment() {
    let dir = std::env::temp_dir().join(format!("gh-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("guildhall.toml");
    std::fs::write(&file, format!("database_url = \"postgres://u@127.0.0.1:1/db\"\njwt_secret = \"{TEST_SECRET}\"\nbind = \"bad\"\n")).unwrap();
    let path = file.to_str().unwrap();
    // The file's bad `bind` is reported...
    let output = guildhall(&[], &["--config", path, "serve"]);
    assert!(
        stderr_lines(&output)[0].contains("GUILDHALL_BIND"),
        "{:?}",
        stderr_lines(&output)
    );
    // ...unless the environment overrides it; then start-up proceeds to connecting.
    let output = guildhall(
        &[("GUILDHALL_BIND", "127.0.0.1:0")],
        &["--config", path, "serve"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("GUILDHALL_DATABASE_URL: cannot connect"),
        "{stderr}"
    );
    std::fs::write(&file, "no_such_setting = 1\n").unwrap();
    let output = guildhall(&[], &["--config", path, "serve"]);
    assert!(stderr_lines(&output)[0].contains("GUILDHALL_NO_SUCH_SETTING"));
}

#[test]
fn asyncapi_subcommand_prints_the_committed_document() {
    let output = guildhall(&[], &["asyncapi"]);
    assert!(output.status.success());
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/openapi/asyncapi.yaml"
    ))
    .unwrap();
    assert!(
        output.stdout == committed,
        "openapi/asyncapi.yaml is stale: run `guildhall asyncapi > openapi/asyncapi.yaml`"
    );
}

#[test]
fn openapi_subcommand_prints_the_committed_spec() {
    let output = guildhall(&[], &["openapi"]);
    assert!(output.status.success());
    let committed =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap();
    assert!(output.stdout == committed, "openapi/openapi.json is stale");
}

#[tokio::test]
async fn migrate_status_up_and_down() {
    let database = fresh_database().await;
    let url = database_url(&database);
    let envs = [
        ("GUILDHALL_DATABASE_URL", url.as_str()),
        ("GUILDHALL_JWT_SECRET", TEST_SECRET),
        ("GUILDHALL_LOG", "error"),
    ];
    let status = |envs: &[(&str, &str)]| {
        String::from_utf8(guildhall(envs, &["migrate", "status"]).stdout).unwrap()
    };
    assert!(
        status(&envs).lines().all(|l| l.starts_with("applied ")),
        "template is fully migrated"
    );
    assert!(
        guildhall(&envs, &["migrate", "down", "-n", "1"])
            .status
            .success()
    );
    let after_down = status(&envs);
    assert!(
        after_down.lines().last().unwrap().starts_with("pending "),
        "{after_down}"
    );
    assert!(guildhall(&envs, &["migrate", "up"]).status.success());
    assert!(status(&envs).lines().all(|l| l.starts_with("applied ")));
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let database = fresh_database().await;
    let url = database_url(&database);
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let bind = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_guildhall"))
        .env_clear()
        .envs([
            ("GUILDHALL_DATABASE_URL", url.as_str()),
            ("GUILDHALL_JWT_SECRET", TEST_SECRET),
            ("GUILDHALL_BIND", &bind),
        ])
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let health = format!("http://{bind}/healthz");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client.get(&health).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn demo_seed_builds_the_demo_and_is_idempotent() {
    let database = fresh_database().await;
    let url = database_url(&database);
    let envs = [
        ("GUILDHALL_DATABASE_URL", url.as_str()),
        ("GUILDHALL_JWT_SECRET", TEST_SECRET),
        ("GUILDHALL_LOG", "error"),
    ];
    let first = guildhall(&envs, &["demo-seed"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = String::from_utf8(first.stdout).unwrap();
    assert!(
        first.contains("alice") && first.contains("(created)"),
        "{first}"
    );
    assert!(
        first.contains("Demo community \"Guildhall Demo\" (created)"),
        "{first}"
    );
    let second = String::from_utf8(guildhall(&envs, &["demo-seed"]).stdout).unwrap();
    assert!(
        !second.contains("(created)"),
        "a second run changes nothing: {second}"
    );
    assert!(second.contains("(exists)"), "{second}");
}

/// The README's worked example, on the data `demo-seed` builds.
#[tokio::test]
async fn the_demo_behaves_as_the_readme_says() {
    let database = fresh_database().await;
    let url = database_url(&database);
    let envs = [
        ("GUILDHALL_DATABASE_URL", url.as_str()),
        ("GUILDHALL_JWT_SECRET", TEST_SECRET),
        ("GUILDHALL_LOG", "error"),
    ];
    assert!(guildhall(&envs, &["demo-seed"]).status.success());
    let app =
        crate::helpers::start(database.clone(), crate::helpers::base_settings(&database)).await;
    let login = |name: &'static str| {
        let app = &app;
        async move {
            let body =
                serde_json::json!({"username": name, "password": guildhall::demo::DEMO_PASSWORD});
            let session: serde_json::Value = app
                .post("/v1/auth/login", None, body)
                .await
                .json()
                .await
                .unwrap();
            session["access_token"].as_str().unwrap().to_owned()
        }
    };
    let (bob, carol) = (login("bob").await, login("carol").await);
    let communities: serde_json::Value = app
        .get("/v1/communities", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    let community = communities["items"][0]["id"].as_str().unwrap().to_owned();
    let tree: serde_json::Value = app
        .get(&format!("/v1/communities/{community}/tree"), Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    let room =
        |name: &str| find_room(&tree, name).unwrap_or_else(|| panic!("room {name} in {tree}"));
    let perms = |token: String, room: String| {
        let app = &app;
        async move {
            let me: serde_json::Value = app
                .get(&format!("/v1/rooms/{room}/permissions/me"), Some(&token))
                .await
                .json()
                .await
                .unwrap();
            me["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let has = |perms: &[String], p: &str| perms.iter().any(|x| x == p);
    assert!(has(
        &perms(bob.clone(), room("rust-help")).await,
        "manage_messages"
    ));
    assert!(!has(
        &perms(bob.clone(), room("random")).await,
        "manage_messages"
    ));
    assert!(!has(
        &perms(bob.clone(), room("announcements")).await,
        "send_messages"
    ));
    assert!(has(
        &perms(carol.clone(), room("announcements")).await,
        "send_messages"
    ));
    assert!(
        find_room(&tree, "staff").is_none(),
        "bob is not in the private staff room"
    );
}

fn find_room(node: &serde_json::Value, name: &str) -> Option<String> {
    let rooms = node["rooms"].as_array().into_iter().flatten();
    for room in rooms {
        if room["name"] == name {
            return room["id"].as_str().map(str::to_owned);
        }
    }
    node["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|g| find_room(g, name))
}
