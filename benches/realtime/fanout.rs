//! Fan-out: receivers, senders and the coordinator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::{Account, Api, Metrics};
use crate::bare::Bare;
use crate::report::{Percentiles, micros};
use crate::server::{CpuSnapshot, CpuUse, Server};
use crate::ws::{
    Ws, connect, connect_bare, created_from_value, fanout_content, heartbeat_of, parse_content,
    parse_created, text_frame, unsubscribe_all, uuids,
};
use crate::{DRAIN_BOUND, now_ns};
use futures::stream::{self, SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Default)]
pub(crate) struct RecvStats {
    pub(crate) run: u64,
    pub(crate) count: u64,
    /// (k, sent ns, received ns) of this run's messages.
    pub(crate) received: Vec<(u32, u64, u64)>,
    pub(crate) last_ns: u64,
    /// Last seq seen in the room (kept across runs; reset on reconnect).
    pub(crate) last_seq: Option<i64>,
    /// Frames whose seq was not last + 1.
    pub(crate) disorder: u64,
    pub(crate) errors: Vec<String>,
    pub(crate) closed: Option<String>,
}

impl RecvStats {
    pub(crate) fn reset(&mut self, run: u64) {
        self.run = run;
        self.count = 0;
        self.received.clear();
        self.last_ns = 0;
        self.disorder = 0;
        self.errors.clear();
    }

    pub(crate) fn on_frame(&mut self, text: &str) {
        let now = now_ns();
        let created = parse_created(text).or_else(|| {
            let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if frame["type"] == "error" && self.errors.len() < 10 {
                self.errors
                    .push(format!("{}: {}", frame["code"], frame["message"]));
            }
            created_from_value(&frame)
        });
        let Some((seq, tag)) = created else {
            return;
        };
        if self.last_seq.is_some_and(|last| seq != last + 1) {
            self.disorder += 1;
        }
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
        if tag.run == self.run {
            self.count += 1;
            self.received.push((tag.k, tag.sent_ns, now));
            self.last_ns = now;
        }
    }
}

pub(crate) async fn receive(
    ws: Ws,
    heartbeat: Duration,
    stats: Arc<Mutex<RecvStats>>,
    stop: CancellationToken,
) {
    let (mut sink, mut stream) = ws.split();
    let mut tick = tokio::time::interval(heartbeat);
    tick.tick().await;
    let beat = text_frame(&json!({"type": "heartbeat"}));
    let reason = loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            _ = tick.tick() => {
                if let Err(err) = sink.send(beat.clone()).await {
                    break format!("heartbeat failed: {err}");
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    stats.lock().expect("stats").on_frame(text.as_str());
                }
                Some(Ok(Message::Close(close))) => {
                    break format!("closed by server: {}", close.map_or_else(
                        || "no close frame".to_owned(),
                        |c| format!("{} {}", u16::from(c.code), c.reason),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => break format!("read error: {err}"),
                None => break "stream ended".to_owned(),
            },
        }
    };
    stats.lock().expect("stats").closed = Some(reason);
}

pub(crate) struct Slot {
    pub(crate) room_index: usize,
    /// Guildhall only: the member account's token (membership decides the subscription).
    pub(crate) token: String,
    pub(crate) stats: Arc<Mutex<RecvStats>>,
}

impl Slot {
    /// Connects, checks that exactly this room is subscribed, and starts receiving.
    pub(crate) async fn open(&self, target: Target<'_>, room: Uuid, stop: &CancellationToken) {
        let (ws, ready) = match target {
            Target::Guildhall { server, .. } => connect(server.addr, &self.token).await,
            Target::Bare(bare) => connect_bare(bare.addr, &[room]).await,
        };
        assert_eq!(
            uuids(&ready["room_ids"]),
            vec![room],
            "a session follows exactly its room: {ready}"
        );
        {
            let mut stats = self.stats.lock().expect("stats");
            stats.closed = None;
            stats.last_seq = None;
        }
        tokio::spawn(receive(
            ws,
            heartbeat_of(&ready),
            self.stats.clone(),
            stop.clone(),
        ));
    }
}

/// The server under load: Guildhall (everything on) or the bare reference broadcast.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Guildhall { api: &'a Api, server: &'a Server },
    Bare(&'a Bare),
}

impl Target<'_> {
    pub(crate) fn pid(self) -> u32 {
        match self {
            Target::Guildhall { server, .. } => server.pid,
            Target::Bare(bare) => bare.pid,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Guildhall { .. } => "Guildhall",
            Target::Bare(_) => "bare",
        }
    }

    /// Guildhall's own counters (commit batches, slow consumers); none for bare.
    async fn metrics(self) -> Metrics {
        match self {
            Target::Guildhall { api, .. } => api.metrics().await,
            Target::Bare(_) => Metrics::default(),
        }
    }
}

/// Rooms × receiving connections; Guildhall spreads each room's receivers over member accounts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) rooms: usize,
    pub(crate) members_per_room: usize,
    pub(crate) receivers_per_room: usize,
}

// Fan-out: senders.

#[derive(Debug, Default)]
pub(crate) struct SendStats {
    pub(crate) run: u64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) ack_lat_us: Vec<i64>,
    /// When the ack of message k arrived (ns; 0 = not acked).
    pub(crate) ack_at: Vec<u64>,
    pub(crate) first_send_ns: u64,
    pub(crate) last_send_ns: u64,
    /// Largest delay of a send behind its schedule.
    pub(crate) max_behind: Duration,
    pub(crate) closed: Option<String>,
}

impl SendStats {
    pub(crate) fn reset(&mut self, run: u64) {
        *self = Self {
            run,
            closed: self.closed.take(),
            ..Self::default()
        };
    }
}

pub(crate) struct Burst {
    pub(crate) run: u64,
    pub(crate) rate: f64,
    pub(crate) count: u64,
    pub(crate) start: tokio::time::Instant,
    pub(crate) done: oneshot::Sender<()>,
}

pub(crate) struct Sender {
    pub(crate) bursts: mpsc::Sender<Burst>,
    pub(crate) stats: Arc<Mutex<SendStats>>,
}

/// Writes scheduled sends (and heartbeats between bursts).
pub(crate) async fn send_loop(
    mut sink: SplitSink<Ws, Message>,
    mut bursts: mpsc::Receiver<Burst>,
    (room, room_index): (Uuid, usize),
    heartbeat: Duration,
    stats: Arc<Mutex<SendStats>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(heartbeat);
    let beat = text_frame(&json!({"type": "heartbeat"}));
    loop {
        let burst = tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            _ = tick.tick() => {
                let _ = sink.send(beat.clone()).await;
                continue;
            }
            burst = bursts.recv() => match burst {
                Some(burst) => burst,
                None => return,
            },
        };
        for k in 0..burst.count {
            let at = burst.start + Duration::from_secs_f64(k as f64 / burst.rate);
            tokio::time::sleep_until(at).await;
            let behind = tokio::time::Instant::now().saturating_duration_since(at);
            let sent_ns = now_ns();
            let frame = json!({
                "type": "send",
                "room_id": room,
                "client_msg_id": format!("r{}-{k}", burst.run),
                "content": fanout_content(burst.run, sent_ns, room_index, k),
            });
            if sink.send(text_frame(&frame)).await.is_err() {
                break;
            }
            let mut stats = stats.lock().expect("stats");
            stats.sent += 1;
            if stats.first_send_ns == 0 {
                stats.first_send_ns = sent_ns;
            }
            stats.last_send_ns = sent_ns;
            stats.max_behind = stats.max_behind.max(behind);
        }
        let _ = burst.done.send(());
    }
}

/// Reads acks and errors for the sender.
pub(crate) async fn ack_loop(mut stream: SplitStream<Ws>, stats: Arc<Mutex<SendStats>>) {
    let reason = loop {
        let text = match stream.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) => break "closed by server".to_owned(),
            Some(Ok(_)) => continue,
            Some(Err(err)) => break format!("read error: {err}"),
            None => break "stream ended".to_owned(),
        };
        let now = now_ns();
        let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        let run_of = |id: &Value| -> Option<u64> {
            id.as_str()?
                .strip_prefix('r')?
                .split_once('-')?
                .0
                .parse()
                .ok()
        };
        let mut stats = stats.lock().expect("stats");
        match frame["type"].as_str() {
            Some("ack") if run_of(&frame["client_msg_id"]) == Some(stats.run) => {
                stats.acked += 1;
                if let Some(tag) = frame["message"]["content"].as_str().and_then(parse_content) {
                    stats.ack_lat_us.push(micros(now, tag.sent_ns));
                    let k = tag.k as usize;
                    if stats.ack_at.len() <= k {
                        stats.ack_at.resize(k + 1, 0);
                    }
                    stats.ack_at[k] = now;
                }
            }
            Some("error") if run_of(&frame["ref"]) == Some(stats.run) => {
                let code = frame["code"].as_str().unwrap_or("?").to_owned();
                *stats.errors.entry(code).or_default() += 1;
            }
            _ => {}
        }
    };
    stats.lock().expect("stats").closed = Some(reason);
}

// Fan-out: the coordinator.

pub(crate) struct Fanout {
    pub(crate) rooms: Vec<Uuid>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) senders: Vec<Sender>,
    pub(crate) stop: CancellationToken,
    pub(crate) next_run: u64,
}

pub(crate) struct RateResult {
    pub(crate) target: u32,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) send_errors: BTreeMap<String, u64>,
    pub(crate) sender_closed: Vec<String>,
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    pub(crate) extra: u64,
    pub(crate) disorder: u64,
    pub(crate) disconnects: BTreeMap<String, u64>,
    pub(crate) receiver_errors: Vec<String>,
    pub(crate) send_rate: f64,
    pub(crate) delivery_rate: f64,
    pub(crate) latency: Percentiles,
    pub(crate) ack_latency: Percentiles,
    /// Receipt at a receiver minus receipt of the ack at the sender: the fan-out part.
    pub(crate) after_ack: Percentiles,
    pub(crate) max_behind: Duration,
    /// Last delivery after the last send.
    pub(crate) tail: Duration,
    pub(crate) cpu: CpuUse,
    pub(crate) slow_consumers: f64,
    pub(crate) sustained: bool,
}

impl Fanout {
    /// `label` keeps account names apart when several shapes share one server.
    pub(crate) async fn setup(target: Target<'_>, shape: Shape, label: &str) -> Self {
        let (rooms, owners, members) = match target {
            Target::Guildhall { api, .. } => guildhall_rooms(api, shape, label).await,
            Target::Bare(_) => (
                (0..shape.rooms).map(|_| Uuid::new_v4()).collect(),
                vec![],
                vec![],
            ),
        };
        let stop = CancellationToken::new();
        let slots: Vec<Slot> = (0..shape.rooms)
            .flat_map(|room_index| {
                let members = &members;
                (0..shape.receivers_per_room).map(move |j| Slot {
                    room_index,
                    token: members
                        .get(room_index * shape.members_per_room + j % shape.members_per_room)
                        .map_or_else(String::new, |m: &Account| m.token.clone()),
                    stats: Arc::default(),
                })
            })
            .collect();
        stream::iter(&slots)
            .map(|slot| slot.open(target, rooms[slot.room_index], &stop))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        let mut senders = Vec::with_capacity(shape.rooms);
        for (room_index, &room) in rooms.iter().enumerate() {
            senders
                .push(open_sender(target, owners.get(room_index), room, room_index, &stop).await);
        }
        Self {
            rooms,
            slots,
            senders,
            stop,
            next_run: 1,
        }
    }

    /// Reconnects receivers a previous run lost (e.g. cut off as slow consumers).
    pub(crate) async fn revive(&self, target: Target<'_>) -> usize {
        let dead: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| s.stats.lock().expect("stats").closed.is_some())
            .collect();
        let count = dead.len();
        stream::iter(dead)
            .map(|slot| slot.open(target, self.rooms[slot.room_index], &self.stop))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        count
    }

    pub(crate) async fn run(
        &mut self,
        target: Target<'_>,
        rate: u32,
        duration: Duration,
    ) -> RateResult {
        let run = self.next_run;
        self.next_run += 1;
        let per_sender = f64::from(rate) / self.senders.len() as f64;
        let count = (per_sender * duration.as_secs_f64()).round() as u64;
        let metrics_before = target.metrics().await;
        let cpu = CpuSnapshot::take(target.pid());
        let slots: Vec<&Slot> = self.slots.iter().collect();
        let (start_ns, acked) = play(&slots, &self.senders, run, per_sender, count).await;
        let expected_of = |slot: &Slot| acked[slot.room_index];
        let cpu = cpu.since(target.pid());
        let metrics_after = target.metrics().await;

        let mut result = RateResult {
            target: rate,
            sent: 0,
            acked: 0,
            send_errors: BTreeMap::new(),
            sender_closed: Vec::new(),
            expected: 0,
            delivered: 0,
            lost: 0,
            extra: 0,
            disorder: 0,
            disconnects: BTreeMap::new(),
            receiver_errors: Vec::new(),
            send_rate: 0.0,
            delivery_rate: 0.0,
            latency: Percentiles::default(),
            ack_latency: Percentiles::default(),
            after_ack: Percentiles::default(),
            max_behind: Duration::ZERO,
            tail: Duration::ZERO,
            cpu,
            slow_consumers: metrics_after.slow_consumers - metrics_before.slow_consumers,
            sustained: false,
        };
        let (mut first_send, mut last_send) = (u64::MAX, 0);
        let mut ack_lat = Vec::new();
        let mut ack_at = Vec::with_capacity(self.senders.len());
        for sender in &self.senders {
            let mut s = sender.stats.lock().expect("stats");
            result.sent += s.sent;
            result.acked += s.acked;
            for (code, n) in &s.errors {
                *result.send_errors.entry(code.clone()).or_default() += n;
            }
            if let Some(closed) = &s.closed {
                result.sender_closed.push(closed.clone());
            }
            first_send = first_send.min(s.first_send_ns);
            last_send = last_send.max(s.last_send_ns);
            result.max_behind = result.max_behind.max(s.max_behind);
            ack_lat.append(&mut s.ack_lat_us);
            ack_at.push(std::mem::take(&mut s.ack_at));
        }
        let mut latencies = Vec::with_capacity(self.slots.len() * count as usize);
        let mut after_ack = Vec::with_capacity(self.slots.len() * count as usize);
        let mut last_delivery = 0;
        for slot in &self.slots {
            let expected = expected_of(slot);
            let mut s = slot.stats.lock().expect("stats");
            result.expected += expected;
            result.delivered += s.count;
            result.lost += expected.saturating_sub(s.count);
            result.extra += s.count.saturating_sub(expected);
            result.disorder += s.disorder;
            if let Some(reason) = &s.closed {
                *result.disconnects.entry(reason.clone()).or_default() += 1;
            }
            for error in &s.errors {
                if result.receiver_errors.len() < 10 {
                    result.receiver_errors.push(error.clone());
                }
            }
            last_delivery = last_delivery.max(s.last_ns);
            let acks = &ack_at[slot.room_index];
            for &(k, sent, received) in &s.received {
                latencies.push(micros(received, sent));
                if let Some(&acked) = acks.get(k as usize).filter(|&&at| at > 0) {
                    after_ack.push(micros(received, acked));
                }
            }
            s.received = Vec::new();
        }
        result.latency = Percentiles::of(latencies);
        result.after_ack = Percentiles::of(after_ack);
        result.ack_latency = Percentiles::of(ack_lat);
        let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
        // Over the schedule's span: n sends at rate r span (n - 1) / r, plus one interval.
        let interval = 1.0 / per_sender;
        result.send_rate = result.acked as f64 / (secs(start_ns, last_send) + interval);
        result.delivery_rate = result.delivered as f64 / (secs(start_ns, last_delivery) + interval);
        result.tail = Duration::from_nanos(last_delivery.saturating_sub(last_send));
        result.sustained = result.lost == 0
            && result.extra == 0
            && result.disorder == 0
            && result.send_errors.is_empty()
            && result.sender_closed.is_empty()
            && result.disconnects.is_empty()
            && result.acked == result.sent
            && result.sent == count * self.senders.len() as u64
            && result.send_rate >= 0.97 * f64::from(rate)
            && result.tail < Duration::from_secs(1);
        result
    }
}

/// Resets every stat to `run`, has each sender send `count` messages at `rate` per second, then
/// waits (bounded) for every ack or error and until each receiver holds what its room's sender
/// had acked. Senders are in room-index order; returns the schedule's start (ns since `T0`)
/// and the acked count per room index.
pub(crate) async fn play(
    receivers: &[&Slot],
    senders: &[Sender],
    run: u64,
    rate: f64,
    count: u64,
) -> (u64, Vec<u64>) {
    for slot in receivers {
        slot.stats.lock().expect("stats").reset(run);
    }
    for sender in senders {
        sender.stats.lock().expect("stats").reset(run);
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let start_ns = now_ns() + 100_000_000;
    let mut done = Vec::new();
    for sender in senders {
        let (tx, rx) = oneshot::channel();
        let burst = Burst {
            run,
            rate,
            count,
            start,
            done: tx,
        };
        sender.bursts.send(burst).await.expect("sender task alive");
        done.push(rx);
    }
    let schedule = Duration::from_secs_f64(count as f64 / rate);
    for rx in done {
        let _ = tokio::time::timeout(schedule + DRAIN_BOUND, rx).await;
    }
    let drain = Instant::now() + DRAIN_BOUND;
    let all_acked = || {
        senders.iter().all(|s| {
            let s = s.stats.lock().expect("stats");
            s.closed.is_some() || s.acked + s.errors.values().sum::<u64>() >= s.sent
        })
    };
    while Instant::now() < drain && !all_acked() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked: Vec<u64> = senders
        .iter()
        .map(|s| s.stats.lock().expect("stats").acked)
        .collect();
    let complete = |slot: &&Slot| {
        let s = slot.stats.lock().expect("stats");
        s.closed.is_some() || s.count >= acked[slot.room_index]
    };
    while Instant::now() < drain && !receivers.iter().all(complete) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (start_ns, acked)
}

/// One public community per room: an owner (the room's sender) and `members_per_room` members.
pub(crate) async fn guildhall_rooms(
    api: &Api,
    shape: Shape,
    label: &str,
) -> (Vec<Uuid>, Vec<Account>, Vec<Account>) {
    let owners = api
        .register_all(
            (0..shape.rooms)
                .map(|i| format!("{label}-owner-{i}"))
                .collect(),
        )
        .await;
    let members = api
        .register_all(
            (0..shape.rooms * shape.members_per_room)
                .map(|i| format!("{label}-fan-{i}"))
                .collect(),
        )
        .await;
    let mut rooms = Vec::with_capacity(shape.rooms);
    for (i, owner) in owners.iter().enumerate() {
        let (community, room) = api.community(owner, &format!("{label} {i}"), 1).await;
        let start = i * shape.members_per_room;
        api.join_all(community, &members[start..start + shape.members_per_room])
            .await;
        rooms.push(room[0]);
    }
    (rooms, owners, members)
}

/// The room's sender on its own connection, subscribed to nothing, so it only gets acks.
pub(crate) async fn open_sender(
    target: Target<'_>,
    owner: Option<&Account>,
    room: Uuid,
    room_index: usize,
    stop: &CancellationToken,
) -> Sender {
    let (ws, ready) = match (target, owner) {
        (Target::Guildhall { server, .. }, Some(owner)) => {
            let (mut ws, ready) = connect(server.addr, &owner.token).await;
            assert_eq!(uuids(&ready["room_ids"]), vec![room], "{ready}");
            unsubscribe_all(&mut ws, &ready).await;
            (ws, ready)
        }
        (Target::Bare(bare), _) => connect_bare(bare.addr, &[]).await,
        (Target::Guildhall { .. }, None) => unreachable!("every Guildhall room has an owner"),
    };
    let (sink, stream) = ws.split();
    let (bursts, queue) = mpsc::channel(1);
    let stats: Arc<Mutex<SendStats>> = Arc::default();
    tokio::spawn(send_loop(
        sink,
        queue,
        (room, room_index),
        heartbeat_of(&ready),
        stats.clone(),
        stop.clone(),
    ));
    tokio::spawn(ack_loop(stream, stats.clone()));
    Sender { bursts, stats }
}
