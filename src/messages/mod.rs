//! Messages: send (group-commit writer, idempotent, acked after commit), history, edit, delete,
//! reactions, read markers, unread counts, search. Publishes its events on the realtime bus.

mod events;
pub(crate) mod handlers;
mod hooks;
mod repo;
pub mod service;
mod writer;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use events::{MessageEvent, MessageView};
pub use hooks::GatewayHooks;
pub use writer::Writer;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    use handlers as h;
    OpenApiRouter::new()
        .routes(routes!(h::send, h::history))
        .routes(routes!(h::edit, h::delete))
        .routes(routes!(h::react, h::unreact))
        .routes(routes!(h::read))
        .routes(routes!(h::unread))
        .routes(routes!(h::search))
}
