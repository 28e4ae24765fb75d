//! Media: clients PUT files straight to S3 with presigned URLs; the `guildhall-media` Lambda
//! (`lambda/`) checks and processes them and reports back through a signed callback; rooms see
//! `attachment.updated`; a sweeper removes what was abandoned or refused.

mod callback;
mod checks;
mod handlers;
pub mod model;
mod repo;
pub mod service;
mod storage;
mod sweeper;

use std::net::SocketAddr;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use storage::Storage;
pub use sweeper::{run_sweeper, sweep};

use crate::config::MediaConfig;
use crate::state::AppState;

/// What media keeps per node: the AWS clients (none without S3) and where the worker calls back.
#[derive(Debug)]
pub struct Media {
    storage: Option<Storage>,
    callback_url: String,
}

impl Media {
    /// `bound` is this node's listening address, the callback's default host.
    pub async fn new(config: &MediaConfig, bound: SocketAddr) -> Self {
        let Some(settings) = &config.storage else {
            return Self {
                storage: None,
                callback_url: String::new(),
            };
        };
        let callback_url = settings.callback_url.clone().unwrap_or_else(|| {
            let host = if bound.ip().is_unspecified() {
                SocketAddr::new([127, 0, 0, 1].into(), bound.port())
            } else {
                bound
            };
            format!("http://{host}/v1/media/callback")
        });
        Self {
            storage: Some(Storage::connect(settings).await),
            callback_url,
        }
    }

    pub fn storage(&self) -> Option<&Storage> {
        self.storage.as_ref()
    }

    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create))
        .routes(routes!(handlers::complete))
        .routes(routes!(handlers::get))
        .routes(routes!(handlers::callback))
}
