//! The event bus: features publish serialized events, every node's gateway delivers them to its
//! sessions. In-process (single node) or Redis pub/sub (several nodes). An event is serialized
//! once, at publish; every recipient shares the same `Arc<str>`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::shared::retry::pause_after;

/// Pause before the relay subscribes again after its subscription ended.
const RELAY_RETRY: Duration = Duration::from_millis(250);
/// Capacity of the node-local fan-out channel; a gateway that falls this far behind resyncs.
const LOCAL_CAPACITY: usize = 65_536;
/// Envelopes waiting for Redis; past this (Redis stalled for seconds) new ones are dropped.
const REMOTE_CAPACITY: usize = 65_536;
/// Longest wait for one publishing round trip.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// Most PUBLISH commands sent in one round trip.
const PUBLISH_BATCH: usize = 256;

/// Who an event is for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Audience {
    /// Sessions subscribed to the room.
    Room(Uuid),
    /// Every session of these users (private notices).
    Users(Vec<Uuid>),
    /// Sessions of members of these communities (presence).
    Communities(Vec<Uuid>),
}

/// One event on the bus: its audience, the room position it carries (messages), and the
/// finished wire frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that published it, so a node never delivers its own event twice.
    pub origin: Uuid,
    pub audience: Audience,
    /// `seq` of a `message.created`, for ordering and gap detection.
    pub seq: Option<i64>,
    /// Publish time (unix ms), for the commit-to-socket lag metric.
    pub at_ms: u64,
    /// Sessions of this user do not get the event (one's own typing).
    #[serde(default)]
    pub except_user: Option<Uuid>,
    pub frame: Arc<str>,
}

/// A frame published on the bus: serializable, with the schema that `guildhall asyncapi`
/// documents it by. Every implementor is listed in `crate::asyncapi::sources` (a test
/// fails on one that is not), so nothing reaches a client undocumented.
pub trait Event: Serialize + utoipa::ToSchema {}

#[derive(Clone)]
pub struct Bus {
    node_id: Uuid,
    local: broadcast::Sender<Arc<Envelope>>,
    /// Envelopes for the other nodes, in publish order, to the Redis publisher task.
    remote: Option<mpsc::Sender<String>>,
    /// Envelopes dropped because the Redis queue was full (`guildhall_bus_dropped_events_total`).
    dropped: Counter,
}

/// What the bus reports to `/metrics`.
#[derive(Clone)]
pub struct BusMetrics {
    /// One Redis round trip publishing queued events.
    pub publish_seconds: Histogram,
    /// Envelopes dropped because the Redis queue was full.
    pub dropped: Counter,
    /// Publishing round trips that failed or timed out (their events did not reach Redis).
    pub publish_failures: Counter,
}

impl Bus {
    /// With Redis, spawns the task that publishes to it (so call this inside the runtime).
    pub fn new(redis: Option<(ConnectionManager, String)>, metrics: BusMetrics) -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let remote = redis.map(|(conn, channel)| {
            let (tx, rx) = mpsc::channel(REMOTE_CAPACITY);
            tokio::spawn(publish_to_redis(rx, conn, channel, metrics.clone()));
            tx
        });
        Self {
            node_id: Uuid::now_v7(),
            local,
            remote,
            dropped: metrics.dropped,
        }
    }

    pub fn node_id(&self) -> Uuid {
        self.node_id
    }

    /// Serializes `event` once and hands it to this node's sessions and, with Redis, to the others.
    pub async fn publish<E: Event>(&self, audience: Audience, seq: Option<i64>, event: &E) {
        self.publish_except(audience, seq, None, event).await;
    }

    /// `publish`, skipping the sessions of `except_user`.
    pub async fn publish_except<E: Event>(
        &self,
        audience: Audience,
        seq: Option<i64>,
        except_user: Option<Uuid>,
        event: &E,
    ) {
        let frame: Arc<str> = match serde_json::to_string(event) {
            Ok(json) => json.into(),
            Err(err) => {
                tracing::error!(error = %err, "event not serializable");
                return;
            }
        };
        let envelope = Arc::new(Envelope {
            origin: self.node_id,
            audience,
            seq,
            at_ms: now_ms(),
            except_user,
            frame,
        });
        // Local delivery first: the origin node never waits for its own echo (and skips it).
        let _ = self.local.send(envelope.clone());
        if let Some(remote) = &self.remote
            && let Ok(payload) = serde_json::to_string(envelope.as_ref())
            && remote.try_send(payload).is_err()
        {
            // Redis is stalled this far behind: other nodes' sessions fill the gap by seq
            // on their next message or resume. The publisher never waits on Redis.
            let dropped = self.dropped.inc();
            if dropped.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped = dropped + 1,
                    "redis publish queue full; events dropped"
                );
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.local.subscribe()
    }

    /// With Redis: relays other nodes' events into the local channel until `shutdown`.
    pub async fn relay(self, client: redis::Client, channel: String, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let attempt = self.relay_once(&client, &channel, &shutdown).await;
            pause_after("event relay", attempt, RELAY_RETRY, &shutdown).await;
        }
    }

    async fn relay_once(
        &self,
        client: &redis::Client,
        channel: &str,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        // Reconnects (through `relay`) when the subscription goes silent: meanwhile other
        // nodes' events reach this node only through the 2 s Postgres sweep.
        let (mut messages, silent) =
            crate::shared::subscription::subscribe(client, channel).await?;
        tokio::pin!(silent);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                err = &mut silent => return Err(err),
                message = messages.next() => message,
            };
            let Some(message) = message else {
                anyhow::bail!("redis subscription closed")
            };
            let payload: String = message.get_payload()?;
            let Ok(envelope) = serde_json::from_str::<Envelope>(&payload) else {
                continue;
            };
            if envelope.origin != self.node_id {
                let _ = self.local.send(Arc::new(envelope));
            }
        }
    }
}

/// Publishes queued envelopes in order, as many per round trip as are waiting. A Redis that
/// errs or stalls (the connection manager's response timeout bounds each round trip) costs the
/// batch; the nodes that missed it fill the gap by seq.
async fn publish_to_redis(
    mut queue: mpsc::Receiver<String>,
    mut conn: ConnectionManager,
    channel: String,
    metrics: BusMetrics,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for payload in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        let started = std::time::Instant::now();
        // The connection manager's own response timeout does not cover every path (a round
        // trip caught in its reconnect to a frozen Redis waited forever), so bound it here too.
        let sent = tokio::time::timeout(PUBLISH_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                metrics.publish_failures.inc();
                tracing::warn!(error = %err, "events not published to redis");
            }
            Err(_) => {
                metrics.publish_failures.inc();
                tracing::warn!("events not published to redis: timed out");
            }
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
