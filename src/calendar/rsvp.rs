//! RSVPs per occurrence: going, maybe, declined; counts from a trigger-kept table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::expand;
use super::model::{Attendee, AttendeeList, RsvpCounts, RsvpStatus, RsvpView};
use super::repo;
use super::service::{self, series};
use crate::error::AppError;
use crate::state::AppState;

async fn counts(
    state: &AppState,
    event: Uuid,
    original: DateTime<Utc>,
) -> Result<RsvpCounts, AppError> {
    Ok(repo::rsvp_counts(&state.db, &[event])
        .await?
        .into_iter()
        .find(|c| c.original_start == original)
        .map(|c| RsvpCounts {
            going: c.going,
            maybe: c.maybe,
            declined: c.declined,
        })
        .unwrap_or_default())
}

/// Anyone who can see the event answers for an occurrence that exists and is not cancelled.
pub async fn set(
    state: &AppState,
    user: Uuid,
    event: Uuid,
    original: DateTime<Utc>,
    status: Option<RsvpStatus>,
) -> Result<RsvpView, AppError> {
    let (row, _) = service::readable(state, user, event).await?;
    if !expand::is_occurrence(&series(&row), original).unwrap_or(false) {
        return Err(AppError::NotFound);
    }
    let cancelled = repo::overrides(&state.db, &[event])
        .await?
        .iter()
        .any(|o| o.original_start == original && o.cancelled);
    if cancelled && status.is_some() {
        return Err(AppError::Conflict {
            detail: "this occurrence is cancelled".into(),
            fields: vec![],
        });
    }
    repo::set_rsvp(
        &state.db,
        event,
        original,
        user,
        status.map(RsvpStatus::as_str),
    )
    .await?;
    Ok(RsvpView {
        event_id: event,
        original_start: original,
        status,
        counts: counts(state, event, original).await?,
    })
}

pub async fn list(
    state: &AppState,
    user: Uuid,
    event: Uuid,
    original: DateTime<Utc>,
) -> Result<AttendeeList, AppError> {
    let (row, _) = service::readable(state, user, event).await?;
    if !expand::is_occurrence(&series(&row), original).unwrap_or(false) {
        return Err(AppError::NotFound);
    }
    let attendees = repo::rsvps_of(&state.db, event, original)
        .await?
        .into_iter()
        .filter_map(|r| {
            Some(Attendee {
                user_id: r.user_id,
                status: RsvpStatus::parse(&r.status)?,
                updated_at: r.updated_at,
            })
        })
        .collect();
    Ok(AttendeeList {
        counts: counts(state, event, original).await?,
        attendees,
    })
}
