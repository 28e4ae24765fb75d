//! `event.starting` to those going, `GUILDHALL_EVENT_REMINDER_S` before each occurrence. Every
//! node scans; the reminder row that one insert wins makes it go out exactly once.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::expand;
use super::model::CalendarEvent;
use super::repo;
use super::service::{occurrence, series};
use crate::error::AppError;
use crate::realtime::Audience;
use crate::state::AppState;

/// How often every node checks; at least twice per lead time, so no occurrence slips between
/// two checks.
const EVERY: Duration = Duration::from_secs(5);

pub async fn run_reminders(state: AppState, shutdown: CancellationToken) {
    let every = EVERY
        .min(state.config.event_reminder / 2)
        .max(Duration::from_millis(500));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = remind_due(&state).await {
            tracing::warn!(error = %err, "event reminders failed");
        }
    }
}

/// Occurrences starting within the lead time (and not yet started) get their reminder.
async fn remind_due(state: &AppState) -> Result<(), AppError> {
    let now = Utc::now();
    let lead = chrono::Duration::from_std(state.config.event_reminder).unwrap_or_default();
    let until = now + lead;
    let events = repo::events_around(&state.db, now, until + chrono::Duration::seconds(1)).await?;
    for row in events {
        let Ok(found) = expand::expand(&series(&row), now, until, 50) else {
            continue;
        };
        let overrides = repo::overrides(&state.db, &[row.id]).await?;
        for original in found.starts {
            let edit = overrides.iter().find(|o| o.original_start == original);
            let when = occurrence(&row, original, edit);
            if when.cancelled || when.starts_at <= now || when.starts_at > until {
                continue;
            }
            if !repo::claim_reminder(&state.db, row.id, original).await? {
                continue;
            }
            let going = repo::going(&state.db, row.id, original).await?;
            if going.is_empty() {
                continue;
            }
            let frame = CalendarEvent::Starting {
                community_id: row.community_id,
                event_id: row.id,
                title: &when.title,
                original_start: original,
                starts_at: when.starts_at,
                starts_in_s: (when.starts_at - now).num_seconds(),
            };
            state
                .bus
                .publish(Audience::Users(going), None, &frame)
                .await;
        }
    }
    Ok(())
}
