//! Polls and surveys inside rooms: each is carried into the timeline by a message, tallied by
//! Postgres triggers, announced live (`poll.updated`, `survey.updated`, coalesced), closed on
//! schedule by a background job. Anonymous polls store no link between a voter and a choice.

mod ballot;
mod closer;
mod lifecycle;
mod live;
pub(crate) mod poll_handlers;
pub mod poll_model;
mod poll_repo;
pub mod poll_service;
mod survey_check;
mod survey_csv;
pub(crate) mod survey_handlers;
pub mod survey_model;
mod survey_repo;
pub mod survey_service;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use ballot::BallotKey;
pub use closer::run_closer;
pub use live::{Live, Subject};

use crate::state::AppState;

/// What the polls feature keeps per node.
#[derive(Debug)]
pub struct Polls {
    pub ballots: BallotKey,
    pub live: Live,
}

impl Polls {
    pub fn new(ballot_secret: &str, tasks: tokio_util::task::TaskTracker) -> Self {
        Self {
            ballots: BallotKey::new(ballot_secret.as_bytes()),
            live: Live::new(tasks),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    use poll_handlers as p;
    use survey_handlers as s;
    OpenApiRouter::new()
        .routes(routes!(p::create))
        .routes(routes!(p::get))
        .routes(routes!(p::vote, p::retract))
        .routes(routes!(p::close))
        .routes(routes!(p::voters))
        .routes(routes!(s::create))
        .routes(routes!(s::get))
        .routes(routes!(s::respond))
        .routes(routes!(s::my_response))
        .routes(routes!(s::results))
        .routes(routes!(s::results_csv))
        .routes(routes!(s::close))
}
