//! `/health/live`, `/health/ready` and `/metrics`.
//!
//! Ready means "can serve": PostgreSQL answers, and Redis too when the rate limiter fails
//! closed. Kafka and the registry being down only degrade the API (writes wait in the
//! outbox), so readiness stays 200 and says `degraded`; draining every instance behind a
//! load balancer for a broker outage would turn a delay into an outage.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rdkafka::producer::Producer as _;
use redis::aio::ConnectionManager;
use serde_json::json;
use sqlx::PgPool;

use super::AppState;
use crate::metrics::Metrics;
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
    /// Whether Redis down means the API cannot serve: true when the rate limiter fails
    /// closed (every request would be refused); otherwise Redis down only degrades (cache
    /// misses, no rate limiting).
    pub redis_required: bool,
    /// The relay's Kafka producer.
    pub producer: anineplus_connectors::kafka::Producer,
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

/// What the probes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// PostgreSQL answered.
    pub postgres: bool,
    /// Redis answered.
    pub redis: bool,
    /// Kafka answered a metadata request.
    pub kafka: bool,
    /// The registry answered.
    pub registry: bool,
    /// Whether Redis is required to serve (see [`Probes::redis_required`]).
    pub redis_required: bool,
}

/// Whether the API can serve, and how well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every dependency answers.
    Up,
    /// It serves, with a dependency down: Kafka (writes wait in the outbox), the registry
    /// (the relay's encodes wait; schemas were registered at start), or Redis under
    /// `RATE_LIMIT_FAIL=open` (cache misses, no rate limits).
    Degraded,
    /// It cannot serve: PostgreSQL, or Redis under `RATE_LIMIT_FAIL=closed`.
    Down,
}

impl Health {
    /// Ready = can serve: PostgreSQL, and Redis when it is required; the rest degrade.
    pub fn readiness(&self) -> Readiness {
        if !self.postgres || (self.redis_required && !self.redis) {
            Readiness::Down
        } else if self.redis && self.kafka && self.registry {
            Readiness::Up
        } else {
            Readiness::Degraded
        }
    }

    fn dependencies(&self) -> [(&'static str, bool); 4] {
        [
            ("postgres", self.postgres),
            ("redis", self.redis),
            ("kafka", self.kafka),
            ("registry", self.registry),
        ]
    }
}

impl Probes {
    /// Probes every dependency at once (each for at most two seconds) and records the
    /// result in `metrics`.
    pub async fn check(&self, metrics: &Metrics) -> Health {
        let postgres = probe("postgres", sqlx::query("SELECT 1").execute(&self.pool));
        let redis = probe("redis", async {
            let mut conn = self.redis.clone();
            redis::cmd("PING").query_async::<String>(&mut conn).await
        });
        let producer = self.producer.clone();
        let kafka = probe("kafka", async move {
            tokio::task::spawn_blocking(move || {
                producer
                    .base()
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
            self.http
                .get(format!(
                    "{}/subjects",
                    self.registry_url.trim_end_matches('/')
                ))
                .send(),
        );
        let (postgres, redis, kafka, registry) = tokio::join!(postgres, redis, kafka, registry);
        let health = Health {
            postgres,
            redis,
            kafka,
            registry,
            redis_required: self.redis_required,
        };
        for (name, up) in health.dependencies() {
            metrics
                .dependency_up
                .with_label_values(&[name])
                .set(i64::from(up));
        }
        metrics
            .degraded
            .set(i64::from(health.readiness() == Readiness::Degraded));
        health
    }
}

/// 200 while the API can serve (`status` `up`, or `degraded` with the dependency that is
/// down), 503 when it cannot (`status` `down`).
pub async fn ready(State(state): State<AppState>) -> Response {
    let health = state.health.check(&state.metrics).await;
    let word = |b: bool| if b { "up" } else { "down" };
    let readiness = health.readiness();
    let mut body = json!({
        "status": match readiness {
            Readiness::Up => "up",
            Readiness::Degraded => "degraded",
            Readiness::Down => "down",
        },
    });
    for (name, up) in health.dependencies() {
        body[name] = json!(word(up));
    }
    let status = if readiness == Readiness::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// Prometheus text; the outbox gauges and the dependencies' state are read at scrape time.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.health.check(&state.metrics).await;
    match store::backlog(&state.health.pool).await {
        Ok(backlog) => {
            state.metrics.outbox_backlog.set(backlog.pending);
            state.metrics.outbox_oldest_age.set(backlog.oldest_age_secs);
            state.metrics.outbox_parked.set(backlog.parked);
        }
        Err(e) => tracing::warn!(error = %e, "outbox backlog unavailable"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
