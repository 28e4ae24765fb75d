//! `guildhall demo-seed`: demo accounts (and, as features land, the data that shows them off).
//! Idempotent: existing demo data is kept and reported.

use crate::config::Config;
use crate::error::AppError;
use crate::identity::{Password, Username, service};
use crate::state::AppState;

pub const DEMO_PASSWORD: &str = "guildhall-demo";
const DEMO_USERS: [(&str, &str); 3] = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Builder"),
    ("carol", "Carol Danvers"),
];

pub async fn seed(config: Config) -> anyhow::Result<()> {
    let state = crate::App::build(Config {
        bind: "127.0.0.1:0".parse()?,
        ..config
    })
    .await?
    .state()
    .clone();
    println!("Demo accounts (password for all: {DEMO_PASSWORD}):");
    for (username, display_name) in DEMO_USERS {
        let status = ensure_user(&state, username, display_name).await?;
        println!("  {username:<8} {display_name:<16} {status}");
    }
    Ok(())
}

async fn ensure_user(
    state: &AppState,
    username: &str,
    display_name: &str,
) -> anyhow::Result<&'static str> {
    if service::user_by_username(&state.db, username)
        .await
        .map_err(to_anyhow)?
        .is_some()
    {
        return Ok("(exists)");
    }
    let name = Username::parse(username).map_err(|e| anyhow::anyhow!(e.message))?;
    let password = Password::parse(DEMO_PASSWORD, &name).map_err(|e| anyhow::anyhow!(e.message))?;
    service::create_user(state, &name, &password, display_name)
        .await
        .map_err(to_anyhow)?;
    Ok("(created)")
}

fn to_anyhow(err: AppError) -> anyhow::Error {
    match err {
        AppError::Internal(cause) => cause,
        other => anyhow::anyhow!(other.detail()),
    }
}
