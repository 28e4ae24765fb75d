//! Realtime: the WebSocket gateway (`GET /v1/ws`), its session registry and fan-out, and the
//! event bus (in-process, or Redis pub/sub across nodes). Imports no feature: features publish
//! on the bus, and what the gateway needs from them comes in through `Hooks`.

mod bus;
mod frames;
mod gateway;
mod hooks;
mod presence;
mod session;

use std::time::{Duration, Instant};

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use bus::{Audience, Bus, BusMetrics, Envelope, Event};
pub use frames::{ClientFrame, SendFrame, ServerFrame};
pub use gateway::Gateway;
pub use hooks::{Hooks, PolicyEpoch, RoomAccess};
pub use presence::{Presence, PresenceEvent, PresenceStatus};
pub use session::Deps;

/// `typing` goes over the bus (frames.rs is also compiled alone into the fuzz checks, so the
/// impl lives here).
impl Event for ServerFrame<'_> {}

use crate::error::{AppError, Problem};
use crate::identity::{AuthUser, TokenService};
use crate::state::AppState;

/// Per-connection socket read buffer.
const READ_BUFFER_BYTES: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(connect))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConnectParams {
    /// Access token, for clients that cannot set the Authorization header.
    pub token: Option<String>,
}

/// Open the realtime WebSocket (protocol: PROTOCOL.md). Authenticated by `?token=` or the
/// Authorization header; a browser's Origin must be the server's own or allowed by
/// `GUILDHALL_WS_ORIGINS`.
#[utoipa::path(get, operation_id = "connect_gateway", path = "/v1/ws", tag = "realtime", params(ConnectParams),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn connect(
    State(state): State<AppState>,
    Query(params): Query<ConnectParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let tokens: std::sync::Arc<TokenService> = state.tokens.clone();
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let token = params.token.or(header_token).ok_or_else(|| {
        AppError::Unauthorized("missing access token (?token= or Authorization)".into())
    })?;
    let auth = AuthUser::from_token(&tokens, &token)?;
    let deps = Deps::from_state(&state);
    if !origin_allowed(&headers, &deps.config.ws_origins) {
        return Err(AppError::Forbidden("origin not allowed".into()));
    }
    let now = jsonwebtoken::get_current_timestamp();
    let expires_at = Instant::now() + Duration::from_secs(auth.expires_at.saturating_sub(now));
    let max = deps.config.ws_max_frame_bytes;
    let tasks = deps.gateway.tasks.clone();
    // The id `ready` announces; every log line of the session carries it and the user id.
    let session_id = uuid::Uuid::now_v7();
    let span = tracing::info_span!("ws_session", %session_id, user_id = %auth.user_id);
    Ok(configure_upgrade(upgrade, max)
        .on_upgrade(move |socket| {
            tasks.track_future(tracing::Instrument::instrument(
                session::run(socket, (auth.user_id, session_id), expires_at, deps),
                span,
            ))
        })
        .into_response())
}

/// The gateway's WebSocket settings; public so the protocol-compliance harness
/// (tests/autobahn) runs the very same ones.
pub fn configure_upgrade(upgrade: WebSocketUpgrade, max_message_bytes: usize) -> WebSocketUpgrade {
    upgrade
        // tungstenite reads into a buffer of this size per connection (128 KiB by default);
        // client frames are small, and larger ones still arrive over several reads.
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(max_message_bytes)
        .max_frame_size(max_message_bytes)
}

/// Browsers send `Origin` on every WebSocket handshake; other clients usually send none, and
/// are let through (the token is what authenticates them). A browser page may connect from the
/// server's own origin (same host and port), or from one listed in `GUILDHALL_WS_ORIGINS`
/// (`*` = any), so a foreign page cannot ride a user's token-bearing client.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn without_a_list_only_the_servers_own_origin_passes() {
        let none: Vec<String> = Vec::new();
        assert!(origin_allowed(&headers(None, "chat.example:443"), &none));
        assert!(origin_allowed(
            &headers(Some("https://chat.example"), "chat.example"),
            &none
        ));
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            &none
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "chat.example"),
            &none
        ));
        assert!(!origin_allowed(
            &headers(Some("https://chat.example:444"), "chat.example"),
            &none
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "chat.example"),
            &none
        ));
    }

    #[test]
    fn a_listed_origin_or_star_passes() {
        let listed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(
            &headers(Some("https://app.example"), "api.example"),
            &listed
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "api.example"),
            &listed
        ));
        let any = vec!["*".to_owned()];
        assert!(origin_allowed(
            &headers(Some("https://evil.example"), "api.example"),
            &any
        ));
    }
}
