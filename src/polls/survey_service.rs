//! Survey logic: create (survey, questions and options, then the message that carries it),
//! respond and edit the response until close, aggregated results, CSV export, close, and the
//! views each caller may see.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{AccessMode, ConnectionTrait, DatabaseTransaction, IsolationLevel, TransactionTrait};
use uuid::Uuid;

use super::Subject;
use super::lifecycle::{self, Kind};
use super::survey_check::{check_answers, validate};
use super::survey_csv::render_csv;
use super::survey_model::SurveyEvent;
pub use super::survey_model::{
    CreateSurvey, QuestionKind, SurveyAnswer, SurveyAnswerInput, SurveyOptionCount,
    SurveyOptionView, SurveyQuestionInput, SurveyQuestionResults, SurveyQuestionView,
    SurveyRatingSummary, SurveyResponseView, SurveyResults, SurveyResultsVisibility,
    SurveyTextAnswer, SurveyView,
};
use super::survey_repo::{
    self, AnswerRow, NewSurvey, OptionRow, QuestionRow, ResponseRow, SurveyRow,
};
use crate::error::AppError;
use crate::permissions::{Authorized, Perm, perm};
use crate::realtime::Audience;
use crate::state::AppState;

/// The survey's questions and options, in order.
pub(super) struct Form {
    pub(super) questions: Vec<QuestionRow>,
    pub(super) options: Vec<OptionRow>,
}

async fn form(db: &impl ConnectionTrait, survey: Uuid) -> Result<Form, AppError> {
    Ok(Form {
        questions: survey_repo::questions(db, survey).await?,
        options: survey_repo::options(db, survey).await?,
    })
}

impl Form {
    pub(super) fn options_of(&self, question: Uuid) -> impl Iterator<Item = &OptionRow> {
        self.options
            .iter()
            .filter(move |o| o.question_id == question)
    }
}

/// The viewer's relation to a survey, which decides what they may see.
struct Viewer {
    privileged: bool,
    responded: bool,
}

fn results_visible(row: &SurveyRow, viewer: Option<&Viewer>) -> bool {
    let results = SurveyResultsVisibility::parse(&row.results_visibility);
    let public = results == SurveyResultsVisibility::Always || row.is_closed(Utc::now());
    public
        || viewer.is_some_and(|v| {
            v.privileged || (results == SurveyResultsVisibility::AfterResponse && v.responded)
        })
}

fn question_views(form: &Form) -> Vec<SurveyQuestionView> {
    form.questions
        .iter()
        .map(|q| SurveyQuestionView {
            id: q.id,
            kind: QuestionKind::parse(&q.kind),
            prompt: q.prompt.clone(),
            required: q.required,
            scale: q.scale,
            max_choices: q.max_choices,
            options: form
                .options_of(q.id)
                .map(|o| SurveyOptionView {
                    id: o.id,
                    label: o.label.clone(),
                })
                .collect(),
        })
        .collect()
}

fn view(row: SurveyRow, form: &Form, viewer: Option<&Viewer>) -> SurveyView {
    let closed = row.is_closed(Utc::now());
    SurveyView {
        results_visible: results_visible(&row, viewer),
        id: row.id,
        room_id: row.room_id,
        message_id: row.message_id,
        creator_id: row.creator_id,
        title: row.title,
        description: row.description,
        questions: question_views(form),
        results: SurveyResultsVisibility::parse(&row.results_visibility),
        closes_at: row.closes_at,
        closed,
        closed_at: row.closed_at.or(row.closes_at.filter(|_| closed)),
        response_count: row.response_count,
        responded: viewer.map(|v| v.responded),
        created_at: row.created_at,
    }
}

/// Stores the survey, then posts the message that carries it (acked after commit like any
/// message); if the message cannot be stored, the survey is removed again.
pub async fn create(
    state: &AppState,
    auth: &Authorized<perm::CreatePolls>,
    input: CreateSurvey,
) -> Result<SurveyView, AppError> {
    super::poll_service::require_send(auth.perms())?;
    let (title, description, questions) = validate(&input)?;
    let id = Uuid::now_v7();
    let survey = NewSurvey {
        id,
        room_id: auth.scope().id,
        creator_id: auth.user(),
        title: title.clone(),
        description,
        results_visibility: input.results.as_str(),
        closes_at: input.closes_at,
        questions,
    };
    let txn = state.db.begin().await?;
    survey_repo::insert(&txn, &survey).await?;
    txn.commit().await?;
    let place = (auth.scope().id, auth.user());
    let survey_id =
        lifecycle::carry(state, Kind::Survey, place, title, input.client_msg_id, id).await?;
    survey_for(state, auth.user(), survey_id).await
}

/// The survey and proof the user may read its room; a survey in a room they cannot read is a 404.
async fn readable(
    state: &AppState,
    user: Uuid,
    survey_id: Uuid,
) -> Result<(SurveyRow, Authorized<perm::ReadHistory>), AppError> {
    let row = survey_repo::survey(&state.db, survey_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let auth = state.permissions.room_reader(user, row.room_id).await?;
    Ok((row, auth))
}

fn privileged(row: &SurveyRow, auth: &Authorized<perm::ReadHistory>) -> bool {
    lifecycle::privileged(row.creator_id, auth)
}

async fn viewer(
    state: &AppState,
    row: &SurveyRow,
    auth: &Authorized<perm::ReadHistory>,
) -> Result<Viewer, AppError> {
    let mine = survey_repo::my_response(&state.db, row.id, auth.user()).await?;
    Ok(Viewer {
        privileged: privileged(row, auth),
        responded: mine.is_some(),
    })
}

/// The survey as this user may see it.
pub async fn survey_for(
    state: &AppState,
    user: Uuid,
    survey_id: Uuid,
) -> Result<SurveyView, AppError> {
    let (row, auth) = readable(state, user, survey_id).await?;
    let viewer = viewer(state, &row, &auth).await?;
    let form = form(&state.db, survey_id).await?;
    Ok(view(row, &form, Some(&viewer)))
}

fn response_view(
    survey_id: Uuid,
    response: ResponseRow,
    answers: Vec<AnswerRow>,
) -> SurveyResponseView {
    SurveyResponseView {
        survey_id,
        answers: answers
            .into_iter()
            .map(|a| SurveyAnswer {
                question_id: a.question_id,
                option_ids: a.option_ids,
                text: a.text,
                rating: a.rating,
            })
            .collect(),
        submitted_at: response.submitted_at,
        updated_at: response.updated_at,
    }
}

/// Stores the caller's response, or replaces their earlier one while the survey is open; true
/// when it is their first.
pub async fn respond(
    state: &AppState,
    user: Uuid,
    survey_id: Uuid,
    input: &[SurveyAnswerInput],
) -> Result<(SurveyResponseView, bool), AppError> {
    let (_, auth) = readable(state, user, survey_id).await?;
    if !auth.perms().contains(Perm::Vote) {
        return Err(AppError::Forbidden(
            "requires the vote permission here".into(),
        ));
    }
    let txn = state.db.begin().await?;
    let row = survey_repo::lock(&txn, survey_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.is_closed(Utc::now()) {
        return Err(AppError::Conflict {
            detail: "the survey is closed".into(),
            fields: vec![],
        });
    }
    let answers = check_answers(&form(&txn, survey_id).await?, input)?;
    let (response, created) = survey_repo::upsert_response(&txn, survey_id, user).await?;
    survey_repo::replace_answers(&txn, response.id, &answers).await?;
    txn.commit().await?;
    state.polls.live.touch(state, Subject::Survey(survey_id));
    Ok((response_view(survey_id, response, answers), created))
}

/// The caller's own response; 404 when they have not responded.
pub async fn my_response(
    state: &AppState,
    user: Uuid,
    survey_id: Uuid,
) -> Result<SurveyResponseView, AppError> {
    readable(state, user, survey_id).await?;
    let response = survey_repo::my_response(&state.db, survey_id, user)
        .await?
        .ok_or(AppError::NotFound)?;
    let answers = survey_repo::answers(&state.db, response.id).await?;
    Ok(response_view(survey_id, response, answers))
}

/// A read-only snapshot, so several aggregate queries agree with each other.
async fn snapshot(state: &AppState) -> Result<DatabaseTransaction, AppError> {
    Ok(state
        .db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?)
}

/// The aggregates of one survey as the database computed them.
struct Tally {
    stats: HashMap<Uuid, survey_repo::QuestionStats>,
    options: Vec<survey_repo::OptionCount>,
    ratings: Vec<survey_repo::RatingCount>,
    /// Only loaded for those who may read them.
    texts: Option<Vec<survey_repo::TextAnswer>>,
}

async fn tally(
    db: &DatabaseTransaction,
    survey: Uuid,
    with_texts: bool,
) -> Result<Tally, AppError> {
    let stats = survey_repo::question_stats(db, survey).await?;
    let texts = if with_texts {
        Some(survey_repo::text_answers(db, survey).await?)
    } else {
        None
    };
    Ok(Tally {
        stats: stats.into_iter().map(|s| (s.question_id, s)).collect(),
        options: survey_repo::option_counts(db, survey).await?,
        ratings: survey_repo::rating_counts(db, survey).await?,
        texts,
    })
}

fn question_results(q: QuestionRow, tally: &Tally) -> SurveyQuestionResults {
    let kind = QuestionKind::parse(&q.kind);
    let stats = tally.stats.get(&q.id);
    let options = tally.options.iter().filter(|o| o.question_id == q.id);
    let texts = tally
        .texts
        .iter()
        .flatten()
        .filter(|t| t.question_id == q.id);
    SurveyQuestionResults {
        question_id: q.id,
        kind,
        answered: stats.map_or(0, |s| s.answered),
        options: kind.is_choice().then(|| {
            options
                .map(|o| SurveyOptionCount {
                    option_id: o.option_id,
                    label: o.label.clone(),
                    count: o.count,
                })
                .collect()
        }),
        rating: (kind == QuestionKind::Rating).then(|| SurveyRatingSummary {
            mean: stats.and_then(|s| s.mean),
            distribution: (tally.ratings.iter())
                .filter(|r| r.question_id == q.id)
                .map(|r| r.count)
                .collect(),
        }),
        text_answers: (kind == QuestionKind::Text && tally.texts.is_some()).then(|| {
            texts
                .map(|t| SurveyTextAnswer {
                    user_id: t.user_id,
                    text: t.text.clone(),
                })
                .collect()
        }),
        prompt: q.prompt,
    }
}

fn hidden_results(row: &SurveyRow) -> AppError {
    let when = match SurveyResultsVisibility::parse(&row.results_visibility) {
        SurveyResultsVisibility::AfterResponse => "once you have responded",
        _ => "once it closes",
    };
    AppError::Forbidden(format!(
        "the results of this survey are visible to you {when}"
    ))
}

/// Per-question aggregates for those the survey's `results` setting admits; who wrote which
/// text answer only for the creator and manage_messages holders.
pub async fn results(
    state: &AppState,
    user: Uuid,
    survey_id: Uuid,
) -> Result<SurveyResults, AppError> {
    let (row, auth) = readable(state, user, survey_id).await?;
    let viewer = viewer(state, &row, &auth).await?;
    if !results_visible(&row, Some(&viewer)) {
        return Err(hidden_results(&row));
    }
    let txn = snapshot(state).await?;
    let row = survey_repo::survey(&txn, survey_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let questions = survey_repo::questions(&txn, survey_id).await?;
    let tally = tally(&txn, survey_id, viewer.privileged).await?;
    txn.commit().await?;
    Ok(SurveyResults {
        survey_id,
        response_count: row.response_count,
        questions: (questions.into_iter())
            .map(|q| question_results(q, &tally))
            .collect(),
    })
}

/// Every response, one CSV row each, for the creator and manage_messages holders.
pub async fn export_csv(state: &AppState, user: Uuid, survey_id: Uuid) -> Result<String, AppError> {
    let (row, auth) = readable(state, user, survey_id).await?;
    if !privileged(&row, &auth) {
        return Err(AppError::Forbidden(
            "only the survey's creator or someone with manage_messages can export its responses"
                .into(),
        ));
    }
    let txn = snapshot(state).await?;
    let questions = survey_repo::questions(&txn, survey_id).await?;
    let responses = survey_repo::export_responses(&txn, survey_id).await?;
    let cells = survey_repo::export_cells(&txn, survey_id).await?;
    txn.commit().await?;
    Ok(render_csv(&questions, &responses, cells))
}

/// The creator, or anyone with manage_messages in the room, closes the survey (idempotent).
pub async fn close(state: &AppState, user: Uuid, survey_id: Uuid) -> Result<SurveyView, AppError> {
    let (row, auth) = readable(state, user, survey_id).await?;
    if !privileged(&row, &auth) {
        return Err(AppError::Forbidden(
            "only the survey's creator or someone with manage_messages can close it".into(),
        ));
    }
    if lifecycle::close(&state.db, Kind::Survey, survey_id, user).await? {
        state.polls.live.touch(state, Subject::Survey(survey_id));
    }
    survey_for(state, user, survey_id).await
}

/// Sends the room the survey as everybody may see it (no per-viewer fields).
pub async fn publish_update(state: &AppState, survey_id: Uuid) -> Result<(), AppError> {
    let Some(row) = survey_repo::survey(&state.db, survey_id).await? else {
        return Ok(());
    };
    let room = row.room_id;
    let form = form(&state.db, survey_id).await?;
    let survey = view(row, &form, None);
    let event = SurveyEvent::Updated {
        room_id: room,
        survey: &survey,
    };
    state.bus.publish(Audience::Room(room), None, &event).await;
    Ok(())
}
