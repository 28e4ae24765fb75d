//! Queries on messages, reactions and read markers.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

use super::events::MessageView;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct MessageRow {
    pub id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub content: String,
    pub reply_to: Option<Uuid>,
    pub client_msg_id: Option<String>,
    pub attachments: serde_json::Value,
    pub mentions: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub poll_id: Option<Uuid>,
    pub survey_id: Option<Uuid>,
}

impl From<MessageRow> for MessageView {
    fn from(row: MessageRow) -> Self {
        let deleted = row.deleted_at.is_some();
        Self {
            id: row.id,
            room_id: row.room_id,
            seq: row.seq,
            sender_id: row.sender_id,
            content: if deleted { String::new() } else { row.content },
            reply_to: row.reply_to,
            attachments: if deleted {
                serde_json::json!([])
            } else {
                row.attachments
            },
            mentions: if deleted { Vec::new() } else { row.mentions },
            client_msg_id: row.client_msg_id,
            created_at: row.created_at,
            edited_at: row.edited_at,
            deleted,
            poll_id: row.poll_id.filter(|_| !deleted),
            survey_id: row.survey_id.filter(|_| !deleted),
        }
    }
}

pub const COLUMNS: &str = "id, room_id, seq, sender_id, content, reply_to, client_msg_id, attachments, mentions, created_at, edited_at, deleted_at, poll_id, survey_id";

/// A message to insert; its id is made by the caller so results can be matched to requests.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub room_id: Uuid,
    pub sender_id: Uuid,
    pub content: String,
    pub reply_to: Option<Uuid>,
    pub client_msg_id: Option<String>,
    pub mentions: Vec<Uuid>,
    /// What it stores of each attachment (`media::service::for_message`).
    pub attachments: serde_json::Value,
    /// The poll or survey this message carries into the timeline.
    pub poll_id: Option<Uuid>,
    pub survey_id: Option<Uuid>,
}

/// Existing messages for these (room, sender, client_msg_id) keys (idempotent retries).
pub async fn existing(
    db: &impl ConnectionTrait,
    keys: &[(Uuid, Uuid, String)],
) -> Result<Vec<MessageRow>, DbErr> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rooms: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let senders: Vec<Uuid> = keys.iter().map(|k| k.1).collect();
    let ids: Vec<String> = keys.iter().map(|k| k.2.clone()).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE (room_id, sender_id, client_msg_id) IN \
         (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]))"
    );
    MessageRow::find_by_statement(stmt(&sql, [rooms.into(), senders.into(), ids.into()]))
        .all(db)
        .await
}

/// One multi-row insert; `seq` comes from the trigger, in the order given.
pub async fn insert_batch(
    db: &impl ConnectionTrait,
    batch: &[NewMessage],
) -> Result<Vec<MessageRow>, DbErr> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from(
        "INSERT INTO messages (id, room_id, sender_id, content, reply_to, client_msg_id, mentions, attachments, poll_id, survey_id) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(batch.len() * 10);
    for (i, m) in batch.iter().enumerate() {
        let n = i * 10;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}::uuid[], ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8,
            n + 9,
            n + 10
        ));
        values.extend([
            m.id.into(),
            m.room_id.into(),
            m.sender_id.into(),
            m.content.clone().into(),
            m.reply_to.into(),
            m.client_msg_id.clone().into(),
            m.mentions.clone().into(),
            m.attachments.clone().into(),
            m.poll_id.into(),
            m.survey_id.into(),
        ]);
    }
    sql.push_str(&format!(" RETURNING {COLUMNS}"));
    MessageRow::find_by_statement(stmt(&sql, values))
        .all(db)
        .await
}

pub async fn message(
    db: &impl ConnectionTrait,
    room: Uuid,
    id: Uuid,
) -> Result<Option<MessageRow>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE room_id = $1 AND id = $2");
    MessageRow::find_by_statement(stmt(&sql, [room.into(), id.into()]))
        .one(db)
        .await
}

/// A page of history: `after` ascending, `before` (or newest) descending then reversed.
pub async fn history(
    db: &impl ConnectionTrait,
    room: Uuid,
    before: Option<i64>,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<MessageRow>, DbErr> {
    let limit = i64::try_from(limit).unwrap_or(100);
    let rows = if let Some(after) = after {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        MessageRow::find_by_statement(stmt(&sql, [room.into(), after.into(), limit.into()]))
            .all(db)
            .await?
    } else {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE room_id = $1 AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3"
        );
        let mut rows =
            MessageRow::find_by_statement(stmt(&sql, [room.into(), before.into(), limit.into()]))
                .all(db)
                .await?;
        rows.reverse();
        rows
    };
    Ok(rows)
}

pub async fn edit(
    db: &impl ConnectionTrait,
    room: Uuid,
    id: Uuid,
    content: &str,
    mentions: &[Uuid],
) -> Result<Option<MessageRow>, DbErr> {
    let sql = format!(
        "UPDATE messages SET content = $3, mentions = $4, edited_at = now() WHERE room_id = $1 AND id = $2 \
         AND deleted_at IS NULL RETURNING {COLUMNS}"
    );
    MessageRow::find_by_statement(stmt(
        &sql,
        [
            room.into(),
            id.into(),
            content.into(),
            mentions.to_vec().into(),
        ],
    ))
    .one(db)
    .await
}

/// Tombstones a message: it keeps its seq, loses its content.
pub async fn delete(
    db: &impl ConnectionTrait,
    room: Uuid,
    id: Uuid,
) -> Result<Option<MessageRow>, DbErr> {
    let sql = format!(
        "UPDATE messages SET deleted_at = now(), content = '', attachments = '[]', mentions = '{{}}' \
         WHERE room_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {COLUMNS}"
    );
    MessageRow::find_by_statement(stmt(&sql, [room.into(), id.into()]))
        .one(db)
        .await
}

pub async fn add_reaction(
    db: &impl ConnectionTrait,
    message: Uuid,
    user: Uuid,
    emoji: &str,
) -> Result<bool, DbErr> {
    let sql = "INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    Ok(db
        .execute_raw(stmt(sql, [message.into(), user.into(), emoji.into()]))
        .await?
        .rows_affected()
        > 0)
}

pub async fn remove_reaction(
    db: &impl ConnectionTrait,
    message: Uuid,
    user: Uuid,
    emoji: &str,
) -> Result<bool, DbErr> {
    let sql = "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3";
    Ok(db
        .execute_raw(stmt(sql, [message.into(), user.into(), emoji.into()]))
        .await?
        .rows_affected()
        > 0)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct ReactionCount {
    pub message_id: Uuid,
    pub emoji: String,
    pub count: i64,
}

pub async fn reaction_counts(
    db: &impl ConnectionTrait,
    messages: &[Uuid],
) -> Result<Vec<ReactionCount>, DbErr> {
    let sql = "SELECT message_id, emoji, count(*) AS count FROM reactions WHERE message_id = ANY($1) \
               GROUP BY message_id, emoji ORDER BY message_id, min(created_at)";
    ReactionCount::find_by_statement(stmt(sql, [messages.to_vec().into()]))
        .all(db)
        .await
}

/// Moves the read marker forward only (never back) and clears the mention counter.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    room: Uuid,
    user: Uuid,
    seq: i64,
) -> Result<i64, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        last_read_seq: i64,
    }
    let sql = "INSERT INTO read_markers (room_id, user_id, last_read_seq, mention_count) \
               SELECT $1, $2, LEAST($3, r.last_seq), 0 FROM rooms r WHERE r.id = $1 \
               ON CONFLICT (room_id, user_id) DO UPDATE SET \
                 last_read_seq = GREATEST(read_markers.last_read_seq, EXCLUDED.last_read_seq), \
                 mention_count = CASE WHEN EXCLUDED.last_read_seq >= read_markers.last_read_seq THEN 0 \
                                      ELSE read_markers.mention_count END, \
                 updated_at = now() \
               RETURNING last_read_seq";
    let row = Row::find_by_statement(stmt(sql, [room.into(), user.into(), seq.into()]))
        .one(db)
        .await?;
    Ok(row.map_or(0, |r| r.last_read_seq))
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct UnreadRow {
    pub room_id: Uuid,
    pub last_seq: i64,
    pub last_read_seq: i64,
    pub mention_count: i32,
}

/// Read positions of the given rooms for the user (counters only, no message scans).
pub async fn unread(
    db: &impl ConnectionTrait,
    user: Uuid,
    rooms: &[Uuid],
) -> Result<Vec<UnreadRow>, DbErr> {
    let sql = "SELECT r.id AS room_id, r.last_seq, COALESCE(m.last_read_seq, 0) AS last_read_seq, \
               COALESCE(m.mention_count, 0) AS mention_count \
               FROM rooms r LEFT JOIN read_markers m ON m.room_id = r.id AND m.user_id = $1 \
               WHERE r.id = ANY($2) ORDER BY r.id";
    UnreadRow::find_by_statement(stmt(sql, [user.into(), rooms.to_vec().into()]))
        .all(db)
        .await
}

/// Full-text search over the given rooms, newest first.
pub async fn search(
    db: &impl ConnectionTrait,
    rooms: &[Uuid],
    query: &str,
    limit: u64,
) -> Result<Vec<MessageRow>, DbErr> {
    let sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE room_id = ANY($1) AND deleted_at IS NULL \
         AND search @@ plainto_tsquery('simple', $2) ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    let limit = i64::try_from(limit).unwrap_or(50);
    MessageRow::find_by_statement(stmt(
        &sql,
        [rooms.to_vec().into(), query.into(), limit.into()],
    ))
    .all(db)
    .await
}

pub async fn last_seq(db: &impl ConnectionTrait, room: Uuid) -> Result<i64, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        last_seq: i64,
    }
    let row = Row::find_by_statement(stmt(
        "SELECT last_seq FROM rooms WHERE id = $1",
        [room.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map_or(0, |r| r.last_seq))
}

pub async fn last_seqs(
    db: &impl ConnectionTrait,
    rooms: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        id: Uuid,
        last_seq: i64,
    }
    let rows = Row::find_by_statement(stmt(
        "SELECT id, last_seq FROM rooms WHERE id = ANY($1)",
        [rooms.to_vec().into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.last_seq)).collect())
}
