//! Communities, membership, invites, kicks and bans. Every call carries a permission proof
//! from `permissions` (or checks one itself from the caller's id).

use rand::Rng;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::repo::{self, CommunityRow};
use super::views::{CommunityView, InviteView, MemberView, Page};
use crate::error::{AppError, FieldError};
use crate::identity;
use crate::permissions::{self, Authorized, Permissions, perm};
use crate::realtime::Audience;
use crate::shared::Cursor;
use crate::state::AppState;

/// Checks a display text and trims it: at most `max` characters and no control characters
/// as sent (what the OpenAPI `maxLength` and `pattern` say), at least `min` once trimmed.
pub fn text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let length_error = || FieldError::new(field, format!("must be {min}-{max} characters long"));
    if raw.chars().count() > max {
        return Err(length_error());
    }
    if raw.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    // U+FEFF counts as blank, as in the patterns' ECMAScript `\s`.
    let value = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if value.chars().count() < min {
        return Err(length_error());
    }
    Ok(value.to_owned())
}

pub fn visibility(raw: &str) -> Result<&'static str, FieldError> {
    match raw {
        "public" => Ok("public"),
        "private" => Ok("private"),
        _ => Err(FieldError::new("visibility", "must be public or private")),
    }
}

pub struct NewCommunity {
    pub name: String,
    pub description: String,
    pub visibility: &'static str,
}

/// Creates the community with its built-in roles; the creator becomes member and owner.
pub async fn create(
    state: &AppState,
    creator: Uuid,
    new: NewCommunity,
) -> Result<CommunityView, AppError> {
    let id = Uuid::now_v7();
    let txn = state.permissions.begin_as(creator).await?;
    repo::insert_community(
        &txn,
        id,
        &new.name,
        &new.description,
        new.visibility,
        creator,
        state.config.max_group_depth,
    )
    .await?;
    permissions::setup_community(&txn, id, creator).await?;
    repo::add_member(&txn, id, creator).await?;
    let version = permissions::recompile(&txn, id).await?;
    let row = repo::community(&txn, id).await?.ok_or(AppError::NotFound)?;
    txn.commit().await?;
    state.permissions.committed(id, version).await;
    Ok(row.into())
}

pub async fn get(
    state: &AppState,
    auth: &Authorized<perm::View>,
) -> Result<CommunityView, AppError> {
    load(state, auth.scope().id).await.map(CommunityView::from)
}

async fn load(state: &AppState, id: Uuid) -> Result<CommunityRow, AppError> {
    repo::community(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)
}

pub struct CommunityPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<&'static str>,
}

pub async fn update(
    state: &AppState,
    auth: &Authorized<perm::ManageCommunity>,
    patch: CommunityPatch,
) -> Result<CommunityView, AppError> {
    let id = auth.scope().id;
    let current = load(state, id).await?;
    let visibility = patch
        .visibility
        .unwrap_or(if current.visibility == "public" {
            "public"
        } else {
            "private"
        });
    let txn = state.permissions.begin_as(auth.user()).await?;
    repo::update_community(
        &txn,
        id,
        patch.name.as_deref().unwrap_or(&current.name),
        patch.description.as_deref().unwrap_or(&current.description),
        visibility,
    )
    .await?;
    // Visibility decides the public-visitor lines.
    let version = permissions::recompile(&txn, id).await?;
    let row = repo::community(&txn, id).await?.ok_or(AppError::NotFound)?;
    txn.commit().await?;
    state.permissions.committed(id, version).await;
    Ok(row.into())
}

pub async fn delete(state: &AppState, auth: &Authorized<perm::View>) -> Result<(), AppError> {
    if !auth.is_owner() {
        return Err(AppError::Forbidden(
            "only owners can delete a community".into(),
        ));
    }
    let txn = state.db.begin().await?;
    repo::delete_community(&txn, auth.scope().id).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn mine(
    state: &AppState,
    user: Uuid,
    cursor: Option<Cursor>,
    limit: u64,
) -> Result<Page<CommunityView>, AppError> {
    let after = cursor.map(|c| c.as_uuid()).transpose()?;
    let rows = repo::communities_of(&state.db, user, after, limit).await?;
    Ok(page(
        rows.into_iter().map(CommunityView::from).collect(),
        limit,
        |c| c.id.to_string(),
    ))
}

pub fn page<T>(items: Vec<T>, limit: u64, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = (items.len() as u64 == limit)
        .then(|| items.last().map(|i| Cursor::encode(&key(i))))
        .flatten();
    Page { items, next_cursor }
}

/// Joins a public community (idempotent); banned users are refused.
pub async fn join(
    state: &AppState,
    auth: &Authorized<perm::View>,
) -> Result<CommunityView, AppError> {
    let id = auth.scope().id;
    let community = load(state, id).await?;
    if community.visibility != "public" {
        return Err(AppError::Forbidden("this community is invite-only".into()));
    }
    add_member(state, id, auth.user()).await?;
    load(state, id).await.map(CommunityView::from)
}

/// The operator's way in (`guildhall admin make-owner`): makes `user` a member whatever the
/// visibility, as joining does (banned users are refused). True when they were not a member.
pub async fn admit(state: &AppState, community: Uuid, user: Uuid) -> Result<bool, AppError> {
    load(state, community).await?;
    add_member(state, community, user).await
}

/// The community, if it exists (operators name communities by id, unchecked).
pub async fn find(state: &AppState, id: Uuid) -> Result<Option<CommunityView>, AppError> {
    Ok(repo::community(&state.db, id)
        .await?
        .map(CommunityView::from))
}

async fn add_member(state: &AppState, community: Uuid, user: Uuid) -> Result<bool, AppError> {
    let txn = state.permissions.begin_as(user).await?;
    if repo::is_banned(&txn, community, user).await? {
        return Err(AppError::Forbidden(
            "you are banned from this community".into(),
        ));
    }
    if repo::add_member(&txn, community, user).await? {
        let version = Permissions::version_in(&txn, community).await?;
        txn.commit().await?;
        state.permissions.committed(community, version).await;
        member_event(state, community, None, user, true).await;
        return Ok(true);
    }
    Ok(false)
}

pub async fn create_invite(
    state: &AppState,
    auth: &Authorized<perm::Invite>,
    max_uses: Option<i32>,
    expires_in_s: Option<i64>,
) -> Result<InviteView, AppError> {
    let code: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    let row = repo::insert_invite(
        &state.db,
        &code,
        auth.scope().id,
        auth.user(),
        max_uses,
        expires_in_s,
    )
    .await?;
    Ok(row.into())
}

/// Accepts an invite: unknown, expired and used-up codes all look the same (404).
pub async fn accept_invite(
    state: &AppState,
    user: Uuid,
    code: &str,
) -> Result<CommunityView, AppError> {
    let txn = state.permissions.begin_as(user).await?;
    let invite = repo::use_invite(&txn, code)
        .await?
        .ok_or(AppError::NotFound)?;
    let community = invite.community_id;
    if repo::is_banned(&txn, community, user).await? {
        return Err(AppError::Forbidden(
            "you are banned from this community".into(),
        ));
    }
    if !repo::add_member(&txn, community, user).await? {
        // Already a member: do not spend the use.
        txn.rollback().await?;
        return load(state, community).await.map(CommunityView::from);
    }
    let version = Permissions::version_in(&txn, community).await?;
    txn.commit().await?;
    state.permissions.committed(community, version).await;
    member_event(state, community, None, user, true).await;
    load(state, community).await.map(CommunityView::from)
}

pub async fn members(
    state: &AppState,
    auth: &Authorized<perm::View>,
    cursor: Option<Cursor>,
    limit: u64,
) -> Result<Page<MemberView>, AppError> {
    let after = cursor.map(|c| c.as_uuid()).transpose()?;
    let rows = repo::members(&state.db, auth.scope().id, after, limit).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    let users = identity::service::users(&state.db, &ids).await?;
    let online = state.presence.online_among(&ids).await;
    let items = rows
        .into_iter()
        .filter_map(|row| {
            let user = users.iter().find(|u| u.id == row.user_id)?;
            Some(MemberView {
                user_id: row.user_id,
                username: user.username.clone(),
                display_name: user.display_name.clone(),
                joined_at: row.joined_at,
                online: online.contains(&row.user_id),
            })
        })
        .collect();
    Ok(page(items, limit, |m| m.user_id.to_string()))
}

/// Leaving (own id) needs no permission; removing someone else needs `kick`. Owners cannot be
/// kicked, and the last owner cannot leave.
pub async fn remove_member(
    state: &AppState,
    auth: &Authorized<perm::View>,
    user: Uuid,
) -> Result<(), AppError> {
    let community = auth.scope().id;
    if user != auth.user() {
        if !auth.perms().contains(permissions::Perm::Kick) {
            return Err(AppError::Forbidden(
                "requires the kick permission here".into(),
            ));
        }
        ensure_not_owner(state, community, user).await?;
    }
    let txn = state.permissions.begin_as(auth.user()).await?;
    let removed = repo::remove_member(&txn, community, user)
        .await
        .map_err(|e| crate::error::on_constraints(e, &[("last_owner", "user_id")], &[]))?;
    if !removed {
        return Err(AppError::NotFound);
    }
    state.permissions.finish(txn, community).await?;
    member_event(state, community, None, user, false).await;
    Ok(())
}

async fn ensure_not_owner(state: &AppState, community: Uuid, user: Uuid) -> Result<(), AppError> {
    let index = state.permissions.index(community).await?;
    if index.index().is_owner(user, community) {
        return Err(AppError::Forbidden(
            "owners cannot be kicked or banned; demote them first".into(),
        ));
    }
    Ok(())
}

pub async fn ban(
    state: &AppState,
    auth: &Authorized<perm::Ban>,
    user: Uuid,
    reason: &str,
) -> Result<(), AppError> {
    let community = auth.scope().id;
    if user == auth.user() {
        return Err(AppError::field("user_id", "you cannot ban yourself"));
    }
    if identity::service::user(&state.db, user).await.is_err() {
        return Err(AppError::NotFound);
    }
    ensure_not_owner(state, community, user).await?;
    let txn = state.permissions.begin_as(auth.user()).await?;
    repo::remove_member(&txn, community, user).await?;
    repo::ban(&txn, community, user, auth.user(), reason).await?;
    state.permissions.finish(txn, community).await?;
    member_event(state, community, None, user, false).await;
    Ok(())
}

pub async fn unban(
    state: &AppState,
    auth: &Authorized<perm::Ban>,
    user: Uuid,
) -> Result<(), AppError> {
    let txn = state.permissions.begin_as(auth.user()).await?;
    if !repo::unban(&txn, auth.scope().id, user).await? {
        return Err(AppError::NotFound);
    }
    txn.commit().await?;
    Ok(())
}

/// Ids of every community the user is a member of.
/// Every member's id (for features that address a community's members one by one).
pub async fn member_ids(state: &AppState, community: Uuid) -> Result<Vec<Uuid>, AppError> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let rows = repo::members(&state.db, community, after, 1000).await?;
        let full = rows.len() == 1000;
        ids.extend(rows.iter().map(|r| r.user_id));
        after = ids.last().copied();
        if !full {
            return Ok(ids);
        }
    }
}

pub async fn ids_of(state: &AppState, user: Uuid) -> Result<Vec<Uuid>, AppError> {
    Ok(repo::community_ids_of(&state.db, user).await?)
}

/// Membership changes, to the community's sessions or the room's (`crate::realtime::Event`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum MemberEvent {
    /// A user joined the community (no `room_id`) or was added to a private room.
    #[serde(rename = "member.joined")]
    #[schema(title = "MemberJoinedEvent")]
    Joined {
        community_id: Uuid,
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<Uuid>,
        user_id: Uuid,
    },
    /// A user left or was removed from the community (no `room_id`) or a private room.
    #[serde(rename = "member.left")]
    #[schema(title = "MemberLeftEvent")]
    Left {
        community_id: Uuid,
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<Uuid>,
        user_id: Uuid,
    },
}

impl crate::realtime::Event for MemberEvent {}

/// `member.joined` / `member.left` to the community's sessions (and to the joiner).
pub async fn member_event(
    state: &AppState,
    community: Uuid,
    room: Option<Uuid>,
    user: Uuid,
    joined: bool,
) {
    let event = if joined {
        MemberEvent::Joined {
            community_id: community,
            room_id: room,
            user_id: user,
        }
    } else {
        MemberEvent::Left {
            community_id: community,
            room_id: room,
            user_id: user,
        }
    };
    let audience = match room {
        Some(room) => Audience::Room(room),
        None => Audience::Communities(vec![community]),
    };
    state.bus.publish(audience, None, &event).await;
    // A joiner's sessions do not follow the community yet; they learn of it directly.
    if joined {
        state
            .bus
            .publish(Audience::Users(vec![user]), None, &event)
            .await;
    }
}
