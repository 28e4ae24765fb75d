//! Operations endpoints: liveness, readiness (Postgres, Redis), Prometheus metrics.

mod metrics;

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use metrics::{Metrics, track};

use crate::error::{FieldError, Problem, problem, problem_response};
use crate::extract::Json;
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`
    pub status: &'static str,
    /// `ok`
    pub postgres: &'static str,
    /// `ok`, or `disabled` in single-node mode.
    pub redis: &'static str,
}

/// The process is alive (no dependency checks).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Postgres (and Redis when configured) answer; 503 names the one that does not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is unreachable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let postgres = match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let redis = match state.redis.clone() {
        None => None,
        Some(mut conn) => Some(
            match tokio::time::timeout(
                CHECK_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err("timed out".to_owned()),
            },
        ),
    };
    let mut failed = Vec::new();
    if let Err(err) = &postgres {
        failed.push(FieldError::new("postgres", format!("unreachable: {err}")));
    }
    if let Some(Err(err)) = &redis {
        failed.push(FieldError::new("redis", format!("unreachable: {err}")));
    }
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|f| f.field.as_str()).collect();
        tracing::warn!(failed = ?failed, "not ready");
        let detail = format!("not ready: {} unreachable", names.join(", "));
        return problem_response(&problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            detail,
            failed,
            None,
        ));
    }
    Json(Readiness {
        status: "ready",
        postgres: "ok",
        redis: if redis.is_some() { "ok" } else { "disabled" },
    })
    .into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, operation_id = "get_metrics", path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    let pool = state.db.get_postgres_connection_pool();
    let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
    let size = i64::from(pool.size());
    state
        .metrics
        .db_pool
        .get_or_create(&metrics::PoolLabels { state: "idle" })
        .set(idle);
    state
        .metrics
        .db_pool
        .get_or_create(&metrics::PoolLabels { state: "in_use" })
        .set(size - idle);
    state
        .metrics
        .db_pool_max
        .set(i64::from(state.config.database_max_connections));
    let mut response = (StatusCode::OK, state.metrics.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
