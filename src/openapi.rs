//! The OpenAPI document: every feature's routes merged, plus the bearer security scheme and
//! the responses the kernel gives on every route (`kernel_responses`).
//! `guildhall openapi` prints it; `openapi/openapi.json` is that output, drift-checked in tests.
//! Its components also hold the WebSocket frames' schemas (`asyncapi::frame_components`).

use axum::http::StatusCode;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, ArrayItems, OneOf, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{FieldError, Problem};
use crate::permissions::catalogue::PermissionName;
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
    // Relative: the document describes the host that serves it (`/openapi.json`).
    servers((url = "/", description = "The server this document is served from")),
    modifiers(&BearerScheme),
    components(schemas(Problem, FieldError, PermissionName)),
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
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(identity::router())
        .merge(permissions::router())
        .merge(communities::router())
        .merge(messages::router())
        .merge(polls::router())
        .merge(calendar::router())
        .merge(media::router())
        .merge(realtime::router());
    crate::asyncapi::frame_components(router.get_openapi_mut());
    kernel_responses(router.get_openapi_mut());
    nullable_formats_as_one_of(router.get_openapi_mut());
    router
}

/// Rewrites `{"type": ["string", "null"], "format": F}` (how utoipa renders `Option<Uuid>`,
/// `Option<DateTime>`) as `{"oneOf": [{"type": "string", "format": F}, {"type": "null"}]}`.
/// Both say the same; the second is what generators honour: with the type list, schemathesis
/// (4.32) drops the `format` and sends `""` as a valid id or date, which the server rightly
/// refuses. Descriptions stay on the outer schema.
fn nullable_formats_as_one_of(openapi: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = openapi.components.as_mut() {
        components
            .schemas
            .values_mut()
            .for_each(split_nullable_format);
    }
    for operation in operations(openapi) {
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && let Some(schema) = parameter.schema.as_mut()
            {
                split_nullable_format(schema);
            }
        }
    }
}

fn split_nullable_format(schema: &mut RefOr<Schema>) {
    let RefOr::T(inner) = schema else { return };
    match inner {
        Schema::Object(object) => {
            object
                .properties
                .values_mut()
                .for_each(split_nullable_format);
            if let Some(extra) = object.additional_properties.as_deref_mut()
                && let AdditionalProperties::RefOr(extra) = extra
            {
                split_nullable_format(extra);
            }
            let SchemaType::Array(types) = &object.schema_type else {
                return;
            };
            let non_null: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            if object.format.is_none() || non_null.len() != 1 || non_null.len() == types.len() {
                return;
            }
            let mut value = object.clone();
            value.schema_type = SchemaType::Type(non_null[0].clone());
            let description = value.description.take();
            let mut one_of = OneOf::new();
            one_of.items = vec![
                RefOr::T(Schema::Object(value)),
                RefOr::T(Schema::Object(
                    ObjectBuilder::new().schema_type(Type::Null).build(),
                )),
            ];
            one_of.description = description;
            *inner = Schema::OneOf(one_of);
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                split_nullable_format(items);
            }
        }
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(split_nullable_format),
        Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(split_nullable_format),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(split_nullable_format),
        _ => {}
    }
}

/// Declares, on every operation, the errors that come from the kernel rather than the handler,
/// so clients and generated SDKs see every status a route can answer (checked by
/// `scripts/schemathesis`): 401 from `AuthUser` where a bearer token is required, 400 / 413 /
/// 415 / 422 from the `Json` body extractor, 422 from the `Path` and `Query` extractors (a
/// malformed id or query value), and 404 wherever the path names a resource (what the caller
/// may not see is 404, README "Permissions"). A handler's own description of a status wins.
/// It also gives every response a description and every operation an explicit `security`, as
/// the SDK generators and linters of `scripts/sdk` require.
fn kernel_responses(openapi: &mut utoipa::openapi::OpenApi) {
    operations(openapi).for_each(add_kernel_responses);
}

/// Every operation of the document (the methods Guildhall routes).
fn operations(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

fn add_kernel_responses(operation: &mut Operation) {
    let mut statuses: Vec<(&str, &str)> = Vec::new();
    let requirements = operation.security.as_deref().unwrap_or_default();
    // `[{bearer}, {}]` (token optional, e.g. the calendar feed) declares its own 401.
    let bearer_required = !requirements.is_empty()
        && requirements
            .iter()
            .all(|r| serde_json::to_value(r).is_ok_and(|v| v.get("bearer").is_some()));
    if bearer_required {
        statuses.push(("401", "Missing, invalid or expired access token"));
    }
    if operation.request_body.is_some() {
        statuses.extend([
            ("400", "Malformed JSON body"),
            ("413", "Body larger than the request body limit"),
            ("415", "Body without a JSON content type"),
            (
                "422",
                "Invalid input: missing or mistyped fields, broken rules",
            ),
        ]);
    }
    let has_parameters = operation.parameters.iter().flatten().any(|p| {
        matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
    });
    if has_parameters {
        statuses.push(("422", "Malformed path or query parameter"));
    }
    let has_path_ids = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
    if has_path_ids {
        // Every route looks its path ids up as the caller: unknown and invisible are both 404.
        statuses.push(("404", "No such resource, or not visible to the caller"));
    }
    for (status, description) in &statuses {
        operation
            .responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::T(problem_response(description)));
    }
    // OpenAPI requires a description on every response and utoipa leaves out an empty one
    // (`(status = 204)`, `(status = 404, body = Problem)`): a status the kernel answers gets the
    // kernel's text, any other the HTTP reason phrase. SDK generators refuse the document otherwise.
    for (status, response) in &mut operation.responses.responses {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = statuses
                .iter()
                .find(|(s, _)| s == status)
                .map(|(_, d)| (*d).to_owned())
                .or_else(|| {
                    status
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .and_then(|code| code.canonical_reason())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
        }
    }
    // No requirement means "public" only by omission; say it (`security: []`), as linters ask.
    operation.security.get_or_insert_with(Vec::new);
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            crate::error::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
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
