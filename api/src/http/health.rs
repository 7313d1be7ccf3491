//! `/health/live`, `/health/ready` and `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rdkafka::producer::{FutureProducer, Producer};
use redis::aio::ConnectionManager;
use serde_json::json;
use sqlx::PgPool;

use super::AppState;
use crate::outbox::store;

/// How long each readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The dependencies readiness checks.
#[derive(Clone)]
pub struct Probes {
    /// PostgreSQL.
    pub pool: PgPool,
    /// Redis.
    pub redis: ConnectionManager,
    /// The relay's Kafka producer.
    pub producer: FutureProducer,
    /// Schema registry base URL.
    pub registry_url: String,
    /// HTTP client of the registry probe.
    pub http: reqwest::Client,
}

/// The process runs.
pub async fn live() -> &'static str {
    "ok"
}

async fn probe<F, T, E>(name: &str, f: F) -> bool
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(dependency = name, error = %e, "readiness probe failed");
            false
        }
        Err(_) => {
            tracing::warn!(dependency = name, "readiness probe timed out");
            false
        }
    }
}

/// Every dependency answers: PostgreSQL, Redis, Kafka (metadata) and the registry.
pub async fn ready(State(state): State<AppState>) -> Response {
    let p = state.health.clone();
    let postgres = probe("postgres", sqlx::query("SELECT 1").execute(&p.pool));
    let redis = probe("redis", async {
        let mut conn = p.redis.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await
    });
    let producer = p.producer.clone();
    let kafka = probe("kafka", async move {
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, PROBE_TIMEOUT)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    });
    let registry = probe(
        "registry",
        p.http
            .get(format!("{}/subjects", p.registry_url.trim_end_matches('/')))
            .send(),
    );
    let (postgres, redis, kafka, registry) = tokio::join!(postgres, redis, kafka, registry);
    let ok = postgres && redis && kafka && registry;
    let word = |b: bool| if b { "up" } else { "down" };
    let body = json!({
        "status": word(ok),
        "postgres": word(postgres),
        "redis": word(redis),
        "kafka": word(kafka),
        "registry": word(registry),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text; the outbox gauges are read at scrape time.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match store::backlog(&state.health.pool).await {
        Ok((count, age)) => {
            state.metrics.outbox_backlog.set(count);
            state.metrics.outbox_oldest_age.set(age);
        }
        Err(e) => tracing::warn!(error = %e, "outbox backlog unavailable"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
