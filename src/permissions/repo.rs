//! Queries of the permissions module: roles, grants, overrides, compiled lines, the audit log,
//! and (read-only) the tree through the `scopes` view plus ban/room-membership facts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

use super::catalogue::PermSet;
use super::lines::{Grant, Override, PolicySnapshot, Subject};

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct ScopeRow {
    pub id: Uuid,
    pub kind: String,
    pub community_id: Option<Uuid>,
    pub path: Vec<Uuid>,
    pub private: bool,
    pub public: bool,
    pub banned: bool,
    pub room_member: bool,
}

pub async fn scope_for(
    db: &impl ConnectionTrait,
    user: Uuid,
    scope_id: Uuid,
) -> Result<Option<ScopeRow>, DbErr> {
    let sql = "SELECT s.id, s.kind, s.community_id, s.path, s.private, s.public, \
        EXISTS (SELECT 1 FROM bans b WHERE b.community_id = s.community_id AND b.user_id = $2) AS banned, \
        EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = s.id AND m.user_id = $2) AS room_member \
        FROM scopes s WHERE s.id = $1";
    ScopeRow::find_by_statement(stmt(sql, [scope_id.into(), user.into()]))
        .one(db)
        .await
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct RoleRow {
    pub id: Uuid,
    pub community_id: Uuid,
    pub name: String,
    pub permissions: Vec<String>,
    pub builtin: Option<String>,
}

const ROLE_COLUMNS: &str = "id, community_id, name, permissions, builtin";

pub async fn roles(db: &impl ConnectionTrait, community: Uuid) -> Result<Vec<RoleRow>, DbErr> {
    let sql = format!(
        "SELECT {ROLE_COLUMNS} FROM roles WHERE community_id = $1 \
         ORDER BY array_position(ARRAY['owner','admin','moderator','member'], builtin), created_at, id"
    );
    RoleRow::find_by_statement(stmt(&sql, [community.into()]))
        .all(db)
        .await
}

pub async fn role(
    db: &impl ConnectionTrait,
    community: Uuid,
    role: Uuid,
) -> Result<Option<RoleRow>, DbErr> {
    let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE community_id = $1 AND id = $2");
    RoleRow::find_by_statement(stmt(&sql, [community.into(), role.into()]))
        .one(db)
        .await
}

pub async fn insert_role(
    db: &impl ConnectionTrait,
    community: Uuid,
    name: &str,
    perms: PermSet,
    builtin: Option<&str>,
) -> Result<RoleRow, DbErr> {
    let sql = format!(
        "INSERT INTO roles (id, community_id, name, permissions, builtin) VALUES ($1, $2, $3, $4, $5) \
         RETURNING {ROLE_COLUMNS}"
    );
    let names: Vec<String> = perms.names().into_iter().map(str::to_owned).collect();
    let values = [
        Uuid::now_v7().into(),
        community.into(),
        name.into(),
        names.into(),
        builtin.map(str::to_owned).into(),
    ];
    RoleRow::find_by_statement(stmt(&sql, values))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)
}

pub async fn update_role(
    db: &impl ConnectionTrait,
    role: Uuid,
    name: &str,
    perms: PermSet,
) -> Result<RoleRow, DbErr> {
    let sql = format!(
        "UPDATE roles SET name = $2, permissions = $3 WHERE id = $1 RETURNING {ROLE_COLUMNS}"
    );
    let names: Vec<String> = perms.names().into_iter().map(str::to_owned).collect();
    RoleRow::find_by_statement(stmt(&sql, [role.into(), name.into(), names.into()]))
        .one(db)
        .await?
        .ok_or(DbErr::RecordNotUpdated)
}

pub async fn delete_role(db: &impl ConnectionTrait, role: Uuid) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "DELETE FROM overrides WHERE subject_kind = 'role' AND subject_id = $1",
        [role.into()],
    ))
    .await?;
    db.execute_raw(stmt("DELETE FROM roles WHERE id = $1", [role.into()]))
        .await?;
    Ok(())
}

pub async fn insert_grant(
    db: &impl ConnectionTrait,
    community: Uuid,
    scope_kind: &str,
    scope: Uuid,
    user: Uuid,
    role: Uuid,
    by: Option<Uuid>,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO role_grants (id, community_id, scope_kind, scope_id, user_id, role_id, granted_by) \
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope_id, user_id, role_id) DO NOTHING";
    let values = [
        Uuid::now_v7().into(),
        community.into(),
        scope_kind.into(),
        scope.into(),
        user.into(),
        role.into(),
        by.into(),
    ];
    db.execute_raw(stmt(sql, values)).await.map(|_| ())
}

/// True when a grant was removed.
pub async fn delete_grant(
    db: &impl ConnectionTrait,
    scope: Uuid,
    user: Uuid,
    role: Uuid,
) -> Result<bool, DbErr> {
    let sql = "DELETE FROM role_grants WHERE scope_id = $1 AND user_id = $2 AND role_id = $3";
    let result = db
        .execute_raw(stmt(sql, [scope.into(), user.into(), role.into()]))
        .await?;
    Ok(result.rows_affected() > 0)
}

#[allow(clippy::too_many_arguments)]
pub async fn upsert_override(
    db: &impl ConnectionTrait,
    community: Uuid,
    scope_kind: &str,
    scope: Uuid,
    subject: Subject,
    allow: PermSet,
    deny: PermSet,
    by: Uuid,
) -> Result<(), DbErr> {
    let (kind, id) = subject_parts(subject);
    let names =
        |set: PermSet| -> Vec<String> { set.names().into_iter().map(str::to_owned).collect() };
    let sql = "INSERT INTO overrides (id, community_id, scope_kind, scope_id, subject_kind, subject_id, allow, deny, updated_by) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
               ON CONFLICT (scope_id, subject_kind, subject_id) \
               DO UPDATE SET allow = EXCLUDED.allow, deny = EXCLUDED.deny, updated_by = EXCLUDED.updated_by";
    let values = [
        Uuid::now_v7().into(),
        community.into(),
        scope_kind.into(),
        scope.into(),
        kind.into(),
        id.into(),
        names(allow).into(),
        names(deny).into(),
        by.into(),
    ];
    db.execute_raw(stmt(sql, values)).await.map(|_| ())
}

pub async fn delete_override(
    db: &impl ConnectionTrait,
    scope: Uuid,
    subject: Subject,
) -> Result<bool, DbErr> {
    let (kind, id) = subject_parts(subject);
    let sql = "DELETE FROM overrides WHERE scope_id = $1 AND subject_kind = $2 AND subject_id = $3";
    let result = db
        .execute_raw(stmt(sql, [scope.into(), kind.into(), id.into()]))
        .await?;
    Ok(result.rows_affected() > 0)
}

pub fn subject_parts(subject: Subject) -> (&'static str, Uuid) {
    match subject {
        Subject::Role(id) => ("role", id),
        Subject::User(id) => ("user", id),
    }
}

#[derive(FromQueryResult)]
struct GrantRow {
    user_id: Uuid,
    role_id: Uuid,
    scope_id: Uuid,
}

#[derive(FromQueryResult)]
struct OverrideRow {
    scope_id: Uuid,
    subject_kind: String,
    subject_id: Uuid,
    allow: Vec<String>,
    deny: Vec<String>,
}

#[derive(FromQueryResult)]
struct DepthRow {
    id: Uuid,
    depth: i32,
}

#[derive(FromQueryResult)]
struct VisibilityRow {
    visibility: String,
}

/// Everything `lines::compile` needs, read inside the caller's transaction.
pub async fn snapshot(db: &impl ConnectionTrait, community: Uuid) -> Result<PolicySnapshot, DbErr> {
    let visibility = VisibilityRow::find_by_statement(stmt(
        "SELECT visibility FROM communities WHERE id = $1",
        [community.into()],
    ))
    .one(db)
    .await?
    .ok_or(DbErr::RecordNotFound("community".into()))?;
    let role_rows = roles(db, community).await?;
    let find = |name: &str| {
        role_rows
            .iter()
            .find(|r| r.builtin.as_deref() == Some(name))
            .map(|r| r.id)
    };
    let (owner_role, member_role) = (
        find("owner").unwrap_or_default(),
        find("member").unwrap_or_default(),
    );
    let grants = GrantRow::find_by_statement(stmt(
        "SELECT user_id, role_id, scope_id FROM role_grants WHERE community_id = $1",
        [community.into()],
    ))
    .all(db)
    .await?;
    let overrides = OverrideRow::find_by_statement(stmt(
        "SELECT scope_id, subject_kind, subject_id, allow, deny FROM overrides WHERE community_id = $1 ORDER BY id",
        [community.into()],
    ))
    .all(db)
    .await?;
    let depths = DepthRow::find_by_statement(stmt(
        "SELECT id, depth FROM scopes WHERE community_id = $1",
        [community.into()],
    ))
    .all(db)
    .await?;
    let perms = |names: &[String]| PermSet::parse_names(names).unwrap_or_default();
    Ok(PolicySnapshot {
        community_id: community,
        public: visibility.visibility == "public",
        owner_role,
        member_role,
        roles: role_rows
            .iter()
            .filter(|r| r.builtin.as_deref() != Some("owner"))
            .map(|r| (r.id, perms(&r.permissions)))
            .collect(),
        grants: grants
            .into_iter()
            .map(|g| Grant {
                user: g.user_id,
                role: g.role_id,
                scope: g.scope_id,
            })
            .collect(),
        overrides: overrides
            .into_iter()
            .map(|o| Override {
                scope: o.scope_id,
                subject: if o.subject_kind == "role" {
                    Subject::Role(o.subject_id)
                } else {
                    Subject::User(o.subject_id)
                },
                allow: perms(&o.allow),
                deny: perms(&o.deny),
            })
            .collect(),
        depths: depths
            .into_iter()
            .map(|d| (d.id, d.depth.unsigned_abs()))
            .collect::<HashMap<_, _>>(),
    })
}

#[derive(FromQueryResult)]
struct VersionRow {
    policy_version: i64,
}

/// The lock that serializes a community's policy changes. `NO KEY UPDATE`, not `UPDATE`: by the
/// time a change gets here it has already written rows whose foreign keys hold a `KEY SHARE`
/// lock on this row (the audit trigger's, grants', roles'), and so has every concurrent change;
/// `FOR UPDATE` conflicts with those, so two changes each waited for the other's key share and
/// Postgres aborted one as a deadlock. `NO KEY UPDATE` still excludes every other change (and
/// `bump_version`'s update takes the same lock) without conflicting with key shares.
pub async fn lock_community(db: &impl ConnectionTrait, community: Uuid) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "SELECT 1 FROM communities WHERE id = $1 FOR NO KEY UPDATE",
        [community.into()],
    ))
    .await
    .map(|_| ())
}

pub async fn bump_version(db: &impl ConnectionTrait, community: Uuid) -> Result<i64, DbErr> {
    let row = VersionRow::find_by_statement(stmt(
        "UPDATE communities SET policy_version = policy_version + 1 WHERE id = $1 RETURNING policy_version",
        [community.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map_or(0, |r| r.policy_version))
}

pub async fn version(db: &impl ConnectionTrait, community: Uuid) -> Result<i64, DbErr> {
    let row = VersionRow::find_by_statement(stmt(
        "SELECT policy_version FROM communities WHERE id = $1",
        [community.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map_or(0, |r| r.policy_version))
}

/// Names the acting user for the audit trigger, for the rest of the transaction.
pub async fn set_actor(db: &impl ConnectionTrait, user: Uuid) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "SELECT set_config('guildhall.actor', $1, true)",
        [user.to_string().into()],
    ))
    .await
    .map(|_| ())
}

#[derive(Debug, FromQueryResult)]
pub struct AuditRow {
    pub id: i64,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

pub async fn audit_page(
    db: &impl ConnectionTrait,
    community: Uuid,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<AuditRow>, DbErr> {
    let sql = "SELECT id, actor_id, action, target, before, after, created_at FROM audit_log \
               WHERE community_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3";
    let limit = i64::try_from(limit).unwrap_or(100);
    AuditRow::find_by_statement(stmt(
        sql,
        [community.into(), before_id.into(), limit.into()],
    ))
    .all(db)
    .await
}

#[derive(FromQueryResult)]
struct IdRow {
    id: Uuid,
}

pub async fn member_ids(db: &impl ConnectionTrait, community: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let rows = IdRow::find_by_statement(stmt(
        "SELECT user_id AS id FROM community_members WHERE community_id = $1 ORDER BY user_id",
        [community.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

pub async fn is_member(
    db: &impl ConnectionTrait,
    community: Uuid,
    user: Uuid,
) -> Result<bool, DbErr> {
    let row = IdRow::find_by_statement(stmt(
        "SELECT user_id AS id FROM community_members WHERE community_id = $1 AND user_id = $2",
        [community.into(), user.into()],
    ))
    .one(db)
    .await?;
    Ok(row.is_some())
}

#[derive(Debug, FromQueryResult)]
pub struct SubtreeScope {
    pub id: Uuid,
    pub path: Vec<Uuid>,
    pub private: bool,
}

/// The scope and everything under it.
pub async fn subtree(
    db: &impl ConnectionTrait,
    community: Uuid,
    scope: Uuid,
) -> Result<Vec<SubtreeScope>, DbErr> {
    let sql = "SELECT id, path, private FROM scopes WHERE community_id = $1 AND path @> ARRAY[$2]::uuid[] ORDER BY depth, id";
    SubtreeScope::find_by_statement(stmt(sql, [community.into(), scope.into()]))
        .all(db)
        .await
}

/// Room ids (of the subtree) each user is a private-room member of.
pub async fn room_memberships(
    db: &impl ConnectionTrait,
    community: Uuid,
) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        room_id: Uuid,
        user_id: Uuid,
    }
    let rows = Row::find_by_statement(stmt(
        "SELECT m.room_id, m.user_id FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE r.community_id = $1",
        [community.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.room_id, r.user_id)).collect())
}

#[derive(Debug, FromQueryResult)]
pub struct RoomScope {
    pub id: Uuid,
    pub community_id: Option<Uuid>,
    pub path: Vec<Uuid>,
    pub private: bool,
    pub room_member: bool,
}

/// Rooms the user is a member of: public rooms of their communities, private rooms and DMs they
/// were added to (before permission filtering).
pub async fn member_rooms(db: &impl ConnectionTrait, user: Uuid) -> Result<Vec<RoomScope>, DbErr> {
    let sql = "SELECT s.id, s.community_id, s.path, s.private, (rm.user_id IS NOT NULL) AS room_member                FROM scopes s                LEFT JOIN room_members rm ON rm.room_id = s.id AND rm.user_id = $1                WHERE s.kind IN ('room', 'dm') AND (                  (s.kind = 'dm' AND rm.user_id IS NOT NULL) OR                  (s.kind = 'room' AND EXISTS (SELECT 1 FROM community_members cm                     WHERE cm.community_id = s.community_id AND cm.user_id = $1)                     AND (NOT s.private OR rm.user_id IS NOT NULL)))                ORDER BY s.id";
    RoomScope::find_by_statement(stmt(sql, [user.into()]))
        .all(db)
        .await
}
