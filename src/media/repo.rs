//! Queries on attachments, the object garbage queue and the callback replay guard.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub room_id: Uuid,
    pub uploader_id: Uuid,
    pub object_key: String,
    pub filename: String,
    pub declared_type: String,
    pub declared_size: i64,
    pub status: String,
    pub content_type: Option<String>,
    pub size: Option<i64>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub blurhash: Option<String>,
    pub variants: serde_json::Value,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, room_id, uploader_id, object_key, filename, declared_type, \
    declared_size, status, content_type, size, width, height, blurhash, variants, failure_reason, created_at";

pub struct NewAttachment<'a> {
    pub id: Uuid,
    pub room_id: Uuid,
    pub uploader_id: Uuid,
    pub object_key: &'a str,
    pub filename: &'a str,
    pub declared_type: &'a str,
    pub declared_size: i64,
}

pub async fn insert(
    db: &impl ConnectionTrait,
    new: &NewAttachment<'_>,
) -> Result<AttachmentRow, DbErr> {
    let sql = format!(
        "INSERT INTO attachments (id, room_id, uploader_id, object_key, filename, declared_type, declared_size) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    let values = [
        new.id.into(),
        new.room_id.into(),
        new.uploader_id.into(),
        new.object_key.into(),
        new.filename.into(),
        new.declared_type.into(),
        new.declared_size.into(),
    ];
    AttachmentRow::find_by_statement(stmt(&sql, values))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<AttachmentRow>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE id = $1");
    AttachmentRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

/// Locks the row for a callback's update.
pub async fn get_for_update(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<AttachmentRow>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE id = $1 FOR UPDATE");
    AttachmentRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

/// Moves `id` from `from` to `to`; `None` if it was not in `from` (someone else moved it).
pub async fn transition(
    db: &impl ConnectionTrait,
    id: Uuid,
    from: &str,
    to: &str,
    reason: Option<&str>,
) -> Result<Option<AttachmentRow>, DbErr> {
    let sql = format!(
        "UPDATE attachments SET status = $3, failure_reason = $4 WHERE id = $1 AND status = $2 \
         RETURNING {COLUMNS}"
    );
    AttachmentRow::find_by_statement(stmt(
        &sql,
        [id.into(), from.into(), to.into(), reason.into()],
    ))
    .one(db)
    .await
}

/// What the media worker measured, for a `ready` attachment.
pub struct Processed<'a> {
    pub content_type: &'a str,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub blurhash: Option<&'a str>,
    pub variants: serde_json::Value,
}

pub async fn mark_ready(
    db: &impl ConnectionTrait,
    id: Uuid,
    done: &Processed<'_>,
) -> Result<Option<AttachmentRow>, DbErr> {
    let sql = format!(
        "UPDATE attachments SET status = 'ready', content_type = $2, size = $3, width = $4, \
         height = $5, blurhash = $6, variants = $7 WHERE id = $1 AND status = 'processing' \
         RETURNING {COLUMNS}"
    );
    let values = [
        id.into(),
        done.content_type.into(),
        done.size.into(),
        done.width.into(),
        done.height.into(),
        done.blurhash.into(),
        done.variants.clone().into(),
    ];
    AttachmentRow::find_by_statement(stmt(&sql, values))
        .one(db)
        .await
}

/// Ready attachments among `ids` that `uploader` uploaded into `room`.
pub async fn ready_for_message(
    db: &impl ConnectionTrait,
    room: Uuid,
    uploader: Uuid,
    ids: &[Uuid],
) -> Result<Vec<AttachmentRow>, DbErr> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments WHERE id = ANY($1) AND room_id = $2 \
         AND uploader_id = $3 AND status = 'ready'"
    );
    AttachmentRow::find_by_statement(stmt(
        &sql,
        [ids.to_vec().into(), room.into(), uploader.into()],
    ))
    .all(db)
    .await
}

/// Records an accepted callback signature; false if it was seen before (a replay).
pub async fn remember_callback(db: &impl ConnectionTrait, signature: &str) -> Result<bool, DbErr> {
    let sql = "INSERT INTO media_callbacks (signature) VALUES ($1) ON CONFLICT DO NOTHING";
    let result = db.execute_raw(stmt(sql, [signature.into()])).await?;
    Ok(result.rows_affected() == 1)
}

/// Processing that never reported back is failed (its objects queued for deletion).
pub async fn fail_stuck(
    db: &impl ConnectionTrait,
    older_than_s: i64,
) -> Result<Vec<AttachmentRow>, DbErr> {
    let sql = format!(
        "UPDATE attachments SET status = 'failed', failure_reason = 'processing did not finish in time' \
         WHERE status = 'processing' AND updated_at < now() - $1 * interval '1 second' \
         RETURNING {COLUMNS}"
    );
    AttachmentRow::find_by_statement(stmt(&sql, [older_than_s.into()]))
        .all(db)
        .await
}

/// Removes abandoned (never completed) and failed attachments; the delete trigger queues their
/// objects. Returns how many went.
pub async fn delete_abandoned(db: &impl ConnectionTrait, older_than_s: i64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM attachments WHERE status IN ('pending', 'failed') \
               AND updated_at < now() - $1 * interval '1 second'";
    let result = db.execute_raw(stmt(sql, [older_than_s.into()])).await?;
    Ok(result.rows_affected())
}

#[derive(Debug, FromQueryResult)]
pub struct Garbage {
    pub id: i64,
    pub object_key: String,
}

/// A batch of queued object keys, locked so another node's sweep skips them.
pub async fn claim_garbage(db: &impl ConnectionTrait, limit: i64) -> Result<Vec<Garbage>, DbErr> {
    let sql =
        "SELECT id, object_key FROM media_garbage ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";
    Garbage::find_by_statement(stmt(sql, [limit.into()]))
        .all(db)
        .await
}

pub async fn drop_garbage(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    let sql = "DELETE FROM media_garbage WHERE id = ANY($1)";
    db.execute_raw(stmt(sql, [ids.to_vec().into()]))
        .await
        .map(|_| ())
}

pub async fn forget_old_callbacks(
    db: &impl ConnectionTrait,
    older_than_s: i64,
) -> Result<(), DbErr> {
    let sql = "DELETE FROM media_callbacks WHERE received_at < now() - $1 * interval '1 second'";
    db.execute_raw(stmt(sql, [older_than_s.into()]))
        .await
        .map(|_| ())
}
