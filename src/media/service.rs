//! Upload sessions and attachments: create (presigned PUT), complete (size check, Lambda),
//! the worker's callback, reads with presigned GETs, and what messages may carry.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::model::{
    AttachmentEvent, AttachmentStatus, AttachmentView, CreateUpload, MessageAttachment,
    UploadTarget, UploadTicket, VariantView,
};
use super::repo::{self, AttachmentRow, NewAttachment, Processed};
use super::storage::Storage;
use super::{callback, checks};
use crate::error::AppError;
use crate::permissions::{ScopeKind, perm};
use crate::ratelimit::Limit;
use crate::realtime::Audience;
use crate::state::AppState;

/// Most attachments one message may carry.
pub const MAX_PER_MESSAGE: usize = 10;

fn storage(state: &AppState) -> Result<&Storage, AppError> {
    state.media.storage().ok_or_else(|| AppError::Unavailable {
        detail: "media uploads are not configured on this server (set GUILDHALL_S3_BUCKET or \
                 GUILDHALL_S3_ENDPOINT)"
            .to_owned(),
        retry_after_s: None,
    })
}

/// Checks the declaration, stores a `pending` attachment and hands out a presigned PUT for a
/// key the server chose.
pub async fn create_upload(
    state: &AppState,
    user: Uuid,
    input: CreateUpload,
) -> Result<UploadTicket, AppError> {
    let storage = storage(state)?;
    let auth = state
        .permissions
        .require_kind::<perm::UploadMedia>(user, input.room_id, ScopeKind::Room)
        .await?;
    let limit = Limit {
        name: "uploads",
        rate: state.config.rate_limits.uploads,
    };
    state.limiter.hit(limit, &user.to_string()).await?;
    let config = &state.config.media;
    let filename = checks::filename(&input.filename)?;
    let content_type = checks::content_type(config, &input.content_type)?;
    let size = checks::size(config, input.size)?;
    let id = Uuid::now_v7();
    let owner = auth
        .scope()
        .community_id
        .map_or_else(|| "dm".to_owned(), |c| c.to_string());
    let key = format!("uploads/{owner}/{}/{id}", input.room_id);
    let row = repo::insert(
        &state.db,
        &NewAttachment {
            id,
            room_id: input.room_id,
            uploader_id: user,
            object_key: &key,
            filename: &filename,
            declared_type: &content_type,
            declared_size: size,
        },
    )
    .await?;
    let ttl = config.upload_url_ttl;
    let presigned = storage
        .presign_put(&key, &content_type, input.size, ttl)
        .await?;
    let mut headers: BTreeMap<String, String> = presigned.headers.into_iter().collect();
    // The signature covers these two; say them with their usual spelling.
    headers.remove("content-type");
    headers.remove("content-length");
    headers.insert("Content-Type".to_owned(), content_type);
    headers.insert("Content-Length".to_owned(), input.size.to_string());
    Ok(UploadTicket {
        attachment_id: id,
        upload: UploadTarget {
            method: "PUT",
            url: presigned.url,
            headers,
            expires_at: Utc::now() + ttl,
        },
        attachment: view(state, row, false).await?,
    })
}

/// The uploader says the PUT is done: the object must be there with the declared size; then
/// the worker is asked to check it. Repeating it once processing started changes nothing.
pub async fn complete(state: &AppState, user: Uuid, id: Uuid) -> Result<AttachmentView, AppError> {
    let storage = storage(state)?;
    let row = repo::get(&state.db, id)
        .await?
        .filter(|row| row.uploader_id == user)
        .ok_or(AppError::NotFound)?;
    match AttachmentStatus::parse(&row.status) {
        AttachmentStatus::Pending => {}
        AttachmentStatus::Processing | AttachmentStatus::Ready => {
            return view(state, row, false).await;
        }
        AttachmentStatus::Failed => return Err(conflict("this upload failed; start a new one")),
    }
    let declared = row.declared_size as u64;
    match storage.size(&row.object_key).await? {
        None => {
            return Err(conflict(
                "nothing has been uploaded yet: PUT the file to the upload URL first",
            ));
        }
        Some(actual) if actual != declared => {
            let reason = format!("uploaded {actual} bytes, declared {declared}");
            if let Some(failed) =
                repo::transition(&state.db, id, "pending", "failed", Some(&reason)).await?
            {
                publish(state, failed).await;
            }
            return Err(conflict(&reason));
        }
        Some(_) => {}
    }
    let Some(row) = repo::transition(&state.db, id, "pending", "processing", None).await? else {
        // A concurrent complete won the race; answer with what it did.
        let row = repo::get(&state.db, id).await?.ok_or(AppError::NotFound)?;
        return view(state, row, false).await;
    };
    if let Err(err) = invoke(state, storage, &row).await {
        repo::transition(&state.db, id, "processing", "pending", None).await?;
        tracing::warn!(error = %err, attachment = %id, "media worker not invoked");
        return Err(AppError::Unavailable {
            detail: "the media worker could not be reached; complete again shortly".to_owned(),
            retry_after_s: Some(5),
        });
    }
    view(state, row, false).await
}

fn conflict(detail: &str) -> AppError {
    AppError::Conflict {
        detail: detail.to_owned(),
        fields: Vec::new(),
    }
}

async fn invoke(state: &AppState, storage: &Storage, row: &AttachmentRow) -> anyhow::Result<()> {
    let payload = guildhall_media::contract::DirectInvocation {
        attachment_id: row.id,
        bucket: storage.bucket().to_owned(),
        key: row.object_key.clone(),
        declared_content_type: row.declared_type.clone(),
        declared_size: row.declared_size as u64,
        callback_url: state.media.callback_url().to_owned(),
    };
    storage.invoke(serde_json::to_vec(&payload)?).await
}

/// The callback body, read once its signature is verified.
pub fn decode_callback(body: &[u8]) -> Result<guildhall_media::CallbackBody, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::BadRequest {
        detail: format!("not a callback body: {e}"),
        fields: Vec::new(),
    })
}

/// The worker's signed verdict: sets `ready` (with what it measured) or `failed` (with why),
/// once; replays and forgeries are refused before anything changes.
pub async fn accept_callback(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(), AppError> {
    storage(state)?;
    let secret = state
        .config
        .media
        .storage
        .as_ref()
        .map(|s| s.callback_secret.expose().as_bytes())
        .unwrap_or_default();
    let signature = callback::verify(secret, headers, body, Utc::now().timestamp())?;
    let verdict = decode_callback(body)?;
    let tx = state.db.begin().await?;
    if !repo::remember_callback(&tx, &signature).await? {
        return Err(conflict("this callback was already received"));
    }
    let row = repo::get_for_update(&tx, verdict.attachment_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.status != "processing" {
        return Err(conflict("the attachment is not being processed"));
    }
    let updated = match verdict.status {
        guildhall_media::Status::Ready => mark_ready(&tx, &row, &verdict).await?,
        guildhall_media::Status::Failed => {
            let reason = verdict.reason.as_deref().unwrap_or("the file was refused");
            repo::transition(&tx, row.id, "processing", "failed", Some(reason)).await?
        }
    };
    tx.commit().await?;
    if let Some(updated) = updated {
        publish(state, updated).await;
    }
    Ok(())
}

async fn mark_ready(
    tx: &sea_orm::DatabaseTransaction,
    row: &AttachmentRow,
    verdict: &guildhall_media::CallbackBody,
) -> Result<Option<AttachmentRow>, AppError> {
    let prefix = format!("{}.", row.object_key);
    if let Some(stray) = verdict
        .variants
        .iter()
        .find(|v| !v.key.starts_with(&prefix))
    {
        return Err(AppError::field(
            "variants",
            format!(
                "variant key {:?} is outside the attachment's keys",
                stray.key
            ),
        ));
    }
    let (Some(content_type), Some(size)) = (verdict.content_type.as_deref(), verdict.size) else {
        return Err(AppError::field(
            "size",
            "a ready attachment has a type and a size",
        ));
    };
    let dimension = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
    let done = Processed {
        content_type,
        size: i64::try_from(size).map_err(|_| AppError::field("size", "too large"))?,
        width: dimension(verdict.width),
        height: dimension(verdict.height),
        blurhash: verdict.blurhash.as_deref(),
        variants: serde_json::to_value(&verdict.variants).map_err(anyhow::Error::from)?,
    };
    Ok(repo::mark_ready(tx, row.id, &done).await?)
}

/// The attachment, to those who can read its room; download URLs once it is ready.
pub async fn attachment_for(
    state: &AppState,
    user: Uuid,
    id: Uuid,
) -> Result<AttachmentView, AppError> {
    storage(state)?;
    let row = repo::get(&state.db, id).await?.ok_or(AppError::NotFound)?;
    state.permissions.room_reader(user, row.room_id).await?;
    view(state, row, true).await
}

/// What a message stores of `ids`: each must be a ready attachment the sender uploaded into
/// this room.
pub async fn for_message(
    state: &AppState,
    room: Uuid,
    sender: Uuid,
    ids: &[Uuid],
) -> Result<serde_json::Value, AppError> {
    if ids.is_empty() {
        return Ok(serde_json::json!([]));
    }
    if ids.len() > MAX_PER_MESSAGE {
        return Err(AppError::field(
            "attachment_ids",
            format!("at most {MAX_PER_MESSAGE} attachments per message"),
        ));
    }
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != ids.len() {
        return Err(AppError::field(
            "attachment_ids",
            "lists an attachment twice",
        ));
    }
    let rows = repo::ready_for_message(&state.db, room, sender, ids).await?;
    let carried: Vec<MessageAttachment> = ids
        .iter()
        .map(|id| {
            rows.iter()
                .find(|row| row.id == *id)
                .map(message_attachment)
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            AppError::field(
                "attachment_ids",
                "no such ready attachment of yours in this room",
            )
        })?;
    Ok(serde_json::to_value(carried).map_err(anyhow::Error::from)?)
}

fn message_attachment(row: &AttachmentRow) -> MessageAttachment {
    MessageAttachment {
        id: row.id,
        filename: row.filename.clone(),
        content_type: row.content_type.clone().unwrap_or_default(),
        size: row.size.unwrap_or(0) as u64,
        width: row.width.map(|w| w as u32),
        height: row.height.map(|h| h as u32),
        blurhash: row.blurhash.clone(),
    }
}

/// `attachment.updated` to the room: processing ended.
pub async fn publish(state: &AppState, row: AttachmentRow) {
    let room_id = row.room_id;
    match view(state, row, false).await {
        Ok(attachment) => {
            let event = AttachmentEvent::Updated {
                room_id,
                attachment: &attachment,
            };
            state
                .bus
                .publish(Audience::Room(room_id), None, &event)
                .await;
        }
        Err(err) => tracing::warn!(error = ?err, "attachment.updated not published"),
    }
}

/// The API shape; with `urls`, presigned GETs for a ready attachment and its variants.
async fn view(
    state: &AppState,
    row: AttachmentRow,
    urls: bool,
) -> Result<AttachmentView, AppError> {
    let status = AttachmentStatus::parse(&row.status);
    let stored: Vec<guildhall_media::VariantInfo> =
        serde_json::from_value(row.variants.clone()).unwrap_or_default();
    let signer = match (
        urls && status == AttachmentStatus::Ready,
        state.media.storage(),
    ) {
        (true, Some(storage)) => Some(storage),
        _ => None,
    };
    let ttl = state.config.media.download_url_ttl;
    let mut variants = Vec::with_capacity(stored.len());
    for variant in stored {
        let url = match signer {
            Some(s) => Some(
                s.presign_get(
                    &variant.key,
                    &variant_filename(&row.filename, &variant.name),
                    ttl,
                )
                .await?,
            ),
            None => None,
        };
        variants.push(VariantView {
            name: variant.name,
            url,
            content_type: variant.content_type,
            width: variant.width,
            height: variant.height,
            size: variant.size,
        });
    }
    let url = match signer {
        Some(s) => Some(s.presign_get(&row.object_key, &row.filename, ttl).await?),
        None => None,
    };
    Ok(AttachmentView {
        id: row.id,
        room_id: row.room_id,
        uploader_id: row.uploader_id,
        status,
        content_type: row.content_type.unwrap_or(row.declared_type),
        size: row.size.unwrap_or(row.declared_size) as u64,
        width: row.width.map(|w| w as u32),
        height: row.height.map(|h| h as u32),
        blurhash: row.blurhash,
        failure_reason: row.failure_reason,
        urls_expire_at: url.as_ref().map(|_| Utc::now() + ttl),
        url,
        variants,
        filename: row.filename,
        created_at: row.created_at,
    })
}

/// `photo.png` + `thumb_256` -> `photo.thumb_256.png`.
fn variant_filename(filename: &str, variant: &str) -> String {
    match filename.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{variant}.{ext}"),
        _ => format!("{filename}.{variant}"),
    }
}
