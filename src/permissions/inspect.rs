//! Looking at policy without changing it: effective sets, explain ("why can't X post here?"),
//! what-if simulation, and the audit log.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::adapter::load_lines;
use super::catalogue::{Perm, PermSet, PermissionName};
use super::engine;
use super::index::{CommunityIndex, RuleHit};
use super::lines::{Grant, Line, Override, PolicySnapshot, Subject, compile, role_name};
use super::repo;
use super::service::{Authorized, Permissions, Scope, perm};
use crate::error::AppError;
use crate::shared::Cursor;

#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    pub user_id: Uuid,
    pub scope_id: Uuid,
    pub permission: String,
    /// The final answer, gates included.
    pub allowed: bool,
    /// `banned`, `private_room` (not a member of this private room), or null.
    pub gate: Option<&'static str>,
    /// The matching rules in evaluation order; the first one decided (none: default deny).
    pub rules: Vec<RuleHit>,
    /// Casbin's own verdict on the stored lines (before gates): the engine of record agrees.
    pub casbin_allowed: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    #[schema(title = "GrantChange")]
    Grant { user_id: Uuid, role_id: Uuid },
    #[schema(title = "RevokeChange")]
    Revoke { user_id: Uuid, role_id: Uuid },
    #[schema(title = "SetOverrideChange")]
    SetOverride {
        #[schema(
            pattern = r"^(role|user):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        subject: String,
        #[schema(value_type = Vec<PermissionName>)]
        allow: Vec<String>,
        #[schema(value_type = Vec<PermissionName>)]
        deny: Vec<String>,
    },
    #[schema(title = "RemoveOverrideChange")]
    RemoveOverride {
        #[schema(
            pattern = r"^(role|user):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        subject: String,
    },
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct PermissionDiff {
    pub user_id: Uuid,
    pub scope_id: Uuid,
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub actor_id: Option<Uuid>,
    /// `<table>.<insert|update|delete>`, e.g. `role_grants.insert`.
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// `role:<uuid>` or `user:<uuid>`.
pub fn parse_subject(raw: &str) -> Result<Subject, AppError> {
    let invalid = || AppError::field("subject", "must be role:<role_id> or user:<user_id>");
    let (kind, id) = raw.split_once(':').ok_or_else(invalid)?;
    let id: Uuid = id.parse().map_err(|_| invalid())?;
    match kind {
        "role" => Ok(Subject::Role(id)),
        "user" => Ok(Subject::User(id)),
        _ => Err(invalid()),
    }
}

pub fn parse_perms(field: &str, names: &[String]) -> Result<PermSet, AppError> {
    PermSet::parse_names(names).map_err(|e| AppError::field(field, e))
}

impl Permissions {
    /// Why `target` may or may not use `permission` at the proof's scope.
    pub async fn explain(
        &self,
        viewer: &Authorized<perm::View>,
        target: Uuid,
        permission: Perm,
    ) -> Result<Explanation, AppError> {
        let asking_for_self = target == viewer.user();
        if !asking_for_self && !viewer.perms().contains(Perm::ManagePermissions) {
            return Err(AppError::Forbidden(
                "explaining another user's permissions requires manage_permissions".into(),
            ));
        }
        let community = viewer
            .community_id()
            .ok_or_else(|| AppError::field("scope", "direct messages have fixed permissions"))?;
        let scope = self
            .scope(target, viewer.scope().id)
            .await?
            .ok_or(AppError::NotFound)?;
        let index = self.index(community).await?;
        let rules = index.index().explain(target, &scope.path, permission);
        let (perms, _) = self.effective(target, &scope).await?;
        let enforcer = engine::from_db(self.db().clone(), community)
            .await
            .map_err(|e| anyhow::anyhow!("casbin: {e}"))?;
        let casbin_allowed = engine::decide(&enforcer, target, &scope.path, permission)
            .map_err(|e| anyhow::anyhow!("casbin: {e}"))?;
        let gate = gate_of(&scope, index.index(), target, community);
        Ok(Explanation {
            user_id: target,
            scope_id: scope.id,
            permission: permission.name().into(),
            allowed: perms.contains(permission),
            gate,
            rules,
            casbin_allowed,
        })
    }

    /// Who would gain or lose what, where (the scope and everything under it), if `changes`
    /// were applied at the proof's scope. Nothing is written.
    pub async fn simulate(
        &self,
        auth: &Authorized<perm::ManagePermissions>,
        changes: &[Change],
    ) -> Result<Vec<PermissionDiff>, AppError> {
        let community = auth
            .community_id()
            .ok_or_else(|| AppError::field("scope", "direct messages have fixed permissions"))?;
        let db = self.db();
        let before = repo::snapshot(db, community).await?;
        let mut after = before.clone();
        for (i, change) in changes.iter().enumerate() {
            apply(&mut after, auth.scope().id, change).map_err(|e| prefix_field(e, i))?;
        }
        let current_lines = load_lines(db, community).await?;
        let membership: Vec<Line> = current_lines
            .iter()
            .filter(|l| l.ptype == "g" && l.values.get(1) == Some(&role_name(before.member_role)))
            .cloned()
            .collect();
        let build = |snapshot: &PolicySnapshot| {
            let mut lines = compile(snapshot);
            lines.extend(membership.iter().cloned());
            CommunityIndex::compile(&lines)
        };
        let (old, new) = (build(&before), build(&after));
        let members = repo::member_ids(db, community).await?;
        let rooms: HashSet<(Uuid, Uuid)> = repo::room_memberships(db, community)
            .await?
            .into_iter()
            .collect();
        let mut diffs = Vec::new();
        for scope in repo::subtree(db, community, auth.scope().id).await? {
            for user in &members {
                let gate = |index: &CommunityIndex| {
                    let perms = index.effective(*user, &scope.path);
                    let hidden = scope.private
                        && !rooms.contains(&(scope.id, *user))
                        && !index.is_owner(*user, community)
                        && !perms.contains(Perm::ManageRooms);
                    if hidden { PermSet::EMPTY } else { perms }
                };
                let (was, will) = (gate(&old), gate(&new));
                if was != will {
                    diffs.push(PermissionDiff {
                        user_id: *user,
                        scope_id: scope.id,
                        gained: will
                            .minus(was)
                            .names()
                            .into_iter()
                            .map(str::to_owned)
                            .collect(),
                        lost: was
                            .minus(will)
                            .names()
                            .into_iter()
                            .map(str::to_owned)
                            .collect(),
                    });
                }
            }
        }
        Ok(diffs)
    }

    pub async fn audit_log(
        &self,
        auth: &Authorized<perm::ViewAuditLog>,
        cursor: Option<Cursor>,
        limit: u64,
    ) -> Result<AuditPage, AppError> {
        let community = auth.community_id().ok_or(AppError::NotFound)?;
        let before = cursor.map(|c| c.as_i64()).transpose()?;
        let rows = repo::audit_page(self.db(), community, before, limit).await?;
        let next_cursor = (rows.len() as u64 == limit)
            .then(|| rows.last().map(|r| Cursor::encode(&r.id.to_string())))
            .flatten();
        Ok(AuditPage {
            items: rows
                .into_iter()
                .map(|r| AuditEntry {
                    id: r.id.to_string(),
                    actor_id: r.actor_id,
                    action: r.action,
                    target: r.target,
                    before: r.before,
                    after: r.after,
                    created_at: r.created_at,
                })
                .collect(),
            next_cursor,
        })
    }
}

/// Which gate (applied after the rules) hid the scope from the user, if any.
fn gate_of(
    scope: &Scope,
    index: &CommunityIndex,
    user: Uuid,
    community: Uuid,
) -> Option<&'static str> {
    if scope.banned {
        return Some("banned");
    }
    let raw = index.effective(user, &scope.path);
    let hidden = scope.private
        && !scope.room_member
        && !index.is_owner(user, community)
        && !raw.contains(Perm::ManageRooms);
    hidden.then_some("private_room")
}

fn prefix_field(err: AppError, index: usize) -> AppError {
    match err {
        AppError::Validation(fields) => AppError::Validation(
            fields
                .into_iter()
                .map(|mut f| {
                    f.field = format!("changes[{index}].{}", f.field);
                    f
                })
                .collect(),
        ),
        other => other,
    }
}

fn apply(snapshot: &mut PolicySnapshot, scope: Uuid, change: &Change) -> Result<(), AppError> {
    let known_role = |role: Uuid| snapshot.roles.contains_key(&role) || role == snapshot.owner_role;
    match change {
        Change::Grant { user_id, role_id } | Change::Revoke { user_id, role_id } => {
            if !known_role(*role_id) {
                return Err(AppError::field("role_id", "no such role in this community"));
            }
            let grant = Grant {
                user: *user_id,
                role: *role_id,
                scope,
            };
            snapshot.grants.retain(|g| *g != grant);
            if matches!(change, Change::Grant { .. }) {
                snapshot.grants.push(grant);
            }
        }
        Change::SetOverride {
            subject,
            allow,
            deny,
        } => {
            let subject = parse_subject(subject)?;
            let (allow, deny) = (parse_perms("allow", allow)?, parse_perms("deny", deny)?);
            snapshot
                .overrides
                .retain(|o| !(o.scope == scope && o.subject == subject));
            snapshot.overrides.push(Override {
                scope,
                subject,
                allow,
                deny,
            });
        }
        Change::RemoveOverride { subject } => {
            let subject = parse_subject(subject)?;
            snapshot
                .overrides
                .retain(|o| !(o.scope == scope && o.subject == subject));
        }
    }
    Ok(())
}
