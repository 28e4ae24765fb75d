//! Queries on the community tree, memberships, invites and bans.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use uuid::Uuid;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn exec(
    db: &impl ConnectionTrait,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<u64, DbErr> {
    Ok(db.execute_raw(stmt(sql, values)).await?.rows_affected())
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct CommunityRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub member_count: i32,
    pub created_at: DateTime<Utc>,
}

const COMMUNITY: &str = "id, name, description, visibility, member_count, created_at";

pub async fn insert_community(
    db: &impl ConnectionTrait,
    id: Uuid,
    name: &str,
    description: &str,
    visibility: &str,
    creator: Uuid,
    max_depth: u32,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO communities (id, name, description, visibility, created_by, max_depth) VALUES ($1, $2, $3, $4, $5, $6)";
    let depth = i32::try_from(max_depth).unwrap_or(8);
    exec(
        db,
        sql,
        [
            id.into(),
            name.into(),
            description.into(),
            visibility.into(),
            creator.into(),
            depth.into(),
        ],
    )
    .await?;
    Ok(())
}

pub async fn community(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<CommunityRow>, DbErr> {
    CommunityRow::find_by_statement(stmt(
        &format!("SELECT {COMMUNITY} FROM communities WHERE id = $1"),
        [id.into()],
    ))
    .one(db)
    .await
}

pub async fn update_community(
    db: &impl ConnectionTrait,
    id: Uuid,
    name: &str,
    description: &str,
    visibility: &str,
) -> Result<(), DbErr> {
    let sql = "UPDATE communities SET name = $2, description = $3, visibility = $4 WHERE id = $1";
    exec(
        db,
        sql,
        [
            id.into(),
            name.into(),
            description.into(),
            visibility.into(),
        ],
    )
    .await?;
    Ok(())
}

pub async fn delete_community(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    // One statement: groups, rooms and the rest cascade; group references are checked at its end.
    exec(db, "DELETE FROM communities WHERE id = $1", [id.into()]).await?;
    Ok(())
}

/// The user's communities, ordered by id, after `after`.
pub async fn communities_of(
    db: &impl ConnectionTrait,
    user: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<CommunityRow>, DbErr> {
    let sql = format!(
        "SELECT c.{} FROM communities c JOIN community_members m ON m.community_id = c.id \
         WHERE m.user_id = $1 AND ($2::uuid IS NULL OR c.id > $2) ORDER BY c.id LIMIT $3",
        COMMUNITY.replace(", ", ", c.")
    );
    CommunityRow::find_by_statement(stmt(&sql, [user.into(), after.into(), limit_value(limit)]))
        .all(db)
        .await
}

fn limit_value(limit: u64) -> Value {
    i64::try_from(limit).unwrap_or(100).into()
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct GroupRow {
    pub id: Uuid,
    pub community_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub path: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

const GROUP: &str = "id, community_id, parent_id, name, path, created_at";

pub async fn insert_group(
    db: &impl ConnectionTrait,
    community: Uuid,
    parent: Option<Uuid>,
    name: &str,
) -> Result<GroupRow, DbErr> {
    let sql = format!(
        "INSERT INTO groups (id, community_id, parent_id, name) VALUES ($1, $2, $3, $4) RETURNING {GROUP}"
    );
    GroupRow::find_by_statement(stmt(
        &sql,
        [
            Uuid::now_v7().into(),
            community.into(),
            parent.into(),
            name.into(),
        ],
    ))
    .one(db)
    .await?
    .ok_or(DbErr::RecordNotInserted)
}

pub async fn group(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<GroupRow>, DbErr> {
    GroupRow::find_by_statement(stmt(
        &format!("SELECT {GROUP} FROM groups WHERE id = $1"),
        [id.into()],
    ))
    .one(db)
    .await
}

pub async fn groups_of(db: &impl ConnectionTrait, community: Uuid) -> Result<Vec<GroupRow>, DbErr> {
    GroupRow::find_by_statement(stmt(
        &format!("SELECT {GROUP} FROM groups WHERE community_id = $1 ORDER BY depth, name, id"),
        [community.into()],
    ))
    .all(db)
    .await
}

pub async fn update_group(
    db: &impl ConnectionTrait,
    id: Uuid,
    name: &str,
    parent: Option<Uuid>,
) -> Result<GroupRow, DbErr> {
    let sql =
        format!("UPDATE groups SET name = $2, parent_id = $3 WHERE id = $1 RETURNING {GROUP}");
    GroupRow::find_by_statement(stmt(&sql, [id.into(), name.into(), parent.into()]))
        .one(db)
        .await?
        .ok_or(DbErr::RecordNotUpdated)
}

pub async fn group_is_empty(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        empty: bool,
    }
    let sql = "SELECT NOT EXISTS (SELECT 1 FROM groups WHERE parent_id = $1) \
               AND NOT EXISTS (SELECT 1 FROM rooms WHERE group_id = $1) AS empty";
    Ok(Row::find_by_statement(stmt(sql, [id.into()]))
        .one(db)
        .await?
        .is_some_and(|r| r.empty))
}

pub async fn delete_group(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    exec(db, "DELETE FROM groups WHERE id = $1", [id.into()])
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct RoomRow {
    pub id: Uuid,
    pub community_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub kind: String,
    pub name: String,
    pub topic: String,
    pub private: bool,
    pub path: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

const ROOM: &str = "id, community_id, group_id, kind, name, topic, private, path, created_at";

pub struct NewRoom<'a> {
    pub community: Option<Uuid>,
    pub group: Option<Uuid>,
    pub name: &'a str,
    pub topic: &'a str,
    pub private: bool,
    pub dm_key: Option<String>,
}

pub async fn insert_room(db: &impl ConnectionTrait, new: NewRoom<'_>) -> Result<RoomRow, DbErr> {
    let kind = if new.dm_key.is_some() { "dm" } else { "room" };
    let sql = format!(
        "INSERT INTO rooms (id, community_id, group_id, kind, name, topic, private, dm_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dm_key) DO NOTHING RETURNING {ROOM}"
    );
    let values = [
        Uuid::now_v7().into(),
        new.community.into(),
        new.group.into(),
        kind.into(),
        new.name.into(),
        new.topic.into(),
        new.private.into(),
        new.dm_key.into(),
    ];
    RoomRow::find_by_statement(stmt(&sql, values))
        .one(db)
        .await?
        .ok_or(DbErr::RecordNotInserted)
}

pub async fn room(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<RoomRow>, DbErr> {
    RoomRow::find_by_statement(stmt(
        &format!("SELECT {ROOM} FROM rooms WHERE id = $1"),
        [id.into()],
    ))
    .one(db)
    .await
}

pub async fn dm_by_key(db: &impl ConnectionTrait, key: &str) -> Result<Option<RoomRow>, DbErr> {
    RoomRow::find_by_statement(stmt(
        &format!("SELECT {ROOM} FROM rooms WHERE dm_key = $1"),
        [key.into()],
    ))
    .one(db)
    .await
}

pub async fn rooms_of(db: &impl ConnectionTrait, community: Uuid) -> Result<Vec<RoomRow>, DbErr> {
    RoomRow::find_by_statement(stmt(
        &format!("SELECT {ROOM} FROM rooms WHERE community_id = $1 ORDER BY name, id"),
        [community.into()],
    ))
    .all(db)
    .await
}

pub async fn update_room(db: &impl ConnectionTrait, room: &RoomRow) -> Result<RoomRow, DbErr> {
    let sql = format!(
        "UPDATE rooms SET name = $2, topic = $3, group_id = $4, private = $5 WHERE id = $1 RETURNING {ROOM}"
    );
    let values = [
        room.id.into(),
        room.name.clone().into(),
        room.topic.clone().into(),
        room.group_id.into(),
        room.private.into(),
    ];
    RoomRow::find_by_statement(stmt(&sql, values))
        .one(db)
        .await?
        .ok_or(DbErr::RecordNotUpdated)
}

pub async fn delete_room(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    exec(db, "DELETE FROM rooms WHERE id = $1", [id.into()])
        .await
        .map(|_| ())
}

pub async fn add_room_member(
    db: &impl ConnectionTrait,
    room: Uuid,
    user: Uuid,
) -> Result<bool, DbErr> {
    let sql = "INSERT INTO room_members (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    Ok(exec(db, sql, [room.into(), user.into()]).await? > 0)
}

pub async fn remove_room_member(
    db: &impl ConnectionTrait,
    room: Uuid,
    user: Uuid,
) -> Result<bool, DbErr> {
    Ok(exec(
        db,
        "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2",
        [room.into(), user.into()],
    )
    .await?
        > 0)
}

#[derive(FromQueryResult)]
struct IdRow {
    id: Uuid,
}

pub async fn room_member_ids(db: &impl ConnectionTrait, room: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let rows = IdRow::find_by_statement(stmt(
        "SELECT user_id AS id FROM room_members WHERE room_id = $1 ORDER BY added_at, user_id",
        [room.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Private rooms of `community` that `user` is a member of.
pub async fn private_rooms_of_user(
    db: &impl ConnectionTrait,
    community: Uuid,
    user: Uuid,
) -> Result<Vec<Uuid>, DbErr> {
    let rows = IdRow::find_by_statement(stmt(
        "SELECT m.room_id AS id FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE r.community_id = $1 AND m.user_id = $2",
        [community.into(), user.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

pub async fn add_member(
    db: &impl ConnectionTrait,
    community: Uuid,
    user: Uuid,
) -> Result<bool, DbErr> {
    let sql = "INSERT INTO community_members (community_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    Ok(exec(db, sql, [community.into(), user.into()]).await? > 0)
}

pub async fn remove_member(
    db: &impl ConnectionTrait,
    community: Uuid,
    user: Uuid,
) -> Result<bool, DbErr> {
    Ok(exec(
        db,
        "DELETE FROM community_members WHERE community_id = $1 AND user_id = $2",
        [community.into(), user.into()],
    )
    .await?
        > 0)
}

pub async fn is_member(
    db: &impl ConnectionTrait,
    community: Uuid,
    user: Uuid,
) -> Result<bool, DbErr> {
    let sql =
        "SELECT user_id AS id FROM community_members WHERE community_id = $1 AND user_id = $2";
    Ok(
        IdRow::find_by_statement(stmt(sql, [community.into(), user.into()]))
            .one(db)
            .await?
            .is_some(),
    )
}

#[derive(Debug, FromQueryResult)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub joined_at: DateTime<Utc>,
}

pub async fn members(
    db: &impl ConnectionTrait,
    community: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<MemberRow>, DbErr> {
    let sql = "SELECT user_id, joined_at FROM community_members WHERE community_id = $1 \
               AND ($2::uuid IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3";
    MemberRow::find_by_statement(stmt(
        sql,
        [community.into(), after.into(), limit_value(limit)],
    ))
    .all(db)
    .await
}

/// Whether every one of `others` shares at least one community with `user`.
pub async fn all_share_a_community(
    db: &impl ConnectionTrait,
    user: Uuid,
    others: &[Uuid],
) -> Result<bool, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        n: i64,
    }
    let sql = "SELECT count(DISTINCT o.user_id) AS n FROM community_members o \
               JOIN community_members me ON me.community_id = o.community_id AND me.user_id = $1 \
               WHERE o.user_id = ANY($2)";
    let n = Row::find_by_statement(stmt(sql, [user.into(), others.to_vec().into()]))
        .one(db)
        .await?
        .map_or(0, |r| r.n);
    Ok(usize::try_from(n).unwrap_or(0) == others.len())
}

pub async fn is_banned(
    db: &impl ConnectionTrait,
    community: Uuid,
    user: Uuid,
) -> Result<bool, DbErr> {
    let sql = "SELECT user_id AS id FROM bans WHERE community_id = $1 AND user_id = $2";
    Ok(
        IdRow::find_by_statement(stmt(sql, [community.into(), user.into()]))
            .one(db)
            .await?
            .is_some(),
    )
}

pub async fn ban(
    db: &impl ConnectionTrait,
    community: Uuid,
    user: Uuid,
    by: Uuid,
    reason: &str,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO bans (community_id, user_id, banned_by, reason) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (community_id, user_id) DO UPDATE SET reason = EXCLUDED.reason";
    exec(
        db,
        sql,
        [community.into(), user.into(), by.into(), reason.into()],
    )
    .await
    .map(|_| ())
}

pub async fn unban(db: &impl ConnectionTrait, community: Uuid, user: Uuid) -> Result<bool, DbErr> {
    Ok(exec(
        db,
        "DELETE FROM bans WHERE community_id = $1 AND user_id = $2",
        [community.into(), user.into()],
    )
    .await?
        > 0)
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct InviteRow {
    pub code: String,
    pub community_id: Uuid,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const INVITE: &str = "code, community_id, max_uses, uses, expires_at, created_at";

pub async fn insert_invite(
    db: &impl ConnectionTrait,
    code: &str,
    community: Uuid,
    by: Uuid,
    max_uses: Option<i32>,
    expires_in_s: Option<i64>,
) -> Result<InviteRow, DbErr> {
    let sql = format!(
        "INSERT INTO invites (code, community_id, created_by, max_uses, expires_at) \
         VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint IS NULL THEN NULL ELSE now() + make_interval(secs => $5::bigint) END) \
         RETURNING {INVITE}"
    );
    InviteRow::find_by_statement(stmt(
        &sql,
        [
            code.into(),
            community.into(),
            by.into(),
            max_uses.into(),
            expires_in_s.into(),
        ],
    ))
    .one(db)
    .await?
    .ok_or(DbErr::RecordNotInserted)
}

/// Spends one use of a live invite; `None` when unknown, expired or used up.
pub async fn use_invite(db: &impl ConnectionTrait, code: &str) -> Result<Option<InviteRow>, DbErr> {
    let sql = format!(
        "UPDATE invites SET uses = uses + 1 WHERE code = $1 AND (expires_at IS NULL OR expires_at > now()) \
         AND (max_uses IS NULL OR uses < max_uses) RETURNING {INVITE}"
    );
    InviteRow::find_by_statement(stmt(&sql, [code.into()]))
        .one(db)
        .await
}

pub async fn community_ids_of(db: &impl ConnectionTrait, user: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let rows = IdRow::find_by_statement(stmt(
        "SELECT community_id AS id FROM community_members WHERE user_id = $1 ORDER BY community_id",
        [user.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
