//! Permissions: the only module that talks to Casbin. Roles (built-in and custom), grants and
//! allow/deny overrides at community, group and room scope, compiled into Casbin policy lines
//! (`model.conf` holds the semantics); checks run on an index compiled from those lines, which
//! a test holds equal to Casbin's own `enforce`. Reads the tree only through the `scopes` view.

mod adapter;
mod admin;
pub mod catalogue;
pub mod engine;
pub mod feed;
pub(crate) mod handlers;
pub mod index;
mod inspect;
pub mod lines;
mod repo;
mod service;
#[cfg(test)]
mod tests;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use admin::{RoleView, recompile, setup_community};
pub use catalogue::{Perm, PermSet};
pub use feed::Feed;
pub use service::{Authorized, Candidate, Permission, Permissions, Scope, ScopeKind, perm};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    use handlers::{community, group, room};
    OpenApiRouter::new()
        .routes(routes!(handlers::list_permissions))
        .routes(routes!(handlers::list_roles, handlers::create_role))
        .routes(routes!(handlers::update_role, handlers::delete_role))
        .routes(routes!(handlers::audit_log))
        .routes(routes!(community::grant, community::revoke))
        .routes(routes!(community::set_override, community::remove_override))
        .routes(routes!(community::me))
        .routes(routes!(community::explain))
        .routes(routes!(community::simulate))
        .routes(routes!(group::grant, group::revoke))
        .routes(routes!(group::set_override, group::remove_override))
        .routes(routes!(group::me))
        .routes(routes!(group::explain))
        .routes(routes!(group::simulate))
        .routes(routes!(room::grant, room::revoke))
        .routes(routes!(room::set_override, room::remove_override))
        .routes(routes!(room::me))
        .routes(routes!(room::explain))
        .routes(routes!(room::simulate))
}
