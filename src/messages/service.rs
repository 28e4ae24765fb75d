//! Messaging logic shared by REST and the WebSocket: send (through the group-commit writer),
//! history, edit, delete, reactions, read markers, unread counts, search.

use std::collections::BTreeSet;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::events::{MessageEvent, MessageView};
use super::repo::{self, NewMessage};
use crate::error::AppError;
use crate::permissions::{Authorized, Perm, perm};
use crate::ratelimit::Limit;
use crate::realtime::Audience;
use crate::state::AppState;
use crate::{identity, media};

pub struct SendInput {
    pub content: String,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<Uuid>,
    pub attachment_ids: Vec<Uuid>,
}

fn check_content(state: &AppState, content: &str) -> Result<(), AppError> {
    let max = state.config.messaging.max_chars;
    if content.chars().count() > max {
        return Err(AppError::PayloadTooLarge(format!(
            "content is longer than {max} characters"
        )));
    }
    if content.trim().is_empty() {
        return Err(AppError::field("content", "must not be empty"));
    }
    Ok(())
}

/// Validates, resolves mentions, and waits for the durable commit (the ack).
pub async fn send(
    state: &AppState,
    auth: &Authorized<perm::SendMessages>,
    input: SendInput,
) -> Result<MessageView, AppError> {
    let limit = Limit {
        name: "messages",
        rate: state.config.rate_limits.messages,
    };
    state.limiter.hit(limit, &auth.user().to_string()).await?;
    check_content(state, &input.content)?;
    let room = auth.scope().id;
    check_client_msg_id(input.client_msg_id.as_deref())?;
    let attachments =
        media::service::for_message(state, room, auth.user(), &input.attachment_ids).await?;
    if let Some(reply_to) = input.reply_to
        && repo::message(&state.db, room, reply_to).await?.is_none()
    {
        return Err(AppError::field("reply_to", "no such message in this room"));
    }
    let mentions = mentions(state, room, &input.content).await?;
    let message = NewMessage {
        id: Uuid::now_v7(),
        room_id: room,
        sender_id: auth.user(),
        content: input.content,
        reply_to: input.reply_to,
        client_msg_id: input.client_msg_id,
        mentions,
        attachments,
        poll_id: None,
        survey_id: None,
    };
    state.writer.send(message).await
}

fn check_client_msg_id(id: Option<&str>) -> Result<(), AppError> {
    match id {
        Some(id) if id.is_empty() || id.chars().count() > 64 => {
            Err(AppError::field("client_msg_id", "must be 1-64 characters"))
        }
        _ => Ok(()),
    }
}

/// What a message carries into the timeline besides its text.
#[derive(Debug, Clone, Copy)]
pub enum NewCarrier {
    Poll(Uuid),
    Survey(Uuid),
}

/// Posts the message that carries a poll or survey (the caller has checked create_polls);
/// durable and idempotent like any send.
pub async fn post_carrier(
    state: &AppState,
    room: Uuid,
    sender: Uuid,
    content: String,
    client_msg_id: Option<String>,
    carrier: NewCarrier,
) -> Result<MessageView, AppError> {
    check_client_msg_id(client_msg_id.as_deref())?;
    let mentions = mentions(state, room, &content).await?;
    let (poll_id, survey_id) = match carrier {
        NewCarrier::Poll(id) => (Some(id), None),
        NewCarrier::Survey(id) => (None, Some(id)),
    };
    let message = NewMessage {
        id: Uuid::now_v7(),
        room_id: room,
        sender_id: sender,
        content,
        reply_to: None,
        client_msg_id,
        mentions,
        attachments: serde_json::json!([]),
        poll_id,
        survey_id,
    };
    state.writer.send(message).await
}

/// `@username` tokens naming users who can read the room.
async fn mentions(state: &AppState, room: Uuid, content: &str) -> Result<Vec<Uuid>, AppError> {
    let names: BTreeSet<String> = content
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '!' | '?' | '(' | ')'))
        .filter_map(|word| word.strip_prefix('@'))
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .take(50)
        .collect();
    let mut ids = Vec::new();
    for name in names {
        let Some(user) = identity::service::user_by_username(&state.db, &name).await? else {
            continue;
        };
        let readable = match state.permissions.scope(user.id, room).await? {
            Some(scope) => state
                .permissions
                .effective(user.id, &scope)
                .await?
                .0
                .contains(Perm::ReadHistory),
            None => false,
        };
        if readable {
            ids.push(user.id);
        }
    }
    Ok(ids)
}

pub struct HistoryQuery {
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub limit: u64,
}

pub async fn history(
    state: &AppState,
    auth: &Authorized<perm::ReadHistory>,
    query: HistoryQuery,
) -> Result<Vec<MessageView>, AppError> {
    let rows = repo::history(
        &state.db,
        auth.scope().id,
        query.before,
        query.after,
        query.limit,
    )
    .await?;
    Ok(rows.into_iter().map(MessageView::from).collect())
}

/// The sender edits their own message; the edit is announced as `message.updated`.
pub async fn edit(
    state: &AppState,
    auth: &Authorized<perm::SendMessages>,
    message_id: Uuid,
    content: String,
) -> Result<MessageView, AppError> {
    check_content(state, &content)?;
    let room = auth.scope().id;
    let current = repo::message(&state.db, room, message_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if current.sender_id != auth.user() {
        return Err(AppError::Forbidden(
            "only the sender can edit a message".into(),
        ));
    }
    if current.poll_id.is_some() || current.survey_id.is_some() {
        return Err(AppError::Conflict {
            detail: "a message that carries a poll or survey cannot be edited".into(),
            fields: vec![],
        });
    }
    let mentions = mentions(state, room, &content).await?;
    let row = repo::edit(&state.db, room, message_id, &content, &mentions)
        .await?
        .ok_or(AppError::NotFound)?;
    let message = MessageView::from(row);
    state
        .bus
        .publish(
            Audience::Room(room),
            None,
            &MessageEvent::Updated {
                room_id: room,
                message: &message,
            },
        )
        .await;
    Ok(message)
}

/// The sender, or anyone with manage_messages, deletes (tombstones) a message.
pub async fn delete(
    state: &AppState,
    auth: &Authorized<perm::ReadHistory>,
    message_id: Uuid,
) -> Result<(), AppError> {
    let room = auth.scope().id;
    let current = repo::message(&state.db, room, message_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if current.sender_id != auth.user() && !auth.perms().contains(Perm::ManageMessages) {
        return Err(AppError::Forbidden(
            "requires the manage_messages permission here".into(),
        ));
    }
    if let Some(row) = repo::delete(&state.db, room, message_id).await? {
        let message = MessageView::from(row);
        state
            .bus
            .publish(
                Audience::Room(room),
                None,
                &MessageEvent::Deleted {
                    room_id: room,
                    message: &message,
                },
            )
            .await;
    }
    Ok(())
}

fn emoji(raw: &str) -> Result<&str, AppError> {
    let len = raw.chars().count();
    if len == 0 || len > 32 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AppError::field(
            "emoji",
            "must be 1-32 characters without spaces",
        ));
    }
    Ok(raw)
}

pub async fn react(
    state: &AppState,
    auth: &Authorized<perm::SendMessages>,
    message_id: Uuid,
    raw: &str,
    add: bool,
) -> Result<(), AppError> {
    let emoji = emoji(raw)?;
    let room = auth.scope().id;
    let message = repo::message(&state.db, room, message_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if message.deleted_at.is_some() {
        return Err(AppError::NotFound);
    }
    let (user_id, changed) = if add {
        (
            auth.user(),
            repo::add_reaction(&state.db, message_id, auth.user(), emoji).await?,
        )
    } else {
        (
            auth.user(),
            repo::remove_reaction(&state.db, message_id, auth.user(), emoji).await?,
        )
    };
    if changed {
        let event = if add {
            MessageEvent::ReactionAdded {
                room_id: room,
                message_id,
                user_id,
                emoji,
            }
        } else {
            MessageEvent::ReactionRemoved {
                room_id: room,
                message_id,
                user_id,
                emoji,
            }
        };
        state.bus.publish(Audience::Room(room), None, &event).await;
    }
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
}

pub async fn reactions(
    state: &AppState,
    messages: &[Uuid],
) -> Result<Vec<(Uuid, ReactionCount)>, AppError> {
    Ok(repo::reaction_counts(&state.db, messages)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.message_id,
                ReactionCount {
                    emoji: r.emoji,
                    count: r.count,
                },
            )
        })
        .collect())
}

/// Moves the caller's read marker (never backwards) and tells the room.
pub async fn mark_read(
    state: &AppState,
    auth: &Authorized<perm::ReadHistory>,
    seq: i64,
) -> Result<i64, AppError> {
    if seq < 0 {
        return Err(AppError::field("seq", "must not be negative"));
    }
    let room = auth.scope().id;
    let seq = repo::mark_read(&state.db, room, auth.user(), seq).await?;
    let event = MessageEvent::Receipt {
        room_id: room,
        user_id: auth.user(),
        seq,
    };
    state.bus.publish(Audience::Room(room), None, &event).await;
    Ok(seq)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomUnread {
    pub room_id: Uuid,
    pub last_seq: i64,
    pub last_read_seq: i64,
    pub unread: i64,
    pub mentions: i32,
}

/// Unread and mention counts of every room the caller reads, from counters (no scans).
pub async fn unread(state: &AppState, user: Uuid) -> Result<Vec<RoomUnread>, AppError> {
    let rooms = state
        .permissions
        .member_rooms_with(user, Perm::ReadHistory)
        .await?;
    Ok(repo::unread(&state.db, user, &rooms)
        .await?
        .into_iter()
        .map(|r| RoomUnread {
            room_id: r.room_id,
            last_seq: r.last_seq,
            last_read_seq: r.last_read_seq,
            unread: (r.last_seq - r.last_read_seq).max(0),
            mentions: r.mention_count,
        })
        .collect())
}

/// Full-text search in the rooms the caller may read, optionally narrowed to one community or room.
pub async fn search(
    state: &AppState,
    user: Uuid,
    q: &str,
    community: Option<Uuid>,
    room: Option<Uuid>,
    limit: u64,
) -> Result<Vec<MessageView>, AppError> {
    let q = q.trim();
    if q.is_empty() || q.chars().count() > 200 {
        return Err(AppError::field("q", "must be 1-200 characters"));
    }
    let mut rooms = state
        .permissions
        .member_rooms_with(user, Perm::ReadHistory)
        .await?;
    if let Some(room) = room {
        rooms.retain(|r| *r == room);
    }
    if let Some(community) = community {
        let mut kept = Vec::new();
        for r in rooms {
            if state
                .permissions
                .scope(user, r)
                .await?
                .is_some_and(|s| s.community_id == Some(community))
            {
                kept.push(r);
            }
        }
        rooms = kept;
    }
    Ok(repo::search(&state.db, &rooms, q, limit)
        .await?
        .into_iter()
        .map(MessageView::from)
        .collect())
}

pub async fn last_seq(state: &AppState, room: Uuid) -> Result<i64, AppError> {
    Ok(repo::last_seq(&state.db, room).await?)
}
