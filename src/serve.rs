//! The HTTP accept loop. `axum::serve` installs no timer in hyper, so hyper's header-read
//! timeout never fires there: a client that connects and sends nothing, or dribbles a request
//! head, would hold its socket forever. This loop sets the timeout, so such sockets are reaped.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Bytes a connection's kernel queue may hold that the client has not yet been sent. Without
/// it the queue grows to the socket buffer (megabytes on a fast link), so a WebSocket client
/// that stops reading looked healthy for seconds of a busy room's traffic before its outbox
/// filled and it was cut off (tests/api/slow_consumer.rs). What is in flight is not limited.
const UNSENT_LIMIT: u32 = 128 * 1024;

/// Serves `router` until `stop` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let (draining, connections) = (CancellationToken::new(), TaskTracker::new());
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        connections.spawn(connection(
            http.clone(),
            stream,
            peer,
            router.clone(),
            draining.clone(),
        ));
    }
    // New connections are refused from here on, while the open ones finish.
    drop(listener);
    draining.cancel();
    connections.close();
    connections.wait().await;
}

async fn connection(
    http: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    draining: CancellationToken,
) {
    // Small frames (acks after an event) must not wait on Nagle's algorithm.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "TCP_NODELAY not set");
    }
    if let Err(err) = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(UNSENT_LIMIT) {
        tracing::debug!(error = %err, "TCP_NOTSENT_LOWAT not set");
    }
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let served = http
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        () = draining.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}
