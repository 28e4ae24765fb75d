//! `AppState`: the handles every request may need, cheap to clone (each is an `Arc` or pool).

use std::sync::Arc;

use axum::extract::FromRef;
use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::identity::{Passwords, TokenService};
use crate::media::Media;
use crate::messages::Writer;
use crate::ops::Metrics;
use crate::permissions::Permissions;
use crate::polls::Polls;
use crate::ratelimit::RateLimiter;
use crate::realtime::{Bus, Gateway, Hooks, Presence};

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
    pub bus: Bus,
    pub writer: Writer,
    pub gateway: Arc<Gateway>,
    pub presence: Arc<Presence>,
    /// Ballot key and live-update coalescing of polls and surveys.
    pub polls: Arc<Polls>,
    /// S3 and Lambda clients (none without S3 configured).
    pub media: Arc<Media>,
    /// What the gateway asks of the features (messaging implements it).
    pub hooks: Arc<dyn Hooks>,
    /// Cancelled when the app stops; background tasks and sessions watch it.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl FromRef<AppState> for Arc<TokenService> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}
