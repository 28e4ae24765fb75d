//! The policy change feed: every node learns of every committed policy change within a second.
//! With Redis: writers PUBLISH `<prefix>policy`; without: Postgres NOTIFY `guildhall_policy`
//! (sent by a trigger whenever a community's `policy_version` moves). A reconnect drops every
//! cached index, since messages may have been missed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::service::Permissions;
use crate::shared::retry::pause_after;

pub const PG_CHANNEL: &str = "guildhall_policy";
const RETRY: Duration = Duration::from_millis(500);

/// Where changes are published and heard.
#[derive(Clone)]
pub enum Feed {
    Postgres,
    Redis {
        client: redis::Client,
        publisher: ConnectionManager,
        channel: String,
    },
}

fn parse(payload: &str) -> Option<(Uuid, i64)> {
    let (community, version) = payload.split_once(':')?;
    Some((community.parse().ok()?, version.parse().ok()?))
}

impl Feed {
    /// Tells the other nodes (Postgres needs nothing: the trigger already notified).
    pub async fn publish(&self, community: Uuid, version: i64) {
        if let Feed::Redis {
            publisher, channel, ..
        } = self
        {
            let mut conn = publisher.clone();
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(format!("{community}:{version}"))
                .query_async(&mut conn)
                .await;
            if let Err(err) = sent {
                // Other nodes still catch up through the index TTL.
                tracing::warn!(error = %err, "policy change not published");
            }
        }
    }

    /// Runs until `shutdown`, announcing every change heard to `permissions`.
    pub async fn listen(self, permissions: Arc<Permissions>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let result = match &self {
                Feed::Postgres => listen_postgres(&permissions, &shutdown).await,
                Feed::Redis {
                    client, channel, ..
                } => listen_redis(client, channel, &permissions, &shutdown).await,
            };
            permissions.forget_all();
            pause_after("policy feed", result, RETRY, &shutdown).await;
        }
    }
}

async fn listen_postgres(
    permissions: &Permissions,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let pool = permissions.db().get_postgres_connection_pool();
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(PG_CHANNEL).await?;
    permissions.forget_all();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = listener.try_recv() => next?,
        };
        match next {
            Some(notification) => {
                if let Some((community, version)) = parse(notification.payload()) {
                    permissions.announce(community, version);
                }
            }
            None => permissions.forget_all(),
        }
    }
}

async fn listen_redis(
    client: &redis::Client,
    channel: &str,
    permissions: &Permissions,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // A silent subscription would miss changes until the index TTL: start over instead.
    let (mut messages, silent) = crate::shared::subscription::subscribe(client, channel).await?;
    tokio::pin!(silent);
    permissions.forget_all();
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            err = &mut silent => return Err(err),
            message = messages.next() => message,
        };
        let Some(message) = message else {
            anyhow::bail!("redis subscription closed");
        };
        let payload: String = message.get_payload()?;
        if let Some((community, version)) = parse(&payload) {
            permissions.announce(community, version);
        }
    }
}
