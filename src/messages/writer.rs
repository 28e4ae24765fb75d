//! The group-commit writer: concurrent sends are batched into one transaction and one
//! multi-row insert; each is acked only after the commit (invariant 2). Rooms are sharded over
//! a few writer tasks by id, so one room's messages always take the same path and are published
//! in seq order. The queues are bounded: a full queue refuses with `unavailable` + retry_after,
//! it never drops an accepted message.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use sea_orm::{DatabaseConnection, SqlErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::events::{MessageEvent, MessageView};
use super::repo::{self, MessageRow, NewMessage};
use crate::error::AppError;
use crate::ops::Metrics;
use crate::realtime::{Audience, Bus};
use std::sync::Arc;

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 512;

struct Pending {
    message: NewMessage,
    reply: oneshot::Sender<Result<MessageView, AppError>>,
}

#[derive(Clone)]
pub struct Writer {
    shards: Vec<mpsc::Sender<Pending>>,
}

impl Writer {
    pub fn spawn(
        db: DatabaseConnection,
        bus: Bus,
        metrics: Arc<Metrics>,
        (shards, queue): (usize, usize),
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let senders = (0..shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(queue.max(1));
                tasks.spawn(run(
                    db.clone(),
                    bus.clone(),
                    metrics.clone(),
                    rx,
                    shutdown.clone(),
                ));
                tx
            })
            .collect();
        Self { shards: senders }
    }

    /// Queues the message and waits for its commit. Returns the stored message (the original
    /// one for a repeated client_msg_id).
    pub async fn send(&self, message: NewMessage) -> Result<MessageView, AppError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        message.room_id.hash(&mut hasher);
        let shard = &self.shards[(hasher.finish() as usize) % self.shards.len()];
        let (reply, done) = oneshot::channel();
        shard
            .try_send(Pending { message, reply })
            .map_err(|_| AppError::Unavailable {
                detail: "the message queue is full; retry shortly".into(),
                retry_after_s: Some(1),
            })?;
        done.await.map_err(|_| AppError::Unavailable {
            detail: "the server is shutting down".into(),
            retry_after_s: Some(1),
        })?
    }
}

/// Drains what is queued (up to MAX_BATCH) after each first message, so batches grow with load
/// and a lone message is written at once. On shutdown, everything queued is still written.
async fn run(
    db: DatabaseConnection,
    bus: Bus,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Pending>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            biased;
            first = rx.recv() => first,
            () = shutdown.cancelled() => { rx.close(); rx.recv().await }
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        write_batch(&db, &bus, &metrics, batch).await;
    }
}

async fn write_batch(db: &DatabaseConnection, bus: &Bus, metrics: &Metrics, batch: Vec<Pending>) {
    let started = Instant::now();
    let messages: Vec<NewMessage> = batch.iter().map(|p| p.message.clone()).collect();
    // A retry that raced another node's insert of the same client_msg_id fails the batch on
    // the unique key; the second attempt finds that row and treats it as the original.
    let mut outcome = commit(db, &messages).await;
    if matches!(&outcome, Err(err) if is_unique_violation(err)) {
        outcome = commit(db, &messages).await;
    }
    match outcome {
        Ok((results, fresh)) => {
            metrics.record_batch(fresh.len(), started.elapsed());
            publish(bus, &fresh).await;
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.reply.send(Ok(result));
            }
        }
        Err(err) => {
            tracing::error!(error = %err, size = batch.len(), "message batch failed");
            for pending in batch {
                let _ = pending.reply.send(Err(AppError::Unavailable {
                    detail: "the message could not be stored; retry".into(),
                    retry_after_s: Some(1),
                }));
            }
        }
    }
}

fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

type Key = (Uuid, Uuid, String);

/// One transaction: look up earlier copies of retried messages, insert the rest, commit.
/// Returns a view per request (in request order) and the newly stored rows (in seq order).
async fn commit(
    db: &DatabaseConnection,
    messages: &[NewMessage],
) -> Result<(Vec<MessageView>, Vec<MessageView>), sea_orm::DbErr> {
    let key = |m: &NewMessage| m.client_msg_id.clone().map(|c| (m.room_id, m.sender_id, c));
    let keys: Vec<Key> = messages.iter().filter_map(key).collect();
    let txn = db.begin().await?;
    let mut known: HashMap<Key, MessageRow> = repo::existing(&txn, &keys)
        .await?
        .into_iter()
        .filter_map(|row| {
            row.client_msg_id
                .clone()
                .map(|c| ((row.room_id, row.sender_id, c), row))
        })
        .collect();
    // Within the batch, the first of several identical keys is the one inserted.
    let mut claimed: HashMap<Key, Uuid> = HashMap::new();
    let mut to_insert = Vec::new();
    for message in messages {
        match key(message) {
            Some(k) if known.contains_key(&k) || claimed.contains_key(&k) => {}
            Some(k) => {
                claimed.insert(k, message.id);
                to_insert.push(message.clone());
            }
            None => to_insert.push(message.clone()),
        }
    }
    let inserted = repo::insert_batch(&txn, &to_insert).await?;
    if inserted.len() != to_insert.len() {
        // A room went away since the permission check; the dropped transaction rolls back.
        return Err(sea_orm::DbErr::Custom(
            "a message's room no longer exists".into(),
        ));
    }
    txn.commit().await?;
    let mut by_id: HashMap<Uuid, MessageRow> = inserted.iter().map(|r| (r.id, r.clone())).collect();
    for row in &inserted {
        if let Some(c) = &row.client_msg_id {
            known.insert((row.room_id, row.sender_id, c.clone()), row.clone());
        }
    }
    let results = messages
        .iter()
        .map(|m| {
            by_id
                .remove(&m.id)
                .or_else(|| key(m).and_then(|k| known.get(&k).cloned()))
                .map(MessageView::from)
                .expect("every request is either inserted or a retry of a stored message")
        })
        .collect();
    let mut fresh: Vec<MessageView> = inserted.into_iter().map(MessageView::from).collect();
    fresh.sort_by_key(|m| (m.room_id, m.seq));
    Ok((results, fresh))
}

async fn publish(bus: &Bus, fresh: &[MessageView]) {
    for message in fresh {
        let event = MessageEvent::Created {
            room_id: message.room_id,
            message,
        };
        bus.publish(Audience::Room(message.room_id), Some(message.seq), &event)
            .await;
    }
}
