//! HTTP handlers of the permissions API. Scoped endpoints exist for communities, groups and
//! rooms alike; a macro stamps out the three variants so each has its own documented path.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::admin::RoleView;
use super::catalogue::{Perm, PermissionInfo, PermissionName, catalogue};
use super::index::RuleHit;
use super::inspect::{AuditPage, Change, Explanation, PermissionDiff, parse_perms, parse_subject};
use super::service::{Authorized, Permission, ScopeKind, perm};
use crate::error::{AppError, Problem};
use crate::extract::{Json, Path, Query};
use crate::identity::AuthUser;
use crate::shared::PageParams;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleRequest {
    /// 1-64 characters, not a built-in role's name.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[schema(value_type = Vec<PermissionName>)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RolePatch {
    /// 1-64 characters, not a built-in role's name.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<PermissionName>>)]
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideRequest {
    #[serde(default)]
    #[schema(value_type = Vec<PermissionName>)]
    pub allow: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<PermissionName>)]
    pub deny: Vec<String>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct EffectivePermissions {
    pub scope_id: Uuid,
    pub permissions: Vec<String>,
    pub owner: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExplainQuery {
    /// Whose decision to explain; default the caller.
    pub user_id: Option<Uuid>,
    #[param(value_type = PermissionName)]
    pub permission: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SimulateRequest {
    pub changes: Vec<Change>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SimulateResponse {
    pub changes: Vec<PermissionDiff>,
}

/// The catalogue of permission names.
#[utoipa::path(get, path = "/v1/permissions", tag = "permissions",
    responses((status = 200, description = "Every permission", body = [PermissionInfo])))]
pub async fn list_permissions() -> Json<Vec<PermissionInfo>> {
    Json(catalogue())
}

async fn at<P: Permission>(
    state: &AppState,
    auth: AuthUser,
    id: Uuid,
    kind: ScopeKind,
) -> Result<Authorized<P>, AppError> {
    state.permissions.require_kind(auth.user_id, id, kind).await
}

/// Roles of a community (built-in first).
#[utoipa::path(get, path = "/v1/communities/{community_id}/roles", tag = "permissions", security(("bearer" = [])),
    params(("community_id" = Uuid, Path)),
    responses((status = 200, body = [RoleView]), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_roles(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(community_id): Path<Uuid>,
) -> Result<Json<Vec<RoleView>>, AppError> {
    let proof = at::<perm::View>(&state, auth, community_id, ScopeKind::Community).await?;
    state.permissions.roles(&proof).await.map(Json)
}

/// Create a custom role (only with permissions the caller holds).
#[utoipa::path(post, path = "/v1/communities/{community_id}/roles", tag = "permissions", security(("bearer" = [])),
    params(("community_id" = Uuid, Path)), request_body = RoleRequest,
    responses((status = 201, body = RoleView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_role(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(community_id): Path<Uuid>,
    Json(body): Json<RoleRequest>,
) -> Result<(StatusCode, Json<RoleView>), AppError> {
    let perms = parse_perms("permissions", &body.permissions)?;
    let proof = at::<perm::ManageRoles>(&state, auth, community_id, ScopeKind::Community).await?;
    let role = state
        .permissions
        .create_role(&proof, &body.name, perms)
        .await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// Rename a role or change its permissions.
#[utoipa::path(patch, path = "/v1/communities/{community_id}/roles/{role_id}", tag = "permissions", security(("bearer" = [])),
    params(("community_id" = Uuid, Path), ("role_id" = Uuid, Path)), request_body = RolePatch,
    responses((status = 200, body = RoleView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_role(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((community_id, role_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<RolePatch>,
) -> Result<Json<RoleView>, AppError> {
    let perms = body
        .permissions
        .as_deref()
        .map(|p| parse_perms("permissions", p))
        .transpose()?;
    let proof = at::<perm::ManageRoles>(&state, auth, community_id, ScopeKind::Community).await?;
    state
        .permissions
        .update_role(&proof, role_id, body.name.as_deref(), perms)
        .await
        .map(Json)
}

/// Delete a custom role (its grants and overrides go with it).
#[utoipa::path(delete, path = "/v1/communities/{community_id}/roles/{role_id}", tag = "permissions", security(("bearer" = [])),
    params(("community_id" = Uuid, Path), ("role_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_role(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((community_id, role_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::ManageRoles>(&state, auth, community_id, ScopeKind::Community).await?;
    state.permissions.delete_role(&proof, role_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log of role, grant, override, ban and ownership changes (newest first).
#[utoipa::path(get, operation_id = "get_audit_log", path = "/v1/communities/{community_id}/audit-log", tag = "permissions", security(("bearer" = [])),
    params(("community_id" = Uuid, Path), PageParams),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn audit_log(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(community_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> Result<Json<AuditPage>, AppError> {
    let (limit, cursor) = (page.limit()?, page.cursor()?);
    let proof = at::<perm::ViewAuditLog>(&state, auth, community_id, ScopeKind::Community).await?;
    state
        .permissions
        .audit_log(&proof, cursor, limit)
        .await
        .map(Json)
}

async fn grant_at(
    state: &AppState,
    auth: AuthUser,
    kind: ScopeKind,
    ids: (Uuid, Uuid, Uuid),
    grant: bool,
) -> Result<StatusCode, AppError> {
    let (scope, user, role) = ids;
    let proof = at::<perm::ManageRoles>(state, auth, scope, kind).await?;
    if grant {
        state.permissions.grant(&proof, user, role).await?;
    } else {
        state.permissions.revoke(&proof, user, role).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn override_at(
    state: &AppState,
    auth: AuthUser,
    kind: ScopeKind,
    scope: Uuid,
    subject: &str,
    body: Option<OverrideRequest>,
) -> Result<StatusCode, AppError> {
    let subject = parse_subject(subject)?;
    let proof = at::<perm::ManagePermissions>(state, auth, scope, kind).await?;
    match body {
        Some(body) => {
            let (allow, deny) = (
                parse_perms("allow", &body.allow)?,
                parse_perms("deny", &body.deny)?,
            );
            state
                .permissions
                .set_override(&proof, subject, allow, deny)
                .await?;
        }
        None => state.permissions.remove_override(&proof, subject).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn me_at(
    state: &AppState,
    auth: AuthUser,
    kind: ScopeKind,
    scope: Uuid,
) -> Result<Json<EffectivePermissions>, AppError> {
    let proof = at::<perm::View>(state, auth, scope, kind).await?;
    Ok(Json(EffectivePermissions {
        scope_id: scope,
        permissions: proof
            .perms()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        owner: proof.is_owner(),
    }))
}

async fn explain_at(
    state: &AppState,
    auth: AuthUser,
    kind: ScopeKind,
    scope: Uuid,
    query: ExplainQuery,
) -> Result<Json<Explanation>, AppError> {
    let permission = Perm::parse(&query.permission)
        .ok_or_else(|| AppError::field("permission", "unknown permission"))?;
    let target = query.user_id.unwrap_or(auth.user_id);
    let proof = at::<perm::View>(state, auth, scope, kind).await?;
    state
        .permissions
        .explain(&proof, target, permission)
        .await
        .map(Json)
}

async fn simulate_at(
    state: &AppState,
    auth: AuthUser,
    kind: ScopeKind,
    scope: Uuid,
    body: SimulateRequest,
) -> Result<Json<SimulateResponse>, AppError> {
    let proof = at::<perm::ManagePermissions>(state, auth, scope, kind).await?;
    let changes = state.permissions.simulate(&proof, &body.changes).await?;
    Ok(Json(SimulateResponse { changes }))
}

macro_rules! scoped_endpoints {
    ($module:ident, $kind:expr, $id:literal,
     grant: $grant_path:literal, overrides: $override_path:literal, me: $me_path:literal,
     explain: $explain_path:literal, simulate: $simulate_path:literal) => {
        pub mod $module {
            use super::*;

            /// Grant a role to a member at this scope (only roles whose permissions the caller holds).
            #[utoipa::path(put, operation_id = concat!("grant_", stringify!($module), "_role"), path = $grant_path, tag = "permissions", security(("bearer" = [])),
                params(($id = Uuid, Path), ("user_id" = Uuid, Path), ("role_id" = Uuid, Path)),
                responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
                    (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn grant(State(state): State<AppState>, auth: AuthUser, Path(ids): Path<(Uuid, Uuid, Uuid)>) -> Result<StatusCode, AppError> {
                grant_at(&state, auth, $kind, ids, true).await
            }

            /// Revoke a role grant at this scope (the last owner cannot be demoted: 409).
            #[utoipa::path(delete, operation_id = concat!("revoke_", stringify!($module), "_role"), path = $grant_path, tag = "permissions", security(("bearer" = [])),
                params(($id = Uuid, Path), ("user_id" = Uuid, Path), ("role_id" = Uuid, Path)),
                responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
                    (status = 409, body = Problem, content_type = "application/problem+json")))]
            pub async fn revoke(State(state): State<AppState>, auth: AuthUser, Path(ids): Path<(Uuid, Uuid, Uuid)>) -> Result<StatusCode, AppError> {
                grant_at(&state, auth, $kind, ids, false).await
            }

            /// Set the allow/deny override of a role (`role:<id>`) or a user (`user:<id>`) here.
            #[utoipa::path(put, operation_id = concat!("set_", stringify!($module), "_override"), path = $override_path, tag = "permissions", security(("bearer" = [])),
                params(($id = Uuid, Path), ("subject" = String, Path, description = "role:<role_id> or user:<user_id>", pattern = r"^(role|user):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
                request_body = OverrideRequest,
                responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
                    (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
                    (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn set_override(State(state): State<AppState>, auth: AuthUser, Path((id, subject)): Path<(Uuid, String)>, Json(body): Json<OverrideRequest>) -> Result<StatusCode, AppError> {
                override_at(&state, auth, $kind, id, &subject, Some(body)).await
            }

            /// Remove an override.
            #[utoipa::path(delete, operation_id = concat!("remove_", stringify!($module), "_override"), path = $override_path, tag = "permissions", security(("bearer" = [])),
                params(($id = Uuid, Path), ("subject" = String, Path, description = "role:<role_id> or user:<user_id>", pattern = r"^(role|user):[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
                responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
                    (status = 409, body = Problem, content_type = "application/problem+json")))]
            pub async fn remove_override(State(state): State<AppState>, auth: AuthUser, Path((id, subject)): Path<(Uuid, String)>) -> Result<StatusCode, AppError> {
                override_at(&state, auth, $kind, id, &subject, None).await
            }

            /// The caller's effective permissions here.
            #[utoipa::path(get, operation_id = concat!("get_my_", stringify!($module), "_permissions"), path = $me_path, tag = "permissions", security(("bearer" = [])),
                params(($id = Uuid, Path)),
                responses((status = 200, body = EffectivePermissions), (status = 404, body = Problem, content_type = "application/problem+json")))]
            pub async fn me(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> Result<Json<EffectivePermissions>, AppError> {
                me_at(&state, auth, $kind, id).await
            }

            /// Why a user may or may not use a permission here: the decision and the ordered rules.
            #[utoipa::path(get, operation_id = concat!("explain_", stringify!($module), "_permission"), path = $explain_path, tag = "permissions", security(("bearer" = [])),
                params(($id = Uuid, Path), ExplainQuery),
                responses((status = 200, body = Explanation), (status = 403, body = Problem, content_type = "application/problem+json"),
                    (status = 404, body = Problem, content_type = "application/problem+json")))]
            pub async fn explain(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>, Query(query): Query<ExplainQuery>) -> Result<Json<Explanation>, AppError> {
                explain_at(&state, auth, $kind, id, query).await
            }

            /// What-if: who would gain or lose which permissions where, without applying anything.
            #[utoipa::path(post, operation_id = concat!("simulate_", stringify!($module), "_changes"), path = $simulate_path, tag = "permissions", security(("bearer" = [])),
                params(($id = Uuid, Path)), request_body = SimulateRequest,
                responses((status = 200, body = SimulateResponse), (status = 403, body = Problem, content_type = "application/problem+json"),
                    (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn simulate(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>, Json(body): Json<SimulateRequest>) -> Result<Json<SimulateResponse>, AppError> {
                simulate_at(&state, auth, $kind, id, body).await
            }
        }
    };
}

scoped_endpoints!(community, ScopeKind::Community, "community_id",
    grant: "/v1/communities/{community_id}/members/{user_id}/roles/{role_id}",
    overrides: "/v1/communities/{community_id}/overrides/{subject}",
    me: "/v1/communities/{community_id}/permissions/me",
    explain: "/v1/communities/{community_id}/permissions/explain",
    simulate: "/v1/communities/{community_id}/permissions/simulate");

scoped_endpoints!(group, ScopeKind::Group, "group_id",
    grant: "/v1/groups/{group_id}/members/{user_id}/roles/{role_id}",
    overrides: "/v1/groups/{group_id}/overrides/{subject}",
    me: "/v1/groups/{group_id}/permissions/me",
    explain: "/v1/groups/{group_id}/permissions/explain",
    simulate: "/v1/groups/{group_id}/permissions/simulate");

scoped_endpoints!(room, ScopeKind::Room, "room_id",
    grant: "/v1/rooms/{room_id}/members/{user_id}/roles/{role_id}",
    overrides: "/v1/rooms/{room_id}/overrides/{subject}",
    me: "/v1/rooms/{room_id}/permissions/me",
    explain: "/v1/rooms/{room_id}/permissions/explain",
    simulate: "/v1/rooms/{room_id}/permissions/simulate");

#[allow(dead_code)]
fn _rule_hit_in_schema(_: RuleHit) {}
