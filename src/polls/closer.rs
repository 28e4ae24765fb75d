//! Closes polls and surveys whose `closes_at` has passed and announces it. Safe on many nodes:
//! the closing UPDATE returns a row only to the node that closed it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Subject;
use super::lifecycle::{self, Kind};
use crate::state::AppState;

const EVERY: Duration = Duration::from_secs(1);

pub async fn run_closer(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match lifecycle::close_due(&state.db, Kind::Poll).await {
            Ok(ids) => ids
                .into_iter()
                .for_each(|id| state.polls.live.touch(&state, Subject::Poll(id))),
            Err(err) => tracing::warn!(error = %err, "closing due polls failed"),
        }
        match lifecycle::close_due(&state.db, Kind::Survey).await {
            Ok(ids) => ids
                .into_iter()
                .for_each(|id| state.polls.live.touch(&state, Subject::Survey(id))),
            Err(err) => tracing::warn!(error = %err, "closing due surveys failed"),
        }
    }
}
