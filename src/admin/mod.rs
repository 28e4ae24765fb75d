//! `guildhall admin`: what operators otherwise do by hand in SQL. Each command runs the same
//! feature services the API runs (validation, permission compilation, audit, the NOTIFY and
//! pub/sub that tell running nodes), on a node-less `AppState` built from the usual config.
//! May import the features' services, never their repos.

mod export;

use std::io::Read;
use std::time::Instant;

use clap::Subcommand;
use rand::Rng;
use uuid::Uuid;

use crate::communities;
use crate::config::Config;
use crate::error::AppError;
use crate::identity::service::UserView;
use crate::identity::{DisplayName, Password, Username, revocation, service as identity};
use crate::state::AppState;

/// Length of a generated password (alphanumeric: ~143 bits).
const GENERATED_PASSWORD_LEN: usize = 24;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user; prints its id (and the generated password, once).
    CreateUser {
        #[arg(long)]
        username: String,
        /// Default: the username.
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a user an owner of a community (joining it first if needed).
    MakeOwner {
        /// Community id.
        #[arg(long)]
        community: Uuid,
        /// User id or username.
        #[arg(long)]
        user: String,
    },
    /// Revoke every session of a user: refresh tokens, access tokens issued until now, and
    /// open WebSockets on every node.
    RevokeSessions {
        /// User id or username.
        #[arg(long)]
        user: String,
    },
    /// Write a community's data as JSON (format_version 1), streamed.
    ExportCommunity {
        /// Community id.
        #[arg(long)]
        community: Uuid,
        /// Output file (written as FILE.partial, renamed when complete); default stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
}

pub async fn run(command: AdminCommand, config: Config) -> anyhow::Result<()> {
    let app = crate::App::build(Config {
        bind: "127.0.0.1:0".parse()?,
        ..config
    })
    .await?;
    let state = app.state().clone();
    let result = match command {
        AdminCommand::CreateUser {
            username,
            display_name,
            password_stdin,
        } => create_user(&state, &username, display_name.as_deref(), password_stdin).await,
        AdminCommand::MakeOwner { community, user } => make_owner(&state, community, &user).await,
        AdminCommand::RevokeSessions { user } => revoke_sessions(&state, &user).await,
        AdminCommand::ExportCommunity { community, out } => {
            export_community(&state, community, out).await
        }
    };
    app.shutdown_token().cancel();
    result
}

/// Errors an operator reads: the rule that was broken, not an HTTP status.
fn explain(err: AppError) -> anyhow::Error {
    match err {
        AppError::Internal(cause) => cause,
        AppError::Validation(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!(other.detail()),
    }
}

/// A user named by id or username.
async fn resolve_user(state: &AppState, reference: &str) -> anyhow::Result<UserView> {
    let found = match reference.parse::<Uuid>() {
        Ok(id) => match identity::user(&state.db, id).await {
            Ok(user) => Some(user),
            Err(AppError::NotFound) => None,
            Err(err) => return Err(explain(err)),
        },
        Err(_) => identity::user_by_username(&state.db, reference)
            .await
            .map_err(explain)?,
    };
    found.ok_or_else(|| anyhow::anyhow!("unknown user: {reference}"))
}

async fn resolve_community(
    state: &AppState,
    id: Uuid,
) -> anyhow::Result<communities::views::CommunityView> {
    communities::service::find(state, id)
        .await
        .map_err(explain)?
        .ok_or_else(|| anyhow::anyhow!("unknown community: {id}"))
}

fn read_password_line() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let line = input.lines().next().unwrap_or_default();
    Ok(line.to_owned())
}

async fn create_user(
    state: &AppState,
    username: &str,
    display_name: Option<&str>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let username = Username::parse(username).map_err(|e| explain(AppError::Validation(vec![e])))?;
    let (raw, generated) = if password_stdin {
        (read_password_line()?, false)
    } else {
        let generated: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(GENERATED_PASSWORD_LEN)
            .map(char::from)
            .collect();
        (generated, true)
    };
    let password =
        Password::parse(&raw, &username).map_err(|e| explain(AppError::Validation(vec![e])))?;
    let display_name = match display_name {
        Some(raw) => DisplayName::parse(raw)
            .map_err(|e| explain(AppError::Validation(vec![e])))?
            .into_inner(),
        None => username.as_str().to_owned(),
    };
    let user = identity::create_user(state, &username, &password, &display_name)
        .await
        .map_err(explain)?;
    println!("created user {} {}", user.username, user.id);
    if generated {
        println!("password (shown only now): {}", password.expose());
    }
    Ok(())
}

async fn make_owner(state: &AppState, community: Uuid, user: &str) -> anyhow::Result<()> {
    let community = resolve_community(state, community).await?;
    let user = resolve_user(state, user).await?;
    let joined = communities::service::admit(state, community.id, user.id)
        .await
        .map_err(explain)?;
    let granted = state
        .permissions
        .grant_owner_as_operator(community.id, user.id)
        .await
        .map_err(explain)?;
    let what = match (joined, granted) {
        (true, _) => "joined and is now an owner",
        (false, true) => "is now an owner",
        (false, false) => "already was an owner",
    };
    println!(
        "{} ({}) {what} of {:?} ({})",
        user.username, user.id, community.name, community.id
    );
    Ok(())
}

async fn revoke_sessions(state: &AppState, user: &str) -> anyhow::Result<()> {
    let user = resolve_user(state, user).await?;
    let revoked = revocation::revoke_sessions(&state.db, user.id)
        .await
        .map_err(explain)?;
    println!(
        "revoked {} refresh token(s) of {} ({}); access tokens issued before {} are refused \
         and open WebSocket sessions are closed on every node",
        revoked.refresh_tokens,
        user.username,
        user.id,
        revoked.not_before.to_rfc3339(),
    );
    Ok(())
}

async fn export_community(
    state: &AppState,
    community: Uuid,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let community = resolve_community(state, community).await?;
    let started = Instant::now();
    let counts = match &out {
        Some(path) => {
            let partial = path.with_extension("partial");
            let file = std::fs::File::create(&partial)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?;
            let counts = export::write(&state.db, community.id, file).await?;
            std::fs::rename(&partial, path)?;
            counts
        }
        None => export::write(&state.db, community.id, std::io::stdout()).await?,
    };
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    eprintln!(
        "exported {:?} ({}): {} in {:.2} s",
        community.name,
        community.id,
        summary.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
