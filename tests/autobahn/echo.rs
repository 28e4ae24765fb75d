//! The testee: an axum server on a random loopback port that echoes every text and binary
//! message, with the upgrade configured exactly as the gateway's.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(max_bytes: usize) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = Router::new().route("/", get(upgrade)).with_state(max_bytes);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                eprintln!("autobahn: echo server: {e}");
            }
        });
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// wstest has closed every connection by now; the bound only guards a stuck one.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

async fn upgrade(State(max_bytes): State<usize>, upgrade: WebSocketUpgrade) -> Response {
    guildhall::realtime::configure_upgrade(upgrade, max_bytes).on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(message) = socket.recv().await {
        let reply = match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => message,
            // tungstenite answers pings and the peer's close itself. Keep reading after a Close
            // until the stream ends, so the reply is flushed and the peer drops TCP first:
            // stopping here would cut the connection before the close handshake (UNCLEAN).
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => continue,
            // A protocol violation: tungstenite has already queued its close frame.
            Err(_) => break,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
