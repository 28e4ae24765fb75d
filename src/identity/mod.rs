//! Identity: accounts, argon2id passwords, JWT access tokens, rotating refresh tokens, and the
//! `AuthUser` extractor every other feature uses. Imports only the kernel.

mod domain;
mod extractor;
pub(crate) mod handlers;
mod password;
mod repo;
pub mod revocation;
pub mod service;
mod tokens;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use domain::{DisplayName, Password, Username};
pub use extractor::{AuthUser, bearer_token};
pub use password::Passwords;
pub use tokens::TokenService;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::register))
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::refresh))
        .routes(routes!(handlers::logout))
        .routes(routes!(handlers::me))
        .routes(routes!(handlers::user))
}
