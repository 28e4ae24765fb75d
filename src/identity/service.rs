//! Identity logic shared by REST handlers, the CLI (`demo-seed`) and other features.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::{DisplayName, Password, Username};
use super::repo;
use super::tokens::{hash_refresh_token, new_refresh_token};
use crate::error::{AppError, FieldError, ResultExt};
use crate::ratelimit::Limit;
use crate::state::AppState;

/// A user as others see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl From<users::Model> for UserView {
    fn from(user: users::Model) -> Self {
        Self {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            created_at: user.created_at,
        }
    }
}

/// Tokens of a login session, with the user they belong to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthSession {
    pub user: UserView,
    /// JWT for `Authorization: Bearer` and the WebSocket's `?token=`.
    pub access_token: String,
    /// Opaque; single use: `POST /v1/auth/refresh` spends it and returns the next one.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
}

pub struct Registration<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub display_name: Option<&'a str>,
}

fn per_ip(state: &AppState, name: &'static str) -> Limit {
    Limit {
        name,
        rate: state.config.rate_limits.auth_per_ip,
    }
}

pub async fn register(
    state: &AppState,
    ip: &str,
    input: Registration<'_>,
) -> Result<AuthSession, AppError> {
    state.limiter.hit(per_ip(state, "register_ip"), ip).await?;
    let (username, password, display_name) = parse_registration(&input)?;
    let display_name =
        display_name.map_or_else(|| username.as_str().to_owned(), DisplayName::into_inner);
    let user = create_user(state, &username, &password, &display_name).await?;
    start_session(state, user).await
}

/// Checks every field at once so the client can show all problems together.
fn parse_registration(
    input: &Registration<'_>,
) -> Result<(Username, Password, Option<DisplayName>), AppError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let username = Username::parse(input.username)
        .map_err(|e| errors.push(e))
        .ok();
    let password = username.as_ref().and_then(|u| {
        Password::parse(input.password, u)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let display_name = match input.display_name {
        Some(raw) => DisplayName::parse(raw).map_err(|e| errors.push(e)).ok(),
        None => None,
    };
    match (username, password) {
        (Some(username), Some(password)) if errors.is_empty() => {
            Ok((username, password, display_name))
        }
        _ => Err(AppError::Validation(errors)),
    }
}

pub async fn create_user(
    state: &AppState,
    username: &Username,
    password: &Password,
    display_name: &str,
) -> Result<users::Model, AppError> {
    let hash = state.passwords.hash(password.expose()).await?;
    let new = repo::NewUser {
        username: username.as_str(),
        display_name,
        password_hash: &hash,
    };
    repo::insert_user(&state.db, new)
        .await
        .on_unique("username", "username is taken")
}

pub async fn login(
    state: &AppState,
    ip: &str,
    username: &str,
    password: &str,
) -> Result<AuthSession, AppError> {
    state.limiter.hit(per_ip(state, "login_ip"), ip).await?;
    let user_limit = Limit {
        name: "login_user",
        rate: state.config.rate_limits.auth_per_username,
    };
    let normalized = username.to_ascii_lowercase();
    state.limiter.hit(user_limit, &normalized).await?;
    let user = repo::user_by_username(&state.db, &normalized).await?;
    let hash = user.as_ref().map(|u| u.password_hash.as_str());
    if !state.passwords.verify(password, hash).await? {
        return Err(AppError::Unauthorized(
            "invalid username or password".to_owned(),
        ));
    }
    start_session(state, user.expect("verified against a real hash")).await
}

async fn start_session(state: &AppState, user: users::Model) -> Result<AuthSession, AppError> {
    let family_id = Uuid::now_v7();
    let refresh_token = new_refresh_token();
    repo::insert_refresh_token(
        &state.db,
        user.id,
        family_id,
        hash_refresh_token(&refresh_token),
        refresh_expiry(state),
    )
    .await?;
    session(state, user, family_id, refresh_token)
}

fn session(
    state: &AppState,
    user: users::Model,
    family_id: Uuid,
    refresh_token: String,
) -> Result<AuthSession, AppError> {
    Ok(AuthSession {
        access_token: state.tokens.issue_access(user.id, family_id)?,
        user: user.into(),
        refresh_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
    })
}

fn refresh_expiry(state: &AppState) -> DateTime<Utc> {
    Utc::now()
        + chrono::Duration::from_std(state.tokens.refresh_ttl).unwrap_or(chrono::Duration::days(30))
}

fn invalid_refresh(detail: &str) -> AppError {
    AppError::Unauthorized(detail.to_owned())
}

/// Spends `refresh_token` and returns the next pair. A spent token presented again means it
/// leaked: the whole session (family) is revoked, for the thief and the owner alike.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<AuthSession, AppError> {
    let txn = state.db.begin().await?;
    let Some(current) =
        repo::refresh_token_for_update(&txn, &hash_refresh_token(refresh_token)).await?
    else {
        return Err(invalid_refresh("refresh token invalid"));
    };
    if current.revoked_at.is_some() {
        return Err(invalid_refresh("refresh token revoked"));
    }
    if current.used_at.is_some() {
        repo::revoke_family(&txn, current.family_id).await?;
        txn.commit().await?;
        tracing::warn!(user_id = %current.user_id, family_id = %current.family_id, "refresh token reuse; session revoked");
        return Err(invalid_refresh(
            "refresh token already used; the session has been revoked",
        ));
    }
    if current.expires_at <= Utc::now() {
        return Err(invalid_refresh("refresh token expired"));
    }
    let user = repo::user_by_id(&txn, current.user_id)
        .await?
        .ok_or_else(|| invalid_refresh("refresh token invalid"))?;
    repo::mark_used(&txn, current.id).await?;
    let next = new_refresh_token();
    repo::insert_refresh_token(
        &txn,
        user.id,
        current.family_id,
        hash_refresh_token(&next),
        refresh_expiry(state),
    )
    .await?;
    txn.commit().await?;
    session(state, user, current.family_id, next)
}

/// Ends the session the token belongs to. Unknown tokens are accepted silently (idempotent).
pub async fn logout(db: &DatabaseConnection, refresh_token: &str) -> Result<(), AppError> {
    if let Some(token) = repo::refresh_token_by_hash(db, &hash_refresh_token(refresh_token)).await?
    {
        repo::revoke_family(db, token.family_id).await?;
    }
    Ok(())
}

pub async fn user(db: &DatabaseConnection, user_id: Uuid) -> Result<UserView, AppError> {
    repo::user_by_id(db, user_id)
        .await?
        .map(UserView::from)
        .ok_or(AppError::NotFound)
}

/// Looks a user up by username (used by `demo-seed` and, later, mentions).
pub async fn user_by_username(
    db: &DatabaseConnection,
    username: &str,
) -> Result<Option<UserView>, AppError> {
    Ok(repo::user_by_username(db, &username.to_ascii_lowercase())
        .await?
        .map(UserView::from))
}

/// Profiles of several users at once (unknown ids are left out).
pub async fn users(db: &DatabaseConnection, ids: &[Uuid]) -> Result<Vec<UserView>, AppError> {
    Ok(repo::users_by_ids(db, ids)
        .await?
        .into_iter()
        .map(UserView::from)
        .collect())
}
