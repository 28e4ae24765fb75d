//! The iCalendar feed of a community, and the private feed tokens calendar apps use instead of
//! a bearer header (only a SHA-256 of each token is stored).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::expand;
use super::ics::{self, IcsEvent, IcsOverride};
use super::model::{FeedToken, FeedTokenList};
use super::repo::{self, EventRow, OverrideRow};
use super::service::{can_view, series};
use crate::error::AppError;
use crate::permissions::{ScopeKind, perm};
use crate::state::AppState;

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub async fn create_token(state: &AppState, user: Uuid) -> Result<FeedToken, AppError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("ghcal_{}", URL_SAFE_NO_PAD.encode(bytes));
    let row = repo::insert_token(&state.db, Uuid::now_v7(), user, &hash(&token)).await?;
    Ok(FeedToken {
        id: row.id,
        token: Some(token),
        created_at: row.created_at,
    })
}

pub async fn tokens(state: &AppState, user: Uuid) -> Result<FeedTokenList, AppError> {
    let tokens = repo::tokens(&state.db, user)
        .await?
        .into_iter()
        .map(|t| FeedToken {
            id: t.id,
            token: None,
            created_at: t.created_at,
        })
        .collect();
    Ok(FeedTokenList { tokens })
}

pub async fn revoke(state: &AppState, user: Uuid, id: Uuid) -> Result<(), AppError> {
    if repo::delete_token(&state.db, user, id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// The user a feed token belongs to; an unknown or revoked token is 401.
pub async fn token_user(state: &AppState, token: &str) -> Result<Uuid, AppError> {
    repo::token_by_hash(&state.db, &hash(token))
        .await?
        .map(|t| t.user_id)
        .ok_or_else(|| AppError::Unauthorized("unknown or revoked calendar feed token".into()))
}

/// Every series of the community the user may see, as one VCALENDAR.
pub async fn calendar(state: &AppState, user: Uuid, community: Uuid) -> Result<String, AppError> {
    let auth = state
        .permissions
        .require_kind::<perm::View>(user, community, ScopeKind::Community)
        .await?;
    let name = crate::communities::service::get(state, &auth).await?.name;
    let far = Utc::now() + chrono::Duration::days(3650);
    let mut visible = Vec::new();
    for row in repo::community_events(&state.db, community, far).await? {
        if can_view(state, user, row.scope_id()).await? {
            visible.push(row);
        }
    }
    let ids: Vec<Uuid> = visible.iter().map(|e| e.id).collect();
    let overrides = repo::overrides(&state.db, &ids).await?;
    let events: Vec<IcsEvent> = visible
        .into_iter()
        .map(|row| ics_event(row, &overrides))
        .collect();
    Ok(ics::render(&name, &events, Utc::now()))
}

fn ics_event(row: EventRow, overrides: &[OverrideRow]) -> IcsEvent {
    // Edits of occurrences a later rule change removed are not part of the series any more.
    let own = overrides
        .iter()
        .filter(|o| o.event_id == row.id)
        .filter(|o| expand::is_occurrence(&series(&row), o.original_start).unwrap_or(false))
        .map(|o| IcsOverride {
            original_start: o.original_start,
            cancelled: o.cancelled,
            title: o.title.clone(),
            description: o.description.clone(),
            location: o.location.clone(),
            starts_at: o.starts_at,
            ends_at: o.ends_at,
        })
        .collect();
    IcsEvent {
        uid: format!("{}@guildhall", row.id),
        sequence: row.sequence,
        title: row.title,
        description: row.description,
        location: row.location,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        timezone: row.timezone,
        rrule: row.rrule,
        rdates: row.rdates,
        exdates: row.exdates,
        created_at: row.created_at,
        updated_at: row.updated_at,
        overrides: own,
    }
}
