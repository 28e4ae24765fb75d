//! `AuthUser`: the authenticated caller, from `Authorization: Bearer <jwt>`. Every other module
//! takes it as an extractor; a missing, malformed, expired or foreign token is a 401.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts};
use uuid::Uuid;

use super::tokens::{TokenError, TokenService};
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: Uuid,
    /// Login session (refresh-token family) the token was issued for.
    pub session_id: Option<Uuid>,
    /// Expiry of the presenting token (unix seconds); the WebSocket closes then.
    pub expires_at: u64,
}

impl AuthUser {
    /// Verifies a raw access token (also used for the WebSocket's `?token=`).
    pub fn from_token(tokens: &TokenService, token: &str) -> Result<Self, AppError> {
        let claims = tokens.verify(token).map_err(|err| {
            AppError::Unauthorized(
                match err {
                    TokenError::Expired => "access token expired",
                    TokenError::NotYetValid => "access token not valid yet",
                    TokenError::Invalid => "access token invalid",
                    TokenError::Revoked => "access token revoked",
                }
                .to_owned(),
            )
        })?;
        Ok(Self {
            user_id: claims.sub,
            session_id: claims.sid,
            expires_at: claims.exp,
        })
    }
}

/// The token of an `Authorization: Bearer` header, if present and well-formed.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<TokenService>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            AppError::Unauthorized("missing Authorization: Bearer token".to_owned())
        })?;
        Self::from_token(&Arc::<TokenService>::from_ref(state), token)
    }
}
