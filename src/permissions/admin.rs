//! Changing policy: built-in roles at community creation, custom roles, grants, overrides.
//! Every change runs in the caller's transaction, recompiles the community's Casbin lines and
//! bumps its policy version there, so lines, version and audit rows commit together.
//! Nobody can hand out a permission they do not hold themselves (no escalation).

use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::adapter::store_policy_lines;
use super::catalogue::{Builtin, PermSet};
use super::lines::{Subject, compile};
use super::repo::{self, RoleRow};
use super::service::{Authorized, Permissions, ScopeKind, perm};
use crate::error::{AppError, FieldError, on_constraints};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleView {
    pub id: Uuid,
    pub community_id: Uuid,
    pub name: String,
    pub permissions: Vec<String>,
    /// True for owner, admin, moderator and member.
    pub builtin: bool,
}

impl From<RoleRow> for RoleView {
    fn from(row: RoleRow) -> Self {
        Self {
            id: row.id,
            community_id: row.community_id,
            name: row.name,
            permissions: row.permissions,
            builtin: row.builtin.is_some(),
        }
    }
}

/// Compiles the community's lines and bumps its version; returns the new version.
pub async fn recompile(txn: &impl ConnectionTrait, community: Uuid) -> Result<i64, AppError> {
    // Serializes policy changes of one community: the snapshot below then includes every change
    // committed before ours, so concurrent writers never store lines missing each other's rules.
    repo::lock_community(txn, community).await?;
    let snapshot = repo::snapshot(txn, community).await?;
    store_policy_lines(txn, community, &compile(&snapshot)).await?;
    Ok(repo::bump_version(txn, community).await?)
}

/// Built-in roles and the creator's owner grant, inside the creating transaction. The caller
/// adds the membership afterwards (its trigger needs the member role) and then recompiles.
pub async fn setup_community(
    txn: &DatabaseTransaction,
    community: Uuid,
    owner: Uuid,
) -> Result<(), AppError> {
    let mut owner_role = None;
    for builtin in Builtin::ALL {
        let row = repo::insert_role(
            txn,
            community,
            builtin.name(),
            builtin.default_permissions(),
            Some(builtin.name()),
        )
        .await?;
        if builtin == Builtin::Owner {
            owner_role = Some(row.id);
        }
    }
    let owner_role = owner_role.expect("owner role created above");
    repo::insert_grant(
        txn,
        community,
        "community",
        community,
        owner,
        owner_role,
        Some(owner),
    )
    .await?;
    Ok(())
}

impl Permissions {
    /// Recompiles the community's lines inside `txn`, commits, and announces the change.
    pub async fn finish(&self, txn: DatabaseTransaction, community: Uuid) -> Result<(), AppError> {
        let version = recompile(&txn, community).await?;
        txn.commit().await?;
        self.committed(community, version).await;
        Ok(())
    }

    /// Opens a transaction naming `actor` for the audit trigger.
    pub async fn begin_as(&self, actor: Uuid) -> Result<DatabaseTransaction, AppError> {
        let txn = self.db().begin().await?;
        repo::set_actor(&txn, actor).await?;
        Ok(txn)
    }

    pub async fn roles(&self, auth: &Authorized<perm::View>) -> Result<Vec<RoleView>, AppError> {
        let community = community_of(auth)?;
        Ok(repo::roles(self.db(), community)
            .await?
            .into_iter()
            .map(RoleView::from)
            .collect())
    }

    pub async fn create_role(
        &self,
        auth: &Authorized<perm::ManageRoles>,
        name: &str,
        perms: PermSet,
    ) -> Result<RoleView, AppError> {
        let community = community_of(auth)?;
        let name = role_name(name)?;
        ensure_holds(auth.perms(), perms)?;
        let txn = self.begin_as(auth.user()).await?;
        let row = repo::insert_role(&txn, community, &name, perms, None)
            .await
            .map_err(name_taken)?;
        self.finish(txn, community).await?;
        Ok(row.into())
    }

    pub async fn update_role(
        &self,
        auth: &Authorized<perm::ManageRoles>,
        role_id: Uuid,
        name: Option<&str>,
        perms: Option<PermSet>,
    ) -> Result<RoleView, AppError> {
        let community = community_of(auth)?;
        let role = repo::role(self.db(), community, role_id)
            .await?
            .ok_or(AppError::NotFound)?;
        if role.builtin.as_deref() == Some("owner") {
            return Err(AppError::Conflict {
                detail: "the owner role always has every permission and cannot be changed".into(),
                fields: vec![FieldError::new("permissions", "owner role is fixed")],
            });
        }
        let current = PermSet::parse_names(&role.permissions).unwrap_or_default();
        let next = perms.unwrap_or(current);
        // Adding or removing a permission both require holding it.
        ensure_holds(auth.perms(), next.minus(current).union(current.minus(next)))?;
        let name = match name {
            Some(n) if role.builtin.is_none() => role_name(n)?,
            Some(n) if n != role.name => {
                return Err(AppError::field("name", "built-in roles keep their names"));
            }
            _ => role.name.clone(),
        };
        let txn = self.begin_as(auth.user()).await?;
        let row = repo::update_role(&txn, role_id, &name, next)
            .await
            .map_err(name_taken)?;
        self.finish(txn, community).await?;
        Ok(row.into())
    }

    pub async fn delete_role(
        &self,
        auth: &Authorized<perm::ManageRoles>,
        role_id: Uuid,
    ) -> Result<(), AppError> {
        let community = community_of(auth)?;
        let role = repo::role(self.db(), community, role_id)
            .await?
            .ok_or(AppError::NotFound)?;
        if role.builtin.is_some() {
            return Err(AppError::Conflict {
                detail: "built-in roles cannot be deleted".into(),
                fields: vec![FieldError::new("role_id", "built-in role")],
            });
        }
        ensure_holds(
            auth.perms(),
            PermSet::parse_names(&role.permissions).unwrap_or_default(),
        )?;
        let txn = self.begin_as(auth.user()).await?;
        repo::delete_role(&txn, role_id).await?;
        self.finish(txn, community).await?;
        Ok(())
    }

    /// Grants `role_id` to `user` at the proof's scope.
    pub async fn grant(
        &self,
        auth: &Authorized<perm::ManageRoles>,
        user: Uuid,
        role_id: Uuid,
    ) -> Result<(), AppError> {
        let (community, role) = self.grantable(auth, user, role_id).await?;
        let scope = auth.scope();
        let txn = self.begin_as(auth.user()).await?;
        repo::insert_grant(
            &txn,
            community,
            scope.kind.as_str(),
            scope.id,
            user,
            role.id,
            Some(auth.user()),
        )
        .await?;
        self.finish(txn, community).await?;
        Ok(())
    }

    pub async fn revoke(
        &self,
        auth: &Authorized<perm::ManageRoles>,
        user: Uuid,
        role_id: Uuid,
    ) -> Result<(), AppError> {
        let (community, role) = self.grantable(auth, user, role_id).await?;
        let txn = self.begin_as(auth.user()).await?;
        let removed = repo::delete_grant(&txn, auth.scope().id, user, role.id)
            .await
            .map_err(|e| on_constraints(e, &[("last_owner", "role_id")], &[]))?;
        if !removed {
            return Err(AppError::NotFound);
        }
        self.finish(txn, community).await?;
        Ok(())
    }

    /// The operator's ownership grant (`guildhall admin make-owner`), for when no owner can act
    /// (left, lost their account). Nobody acts through the API, so the audit row's actor and
    /// `granted_by` are NULL; otherwise it is `grant` of the owner role: at community scope, to
    /// a member, lines recompiled, version bumped and announced to every node. False when the
    /// user already was an owner.
    pub async fn grant_owner_as_operator(
        &self,
        community: Uuid,
        user: Uuid,
    ) -> Result<bool, AppError> {
        let owner_role = repo::roles(self.db(), community)
            .await?
            .into_iter()
            .find(|r| r.builtin.as_deref() == Some(Builtin::Owner.name()))
            .ok_or(AppError::NotFound)?;
        if !repo::is_member(self.db(), community, user).await? {
            return Err(AppError::field("user_id", "not a member of this community"));
        }
        if self
            .index(community)
            .await?
            .index()
            .is_owner(user, community)
        {
            return Ok(false);
        }
        let txn = self.db().begin().await?;
        repo::insert_grant(
            &txn,
            community,
            ScopeKind::Community.as_str(),
            community,
            user,
            owner_role.id,
            None,
        )
        .await?;
        self.finish(txn, community).await?;
        Ok(true)
    }

    /// Rules shared by grant and revoke: the role is of this community and not `member`
    /// (membership is joining); owner only at the community and only by owners; the actor holds
    /// every permission of the role; the user is a member.
    async fn grantable(
        &self,
        auth: &Authorized<perm::ManageRoles>,
        user: Uuid,
        role_id: Uuid,
    ) -> Result<(Uuid, RoleRow), AppError> {
        let community = community_of(auth)?;
        let role = repo::role(self.db(), community, role_id)
            .await?
            .ok_or(AppError::NotFound)?;
        match role.builtin.as_deref() {
            Some("member") => {
                return Err(AppError::field(
                    "role_id",
                    "the member role comes with membership; it is not granted",
                ));
            }
            Some("owner") if auth.scope().kind != ScopeKind::Community => {
                return Err(AppError::field(
                    "role_id",
                    "the owner role exists only at community level",
                ));
            }
            Some("owner") if !auth.is_owner() => {
                return Err(AppError::Forbidden(
                    "only owners can grant or revoke ownership".into(),
                ));
            }
            _ => {}
        }
        ensure_holds(
            auth.perms(),
            PermSet::parse_names(&role.permissions).unwrap_or_default(),
        )?;
        if !repo::is_member(self.db(), community, user).await? {
            return Err(AppError::field("user_id", "not a member of this community"));
        }
        Ok((community, role))
    }

    pub async fn set_override(
        &self,
        auth: &Authorized<perm::ManagePermissions>,
        subject: Subject,
        allow: PermSet,
        deny: PermSet,
    ) -> Result<(), AppError> {
        let community = self.overridable(auth, subject).await?;
        if allow.0 & deny.0 != 0 {
            return Err(AppError::field(
                "deny",
                "a permission cannot be both allowed and denied",
            ));
        }
        ensure_holds(auth.perms(), allow.union(deny))?;
        let scope = auth.scope();
        let txn = self.begin_as(auth.user()).await?;
        repo::upsert_override(
            &txn,
            community,
            scope.kind.as_str(),
            scope.id,
            subject,
            allow,
            deny,
            auth.user(),
        )
        .await?;
        self.finish(txn, community).await?;
        Ok(())
    }

    pub async fn remove_override(
        &self,
        auth: &Authorized<perm::ManagePermissions>,
        subject: Subject,
    ) -> Result<(), AppError> {
        let community = self.overridable(auth, subject).await?;
        let txn = self.begin_as(auth.user()).await?;
        if !repo::delete_override(&txn, auth.scope().id, subject).await? {
            return Err(AppError::NotFound);
        }
        self.finish(txn, community).await?;
        Ok(())
    }

    async fn overridable(
        &self,
        auth: &Authorized<perm::ManagePermissions>,
        subject: Subject,
    ) -> Result<Uuid, AppError> {
        let community = community_of(auth)?;
        match subject {
            Subject::Role(role_id) => {
                let role = repo::role(self.db(), community, role_id)
                    .await?
                    .ok_or(AppError::NotFound)?;
                if role.builtin.as_deref() == Some("owner") {
                    // A state conflict, not bad input: the request is well-formed.
                    return Err(AppError::Conflict {
                        detail: "the owner role always has every permission".into(),
                        fields: vec![FieldError::new("subject", "owner role is fixed")],
                    });
                }
            }
            Subject::User(user) => {
                if !repo::is_member(self.db(), community, user).await? {
                    return Err(AppError::NotFound);
                }
            }
        }
        Ok(community)
    }
}

fn community_of<P>(auth: &Authorized<P>) -> Result<Uuid, AppError> {
    auth.community_id()
        .ok_or_else(|| AppError::field("scope", "direct messages have no roles or overrides"))
}

fn ensure_holds(held: PermSet, wanted: PermSet) -> Result<(), AppError> {
    let missing = wanted.minus(held);
    if missing.is_empty() {
        return Ok(());
    }
    Err(AppError::Forbidden(format!(
        "you cannot hand out permissions you do not hold: {}",
        missing.names().join(", ")
    )))
}

fn role_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::field(
            "name",
            "must be 1-64 characters without control characters",
        ));
    }
    if Builtin::parse(&name.to_lowercase()).is_some() {
        return Err(AppError::field("name", "is a built-in role's name"));
    }
    Ok(name.to_owned())
}

fn name_taken(err: sea_orm::DbErr) -> AppError {
    match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => AppError::Conflict {
            detail: "a role with this name exists".into(),
            fields: vec![FieldError::new("name", "taken")],
        },
        _ => AppError::from(err),
    }
}
