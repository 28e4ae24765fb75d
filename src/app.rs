//! `App::build` binds the listener first (port 0 works), connects Postgres and Redis, merges the
//! feature routers under the shared layers; `run_until_stopped` serves until SIGTERM/SIGINT or
//! the shutdown token, letting in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::error::{AppError, PROBLEM_JSON, problem, problem_response};
use crate::extract::TrustForwardedFor;
use crate::identity::{Passwords, TokenService};
use crate::media::Media;
use crate::messages::{GatewayHooks, Writer};
use crate::ops::Metrics;
use crate::permissions::{Feed, Permissions};
use crate::polls::Polls;
use crate::ratelimit::RateLimiter;
use crate::realtime::{Bus, Gateway, Presence};
use crate::state::AppState;
use crate::{db, openapi};

/// How often a node checks, with several nodes, that its sessions missed no cross-node message.
const CATCH_UP_EVERY: Duration = Duration::from_secs(2);

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: CancellationToken,
    /// Background tasks owned by the app; awaited on shutdown.
    tasks: TaskTracker,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind).await.map_err(|e| {
            anyhow::anyhow!("GUILDHALL_BIND: cannot listen on {}: {e}", config.bind)
        })?;
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let bound = listener.local_addr()?;
        let state = build_state(config, bound, &tasks, &shutdown).await?;
        if !state.config.rate_limits.enabled {
            tracing::warn!(
                "GUILDHALL_RATE_LIMITS=off: every request and message rate limit is disabled"
            );
        }
        let router = router(state.clone());
        let feed = state.permissions.feed().clone();
        tasks.spawn(feed.listen(state.permissions.clone(), shutdown.clone()));
        // Operator-revoked sessions: refused tokens from the start, and live sockets closed.
        crate::identity::revocation::load(&state.db, &state.tokens).await?;
        let gateway = state.gateway.clone();
        let close_sessions = Arc::new(move |user: uuid::Uuid| {
            let closed = gateway.close_user(user, "sessions revoked");
            tracing::info!(user_id = %user, closed, "websocket sessions of a revoked user closed");
        });
        tasks.spawn(crate::identity::revocation::listen(
            state.db.clone(),
            state.tokens.clone(),
            close_sessions,
            shutdown.clone(),
        ));
        Ok(Self {
            listener,
            router,
            state,
            shutdown,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token stops the server as a signal would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        tracing::info!(addr = %self.local_addr(), "serving");
        let header_read_timeout = self.state.config.header_read_timeout;
        crate::serve::serve(
            self.listener,
            self.router,
            header_read_timeout,
            stop_signal(shutdown.clone()),
        )
        .await;
        shutdown.cancel();
        self.state.gateway.tasks.close();
        self.state.gateway.tasks.wait().await;
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn build_state(
    config: Config,
    bound: SocketAddr,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<AppState> {
    let db = db::connect(&config).await?;
    if config.auto_migrate {
        db::migrate_up(&db, None).await?;
        tracing::info!("migrations applied (GUILDHALL_AUTO_MIGRATE)");
    }
    let redis = match &config.redis_url {
        Some(url) => Some(connect_redis(url.expose()).await?),
        None => None,
    };
    let feed = match (&config.redis_url, &redis) {
        (Some(url), Some(publisher)) => Feed::Redis {
            client: redis::Client::open(url.expose().as_str())?,
            publisher: publisher.clone(),
            channel: format!("{}policy", config.redis_prefix),
        },
        _ => Feed::Postgres,
    };
    let metrics = Arc::new(Metrics::new());
    let events_channel = format!("{}events", config.redis_prefix);
    let bus = Bus::new(
        redis.clone().map(|r| (r, events_channel.clone())),
        crate::realtime::BusMetrics {
            publish_seconds: metrics.bus_publish_seconds.clone(),
            dropped: metrics.bus_dropped_events.clone(),
            publish_failures: metrics.bus_publish_failures.clone(),
        },
    );
    if let Some(url) = &config.redis_url {
        let client = redis::Client::open(url.expose().as_str())?;
        tasks.spawn(bus.clone().relay(
            client,
            format!("{}events", config.redis_prefix),
            shutdown.clone(),
        ));
    }
    let writer = Writer::spawn(
        db.clone(),
        bus.clone(),
        metrics.clone(),
        (config.messaging.writers, config.messaging.queue),
        tasks,
        shutdown.clone(),
    );
    let gateway = Arc::new(Gateway::new(metrics.clone()));
    let hooks = Arc::new(GatewayHooks::new());
    let presence_expiry = config.messaging.heartbeat * 3;
    let presence = Arc::new(Presence::new(
        bus.node_id(),
        presence_expiry,
        redis.clone().map(|r| (r, config.redis_prefix.clone())),
    ));
    tasks.spawn(presence.clone().run(
        bus.clone(),
        hooks.clone(),
        config.messaging.heartbeat,
        shutdown.clone(),
    ));
    tasks.spawn(gateway.clone().dispatch(bus.subscribe(), shutdown.clone()));
    if config.redis_url.is_some() {
        tasks.spawn(
            gateway
                .clone()
                .catch_up(hooks.clone(), CATCH_UP_EVERY, shutdown.clone()),
        );
    }
    let limiter = RateLimiter::new(
        config.rate_limits.enabled,
        redis.clone().map(|r| (r, config.redis_prefix.clone())),
    );
    let polls = Arc::new(Polls::new(config.ballot_secret.expose(), tasks.clone()));
    // Boxed: the AWS config loader is a large future.
    let media = Arc::new(Box::pin(Media::new(&config.media, bound)).await);
    let state = AppState {
        tokens: Arc::new(TokenService::new(&config.jwt)),
        passwords: Passwords::new().await?,
        config: Arc::new(config),
        redis,
        limiter,
        metrics,
        permissions: Arc::new(Permissions::new(db.clone(), feed)),
        bus,
        writer,
        gateway,
        presence,
        polls,
        media,
        hooks: hooks.clone(),
        shutdown: shutdown.clone(),
        db,
    };
    hooks.bind(state.clone());
    tasks.spawn(crate::polls::run_closer(state.clone(), shutdown.clone()));
    tasks.spawn(crate::media::run_sweeper(state.clone(), shutdown.clone()));
    tasks.spawn(crate::calendar::run_reminders(
        state.clone(),
        shutdown.clone(),
    ));
    Ok(state)
}

async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client =
        redis::Client::open(url).map_err(|e| anyhow::anyhow!("GUILDHALL_REDIS_URL: {e}"))?;
    redis::aio::ConnectionManager::new(client)
        .await
        .map_err(|e| anyhow::anyhow!("GUILDHALL_REDIS_URL: cannot connect to Redis: {e}"))
}

/// The full router: documented API, docs UI, fallback and the shared layers.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let (api, spec) = openapi::api_router().split_for_parts();
    let asyncapi = axum::body::Bytes::from(crate::asyncapi::yaml_for(&spec));
    let x_request_id = HeaderName::from_static("x-request-id");
    let api = if config.web_app {
        api.merge(crate::webapp::router(config.media.storage.as_ref()))
    } else {
        api
    };
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .route(
            "/asyncapi.yaml",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/yaml")], asyncapi)
            }),
        )
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), crate::ops::track))
        .layer(axum::Extension(TrustForwardedFor(config.trust_forwarded_for)))
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(RequestBodyLimitLayer::new(config.body_limit_bytes))
        .layer(cors(&config.cors_origins))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, config.request_timeout))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::map_response(problem_for_bare_errors))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<Body>| {
                    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %request.method(), uri = %request.uri().path(), request_id)
                })
                .on_response(|response: &Response, latency: Duration, _span: &tracing::Span| {
                    let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
                    tracing::info!(target: "guildhall::access", status = response.status().as_u16(), latency_ms, "request finished");
                }),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_malformed_request_id))
        .with_state(state)
}

/// The longest `x-request-id` taken from a client (or a proxy in front).
const MAX_REQUEST_ID_LEN: usize = 128;

/// An incoming `x-request-id` is kept when it is 1-128 characters of `A-Z a-z 0-9 - _ . :`;
/// anything else is dropped, so a fresh UUID replaces it and logs never carry client junk.
async fn drop_malformed_request_id(mut request: Request<Body>) -> Request<Body> {
    let well_formed = request.headers().get("x-request-id").is_none_or(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    if !well_formed {
        request.headers_mut().remove("x-request-id");
    }
    request
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    AppError::Internal(anyhow::anyhow!("panic")).into_response()
}

/// Errors produced outside handlers (405 from method routing, 413 from the body limit, 503 from
/// the timeout) get the same problem+json shape as handler errors; headers such as `Allow` stay.
async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "request body exceeds the size limit")
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            ("unavailable", "the request took too long")
        }
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "authentication required"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("validation_failed", "the request was not understood"),
    };
    let (mut parts, _body) = response.into_parts();
    let mut fresh = problem_response(&problem(status, code, detail.to_owned(), Vec::new(), None));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    std::mem::swap(fresh.headers_mut(), &mut parts.headers);
    *fresh.status_mut() = status;
    fresh
}

/// Resolves on SIGINT, SIGTERM or cancellation of `token`.
async fn stop_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
        () = token.cancelled() => {},
    }
}
