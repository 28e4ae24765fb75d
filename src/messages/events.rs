//! Message shapes and the events messaging publishes (wire names from PROTOCOL.md).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct MessageView {
    pub id: Uuid,
    pub room_id: Uuid,
    /// Gapless, strictly increasing per room; the first message of a room has seq 1.
    pub seq: i64,
    pub sender_id: Uuid,
    /// Empty once deleted.
    pub content: String,
    pub reply_to: Option<Uuid>,
    /// The attachments the message carries, in the order sent (no URLs: ask
    /// `GET /v1/attachments/{attachment_id}`). Empty once deleted.
    #[schema(value_type = Vec<crate::media::model::MessageAttachment>)]
    pub attachments: serde_json::Value,
    /// Users mentioned with `@username` who can read the room.
    pub mentions: Vec<Uuid>,
    pub client_msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    /// The poll this message carries (`GET /v1/polls/{poll_id}`); null once deleted.
    pub poll_id: Option<Uuid>,
    /// The survey this message carries (`GET /v1/surveys/{survey_id}`); null once deleted.
    pub survey_id: Option<Uuid>,
}

/// What messaging publishes to a room's sessions (`crate::realtime::Event`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum MessageEvent<'a> {
    /// A message was committed (also how `resume` replays, in seq order).
    #[serde(rename = "message.created")]
    #[schema(title = "MessageCreatedEvent")]
    Created {
        room_id: Uuid,
        message: &'a MessageView,
    },
    /// A message was edited.
    #[serde(rename = "message.updated")]
    #[schema(title = "MessageUpdatedEvent")]
    Updated {
        room_id: Uuid,
        message: &'a MessageView,
    },
    /// A message was deleted (the tombstone: empty content, `deleted` true).
    #[serde(rename = "message.deleted")]
    #[schema(title = "MessageDeletedEvent")]
    Deleted {
        room_id: Uuid,
        message: &'a MessageView,
    },
    #[serde(rename = "reaction.added")]
    #[schema(title = "ReactionAddedEvent")]
    ReactionAdded {
        room_id: Uuid,
        message_id: Uuid,
        user_id: Uuid,
        emoji: &'a str,
    },
    #[serde(rename = "reaction.removed")]
    #[schema(title = "ReactionRemovedEvent")]
    ReactionRemoved {
        room_id: Uuid,
        message_id: Uuid,
        user_id: Uuid,
        emoji: &'a str,
    },
    /// A user's read marker moved to `seq`.
    #[serde(rename = "receipt")]
    #[schema(title = "ReceiptEvent")]
    Receipt {
        room_id: Uuid,
        user_id: Uuid,
        seq: i64,
    },
}

impl crate::realtime::Event for MessageEvent<'_> {}
