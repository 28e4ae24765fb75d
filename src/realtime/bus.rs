//! The event bus: features publish serialized events, every node's gateway delivers them to its
//! sessions. In-process (single node) or Redis pub/sub (several nodes). An event is serialized
//! once, at publish; every recipient shares the same `Arc<str>`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Capacity of the node-local fan-out channel; a gateway that falls this far behind resyncs.
const LOCAL_CAPACITY: usize = 65_536;

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

#[derive(Clone)]
pub struct Bus {
    node_id: Uuid,
    local: broadcast::Sender<Arc<Envelope>>,
    redis: Option<(ConnectionManager, String)>,
    /// Time of each Redis PUBLISH (the cross-node hop's cost on the publishing side).
    publish_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Bus {
    pub fn new(
        redis: Option<(ConnectionManager, String)>,
        publish_seconds: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Self {
            node_id: Uuid::now_v7(),
            local,
            redis,
            publish_seconds,
        }
    }

    pub fn node_id(&self) -> Uuid {
        self.node_id
    }

    /// Serializes `event` once and hands it to this node's sessions and, with Redis, to the others.
    pub async fn publish<E: Serialize>(&self, audience: Audience, seq: Option<i64>, event: &E) {
        self.publish_except(audience, seq, None, event).await;
    }

    /// `publish`, skipping the sessions of `except_user`.
    pub async fn publish_except<E: Serialize>(
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
        if let Some((conn, channel)) = &self.redis {
            let mut conn = conn.clone();
            let Ok(payload) = serde_json::to_string(envelope.as_ref()) else {
                return;
            };
            let started = std::time::Instant::now();
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async(&mut conn)
                .await;
            self.publish_seconds
                .observe(started.elapsed().as_secs_f64());
            if let Err(err) = sent {
                // Other nodes' sessions fill the gap on their next message or resume.
                tracing::warn!(error = %err, "event not published to redis");
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.local.subscribe()
    }

    /// With Redis: relays other nodes' events into the local channel until `shutdown`.
    pub async fn relay(self, client: redis::Client, channel: String, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(err) = self.relay_once(&client, &channel, &shutdown).await {
                tracing::warn!(error = %err, "event relay interrupted; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    async fn relay_once(
        &self,
        client: &redis::Client,
        channel: &str,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
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

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
