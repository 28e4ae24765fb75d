//! HTTP handlers of messaging.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::events::MessageView;
use super::service::{self, HistoryQuery, ReactionCount, RoomUnread, SendInput};
use crate::error::{AppError, Problem};
use crate::extract::{Json, Path, Query};
use crate::identity::AuthUser;
use crate::permissions::{Authorized, Permission, ScopeKind, perm};
use crate::state::AppState;

async fn room<P: Permission>(
    state: &AppState,
    auth: &AuthUser,
    id: Uuid,
) -> Result<Authorized<P>, AppError> {
    state
        .permissions
        .require_kind(auth.user_id, id, ScopeKind::Room)
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendRequest {
    /// Not blank; at most `GUILDHALL_MESSAGE_MAX_CHARS` (default 4,000; longer is 413).
    #[schema(max_length = 4000, pattern = r"\S")]
    pub content: String,
    /// Idempotency key (1-64 characters): a repeat with the same key returns the original message.
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: Option<String>,
    pub reply_to: Option<Uuid>,
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
}

/// Send a message; answered after it is durable in Postgres.
#[utoipa::path(post, operation_id = "send_message", path = "/v1/rooms/{room_id}/messages", tag = "messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)), request_body = SendRequest,
    responses((status = 201, body = MessageView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<SendRequest>,
) -> Result<(StatusCode, Json<MessageView>), AppError> {
    let proof = room::<perm::SendMessages>(&state, &auth, id).await?;
    let input = SendInput {
        content: body.content,
        client_msg_id: body.client_msg_id,
        reply_to: body.reply_to,
        attachment_ids: body.attachment_ids,
    };
    let message = service::send(&state, &proof, input).await?;
    Ok((StatusCode::CREATED, Json(message)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// Messages with seq below this (newest first page when absent).
    pub before: Option<i64>,
    /// Messages with seq above this, oldest first.
    pub after: Option<i64>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryMessage {
    #[serde(flatten)]
    pub message: MessageView,
    pub reactions: Vec<ReactionCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// In seq order.
    pub messages: Vec<HistoryMessage>,
    /// More messages exist past this page in the direction asked.
    pub has_more: bool,
}

/// Room history by seq: `before`, `after`, or the newest page.
#[utoipa::path(get, operation_id = "list_messages", path = "/v1/rooms/{room_id}/messages", tag = "messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), HistoryParams),
    responses((status = 200, body = HistoryPage), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<HistoryPage>, AppError> {
    let limit = match params.limit {
        None => 50,
        Some(n @ 1..=100) => n,
        Some(_) => return Err(AppError::field("limit", "must be 1-100")),
    };
    if params.before.is_some() && params.after.is_some() {
        return Err(AppError::field("after", "use either before or after"));
    }
    let proof = room::<perm::ReadHistory>(&state, &auth, id).await?;
    let query = HistoryQuery {
        before: params.before,
        after: params.after,
        limit: limit + 1,
    };
    let mut messages = service::history(&state, &proof, query).await?;
    let has_more = messages.len() as u64 > limit;
    if has_more {
        // The extra row is on the far side of the page from the reader.
        if params.after.is_some() {
            messages.pop();
        } else {
            messages.remove(0);
        }
    }
    let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
    let mut reactions = service::reactions(&state, &ids).await?;
    let messages = messages
        .into_iter()
        .map(|message| {
            let mine: Vec<ReactionCount> = reactions
                .extract_if(.., |(m, _)| *m == message.id)
                .map(|(_, r)| r)
                .collect();
            HistoryMessage {
                message,
                reactions: mine,
            }
        })
        .collect();
    Ok(Json(HistoryPage { messages, has_more }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditRequest {
    /// Not blank; at most `GUILDHALL_MESSAGE_MAX_CHARS` (default 4,000; longer is 413).
    #[schema(max_length = 4000, pattern = r"\S")]
    pub content: String,
}

/// Edit one's own message.
#[utoipa::path(patch, operation_id = "edit_message", path = "/v1/rooms/{room_id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = EditRequest,
    responses((status = 200, body = MessageView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn edit(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(Uuid, Uuid)>,
    Json(body): Json<EditRequest>,
) -> Result<Json<MessageView>, AppError> {
    let proof = room::<perm::SendMessages>(&state, &auth, id).await?;
    service::edit(&state, &proof, message, body.content)
        .await
        .map(Json)
}

/// Delete a message (own, or anyone's with manage_messages); it stays as a tombstone with its seq.
#[utoipa::path(delete, operation_id = "delete_message", path = "/v1/rooms/{room_id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let proof = room::<perm::ReadHistory>(&state, &auth, id).await?;
    service::delete(&state, &proof, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a reaction (idempotent).
#[utoipa::path(put, operation_id = "add_reaction", path = "/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}", tag = "messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("message_id" = Uuid, Path), ("emoji" = String, Path, description = "1-32 characters, no whitespace or control characters", pattern = r"^[^\s\u0000-\u001f\u007f-\u009f]{1,32}$")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn react(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(Uuid, Uuid, String)>,
) -> Result<StatusCode, AppError> {
    let proof = room::<perm::SendMessages>(&state, &auth, id).await?;
    service::react(&state, &proof, message, &emoji, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove one's reaction.
#[utoipa::path(delete, operation_id = "remove_reaction", path = "/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}", tag = "messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("message_id" = Uuid, Path), ("emoji" = String, Path, description = "1-32 characters, no whitespace or control characters", pattern = r"^[^\s\u0000-\u001f\u007f-\u009f]{1,32}$")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn unreact(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(Uuid, Uuid, String)>,
) -> Result<StatusCode, AppError> {
    let proof = room::<perm::SendMessages>(&state, &auth, id).await?;
    service::react(&state, &proof, message, &emoji, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadRequest {
    #[schema(minimum = 0)]
    pub seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadMarker {
    pub room_id: Uuid,
    /// The marker after the update (it never moves back).
    pub seq: i64,
}

/// Mark the room read up to `seq`; announced as a `receipt` event.
#[utoipa::path(post, operation_id = "mark_read", path = "/v1/rooms/{room_id}/read", tag = "messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)), request_body = ReadRequest,
    responses((status = 200, body = ReadMarker), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<ReadRequest>,
) -> Result<Json<ReadMarker>, AppError> {
    let proof = room::<perm::ReadHistory>(&state, &auth, id).await?;
    let seq = service::mark_read(&state, &proof, body.seq).await?;
    Ok(Json(ReadMarker { room_id: id, seq }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadResponse {
    pub rooms: Vec<RoomUnread>,
}

/// Unread and mention counts per room the caller belongs to.
#[utoipa::path(get, operation_id = "list_unread", path = "/v1/unread", tag = "messages", security(("bearer" = [])),
    responses((status = 200, body = UnreadResponse)))]
pub async fn unread(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<UnreadResponse>, AppError> {
    Ok(Json(UnreadResponse {
        rooms: service::unread(&state, auth.user_id).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchParams {
    /// 1-200 characters, not blank.
    #[param(min_length = 1, max_length = 200, pattern = r"\S")]
    pub q: String,
    pub community_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Newest first.
    pub messages: Vec<MessageView>,
}

/// Full-text search over messages in rooms the caller may read.
#[utoipa::path(get, operation_id = "search_messages", path = "/v1/search", tag = "messages", security(("bearer" = [])), params(SearchParams),
    responses((status = 200, body = SearchResponse), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResponse>, AppError> {
    let limit = match params.limit {
        None => 50,
        Some(n @ 1..=100) => n,
        Some(_) => return Err(AppError::field("limit", "must be 1-100")),
    };
    let messages = service::search(
        &state,
        auth.user_id,
        &params.q,
        params.community_id,
        params.room_id,
        limit,
    )
    .await?;
    Ok(Json(SearchResponse { messages }))
}
