//! Queries on events, overrides, RSVPs, feed tokens and sent reminders.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct EventRow {
    pub id: Uuid,
    pub community_id: Uuid,
    pub group_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub creator_id: Uuid,
    pub title: String,
    pub description: String,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub timezone: String,
    pub rrule: Option<String>,
    pub rdates: Vec<DateTime<Utc>>,
    pub exdates: Vec<DateTime<Utc>>,
    pub split_from: Option<Uuid>,
    pub sequence: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EventRow {
    /// The scope whose permissions govern the event.
    pub fn scope_id(&self) -> Uuid {
        self.room_id.or(self.group_id).unwrap_or(self.community_id)
    }
}

const COLUMNS: &str = "id, community_id, group_id, room_id, creator_id, title, description, \
    location, starts_at, ends_at, timezone, rrule, rdates, exdates, split_from, sequence, \
    created_at, updated_at";

/// What a series is made of, for inserts and whole-series updates.
pub struct SeriesFields {
    pub title: String,
    pub description: String,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub timezone: String,
    pub rrule: Option<String>,
    pub rdates: Vec<DateTime<Utc>>,
    pub exdates: Vec<DateTime<Utc>>,
}

impl SeriesFields {
    pub fn of(row: &EventRow) -> Self {
        Self {
            title: row.title.clone(),
            description: row.description.clone(),
            location: row.location.clone(),
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            timezone: row.timezone.clone(),
            rrule: row.rrule.clone(),
            rdates: row.rdates.clone(),
            exdates: row.exdates.clone(),
        }
    }

    fn values(&self) -> [Value; 9] {
        [
            self.title.clone().into(),
            self.description.clone().into(),
            self.location.clone().into(),
            self.starts_at.into(),
            self.ends_at.into(),
            self.timezone.clone().into(),
            self.rrule.clone().into(),
            self.rdates.clone().into(),
            self.exdates.clone().into(),
        ]
    }
}

pub struct Placement {
    pub id: Uuid,
    pub community_id: Uuid,
    pub group_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub creator_id: Uuid,
    pub split_from: Option<Uuid>,
}

pub async fn insert(
    db: &impl ConnectionTrait,
    at: &Placement,
    fields: &SeriesFields,
) -> Result<EventRow, DbErr> {
    let sql = format!(
        "INSERT INTO events (id, community_id, group_id, room_id, creator_id, split_from, title, \
         description, location, starts_at, ends_at, timezone, rrule, rdates, exdates) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::timestamptz[], \
         $15::timestamptz[]) RETURNING {COLUMNS}"
    );
    let mut values: Vec<Value> = vec![
        at.id.into(),
        at.community_id.into(),
        at.group_id.into(),
        at.room_id.into(),
        at.creator_id.into(),
        at.split_from.into(),
    ];
    values.extend(fields.values());
    EventRow::find_by_statement(stmt(&sql, values))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)
}

pub async fn update(
    db: &impl ConnectionTrait,
    id: Uuid,
    fields: &SeriesFields,
) -> Result<Option<EventRow>, DbErr> {
    let sql = format!(
        "UPDATE events SET title = $2, description = $3, location = $4, starts_at = $5, \
         ends_at = $6, timezone = $7, rrule = $8, rdates = $9::timestamptz[], \
         exdates = $10::timestamptz[] WHERE id = $1 RETURNING {COLUMNS}"
    );
    let mut values: Vec<Value> = vec![id.into()];
    values.extend(fields.values());
    EventRow::find_by_statement(stmt(&sql, values))
        .one(db)
        .await
}

pub async fn event(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<EventRow>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM events WHERE id = $1");
    EventRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

/// Locks the series for a multi-statement change (split, move of overrides).
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<EventRow>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM events WHERE id = $1 FOR UPDATE");
    EventRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    let result = db
        .execute_raw(stmt("DELETE FROM events WHERE id = $1", [id.into()]))
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Series of the community that may have occurrences before `to` (expansion decides the rest).
pub async fn community_events(
    db: &impl ConnectionTrait,
    community: Uuid,
    to: DateTime<Utc>,
) -> Result<Vec<EventRow>, DbErr> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE community_id = $1 \
         AND (starts_at < $2 OR EXISTS (SELECT 1 FROM unnest(rdates) d WHERE d < $2)) \
         ORDER BY starts_at"
    );
    EventRow::find_by_statement(stmt(&sql, [community.into(), to.into()]))
        .all(db)
        .await
}

/// Every series that may have an occurrence starting before `to` and ending after `from`
/// (all communities; for reminders).
pub async fn events_around(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<EventRow>, DbErr> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE starts_at < $2 \
         AND (rrule IS NOT NULL OR ends_at > $1 OR cardinality(rdates) > 0)"
    );
    EventRow::find_by_statement(stmt(&sql, [from.into(), to.into()]))
        .all(db)
        .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct OverrideRow {
    pub event_id: Uuid,
    pub original_start: DateTime<Utc>,
    pub cancelled: bool,
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

pub async fn overrides(
    db: &impl ConnectionTrait,
    events: &[Uuid],
) -> Result<Vec<OverrideRow>, DbErr> {
    OverrideRow::find_by_statement(stmt(
        "SELECT event_id, original_start, cancelled, title, description, location, starts_at, \
         ends_at FROM event_overrides WHERE event_id = ANY ($1) ORDER BY original_start",
        [events.to_vec().into()],
    ))
    .all(db)
    .await
}

pub async fn upsert_override(db: &impl ConnectionTrait, row: &OverrideRow) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO event_overrides (event_id, original_start, cancelled, title, description, \
         location, starts_at, ends_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (event_id, original_start) DO UPDATE SET cancelled = EXCLUDED.cancelled, \
         title = EXCLUDED.title, description = EXCLUDED.description, \
         location = EXCLUDED.location, starts_at = EXCLUDED.starts_at, \
         ends_at = EXCLUDED.ends_at, updated_at = now()",
        [
            row.event_id.into(),
            row.original_start.into(),
            row.cancelled.into(),
            row.title.clone().into(),
            row.description.clone().into(),
            row.location.clone().into(),
            row.starts_at.into(),
            row.ends_at.into(),
        ],
    ))
    .await
    .map(|_| ())
}

/// Moves per-occurrence rows (overrides, RSVPs, sent reminders) at or after `from` (all when
/// `None`) to another series, shifting their keys by `shift` (the new series may start at
/// another time of day). In two steps, through a parking offset far in the future: a key can
/// shift onto one that has not moved yet, and Postgres checks primary keys row by row.
pub async fn move_occurrences(
    db: &impl ConnectionTrait,
    from_event: Uuid,
    to_event: Uuid,
    from: Option<DateTime<Utc>>,
    shift: chrono::Duration,
) -> Result<(), DbErr> {
    let seconds = shift.num_seconds() as f64;
    for table in ["event_overrides", "event_rsvps", "event_reminders_sent"] {
        db.execute_raw(stmt(
            &format!(
                "UPDATE {table} SET event_id = $2, \
                 original_start = original_start + make_interval(secs => $4) + interval '{PARKING}' \
                 WHERE event_id = $1 AND ($3::timestamptz IS NULL OR original_start >= $3) \
                 AND original_start < '{PARKED}'"
            ),
            [
                from_event.into(),
                to_event.into(),
                from.into(),
                seconds.into(),
            ],
        ))
        .await?;
        db.execute_raw(stmt(
            &format!(
                "UPDATE {table} SET original_start = original_start - interval '{PARKING}' \
                 WHERE event_id = $1 AND original_start >= '{PARKED}'"
            ),
            [to_event.into()],
        ))
        .await?;
    }
    // The counts trigger followed the RSVPs through the parking spot; drop what it left there.
    db.execute_raw(stmt(
        &format!(
            "DELETE FROM event_rsvp_counts WHERE event_id = ANY ($1) AND original_start >= '{PARKED}'"
        ),
        [vec![from_event, to_event].into()],
    ))
    .await?;
    Ok(())
}

/// Keys park this far ahead while they move; real occurrences are never that late.
const PARKING: &str = "2000 years";
const PARKED: &str = "3000-01-01T00:00:00Z";

/// Shifts every per-occurrence key of a series (its start moved by `shift`).
pub async fn shift_occurrences(
    db: &impl ConnectionTrait,
    event: Uuid,
    shift: chrono::Duration,
) -> Result<(), DbErr> {
    move_occurrences(db, event, event, None, shift).await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct CountRow {
    pub event_id: Uuid,
    pub original_start: DateTime<Utc>,
    pub going: i32,
    pub maybe: i32,
    pub declined: i32,
}

pub async fn rsvp_counts(
    db: &impl ConnectionTrait,
    events: &[Uuid],
) -> Result<Vec<CountRow>, DbErr> {
    CountRow::find_by_statement(stmt(
        "SELECT event_id, original_start, going, maybe, declined FROM event_rsvp_counts \
         WHERE event_id = ANY ($1)",
        [events.to_vec().into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct RsvpRow {
    pub event_id: Uuid,
    pub original_start: DateTime<Utc>,
    pub user_id: Uuid,
    pub status: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn my_rsvps(
    db: &impl ConnectionTrait,
    events: &[Uuid],
    user: Uuid,
) -> Result<Vec<RsvpRow>, DbErr> {
    RsvpRow::find_by_statement(stmt(
        "SELECT event_id, original_start, user_id, status, updated_at FROM event_rsvps \
         WHERE event_id = ANY ($1) AND user_id = $2",
        [events.to_vec().into(), user.into()],
    ))
    .all(db)
    .await
}

pub async fn rsvps_of(
    db: &impl ConnectionTrait,
    event: Uuid,
    original_start: DateTime<Utc>,
) -> Result<Vec<RsvpRow>, DbErr> {
    RsvpRow::find_by_statement(stmt(
        "SELECT event_id, original_start, user_id, status, updated_at FROM event_rsvps \
         WHERE event_id = $1 AND original_start = $2 ORDER BY updated_at, user_id LIMIT 5000",
        [event.into(), original_start.into()],
    ))
    .all(db)
    .await
}

pub async fn set_rsvp(
    db: &impl ConnectionTrait,
    event: Uuid,
    original_start: DateTime<Utc>,
    user: Uuid,
    status: Option<&str>,
) -> Result<(), DbErr> {
    let statement = match status {
        Some(status) => stmt(
            "INSERT INTO event_rsvps (event_id, original_start, user_id, status) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (event_id, original_start, user_id) \
             DO UPDATE SET status = EXCLUDED.status, updated_at = now() \
             WHERE event_rsvps.status <> EXCLUDED.status",
            [
                event.into(),
                original_start.into(),
                user.into(),
                status.into(),
            ],
        ),
        None => stmt(
            "DELETE FROM event_rsvps WHERE event_id = $1 AND original_start = $2 AND user_id = $3",
            [event.into(), original_start.into(), user.into()],
        ),
    };
    db.execute_raw(statement).await.map(|_| ())
}

#[derive(Debug, FromQueryResult)]
struct UserIdRow {
    user_id: Uuid,
}

pub async fn going(
    db: &impl ConnectionTrait,
    event: Uuid,
    original_start: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    Ok(UserIdRow::find_by_statement(stmt(
        "SELECT user_id FROM event_rsvps WHERE event_id = $1 AND original_start = $2 \
         AND status = 'going'",
        [event.into(), original_start.into()],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|r| r.user_id)
    .collect())
}

/// Claims the reminder of one occurrence; true for exactly one caller across all nodes.
pub async fn claim_reminder(
    db: &impl ConnectionTrait,
    event: Uuid,
    original_start: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = db
        .execute_raw(stmt(
            "INSERT INTO event_reminders_sent (event_id, original_start) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            [event.into(), original_start.into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct TokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_token(
    db: &impl ConnectionTrait,
    id: Uuid,
    user: Uuid,
    hash: &[u8],
) -> Result<TokenRow, DbErr> {
    TokenRow::find_by_statement(stmt(
        "INSERT INTO calendar_feed_tokens (id, user_id, token_hash) VALUES ($1, $2, $3) \
         RETURNING id, user_id, created_at",
        [id.into(), user.into(), hash.to_vec().into()],
    ))
    .one(db)
    .await?
    .ok_or(DbErr::RecordNotInserted)
}

pub async fn tokens(db: &impl ConnectionTrait, user: Uuid) -> Result<Vec<TokenRow>, DbErr> {
    TokenRow::find_by_statement(stmt(
        "SELECT id, user_id, created_at FROM calendar_feed_tokens WHERE user_id = $1 \
         ORDER BY created_at",
        [user.into()],
    ))
    .all(db)
    .await
}

pub async fn token_by_hash(
    db: &impl ConnectionTrait,
    hash: &[u8],
) -> Result<Option<TokenRow>, DbErr> {
    TokenRow::find_by_statement(stmt(
        "SELECT id, user_id, created_at FROM calendar_feed_tokens WHERE token_hash = $1",
        [hash.to_vec().into()],
    ))
    .one(db)
    .await
}

pub async fn delete_token(db: &impl ConnectionTrait, user: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let result = db
        .execute_raw(stmt(
            "DELETE FROM calendar_feed_tokens WHERE id = $1 AND user_id = $2",
            [id.into(), user.into()],
        ))
        .await?;
    Ok(result.rows_affected() > 0)
}
