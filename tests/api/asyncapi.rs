//! The AsyncAPI document (`guildhall asyncapi`, openapi/asyncapi.yaml) covers the protocol the
//! gateway speaks: every client op it decodes, every event type the bus can carry, each with a
//! schema that is also an OpenAPI component. (Validation by the official parser and of live
//! frames against the schemas with ajv: scripts/asyncapi-check.)

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::realtime::room_with_two;
use crate::ws::WsClient;

fn document() -> Value {
    guildhall::asyncapi::document(&guildhall::openapi::spec())
}

fn openapi() -> Value {
    serde_json::from_str(&guildhall::openapi::spec_json()).unwrap()
}

/// Wire type -> schema name of the messages of the operations with this action.
fn messages(doc: &Value, action: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for operation in doc["operations"].as_object().unwrap().values() {
        if operation["action"] != action {
            continue;
        }
        for reference in operation["messages"].as_array().unwrap() {
            let id = reference["$ref"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let message = &doc["components"]["messages"][id];
            let schema = message["payload"]["$ref"].as_str().unwrap();
            let schema = schema.strip_prefix("#/components/schemas/").unwrap();
            out.insert(
                message["name"].as_str().unwrap().to_owned(),
                schema.to_owned(),
            );
        }
    }
    out
}

#[test]
fn committed_asyncapi_is_not_stale() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/openapi/asyncapi.yaml"
    ))
    .unwrap();
    assert!(
        guildhall::asyncapi::spec_yaml() == committed,
        "openapi/asyncapi.yaml is stale: run `guildhall asyncapi > openapi/asyncapi.yaml`"
    );
}

/// The variants serde accepts for `ClientFrame` are the ones its error for an unknown `type`
/// lists: the gateway's own list, not one kept beside it.
#[test]
fn every_client_op_the_gateway_decodes_is_a_send_operation() {
    let err = serde_json::from_str::<guildhall::realtime::ClientFrame>(r#"{"type":"?"}"#)
        .unwrap_err()
        .to_string();
    let listed = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde lists the variants: {err}"))
        .1;
    let decoded: BTreeSet<String> = listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    let documented: BTreeSet<String> = messages(&document(), "send").into_keys().collect();
    assert_eq!(decoded, documented);
    assert_eq!(decoded.len(), 7, "{decoded:?}");
}

/// Everything the bus carries implements `realtime::Event` (`Bus::publish` requires it); each
/// implementor must be one of the types the document is built from.
#[test]
fn every_event_type_the_bus_carries_is_documented() {
    let documented = guildhall::asyncapi::documented_types();
    let mut implementors = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                for line in source.lines().map(str::trim) {
                    let Some(rest) = line.strip_prefix("impl ") else {
                        continue;
                    };
                    let Some((trait_path, target)) = rest.split_once(" for ") else {
                        continue;
                    };
                    if trait_path != "Event" && !trait_path.ends_with("::Event") {
                        continue;
                    }
                    let name = target
                        .split(['<', ' ', '{'])
                        .next()
                        .unwrap()
                        .rsplit("::")
                        .next()
                        .unwrap();
                    implementors.push((name.to_owned(), path.display().to_string()));
                }
            }
        }
    }
    assert!(implementors.len() >= 9, "{implementors:?}");
    for (name, file) in &implementors {
        assert!(
            documented.contains(name),
            "{name} ({file}) goes over the bus but is not in asyncapi::sources()"
        );
    }
}

#[test]
fn every_server_event_in_protocol_md_is_a_receive_operation() {
    let received = messages(&document(), "receive");
    for wire in [
        "ready",
        "ack",
        "error",
        "heartbeat_ack",
        "subscribed",
        "unsubscribed",
        "resync_required",
        "typing",
        "message.created",
        "message.updated",
        "message.deleted",
        "reaction.added",
        "reaction.removed",
        "receipt",
        "presence",
        "poll.updated",
        "survey.updated",
        "attachment.updated",
        "event.updated",
        "event.starting",
        "room.updated",
        "member.joined",
        "member.left",
    ] {
        assert!(
            received.contains_key(wire),
            "no receive operation for {wire}"
        );
    }
}

/// One source for both documents: each AsyncAPI schema is the OpenAPI component of that name,
/// and OpenAPI's `ClientFrame` / `ServerFrame` unions map every wire type to its schema.
#[test]
fn frame_schemas_are_openapi_components_too() {
    let (doc, openapi) = (document(), openapi());
    let components = &openapi["components"]["schemas"];
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        assert_eq!(&components[name], schema, "{name}");
    }
    for (union, action) in [("ClientFrame", "send"), ("ServerFrame", "receive")] {
        let mapping: BTreeMap<String, String> = components[union]["discriminator"]["mapping"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(wire, target)| {
                let target = target.as_str().unwrap();
                (wire.clone(), target.rsplit('/').next().unwrap().to_owned())
            })
            .collect();
        assert_eq!(mapping, messages(&doc, action), "{union}");
    }
    // Every schema a payload names, and every schema those refer to, is in the document.
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
}

/// Frames from a live session carry the fields their schemas require and no undocumented one
/// (the full JSON Schema validation is scripts/asyncapi-check's).
#[tokio::test]
async fn live_frames_have_the_documented_fields() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let (mut a, ready) = WsClient::ready(&app, &alice.access_token).await;
    let (mut b, _) = WsClient::ready(&app, &bob.access_token).await;
    a.send(json!({"type": "heartbeat"})).await;
    let heartbeat_ack = a.expect("heartbeat_ack").await;
    a.send(json!({"type": "send", "room_id": room, "client_msg_id": "m1", "content": "hi"}))
        .await;
    let ack = a.expect("ack").await;
    let created = b.expect("message.created").await;
    b.send(json!({"type": "typing", "room_id": room})).await;
    let typing = a.expect("typing").await;
    a.send(json!({"type": "subscribe", "room_ids": [uuid::Uuid::now_v7()]}))
        .await;
    let error = a.expect("error").await;

    let doc = document();
    let received = messages(&doc, "receive");
    for frame in [ready, heartbeat_ack, ack, created, typing, error] {
        let wire = frame["type"].as_str().unwrap();
        let schema = &doc["components"]["schemas"][&received[wire]];
        let properties = schema["properties"].as_object().unwrap();
        let fields = frame.as_object().unwrap();
        for key in fields.keys() {
            assert!(properties.contains_key(key), "{wire}: undocumented {key}");
        }
        for required in schema["required"].as_array().unwrap() {
            assert!(
                fields.contains_key(required.as_str().unwrap()),
                "{wire}: no {required}"
            );
        }
        // `ack` and `message.created` carry a MessageView (`error`'s message is text).
        if let Some(message) = frame.get("message").and_then(Value::as_object) {
            let view = &doc["components"]["schemas"]["MessageView"]["properties"];
            for key in message.keys() {
                assert!(
                    view.get(key).is_some(),
                    "{wire}.message: undocumented {key}"
                );
            }
        }
    }
}
