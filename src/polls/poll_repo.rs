//! Queries on polls, options, ballots and votes. Tallies and voter counts are the triggers' work.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct PollRow {
    pub id: Uuid,
    pub room_id: Uuid,
    pub creator_id: Uuid,
    pub question: String,
    pub multiple_choice: bool,
    pub max_choices: Option<i32>,
    pub anonymous: bool,
    pub results_visibility: String,
    pub closes_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub voter_count: i32,
    pub created_at: DateTime<Utc>,
    pub message_id: Option<Uuid>,
}

impl PollRow {
    /// Closed by hand, by the closing job, or simply past `closes_at` (the job may lag a second).
    pub fn is_closed(&self, now: DateTime<Utc>) -> bool {
        self.closed_at.is_some() || self.closes_at.is_some_and(|at| at <= now)
    }
}

const POLL_COLUMNS: &str = "p.id, p.room_id, p.creator_id, p.question, p.multiple_choice, \
    p.max_choices, p.anonymous, p.results_visibility, p.closes_at, p.closed_at, p.voter_count, \
    p.created_at, p.message_id";

#[derive(Debug, Clone, FromQueryResult)]
pub struct OptionRow {
    pub id: Uuid,
    pub label: String,
    pub votes: i32,
}

pub struct NewPoll<'a> {
    pub id: Uuid,
    pub room_id: Uuid,
    pub creator_id: Uuid,
    pub question: &'a str,
    pub multiple_choice: bool,
    pub max_choices: Option<i32>,
    pub anonymous: bool,
    pub results_visibility: &'a str,
    pub closes_at: Option<DateTime<Utc>>,
    pub options: &'a [String],
}

pub async fn insert(db: &impl ConnectionTrait, poll: &NewPoll<'_>) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO polls (id, room_id, creator_id, question, multiple_choice, max_choices, \
         anonymous, results_visibility, closes_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            poll.id.into(),
            poll.room_id.into(),
            poll.creator_id.into(),
            poll.question.into(),
            poll.multiple_choice.into(),
            poll.max_choices.into(),
            poll.anonymous.into(),
            poll.results_visibility.into(),
            poll.closes_at.into(),
        ],
    ))
    .await?;
    let ids: Vec<Uuid> = poll.options.iter().map(|_| Uuid::now_v7()).collect();
    db.execute_raw(stmt(
        "INSERT INTO poll_options (id, poll_id, position, label) \
         SELECT o.id, $1, o.n - 1, o.label FROM unnest($2::uuid[], $3::text[]) \
         WITH ORDINALITY AS o(id, label, n)",
        [poll.id.into(), ids.into(), poll.options.to_vec().into()],
    ))
    .await?;
    Ok(())
}

pub async fn poll(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<PollRow>, DbErr> {
    let sql = format!("SELECT {POLL_COLUMNS} FROM polls p WHERE p.id = $1");
    PollRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

/// Locks the poll for the rest of the transaction: votes on one poll are applied one at a time,
/// which orders every other row lock they take (no deadlocks) and makes the open check hold.
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<PollRow>, DbErr> {
    let sql = format!("SELECT {POLL_COLUMNS} FROM polls p WHERE p.id = $1 FOR UPDATE OF p");
    PollRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

pub async fn options(db: &impl ConnectionTrait, poll: Uuid) -> Result<Vec<OptionRow>, DbErr> {
    OptionRow::find_by_statement(stmt(
        "SELECT id, label, votes FROM poll_options WHERE poll_id = $1 ORDER BY position",
        [poll.into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, FromQueryResult)]
struct Flag {
    flag: bool,
}

pub async fn has_ballot(db: &impl ConnectionTrait, poll: Uuid, key: &[u8]) -> Result<bool, DbErr> {
    Ok(Flag::find_by_statement(stmt(
        "SELECT EXISTS (SELECT 1 FROM poll_ballots WHERE poll_id = $1 AND voter_key = $2) AS flag",
        [poll.into(), key.to_vec().into()],
    ))
    .one(db)
    .await?
    .is_some_and(|f| f.flag))
}

#[derive(Debug, FromQueryResult)]
struct OptionId {
    option_id: Uuid,
}

/// The caller's choices in a poll that is not anonymous, in option order.
pub async fn my_votes(
    db: &impl ConnectionTrait,
    poll: Uuid,
    user: Uuid,
) -> Result<Vec<Uuid>, DbErr> {
    Ok(OptionId::find_by_statement(stmt(
        "SELECT v.option_id FROM poll_votes v JOIN poll_options o ON o.id = v.option_id \
         WHERE v.poll_id = $1 AND v.user_id = $2 ORDER BY o.position",
        [poll.into(), user.into()],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|r| r.option_id)
    .collect())
}

/// An anonymous ballot: the trigger counts `choices` and stores the row without them.
pub async fn cast_anonymous(
    db: &impl ConnectionTrait,
    poll: Uuid,
    key: &[u8],
    choices: &[Uuid],
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO poll_ballots (poll_id, voter_key, choices) VALUES ($1, $2, $3::uuid[])",
        [poll.into(), key.to_vec().into(), choices.to_vec().into()],
    ))
    .await
    .map(|_| ())
}

/// Replaces the user's choices in a poll that is not anonymous (the ballot marks them a voter).
pub async fn replace_votes(
    db: &impl ConnectionTrait,
    poll: Uuid,
    user: Uuid,
    key: &[u8],
    choices: &[Uuid],
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO poll_ballots (poll_id, voter_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [poll.into(), key.to_vec().into()],
    ))
    .await?;
    db.execute_raw(stmt(
        "DELETE FROM poll_votes WHERE poll_id = $1 AND user_id = $2 AND NOT (option_id = ANY ($3::uuid[]))",
        [poll.into(), user.into(), choices.to_vec().into()],
    ))
    .await?;
    db.execute_raw(stmt(
        "INSERT INTO poll_votes (poll_id, option_id, user_id) \
         SELECT $1, c, $2 FROM unnest($3::uuid[]) AS c ON CONFLICT DO NOTHING",
        [poll.into(), user.into(), choices.to_vec().into()],
    ))
    .await
    .map(|_| ())
}

/// Removes the user's votes and ballot; false when there was none.
pub async fn retract(
    db: &impl ConnectionTrait,
    poll: Uuid,
    user: Uuid,
    key: &[u8],
) -> Result<bool, DbErr> {
    db.execute_raw(stmt(
        "DELETE FROM poll_votes WHERE poll_id = $1 AND user_id = $2",
        [poll.into(), user.into()],
    ))
    .await?;
    let ballots = db
        .execute_raw(stmt(
            "DELETE FROM poll_ballots WHERE poll_id = $1 AND voter_key = $2",
            [poll.into(), key.to_vec().into()],
        ))
        .await?;
    Ok(ballots.rows_affected() > 0)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct VoterRow {
    pub user_id: Uuid,
    pub option_id: Uuid,
    pub voted_at: DateTime<Utc>,
}

/// Voters of a poll that is not anonymous, oldest vote first, keyset-paged by
/// (voted_at, user_id, option_id).
pub async fn voters(
    db: &impl ConnectionTrait,
    poll: Uuid,
    option: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid, Uuid)>,
    limit: u64,
) -> Result<Vec<VoterRow>, DbErr> {
    let (at, user, opt) = after.map_or((None, None, None), |(a, u, o)| (Some(a), Some(u), Some(o)));
    VoterRow::find_by_statement(stmt(
        "SELECT user_id, option_id, voted_at FROM poll_votes \
         WHERE poll_id = $1 AND ($2::uuid IS NULL OR option_id = $2) \
           AND ($3::timestamptz IS NULL OR (voted_at, user_id, option_id) > ($3, $4, $5)) \
         ORDER BY voted_at, user_id, option_id LIMIT $6",
        [
            poll.into(),
            option.into(),
            at.into(),
            user.into(),
            opt.into(),
            (limit as i64).into(),
        ],
    ))
    .all(db)
    .await
}
