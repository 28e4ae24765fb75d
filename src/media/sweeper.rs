//! The cleanup job: fails processing that never reported back, removes uploads never completed
//! and failed ones, deletes the objects their rows left in `media_garbage`, and forgets old
//! callback signatures. Safe on many nodes: the garbage batch is claimed with SKIP LOCKED and
//! every other step is a single conditional statement.

use std::time::Duration;

use sea_orm::TransactionTrait;
use tokio_util::sync::CancellationToken;

use super::repo;
use super::service::publish;
use super::storage::Storage;
use crate::state::AppState;

const GARBAGE_BATCH: i64 = 100;
/// Signatures outlive the timestamp window, so a replay inside it always finds its twin.
const REMEMBER_CALLBACKS_S: i64 = super::callback::WINDOW_S * 3;

pub async fn run_sweeper(state: AppState, shutdown: CancellationToken) {
    let Some(storage) = state.media.storage().cloned() else {
        return;
    };
    let mut tick = tokio::time::interval(state.config.media.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = sweep(&state, &storage).await {
            tracing::warn!(error = ?err, "media sweep failed; retrying next round");
        }
    }
}

/// One round; returns how many objects were deleted.
pub async fn sweep(state: &AppState, storage: &Storage) -> anyhow::Result<usize> {
    let after = seconds(state.config.media.abandon_after);
    for row in repo::fail_stuck(&state.db, after).await? {
        publish(state, row).await;
    }
    let removed = repo::delete_abandoned(&state.db, after).await?;
    if removed > 0 {
        tracing::info!(removed, "abandoned or failed uploads removed");
    }
    let mut deleted = 0;
    loop {
        let batch = delete_garbage(state, storage).await?;
        deleted += batch;
        if batch < GARBAGE_BATCH as usize {
            break;
        }
    }
    repo::forget_old_callbacks(&state.db, REMEMBER_CALLBACKS_S).await?;
    Ok(deleted)
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Deletes one batch of queued objects; a key S3 refuses stays queued for the next round (and
/// a short batch ends this round).
async fn delete_garbage(state: &AppState, storage: &Storage) -> anyhow::Result<usize> {
    let tx = state.db.begin().await?;
    let batch = repo::claim_garbage(&tx, GARBAGE_BATCH).await?;
    let mut done = Vec::with_capacity(batch.len());
    for item in &batch {
        match storage.delete(&item.object_key).await {
            Ok(()) => done.push(item.id),
            Err(err) => tracing::warn!(error = ?err, key = %item.object_key, "object not deleted"),
        }
    }
    repo::drop_garbage(&tx, &done).await?;
    tx.commit().await?;
    Ok(done.len())
}
