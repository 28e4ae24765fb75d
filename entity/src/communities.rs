use sea_orm::entity::prelude::*;

/// A community: the root of a tree of groups and rooms. `member_count` is kept by trigger.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "communities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `public` or `private`.
    pub visibility: String,
    pub created_by: Uuid,
    /// Number of `community_members` rows; maintained by trigger.
    pub member_count: i32,
    /// How deep groups may nest (1..=16).
    pub max_depth: i32,
    /// Bumped on every permission-relevant change; nodes drop compiled indexes older than it.
    pub policy_version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedBy",
        to = "super::users::Column::Id"
    )]
    Creator,
    #[sea_orm(has_many = "super::groups::Entity")]
    Groups,
    #[sea_orm(has_many = "super::rooms::Entity")]
    Rooms,
    #[sea_orm(has_many = "super::community_members::Entity")]
    Members,
    #[sea_orm(has_many = "super::roles::Entity")]
    Roles,
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Groups.def()
    }
}

impl Related<super::rooms::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Rooms.def()
    }
}

impl Related<super::community_members::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Members.def()
    }
}

impl Related<super::roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Roles.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
