//! Messaging's side of the gateway: room access, replay, and the `send` / `read` frames, on
//! the same service path as REST.

use async_trait::async_trait;
use uuid::Uuid;

use super::events::{MessageEvent, MessageView};
use super::repo;
use super::service::{self, SendInput};
use crate::error::AppError;
use crate::permissions::{Perm, perm};
use crate::realtime::{Hooks, RoomAccess, SendFrame};
use crate::state::AppState;

/// Built once at start-up around a handle that is filled in after the state exists.
pub struct GatewayHooks {
    state: std::sync::OnceLock<AppState>,
}

impl GatewayHooks {
    pub fn new() -> Self {
        Self {
            state: std::sync::OnceLock::new(),
        }
    }

    pub fn bind(&self, state: AppState) {
        let _ = self.state.set(state);
    }

    fn state(&self) -> Result<&AppState, AppError> {
        self.state.get().ok_or_else(|| AppError::Unavailable {
            detail: "starting".into(),
            retry_after_s: Some(1),
        })
    }
}

impl Default for GatewayHooks {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Hooks for GatewayHooks {
    async fn member_rooms(&self, user: Uuid) -> Result<Vec<RoomAccess>, AppError> {
        let state = self.state()?;
        let rooms = state
            .permissions
            .member_rooms_with(user, Perm::ReadHistory)
            .await?;
        self.last_seqs(&rooms).await
    }

    async fn last_seqs(&self, rooms: &[Uuid]) -> Result<Vec<RoomAccess>, AppError> {
        let seqs = repo::last_seqs(&self.state()?.db, rooms).await?;
        Ok(seqs
            .into_iter()
            .map(|(room_id, last_seq)| RoomAccess { room_id, last_seq })
            .collect())
    }

    async fn readable(&self, user: Uuid, room: Uuid) -> Result<Option<RoomAccess>, AppError> {
        let state = self.state()?;
        let Some(scope) = state.permissions.scope(user, room).await? else {
            return Ok(None);
        };
        let (perms, _) = state.permissions.effective(user, &scope).await?;
        let is_room = matches!(
            scope.kind,
            crate::permissions::ScopeKind::Room | crate::permissions::ScopeKind::Dm
        );
        if !is_room || !perms.contains(Perm::View) || !perms.contains(Perm::ReadHistory) {
            return Ok(None);
        }
        Ok(Some(RoomAccess {
            room_id: room,
            last_seq: service::last_seq(state, room).await?,
        }))
    }

    async fn replay(
        &self,
        room: Uuid,
        after: i64,
        until: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, String)>, AppError> {
        let state = self.state()?;
        let mut frames = Vec::new();
        let mut position = after;
        // Pages of 500 so a long gap does not load in one query.
        while (frames.len() as u64) < limit {
            let page = 500.min(limit - frames.len() as u64);
            let rows = repo::history(&state.db, room, None, Some(position), page).await?;
            let done = (rows.len() as u64) < page;
            for row in rows {
                if until.is_some_and(|u| row.seq > u) {
                    return Ok(frames);
                }
                position = row.seq;
                let message = MessageView::from(row);
                let frame = serde_json::to_string(&MessageEvent::Created {
                    room_id: room,
                    message: &message,
                })
                .map_err(|e| AppError::Internal(e.into()))?;
                frames.push((message.seq, frame));
            }
            if done {
                break;
            }
        }
        Ok(frames)
    }

    async fn send(&self, user: Uuid, frame: SendFrame) -> Result<serde_json::Value, AppError> {
        let state = self.state()?;
        let proof = state
            .permissions
            .require_kind::<perm::SendMessages>(
                user,
                frame.room_id,
                crate::permissions::ScopeKind::Room,
            )
            .await?;
        let input = SendInput {
            content: frame.content,
            client_msg_id: Some(frame.client_msg_id),
            reply_to: frame.reply_to,
            attachment_ids: frame.attachment_ids,
        };
        let message = service::send(state, &proof, input).await?;
        serde_json::to_value(&message).map_err(|e| AppError::Internal(e.into()))
    }

    async fn read(&self, user: Uuid, room: Uuid, seq: i64) -> Result<(), AppError> {
        let state = self.state()?;
        let proof = state
            .permissions
            .require_kind::<perm::ReadHistory>(user, room, crate::permissions::ScopeKind::Room)
            .await?;
        service::mark_read(state, &proof, seq).await.map(|_| ())
    }

    async fn communities_of(&self, user: Uuid) -> Result<Vec<Uuid>, AppError> {
        crate::communities::service::ids_of(self.state()?, user).await
    }

    async fn can_send(&self, user: Uuid, room: Uuid) -> Result<bool, AppError> {
        let state = self.state()?;
        let Some(scope) = state.permissions.scope(user, room).await? else {
            return Ok(false);
        };
        Ok(state
            .permissions
            .effective(user, &scope)
            .await?
            .0
            .contains(Perm::SendMessages))
    }
}
