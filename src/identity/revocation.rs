//! Revoking every session of a user, on every node: refresh tokens are revoked in Postgres,
//! and a per-user cutoff refuses the access tokens issued before it. Each node holds the recent
//! cutoffs in its `TokenService`, loaded at start and kept current by the `guildhall_sessions`
//! NOTIFY (sent by the cutoff table's trigger on commit); on each notice the node also closes
//! that user's WebSocket sessions through the callback it was given (identity imports no
//! realtime code).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::TokenService;
use super::repo;
use crate::error::AppError;

pub const PG_CHANNEL: &str = "guildhall_sessions";
const RETRY: Duration = Duration::from_millis(500);

/// What `revoke_sessions` did.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    /// Refresh tokens that were live and are now revoked.
    pub refresh_tokens: u64,
    /// Access tokens issued before this instant are refused.
    pub not_before: DateTime<Utc>,
}

/// Revokes every refresh token of `user` and refuses its access tokens issued until now.
/// The cutoff is the next whole second (`iat` has second precision); a node that already heard
/// of it issues tokens in that second with `iat` = the cutoff, so a new login right away works.
/// (A login on a node the notice has not reached yet, a few ms, gets a refused token; its
/// refresh token is good, and refreshing gives an accepted one.)
pub async fn revoke_sessions(db: &DatabaseConnection, user: Uuid) -> Result<Revoked, AppError> {
    let not_before =
        DateTime::<Utc>::from_timestamp(Utc::now().timestamp() + 1, 0).expect("a valid timestamp");
    let txn = db.begin().await?;
    let refresh_tokens = repo::revoke_user(&txn, user).await?;
    repo::set_token_cutoff(&txn, user, not_before).await?;
    txn.commit().await?;
    Ok(Revoked {
        refresh_tokens,
        not_before,
    })
}

/// Loads every cutoff that can still refuse an unexpired token.
pub async fn load(db: &DatabaseConnection, tokens: &TokenService) -> anyhow::Result<()> {
    let window = chrono::Duration::from_std(tokens.access_ttl)? + chrono::Duration::seconds(10);
    let rows = repo::token_cutoffs_since(db, Utc::now() - window).await?;
    tokens.clear_cutoffs();
    for row in rows {
        tokens.set_cutoff(row.user_id, u64::try_from(row.not_before).unwrap_or(0));
    }
    Ok(())
}

fn parse(payload: &str) -> Option<(Uuid, u64)> {
    let (user, at) = payload.split_once(':')?;
    Some((user.parse().ok()?, at.parse().ok()?))
}

/// Runs until `shutdown`: applies every cutoff announced and calls `revoked(user)` for it.
/// After a (re)connect everything is loaded again, since notices may have been missed.
pub async fn listen(
    db: DatabaseConnection,
    tokens: Arc<TokenService>,
    revoked: Arc<dyn Fn(Uuid) + Send + Sync>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        if let Err(err) = listen_once(&db, &tokens, revoked.as_ref(), &shutdown).await {
            tracing::warn!(error = %err, "session revocation feed interrupted; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn listen_once(
    db: &DatabaseConnection,
    tokens: &TokenService,
    revoked: &(dyn Fn(Uuid) + Send + Sync),
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let pool = db.get_postgres_connection_pool();
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(PG_CHANNEL).await?;
    load(db, tokens).await?;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = listener.try_recv() => next?,
        };
        match next {
            Some(notification) => {
                if let Some((user, not_before)) = parse(notification.payload()) {
                    tokens.set_cutoff(user, not_before);
                    tracing::info!(user_id = %user, "sessions revoked");
                    revoked(user);
                }
            }
            // The connection was lost and re-established: notices may be missing.
            None => load(db, tokens).await?,
        }
    }
}
