//! `AppError`: the one error type of the HTTP and WebSocket surfaces, rendered as RFC 9457
//! `application/problem+json` with a stable machine `code`. Imports nothing internal.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::{DbErr, SqlErr};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One offending input field of a validation error.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field in the request (`username`, `options[2]`), or `body`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// RFC 9457 problem details as Guildhall sends them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type: `urn:guildhall:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine code: validation_failed, unauthorized, forbidden, not_found,
    /// method_not_allowed, conflict, payload_too_large, unsupported_media_type, rate_limited,
    /// unavailable, internal.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
    /// Seconds until a retry may succeed (rate_limited, unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Syntactically broken input (malformed JSON): 400.
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        fields: Vec<FieldError>,
    },
    /// Well-formed input that breaks a rule: 422.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {detail}")]
    Conflict {
        detail: String,
        fields: Vec<FieldError>,
    },
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("rate limited")]
    RateLimited { retry_after: std::time::Duration },
    #[error("unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after_s: Option<u64>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code, shared with WebSocket `error` frames.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } | Self::Validation(_) => "validation_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// Client-facing text; internal causes are never shown.
    pub fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. } | Self::Conflict { detail, .. } => detail.clone(),
            Self::Validation(fields) => match fields.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                _ => "some fields are invalid; see errors".to_owned(),
            },
            Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::PayloadTooLarge(d)
            | Self::UnsupportedMediaType(d) => d.clone(),
            Self::NotFound => "the resource does not exist or is not visible to you".to_owned(),
            Self::RateLimited { retry_after } => {
                format!(
                    "too many requests; retry in {} ms",
                    retry_after.as_millis().max(1)
                )
            }
            Self::Unavailable { detail, .. } => detail.clone(),
            Self::Internal(_) => {
                "internal error; the request id identifies it in the server logs".to_owned()
            }
        }
    }

    /// Whole seconds for `Retry-After`, rounded up: a client that waits them will not be early.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } => {
                Some((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
            }
            Self::Unavailable { retry_after_s, .. } => *retry_after_s,
            _ => None,
        }
    }

    /// The same wait in milliseconds, for WebSocket error frames (sends refill in well under 1 s).
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } => Some(
                u64::try_from(retry_after.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            ),
            _ => self.retry_after().map(|s| s * 1000),
        }
    }

    pub fn problem(&self) -> Problem {
        let fields = match self {
            Self::BadRequest { fields, .. }
            | Self::Conflict { fields, .. }
            | Self::Validation(fields) => fields.clone(),
            _ => Vec::new(),
        };
        problem(
            self.status(),
            self.code(),
            self.detail(),
            fields,
            self.retry_after(),
        )
    }
}

pub fn problem(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
) -> Problem {
    Problem {
        type_uri: format!("urn:guildhall:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
        errors,
        retry_after,
    }
}

pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(seconds) = problem.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            // The TraceLayer span carries the request id, so this line can be found from a report.
            tracing::error!(error = ?cause, "request failed");
        }
        problem_response(&self.problem())
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

/// Maps a unique-constraint violation to 409 naming the field, anything else to 500.
pub trait ResultExt<T> {
    fn on_unique(self, field: &str, detail: &str) -> Result<T, AppError>;
}

impl<T> ResultExt<T> for Result<T, DbErr> {
    fn on_unique(self, field: &str, detail: &str) -> Result<T, AppError> {
        self.map_err(|err| match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => AppError::Conflict {
                detail: detail.to_owned(),
                fields: vec![FieldError::new(field, detail)],
            },
            _ => AppError::from(err),
        })
    }
}

/// The name of the constraint a database error violated (including those our triggers raise
/// with `USING CONSTRAINT = ...`), so callers map them without matching message text.
pub fn violated_constraint(err: &DbErr) -> Option<String> {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sqlx::Error::Database(db) => db.constraint().map(str::to_owned),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Maps the named constraints to 409/422 with the database's own message, anything else to 500.
pub fn on_constraints(
    err: DbErr,
    conflicts: &[(&str, &str)],
    invalid: &[(&str, &str)],
) -> AppError {
    let Some(name) = violated_constraint(&err) else {
        return AppError::from(err);
    };
    if let Some((_, field)) = conflicts.iter().find(|(c, _)| *c == name) {
        return AppError::Conflict {
            detail: db_message(&err),
            fields: vec![FieldError::new(*field, db_message(&err))],
        };
    }
    if let Some((_, field)) = invalid.iter().find(|(c, _)| *c == name) {
        return AppError::Validation(vec![FieldError::new(*field, db_message(&err))]);
    }
    AppError::from(err)
}

fn db_message(err: &DbErr) -> String {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sqlx::Error::Database(db) => db.message().to_owned(),
                other => other.to_string(),
            }
        }
        other => other.to_string(),
    }
}
