//! Queries on `users` and `refresh_tokens`. Only `identity` touches these tables.

use chrono::{DateTime, Utc};
use entity::{refresh_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QuerySelect,
};
use uuid::Uuid;

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
}

pub async fn insert_user(
    db: &impl ConnectionTrait,
    new: NewUser<'_>,
) -> Result<users::Model, DbErr> {
    let now = Utc::now();
    users::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(new.username.to_owned()),
        display_name: Set(new.display_name.to_owned()),
        password_hash: Set(new.password_hash.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
}

pub async fn user_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find()
        .filter(users::Column::Username.eq(username))
        .one(db)
        .await
}

pub async fn user_by_id(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find_by_id(id).one(db).await
}

pub async fn users_by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<Vec<users::Model>, DbErr> {
    users::Entity::find()
        .filter(users::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await
}

pub async fn insert_refresh_token(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    family_id: Uuid,
    token_hash: Vec<u8>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    refresh_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family_id),
        token_hash: Set(token_hash),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Locks the row so two concurrent refreshes of one token cannot both succeed.
pub async fn refresh_token_for_update(
    db: &impl ConnectionTrait,
    token_hash: &[u8],
) -> Result<Option<refresh_tokens::Model>, DbErr> {
    refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(token_hash.to_vec()))
        .lock_exclusive()
        .one(db)
        .await
}

pub async fn refresh_token_by_hash(
    db: &impl ConnectionTrait,
    token_hash: &[u8],
) -> Result<Option<refresh_tokens::Model>, DbErr> {
    refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(token_hash.to_vec()))
        .one(db)
        .await
}

pub async fn mark_used(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(Utc::now()))
        .filter(refresh_tokens::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Revokes every token of a login session.
pub async fn revoke_family(db: &impl ConnectionTrait, family_id: Uuid) -> Result<(), DbErr> {
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_tokens::Column::FamilyId.eq(family_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .map(|_| ())
}

/// Revokes every live refresh token of the user; returns how many.
pub async fn revoke_user(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_tokens::Column::UserId.eq(user_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .map(|r| r.rows_affected)
}

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> sea_orm::Statement {
    sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}

/// Access tokens of the user issued before `not_before` are refused; its trigger notifies
/// every node (`guildhall_sessions`).
pub async fn set_token_cutoff(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    not_before: DateTime<Utc>,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO user_token_cutoffs (user_id, not_before) VALUES ($1, $2) \
               ON CONFLICT (user_id) DO UPDATE SET not_before = GREATEST(user_token_cutoffs.not_before, EXCLUDED.not_before)";
    db.execute_raw(stmt(sql, [user_id.into(), not_before.into()]))
        .await
        .map(|_| ())
}

#[derive(Debug, FromQueryResult)]
pub struct CutoffRow {
    pub user_id: Uuid,
    pub not_before: i64,
}

/// Cutoffs newer than `since` (older ones refuse only expired tokens).
pub async fn token_cutoffs_since(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> Result<Vec<CutoffRow>, DbErr> {
    let sql = "SELECT user_id, floor(extract(epoch FROM not_before))::bigint AS not_before \
               FROM user_token_cutoffs WHERE not_before >= $1";
    CutoffRow::find_by_statement(stmt(sql, [since.into()]))
        .all(db)
        .await
}
