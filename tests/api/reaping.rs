//! Sockets that hold resources without doing anything are reaped: connections that never finish
//! a request head (slowloris), and WebSocket sessions that stop talking.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_app_with;
use crate::ws::WsClient;

/// How many idle sockets a test opens: `GUILDHALL_REAP_SOCKETS` (default 1000) that never finish
/// a request head, `GUILDHALL_REAP_WS_SOCKETS` (default 200) WebSocket sessions that never read.
/// The reliability run sets both to 5000.
fn socket_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// True when the peer closed the socket (EOF or reset) before `deadline`.
async fn closed_by_peer(mut stream: TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or similar before the close is fine; keep reading to the end.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_that_never_finish_a_request_head_are_closed() {
    let app = spawn_app_with(|s| {
        s.insert("header_read_timeout_s".into(), "1".into());
    })
    .await;
    let partial_heads: [&[u8]; 3] = [
        b"",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    ];
    let mut idle = Vec::new();
    for i in 0..socket_count("GUILDHALL_REAP_SOCKETS", 1000) {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(partial_heads[i % partial_heads.len()])
            .await
            .unwrap();
        idle.push(stream);
    }
    let opened = Instant::now();
    // The idle sockets do not starve real clients.
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status(), 200);

    let deadline = opened + Duration::from_secs(6);
    let results = futures::future::join_all(idle.into_iter().map(|s| closed_by_peer(s, deadline)));
    let still_open = results.await.into_iter().filter(|closed| !closed).count();
    assert_eq!(
        still_open, 0,
        "sockets left open past the header-read timeout"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_complete_request_is_not_cut_by_the_header_read_timeout() {
    let app = spawn_app_with(|s| {
        s.insert("header_read_timeout_s".into(), "1".into());
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // A head sent in two parts within the timeout is served.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .write_all(b"Host: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("answer in time")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    app.stop().await;
}

#[tokio::test]
async fn websocket_sessions_that_stop_sending_heartbeats_are_closed() {
    let app = spawn_app_with(|s| {
        s.insert("ws_heartbeat_s".into(), "1".into());
    })
    .await;
    let user = app.register("silent").await;
    // These clients read (so their close is seen) but never send a heartbeat.
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(WsClient::ready(&app, &user.access_token).await.0);
    }
    let closes = futures::future::join_all(clients.into_iter().map(|mut client| async move {
        timeout(Duration::from_secs(10), async {
            let mut code = None;
            while let Some(Ok(message)) = client.stream.next().await {
                if let Message::Close(Some(frame)) = message {
                    code = Some(u16::from(frame.code));
                }
            }
            code
        })
        .await
    }))
    .await;
    for close in closes {
        assert_eq!(close.expect("closed in time"), Some(1001));
    }
    app.stop().await;
}

#[tokio::test]
async fn websocket_sessions_that_never_read_are_reaped() {
    let app = spawn_app_with(|s| {
        s.insert("ws_heartbeat_s".into(), "1".into());
    })
    .await;
    let user = app.register("deaf").await;
    let count = socket_count("GUILDHALL_REAP_WS_SOCKETS", 200);
    // Handshake, then neither read nor write again: the TCP socket alone tells whether the
    // server dropped its side.
    let mut sockets = Vec::new();
    for _ in 0..count {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "GET /v1/ws?token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            user.access_token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        sockets.push(stream);
    }
    // Not a byte read until the server should be done: 3 missed heartbeats plus the close grace,
    // plus time for the server to get through the handshakes.
    let handshakes = Duration::from_millis(5 * count as u64);
    tokio::time::sleep(Duration::from_secs(6) + handshakes).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let results =
        futures::future::join_all(sockets.into_iter().map(|s| closed_by_peer(s, deadline)));
    let still_open = results.await.into_iter().filter(|closed| !closed).count();
    assert_eq!(still_open, 0, "silent WebSocket sessions left open");
    app.stop().await;
}
