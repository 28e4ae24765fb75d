//! Queries on surveys, questions, options, responses and answers. Response counts are the
//! trigger's work; result aggregates are GROUP BYs here, never loops over answers in Rust.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `($1, $2, .., $w+1), ($1, ..), ..`: `rows` rows, each the shared parent id `$1` followed by
/// its own `width` parameters.
fn rows_under_parent(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| {
            let first = 2 + row * width;
            let own: Vec<String> = (first..first + width).map(|n| format!("${n}")).collect();
            format!("($1, {})", own.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct SurveyRow {
    pub id: Uuid,
    pub room_id: Uuid,
    pub creator_id: Uuid,
    pub title: String,
    pub description: String,
    pub results_visibility: String,
    pub closes_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub response_count: i32,
    pub created_at: DateTime<Utc>,
    pub message_id: Option<Uuid>,
}

impl SurveyRow {
    /// Closed by hand, by the closing job, or simply past `closes_at` (the job may lag a second).
    pub fn is_closed(&self, now: DateTime<Utc>) -> bool {
        self.closed_at.is_some() || self.closes_at.is_some_and(|at| at <= now)
    }
}

const SURVEY_COLUMNS: &str = "s.id, s.room_id, s.creator_id, s.title, s.description, \
    s.results_visibility, s.closes_at, s.closed_at, s.response_count, s.created_at, \
    s.message_id";

#[derive(Debug, Clone, FromQueryResult)]
pub struct QuestionRow {
    pub id: Uuid,
    pub kind: String,
    pub prompt: String,
    pub required: bool,
    pub scale: Option<i16>,
    pub max_choices: Option<i32>,
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct OptionRow {
    pub id: Uuid,
    pub question_id: Uuid,
    pub label: String,
}

pub struct NewQuestion {
    pub id: Uuid,
    pub kind: &'static str,
    pub prompt: String,
    pub required: bool,
    pub scale: Option<i16>,
    pub max_choices: Option<i32>,
    pub options: Vec<String>,
}

pub struct NewSurvey {
    pub id: Uuid,
    pub room_id: Uuid,
    pub creator_id: Uuid,
    pub title: String,
    pub description: String,
    pub results_visibility: &'static str,
    pub closes_at: Option<DateTime<Utc>>,
    pub questions: Vec<NewQuestion>,
}

/// Stores the survey with its questions and options; run it in a transaction.
pub async fn insert(db: &impl ConnectionTrait, survey: &NewSurvey) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO surveys (id, room_id, creator_id, title, description, results_visibility, \
         closes_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            survey.id.into(),
            survey.room_id.into(),
            survey.creator_id.into(),
            survey.title.clone().into(),
            survey.description.clone().into(),
            survey.results_visibility.into(),
            survey.closes_at.into(),
        ],
    ))
    .await?;
    insert_questions(db, survey).await?;
    insert_options(db, &survey.questions).await
}

async fn insert_questions(db: &impl ConnectionTrait, survey: &NewSurvey) -> Result<(), DbErr> {
    let sql = format!(
        "INSERT INTO survey_questions (survey_id, id, position, kind, prompt, required, scale, \
         max_choices) VALUES {}",
        rows_under_parent(survey.questions.len(), 7)
    );
    let mut values: Vec<Value> = vec![survey.id.into()];
    for (position, q) in survey.questions.iter().enumerate() {
        values.extend([
            q.id.into(),
            (position as i16).into(),
            q.kind.into(),
            q.prompt.clone().into(),
            q.required.into(),
            q.scale.into(),
            q.max_choices.into(),
        ]);
    }
    db.execute_raw(stmt(&sql, values)).await.map(|_| ())
}

async fn insert_options(db: &impl ConnectionTrait, questions: &[NewQuestion]) -> Result<(), DbErr> {
    let (mut ids, mut owners, mut positions, mut labels) = (vec![], vec![], vec![], vec![]);
    for q in questions {
        for (position, label) in q.options.iter().enumerate() {
            ids.push(Uuid::now_v7());
            owners.push(q.id);
            positions.push(position as i16);
            labels.push(label.clone());
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    db.execute_raw(stmt(
        "INSERT INTO survey_options (id, question_id, position, label) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int2[], $4::text[])",
        [ids.into(), owners.into(), positions.into(), labels.into()],
    ))
    .await
    .map(|_| ())
}

pub async fn survey(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<SurveyRow>, DbErr> {
    let sql = format!("SELECT {SURVEY_COLUMNS} FROM surveys s WHERE s.id = $1");
    SurveyRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

/// Locks the survey for the rest of the transaction: responses to one survey are applied one at
/// a time, and a close waits for them, so the open check holds until commit.
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<SurveyRow>, DbErr> {
    let sql = format!("SELECT {SURVEY_COLUMNS} FROM surveys s WHERE s.id = $1 FOR UPDATE OF s");
    SurveyRow::find_by_statement(stmt(&sql, [id.into()]))
        .one(db)
        .await
}

pub async fn questions(db: &impl ConnectionTrait, survey: Uuid) -> Result<Vec<QuestionRow>, DbErr> {
    QuestionRow::find_by_statement(stmt(
        "SELECT id, kind, prompt, required, scale, max_choices FROM survey_questions \
         WHERE survey_id = $1 ORDER BY position",
        [survey.into()],
    ))
    .all(db)
    .await
}

/// Every option of the survey, in question order then option order.
pub async fn options(db: &impl ConnectionTrait, survey: Uuid) -> Result<Vec<OptionRow>, DbErr> {
    OptionRow::find_by_statement(stmt(
        "SELECT o.id, o.question_id, o.label FROM survey_options o \
         JOIN survey_questions q ON q.id = o.question_id \
         WHERE q.survey_id = $1 ORDER BY q.position, o.position",
        [survey.into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct ResponseRow {
    pub id: Uuid,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One answer; exactly one of `option_ids`, `text`, `rating` is set (the table checks it).
#[derive(Debug, Clone, FromQueryResult)]
pub struct AnswerRow {
    pub question_id: Uuid,
    pub option_ids: Option<Vec<Uuid>>,
    pub text: Option<String>,
    pub rating: Option<i16>,
}

pub async fn my_response(
    db: &impl ConnectionTrait,
    survey: Uuid,
    user: Uuid,
) -> Result<Option<ResponseRow>, DbErr> {
    ResponseRow::find_by_statement(stmt(
        "SELECT id, submitted_at, updated_at FROM survey_responses \
         WHERE survey_id = $1 AND user_id = $2",
        [survey.into(), user.into()],
    ))
    .one(db)
    .await
}

/// A response's answers in question order.
pub async fn answers(db: &impl ConnectionTrait, response: Uuid) -> Result<Vec<AnswerRow>, DbErr> {
    AnswerRow::find_by_statement(stmt(
        "SELECT a.question_id, a.option_ids, a.text, a.rating FROM survey_answers a \
         JOIN survey_questions q ON q.id = a.question_id \
         WHERE a.response_id = $1 ORDER BY q.position",
        [response.into()],
    ))
    .all(db)
    .await
}

/// The user's response row, created or touched; true when it was created.
pub async fn upsert_response(
    db: &impl ConnectionTrait,
    survey: Uuid,
    user: Uuid,
) -> Result<(ResponseRow, bool), DbErr> {
    let fresh = Uuid::now_v7();
    let row = ResponseRow::find_by_statement(stmt(
        "INSERT INTO survey_responses (id, survey_id, user_id) VALUES ($1, $2, $3) \
         ON CONFLICT (survey_id, user_id) DO UPDATE SET updated_at = now() \
         RETURNING id, submitted_at, updated_at",
        [fresh.into(), survey.into(), user.into()],
    ))
    .one(db)
    .await?
    .ok_or_else(|| DbErr::RecordNotInserted)?;
    // An existing row keeps its id, so the fresh id coming back means the insert happened.
    let created = row.id == fresh;
    Ok((row, created))
}

/// Replaces every answer of the response with `answers` (at least one).
pub async fn replace_answers(
    db: &impl ConnectionTrait,
    response: Uuid,
    answers: &[AnswerRow],
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "DELETE FROM survey_answers WHERE response_id = $1",
        [response.into()],
    ))
    .await?;
    let sql = format!(
        "INSERT INTO survey_answers (response_id, question_id, option_ids, text, rating) \
         VALUES {}",
        rows_under_parent(answers.len(), 4)
    );
    let mut values: Vec<Value> = vec![response.into()];
    for a in answers {
        values.extend([
            a.question_id.into(),
            a.option_ids.clone().into(),
            a.text.clone().into(),
            a.rating.into(),
        ]);
    }
    db.execute_raw(stmt(&sql, values)).await.map(|_| ())
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct QuestionStats {
    pub question_id: Uuid,
    pub answered: i32,
    /// Mean rating; null for other kinds and for rating questions nobody answered.
    pub mean: Option<f64>,
}

/// Per question, in order: how many answered it and the mean rating.
pub async fn question_stats(
    db: &impl ConnectionTrait,
    survey: Uuid,
) -> Result<Vec<QuestionStats>, DbErr> {
    QuestionStats::find_by_statement(stmt(
        "SELECT q.id AS question_id, count(a.response_id)::int4 AS answered, \
                avg(a.rating)::float8 AS mean \
         FROM survey_questions q LEFT JOIN survey_answers a ON a.question_id = q.id \
         WHERE q.survey_id = $1 GROUP BY q.id, q.position ORDER BY q.position",
        [survey.into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct OptionCount {
    pub question_id: Uuid,
    pub option_id: Uuid,
    pub label: String,
    pub count: i32,
}

/// How many answers chose each option, zeros included, in question then option order.
pub async fn option_counts(
    db: &impl ConnectionTrait,
    survey: Uuid,
) -> Result<Vec<OptionCount>, DbErr> {
    OptionCount::find_by_statement(stmt(
        "SELECT o.question_id, o.id AS option_id, o.label, count(a.response_id)::int4 AS count \
         FROM survey_questions q JOIN survey_options o ON o.question_id = q.id \
         LEFT JOIN survey_answers a ON a.question_id = q.id AND o.id = ANY (a.option_ids) \
         WHERE q.survey_id = $1 \
         GROUP BY q.position, o.position, o.question_id, o.id, o.label \
         ORDER BY q.position, o.position",
        [survey.into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct RatingCount {
    pub question_id: Uuid,
    pub count: i32,
}

/// For each rating question, how many chose 1, 2, .., scale: one row per value, zeros
/// included, in question then value order.
pub async fn rating_counts(
    db: &impl ConnectionTrait,
    survey: Uuid,
) -> Result<Vec<RatingCount>, DbErr> {
    RatingCount::find_by_statement(stmt(
        "SELECT q.id AS question_id, count(a.response_id)::int4 AS count \
         FROM survey_questions q CROSS JOIN LATERAL generate_series(1, q.scale) AS s(rating) \
         LEFT JOIN survey_answers a ON a.question_id = q.id AND a.rating = s.rating \
         WHERE q.survey_id = $1 AND q.kind = 'rating' \
         GROUP BY q.id, q.position, s.rating ORDER BY q.position, s.rating",
        [survey.into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct TextAnswer {
    pub question_id: Uuid,
    pub user_id: Uuid,
    pub text: String,
}

/// Every free-text answer with its author, oldest response first.
pub async fn text_answers(
    db: &impl ConnectionTrait,
    survey: Uuid,
) -> Result<Vec<TextAnswer>, DbErr> {
    TextAnswer::find_by_statement(stmt(
        "SELECT a.question_id, r.user_id, a.text FROM survey_answers a \
         JOIN survey_responses r ON r.id = a.response_id \
         WHERE r.survey_id = $1 AND a.text IS NOT NULL ORDER BY r.submitted_at, r.id",
        [survey.into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct ExportResponse {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The survey's responses with their authors, oldest first.
pub async fn export_responses(
    db: &impl ConnectionTrait,
    survey: Uuid,
) -> Result<Vec<ExportResponse>, DbErr> {
    ExportResponse::find_by_statement(stmt(
        "SELECT r.id, r.user_id, u.username, r.submitted_at, r.updated_at \
         FROM survey_responses r JOIN users u ON u.id = r.user_id \
         WHERE r.survey_id = $1 ORDER BY r.submitted_at, r.id",
        [survey.into()],
    ))
    .all(db)
    .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct ExportCell {
    pub response_id: Uuid,
    pub question_id: Uuid,
    /// Choice labels joined by "; " in option order, the rating, or the text.
    pub value: String,
}

/// Every answer of the survey rendered as one spreadsheet cell.
pub async fn export_cells(
    db: &impl ConnectionTrait,
    survey: Uuid,
) -> Result<Vec<ExportCell>, DbErr> {
    ExportCell::find_by_statement(stmt(
        "SELECT a.response_id, a.question_id, COALESCE(a.text, a.rating::text, \
                (SELECT string_agg(o.label, '; ' ORDER BY o.position) FROM survey_options o \
                  WHERE o.id = ANY (a.option_ids)), '') AS value \
         FROM survey_answers a JOIN survey_responses r ON r.id = a.response_id \
         WHERE r.survey_id = $1",
        [survey.into()],
    ))
    .all(db)
    .await
}
