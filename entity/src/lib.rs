//! sea-orm entities, one module per table. Shapes follow the migrations in `migration/`.

pub mod audit_log;
pub mod bans;
pub mod casbin_rule;
pub mod communities;
pub mod community_members;
pub mod groups;
pub mod invites;
pub mod overrides;
pub mod refresh_tokens;
pub mod role_grants;
pub mod roles;
pub mod room_members;
pub mod rooms;
pub mod users;
