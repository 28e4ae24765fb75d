//! WebSocket client helpers and the content tag that carries send times.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::READ_BUFFER;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) async fn connect(addr: SocketAddr, token: &str) -> (Ws, Value) {
    connect_url(format!("ws://{addr}/v1/ws?token={token}")).await
}

/// A bare reference server session subscribed to `rooms` (no auth there).
pub(crate) async fn connect_bare(addr: SocketAddr, rooms: &[Uuid]) -> (Ws, Value) {
    let query: Vec<String> = rooms.iter().map(|r| format!("room={r}")).collect();
    connect_url(format!("ws://{addr}/v1/ws?{}", query.join("&"))).await
}

async fn connect_url(url: String) -> (Ws, Value) {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async_with_config(url, Some(config), true),
    )
    .await
    .expect("ws connects within 20 s")
    .expect("ws connects");
    let ready = next_json(&mut ws, Duration::from_secs(20))
        .await
        .expect("a ready frame");
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

/// The next text frame as JSON, or `None` on close, error or timeout.
pub(crate) async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(within, ws.next()).await.ok()??.ok()? {
            Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Skips other frames until one of type `kind` (10 s bound).
pub(crate) async fn expect_frame(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = next_json(ws, left)
            .await
            .unwrap_or_else(|| panic!("no {kind} frame within 10 s"));
        if frame["type"] == kind {
            return frame;
        }
    }
}

pub(crate) fn uuids(value: &Value) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

pub(crate) fn heartbeat_of(ready: &Value) -> Duration {
    Duration::from_millis(ready["heartbeat_interval_ms"].as_u64().unwrap_or(10_000))
}

pub(crate) fn text_frame(value: &Value) -> Message {
    Message::Text(value.to_string().into())
}

pub(crate) async fn unsubscribe_all(ws: &mut Ws, ready: &Value) {
    ws.send(text_frame(
        &json!({"type": "unsubscribe", "room_ids": ready["room_ids"]}),
    ))
    .await
    .expect("unsubscribe sent");
    expect_frame(ws, "unsubscribed").await;
}

/// Fan-out content: `b <run> <send time ns> <k> ...`, so receivers can compute latency.
pub(crate) fn fanout_content(run: u64, sent_ns: u64, room: usize, k: u64) -> String {
    format!("b {run} {sent_ns} {k} room {room} lorem ipsum dolor sit amet")
}

/// What a fan-out message carries: its run, send time and index within the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tag {
    pub(crate) run: u64,
    pub(crate) sent_ns: u64,
    pub(crate) k: u32,
}

pub(crate) fn parse_content(content: &str) -> Option<Tag> {
    let mut words = content.strip_prefix("b ")?.split(' ');
    Some(Tag {
        run: words.next()?.parse().ok()?,
        sent_ns: words.next()?.parse().ok()?,
        k: words.next()?.parse().ok()?,
    })
}

/// `(seq, tag)` of a `message.created` frame, without a full JSON parse when the frame
/// has its usual shape (the load generator shares the 2 cores with the server).
pub(crate) fn parse_created(text: &str) -> Option<(i64, Tag)> {
    const SEQ: &str = r#""seq":"#;
    const CONTENT: &str = r#""content":""#;
    let rest = text.strip_prefix(r#"{"type":"message.created""#)?;
    let seq_text = &rest[rest.find(SEQ)? + SEQ.len()..];
    let seq = seq_text[..seq_text.find(|c: char| !c.is_ascii_digit())?]
        .parse()
        .ok()?;
    let content = &rest[rest.find(CONTENT)? + CONTENT.len()..];
    Some((seq, parse_content(content)?))
}

/// Same, from a parsed frame (the fallback when the fast path does not recognize the shape).
pub(crate) fn created_from_value(frame: &Value) -> Option<(i64, Tag)> {
    if frame["type"] != "message.created" {
        return None;
    }
    let message = &frame["message"];
    let tag = parse_content(message["content"].as_str()?)?;
    Some((message["seq"].as_i64()?, tag))
}
