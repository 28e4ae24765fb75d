//! HTTP handlers of communities, groups, rooms, members, invites, bans and DMs.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::{self, CommunityPatch, NewCommunity, text, visibility};
use super::tree::{self, NewRoomInput, RoomPatch};
use super::views::{
    CommunityPage, CommunityView, GroupView, InviteView, MemberPage, RoomView, Tree, double_option,
};
use crate::error::{AppError, FieldError, Problem};
use crate::extract::{Json, Path, Query};
use crate::identity::AuthUser;
use crate::permissions::{Authorized, Permission, ScopeKind, perm};
use crate::shared::PageParams;
use crate::state::AppState;

const PROBLEM: &str = "application/problem+json";

/// Collects field errors so a client sees every problem at once.
fn all_ok<T>(results: Vec<Result<T, FieldError>>) -> Result<Vec<T>, AppError> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(AppError::Validation(errors))
    }
}

/// An optional text field of a PATCH body, checked like `text`.
fn optional(
    field: &str,
    value: Option<&str>,
    min: usize,
    max: usize,
) -> Result<Option<String>, AppError> {
    value
        .map(|v| text(field, v, min, max))
        .transpose()
        .map_err(|e| AppError::Validation(vec![e]))
}

async fn at<P: Permission>(
    state: &AppState,
    auth: &AuthUser,
    id: Uuid,
    kind: ScopeKind,
) -> Result<Authorized<P>, AppError> {
    state.permissions.require_kind(auth.user_id, id, kind).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateCommunity {
    /// 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Up to 1,000 characters.
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    /// `public` (anyone may join) or `private` (invite only).
    #[schema(value_type = Visibility)]
    pub visibility: String,
}

/// Who may join a community.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only: the handlers parse the string (`service::visibility`)
pub enum Visibility {
    /// Anyone signed in may join.
    Public,
    /// Invite only.
    Private,
}

/// Create a community; the caller becomes its first owner.
#[utoipa::path(post, path = "/v1/communities", tag = "communities", security(("bearer" = [])), request_body = CreateCommunity,
    responses((status = 201, body = CommunityView), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_community(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<CreateCommunity>,
) -> Result<(StatusCode, Json<CommunityView>), AppError> {
    let vis = visibility(&body.visibility);
    let fields = all_ok(vec![
        text("name", &body.name, 1, 100),
        text(
            "description",
            body.description.as_deref().unwrap_or(""),
            0,
            1000,
        ),
    ]);
    let (fields, vis) = match (fields, vis) {
        (Ok(f), Ok(v)) => (f, v),
        (Err(AppError::Validation(mut e)), v) => {
            e.extend(v.err());
            return Err(AppError::Validation(e));
        }
        (Err(e), _) => return Err(e),
        (_, Err(e)) => return Err(AppError::Validation(vec![e])),
    };
    let [name, description]: [String; 2] = fields.try_into().map_err(|_| AppError::NotFound)?;
    let community = service::create(
        &state,
        auth.user_id,
        NewCommunity {
            name,
            description,
            visibility: vis,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(community)))
}

/// The caller's communities (cursor-paged by id).
#[utoipa::path(get, operation_id = "list_my_communities", path = "/v1/communities", tag = "communities", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = CommunityPage)))]
pub async fn my_communities(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageParams>,
) -> Result<Json<CommunityPage>, AppError> {
    service::mine(&state, auth.user_id, page.cursor()?, page.limit()?)
        .await
        .map(|page| Json(page.into()))
}

/// A community the caller can see (member, or a public one).
#[utoipa::path(get, path = "/v1/communities/{community_id}", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    responses((status = 200, body = CommunityView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_community(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<CommunityView>, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    service::get(&state, &proof).await.map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateCommunity {
    /// 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// Up to 1,000 characters.
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    #[schema(value_type = Option<Visibility>)]
    pub visibility: Option<String>,
}

/// Rename, describe, or change visibility (manage_community).
#[utoipa::path(patch, path = "/v1/communities/{community_id}", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    request_body = UpdateCommunity,
    responses((status = 200, body = CommunityView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn update_community(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateCommunity>,
) -> Result<Json<CommunityView>, AppError> {
    let name = optional("name", body.name.as_deref(), 1, 100)?;
    let description = optional("description", body.description.as_deref(), 0, 1000)?;
    let vis = body
        .visibility
        .as_deref()
        .map(visibility)
        .transpose()
        .map_err(|e| AppError::Validation(vec![e]))?;
    let proof = at::<perm::ManageCommunity>(&state, &auth, id, ScopeKind::Community).await?;
    service::update(
        &state,
        &proof,
        CommunityPatch {
            name,
            description,
            visibility: vis,
        },
    )
    .await
    .map(Json)
}

/// Delete a community and everything in it (owners only).
#[utoipa::path(delete, path = "/v1/communities/{community_id}", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_community(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    service::delete(&state, &proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The groups, subgroups and rooms the caller can see, nested.
#[utoipa::path(get, path = "/v1/communities/{community_id}/tree", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    responses((status = 200, body = Tree), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_tree(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Tree>, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    tree::tree(&state, &proof).await.map(Json)
}

/// Join a public community (idempotent).
#[utoipa::path(post, operation_id = "join_community", path = "/v1/communities/{community_id}/join", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    responses((status = 200, body = CommunityView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn join(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<CommunityView>, AppError> {
    let scope = state
        .permissions
        .scope(auth.user_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if scope.kind == ScopeKind::Community && scope.is_banned() {
        return Err(AppError::Forbidden(
            "you are banned from this community".into(),
        ));
    }
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    service::join(&state, &proof).await.map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateInvite {
    /// At least 1; unlimited when absent.
    #[schema(minimum = 1)]
    pub max_uses: Option<i32>,
    /// Seconds until the code expires (1 s to 365 days); never when absent.
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub expires_in_s: Option<i64>,
}

/// Create an invite code (invite permission).
#[utoipa::path(post, path = "/v1/communities/{community_id}/invites", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    request_body = CreateInvite,
    responses((status = 201, body = InviteView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateInvite>,
) -> Result<(StatusCode, Json<InviteView>), AppError> {
    let mut errors = Vec::new();
    if body.max_uses.is_some_and(|n| n < 1) {
        errors.push(FieldError::new("max_uses", "must be at least 1"));
    }
    if body
        .expires_in_s
        .is_some_and(|s| !(1..=365 * 24 * 3600).contains(&s))
    {
        errors.push(FieldError::new("expires_in_s", "must be 1 s to 365 days"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let proof = at::<perm::Invite>(&state, &auth, id, ScopeKind::Community).await?;
    let invite = service::create_invite(&state, &proof, body.max_uses, body.expires_in_s).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

/// Accept an invite; unknown, expired and used-up codes are all 404.
#[utoipa::path(post, path = "/v1/invites/{code}/accept", tag = "communities", security(("bearer" = [])), params(("code" = String, Path)),
    responses((status = 200, body = CommunityView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn accept_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(code): Path<String>,
) -> Result<Json<CommunityView>, AppError> {
    service::accept_invite(&state, auth.user_id, &code)
        .await
        .map(Json)
}

/// Members of a community (cursor-paged by user id).
#[utoipa::path(get, operation_id = "list_members", path = "/v1/communities/{community_id}/members", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path), PageParams),
    responses((status = 200, body = MemberPage), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn members(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> Result<Json<MemberPage>, AppError> {
    let (cursor, limit) = (page.cursor()?, page.limit()?);
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    service::members(&state, &proof, cursor, limit)
        .await
        .map(|page| Json(page.into()))
}

/// Kick a member (kick permission), or leave with one's own id. The last owner cannot leave.
#[utoipa::path(delete, path = "/v1/communities/{community_id}/members/{user_id}", tag = "communities", security(("bearer" = [])),
    params(("community_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    service::remove_member(&state, &proof, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BanRequest {
    /// Up to 500 characters.
    #[serde(default)]
    #[schema(
        max_length = 500,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub reason: String,
}

/// Ban a user (removes their membership); owners cannot be banned.
#[utoipa::path(put, operation_id = "ban_member", path = "/v1/communities/{community_id}/bans/{user_id}", tag = "communities", security(("bearer" = [])),
    params(("community_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body(content = Option<BanRequest>, description = "Optional reason"),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn ban(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(Uuid, Uuid)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, AppError> {
    // The body is optional: an empty one (or `null`) means no reason.
    let reason = if body.is_empty() {
        String::new()
    } else {
        crate::extract::parse_json::<Option<BanRequest>>(&body)?
            .map(|b| b.reason)
            .unwrap_or_default()
    };
    let reason = text("reason", &reason, 0, 500).map_err(|e| AppError::Validation(vec![e]))?;
    let proof = at::<perm::Ban>(&state, &auth, id, ScopeKind::Community).await?;
    service::ban(&state, &proof, user, &reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a ban.
#[utoipa::path(delete, operation_id = "unban_member", path = "/v1/communities/{community_id}/bans/{user_id}", tag = "communities", security(("bearer" = [])),
    params(("community_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn unban(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::Ban>(&state, &auth, id, ScopeKind::Community).await?;
    service::unban(&state, &proof, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateGroup {
    /// 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Parent group for a subgroup.
    pub parent_id: Option<Uuid>,
}

/// Create a group or subgroup (create_groups at the parent).
#[utoipa::path(post, path = "/v1/communities/{community_id}/groups", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    request_body = CreateGroup,
    responses((status = 201, body = GroupView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateGroup>,
) -> Result<(StatusCode, Json<GroupView>), AppError> {
    let name = text("name", &body.name, 1, 100).map_err(|e| AppError::Validation(vec![e]))?;
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    let group = tree::create_group(&state, &proof, &name, body.parent_id).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// A group.
#[utoipa::path(get, path = "/v1/groups/{group_id}", tag = "communities", security(("bearer" = [])), params(("group_id" = Uuid, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<GroupView>, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Group).await?;
    tree::get_group(&state, &proof).await.map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateGroup {
    /// 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// Move under another group; `null` moves it to the top level.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    #[allow(clippy::option_option)] // absent = keep, null = top level
    pub parent_id: Option<Option<Uuid>>,
}

/// Rename or move a group (manage_groups; create_groups at the new parent). Cycles, other
/// communities and over-deep trees are refused with 422.
#[utoipa::path(patch, path = "/v1/groups/{group_id}", tag = "communities", security(("bearer" = [])), params(("group_id" = Uuid, Path)),
    request_body = UpdateGroup,
    responses((status = 200, body = GroupView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateGroup>,
) -> Result<Json<GroupView>, AppError> {
    let name = optional("name", body.name.as_deref(), 1, 100)?;
    let proof = at::<perm::ManageGroups>(&state, &auth, id, ScopeKind::Group).await?;
    tree::update_group(&state, &proof, name, body.parent_id)
        .await
        .map(Json)
}

/// Delete an empty group (409 while it holds subgroups or rooms).
#[utoipa::path(delete, path = "/v1/groups/{group_id}", tag = "communities", security(("bearer" = [])), params(("group_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::ManageGroups>(&state, &auth, id, ScopeKind::Group).await?;
    tree::delete_group(&state, &proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRoom {
    /// 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    pub group_id: Option<Uuid>,
    #[serde(default)]
    pub private: bool,
    /// Up to 1,024 characters.
    #[schema(
        max_length = 1024,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub topic: Option<String>,
}

/// Create a room (create_rooms at the parent). A private room starts with its creator as member.
#[utoipa::path(post, path = "/v1/communities/{community_id}/rooms", tag = "communities", security(("bearer" = [])), params(("community_id" = Uuid, Path)),
    request_body = CreateRoom,
    responses((status = 201, body = RoomView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateRoom>,
) -> Result<(StatusCode, Json<RoomView>), AppError> {
    let fields = all_ok(vec![
        text("name", &body.name, 1, 100),
        text("topic", body.topic.as_deref().unwrap_or(""), 0, 1024),
    ])?;
    let [name, topic]: [String; 2] = fields.try_into().map_err(|_| AppError::NotFound)?;
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Community).await?;
    let input = NewRoomInput {
        name,
        topic,
        group_id: body.group_id,
        private: body.private,
    };
    let room = tree::create_room(&state, &proof, input).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// A room or DM.
#[utoipa::path(get, path = "/v1/rooms/{room_id}", tag = "communities", security(("bearer" = [])), params(("room_id" = Uuid, Path)),
    responses((status = 200, body = RoomView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<RoomView>, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Room).await?;
    tree::get_room(&state, &proof).await.map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRoom {
    /// 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// Up to 1,024 characters.
    #[schema(
        max_length = 1024,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub topic: Option<String>,
    pub private: Option<bool>,
    /// Move under another group; `null` moves it directly under the community.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    #[allow(clippy::option_option)] // absent = keep, null = under the community
    pub group_id: Option<Option<Uuid>>,
}

/// Rename, re-topic, make private/public or move a room (manage_rooms).
#[utoipa::path(patch, path = "/v1/rooms/{room_id}", tag = "communities", security(("bearer" = [])), params(("room_id" = Uuid, Path)),
    request_body = UpdateRoom,
    responses((status = 200, body = RoomView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateRoom>,
) -> Result<Json<RoomView>, AppError> {
    let name = optional("name", body.name.as_deref(), 1, 100)?;
    let topic = optional("topic", body.topic.as_deref(), 0, 1024)?;
    let proof = at::<perm::ManageRooms>(&state, &auth, id, ScopeKind::Room).await?;
    let patch = RoomPatch {
        name,
        topic,
        group_id: body.group_id,
        private: body.private,
    };
    tree::update_room(&state, &proof, patch).await.map(Json)
}

/// Delete a room (manage_rooms).
#[utoipa::path(delete, path = "/v1/rooms/{room_id}", tag = "communities", security(("bearer" = [])), params(("room_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::ManageRooms>(&state, &auth, id, ScopeKind::Room).await?;
    tree::delete_room(&state, &proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a community member to a private room (manage_rooms).
#[utoipa::path(put, path = "/v1/rooms/{room_id}/members/{user_id}", tag = "communities", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_room_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Room).await?;
    tree::set_room_member(&state, &proof, user, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove someone from a private room (manage_rooms), or leave it with one's own id.
#[utoipa::path(delete, path = "/v1/rooms/{room_id}/members/{user_id}", tag = "communities", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_room_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let proof = at::<perm::View>(&state, &auth, id, ScopeKind::Room).await?;
    tree::set_room_member(&state, &proof, user, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenDm {
    /// The other participants (1-9); the caller is always included.
    #[schema(min_items = 1, max_items = 9)]
    pub user_ids: Vec<Uuid>,
}

/// The DM room for exactly this set of users (same set, same room): 201 when new, 200 when it existed.
#[utoipa::path(post, path = "/v1/dms", tag = "communities", security(("bearer" = [])), request_body = OpenDm,
    responses((status = 200, body = RoomView), (status = 201, body = RoomView), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn open_dm(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<OpenDm>,
) -> Result<(StatusCode, Json<RoomView>), AppError> {
    let (created, room) = tree::open_dm(&state, auth.user_id, &body.user_ids).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(room),
    ))
}

#[allow(dead_code)]
const _PROBLEM_CONTENT_TYPE: &str = PROBLEM;
