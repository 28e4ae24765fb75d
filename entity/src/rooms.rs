use sea_orm::entity::prelude::*;

/// A room of a community (`kind = 'room'`) or a direct-message room (`kind = 'dm'`, no
/// community). `path` is maintained by trigger from the room's group.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rooms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` exactly for DMs.
    pub community_id: Option<Uuid>,
    /// `None` for rooms directly under the community (and DMs).
    pub group_id: Option<Uuid>,
    /// `room` or `dm`.
    pub kind: String,
    pub name: String,
    pub topic: String,
    pub private: bool,
    /// Ancestor group ids (root first); empty for rooms directly under the community.
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Uuid))")]
    pub path: Vec<Uuid>,
    /// Sorted member ids of a DM: the same set of users always maps to the same room.
    #[sea_orm(unique)]
    pub dm_key: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::communities::Entity",
        from = "Column::CommunityId",
        to = "super::communities::Column::Id",
        on_delete = "Cascade"
    )]
    Community,
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::GroupId",
        to = "super::groups::Column::Id",
        on_delete = "Restrict"
    )]
    Group,
    #[sea_orm(has_many = "super::room_members::Entity")]
    Members,
}

impl Related<super::communities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Community.def()
    }
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Group.def()
    }
}

impl Related<super::room_members::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Members.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
