//! WebSocket client frames (PROTOCOL.md "WebSocket protocol"), decoded exactly as the gateway
//! does: `serde_json::from_str::<ClientFrame>` on the text of a `Message::Text`
//! (src/realtime/session.rs). The input is that text (tungstenite has already refused invalid
//! UTF-8 with close 1007, so non-UTF-8 inputs are skipped).
//!
//! `ClientFrame` lives in the private module `realtime::frames`, so its source file is compiled
//! into the check as a module: the very definition the server uses, not a copy. If
//! `guildhall::realtime` exports it one day, replace the `#[path]` module with that export.
//!
//! Properties: no panic; a decode error renders as the server's `error` frame (valid JSON); a
//! decoded frame, encoded back to the protocol's JSON, decodes to the same frame; the server
//! frames written in reply to it (`subscribed`, `unsubscribed`, `typing`, ...) are valid JSON.
use serde_json::{Value, json};
use uuid::Uuid;

#[allow(dead_code)]
#[path = "../../../src/realtime/frames.rs"]
mod frames;

use frames::{ClientFrame, SendFrame, ServerFrame, to_text};

/// Panics when a property does not hold for `data`.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => check_frame(&frame),
        Err(err) => {
            // What the session answers (session.rs: error_frame("validation_failed", ..)).
            let message = err.to_string();
            let reply = to_text(&ServerFrame::Error {
                code: "validation_failed",
                message: &message,
                reference: None,
                retry_after_ms: None,
            });
            assert_json_type(&reply, "error");
        }
    }
}

fn check_frame(frame: &ClientFrame) {
    let encoded = encode(frame);
    let text = encoded.to_string();
    let again = serde_json::from_str::<ClientFrame>(&text)
        .unwrap_or_else(|e| panic!("re-encoded frame does not decode: {e}\n{text}"));
    assert_eq!(encode(&again), encoded, "frame does not round-trip: {text}");

    // The server frames the session builds from it.
    let nobody = Uuid::nil();
    match frame {
        ClientFrame::Subscribe { room_ids } => {
            assert_json_type(
                &to_text(&ServerFrame::Subscribed { room_ids }),
                "subscribed",
            );
        }
        ClientFrame::Unsubscribe { room_ids } => {
            let reply = to_text(&ServerFrame::Unsubscribed { room_ids });
            assert_json_type(&reply, "unsubscribed");
        }
        ClientFrame::Typing { room_id } => {
            let event = ServerFrame::Typing {
                room_id: *room_id,
                user_id: nobody,
                expires_in_ms: 8000,
            };
            assert_json_type(&to_text(&event), "typing");
        }
        ClientFrame::Resume { positions } => {
            for (room_id, seq) in positions {
                let frame = ServerFrame::ResyncRequired {
                    room_id: *room_id,
                    last_seq: *seq,
                };
                assert_json_type(&to_text(&frame), "resync_required");
            }
        }
        ClientFrame::Send(send) => {
            // A refused send is answered with an error frame carrying the client's id.
            let reply = to_text(&ServerFrame::Error {
                code: "validation_failed",
                message: &send.content,
                reference: Some(&send.client_msg_id),
                retry_after_ms: None,
            });
            assert_json_type(&reply, "error");
        }
        ClientFrame::Read { .. } | ClientFrame::Heartbeat => {
            assert_json_type(&to_text(&ServerFrame::HeartbeatAck), "heartbeat_ack");
        }
    }
}

/// The frame as PROTOCOL.md writes it (`ClientFrame` is Deserialize only). Maps compare by
/// content, so `resume` positions need no order.
fn encode(frame: &ClientFrame) -> Value {
    match frame {
        ClientFrame::Subscribe { room_ids } => json!({"type": "subscribe", "room_ids": room_ids}),
        ClientFrame::Unsubscribe { room_ids } => {
            json!({"type": "unsubscribe", "room_ids": room_ids})
        }
        ClientFrame::Send(SendFrame {
            room_id,
            client_msg_id,
            content,
            reply_to,
            attachment_ids,
        }) => json!({
            "type": "send",
            "room_id": room_id,
            "client_msg_id": client_msg_id,
            "content": content,
            "reply_to": reply_to,
            "attachment_ids": attachment_ids,
        }),
        ClientFrame::Typing { room_id } => json!({"type": "typing", "room_id": room_id}),
        ClientFrame::Read { room_id, seq } => {
            json!({"type": "read", "room_id": room_id, "seq": seq})
        }
        ClientFrame::Resume { positions } => json!({"type": "resume", "positions": positions}),
        ClientFrame::Heartbeat => json!({"type": "heartbeat"}),
    }
}

fn assert_json_type(text: &str, expected: &str) {
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("server frame is not JSON ({e}): {text}"));
    assert_eq!(value["type"], expected, "server frame: {text}");
}
