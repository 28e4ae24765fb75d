use sea_orm::entity::prelude::*;

/// A group inside a community; groups nest (up to `communities.max_depth`) and hold rooms.
/// `path` and `depth` are maintained by trigger on insert and move.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub community_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    /// Ancestor group ids from the top-level group down to this one (inclusive).
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Uuid))")]
    pub path: Vec<Uuid>,
    /// Nesting level, 1 for a top-level group.
    pub depth: i32,
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
        belongs_to = "Entity",
        from = "Column::ParentId",
        to = "Column::Id",
        on_delete = "Restrict"
    )]
    Parent,
    #[sea_orm(has_many = "super::rooms::Entity")]
    Rooms,
}

impl Related<super::communities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Community.def()
    }
}

impl Related<super::rooms::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Rooms.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
