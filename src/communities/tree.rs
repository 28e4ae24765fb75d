//! Groups, subgroups, rooms, private-room members, DMs and the visible tree.

use std::collections::{BTreeSet, HashMap};

use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::repo::{self, GroupRow, NewRoom, RoomRow};
use super::views::{CommunityView, GroupNode, GroupView, RoomView, Tree};
use crate::error::{AppError, on_constraints};
use crate::permissions::{self, Authorized, Candidate, Perm, perm};
use crate::state::AppState;

const TREE_CONSTRAINTS: &[(&str, &str)] = &[
    ("groups_no_cycle", "parent_id"),
    ("groups_max_depth", "parent_id"),
    ("groups_parent_same_community", "parent_id"),
    ("rooms_group_same_community", "group_id"),
];

fn tree_error(err: sea_orm::DbErr) -> AppError {
    on_constraints(err, &[], TREE_CONSTRAINTS)
}

/// The scope a new group or room goes under: a group of the same community, or the community.
async fn parent_scope<P: permissions::Permission>(
    state: &AppState,
    user: Uuid,
    community: Uuid,
    parent: Option<Uuid>,
    field: &str,
) -> Result<Authorized<P>, AppError> {
    let Some(group_id) = parent else {
        return state.permissions.require(user, community).await;
    };
    let not_found = || AppError::field(field, "no such group in this community");
    let scope = state
        .permissions
        .scope(user, group_id)
        .await?
        .ok_or_else(not_found)?;
    if scope.kind != permissions::ScopeKind::Group || scope.community_id != Some(community) {
        return Err(not_found());
    }
    state
        .permissions
        .require_at(user, scope)
        .await
        .map_err(|e| match e {
            AppError::NotFound => not_found(),
            other => other,
        })
}

pub async fn create_group(
    state: &AppState,
    auth: &Authorized<perm::View>,
    name: &str,
    parent: Option<Uuid>,
) -> Result<GroupView, AppError> {
    let community = auth.scope().id;
    let _allowed: Authorized<perm::CreateGroups> =
        parent_scope(state, auth.user(), community, parent, "parent_id").await?;
    let row = repo::insert_group(&state.db, community, parent, name)
        .await
        .map_err(tree_error)?;
    Ok(row.into())
}

pub async fn get_group(
    state: &AppState,
    auth: &Authorized<perm::View>,
) -> Result<GroupView, AppError> {
    group_row(state, auth.scope().id).await.map(GroupView::from)
}

async fn group_row(state: &AppState, id: Uuid) -> Result<GroupRow, AppError> {
    repo::group(&state.db, id).await?.ok_or(AppError::NotFound)
}

/// Renames and/or moves a group (`parent` = Some(None) moves it to the top level).
pub async fn update_group(
    state: &AppState,
    auth: &Authorized<perm::ManageGroups>,
    name: Option<String>,
    parent: Option<Option<Uuid>>,
) -> Result<GroupView, AppError> {
    let current = group_row(state, auth.scope().id).await?;
    let moving = parent.is_some_and(|p| p != current.parent_id);
    let new_parent = parent.unwrap_or(current.parent_id);
    if moving {
        let _allowed: Authorized<perm::CreateGroups> = parent_scope(
            state,
            auth.user(),
            current.community_id,
            new_parent,
            "parent_id",
        )
        .await?;
    }
    let txn = state.permissions.begin_as(auth.user()).await?;
    let row = repo::update_group(
        &txn,
        current.id,
        name.as_deref().unwrap_or(&current.name),
        new_parent,
    )
    .await
    .map_err(tree_error)?;
    // Depths changed: the evaluation order of policy lines follows them.
    let version = if moving {
        Some(permissions::recompile(&txn, current.community_id).await?)
    } else {
        None
    };
    txn.commit().await?;
    if let Some(version) = version {
        state
            .permissions
            .committed(current.community_id, version)
            .await;
    }
    Ok(row.into())
}

pub async fn delete_group(
    state: &AppState,
    auth: &Authorized<perm::ManageGroups>,
) -> Result<(), AppError> {
    let group = group_row(state, auth.scope().id).await?;
    let txn = state.permissions.begin_as(auth.user()).await?;
    if !repo::group_is_empty(&txn, group.id).await? {
        return Err(AppError::Conflict {
            detail: "the group still holds subgroups or rooms; move or delete them first".into(),
            fields: Vec::new(),
        });
    }
    repo::delete_group(&txn, group.id).await?;
    state.permissions.finish(txn, group.community_id).await?;
    Ok(())
}

pub struct NewRoomInput {
    pub name: String,
    pub topic: String,
    pub group_id: Option<Uuid>,
    pub private: bool,
}

pub async fn create_room(
    state: &AppState,
    auth: &Authorized<perm::View>,
    input: NewRoomInput,
) -> Result<RoomView, AppError> {
    let community = auth.scope().id;
    let _allowed: Authorized<perm::CreateRooms> =
        parent_scope(state, auth.user(), community, input.group_id, "group_id").await?;
    let txn = state.db.begin().await?;
    let row = repo::insert_room(
        &txn,
        NewRoom {
            community: Some(community),
            group: input.group_id,
            name: &input.name,
            topic: &input.topic,
            private: input.private,
            dm_key: None,
        },
    )
    .await
    .map_err(tree_error)?;
    if input.private {
        repo::add_room_member(&txn, row.id, auth.user()).await?;
    }
    txn.commit().await?;
    Ok(row.into())
}

pub async fn get_room(
    state: &AppState,
    auth: &Authorized<perm::View>,
) -> Result<RoomView, AppError> {
    let row = room_row(state, auth.scope().id).await?;
    room_view(state, row).await
}

async fn room_view(state: &AppState, row: RoomRow) -> Result<RoomView, AppError> {
    let is_dm = row.kind == "dm";
    let id = row.id;
    let mut view = RoomView::from(row);
    if is_dm {
        view.member_ids = repo::room_member_ids(&state.db, id).await?;
    }
    Ok(view)
}

async fn room_row(state: &AppState, id: Uuid) -> Result<RoomRow, AppError> {
    repo::room(&state.db, id).await?.ok_or(AppError::NotFound)
}

pub struct RoomPatch {
    pub name: Option<String>,
    pub topic: Option<String>,
    pub group_id: Option<Option<Uuid>>,
    pub private: Option<bool>,
}

pub async fn update_room(
    state: &AppState,
    auth: &Authorized<perm::ManageRooms>,
    patch: RoomPatch,
) -> Result<RoomView, AppError> {
    let mut room = room_row(state, auth.scope().id).await?;
    let Some(community) = room.community_id else {
        return Err(AppError::field(
            "room_id",
            "direct messages cannot be changed",
        ));
    };
    let moving = patch.group_id.is_some_and(|g| g != room.group_id);
    if moving {
        let _allowed: Authorized<perm::CreateRooms> = parent_scope(
            state,
            auth.user(),
            community,
            patch.group_id.flatten(),
            "group_id",
        )
        .await?;
        room.group_id = patch.group_id.flatten();
    }
    room.name = patch.name.unwrap_or(room.name);
    room.topic = patch.topic.unwrap_or(room.topic);
    room.private = patch.private.unwrap_or(room.private);
    let txn = state.permissions.begin_as(auth.user()).await?;
    let row = repo::update_room(&txn, &room).await.map_err(tree_error)?;
    let version = if moving {
        Some(permissions::recompile(&txn, community).await?)
    } else {
        None
    };
    txn.commit().await?;
    if let Some(version) = version {
        state.permissions.committed(community, version).await;
    }
    let view = room_view(state, row).await?;
    state
        .bus
        .publish(
            crate::realtime::Audience::Room(view.id),
            None,
            &RoomEvent::Updated { room: &view },
        )
        .await;
    Ok(view)
}

/// What a room's change publishes to its sessions (`crate::realtime::Event`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum RoomEvent<'a> {
    /// The room's name, topic, group or privacy changed.
    #[serde(rename = "room.updated")]
    #[schema(title = "RoomUpdatedEvent")]
    Updated { room: &'a RoomView },
}

impl crate::realtime::Event for RoomEvent<'_> {}

pub async fn delete_room(
    state: &AppState,
    auth: &Authorized<perm::ManageRooms>,
) -> Result<(), AppError> {
    let room = room_row(state, auth.scope().id).await?;
    let Some(community) = room.community_id else {
        return Err(AppError::field(
            "room_id",
            "direct messages cannot be deleted",
        ));
    };
    let txn = state.permissions.begin_as(auth.user()).await?;
    repo::delete_room(&txn, room.id).await?;
    state.permissions.finish(txn, community).await?;
    Ok(())
}

/// Adds or removes a private-room member. Removing oneself needs no permission.
pub async fn set_room_member(
    state: &AppState,
    auth: &Authorized<perm::View>,
    user: Uuid,
    add: bool,
) -> Result<(), AppError> {
    let room = room_row(state, auth.scope().id).await?;
    let Some(community) = room.community_id else {
        return Err(AppError::field("room_id", "DM membership is fixed"));
    };
    if !room.private {
        return Err(AppError::field(
            "room_id",
            "public rooms include every community member",
        ));
    }
    let leaving = !add && user == auth.user();
    if !leaving && !auth.perms().contains(Perm::ManageRooms) {
        return Err(AppError::Forbidden(
            "requires the manage_rooms permission here".into(),
        ));
    }
    if add {
        if !repo::is_member(&state.db, community, user).await? {
            return Err(AppError::field("user_id", "not a member of this community"));
        }
        repo::add_room_member(&state.db, room.id, user).await?;
    } else if !repo::remove_room_member(&state.db, room.id, user).await? {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// The DM room of exactly `{caller} ∪ others` (same set, same room). Everyone must share a
/// community with the caller.
pub async fn open_dm(
    state: &AppState,
    caller: Uuid,
    others: &[Uuid],
) -> Result<(bool, RoomView), AppError> {
    let mut members: BTreeSet<Uuid> = others.iter().copied().collect();
    members.remove(&caller);
    if members.is_empty() || members.len() > 9 {
        return Err(AppError::field("user_ids", "name 1-9 other users"));
    }
    let others: Vec<Uuid> = members.iter().copied().collect();
    if !repo::all_share_a_community(&state.db, caller, &others).await? {
        return Err(AppError::field(
            "user_ids",
            "you can message only users who share a community with you",
        ));
    }
    members.insert(caller);
    let key = members
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if let Some(existing) = repo::dm_by_key(&state.db, &key).await? {
        return Ok((false, room_view(state, existing).await?));
    }
    let txn = state.db.begin().await?;
    let new = NewRoom {
        community: None,
        group: None,
        name: "",
        topic: "",
        private: true,
        dm_key: Some(key.clone()),
    };
    let Ok(row) = repo::insert_room(&txn, new).await else {
        // Lost a race with an identical request: that room is the one.
        drop(txn);
        let existing = repo::dm_by_key(&state.db, &key)
            .await?
            .ok_or(AppError::NotFound)?;
        return Ok((false, room_view(state, existing).await?));
    };
    for member in &members {
        repo::add_room_member(&txn, row.id, *member).await?;
    }
    txn.commit().await?;
    Ok((true, room_view(state, row).await?))
}

/// Everything under the community the caller may see, nested. A group the caller cannot view
/// still appears when something inside it is visible, so the path to it stays navigable.
pub async fn tree(state: &AppState, auth: &Authorized<perm::View>) -> Result<Tree, AppError> {
    let community_id = auth.scope().id;
    let community = repo::community(&state.db, community_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let groups = repo::groups_of(&state.db, community_id).await?;
    let rooms = repo::rooms_of(&state.db, community_id).await?;
    let mine: BTreeSet<Uuid> = repo::private_rooms_of_user(&state.db, community_id, auth.user())
        .await?
        .into_iter()
        .collect();
    let mut candidates: Vec<Candidate> = groups
        .iter()
        .map(|g| Candidate {
            id: g.id,
            path: [vec![community_id], g.path.clone()].concat(),
            private: false,
            room_member: false,
        })
        .collect();
    candidates.extend(rooms.iter().map(|r| Candidate {
        id: r.id,
        path: [vec![community_id], r.path.clone(), vec![r.id]].concat(),
        private: r.private,
        room_member: mine.contains(&r.id),
    }));
    let visible: BTreeSet<Uuid> = state
        .permissions
        .visible(auth.user(), auth, &candidates)
        .await?
        .into_iter()
        .collect();
    Ok(assemble(community.into(), groups, rooms, &visible))
}

fn assemble(
    community: CommunityView,
    groups: Vec<GroupRow>,
    rooms: Vec<RoomRow>,
    visible: &BTreeSet<Uuid>,
) -> Tree {
    let mut rooms_by_group: HashMap<Option<Uuid>, Vec<RoomView>> = HashMap::new();
    for room in rooms.into_iter().filter(|r| visible.contains(&r.id)) {
        rooms_by_group
            .entry(room.group_id)
            .or_default()
            .push(room.into());
    }
    let mut children: HashMap<Option<Uuid>, Vec<GroupRow>> = HashMap::new();
    for group in groups {
        children.entry(group.parent_id).or_default().push(group);
    }
    fn build(
        parent: Option<Uuid>,
        children: &mut HashMap<Option<Uuid>, Vec<GroupRow>>,
        rooms: &mut HashMap<Option<Uuid>, Vec<RoomView>>,
        visible: &BTreeSet<Uuid>,
    ) -> Vec<GroupNode> {
        let mut nodes = Vec::new();
        for group in children.remove(&parent).unwrap_or_default() {
            let id = group.id;
            let sub = build(Some(id), children, rooms, visible);
            let own_rooms = rooms.remove(&Some(id)).unwrap_or_default();
            if visible.contains(&id) || !sub.is_empty() || !own_rooms.is_empty() {
                nodes.push(GroupNode {
                    group: group.into(),
                    groups: sub,
                    rooms: own_rooms,
                });
            }
        }
        nodes
    }
    let groups = build(None, &mut children, &mut rooms_by_group, visible);
    Tree {
        community,
        rooms: rooms_by_group.remove(&None).unwrap_or_default(),
        groups,
    }
}
