//! What polls and surveys share: the carrying message's id, closing by hand, closing on schedule.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::error::{AppError, FieldError};
use crate::messages::service::{NewCarrier, post_carrier};
use crate::permissions::{Authorized, Perm, perm};
use crate::state::AppState;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Poll,
    Survey,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Self::Poll => "polls",
            Self::Survey => "surveys",
        }
    }
}

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Its creator and holders of manage_messages see results at any time and may close it.
pub fn privileged(creator: Uuid, auth: &Authorized<perm::ReadHistory>) -> bool {
    creator == auth.user() || auth.perms().contains(Perm::ManageMessages)
}

async fn delete(db: &impl ConnectionTrait, kind: Kind, id: Uuid) -> Result<(), DbErr> {
    let sql = format!("DELETE FROM {} WHERE id = $1", kind.table());
    db.execute_raw(stmt(&sql, [id.into()])).await.map(|_| ())
}

/// Posts the message that carries the stored poll or survey `id` into the room (durable and
/// idempotent like any send) and returns the id it carries: `id`, or on a retried
/// client_msg_id the first attempt's (ours is removed). If the message cannot be stored, the
/// poll or survey is removed again.
pub async fn carry(
    state: &AppState,
    kind: Kind,
    (room, sender): (Uuid, Uuid),
    content: String,
    client_msg_id: Option<String>,
    id: Uuid,
) -> Result<Uuid, AppError> {
    let carrier = match kind {
        Kind::Poll => NewCarrier::Poll(id),
        Kind::Survey => NewCarrier::Survey(id),
    };
    let message = match post_carrier(state, room, sender, content, client_msg_id, carrier).await {
        Ok(message) => message,
        Err(err) => {
            delete(&state.db, kind, id).await?;
            return Err(err);
        }
    };
    let carried = match kind {
        Kind::Poll => message.poll_id,
        Kind::Survey => message.survey_id,
    };
    if carried == Some(id) {
        set_message(&state.db, kind, id, message.id).await?;
        return Ok(id);
    }
    delete(&state.db, kind, id).await?;
    carried.ok_or_else(|| AppError::Conflict {
        detail: "client_msg_id was already used for another message".into(),
        fields: vec![FieldError::new("client_msg_id", "already used")],
    })
}

async fn set_message(
    db: &impl ConnectionTrait,
    kind: Kind,
    id: Uuid,
    message: Uuid,
) -> Result<(), DbErr> {
    let sql = format!("UPDATE {} SET message_id = $2 WHERE id = $1", kind.table());
    db.execute_raw(stmt(&sql, [id.into(), message.into()]))
        .await
        .map(|_| ())
}

/// Closes it now if open; false when it was already closed.
pub async fn close(
    db: &impl ConnectionTrait,
    kind: Kind,
    id: Uuid,
    by: Uuid,
) -> Result<bool, DbErr> {
    let sql = format!(
        "UPDATE {} SET closed_at = now(), closed_by = $2 WHERE id = $1 AND closed_at IS NULL",
        kind.table()
    );
    let result = db.execute_raw(stmt(&sql, [id.into(), by.into()])).await?;
    Ok(result.rows_affected() > 0)
}

#[derive(Debug, FromQueryResult)]
struct Id {
    id: Uuid,
}

/// Closes every one past its `closes_at` (at that time); returns those this call closed, so on
/// several nodes each is announced once.
pub async fn close_due(db: &impl ConnectionTrait, kind: Kind) -> Result<Vec<Uuid>, DbErr> {
    let sql = format!(
        "UPDATE {} SET closed_at = closes_at \
         WHERE closed_at IS NULL AND closes_at IS NOT NULL AND closes_at <= now() RETURNING id",
        kind.table()
    );
    Ok(Id::find_by_statement(stmt(&sql, []))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
}
