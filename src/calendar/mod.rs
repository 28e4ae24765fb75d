//! Recurring events (RFC 5545): series stored as rule + zone and expanded on read, per-occurrence
//! edits and cancellations, this-and-following splits, RSVPs, an iCalendar feed with private
//! feed tokens, and `event.starting` reminders sent once across nodes.

mod exceptions;
pub mod expand;
mod feed;
mod handlers;
pub mod ics;
pub(crate) mod model;
mod reminders;
mod repo;
mod rsvp;
pub mod service;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use model::{CalendarEvent, CreateEvent, EventView, OccurrenceView, RsvpStatus};
pub use reminders::run_reminders;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    use handlers as h;
    OpenApiRouter::new()
        .routes(routes!(h::create))
        .routes(routes!(h::occurrences))
        .routes(routes!(h::get, h::update, h::delete))
        .routes(routes!(h::edit_occurrence, h::cancel_occurrence))
        .routes(routes!(h::split))
        .routes(routes!(h::rsvp, h::unrsvp))
        .routes(routes!(h::rsvps))
        .routes(routes!(h::calendar_ics))
        .routes(routes!(h::create_feed_token, h::feed_tokens))
        .routes(routes!(h::revoke_feed_token))
}
