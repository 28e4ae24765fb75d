//! The bare reference server: room broadcast over tokio-tungstenite, nothing else (no auth, no
//! persistence). It runs as a re-executed child of the bench binary, so its CPU and memory come
//! from /proc like Guildhall's, and shows what the same frames cost with no product around them.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Argument that makes this binary serve as the bare reference server.
pub(crate) const SERVE_FLAG: &str = "--bare-server";

/// Frames queued per connection before it counts as a slow consumer (Guildhall's default).
const OUTBOX: usize = 1024;
/// Same socket buffers as Guildhall's sessions, so memory per connection compares like for like.
const READ_BUFFER: usize = 4096;
const WRITE_BUFFER: usize = 4096;
const HEARTBEAT_MS: u64 = 30_000;

/// One connection's place in a room: its outbox, and how to cut it off when that is full.
struct Subscriber {
    outbox: mpsc::Sender<Utf8Bytes>,
    kill: CancellationToken,
}

#[derive(Default)]
struct Room {
    seq: i64,
    subscribers: HashMap<u64, Subscriber>,
}

/// Rooms are never removed, so a room's seq keeps growing across (re)subscriptions.
type Rooms = Arc<RwLock<HashMap<Uuid, Arc<Mutex<Room>>>>>;

fn room(rooms: &Rooms, id: Uuid) -> Arc<Mutex<Room>> {
    if let Some(room) = rooms.read().expect("rooms").get(&id) {
        return room.clone();
    }
    rooms.write().expect("rooms").entry(id).or_default().clone()
}

/// Entry point of the child process (`<bench binary> --bare-server`).
pub(crate) fn serve_main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("bare server runtime");
    runtime.block_on(serve());
}

async fn serve() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening {addr}");
    let _ = stdout.flush();
    let rooms = Rooms::default();
    let next_id = AtomicU64::new(0);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(session(stream, id, rooms.clone()));
            }
            // Out of file descriptors: back off instead of spinning on accept.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// `room=<uuid>` pairs of a query string (anything else is ignored).
fn rooms_of_query(query: &str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("room=")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;
type Stream = SplitStream<WebSocketStream<TcpStream>>;

async fn session(stream: TcpStream, id: u64, rooms: Rooms) {
    let mut wanted = Vec::new();
    // The error type is tungstenite's `Callback` signature, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        if request.uri().path() != "/v1/ws" {
            let mut refusal = ErrorResponse::new(None);
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        wanted = rooms_of_query(request.uri().query().unwrap_or(""));
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let (sink, stream) = ws.split();
    let (outbox, queue) = mpsc::channel(OUTBOX);
    let kill = CancellationToken::new();
    // Queued before subscribing, so `ready` precedes every room frame.
    let ready = format!(
        r#"{{"type":"ready","room_ids":{},"heartbeat_interval_ms":{HEARTBEAT_MS}}}"#,
        ids_json(&wanted)
    );
    let _ = outbox.try_send(ready.into());
    let writer = tokio::spawn(write_loop(sink, queue, kill.clone()));
    let mut conn = Conn {
        id,
        rooms,
        outbox,
        kill,
        followed: HashSet::new(),
    };
    conn.subscribe(&wanted);
    conn.read_loop(stream).await;
    let all: Vec<Uuid> = conn.followed.iter().copied().collect();
    conn.unsubscribe(&all);
    // Dropping the last outbox sender lets the writer finish what is queued and close.
    drop(conn);
    let _ = writer.await;
}

fn ids_json(ids: &[Uuid]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

/// Feeds everything queued, then flushes once: one write syscall per burst, not per frame.
async fn write_loop(mut sink: Sink, mut queue: mpsc::Receiver<Utf8Bytes>, kill: CancellationToken) {
    loop {
        let first = tokio::select! {
            () = kill.cancelled() => break,
            first = queue.recv() => first,
        };
        let Some(first) = first else { break };
        if sink.feed(Message::Text(first)).await.is_err() {
            break;
        }
        while let Ok(next) = queue.try_recv() {
            if sink.feed(Message::Text(next)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    // A peer that stopped reading must not keep this task alive.
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// One connection's reader side: its rooms and its outbox.
struct Conn {
    id: u64,
    rooms: Rooms,
    outbox: mpsc::Sender<Utf8Bytes>,
    kill: CancellationToken,
    followed: HashSet<Uuid>,
}

impl Conn {
    async fn read_loop(&mut self, mut stream: Stream) {
        loop {
            let next = tokio::select! {
                () = self.kill.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(Message::Text(text))) => self.handle(text.as_str()),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    }

    fn handle(&mut self, text: &str) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return;
        };
        match frame["type"].as_str() {
            Some("send") => self.send(&frame),
            Some("unsubscribe") => {
                let ids = crate::ws::uuids(&frame["room_ids"]);
                self.unsubscribe(&ids);
                let reply = format!(r#"{{"type":"unsubscribed","room_ids":{}}}"#, ids_json(&ids));
                self.reply(reply.into());
            }
            // Heartbeats need no answer here: nothing reaps idle sessions.
            _ => {}
        }
    }

    fn subscribe(&mut self, ids: &[Uuid]) {
        for &id in ids {
            let subscriber = Subscriber {
                outbox: self.outbox.clone(),
                kill: self.kill.clone(),
            };
            room(&self.rooms, id)
                .lock()
                .expect("room")
                .subscribers
                .insert(self.id, subscriber);
            self.followed.insert(id);
        }
    }

    fn unsubscribe(&mut self, ids: &[Uuid]) {
        for id in ids {
            if self.followed.remove(id) {
                room(&self.rooms, *id)
                    .lock()
                    .expect("room")
                    .subscribers
                    .remove(&self.id);
            }
        }
    }

    /// Numbers the message and broadcasts it under the room's lock, so every subscriber gets
    /// a room's messages in seq order; the frame is built once and its bytes shared.
    fn send(&self, frame: &Value) {
        let (Some(room_id), Some(content)) = (
            frame["room_id"]
                .as_str()
                .and_then(|r| r.parse::<Uuid>().ok()),
            frame["content"].as_str(),
        ) else {
            return;
        };
        let content = Value::from(content).to_string();
        let client_msg_id = frame["client_msg_id"].to_string();
        let room = room(&self.rooms, room_id);
        let mut room = room.lock().expect("room");
        room.seq += 1;
        let message = format!(
            r#"{{"seq":{},"room_id":"{room_id}","content":{content}}}"#,
            room.seq
        );
        let created = Utf8Bytes::from(format!(
            r#"{{"type":"message.created","room_id":"{room_id}","message":{message}}}"#
        ));
        room.subscribers.retain(|_, s| {
            let kept = s.outbox.try_send(created.clone()).is_ok();
            if !kept {
                s.kill.cancel();
            }
            kept
        });
        let ack =
            format!(r#"{{"type":"ack","client_msg_id":{client_msg_id},"message":{message}}}"#);
        self.reply(ack.into());
    }

    /// A full outbox means the client stopped reading: cut it off, as Guildhall does.
    fn reply(&self, frame: Utf8Bytes) {
        if self.outbox.try_send(frame).is_err() {
            self.kill.cancel();
        }
    }
}

/// VmRSS of a process, in KiB (0 when it cannot be read).
pub(crate) fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The bare server as a child process of this bench.
pub(crate) struct Bare {
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    child: tokio::process::Child,
}

impl Bare {
    pub(crate) async fn start() -> Bare {
        let exe = std::env::current_exe().expect("the bench binary's path");
        let mut child = tokio::process::Command::new(exe)
            .arg(SERVE_FLAG)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the bare server");
        let pid = child.id().expect("bare server pid");
        let stdout = child.stdout.take().expect("bare server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("bare server says where it listens within 10 s")
            .expect("bare server stdout")
            .unwrap_or_default();
        let addr = line
            .strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("bare server's first line: {line:?}"));
        Bare { pid, addr, child }
    }

    pub(crate) fn cpu_us(&self) -> u64 {
        crate::server::cpu_us(Some(self.pid))
    }

    pub(crate) fn rss_kb(&self) -> u64 {
        rss_kb(self.pid)
    }

    /// It keeps no state worth a graceful shutdown: SIGKILL and reap.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
