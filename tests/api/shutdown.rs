//! Graceful shutdown: a request in flight when the stop comes still gets its answer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn in_flight_requests_finish_after_the_stop_signal() {
    let app = spawn_app().await;
    app.register("inflight").await;
    let body = format!(r#"{{"username":"inflight","password":"{PASSWORD}"}}"#);
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Headers now, body after the stop: `100 Continue` proves the handler is reading the body.
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut interim))
        .await
        .expect("100 Continue in time")
        .unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    app.shutdown.cancel();
    wait_until_refusing(app.addr).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("response in time")
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    tokio::time::timeout(Duration::from_secs(10), app.server)
        .await
        .expect("server stops after the in-flight request")
        .unwrap()
        .unwrap();
}

/// Waits (bounded) until the listener is gone, i.e. shutdown has begun.
async fn wait_until_refusing(addr: std::net::SocketAddr) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("listener closes after the stop signal");
}
