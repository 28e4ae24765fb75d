//! Series: create, read, edit, delete, and occurrences across everything the caller may see.
//! Permissions come from the scope the event is attached to (community, group or room).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::expand::{self, Series};
use super::model::{
    CalendarEvent, CreateEvent, EventView, OccurrenceView, OverrideView, RsvpCounts, RsvpStatus,
    UpdateEvent,
};
use super::repo::{self, EventRow, OverrideRow, Placement, SeriesFields};
use crate::error::{AppError, FieldError};
use crate::permissions::{Authorized, Perm, ScopeKind, perm};
use crate::realtime::Audience;
use crate::state::AppState;

/// Widest `from`..`to` window of an occurrence query.
pub const MAX_WINDOW_DAYS: i64 = 366;
pub const DEFAULT_LIMIT: usize = 500;
pub const MAX_LIMIT: usize = 2000;

pub fn series(row: &EventRow) -> Series<'_> {
    Series {
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        timezone: &row.timezone,
        rrule: row.rrule.as_deref(),
        rdates: &row.rdates,
        exdates: &row.exdates,
    }
}

fn text(errors: &mut Vec<FieldError>, field: &str, value: &str, min: usize, max: usize) {
    let len = value.chars().count();
    if len < min || len > max || value.contains('\0') {
        errors.push(FieldError::new(
            field,
            format!("must be {min}-{max} characters"),
        ));
    }
}

/// Checks a series and normalizes its rule; every problem is named by its field.
pub fn validate(mut fields: SeriesFields) -> Result<SeriesFields, AppError> {
    let mut errors = Vec::new();
    fields.title = String::from(fields.title.trim());
    text(&mut errors, "title", &fields.title, 1, 200);
    text(&mut errors, "description", &fields.description, 0, 4000);
    text(&mut errors, "location", &fields.location, 0, 500);
    if fields.ends_at < fields.starts_at {
        errors.push(FieldError::new("ends_at", "must not be before starts_at"));
    } else if fields.ends_at - fields.starts_at > Duration::days(MAX_WINDOW_DAYS) {
        errors.push(FieldError::new(
            "ends_at",
            "an occurrence lasts at most 366 days",
        ));
    }
    if fields.rdates.len() > 500 || fields.exdates.len() > 500 {
        errors.push(FieldError::new(
            "exdates",
            "at most 500 rdates and 500 exdates",
        ));
    }
    fields.rrule = fields
        .rrule
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Err(err) = expand::check_timezone(&fields.timezone) {
        errors.push(FieldError::new("timezone", err.to_string()));
    } else if errors.is_empty() {
        let s = Series {
            starts_at: fields.starts_at,
            ends_at: fields.ends_at,
            timezone: &fields.timezone,
            rrule: fields.rrule.as_deref(),
            rdates: &fields.rdates,
            exdates: &fields.exdates,
        };
        match expand::check_rule(&s) {
            Ok(rule) => fields.rrule = rule,
            Err(err) => errors.push(FieldError::new("rrule", err.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(AppError::Validation(errors))
    }
}

/// The scope an event goes to, checked for `create_events` (404 when invisible).
async fn creation_scope(
    state: &AppState,
    user: Uuid,
    community: Uuid,
    input: &CreateEvent,
) -> Result<Authorized<perm::CreateEvents>, AppError> {
    let (id, kind, field) = match (input.group_id, input.room_id) {
        (Some(_), Some(_)) => {
            return Err(AppError::field(
                "room_id",
                "give group_id or room_id, not both",
            ));
        }
        (Some(group), None) => (group, ScopeKind::Group, "group_id"),
        (None, Some(room)) => (room, ScopeKind::Room, "room_id"),
        (None, None) => (community, ScopeKind::Community, "community_id"),
    };
    let visible = state
        .permissions
        .require_kind::<perm::View>(user, community, ScopeKind::Community)
        .await;
    visible?;
    let auth = state
        .permissions
        .require_kind::<perm::CreateEvents>(user, id, kind)
        .await
        .map_err(|err| match err {
            AppError::NotFound if kind != ScopeKind::Community => {
                AppError::field(field, "no such group or room in this community")
            }
            other => other,
        })?;
    if auth.community_id() != Some(community) {
        return Err(AppError::field(
            field,
            "no such group or room in this community",
        ));
    }
    Ok(auth)
}

pub async fn create(
    state: &AppState,
    user: Uuid,
    community: Uuid,
    input: CreateEvent,
) -> Result<EventView, AppError> {
    let auth = creation_scope(state, user, community, &input).await?;
    let fields = validate(SeriesFields {
        title: input.title,
        description: input.description,
        location: input.location,
        starts_at: input.starts_at,
        ends_at: input.ends_at,
        timezone: input.timezone,
        rrule: input.rrule,
        rdates: input.rdates,
        exdates: input.exdates,
    })?;
    let placement = Placement {
        id: Uuid::now_v7(),
        community_id: community,
        group_id: input.group_id,
        room_id: input.room_id,
        creator_id: auth.user(),
        split_from: None,
    };
    let row = repo::insert(&state.db, &placement, &fields).await?;
    let view = view(state, row).await?;
    announce(state, &view, false).await;
    Ok(view)
}

/// The event and proof the user may see its scope; an invisible event is a 404.
pub async fn readable(
    state: &AppState,
    user: Uuid,
    event: Uuid,
) -> Result<(EventRow, Authorized<perm::View>), AppError> {
    let row = repo::event(&state.db, event)
        .await?
        .ok_or(AppError::NotFound)?;
    let auth = state
        .permissions
        .require::<perm::View>(user, row.scope_id())
        .await?;
    Ok((row, auth))
}

/// `readable`, and the user created the event or holds `manage_events` at its scope.
pub async fn manageable(state: &AppState, user: Uuid, event: Uuid) -> Result<EventRow, AppError> {
    let (row, auth) = readable(state, user, event).await?;
    if row.creator_id != user && !auth.perms().contains(Perm::ManageEvents) {
        return Err(AppError::Forbidden(
            "only the event's creator or someone with manage_events can change it".into(),
        ));
    }
    Ok(row)
}

pub async fn view(state: &AppState, row: EventRow) -> Result<EventView, AppError> {
    let overrides = repo::overrides(&state.db, &[row.id]).await?;
    Ok(view_with(row, &overrides))
}

fn view_with(row: EventRow, overrides: &[OverrideRow]) -> EventView {
    EventView {
        id: row.id,
        community_id: row.community_id,
        group_id: row.group_id,
        room_id: row.room_id,
        creator_id: row.creator_id,
        title: row.title,
        description: row.description,
        location: row.location,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        timezone: row.timezone,
        rrule: row.rrule,
        rdates: row.rdates,
        exdates: row.exdates,
        split_from: row.split_from,
        sequence: row.sequence,
        overrides: overrides
            .iter()
            .filter(|o| o.event_id == row.id)
            .map(|o| OverrideView {
                original_start: o.original_start,
                cancelled: o.cancelled,
                title: o.title.clone(),
                description: o.description.clone(),
                location: o.location.clone(),
                starts_at: o.starts_at,
                ends_at: o.ends_at,
            })
            .collect(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

pub async fn get(state: &AppState, user: Uuid, event: Uuid) -> Result<EventView, AppError> {
    let (row, _) = readable(state, user, event).await?;
    view(state, row).await
}

/// Applies `changes` to a series' fields (absent fields stay; an empty rrule clears it).
pub fn apply(mut fields: SeriesFields, changes: UpdateEvent) -> SeriesFields {
    if let Some(v) = changes.title {
        fields.title = v;
    }
    if let Some(v) = changes.description {
        fields.description = v;
    }
    if let Some(v) = changes.location {
        fields.location = v;
    }
    let duration = fields.ends_at - fields.starts_at;
    if let Some(v) = changes.starts_at {
        // RDATEs and EXDATEs name occurrences: they move with the series' start.
        let shift = v - fields.starts_at;
        fields.rdates.iter_mut().for_each(|d| *d += shift);
        fields.exdates.iter_mut().for_each(|d| *d += shift);
        fields.starts_at = v;
        fields.ends_at = v + duration;
    }
    if let Some(v) = changes.ends_at {
        fields.ends_at = v;
    }
    if let Some(v) = changes.timezone {
        fields.timezone = v;
    }
    if let Some(v) = changes.rrule {
        fields.rrule = Some(v);
    }
    if let Some(v) = changes.exdates {
        fields.exdates = v;
    }
    if let Some(v) = changes.rdates {
        fields.rdates = v;
    }
    fields
}

/// Edits the whole series. Moving its start moves the keys of its per-occurrence edits and
/// RSVPs along, so they stay attached to the same occurrences.
pub async fn update(
    state: &AppState,
    user: Uuid,
    event: Uuid,
    changes: UpdateEvent,
) -> Result<EventView, AppError> {
    manageable(state, user, event).await?;
    let txn = state.db.begin().await?;
    let row = repo::lock(&txn, event).await?.ok_or(AppError::NotFound)?;
    let fields = validate(apply(SeriesFields::of(&row), changes))?;
    let shift = fields.starts_at - row.starts_at;
    let updated = repo::update(&txn, event, &fields)
        .await?
        .ok_or(AppError::NotFound)?;
    if !shift.is_zero() {
        repo::shift_occurrences(&txn, event, shift).await?;
    }
    txn.commit().await?;
    let view = view(state, updated).await?;
    announce(state, &view, false).await;
    Ok(view)
}

pub async fn delete(state: &AppState, user: Uuid, event: Uuid) -> Result<(), AppError> {
    let row = manageable(state, user, event).await?;
    let view = view(state, row).await?;
    if repo::delete(&state.db, event).await? {
        announce(state, &view, true).await;
    }
    Ok(())
}

/// `event.updated` to those who follow the event's scope: the room's subscribers, or the
/// community's members who can see the group or community it is attached to.
pub async fn announce(state: &AppState, event: &EventView, deleted: bool) {
    let frame = CalendarEvent::Updated {
        community_id: event.community_id,
        event,
        deleted,
    };
    let audience = match (event.room_id, event.group_id) {
        (Some(room), _) => Audience::Room(room),
        (None, Some(group)) => match viewers(state, event.community_id, group).await {
            Ok(users) => Audience::Users(users),
            Err(err) => {
                tracing::warn!(error = %err, "event.updated audience unavailable");
                return;
            }
        },
        (None, None) => Audience::Communities(vec![event.community_id]),
    };
    state.bus.publish(audience, None, &frame).await;
}

/// Members of the community who may see `scope`.
async fn viewers(state: &AppState, community: Uuid, scope: Uuid) -> Result<Vec<Uuid>, AppError> {
    let members = crate::communities::service::member_ids(state, community).await?;
    let mut users = Vec::new();
    for user in members {
        if let Some(s) = state.permissions.scope(user, scope).await?
            && state
                .permissions
                .effective(user, &s)
                .await?
                .0
                .contains(Perm::View)
        {
            users.push(user);
        }
    }
    Ok(users)
}

/// Occurrences of every event of the community the caller may see, overlapping [from, to).
pub async fn occurrences(
    state: &AppState,
    user: Uuid,
    community: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    limit: usize,
) -> Result<Vec<OccurrenceView>, AppError> {
    state
        .permissions
        .require_kind::<perm::View>(user, community, ScopeKind::Community)
        .await?;
    if to <= from || to - from > Duration::days(MAX_WINDOW_DAYS) {
        return Err(AppError::field(
            "to",
            "must be after from, at most 366 days later",
        ));
    }
    let mut visible: HashMap<Uuid, bool> = HashMap::new();
    let mut events = Vec::new();
    for row in
        repo::community_events(&state.db, community, to + Duration::days(MAX_WINDOW_DAYS)).await?
    {
        let scope = row.scope_id();
        let seen = match visible.get(&scope) {
            Some(seen) => *seen,
            None => {
                let seen = can_view(state, user, scope).await?;
                visible.insert(scope, seen);
                seen
            }
        };
        if seen {
            events.push(row);
        }
    }
    let mut list = expand_all(state, user, &events, (from, to), limit).await?;
    if list.len() > limit {
        return Err(AppError::field(
            "to",
            format!(
                "more than {limit} occurrences in this window; narrow it or raise limit (max {MAX_LIMIT})"
            ),
        ));
    }
    list.sort_by_key(|o| (o.starts_at, o.event_id));
    Ok(list)
}

/// Whether the user may see the scope an event is attached to.
pub(super) async fn can_view(state: &AppState, user: Uuid, scope: Uuid) -> Result<bool, AppError> {
    Ok(match state.permissions.scope(user, scope).await? {
        Some(s) => state
            .permissions
            .effective(user, &s)
            .await?
            .0
            .contains(Perm::View),
        None => false,
    })
}

/// Expands each series over the window, applies its overrides (an edited occurrence counts
/// where it now is), and attaches RSVP counts and the caller's answer. Stops past `limit`.
async fn expand_all(
    state: &AppState,
    user: Uuid,
    events: &[EventRow],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    limit: usize,
) -> Result<Vec<OccurrenceView>, AppError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let overrides = repo::overrides(&state.db, &ids).await?;
    let counts: HashMap<(Uuid, DateTime<Utc>), RsvpCounts> = repo::rsvp_counts(&state.db, &ids)
        .await?
        .into_iter()
        .map(|c| {
            let counts = RsvpCounts {
                going: c.going,
                maybe: c.maybe,
                declined: c.declined,
            };
            ((c.event_id, c.original_start), counts)
        })
        .collect();
    let mine: HashMap<(Uuid, DateTime<Utc>), RsvpStatus> = repo::my_rsvps(&state.db, &ids, user)
        .await?
        .into_iter()
        .filter_map(|r| {
            Some((
                (r.event_id, r.original_start),
                RsvpStatus::parse(&r.status)?,
            ))
        })
        .collect();
    let mut out = Vec::new();
    for row in events {
        let own: Vec<&OverrideRow> = overrides.iter().filter(|o| o.event_id == row.id).collect();
        let mut starts = expand::expand(
            &series(row),
            from - (row.ends_at - row.starts_at),
            to,
            limit + 1,
        )
        .map_err(|err| AppError::Internal(anyhow::anyhow!("stored series {}: {err}", row.id)))?
        .starts;
        // An occurrence moved into the window from outside it.
        for o in &own {
            let moved_in = o
                .starts_at
                .is_some_and(|s| s < to && s >= from - Duration::days(MAX_WINDOW_DAYS));
            if moved_in
                && !starts.contains(&o.original_start)
                && expand::is_occurrence(&series(row), o.original_start).unwrap_or(false)
            {
                starts.push(o.original_start);
            }
        }
        for original in starts {
            let found = own.iter().find(|o| o.original_start == original).copied();
            let occurrence = occurrence(row, original, found);
            if occurrence.ends_at > from && occurrence.starts_at < to
                || occurrence.starts_at == occurrence.ends_at
                    && occurrence.starts_at >= from
                    && occurrence.starts_at < to
            {
                let key = (row.id, original);
                out.push(OccurrenceView {
                    rsvp: counts.get(&key).copied().unwrap_or_default(),
                    my_rsvp: mine.get(&key).copied(),
                    ..occurrence
                });
            }
            if out.len() > limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// One occurrence of a series with its override applied.
pub fn occurrence(
    row: &EventRow,
    original: DateTime<Utc>,
    o: Option<&OverrideRow>,
) -> OccurrenceView {
    let duration = row.ends_at - row.starts_at;
    let starts_at = o.and_then(|o| o.starts_at).unwrap_or(original);
    let ends_at = o
        .and_then(|o| o.ends_at)
        .unwrap_or(starts_at + duration)
        .max(starts_at);
    OccurrenceView {
        event_id: row.id,
        title: o
            .and_then(|o| o.title.clone())
            .unwrap_or_else(|| row.title.clone()),
        description: o
            .and_then(|o| o.description.clone())
            .unwrap_or_else(|| row.description.clone()),
        location: o
            .and_then(|o| o.location.clone())
            .unwrap_or_else(|| row.location.clone()),
        starts_at,
        ends_at,
        original_start: original,
        cancelled: o.is_some_and(|o| o.cancelled),
        timezone: row.timezone.clone(),
        group_id: row.group_id,
        room_id: row.room_id,
        rsvp: RsvpCounts::default(),
        my_rsvp: None,
    }
}

/// An RSVP on behalf of `user` (same checks as the endpoint).
pub async fn set_rsvp(
    state: &AppState,
    user: Uuid,
    event: Uuid,
    original: DateTime<Utc>,
    status: RsvpStatus,
) -> Result<(), AppError> {
    super::rsvp::set(state, user, event, original, Some(status))
        .await
        .map(|_| ())
}
