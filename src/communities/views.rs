//! Wire shapes of the community tree (PROTOCOL.md "Details that clients rely on").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::repo::{CommunityRow, GroupRow, InviteRow, RoomRow};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommunityView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `public` or `private`.
    pub visibility: String,
    pub member_count: i32,
    pub created_at: DateTime<Utc>,
}

impl From<CommunityRow> for CommunityView {
    fn from(row: CommunityRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            visibility: row.visibility,
            member_count: row.member_count,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupView {
    pub id: Uuid,
    pub community_id: Uuid,
    pub name: String,
    /// The enclosing group for subgroups; null for top-level groups.
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<GroupRow> for GroupView {
    fn from(row: GroupRow) -> Self {
        Self {
            id: row.id,
            community_id: row.community_id,
            name: row.name,
            parent_id: row.parent_id,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomView {
    pub id: Uuid,
    /// Null for DMs.
    pub community_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    /// `room` or `dm`.
    pub kind: String,
    pub name: String,
    pub topic: String,
    pub private: bool,
    /// Members of a DM (empty for community rooms).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub member_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<RoomRow> for RoomView {
    fn from(row: RoomRow) -> Self {
        Self {
            id: row.id,
            community_id: row.community_id,
            group_id: row.group_id,
            kind: row.kind,
            name: row.name,
            topic: row.topic,
            private: row.private,
            member_ids: Vec::new(),
            created_at: row.created_at,
        }
    }
}

/// A node of `GET /v1/communities/{id}/tree`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupNode {
    #[serde(flatten)]
    pub group: GroupView,
    #[schema(no_recursion)]
    pub groups: Vec<GroupNode>,
    pub rooms: Vec<RoomView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tree {
    pub community: CommunityView,
    /// Rooms directly under the community.
    pub rooms: Vec<RoomView>,
    pub groups: Vec<GroupNode>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub joined_at: DateTime<Utc>,
    /// Has a live session on any node now; `presence` events on `/v1/ws` carry later changes.
    pub online: bool,
}

/// One page of a cursor-paged list; the API answers with a named page type per item type
/// (`CommunityPage`, `MemberPage`) so the document has no generic, anonymous schemas.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A page of the caller's communities.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommunityPage {
    pub items: Vec<CommunityView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of a community's members.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<MemberView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<CommunityView>> for CommunityPage {
    fn from(page: Page<CommunityView>) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_cursor,
        }
    }
}

impl From<Page<MemberView>> for MemberPage {
    fn from(page: Page<MemberView>) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_cursor,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InviteView {
    pub code: String,
    pub community_id: Uuid,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<InviteRow> for InviteView {
    fn from(row: InviteRow) -> Self {
        Self {
            code: row.code,
            community_id: row.community_id,
            max_uses: row.max_uses,
            uses: row.uses,
            expires_at: row.expires_at,
            created_at: row.created_at,
        }
    }
}

/// Tells "absent" (keep) from `null` (clear) in PATCH bodies.
pub fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
