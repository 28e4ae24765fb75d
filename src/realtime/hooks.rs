//! What the gateway needs from the features, injected at start-up (realtime imports no
//! feature): who may read a room, which rooms a user is in, message replay, and the handling of
//! client frames that act on features (send, read).

use async_trait::async_trait;
use uuid::Uuid;

use super::frames::SendFrame;
use crate::error::AppError;

/// A room the session may follow, with the facts to re-check it cheaply.
#[derive(Debug, Clone)]
pub struct RoomAccess {
    pub room_id: Uuid,
    /// The room's current last seq (a new subscription starts after it).
    pub last_seq: i64,
}

#[async_trait]
pub trait Hooks: Send + Sync {
    /// Rooms the user belongs to and may read (default subscriptions at `ready`).
    async fn member_rooms(&self, user: Uuid) -> Result<Vec<RoomAccess>, AppError>;
    /// The rooms' current last seq (rooms that no longer exist are left out).
    async fn last_seqs(&self, rooms: &[Uuid]) -> Result<Vec<RoomAccess>, AppError>;
    /// Whether the user may read the room now (`None` = not visible or not readable).
    async fn readable(&self, user: Uuid, room: Uuid) -> Result<Option<RoomAccess>, AppError>;
    /// `message.created` frames of the room with seq in `(after, until]`, in seq order, at most `limit`.
    async fn replay(
        &self,
        room: Uuid,
        after: i64,
        until: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, String)>, AppError>;
    /// A `send` frame: the stored message's JSON (the ack's payload).
    async fn send(&self, user: Uuid, frame: SendFrame) -> Result<serde_json::Value, AppError>;
    /// A `read` frame.
    async fn read(&self, user: Uuid, room: Uuid, seq: i64) -> Result<(), AppError>;
    /// Communities the user is a member of (presence audience).
    async fn communities_of(&self, user: Uuid) -> Result<Vec<Uuid>, AppError>;
    /// A `typing` frame: may the user post there?
    async fn can_send(&self, user: Uuid, room: Uuid) -> Result<bool, AppError>;
}

/// Moves whenever any permission may have changed; sessions re-check their rooms when it does.
pub trait PolicyEpoch: Send + Sync {
    fn policy_epoch(&self) -> u64;
    /// Wakes when the epoch moves.
    fn watch_epoch(&self) -> tokio::sync::watch::Receiver<u64>;
}
