use sea_orm::entity::prelude::*;

/// One Casbin policy line of a community (model: `src/permissions/model.conf`), read through the
/// Casbin adapter.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "casbin_rule")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = true)]
    pub id: i64,
    pub community_id: Uuid,
    /// `policy` for compiled policy lines, `member` for membership lines kept by trigger.
    pub origin: String,
    /// Evaluation order the model's priority effect relies on.
    pub position: i32,
    pub ptype: String,
    pub v0: String,
    pub v1: String,
    pub v2: String,
    pub v3: String,
    pub v4: String,
    pub v5: String,
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
