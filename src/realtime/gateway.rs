//! The node's session registry and fan-out: one task reads the bus and hands each event (one
//! shared frame) to the bounded outbox of every session that follows its room or user. A full
//! outbox cuts that session off (slow consumer); nobody else waits for it (invariant 4).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::bus::{Audience, Envelope};
use crate::ops::Metrics;

/// What a session's writer receives.
#[derive(Debug)]
pub enum Out {
    /// A bus event and its frame, shared by all recipients.
    Event(Arc<Envelope>, Utf8Bytes),
    /// A frame for this session only (ack, error, ready...).
    Frame(Utf8Bytes),
    /// Replay the room from the session's position (after `resume`).
    Resume(Uuid),
    /// The room is at this seq in Postgres: send what the session has not had (catch-up).
    CatchUp(Uuid, i64),
    /// The client's first frame was handled: held live room frames may go out.
    Release,
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

pub struct SessionHandle {
    pub id: u64,
    pub user: Uuid,
    pub outbox: mpsc::Sender<Out>,
    /// Cancelled to cut the session off.
    pub kill: CancellationToken,
    /// Set when the session was cut off for not keeping up.
    pub slow: std::sync::atomic::AtomicBool,
    /// Rooms followed and the last seq delivered in each.
    pub rooms: Mutex<HashMap<Uuid, i64>>,
    /// Communities whose presence the session follows.
    pub communities: Mutex<Vec<Uuid>>,
}

pub struct Gateway {
    rooms: RwLock<HashMap<Uuid, HashMap<u64, Arc<SessionHandle>>>>,
    users: RwLock<HashMap<Uuid, HashMap<u64, Arc<SessionHandle>>>>,
    communities: RwLock<HashMap<Uuid, HashMap<u64, Arc<SessionHandle>>>>,
    next_id: AtomicU64,
    pub metrics: Arc<Metrics>,
    /// Session tasks, awaited on shutdown.
    pub tasks: TaskTracker,
}

impl Gateway {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            rooms: RwLock::default(),
            users: RwLock::default(),
            communities: RwLock::default(),
            next_id: AtomicU64::new(1),
            metrics,
            tasks: TaskTracker::new(),
        }
    }

    pub fn register(&self, user: Uuid, outbox: mpsc::Sender<Out>) -> Arc<SessionHandle> {
        let handle = Arc::new(SessionHandle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user,
            outbox,
            kill: CancellationToken::new(),
            slow: std::sync::atomic::AtomicBool::new(false),
            rooms: Mutex::default(),
            communities: Mutex::default(),
        });
        self.users
            .write()
            .expect("users lock")
            .entry(user)
            .or_default()
            .insert(handle.id, handle.clone());
        self.metrics.ws_connections.inc();
        handle
    }

    /// Starts following `room` from `after` (exclusive). Re-following keeps the later position.
    pub fn follow(&self, session: &Arc<SessionHandle>, room: Uuid, after: i64) {
        {
            let mut rooms = session.rooms.lock().expect("session rooms");
            let position = rooms.entry(room).or_insert(after);
            *position = (*position).max(after);
        }
        self.rooms
            .write()
            .expect("rooms lock")
            .entry(room)
            .or_default()
            .insert(session.id, session.clone());
    }

    pub fn unfollow(&self, session: &SessionHandle, room: Uuid) {
        session.rooms.lock().expect("session rooms").remove(&room);
        let mut rooms = self.rooms.write().expect("rooms lock");
        if let Some(sessions) = rooms.get_mut(&room) {
            sessions.remove(&session.id);
            if sessions.is_empty() {
                rooms.remove(&room);
            }
        }
    }

    /// Replaces the communities whose presence the session follows.
    pub fn follow_communities(&self, session: &Arc<SessionHandle>, communities: Vec<Uuid>) {
        let old = std::mem::replace(
            &mut *session.communities.lock().expect("session communities"),
            communities.clone(),
        );
        let mut index = self.communities.write().expect("communities lock");
        for community in old {
            if let Some(sessions) = index.get_mut(&community) {
                sessions.remove(&session.id);
                if sessions.is_empty() {
                    index.remove(&community);
                }
            }
        }
        for community in communities {
            index
                .entry(community)
                .or_default()
                .insert(session.id, session.clone());
        }
    }

    pub fn unregister(&self, session: &SessionHandle) {
        let followed: Vec<Uuid> = session
            .rooms
            .lock()
            .expect("session rooms")
            .keys()
            .copied()
            .collect();
        for room in followed {
            self.unfollow(session, room);
        }
        let mut users = self.users.write().expect("users lock");
        if let Some(sessions) = users.get_mut(&session.user) {
            sessions.remove(&session.id);
            if sessions.is_empty() {
                users.remove(&session.user);
            }
        }
        self.metrics.ws_connections.dec();
    }

    /// Ends every session of `user` on this node (its sessions were revoked): each is told
    /// `unauthorized` and closed with 1008; one whose outbox is full is cut off at once.
    pub fn close_user(&self, user: Uuid, reason: &'static str) -> usize {
        let sessions: Vec<Arc<SessionHandle>> = self
            .users
            .read()
            .expect("users lock")
            .get(&user)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        let notice = Utf8Bytes::from(
            serde_json::json!({"type": "error", "code": "unauthorized", "message": reason})
                .to_string(),
        );
        for session in &sessions {
            let told = session.outbox.try_send(Out::Frame(notice.clone())).is_ok()
                && session.outbox.try_send(Out::Close(1008, reason)).is_ok();
            if !told {
                session.kill.cancel();
            }
        }
        sessions.len()
    }

    pub fn sessions_of(&self, user: Uuid) -> usize {
        self.users
            .read()
            .expect("users lock")
            .get(&user)
            .map_or(0, HashMap::len)
    }

    /// With several nodes, a `message.created` lost between them (Redis down, stalled or
    /// restarted) leaves a gap that the room's next message would reveal; when no next message
    /// comes, this sweep does: every `every`, it asks Postgres where this node's rooms stand and
    /// tells each session that is behind to catch up.
    pub async fn catch_up(
        self: Arc<Self>,
        hooks: Arc<dyn super::Hooks>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let rooms: Vec<Uuid> = self
                .rooms
                .read()
                .expect("rooms lock")
                .keys()
                .copied()
                .collect();
            if rooms.is_empty() {
                continue;
            }
            let Ok(current) = hooks.last_seqs(&rooms).await else {
                continue;
            };
            for room in current {
                self.nudge_behind(room.room_id, room.last_seq);
            }
        }
    }

    fn nudge_behind(&self, room: Uuid, last_seq: i64) {
        let sessions: Vec<Arc<SessionHandle>> = self
            .rooms
            .read()
            .expect("rooms lock")
            .get(&room)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for session in sessions {
            let behind = session
                .rooms
                .lock()
                .expect("session rooms")
                .get(&room)
                .is_some_and(|position| *position < last_seq);
            // A full outbox is a slow consumer, dealt with elsewhere; the next sweep retries.
            if behind {
                let _ = session.outbox.try_send(Out::CatchUp(room, last_seq));
            }
        }
    }

    /// Fans bus events out until shutdown.
    pub async fn dispatch(
        self: Arc<Self>,
        mut events: broadcast::Receiver<Arc<Envelope>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let envelope = tokio::select! {
                () = shutdown.cancelled() => return,
                received = events.recv() => received,
            };
            match envelope {
                Ok(envelope) => self.deliver(envelope),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Messages carry seq: every session fills its gaps from Postgres on the next one.
                    tracing::warn!(missed, "gateway fell behind the bus");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn deliver(&self, envelope: Arc<Envelope>) {
        let recipients: Vec<Arc<SessionHandle>> = match &envelope.audience {
            Audience::Room(room) => self
                .rooms
                .read()
                .expect("rooms lock")
                .get(room)
                .map(|s| s.values().cloned().collect())
                .unwrap_or_default(),
            Audience::Users(users) => {
                let index = self.users.read().expect("users lock");
                users
                    .iter()
                    .filter_map(|u| index.get(u))
                    .flat_map(|s| s.values().cloned())
                    .collect()
            }
            Audience::Communities(communities) => {
                let index = self.communities.read().expect("communities lock");
                let mut seen = std::collections::HashSet::new();
                communities
                    .iter()
                    .filter_map(|c| index.get(c))
                    .flat_map(|s| s.values().cloned())
                    .filter(|s| seen.insert(s.id))
                    .collect()
            }
        };
        if recipients.is_empty() {
            return;
        }
        let frame = Utf8Bytes::from(envelope.frame.to_string());
        for session in recipients {
            if envelope.except_user == Some(session.user) {
                continue;
            }
            match session
                .outbox
                .try_send(Out::Event(envelope.clone(), frame.clone()))
            {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !session.slow.swap(true, Ordering::Relaxed) {
                        self.metrics.slow_consumer_disconnects.inc();
                        session.kill.cancel();
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}
