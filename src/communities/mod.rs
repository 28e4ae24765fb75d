//! Communities: the community -> group -> subgroup -> room tree, DMs, membership, invites,
//! kicks and bans. Permission checks go through `permissions`; tree consistency (paths, cycles,
//! depth, member counts) is kept by triggers in the migrations.

pub(crate) mod handlers;
mod repo;
pub mod service;
pub mod tree;
pub mod views;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    use handlers as h;
    OpenApiRouter::new()
        .routes(routes!(h::create_community, h::my_communities))
        .routes(routes!(
            h::get_community,
            h::update_community,
            h::delete_community
        ))
        .routes(routes!(h::get_tree))
        .routes(routes!(h::join))
        .routes(routes!(h::create_invite))
        .routes(routes!(h::accept_invite))
        .routes(routes!(h::members))
        .routes(routes!(h::remove_member))
        .routes(routes!(h::ban, h::unban))
        .routes(routes!(h::create_group))
        .routes(routes!(h::get_group, h::update_group, h::delete_group))
        .routes(routes!(h::create_room))
        .routes(routes!(h::get_room, h::update_room, h::delete_room))
        .routes(routes!(h::add_room_member, h::remove_room_member))
        .routes(routes!(h::open_dm))
}
