//! The pause between attempts of a long-lived feed (Redis relay, policy feed, session
//! revocations): each runs one connection's worth of work, then comes here before the next.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Logs why an attempt of `what` ended, then waits `pause` (or until `shutdown`), so a
/// dependency that is down is not hammered.
pub async fn pause_after(
    what: &str,
    attempt: anyhow::Result<()>,
    pause: Duration,
    shutdown: &CancellationToken,
) {
    if let Err(err) = attempt {
        tracing::warn!(error = %err, "{what} interrupted; retrying");
    }
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(pause) => {}
    }
}
