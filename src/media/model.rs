//! Media shapes on the wire: the upload request and ticket, the attachment view, the event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUpload {
    pub room_id: Uuid,
    /// Shown to users and used as the download name; never part of the storage key. Path
    /// parts, control and bidi characters are removed; at most 255 characters remain.
    #[schema(min_length = 1, pattern = r"[^\s/\\.\u0000-\u001f\u007f-\u009f]")]
    pub filename: String,
    /// One of the server's allowed types (default: image/jpeg, image/png, image/webp,
    /// image/gif, application/pdf, text/plain, application/zip); parameters are dropped.
    pub content_type: String,
    /// Exact size in bytes; the upload URL accepts exactly this many (default limit 25 MiB).
    #[schema(minimum = 1)]
    pub size: u64,
}

/// How to send the bytes: `method` to `url` with exactly `headers`, before `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTarget {
    /// Always `PUT`.
    pub method: &'static str,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTicket {
    pub attachment_id: Uuid,
    pub upload: UploadTarget,
    pub attachment: AttachmentView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentStatus {
    /// Waiting for the client's PUT and `complete`.
    Pending,
    /// The media worker is checking it.
    Processing,
    /// Checked; may be attached to messages.
    Ready,
    /// Refused; `failure_reason` says why. Its objects are deleted.
    Failed,
}

impl AttachmentStatus {
    pub fn parse(text: &str) -> Self {
        match text {
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// A processed rendition (thumbnail) of an image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariantView {
    /// `thumb_256`, `thumb_1024`: the longest side in pixels.
    pub name: String,
    /// Short-lived download URL (null in events: ask `GET /v1/attachments/{id}`).
    pub url: Option<String>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: Uuid,
    pub room_id: Uuid,
    pub uploader_id: Uuid,
    pub status: AttachmentStatus,
    pub filename: String,
    /// The detected type once processed; the declared type before.
    pub content_type: String,
    /// Stored bytes once processed (metadata stripped); the declared size before.
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A compact placeholder for images (https://blurha.sh).
    pub blurhash: Option<String>,
    pub failure_reason: Option<String>,
    /// Short-lived download URL of the (metadata-stripped) original, when ready.
    pub url: Option<String>,
    /// When `url` and the variants' URLs stop working.
    pub urls_expire_at: Option<DateTime<Utc>>,
    pub variants: Vec<VariantView>,
    pub created_at: DateTime<Utc>,
}

/// What media publishes to a room's sessions (`crate::realtime::Event`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum AttachmentEvent<'a> {
    /// Processing of an upload in the room finished (ready or failed).
    #[serde(rename = "attachment.updated")]
    #[schema(title = "AttachmentUpdatedEvent")]
    Updated {
        room_id: Uuid,
        attachment: &'a AttachmentView,
    },
}

impl crate::realtime::Event for AttachmentEvent<'_> {}

/// What a message stores of each attachment it carries (no URLs: they expire).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageAttachment {
    pub id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub blurhash: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire shape `attachment.updated` had as an ad-hoc struct: `type`, `room_id`, `attachment`.
    #[test]
    fn attachment_updated_keeps_its_wire_shape() {
        let attachment = AttachmentView {
            id: Uuid::nil(),
            room_id: Uuid::nil(),
            uploader_id: Uuid::nil(),
            status: AttachmentStatus::Ready,
            filename: "a.png".into(),
            content_type: "image/png".into(),
            size: 1,
            width: None,
            height: None,
            blurhash: None,
            failure_reason: None,
            url: None,
            urls_expire_at: None,
            variants: Vec::new(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let event = AttachmentEvent::Updated {
            room_id: Uuid::nil(),
            attachment: &attachment,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "type": "attachment.updated",
                "room_id": Uuid::nil(),
                "attachment": serde_json::to_value(&attachment).unwrap(),
            })
        );
    }
}
