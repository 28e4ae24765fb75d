//! The OpenAPI document: every feature's routes merged, plus the bearer security scheme.
//! `guildhall openapi` prints it; `openapi/openapi.json` is that output, drift-checked in tests.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{FieldError, Problem};
use crate::state::AppState;
use crate::{calendar, communities, identity, media, messages, ops, permissions, polls, realtime};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Guildhall",
        description = "Community platform backend: communities, rooms, permissions, realtime messaging. \
                       Errors are application/problem+json with a stable `code`.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")
    ),
    modifiers(&BearerScheme),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "users", description = "User profiles"),
        (name = "communities", description = "Communities, groups, rooms, members, invites, bans, DMs"),
        (name = "messages", description = "Messages, history, reactions, read markers, unread counts, search"),
        (name = "polls", description = "Polls and surveys in rooms: votes, live tallies, anonymous ballots, results, CSV export"),
        (name = "calendar", description = "Recurring events (RFC 5545), occurrences, exceptions, splits, RSVPs, iCalendar feed"),
        (name = "media", description = "Presigned uploads to S3, processing by the media Lambda, attachments with short-lived download URLs"),
        (name = "realtime", description = "The WebSocket gateway (protocol in PROTOCOL.md)"),
        (name = "permissions", description = "Roles, grants, overrides, explain, what-if, audit log"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// All routes with their documentation; `app` adds state and layers.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(identity::router())
        .merge(permissions::router())
        .merge(communities::router())
        .merge(messages::router())
        .merge(polls::router())
        .merge(calendar::router())
        .merge(media::router())
        .merge(realtime::router())
}

pub fn spec() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The committed form: pretty JSON with a trailing newline.
pub fn spec_json() -> String {
    let mut json = spec()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}
