//! Presence: a user is online while any of their sessions lives on any node. Each node counts
//! its own sessions per user; with Redis, nodes record `user|node` entries with an expiry that
//! the node refreshes every heartbeat interval, so a crashed node's users go offline within the
//! expiry. `presence` events go to the user's communities (one event per community and change,
//! delivered to the sessions following that community), never to a per-member list.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::bus::{Audience, Bus, Event, now_ms};
use super::hooks::Hooks;

/// Adds the node's entry; returns how many live entries the user had before.
const CONNECT: &str = r"
local live = redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf')
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4] .. '|' .. ARGV[1])
return live
";

/// Removes the node's entry; returns how many live entries remain.
const DISCONNECT: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[3] .. '|' .. ARGV[1])
return redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf')
";

/// Removes expired entries (any node's); returns users left with no live entry.
const SWEEP: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 200)
local offline = {}
for _, entry in ipairs(expired) do
  if redis.call('ZREM', KEYS[1], entry) == 1 then
    local sep = string.find(entry, '|', 1, true)
    local user = string.sub(entry, 1, sep - 1)
    local node = string.sub(entry, sep + 1)
    local key = ARGV[2] .. user
    redis.call('ZREM', key, node)
    if redis.call('ZCOUNT', key, ARGV[1], '+inf') == 0 then
      table.insert(offline, user)
    end
  end
end
return offline
";

/// What presence publishes to a user's communities (`Event`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum PresenceEvent {
    /// The user's first session opened (on any node), or the last one closed or expired.
    #[serde(rename = "presence")]
    #[schema(title = "PresenceEvent")]
    Changed {
        user_id: Uuid,
        status: PresenceStatus,
    },
}

impl Event for PresenceEvent {}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Online,
    Offline,
}

pub struct Presence {
    node: Uuid,
    expiry: Duration,
    redis: Option<(ConnectionManager, String)>,
    local: Mutex<HashMap<Uuid, usize>>,
    scripts: [Arc<redis::Script>; 3],
}

impl Presence {
    pub fn new(node: Uuid, expiry: Duration, redis: Option<(ConnectionManager, String)>) -> Self {
        Self {
            node,
            expiry,
            redis,
            local: Mutex::default(),
            scripts: [CONNECT, DISCONNECT, SWEEP].map(|s| Arc::new(redis::Script::new(s))),
        }
    }

    fn user_key(prefix: &str, user: Uuid) -> String {
        format!("{prefix}presence:{user}")
    }

    /// Counts a new session; true when the user just came online.
    pub async fn connected(&self, user: Uuid) -> bool {
        let first_here = {
            let mut local = self.local.lock().expect("presence lock");
            let count = local.entry(user).or_insert(0);
            *count += 1;
            *count == 1
        };
        if !first_here {
            return false;
        }
        let Some((conn, prefix)) = &self.redis else {
            return true;
        };
        let now = now_ms();
        let live: redis::RedisResult<i64> = self.scripts[0]
            .key(Self::user_key(prefix, user))
            .key(format!("{prefix}presence:all"))
            .arg(self.node.to_string())
            .arg(now)
            .arg(now + self.expiry_ms())
            .arg(user.to_string())
            .arg(self.expiry_ms())
            .invoke_async(&mut conn.clone())
            .await;
        live.map_or(true, |n| n == 0)
    }

    /// Counts a closed session; true when the user just went offline everywhere.
    pub async fn disconnected(&self, user: Uuid) -> bool {
        let last_here = {
            let mut local = self.local.lock().expect("presence lock");
            match local.get_mut(&user) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    local.remove(&user);
                    true
                }
                None => false,
            }
        };
        if !last_here {
            return false;
        }
        let Some((conn, prefix)) = &self.redis else {
            return true;
        };
        let remaining: redis::RedisResult<i64> = self.scripts[1]
            .key(Self::user_key(prefix, user))
            .key(format!("{prefix}presence:all"))
            .arg(self.node.to_string())
            .arg(now_ms())
            .arg(user.to_string())
            .invoke_async(&mut conn.clone())
            .await;
        remaining.map_or(true, |n| n == 0)
    }

    /// Which of `users` are online now, on any node (member lists show it; `presence` events
    /// carry the changes after that). Without Redis this node's sessions are all there is.
    pub async fn online_among(&self, users: &[Uuid]) -> HashSet<Uuid> {
        let Some((conn, prefix)) = &self.redis else {
            let local = self.local.lock().expect("presence lock");
            return users
                .iter()
                .copied()
                .filter(|u| local.contains_key(u))
                .collect();
        };
        let mut pipe = redis::pipe();
        let now = now_ms();
        for user in users {
            pipe.cmd("ZCOUNT")
                .arg(Self::user_key(prefix, *user))
                .arg(now)
                .arg("+inf");
        }
        let counts: Vec<i64> = match pipe.query_async(&mut conn.clone()).await {
            Ok(counts) => counts,
            Err(err) => {
                tracing::warn!(error = %err, "presence lookup failed; listing everyone offline");
                return HashSet::new();
            }
        };
        users
            .iter()
            .zip(counts)
            .filter(|(_, live)| *live > 0)
            .map(|(user, _)| *user)
            .collect()
    }

    fn expiry_ms(&self) -> u64 {
        u64::try_from(self.expiry.as_millis()).unwrap_or(30_000)
    }

    /// Refreshes this node's entries and expires other (dead) nodes'; returns users gone offline.
    async fn sweep(&self) -> Vec<Uuid> {
        let Some((conn, prefix)) = &self.redis else {
            return Vec::new();
        };
        let users: Vec<Uuid> = self
            .local
            .lock()
            .expect("presence lock")
            .keys()
            .copied()
            .collect();
        let now = now_ms();
        let expiry = now + self.expiry_ms();
        let mut pipe = redis::pipe();
        for user in &users {
            pipe.cmd("ZADD")
                .arg(Self::user_key(prefix, *user))
                .arg(expiry)
                .arg(self.node.to_string())
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(Self::user_key(prefix, *user))
                .arg(self.expiry_ms())
                .ignore();
            pipe.cmd("ZADD")
                .arg(format!("{prefix}presence:all"))
                .arg(expiry)
                .arg(format!("{user}|{}", self.node))
                .ignore();
        }
        let mut conn = conn.clone();
        if !users.is_empty() {
            let refreshed: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
            if let Err(err) = refreshed {
                tracing::warn!(error = %err, "presence refresh failed");
            }
        }
        let offline: redis::RedisResult<Vec<String>> = self.scripts[2]
            .key(format!("{prefix}presence:all"))
            .arg(now)
            .arg(format!("{prefix}presence:"))
            .invoke_async(&mut conn)
            .await;
        offline
            .unwrap_or_default()
            .iter()
            .filter_map(|u| u.parse().ok())
            .collect()
    }

    /// Tells the user's communities.
    pub async fn announce(bus: &Bus, hooks: &dyn Hooks, user: Uuid, online: bool) {
        let Ok(communities) = hooks.communities_of(user).await else {
            return;
        };
        if communities.is_empty() {
            return;
        }
        let event = PresenceEvent::Changed {
            user_id: user,
            status: if online {
                PresenceStatus::Online
            } else {
                PresenceStatus::Offline
            },
        };
        bus.publish(Audience::Communities(communities), None, &event)
            .await;
    }

    /// Every `interval`: refresh and expire entries, announce users gone offline.
    pub async fn run(
        self: Arc<Self>,
        bus: Bus,
        hooks: Arc<dyn Hooks>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for user in self.sweep().await {
                Self::announce(&bus, hooks.as_ref(), user, false).await;
            }
        }
    }
}
