//! One occurrence edited or cancelled (keyed by its original start, like RECURRENCE-ID), and
//! "this and following": the series ends before an occurrence and a new one starts at it.

use chrono::{DateTime, Utc};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::expand;
use super::model::{EventView, SplitRequest, UpdateOccurrence};
use super::repo::{self, OverrideRow, Placement, SeriesFields};
use super::service::{self, series};
use crate::error::{AppError, FieldError};
use crate::state::AppState;

/// The occurrence must exist in the series as stored (else 404).
fn check_occurrence(row: &repo::EventRow, original: DateTime<Utc>) -> Result<(), AppError> {
    match expand::is_occurrence(&series(row), original) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AppError::NotFound),
        Err(err) => Err(AppError::Internal(anyhow::anyhow!(
            "stored series {}: {err}",
            row.id
        ))),
    }
}

fn check_override(changes: &UpdateOccurrence) -> Result<(), AppError> {
    let mut errors = Vec::new();
    let bounded = |v: &Option<String>, min: usize, max: usize| {
        v.as_ref()
            .is_some_and(|t| !(min..=max).contains(&t.chars().count()) || t.contains('\0'))
    };
    if bounded(&changes.title, 1, 200) {
        errors.push(FieldError::new("title", "must be 1-200 characters"));
    }
    if bounded(&changes.description, 0, 4000) {
        errors.push(FieldError::new("description", "must be 0-4000 characters"));
    }
    if bounded(&changes.location, 0, 500) {
        errors.push(FieldError::new("location", "must be 0-500 characters"));
    }
    if let (Some(s), Some(e)) = (changes.starts_at, changes.ends_at)
        && e < s
    {
        errors.push(FieldError::new("ends_at", "must not be before starts_at"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Edits one occurrence; repeated edits replace the earlier one.
pub async fn edit_occurrence(
    state: &AppState,
    user: Uuid,
    event: Uuid,
    original: DateTime<Utc>,
    changes: UpdateOccurrence,
) -> Result<EventView, AppError> {
    check_override(&changes)?;
    let row = service::manageable(state, user, event).await?;
    check_occurrence(&row, original)?;
    let starts_at = changes.starts_at;
    let ends_at = match (changes.starts_at, changes.ends_at) {
        (Some(s), None) => Some(s + (row.ends_at - row.starts_at)),
        (_, e) => e,
    };
    let override_row = OverrideRow {
        event_id: event,
        original_start: original,
        cancelled: false,
        title: changes.title.map(|t| t.trim().to_owned()),
        description: changes.description,
        location: changes.location,
        starts_at,
        ends_at,
    };
    repo::upsert_override(&state.db, &override_row).await?;
    touched(state, event).await
}

/// Cancels one occurrence (it stays listed, `cancelled: true`; the feed gets an EXDATE).
pub async fn cancel_occurrence(
    state: &AppState,
    user: Uuid,
    event: Uuid,
    original: DateTime<Utc>,
) -> Result<EventView, AppError> {
    let row = service::manageable(state, user, event).await?;
    check_occurrence(&row, original)?;
    let existing = repo::overrides(&state.db, &[event])
        .await?
        .into_iter()
        .find(|o| o.original_start == original);
    let cancelled = OverrideRow {
        cancelled: true,
        ..existing.unwrap_or(OverrideRow {
            event_id: event,
            original_start: original,
            cancelled: true,
            title: None,
            description: None,
            location: None,
            starts_at: None,
            ends_at: None,
        })
    };
    repo::upsert_override(&state.db, &cancelled).await?;
    touched(state, event).await
}

/// Re-reads the series, tells its followers, and returns it.
async fn touched(state: &AppState, event: Uuid) -> Result<EventView, AppError> {
    let row = repo::event(&state.db, event)
        .await?
        .ok_or(AppError::NotFound)?;
    let view = service::view(state, row).await?;
    service::announce(state, &view, false).await;
    Ok(view)
}

/// Splits at `from`: the old series ends just before it (UNTIL), a new series with `changes`
/// starts at it (a COUNT is shared out), RDATEs/EXDATEs and the per-occurrence edits, RSVPs and
/// sent reminders from `from` on move to the new series, shifted by any change of start time.
/// Splitting at the first occurrence edits the whole series instead.
pub async fn split(
    state: &AppState,
    user: Uuid,
    event: Uuid,
    request: SplitRequest,
) -> Result<EventView, AppError> {
    let row = service::manageable(state, user, event).await?;
    check_occurrence(&row, request.from).map_err(|err| match err {
        AppError::NotFound => AppError::field("from", "not an occurrence of this series"),
        other => other,
    })?;
    if request.from == row.starts_at {
        return service::update(state, user, event, request.changes).await;
    }
    let Some(rule) = row.rrule.clone() else {
        return Err(AppError::field(
            "from",
            "only a recurring series can be split",
        ));
    };
    let txn = state.db.begin().await?;
    let row = repo::lock(&txn, event).await?.ok_or(AppError::NotFound)?;
    let before = expand::count_before(&series(&row), request.from, 100_000)
        .map_err(|err| AppError::Internal(anyhow::anyhow!("{err}")))?;
    let count = rule_count(&rule);
    let mut old = SeriesFields::of(&row);
    let (later_rdates, earlier_rdates): (Vec<_>, Vec<_>) =
        old.rdates.iter().partition(|d| **d >= request.from);
    let (later_exdates, earlier_exdates): (Vec<_>, Vec<_>) =
        old.exdates.iter().partition(|d| **d >= request.from);
    old.rrule = Some(expand::rule_until(&rule, request.from));
    old.rdates = earlier_rdates;
    old.exdates = earlier_exdates;
    let mut tail = SeriesFields::of(&row);
    tail.starts_at = request.from;
    tail.ends_at = request.from + (row.ends_at - row.starts_at);
    tail.rrule = Some(match count {
        Some(n) => expand::rule_with_count(&rule, n.saturating_sub(before as u32).max(1)),
        None => rule,
    });
    tail.rdates = later_rdates;
    tail.exdates = later_exdates;
    let tail = service::validate(service::apply(tail, request.changes))?;
    let shift = tail.starts_at - request.from;
    repo::update(&txn, event, &old).await?;
    let placement = Placement {
        id: Uuid::now_v7(),
        community_id: row.community_id,
        group_id: row.group_id,
        room_id: row.room_id,
        creator_id: row.creator_id,
        split_from: Some(row.id),
    };
    let created = repo::insert(&txn, &placement, &tail).await?;
    repo::move_occurrences(&txn, event, created.id, Some(request.from), shift).await?;
    txn.commit().await?;
    touched(state, event).await?;
    touched(state, created.id).await
}

fn rule_count(rule: &str) -> Option<u32> {
    rule.split(';')
        .find_map(|part| part.strip_prefix("COUNT="))
        .and_then(|n| n.parse().ok())
}
