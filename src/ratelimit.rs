//! Fixed-window rate limits, shared across nodes through Redis when configured and kept
//! in-process otherwise. A Redis failure falls back to the node's own window rather than
//! letting every request through or refusing all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::error::AppError;

/// A named limit: at most `max` hits per `window` for one key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
}

#[derive(Clone)]
pub struct RateLimiter {
    enabled: bool,
    redis: Option<(ConnectionManager, String)>,
    /// Built once: `Script` hashes its source for EVALSHA.
    script: Arc<redis::Script>,
    local: Arc<Mutex<LocalWindows>>,
}

#[derive(Default)]
struct LocalWindows {
    windows: HashMap<String, (Instant, u32)>,
}

const LOCAL_PRUNE_AT: usize = 10_000;

/// INCR the window's counter, start its expiry on the first hit, return (count, ms left).
const REDIS_WINDOW: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

impl RateLimiter {
    pub fn new(enabled: bool, redis: Option<(ConnectionManager, String)>) -> Self {
        Self {
            enabled,
            redis,
            script: Arc::new(redis::Script::new(REDIS_WINDOW)),
            local: Arc::default(),
        }
    }

    /// Counts one hit; `RateLimited` with the seconds until the window resets when over.
    pub async fn hit(&self, limit: Limit, key: &str) -> Result<(), AppError> {
        if !self.enabled {
            return Ok(());
        }
        let (count, remaining) = match &self.redis {
            Some((conn, prefix)) => {
                match redis_hit(&self.script, conn.clone(), prefix, limit, key).await {
                    Ok(hit) => hit,
                    Err(err) => {
                        tracing::warn!(error = %err, limit = limit.name, "redis rate limit failed; using local window");
                        self.local_hit(limit, key)
                    }
                }
            }
            None => self.local_hit(limit, key),
        };
        if count > limit.max {
            let retry_after_s = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
            return Err(AppError::RateLimited {
                retry_after_s: retry_after_s.max(1),
            });
        }
        Ok(())
    }

    fn local_hit(&self, limit: Limit, key: &str) -> (u32, Duration) {
        let now = Instant::now();
        let mut local = self.local.lock().expect("rate limit mutex poisoned");
        if local.windows.len() >= LOCAL_PRUNE_AT {
            local
                .windows
                .retain(|_, (start, _)| now.duration_since(*start) < limit.window);
        }
        let entry = local
            .windows
            .entry(format!("{}:{key}", limit.name))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= limit.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        (
            entry.1,
            limit.window.saturating_sub(now.duration_since(entry.0)),
        )
    }
}

async fn redis_hit(
    script: &redis::Script,
    mut conn: ConnectionManager,
    prefix: &str,
    limit: Limit,
    key: &str,
) -> redis::RedisResult<(u32, Duration)> {
    let redis_key = format!("{prefix}rl:{}:{key}", limit.name);
    let window_ms = u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX);
    let (count, ttl_ms): (u32, u64) = script
        .key(redis_key)
        .arg(window_ms)
        .invoke_async(&mut conn)
        .await?;
    Ok((count, Duration::from_millis(ttl_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        name: "t",
        max: 2,
        window: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn local_window_limits_per_key() {
        let limiter = RateLimiter::new(true, None);
        limiter.hit(LIMIT, "a").await.unwrap();
        limiter.hit(LIMIT, "a").await.unwrap();
        let err = limiter.hit(LIMIT, "a").await.unwrap_err();
        assert!(
            matches!(err, AppError::RateLimited { retry_after_s } if (1..=60).contains(&retry_after_s))
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
}
