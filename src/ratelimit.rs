//! Token-bucket rate limits (GCRA), shared across nodes through Redis when configured and kept
//! in-process otherwise. A key may spend `burst` at once and then `per_min` a minute, so over
//! any span `t` it is granted at most `burst + per_min * t / 60 s`. A Redis failure or stall
//! falls back to the node's own bucket rather than letting every request through or refusing
//! all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::error::AppError;

/// A rate: `burst` at once, refilled at `per_min` a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub per_min: u32,
}

impl Rate {
    /// Time one token takes to come back.
    fn interval(self) -> Duration {
        Duration::from_secs(60) / self.per_min.max(1)
    }
}

/// A named limit on one kind of action.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub rate: Rate,
}

#[derive(Clone)]
pub struct RateLimiter {
    enabled: bool,
    redis: Option<(ConnectionManager, String)>,
    /// Built once: `Script` hashes its source for EVALSHA.
    script: Arc<redis::Script>,
    local: Arc<Mutex<LocalBuckets>>,
    /// After a Redis failure, hits skip Redis until this instant (one slow call per outage
    /// window instead of one per request).
    redis_paused_until: Arc<Mutex<Option<Instant>>>,
}

/// Per key, the theoretical arrival time: when the bucket would be full again.
#[derive(Default)]
struct LocalBuckets {
    full_at: HashMap<String, Instant>,
}

const LOCAL_PRUNE_AT: usize = 10_000;
/// Past this, Redis counts as down for this hit: no request waits on a stalled Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the node uses its own buckets after Redis failed.
const REDIS_PAUSE: Duration = Duration::from_secs(1);

/// GCRA on Redis's own clock (nodes' clocks may differ), in microseconds. Returns the wait
/// before the hit would be allowed: 0 when it was allowed and counted.
const REDIS_BUCKET: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * interval
local full_at = tonumber(redis.call('GET', KEYS[1])) or now
if full_at < now then full_at = now end
local next_full_at = full_at + interval
local wait = next_full_at - now - capacity
if wait > 0 then return wait end
redis.call('SET', KEYS[1], string.format('%.0f', next_full_at), 'PX',
  math.ceil((next_full_at - now) / 1000) + 1)
return 0
";

impl RateLimiter {
    pub fn new(enabled: bool, redis: Option<(ConnectionManager, String)>) -> Self {
        Self {
            enabled,
            redis,
            script: Arc::new(redis::Script::new(REDIS_BUCKET)),
            local: Arc::default(),
            redis_paused_until: Arc::default(),
        }
    }

    /// Spends one token of `key`'s bucket; `RateLimited` with the wait until one is back.
    pub async fn hit(&self, limit: Limit, key: &str) -> Result<(), AppError> {
        if !self.enabled {
            return Ok(());
        }
        let wait = match &self.redis {
            Some((conn, prefix)) if !self.redis_paused() => {
                let hit = redis_hit(&self.script, conn.clone(), prefix, limit, key);
                match tokio::time::timeout(REDIS_TIMEOUT, hit).await {
                    Ok(Ok(wait)) => wait,
                    failed => {
                        let error = match failed {
                            Ok(Err(err)) => err.to_string(),
                            _ => "timed out".to_owned(),
                        };
                        tracing::warn!(%error, limit = limit.name, "redis rate limit failed; local buckets for {REDIS_PAUSE:?}");
                        *self.redis_paused_until.lock().expect("pause mutex") =
                            Some(Instant::now() + REDIS_PAUSE);
                        self.local_hit(limit, key)
                    }
                }
            }
            _ => self.local_hit(limit, key),
        };
        if wait.is_zero() {
            Ok(())
        } else {
            Err(AppError::RateLimited { retry_after: wait })
        }
    }

    fn redis_paused(&self) -> bool {
        let paused = self.redis_paused_until.lock().expect("pause mutex");
        paused.is_some_and(|until| Instant::now() < until)
    }

    fn local_hit(&self, limit: Limit, key: &str) -> Duration {
        let now = Instant::now();
        let mut local = self.local.lock().expect("rate limit mutex poisoned");
        if local.full_at.len() >= LOCAL_PRUNE_AT {
            local.full_at.retain(|_, full_at| *full_at > now);
        }
        let full_at = local
            .full_at
            .entry(format!("{}:{key}", limit.name))
            .or_insert(now);
        let interval = limit.rate.interval();
        let next_full_at = (*full_at).max(now) + interval;
        let wait = (next_full_at - now).saturating_sub(interval * limit.rate.burst);
        if wait.is_zero() {
            *full_at = next_full_at;
        }
        wait
    }
}

async fn redis_hit(
    script: &redis::Script,
    mut conn: ConnectionManager,
    prefix: &str,
    limit: Limit,
    key: &str,
) -> redis::RedisResult<Duration> {
    let redis_key = format!("{prefix}rl:{}:{key}", limit.name);
    let interval_us = u64::try_from(limit.rate.interval().as_micros()).unwrap_or(u64::MAX);
    let wait_us: u64 = script
        .key(redis_key)
        .arg(interval_us)
        .arg(limit.rate.burst)
        .invoke_async(&mut conn)
        .await?;
    Ok(Duration::from_micros(wait_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        name: "t",
        rate: Rate {
            burst: 2,
            per_min: 60,
        },
    };

    #[tokio::test]
    async fn local_bucket_allows_the_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(true, None);
        limiter.hit(LIMIT, "a").await.unwrap();
        limiter.hit(LIMIT, "a").await.unwrap();
        let err = limiter.hit(LIMIT, "a").await.unwrap_err();
        assert!(
            matches!(err, AppError::RateLimited { retry_after } if retry_after > Duration::from_millis(900) && retry_after <= Duration::from_secs(1)),
            "{err:?}"
        );
        limiter.hit(LIMIT, "b").await.unwrap();
    }

    #[tokio::test]
    async fn disabled_never_limits() {
        let limiter = RateLimiter::new(false, None);
        for _ in 0..10 {
            limiter.hit(LIMIT, "a").await.unwrap();
        }
    }

    #[test]
    fn a_refused_hit_spends_nothing() {
        let limiter = RateLimiter::new(true, None);
        let fast = Limit {
            name: "f",
            rate: Rate {
                burst: 1,
                per_min: 60_000,
            },
        };
        assert!(limiter.local_hit(fast, "k").is_zero());
        for _ in 0..100 {
            let _ = limiter.local_hit(fast, "k");
        }
        std::thread::sleep(Duration::from_millis(2));
        assert!(limiter.local_hit(fast, "k").is_zero());
    }
}
