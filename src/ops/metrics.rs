//! Prometheus metrics: request counts and latency by route and status, DB pool gauges,
//! messaging (persist, fan-out, slow consumers) and the Redis bus.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/v1/users/{user_id}`), never the raw path, to bound cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pub db_pool: Family<PoolLabels, Gauge>,
    /// `GUILDHALL_DATABASE_MAX_CONNECTIONS`, so dashboards can show saturation.
    pub db_pool_max: Gauge,
    pub messages_persisted: Counter,
    pub persist_batch_size: Histogram,
    pub persist_seconds: Histogram,
    pub ws_connections: Gauge,
    pub slow_consumer_disconnects: Counter,
    /// Commit to socket write of `message.created`, per recipient.
    pub broadcast_lag_seconds: Histogram,
    pub bus_publish_seconds: Histogram,
    /// Events for other nodes dropped because the Redis publish queue was full.
    pub bus_dropped_events: Counter,
    /// Redis publishing round trips that failed or timed out (Redis degraded).
    pub bus_publish_failures: Counter,
}

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("guildhall");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS.iter().copied())
        });
        let db_pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Postgres pool connections by state",
            db_pool.clone(),
        );
        let db_pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Largest size the Postgres pool may grow to",
            db_pool_max.clone(),
        );
        let messages_persisted = Counter::default();
        let persist_batch_size =
            Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]);
        let persist_seconds = Histogram::new(LATENCY_BUCKETS.iter().copied());
        let ws_connections = Gauge::default();
        let slow_consumer_disconnects = Counter::default();
        let broadcast_lag_seconds = Histogram::new(LATENCY_BUCKETS.iter().copied());
        let bus_publish_seconds = Histogram::new(LATENCY_BUCKETS.iter().copied());
        registry.register(
            "bus_publish_seconds",
            "One Redis round trip publishing queued events",
            bus_publish_seconds.clone(),
        );
        let bus_dropped_events = Counter::default();
        registry.register(
            "bus_dropped_events",
            "Events for other nodes dropped because the Redis publish queue was full",
            bus_dropped_events.clone(),
        );
        let bus_publish_failures = Counter::default();
        registry.register(
            "bus_publish_failures",
            "Redis publishing round trips that failed or timed out",
            bus_publish_failures.clone(),
        );
        registry.register(
            "messages_persisted",
            "Messages committed",
            messages_persisted.clone(),
        );
        registry.register(
            "persist_batch_size",
            "Messages per group commit",
            persist_batch_size.clone(),
        );
        registry.register(
            "persist_seconds",
            "Group commit duration",
            persist_seconds.clone(),
        );
        registry.register(
            "ws_connections",
            "Open WebSocket sessions on this node",
            ws_connections.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Sessions cut off because their outbox filled",
            slow_consumer_disconnects.clone(),
        );
        registry.register(
            "broadcast_lag_seconds",
            "Commit to socket write of a message",
            broadcast_lag_seconds.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            db_pool,
            db_pool_max,
            messages_persisted,
            persist_batch_size,
            persist_seconds,
            ws_connections,
            slow_consumer_disconnects,
            broadcast_lag_seconds,
            bus_publish_seconds,
            bus_dropped_events,
            bus_publish_failures,
        }
    }

    pub fn record_batch(&self, size: usize, took: std::time::Duration) {
        self.messages_persisted.inc_by(size as u64);
        self.persist_batch_size.observe(size as f64);
        self.persist_seconds.observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware recording every request under its route template.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let route_labels = RouteLabels { method, route };
    metrics
        .latency
        .get_or_create(&route_labels)
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: route_labels.method,
            route: route_labels.route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
