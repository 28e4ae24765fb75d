//! `AppState`: the handles every request may need, cheap to clone (each is an `Arc` or pool).

use std::sync::Arc;

use axum::extract::FromRef;
use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::identity::{Passwords, TokenService};
use crate::ops::Metrics;
use crate::permissions::Permissions;
use crate::ratelimit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    /// `None` in single-node mode.
    pub redis: Option<ConnectionManager>,
    pub tokens: Arc<TokenService>,
    pub passwords: Passwords,
    pub limiter: RateLimiter,
    pub metrics: Arc<Metrics>,
    pub permissions: Arc<Permissions>,
}

impl FromRef<AppState> for Arc<TokenService> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}
