use sea_orm::entity::prelude::*;

/// Permissions explicitly allowed or denied to a role or a user at a scope.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "overrides")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub community_id: Uuid,
    /// `community`, `group` or `room`.
    pub scope_kind: String,
    /// Id of the community, group or room named by `scope_kind` (no foreign key).
    pub scope_id: Uuid,
    /// `role` or `user`.
    pub subject_kind: String,
    /// Id of the role or user named by `subject_kind` (no foreign key).
    pub subject_id: Uuid,
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub allow: Vec<String>,
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub deny: Vec<String>,
    pub updated_by: Option<Uuid>,
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
        belongs_to = "super::users::Entity",
        from = "Column::UpdatedBy",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    UpdatedBy,
}

impl Related<super::communities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Community.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
