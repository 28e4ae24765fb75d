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
    // One unique-index probe per key, whatever the statistics say: a plan cached while the
    // table looked empty would otherwise hash-join a sequential scan of every message.
    let sql = format!(
        "SELECT {COLUMNS} FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(k_room, k_sender, k_client), \
         LATERAL (SELECT {COLUMNS} FROM messages WHERE room_id = k.k_room AND sender_id = k.k_sender \
         AND client_msg_id = k.k_client LIMIT 1) m"
    );
    MessageRow::find_by_statement(stmt(&sql, [rooms.into(), senders.into(), ids.into()]))
        .all(db)
        .await
}

/// One statement per batch, the same text whatever its size (so it is parsed and planned once
/// per connection): each room's seqs are reserved with a single `UPDATE rooms ... RETURNING`
/// (the `messages_assign_seq` trigger checks them) and given out in batch order. Messages of
/// a room that no longer exists are not inserted; the caller compares counts.
pub async fn insert_batch(
    db: &impl ConnectionTrait,
    batch: &[NewMessage],
) -> Result<Vec<MessageRow>, DbErr> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    // Arrays bind no NULL elements: optional ids travel as text, '' for none (never a valid
    // uuid or client_msg_id), and each mentions list as an array literal.
    let optional = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let column = |f: &dyn Fn(&NewMessage) -> String| -> Value {
        batch.iter().map(f).collect::<Vec<String>>().into()
    };
    let uuids =
        |f: fn(&NewMessage) -> Uuid| -> Value { batch.iter().map(f).collect::<Vec<Uuid>>().into() };
    let values: Vec<Value> = vec![
        uuids(|m| m.id),
        uuids(|m| m.room_id),
        uuids(|m| m.sender_id),
        column(&|m| m.content.clone()),
        column(&|m| optional(m.reply_to)),
        column(&|m| m.client_msg_id.clone().unwrap_or_default()),
        column(&|m| {
            let ids: Vec<String> = m.mentions.iter().map(Uuid::to_string).collect();
            format!("{{{}}}", ids.join(","))
        }),
        batch
            .iter()
            .map(|m| m.attachments.clone())
            .collect::<Vec<serde_json::Value>>()
            .into(),
        column(&|m| optional(m.poll_id)),
        column(&|m| optional(m.survey_id)),
    ];
    let sql = format!(
        "WITH batch AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
           $6::text[], $7::text[], $8::jsonb[], $9::text[], $10::text[]) WITH ORDINALITY \
           AS b(id, room_id, sender_id, content, reply_to, client_msg_id, mentions, attachments, poll_id, survey_id, ord)), \
         counts AS (SELECT room_id, count(*) AS n FROM batch GROUP BY room_id), \
         reserved AS (UPDATE rooms r SET last_seq = r.last_seq + c.n, last_message_at = now() \
           FROM counts c WHERE r.id = c.room_id RETURNING r.id, r.last_seq - c.n AS base) \
         INSERT INTO messages (id, room_id, seq, sender_id, content, reply_to, client_msg_id, mentions, attachments, poll_id, survey_id) \
         SELECT b.id, b.room_id, r.base + row_number() OVER (PARTITION BY b.room_id ORDER BY b.ord), \
           b.sender_id, b.content, NULLIF(b.reply_to, '')::uuid, NULLIF(b.client_msg_id, ''), \
           b.mentions::uuid[], b.attachments, NULLIF(b.poll_id, '')::uuid, NULLIF(b.survey_id, '')::uuid \
         FROM batch b JOIN reserved r ON r.id = b.room_id ORDER BY b.ord \
         RETURNING {COLUMNS}"
    );
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
