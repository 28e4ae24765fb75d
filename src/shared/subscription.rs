//! A Redis subscription that notices when it has gone silent. A subscriber only reads, so a
//! lost connection can look open for good: after a network partition the close, or what Redis
//! sent, may have been dropped on the way, and TCP's retransmission back-off can keep the socket
//! silent for tens of seconds after the network is back (tests/api/partition.rs measures both).
//! So the subscription asks Redis every second, and its holder starts over when no answer comes.

use std::future::Future;
use std::time::Duration;

use redis::aio::PubSubStream;

/// How often a subscription asks whether Redis is still behind it.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for that answer, and for connecting and subscribing.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Subscribes to `channel`. Returns the messages and a future that completes, with the reason,
/// once the subscription stops answering: select on both and reconnect when the second ends.
pub async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> anyhow::Result<(PubSubStream, impl Future<Output = anyhow::Error> + Send)> {
    let subscribed = tokio::time::timeout(TIMEOUT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    });
    let Ok(pubsub) = subscribed.await else {
        anyhow::bail!("redis subscription timed out")
    };
    let (mut sink, messages) = pubsub?.split();
    let silent = async move {
        loop {
            tokio::time::sleep(PING_EVERY).await;
            match tokio::time::timeout(TIMEOUT, sink.ping::<redis::Value>()).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return anyhow::Error::from(err),
                Err(_) => return anyhow::anyhow!("redis subscription did not answer a ping"),
            }
        }
    };
    Ok((messages, silent))
}
