//! WebSocket frames (PROTOCOL.md "WebSocket protocol"): what clients send, what the server sends.
//! Their `ToSchema` derives are the protocol's schemas: `guildhall asyncapi` (src/asyncapi.rs)
//! and the OpenAPI components are built from them, so the documents describe these very types.
//! Each variant's `title` names its schema (one AsyncAPI message per variant).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Client -> server. Unknown fields are ignored; unknown types answer an `error` frame.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Follow visible public rooms the user has not joined; answered by `subscribed` (and an
    /// `error` `not_found` per room that is not visible).
    #[schema(title = "SubscribeOp")]
    Subscribe { room_ids: Vec<Uuid> },
    /// Stop following rooms (any room of the session, membership rooms included); answered by
    /// `unsubscribed`.
    #[schema(title = "UnsubscribeOp")]
    Unsubscribe { room_ids: Vec<Uuid> },
    /// Post a message; answered by `ack` once it is committed, or by an `error` whose `ref` is
    /// the `client_msg_id`.
    #[schema(title = "SendOp")]
    Send(SendFrame),
    /// The user is typing (ephemeral, never stored); the room's other sessions get `typing`.
    #[schema(title = "TypingOp")]
    Typing { room_id: Uuid },
    /// Move the read marker (never backwards); the room gets a `receipt`.
    #[schema(title = "ReadOp")]
    Read { room_id: Uuid, seq: i64 },
    /// Replay what was missed: for each room, the `message.created` frames after the seq, in
    /// order and before any live frame of that room, or `resync_required` past the cap.
    #[schema(title = "ResumeOp")]
    Resume {
        /// Room id -> the last seq the client has seen there.
        #[schema(value_type = HashMap<String, i64>)]
        positions: HashMap<Uuid, i64>,
    },
    /// Keep-alive (WebSocket ping frames also count); answered by `heartbeat_ack`.
    #[schema(title = "HeartbeatOp")]
    Heartbeat,
}

/// A message to post; acked once durable.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendFrame {
    pub room_id: Uuid,
    /// The sender's idempotency key: a repeat in the room returns the original message.
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<Uuid>,
    /// Ready attachments the sender uploaded into this room.
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
}

/// Server -> client frames the gateway itself writes (feature events arrive pre-serialized).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// First frame, once authenticated: the session follows `room_ids` from here on.
    #[schema(title = "ReadyEvent")]
    Ready {
        user_id: Uuid,
        session_id: Uuid,
        heartbeat_interval_ms: u64,
        /// The rooms the session is subscribed to (every room its user is a member of).
        room_ids: &'a [Uuid],
    },
    /// A `send` is committed: the stored message (a repeat of a `client_msg_id` gets the
    /// original).
    #[schema(title = "AckEvent")]
    Ack {
        client_msg_id: &'a str,
        /// The stored message (`MessageView`).
        message: &'a serde_json::Value,
    },
    /// A frame was refused, or the session is told why it ends (`slow_consumer`,
    /// `unauthorized` when the token expires).
    #[schema(title = "ErrorEvent")]
    Error {
        /// The stable machine code, as in problem+json (`validation_failed`, `not_found`,
        /// `forbidden`, `rate_limited`, `slow_consumer`, ...).
        code: &'a str,
        message: &'a str,
        /// The `client_msg_id` of the `send` this answers.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        /// How long to wait before retrying (`rate_limited`, `unavailable`).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Answers `heartbeat`.
    #[schema(title = "HeartbeatAckEvent")]
    HeartbeatAck,
    /// Answers `subscribe`: the rooms now followed.
    #[schema(title = "SubscribedEvent")]
    Subscribed { room_ids: &'a [Uuid] },
    /// Answers `unsubscribe`.
    #[schema(title = "UnsubscribedEvent")]
    Unsubscribed { room_ids: &'a [Uuid] },
    /// The gap since the client's position is longer than a resume replays: reload history.
    #[schema(title = "ResyncRequiredEvent")]
    ResyncRequired { room_id: Uuid, last_seq: i64 },
    /// Someone else is typing in the room.
    #[schema(title = "TypingEvent")]
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
