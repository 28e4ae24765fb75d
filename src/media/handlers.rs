//! HTTP handlers of media.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use uuid::Uuid;

use super::model::{AttachmentView, CreateUpload, UploadTicket};
use super::service;
use crate::error::{AppError, Problem};
use crate::extract::{Json, Path};
use crate::identity::AuthUser;
use crate::state::AppState;

/// Start an upload into a room: returns a presigned PUT (valid up to 15 min) for a key the
/// server chose, binding the declared type and exact size.
#[utoipa::path(post, operation_id = "create_upload", path = "/v1/uploads", tag = "media", security(("bearer" = [])),
    request_body = CreateUpload,
    responses((status = 201, body = UploadTicket), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<CreateUpload>,
) -> Result<(StatusCode, Json<UploadTicket>), AppError> {
    let ticket = service::create_upload(&state, auth.user_id, body).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

/// The PUT is done: checks the object is there with the declared size and queues it for
/// processing (`attachment.updated` follows). Only the uploader; repeating it is harmless.
#[utoipa::path(post, operation_id = "complete_upload", path = "/v1/uploads/{attachment_id}/complete", tag = "media", security(("bearer" = [])),
    params(("attachment_id" = Uuid, Path)),
    responses((status = 202, body = AttachmentView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn complete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<AttachmentView>), AppError> {
    let view = service::complete(&state, auth.user_id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// An attachment's status and metadata, with short-lived download URLs once ready; for those
/// who can read its room.
#[utoipa::path(get, operation_id = "get_attachment", path = "/v1/attachments/{attachment_id}", tag = "media", security(("bearer" = [])),
    params(("attachment_id" = Uuid, Path)),
    responses((status = 200, body = AttachmentView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AttachmentView>, AppError> {
    service::attachment_for(&state, auth.user_id, id)
        .await
        .map(Json)
}

/// The media worker's verdict. Not for clients: authenticated by `X-Guildhall-Signature`
/// (`v1=` + hex HMAC-SHA256 of `"{X-Guildhall-Timestamp}.{body}"` with the shared secret);
/// stale timestamps, forgeries (401) and replays (409) change nothing.
#[utoipa::path(post, operation_id = "media_callback", path = "/v1/media/callback", tag = "media",
    request_body(content = Object, description = "guildhall-media callback body (lambda/README.md)"),
    params(("X-Guildhall-Timestamp" = String, Header), ("X-Guildhall-Signature" = String, Header)),
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    service::accept_callback(&state, &headers, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}
