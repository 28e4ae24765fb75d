//! HTTP handlers of `/v1/auth/*` and `/v1/users/*`: extract, call the service, map the result.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extractor::AuthUser;
use super::service::{self, AuthSession, Registration, UserView};
use crate::error::{AppError, Problem};
use crate::extract::{ClientIp, Json, Path};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3-32 of a-z 0-9 _ . - (case-insensitive, stored lower-case).
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )]
    pub username: String,
    /// 8-128 characters, not only whitespace, not the username.
    #[schema(min_length = 8, max_length = 128, pattern = r"\S")]
    pub password: String,
    /// 1-64 characters (trimmed), no control characters; defaults to the username.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Create an account and start a session.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = AuthSession),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthSession>), AppError> {
    let input = Registration {
        username: &body.username,
        password: &body.password,
        display_name: body.display_name.as_deref(),
    };
    let session = service::register(&state, &ip.to_string(), input).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Log in with username and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = AuthSession),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<Json<AuthSession>, AppError> {
    service::login(&state, &ip.to_string(), &body.username, &body.password)
        .await
        .map(Json)
}

/// Spend a refresh token for a new token pair. Reusing a spent token revokes the session.
#[utoipa::path(post, operation_id = "refresh_session", path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair", body = AuthSession),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<AuthSession>, AppError> {
    service::refresh(&state, &body.refresh_token)
        .await
        .map(Json)
}

/// End the session the refresh token belongs to.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Session ended (also for unknown tokens)")))]
pub async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, AppError> {
    service::logout(&state.db, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, operation_id = "get_me", path = "/v1/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Json<UserView>, AppError> {
    service::user(&state.db, auth.user_id).await.map(Json)
}

/// A user's public profile.
#[utoipa::path(get, operation_id = "get_user", path = "/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn user(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(user_id): Path<Uuid>,
) -> Result<Json<UserView>, AppError> {
    service::user(&state.db, user_id).await.map(Json)
}
