//! The realtime protocol (`GET /v1/ws`, PROTOCOL.md) as an AsyncAPI 3.0 document, built from
//! the types the gateway (de)serializes: `ClientFrame` for what clients send, and for what they
//! receive `ServerFrame` plus every feature event the bus carries (`realtime::Event`). Each
//! variant of those serde enums is one frame; its `#[schema(title)]` names its schema. The same
//! schemas go into the OpenAPI components (`frame_components`), so SDKs generated from either
//! document get the same types. `guildhall asyncapi` prints it; `openapi/asyncapi.yaml` is that
//! output, drift-checked in tests and validated by `scripts/asyncapi-check`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::calendar::CalendarEvent;
use crate::communities::service::MemberEvent;
use crate::communities::tree::RoomEvent;
use crate::media::model::AttachmentEvent;
use crate::messages::MessageEvent;
use crate::polls::poll_model::PollEvent;
use crate::polls::survey_model::SurveyEvent;
use crate::realtime::{ClientFrame, PresenceEvent, ServerFrame};

/// The channel's id in the document.
const CHANNEL: &str = "gateway";
/// The umbrella unions added to the OpenAPI components (one type to decode any frame with).
pub const CLIENT_UNION: &str = "ClientFrame";
pub const SERVER_UNION: &str = "ServerFrame";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client -> server (`send` operations).
    Client,
    /// Server -> client (`receive` operations).
    Server,
}

/// One frame of the protocol: its wire `type` and the component schema that describes it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub direction: Direction,
    /// The `type` discriminator on the wire (`subscribe`, `message.created`, ...).
    pub wire: String,
    /// The schema's (and the AsyncAPI message's) name: the variant's `title`.
    pub schema: String,
    pub description: Option<String>,
    value: Value,
}

/// A serde enum whose variants are frames: its schema and the schemas it refers to.
struct Source {
    direction: Direction,
    name: String,
    schema: Value,
    refs: Vec<(String, RefOr<Schema>)>,
}

fn source<T: ToSchema>(direction: Direction) -> Source {
    let mut refs = Vec::new();
    T::schemas(&mut refs);
    Source {
        direction,
        name: T::name().into_owned(),
        schema: serde_json::to_value(T::schema()).expect("a schema serializes"),
        refs,
    }
}

/// Every type the gateway decodes or the bus carries. A new `realtime::Event` implementor must
/// be added here (tests/api/asyncapi.rs fails until it is).
fn sources() -> Vec<Source> {
    vec![
        source::<ClientFrame>(Direction::Client),
        source::<ServerFrame<'_>>(Direction::Server),
        source::<MessageEvent<'_>>(Direction::Server),
        source::<PresenceEvent>(Direction::Server),
        source::<AttachmentEvent<'_>>(Direction::Server),
        source::<RoomEvent<'_>>(Direction::Server),
        source::<MemberEvent>(Direction::Server),
        source::<PollEvent<'_>>(Direction::Server),
        source::<SurveyEvent<'_>>(Direction::Server),
        source::<CalendarEvent<'_>>(Direction::Server),
    ]
}

/// The Rust names of the types `sources` documents (for the coverage test).
pub fn documented_types() -> Vec<String> {
    sources().into_iter().map(|s| s.name).collect()
}

/// Every frame, client ones first, each direction in declaration order.
pub fn frames() -> Vec<Frame> {
    let mut frames: Vec<Frame> = sources()
        .into_iter()
        .flat_map(|source| {
            let variants = match source.schema.get("oneOf") {
                Some(Value::Array(items)) => items.clone(),
                _ => vec![source.schema.clone()],
            };
            let direction = source.direction;
            let name = source.name;
            variants.into_iter().map(move |mut value| {
                let schema = value["title"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a variant of {name} has no #[schema(title)]"))
                    .to_owned();
                let wire = wire_type(&value)
                    .unwrap_or_else(|| panic!("{schema} ({name}) has no `type` tag"));
                let description = value["description"].as_str().map(str::to_owned);
                // A newtype variant's doc lands beside its `$ref` too, where schemas ignore it.
                for item in value["allOf"].as_array_mut().into_iter().flatten() {
                    if item.get("$ref").is_some()
                        && let Some(item) = item.as_object_mut()
                    {
                        item.remove("description");
                    }
                }
                if schema == "AckEvent" {
                    // realtime imports no feature: the hook hands the ack's message over as JSON.
                    value["properties"]["message"] =
                        json!({"$ref": "#/components/schemas/MessageView"});
                }
                Frame {
                    direction,
                    wire,
                    schema,
                    description,
                    value,
                }
            })
        })
        .collect();
    frames.sort_by_key(|f| f.direction == Direction::Server);
    frames
}

/// The one value of the variant's `type` property (inside an `allOf` for newtype variants).
fn wire_type(variant: &Value) -> Option<String> {
    if let Some(tag) = variant["properties"]["type"]["enum"][0].as_str() {
        return Some(tag.to_owned());
    }
    variant["allOf"].as_array()?.iter().find_map(wire_type)
}

/// Adds each frame's schema, the schemas they refer to, and the `ClientFrame` / `ServerFrame`
/// unions (discriminated by `type`) to the OpenAPI components.
pub fn frame_components(openapi: &mut utoipa::openapi::OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    for source in sources() {
        for (name, schema) in source.refs {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    let frames = frames();
    for frame in &frames {
        let schema = serde_json::from_value(frame.value.clone()).expect("a frame schema");
        let previous = components.schemas.insert(frame.schema.clone(), schema);
        assert!(previous.is_none(), "two schemas are named {}", frame.schema);
    }
    for (name, direction, description) in [
        (
            CLIENT_UNION,
            Direction::Client,
            "Any frame a client sends on /v1/ws.",
        ),
        (
            SERVER_UNION,
            Direction::Server,
            "Any frame the server sends on /v1/ws.",
        ),
    ] {
        let of: Vec<&Frame> = frames.iter().filter(|f| f.direction == direction).collect();
        let union = json!({
            "description": description,
            "oneOf": of.iter().map(|f| schema_ref(&f.schema)).collect::<Vec<_>>(),
            "discriminator": {
                "propertyName": "type",
                "mapping": of.iter()
                    .map(|f| (f.wire.clone(), Value::String(format!("#/components/schemas/{}", f.schema))))
                    .collect::<Map<_, _>>(),
            },
        });
        components.schemas.insert(
            name.to_owned(),
            serde_json::from_value(union).expect("a union schema"),
        );
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn message_ref(name: &str) -> Value {
    json!({"$ref": format!("#/channels/{CHANNEL}/messages/{name}")})
}

/// What each client frame is answered with (AsyncAPI `reply`), where it is answered at all.
fn replies(op: &str) -> &'static [&'static str] {
    match op {
        "subscribe" => &["SubscribedEvent", "ErrorEvent"],
        "unsubscribe" => &["UnsubscribedEvent"],
        "send" => &["AckEvent", "ErrorEvent"],
        "heartbeat" => &["HeartbeatAckEvent"],
        "resume" => &["MessageCreatedEvent", "ResyncRequiredEvent", "ErrorEvent"],
        _ => &[],
    }
}

const CHANNEL_DESCRIPTION: &str = "\
The realtime gateway. Text frames, one JSON object each, told apart by `type`; unknown fields \
are ignored and an unknown `type` (or a malformed frame) answers an `error` frame with code \
`validation_failed`. Binary frames answer the same error.

Authenticate with `?token=<access_token>` or `Authorization: Bearer <access_token>`; a browser's \
Origin must be the server's own or listed in GUILDHALL_WS_ORIGINS. The first server frame is \
`ready`: from then on the session follows every room its user is a member of, and nothing \
committed after `ready` is missed.

Within a room messages arrive in `seq` order (gapless per room). A `send` is acked only after it \
is committed; it is idempotent on (room, sender, `client_msg_id`), and an `error` answering it \
carries that id in `ref`. The sending session may also get the `message.created`: dedupe by \
message `id`. A `resume` sent right after `ready` replays the missed messages as ordinary \
`message.created` frames, in `seq` order, before any live frame of that room; past the replay \
cap it answers `resync_required` (reload history from REST).

Send a `heartbeat` (or a WebSocket ping) at least every `heartbeat_interval_ms`; after three \
intervals of silence the server closes with 1001. Other close codes: 1000 normal, 1001 server \
shutting down, 1002 protocol error, 1007 invalid UTF-8, 1008 access token expired (after an \
`error` `unauthorized`) or slow consumer (after an `error` `slow_consumer`: resume to catch \
up), 1009 frame too large, 1011 the session could not start.";

/// The AsyncAPI document, its schemas taken from the OpenAPI document's components (after the
/// OpenAPI post-processing, so both documents carry identical schemas).
pub fn document(openapi: &utoipa::openapi::OpenApi) -> Value {
    let openapi = serde_json::to_value(openapi).expect("the OpenAPI document");
    let all_schemas = openapi["components"]["schemas"]
        .as_object()
        .expect("OpenAPI components");
    let frames = frames();

    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut operations = Map::new();
    for frame in &frames {
        let mut message = json!({
            "name": frame.wire,
            "title": frame.wire,
            "payload": schema_ref(&frame.schema),
        });
        if let Some(description) = &frame.description {
            let text = unwrap_lines(description);
            message["summary"] = json!(first_sentence(&text));
            message["description"] = json!(text);
        }
        if let Some(location) = match frame.schema.as_str() {
            "SendOp" | "AckEvent" => Some("$message.payload#/client_msg_id"),
            "ErrorEvent" => Some("$message.payload#/ref"),
            _ => None,
        } {
            message["correlationId"] = json!({
                "description": "The sender's `client_msg_id`: an `ack` or `error` answers the `send` that carried it.",
                "location": location,
            });
        }
        messages.insert(frame.schema.clone(), message);
        channel_messages.insert(
            frame.schema.clone(),
            json!({"$ref": format!("#/components/messages/{}", frame.schema)}),
        );
        let (action, id) = match frame.direction {
            Direction::Client => ("send", format!("send{}", frame.schema)),
            Direction::Server => ("receive", format!("receive{}", frame.schema)),
        };
        let mut operation = json!({
            "action": action,
            "channel": {"$ref": format!("#/channels/{CHANNEL}")},
            "summary": match frame.direction {
                Direction::Client => format!("Send `{}`", frame.wire),
                Direction::Server => format!("Receive `{}`", frame.wire),
            },
            "messages": [message_ref(&frame.schema)],
        });
        let reply = replies(&frame.wire);
        if frame.direction == Direction::Client && !reply.is_empty() {
            operation["reply"] = json!({
                "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                "messages": reply.iter().map(|m| message_ref(m)).collect::<Vec<_>>(),
            });
        }
        operations.insert(id, operation);
    }

    let mut schemas = BTreeMap::new();
    let mut pending: Vec<String> = frames.iter().map(|f| f.schema.clone()).collect();
    while let Some(name) = pending.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let schema = all_schemas
            .get(&name)
            .unwrap_or_else(|| panic!("no OpenAPI component {name}"))
            .clone();
        let mut refs = BTreeSet::new();
        collect_refs(&schema, &mut refs);
        pending.extend(refs);
        schemas.insert(name, schema);
    }

    json!({
        "asyncapi": "3.0.0",
        "id": "urn:guildhall:realtime",
        "info": {
            "title": "Guildhall realtime gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The WebSocket protocol of `GET /v1/ws` (PROTOCOL.md). Generated by \
                `guildhall asyncapi` from the frame and event types the gateway (de)serializes; \
                the same schemas are in openapi.json's components.",
            "license": {"name": "AGPL-3.0-only"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "guildhall": {
                "host": "{host}",
                "protocol": "wss",
                "description": "A Guildhall node (`ws` without TLS, e.g. in development).",
                "variables": {
                    "host": {
                        "default": "localhost:8080",
                        "description": "Host and port of the API (the same as REST's).",
                    },
                },
                "security": [
                    {"$ref": "#/components/securitySchemes/token"},
                    {"$ref": "#/components/securitySchemes/bearer"},
                ],
            },
        },
        "channels": {
            CHANNEL: {
                "address": "/v1/ws",
                "title": "Realtime gateway",
                "description": CHANNEL_DESCRIPTION,
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "Access token, for clients that cannot set the Authorization header.",
                                },
                            },
                        },
                        "bindingVersion": "0.1.0",
                    },
                },
            },
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "token": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "The access token (JWT) as `?token=`.",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The access token in the Authorization header.",
                },
            },
        },
    })
}

/// Doc comments arrive wrapped at 100 columns: one paragraph per line for messages.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Up to the first `; ` or `. `: a message's one-line summary.
fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line
        .find(['.', ';'])
        .filter(|&end| line[end + 1..].starts_with(' '))
    {
        Some(end) => line[..end].to_owned(),
        None => line.trim_end_matches('.').to_owned(),
    }
}

fn collect_refs(value: &Value, refs: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref")
                && let Some(name) = target.strip_prefix("#/components/schemas/")
            {
                refs.insert(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// The committed form (`openapi/asyncapi.yaml`).
pub fn spec_yaml() -> String {
    yaml_for(&crate::openapi::spec())
}

/// `spec_yaml` for an OpenAPI document already built (the server serves it).
pub fn yaml_for(openapi: &utoipa::openapi::OpenApi) -> String {
    let mut out = String::from(
        "# Generated by `guildhall asyncapi`; do not edit (tests fail when it is stale).\n",
    );
    let Value::Object(mut document) = document(openapi) else {
        unreachable!("the document is a mapping")
    };
    // The sections in the order the specification presents them (JSON maps sort their keys).
    let mut ordered = Vec::new();
    for key in [
        "asyncapi",
        "id",
        "info",
        "defaultContentType",
        "servers",
        "channels",
        "operations",
        "components",
    ] {
        if let Some(value) = document.remove(key) {
            ordered.push((key.to_owned(), value));
        }
    }
    ordered.extend(document);
    crate::yaml::write_mapping(&mut out, &ordered);
    out
}
