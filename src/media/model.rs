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

/// `attachment.updated`: processing of an upload in the room finished (ready or failed).
#[derive(Debug, Serialize)]
pub struct AttachmentUpdated<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room_id: Uuid,
    pub attachment: &'a AttachmentView,
}

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
