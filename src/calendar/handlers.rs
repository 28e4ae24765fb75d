//! HTTP handlers of the calendar.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::model::{
    AttendeeList, CreateEvent, EventView, FeedToken, FeedTokenList, OccurrencePage, RsvpRequest,
    RsvpView, SplitRequest, UpdateEvent, UpdateOccurrence,
};
use super::service::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{exceptions, feed, rsvp, service};
use crate::error::{AppError, Problem};
use crate::extract::{Json, Path, Query};
use crate::identity::AuthUser;
use crate::state::AppState;

/// Create an event series (create_events at the community, group or room).
#[utoipa::path(post, operation_id = "create_event", path = "/v1/communities/{community_id}/events", tag = "calendar",
    security(("bearer" = [])), params(("community_id" = Uuid, Path)), request_body = CreateEvent,
    responses((status = 201, body = EventView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(community): Path<Uuid>,
    Json(body): Json<CreateEvent>,
) -> Result<(StatusCode, Json<EventView>), AppError> {
    let event = service::create(&state, auth.user_id, community, body).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct WindowParams {
    /// Start of the window (RFC 3339).
    pub from: DateTime<Utc>,
    /// End of the window, at most 366 days after `from`.
    pub to: DateTime<Utc>,
    /// Most occurrences answered (default 500, max 2000); more in the window is a 422.
    #[param(minimum = 1, maximum = 2000)]
    pub limit: Option<usize>,
}

/// Occurrences of every event the caller can see in the community, overrides applied, sorted.
#[utoipa::path(get, operation_id = "list_occurrences", path = "/v1/communities/{community_id}/occurrences", tag = "calendar",
    security(("bearer" = [])), params(("community_id" = Uuid, Path), WindowParams),
    responses((status = 200, body = OccurrencePage), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn occurrences(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(community): Path<Uuid>,
    Query(params): Query<WindowParams>,
) -> Result<Json<OccurrencePage>, AppError> {
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(_) => return Err(AppError::field("limit", format!("must be 1-{MAX_LIMIT}"))),
    };
    let occurrences = service::occurrences(
        &state,
        auth.user_id,
        community,
        (params.from, params.to),
        limit,
    )
    .await?;
    Ok(Json(OccurrencePage { occurrences }))
}

/// A series with its per-occurrence edits.
#[utoipa::path(get, operation_id = "get_event", path = "/v1/events/{event_id}", tag = "calendar", security(("bearer" = [])),
    params(("event_id" = Uuid, Path)),
    responses((status = 200, body = EventView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(event): Path<Uuid>,
) -> Result<Json<EventView>, AppError> {
    service::get(&state, auth.user_id, event).await.map(Json)
}

/// Edit the whole series (its creator, or manage_events).
#[utoipa::path(patch, operation_id = "update_event", path = "/v1/events/{event_id}", tag = "calendar", security(("bearer" = [])),
    params(("event_id" = Uuid, Path)), request_body = UpdateEvent,
    responses((status = 200, body = EventView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(event): Path<Uuid>,
    Json(body): Json<UpdateEvent>,
) -> Result<Json<EventView>, AppError> {
    service::update(&state, auth.user_id, event, body)
        .await
        .map(Json)
}

/// Delete the whole series.
#[utoipa::path(delete, operation_id = "delete_event", path = "/v1/events/{event_id}", tag = "calendar", security(("bearer" = [])),
    params(("event_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(event): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    service::delete(&state, auth.user_id, event).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Edit one occurrence, keyed by its original start (RFC 3339 UTC).
#[utoipa::path(patch, operation_id = "edit_occurrence", path = "/v1/events/{event_id}/occurrences/{original_start}", tag = "calendar",
    security(("bearer" = [])), params(("event_id" = Uuid, Path), ("original_start" = DateTime<Utc>, Path)),
    request_body = UpdateOccurrence,
    responses((status = 200, body = EventView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn edit_occurrence(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((event, original)): Path<(Uuid, DateTime<Utc>)>,
    Json(body): Json<UpdateOccurrence>,
) -> Result<Json<EventView>, AppError> {
    exceptions::edit_occurrence(&state, auth.user_id, event, original, body)
        .await
        .map(Json)
}

/// Cancel one occurrence.
#[utoipa::path(delete, operation_id = "cancel_occurrence", path = "/v1/events/{event_id}/occurrences/{original_start}", tag = "calendar",
    security(("bearer" = [])), params(("event_id" = Uuid, Path), ("original_start" = DateTime<Utc>, Path)),
    responses((status = 200, body = EventView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_occurrence(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((event, original)): Path<(Uuid, DateTime<Utc>)>,
) -> Result<Json<EventView>, AppError> {
    exceptions::cancel_occurrence(&state, auth.user_id, event, original)
        .await
        .map(Json)
}

/// "This and following": end the series before `from` and start a new one there with `changes`.
#[utoipa::path(post, operation_id = "split_event", path = "/v1/events/{event_id}/split", tag = "calendar", security(("bearer" = [])),
    params(("event_id" = Uuid, Path)), request_body = SplitRequest,
    responses((status = 200, body = EventView, description = "The new series"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn split(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(event): Path<Uuid>,
    Json(body): Json<SplitRequest>,
) -> Result<Json<EventView>, AppError> {
    exceptions::split(&state, auth.user_id, event, body)
        .await
        .map(Json)
}

/// Answer for one occurrence: going, maybe or declined.
#[utoipa::path(put, operation_id = "set_rsvp", path = "/v1/events/{event_id}/occurrences/{original_start}/rsvp", tag = "calendar",
    security(("bearer" = [])), params(("event_id" = Uuid, Path), ("original_start" = DateTime<Utc>, Path)),
    request_body = RsvpRequest,
    responses((status = 200, body = RsvpView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn rsvp(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((event, original)): Path<(Uuid, DateTime<Utc>)>,
    Json(body): Json<RsvpRequest>,
) -> Result<Json<RsvpView>, AppError> {
    rsvp::set(&state, auth.user_id, event, original, Some(body.status))
        .await
        .map(Json)
}

/// Withdraw one's answer.
#[utoipa::path(delete, operation_id = "withdraw_rsvp", path = "/v1/events/{event_id}/occurrences/{original_start}/rsvp", tag = "calendar",
    security(("bearer" = [])), params(("event_id" = Uuid, Path), ("original_start" = DateTime<Utc>, Path)),
    responses((status = 200, body = RsvpView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn unrsvp(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((event, original)): Path<(Uuid, DateTime<Utc>)>,
) -> Result<Json<RsvpView>, AppError> {
    rsvp::set(&state, auth.user_id, event, original, None)
        .await
        .map(Json)
}

/// Counts and attendees of one occurrence.
#[utoipa::path(get, operation_id = "list_rsvps", path = "/v1/events/{event_id}/occurrences/{original_start}/rsvps", tag = "calendar",
    security(("bearer" = [])), params(("event_id" = Uuid, Path), ("original_start" = DateTime<Utc>, Path)),
    responses((status = 200, body = AttendeeList), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn rsvps(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((event, original)): Path<(Uuid, DateTime<Utc>)>,
) -> Result<Json<AttendeeList>, AppError> {
    rsvp::list(&state, auth.user_id, event, original)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FeedParams {
    /// A calendar feed token (for apps that cannot send a bearer header).
    pub token: Option<String>,
}

/// The community's calendar as iCalendar (RFC 5545): bearer header or `?token=` feed token.
#[utoipa::path(get, operation_id = "get_calendar_feed", path = "/v1/communities/{community_id}/calendar.ics", tag = "calendar",
    security(("bearer" = []), ()), params(("community_id" = Uuid, Path), FeedParams),
    responses((status = 200, body = String, content_type = "text/calendar"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn calendar_ics(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(community): Path<Uuid>,
    Query(params): Query<FeedParams>,
) -> Result<Response, AppError> {
    let user = match (params.token.as_deref(), bearer_from(&headers)) {
        (Some(token), _) => feed::token_user(&state, token).await?,
        (None, Some(bearer)) => AuthUser::from_token(&state.tokens, bearer)?.user_id,
        (None, None) => {
            return Err(AppError::Unauthorized(
                "send a bearer token or ?token= with a calendar feed token".into(),
            ));
        }
    };
    let body = feed::calendar(&state, user, community).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response())
}

fn bearer_from(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Create a private calendar feed token (shown once).
#[utoipa::path(post, operation_id = "create_feed_token", path = "/v1/calendar/feed-tokens", tag = "calendar", security(("bearer" = [])),
    responses((status = 201, body = FeedToken)))]
pub async fn create_feed_token(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<(StatusCode, Json<FeedToken>), AppError> {
    let token = feed::create_token(&state, auth.user_id).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// The caller's feed tokens (without their values).
#[utoipa::path(get, operation_id = "list_feed_tokens", path = "/v1/calendar/feed-tokens", tag = "calendar", security(("bearer" = [])),
    responses((status = 200, body = FeedTokenList)))]
pub async fn feed_tokens(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<FeedTokenList>, AppError> {
    feed::tokens(&state, auth.user_id).await.map(Json)
}

/// Revoke a feed token: calendar apps using it get 401 from then on.
#[utoipa::path(delete, operation_id = "revoke_feed_token", path = "/v1/calendar/feed-tokens/{token_id}", tag = "calendar", security(("bearer" = [])),
    params(("token_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_feed_token(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    feed::revoke(&state, auth.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
