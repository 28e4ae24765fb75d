//! HTTP handlers of polls.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::poll_service::{self, CreatePoll, PollView, VoterPage};
use crate::error::{AppError, Problem};
use crate::extract::{Json, Path, Query};
use crate::identity::AuthUser;
use crate::permissions::{ScopeKind, perm};
use crate::shared::cursor::PageParams;
use crate::state::AppState;

/// Post a poll into a room; a message carrying it joins the timeline.
#[utoipa::path(post, operation_id = "create_poll", path = "/v1/rooms/{room_id}/polls", tag = "polls", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)), request_body = CreatePoll,
    responses((status = 201, body = PollView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "client_msg_id already used for a message that carries no poll", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(room): Path<Uuid>,
    Json(body): Json<CreatePoll>,
) -> Result<(StatusCode, Json<PollView>), AppError> {
    let proof = state
        .permissions
        .require_kind::<perm::CreatePolls>(auth.user_id, room, ScopeKind::Room)
        .await?;
    let poll = poll_service::create(&state, &proof, body).await?;
    Ok((StatusCode::CREATED, Json(poll)))
}

/// A poll with the tallies and choices the caller may see.
#[utoipa::path(get, operation_id = "get_poll", path = "/v1/polls/{poll_id}", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)),
    responses((status = 200, body = PollView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<PollView>, AppError> {
    poll_service::poll_for(&state, auth.user_id, id)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VoteRequest {
    /// One option (single choice) or up to `max_choices` (multiple choice).
    pub option_ids: Vec<Uuid>,
}

/// Vote, or replace one's vote (anonymous votes are final: a second one is 409).
#[utoipa::path(put, operation_id = "vote_in_poll", path = "/v1/polls/{poll_id}/vote", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)), request_body = VoteRequest,
    responses((status = 200, body = PollView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn vote(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<VoteRequest>,
) -> Result<Json<PollView>, AppError> {
    poll_service::vote(&state, auth.user_id, id, &body.option_ids)
        .await
        .map(Json)
}

/// Withdraw one's vote (not for anonymous polls: 409).
#[utoipa::path(delete, operation_id = "retract_poll_vote", path = "/v1/polls/{poll_id}/vote", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn retract(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    poll_service::retract(&state, auth.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Close the poll now (its creator, or manage_messages); closing a closed poll changes nothing.
#[utoipa::path(post, operation_id = "close_poll", path = "/v1/polls/{poll_id}/close", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)),
    responses((status = 200, body = PollView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn close(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<PollView>, AppError> {
    poll_service::close(&state, auth.user_id, id)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct VoterParams {
    /// Only the voters of this option.
    pub option_id: Option<Uuid>,
}

/// Who voted for what (polls that are not anonymous; when the results are visible to the caller).
#[utoipa::path(get, operation_id = "list_poll_voters", path = "/v1/polls/{poll_id}/voters", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path), VoterParams, PageParams),
    responses((status = 200, body = VoterPage), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn voters(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(filter): Query<VoterParams>,
    Query(page): Query<PageParams>,
) -> Result<Json<VoterPage>, AppError> {
    let limit = page.limit()?;
    poll_service::voters(
        &state,
        auth.user_id,
        id,
        filter.option_id,
        page.cursor.as_deref(),
        limit,
    )
    .await
    .map(Json)
}
