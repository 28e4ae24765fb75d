//! One WebSocket connection: a reader task (client frames) and a writer task (the bounded
//! outbox -> socket), around the session's registry handle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::bus::{Audience, Bus};
use super::frames::{ClientFrame, ServerFrame, to_text};
use super::gateway::{Gateway, Out, SessionHandle};
use super::hooks::{Hooks, PolicyEpoch};
use super::presence::Presence;
use crate::config::MessagingConfig;
use crate::error::AppError;
use crate::ratelimit::{Limit, Rate, RateLimiter};

const TYPING_TTL_MS: u64 = 5_000;
const TYPING_MIN_INTERVAL: Duration = Duration::from_millis(1_000);
/// After a policy change, idle sessions re-check access within this long, spread by session
/// so a change does not send every session to Postgres at once (room events re-check on
/// delivery anyway); the contract's bound for a change to reach open sessions is 1 s.
const EPOCH_SPREAD_MS: u64 = 400;
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long a slow consumer's `slow_consumer` error and close may take to write: a client
/// that reads again within it is told why; after it the socket is dropped either way.
const GOODBYE_WITHIN: Duration = Duration::from_secs(3);
/// Live room frames wait this long after `ready` for a `resume`, so replays come first.
const RESUME_HOLD: Duration = Duration::from_millis(300);

#[derive(Clone)]
pub struct Deps {
    pub gateway: Arc<Gateway>,
    pub presence: Arc<super::presence::Presence>,
    pub hooks: Arc<dyn Hooks>,
    pub epoch: Arc<dyn PolicyEpoch>,
    pub bus: Bus,
    pub config: MessagingConfig,
    pub shutdown: CancellationToken,
    pub limiter: RateLimiter,
    /// Typing notices per user, across sessions and nodes.
    pub typing_rate: Rate,
}

fn text(frame: &ServerFrame<'_>) -> Utf8Bytes {
    Utf8Bytes::from(to_text(frame))
}

fn error_frame(code: &str, message: &str, reference: Option<&str>) -> Utf8Bytes {
    text(&ServerFrame::Error {
        code,
        message,
        reference,
        retry_after_ms: None,
    })
}

fn app_error_frame(err: &AppError, reference: Option<&str>) -> Utf8Bytes {
    text(&ServerFrame::Error {
        code: err.code(),
        message: &err.detail(),
        reference,
        retry_after_ms: err.retry_after_ms(),
    })
}

/// Runs inside the `ws_session` span (session_id, user_id) the caller opens, so every log line
/// of the session names it.
pub async fn run(
    socket: WebSocket,
    (user, session_id): (Uuid, Uuid),
    expires_at: Instant,
    deps: Deps,
) {
    let (sink, stream) = socket.split();
    let (tx, rx) = mpsc::channel(deps.config.ws_outbox);
    let handle = deps.gateway.register(user, tx.clone());
    // Taken before the rooms are read: any policy change from here on makes the writer re-check.
    let epoch_seen = deps.epoch.policy_epoch();
    // The writer drains the outbox from the start, so events of busy rooms that arrive while the
    // session is still subscribing cannot fill it; it sends `ready` first, then them.
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut writer = tokio::spawn(
        write_loop(
            sink,
            rx,
            ready_rx,
            handle.clone(),
            deps.clone(),
            (expires_at, epoch_seen),
        )
        .in_current_span(),
    );
    // Communities are followed before `ready` too: a presence change announced after `ready`
    // must reach this session.
    let (rooms, communities) = tokio::join!(
        subscribe_defaults(&deps, &handle),
        deps.hooks.communities_of(user)
    );
    if let Ok(communities) = communities {
        deps.gateway.follow_communities(&handle, communities);
    }
    let ready = rooms.ok().map(|rooms| {
        text(&ServerFrame::Ready {
            user_id: user,
            session_id,
            heartbeat_interval_ms: u64::try_from(deps.config.heartbeat.as_millis())
                .unwrap_or(10_000),
            room_ids: &rooms,
        })
    });
    let started = ready.is_some();
    let _ = ready_tx.send(ready);
    if !started {
        tracing::warn!("websocket session could not start");
        let _ = writer.await;
        deps.gateway.unregister(&handle);
        return;
    }
    tracing::info!("websocket session started");
    if deps.presence.connected(user).await {
        Presence::announce(&deps.bus, deps.hooks.as_ref(), user, true).await;
    }
    let mut stream = stream;
    let (code, reason) = read_loop(&mut stream, tx.clone(), handle.clone(), deps.clone()).await;
    let slow = handle.slow.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(code, reason, slow, "websocket session ending");
    // Let the writer say goodbye with the right close code; a stuck one is cut off.
    if tx.try_send(Out::Close(code, reason)).is_err()
        || tokio::time::timeout(CLOSE_GRACE, &mut writer)
            .await
            .is_err()
    {
        handle.kill.cancel();
        let _ = writer.await;
    }
    // Closing a socket with unread input makes the kernel reset it, and a reset can destroy
    // our Close frame before the client reads it. So read (and drop) what the client still
    // sends until its Close answers ours; a slow consumer has had its chance (`cut_off`).
    let grace = if handle.slow.load(std::sync::atomic::Ordering::Relaxed) {
        Duration::ZERO
    } else {
        CLOSE_GRACE
    };
    let _ = tokio::time::timeout(grace, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    handle.kill.cancel();
    deps.gateway.unregister(&handle);
    if deps.presence.disconnected(user).await {
        Presence::announce(&deps.bus, deps.hooks.as_ref(), user, false).await;
    }
}

/// Follows every room the user belongs to from its current end: registered first, positioned
/// second, so nothing committed after `ready` can slip between the two. A membership lost in
/// between moved the policy epoch, which the writer re-checks.
async fn subscribe_defaults(deps: &Deps, handle: &Arc<SessionHandle>) -> Result<Vec<Uuid>, ()> {
    let rooms = deps.hooks.member_rooms(handle.user).await.map_err(|_| ())?;
    for room in &rooms {
        deps.gateway.follow(handle, room.room_id, i64::MAX);
    }
    let ids: Vec<Uuid> = rooms.iter().map(|r| r.room_id).collect();
    let positioned = deps.hooks.last_seqs(&ids).await.map_err(|_| ())?;
    let mut followed = handle.rooms.lock().expect("session rooms");
    for room in &positioned {
        if let Some(position) = followed.get_mut(&room.room_id) {
            *position = room.last_seq;
        }
    }
    followed.retain(|_, position| *position != i64::MAX);
    Ok(followed.keys().copied().collect())
}

/// Reads client frames until the socket ends; returns the close code to answer with.
async fn read_loop(
    stream: &mut SplitStream<WebSocket>,
    tx: mpsc::Sender<Out>,
    handle: Arc<SessionHandle>,
    deps: Deps,
) -> (u16, &'static str) {
    let idle_limit = deps.config.heartbeat * 3;
    let mut typing: HashMap<Uuid, Instant> = HashMap::new();
    let sends = tokio_util::task::TaskTracker::new();
    let mut first = true;
    let close = loop {
        let next = tokio::select! {
            () = handle.kill.cancelled() => break (1000, "closing"),
            () = deps.shutdown.cancelled() => break (1001, "server shutting down"),
            next = tokio::time::timeout(idle_limit, stream.next()) => next,
        };
        let message = match next {
            Err(_) => break (1001, "heartbeat timeout"),
            Ok(None | Some(Ok(Message::Close(_)))) => break (1000, "bye"),
            Ok(Some(Err(err))) => break close_for(&err),
            Ok(Some(Ok(message))) => message,
        };
        let Message::Text(body) = message else {
            if matches!(message, Message::Binary(_)) {
                let _ = tx.try_send(Out::Frame(error_frame(
                    "validation_failed",
                    "frames are JSON text",
                    None,
                )));
            }
            continue;
        };
        match serde_json::from_str::<ClientFrame>(body.as_str()) {
            Ok(frame) => handle_frame(frame, &tx, &handle, &deps, &mut typing, &sends).await,
            Err(err) => {
                let _ = tx.try_send(Out::Frame(error_frame(
                    "validation_failed",
                    &err.to_string(),
                    None,
                )));
            }
        }
        if first {
            // Whatever the first frame was (a `resume` queued its replays above), live room
            // frames may flow now.
            first = false;
            let _ = tx.send(Out::Release).await;
        }
    };
    sends.close();
    sends.wait().await;
    close
}

/// 1009 for oversized frames, 1007 for invalid UTF-8, 1002 otherwise.
fn close_for(err: &axum::Error) -> (u16, &'static str) {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    let source = std::error::Error::source(err).and_then(|e| e.downcast_ref::<WsError>());
    match source {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => (1009, "frame too large"),
        Some(WsError::Utf8(_)) => (1007, "invalid utf-8"),
        _ => (1002, "protocol error"),
    }
}

async fn handle_frame(
    frame: ClientFrame,
    tx: &mpsc::Sender<Out>,
    handle: &Arc<SessionHandle>,
    deps: &Deps,
    typing: &mut HashMap<Uuid, Instant>,
    sends: &tokio_util::task::TaskTracker,
) {
    let reply = |frame: Utf8Bytes| {
        let _ = tx.try_send(Out::Frame(frame));
    };
    match frame {
        ClientFrame::Heartbeat => reply(text(&ServerFrame::HeartbeatAck)),
        ClientFrame::Subscribe { room_ids } => {
            let mut added = Vec::new();
            for room in room_ids {
                match deps.hooks.readable(handle.user, room).await {
                    Ok(Some(access)) => {
                        deps.gateway.follow(handle, room, access.last_seq);
                        added.push(room);
                    }
                    _ => reply(error_frame(
                        "not_found",
                        &format!("room {room} not found"),
                        None,
                    )),
                }
            }
            reply(text(&ServerFrame::Subscribed { room_ids: &added }));
        }
        ClientFrame::Unsubscribe { room_ids } => {
            for room in &room_ids {
                deps.gateway.unfollow(handle, *room);
            }
            reply(text(&ServerFrame::Unsubscribed {
                room_ids: &room_ids,
            }));
        }
        ClientFrame::Send(send) => {
            let (hooks, tx, user) = (deps.hooks.clone(), tx.clone(), handle.user);
            let client_msg_id = send.client_msg_id.clone();
            sends.spawn(
                async move {
                    let frame = match hooks.send(user, send).await {
                        Ok(message) => text(&ServerFrame::Ack {
                            client_msg_id: &client_msg_id,
                            message: &message,
                        }),
                        Err(err) => app_error_frame(&err, Some(&client_msg_id)),
                    };
                    let _ = tx.send(Out::Frame(frame)).await;
                }
                .in_current_span(),
            );
        }
        ClientFrame::Typing { room_id } => {
            let recent = typing
                .get(&room_id)
                .is_some_and(|at| at.elapsed() < TYPING_MIN_INTERVAL);
            if recent {
                return;
            }
            match deps.hooks.can_send(handle.user, room_id).await {
                Ok(true) => {
                    typing.insert(room_id, Instant::now());
                    let limit = Limit {
                        name: "typing",
                        rate: deps.typing_rate,
                    };
                    if let Err(err) = deps.limiter.hit(limit, &handle.user.to_string()).await {
                        return reply(app_error_frame(&err, None));
                    }
                    let event = ServerFrame::Typing {
                        room_id,
                        user_id: handle.user,
                        expires_in_ms: TYPING_TTL_MS,
                    };
                    deps.bus
                        .publish_except(Audience::Room(room_id), None, Some(handle.user), &event)
                        .await;
                }
                Ok(false)
                    if matches!(deps.hooks.readable(handle.user, room_id).await, Ok(Some(_))) =>
                {
                    reply(error_frame(
                        "forbidden",
                        "requires the send_messages permission here",
                        None,
                    ));
                }
                _ => reply(error_frame("not_found", "room not found", None)),
            }
        }
        ClientFrame::Read { room_id, seq } => {
            if let Err(err) = deps.hooks.read(handle.user, room_id, seq).await {
                reply(app_error_frame(&err, None));
            }
        }
        ClientFrame::Resume { positions } => {
            for (room, seq) in positions {
                let followed = handle
                    .rooms
                    .lock()
                    .expect("session rooms")
                    .contains_key(&room);
                if !followed {
                    match deps.hooks.readable(handle.user, room).await {
                        Ok(Some(_)) => deps.gateway.follow(handle, room, seq),
                        _ => {
                            reply(error_frame(
                                "not_found",
                                &format!("room {room} not found"),
                                None,
                            ));
                            continue;
                        }
                    }
                }
                if let Some(position) = handle.rooms.lock().expect("session rooms").get_mut(&room) {
                    *position = seq.max(0);
                }
                let _ = tx.send(Out::Resume(room)).await;
            }
        }
    }
}

struct Writer {
    sink: SplitSink<WebSocket, Message>,
    handle: Arc<SessionHandle>,
    deps: Deps,
    epoch_seen: u64,
    /// Frames written to the socket buffer since the last flush.
    unflushed: usize,
}

/// Flush at least this often under continuous traffic, so a busy outbox cannot hold frames back.
const FLUSH_EVERY: usize = 64;

/// Until `ready` is out, what arrives is kept in order (start-up takes milliseconds, so this
/// stays small); `None` when the session could not start (the client gets close 1011).
async fn await_ready(
    writer: &mut Writer,
    rx: &mut mpsc::Receiver<Out>,
    ready: oneshot::Receiver<Option<Utf8Bytes>>,
) -> Option<Vec<Out>> {
    let mut early = Vec::new();
    tokio::pin!(ready);
    loop {
        tokio::select! {
            frame = &mut ready => {
                let Ok(Some(frame)) = frame else {
                    writer.close(1011, "unavailable").await;
                    return None;
                };
                // Flushed at once: nothing else may be queued behind it for a while.
                return (writer.send(frame).await && writer.flush().await).then_some(early);
            }
            out = rx.recv() => early.push(out?),
        }
    }
}

async fn write_loop(
    sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Out>,
    ready: oneshot::Receiver<Option<Utf8Bytes>>,
    handle: Arc<SessionHandle>,
    deps: Deps,
    (expires_at, epoch_seen): (Instant, u64),
) {
    let mut writer = Writer {
        sink,
        handle: handle.clone(),
        deps: deps.clone(),
        epoch_seen,
        unflushed: 0,
    };
    let Some(early) = await_ready(&mut writer, &mut rx, ready).await else {
        handle.kill.cancel();
        return;
    };
    let mut early = early.into_iter();
    let expiry = tokio::time::sleep_until(expires_at.into());
    tokio::pin!(expiry);
    let mut epoch = deps.epoch.watch_epoch();
    let mut epoch_open = true;
    // Armed when the epoch moves; at once if it moved while the session was starting.
    let recheck = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(recheck);
    let mut recheck_armed = *epoch.borrow_and_update() != writer.epoch_seen;
    let spread = Duration::from_millis(handle.id.wrapping_mul(7919) % EPOCH_SPREAD_MS);
    // Until the client's first frame (or a short wait), live room frames are held back, so a
    // `resume` sent right after `ready` replays before any of them.
    let hold = tokio::time::sleep(RESUME_HOLD);
    tokio::pin!(hold);
    let mut held: Option<Vec<(Arc<super::bus::Envelope>, Utf8Bytes)>> = Some(Vec::new());
    // Made once: a fresh `cancelled()` per loop turn would lock the token's tree each time.
    let killed = handle.kill.cancelled();
    let shutdown = deps.shutdown.cancelled();
    tokio::pin!(killed, shutdown);
    loop {
        let out = if let Some(out) = early.next() {
            Some(out)
        } else {
            tokio::select! {
            biased;
            () = &mut killed => { writer.cut_off().await; break }
            () = &mut shutdown => { writer.close(1001, "server shutting down").await; break }
            () = &mut expiry => {
                let _ = writer.send(error_frame("unauthorized", "access token expired", None)).await;
                writer.close(1008, "token expired").await;
                break;
            }
            changed = epoch.changed(), if epoch_open => {
                epoch_open = changed.is_ok();
                if epoch_open && !recheck_armed {
                    recheck.as_mut().reset(tokio::time::Instant::now() + spread);
                    recheck_armed = true;
                }
                continue
            }
            () = &mut recheck, if recheck_armed => {
                recheck_armed = false;
                writer.revalidate().await;
                continue
            }
            () = &mut hold, if held.is_some() => Some(Out::Release),
            out = rx.recv() => out,
            }
        };
        let Some(out) = out else { break };
        // A write waits while the client does not read; a cut-off must not wait with it.
        let written = tokio::select! {
            biased;
            () = &mut killed => None,
            keep_going = writer.write_batch(&mut held, out, &mut rx, early.len()) => Some(keep_going),
        };
        match written {
            Some(true) => {}
            Some(false) => break,
            None => {
                writer.cut_off().await;
                break;
            }
        }
    }
    handle.kill.cancel();
}

impl Writer {
    /// `out`, then what else is already queued (up to `FLUSH_EVERY`) in the same write without
    /// another select; flushed when nothing is left. False when the session should end.
    async fn write_batch(
        &mut self,
        held: &mut Option<Vec<(Arc<super::bus::Envelope>, Utf8Bytes)>>,
        out: Out,
        rx: &mut mpsc::Receiver<Out>,
        early_left: usize,
    ) -> bool {
        let mut keep_going = self.dispatch(held, out).await;
        let mut batch = 1;
        while keep_going && batch < FLUSH_EVERY && early_left == 0 {
            let Ok(out) = rx.try_recv() else { break };
            keep_going = self.dispatch(held, out).await;
            batch += 1;
        }
        let idle = rx.is_empty() && early_left == 0;
        keep_going && (!idle || self.flush().await)
    }

    /// The session was cut off. A slow consumer is told why, but its socket is likely what is
    /// stuck: the goodbye gets `GOODBYE_WITHIN`, then the socket is dropped.
    async fn cut_off(&mut self) {
        if !self.handle.slow.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let goodbye = async {
            let frame = error_frame(
                "slow_consumer",
                "the connection could not keep up; resume to catch up",
                None,
            );
            if self.send(frame).await {
                self.close(1008, "slow consumer").await;
            }
        };
        let _ = tokio::time::timeout(GOODBYE_WITHIN, goodbye).await;
    }

    /// One outbox item; false when the session should end.
    async fn dispatch(
        &mut self,
        held: &mut Option<Vec<(Arc<super::bus::Envelope>, Utf8Bytes)>>,
        out: Out,
    ) -> bool {
        match out {
            Out::Event(envelope, frame)
                if held.is_some() && matches!(envelope.audience, Audience::Room(_)) =>
            {
                held.as_mut().expect("holding").push((envelope, frame));
                true
            }
            Out::Release => {
                let mut ok = true;
                for (envelope, frame) in held.take().unwrap_or_default() {
                    ok = ok && self.event(&envelope, frame).await;
                }
                ok
            }
            Out::Event(envelope, frame) => self.event(&envelope, frame).await,
            Out::Frame(frame) => self.send(frame).await,
            Out::Resume(room) => self.resume(room).await,
            // Before the first frame a resume may be coming; the next sweep comes again.
            Out::CatchUp(..) if held.is_some() => true,
            Out::CatchUp(room, until) => self.catch_up(room, until).await,
            Out::Close(code, reason) => {
                self.close(code, reason).await;
                false
            }
        }
    }

    /// Queues the frame in the socket's write buffer; `flush` (or `FLUSH_EVERY`) writes it.
    async fn send(&mut self, frame: Utf8Bytes) -> bool {
        if self.sink.feed(Message::Text(frame)).await.is_err() {
            return false;
        }
        self.unflushed += 1;
        self.unflushed < FLUSH_EVERY || self.flush().await
    }

    /// Writes what `send` queued; true when there was nothing to write or it was written.
    async fn flush(&mut self) -> bool {
        if self.unflushed == 0 {
            return true;
        }
        self.unflushed = 0;
        self.sink.flush().await.is_ok()
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = self
            .sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }

    /// After any policy change: drop rooms the user may no longer read, follow rooms they
    /// joined since (a community, a private room), refresh the presence communities.
    async fn revalidate(&mut self) {
        let epoch = self.deps.epoch.policy_epoch();
        if epoch == self.epoch_seen {
            return;
        }
        self.epoch_seen = epoch;
        let Ok(members) = self.deps.hooks.member_rooms(self.handle.user).await else {
            return;
        };
        let followed: Vec<Uuid> = self
            .handle
            .rooms
            .lock()
            .expect("session rooms")
            .keys()
            .copied()
            .collect();
        for room in &followed {
            // Rooms followed by explicit `subscribe` (public visitors) are re-checked one by one.
            let still_member = members.iter().any(|m| m.room_id == *room);
            if !still_member
                && !matches!(
                    self.deps.hooks.readable(self.handle.user, *room).await,
                    Ok(Some(_))
                )
            {
                self.deps.gateway.unfollow(&self.handle, *room);
            }
        }
        for room in members
            .into_iter()
            .filter(|m| !followed.contains(&m.room_id))
        {
            self.deps
                .gateway
                .follow(&self.handle, room.room_id, room.last_seq);
        }
        if let Ok(communities) = self.deps.hooks.communities_of(self.handle.user).await {
            self.deps
                .gateway
                .follow_communities(&self.handle, communities);
        }
    }

    async fn event(&mut self, envelope: &super::bus::Envelope, frame: Utf8Bytes) -> bool {
        let Audience::Room(room) = envelope.audience else {
            return self.send(frame).await;
        };
        self.revalidate().await;
        // One lock: read the position and, for the next frame in order, advance it.
        let position = {
            let mut rooms = self.handle.rooms.lock().expect("session rooms");
            let Some(position) = rooms.get_mut(&room) else {
                return true;
            };
            let current = *position;
            if envelope.seq == Some(current + 1) {
                *position = current + 1;
            }
            current
        };
        let Some(seq) = envelope.seq else {
            return self.send(frame).await;
        };
        if seq <= position {
            return true;
        }
        if seq > position + 1 {
            if !self.fill(room, position, seq - 1).await {
                return false;
            }
            self.set_position(room, seq);
        }
        let sent = self.send(frame).await;
        let lag_ms = super::bus::now_ms().saturating_sub(envelope.at_ms);
        self.deps
            .gateway
            .metrics
            .broadcast_lag_seconds
            .observe(lag_ms as f64 / 1000.0);
        sent
    }

    fn set_position(&self, room: Uuid, seq: i64) {
        if let Some(position) = self
            .handle
            .rooms
            .lock()
            .expect("session rooms")
            .get_mut(&room)
        {
            *position = (*position).max(seq);
        }
    }

    /// Sends what the session has not had of the room up to `until`, if it still follows it.
    async fn catch_up(&mut self, room: Uuid, until: i64) -> bool {
        self.revalidate().await;
        let position = self
            .handle
            .rooms
            .lock()
            .expect("session rooms")
            .get(&room)
            .copied();
        match position {
            Some(position) if position < until => self.fill(room, position, until).await,
            _ => true,
        }
    }

    /// Sends the room's messages in `(after, until]` from Postgres, in order.
    async fn fill(&mut self, room: Uuid, after: i64, until: i64) -> bool {
        let Ok(frames) = self
            .deps
            .hooks
            .replay(room, after, Some(until), u64::MAX)
            .await
        else {
            return false;
        };
        for (seq, frame) in frames {
            if !self.send(Utf8Bytes::from(frame)).await {
                return false;
            }
            self.set_position(room, seq);
        }
        true
    }

    /// `resume`: replay after the client's position, or say `resync_required` past the cap.
    async fn resume(&mut self, room: Uuid) -> bool {
        let Some(position) = self
            .handle
            .rooms
            .lock()
            .expect("session rooms")
            .get(&room)
            .copied()
        else {
            return true;
        };
        let cap = self.deps.config.resume_max;
        let Ok(frames) = self.deps.hooks.replay(room, position, None, cap + 1).await else {
            return false;
        };
        if frames.len() as u64 > cap {
            let last_seq = match self.deps.hooks.readable(self.handle.user, room).await {
                Ok(Some(access)) => access.last_seq,
                _ => return true,
            };
            self.set_position(room, last_seq);
            return self
                .send(text(&ServerFrame::ResyncRequired {
                    room_id: room,
                    last_seq,
                }))
                .await;
        }
        for (seq, frame) in frames {
            if !self.send(Utf8Bytes::from(frame)).await {
                return false;
            }
            self.set_position(room, seq);
        }
        true
    }
}

impl Deps {
    pub fn from_state(state: &crate::state::AppState) -> Self {
        Self {
            gateway: state.gateway.clone(),
            presence: state.presence.clone(),
            hooks: state.hooks.clone(),
            epoch: state.permissions.clone(),
            bus: state.bus.clone(),
            config: state.config.messaging.clone(),
            shutdown: state.shutdown.clone(),
            limiter: state.limiter.clone(),
            typing_rate: state.config.rate_limits.typing,
        }
    }
}
