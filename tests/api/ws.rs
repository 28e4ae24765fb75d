//! WebSocket client for tests: connect, send frames, wait for a frame type (bounded).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn connect(app: &TestApp, token: &str) -> Self {
        let url = format!("ws://{}/v1/ws?token={token}", app.addr);
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        Self { stream }
    }

    /// Connects and waits for `ready`.
    pub async fn ready(app: &TestApp, token: &str) -> (Self, Value) {
        let mut client = Self::connect(app, token).await;
        let ready = client.expect("ready").await;
        (client, ready)
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("frame sent");
    }

    /// The next text frame as JSON, or `None` on close / timeout.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(within, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Skips frames until one of type `kind` arrives (10 s bound).
    pub async fn expect(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no {kind} frame before timeout/close"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }
}
