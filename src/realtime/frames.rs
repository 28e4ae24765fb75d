//! WebSocket frames (PROTOCOL.md "WebSocket protocol"): what clients send, what the server sends.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Client -> server. Unknown fields are ignored; unknown types answer an `error` frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Subscribe { room_ids: Vec<Uuid> },
    Unsubscribe { room_ids: Vec<Uuid> },
    Send(SendFrame),
    Typing { room_id: Uuid },
    Read { room_id: Uuid, seq: i64 },
    Resume { positions: HashMap<Uuid, i64> },
    Heartbeat,
}

/// A message to post; acked once durable.
#[derive(Debug, Deserialize)]
pub struct SendFrame {
    pub room_id: Uuid,
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<Uuid>,
    /// Ready attachments the sender uploaded into this room.
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
}

/// Server -> client frames the gateway itself writes (feature events arrive pre-serialized).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Ready {
        user_id: Uuid,
        session_id: Uuid,
        heartbeat_interval_ms: u64,
        room_ids: &'a [Uuid],
    },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        /// How long to wait before retrying (`rate_limited`, `unavailable`).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    HeartbeatAck,
    Subscribed {
        room_ids: &'a [Uuid],
    },
    Unsubscribed {
        room_ids: &'a [Uuid],
    },
    /// The gap since the client's position is longer than a resume replays: reload history.
    ResyncRequired {
        room_id: Uuid,
        last_seq: i64,
    },
    Typing {
        room_id: Uuid,
        user_id: Uuid,
        expires_in_ms: u64,
    },
}

pub fn to_text(frame: &ServerFrame<'_>) -> String {
    serde_json::to_string(frame)
        .unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"frame"}"#.into())
}
