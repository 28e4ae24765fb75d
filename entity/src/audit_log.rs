use sea_orm::entity::prelude::*;

/// One change to roles, grants, overrides or bans, written by trigger.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = true)]
    pub id: i64,
    pub community_id: Uuid,
    /// Acting user from `SET LOCAL guildhall.actor`; `None` if unset (no foreign key).
    pub actor_id: Option<Uuid>,
    /// `<table>.<insert|update|delete>`, e.g. `roles.update`.
    pub action: String,
    /// Id of the changed row (`user_id` for bans).
    pub target: String,
    /// The row before the change; `None` on insert.
    #[sea_orm(column_type = "JsonBinary")]
    pub before: Option<Json>,
    /// The row after the change; `None` on delete.
    #[sea_orm(column_type = "JsonBinary")]
    pub after: Option<Json>,
    pub created_at: DateTimeUtc,
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
}

impl Related<super::communities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Community.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
