//! Pipeline metrics in the Prometheus text format, and the HTTP endpoint serving them.
//!
//! Hand-written (a few atomics and one histogram) rather than a metrics crate: the set is
//! small and fixed. Names:
//! - `pipeline_records_consumed_total`, `pipeline_records_sunk_total`,
//!   `pipeline_records_retried_total` (sent to a retry topic),
//!   `pipeline_records_dead_lettered_total`, `pipeline_sink_retries_total` (in-place);
//! - `pipeline_consumer_lag{topic,partition}` from librdkafka's statistics;
//! - `pipeline_batch_seconds` histogram: one batch from sink write to settled.
//!
//! `GET /metrics` serves them, `GET /health` answers 200 once the pipeline runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics of one pipeline process.
#[derive(Debug)]
pub struct Metrics {
    pipeline: String,
    /// Records consumed (all lanes).
    pub consumed: AtomicU64,
    /// Records settled by the sink (done or already applied).
    pub sunk: AtomicU64,
    /// Records sent to a retry topic.
    pub retried: AtomicU64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// In-place sink retries.
    pub sink_retries: AtomicU64,
    ready: AtomicBool,
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    batch: Mutex<([u64; BUCKETS.len()], u64, f64)>,
}

impl Metrics {
    /// Empty metrics for `pipeline`.
    pub fn new(pipeline: &str) -> Self {
        Metrics {
            pipeline: pipeline.to_owned(),
            consumed: AtomicU64::new(0),
            sunk: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            sink_retries: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            lag: Mutex::new(BTreeMap::new()),
            batch: Mutex::new(([0; BUCKETS.len()], 0, 0.0)),
        }
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Marks the pipeline running (or not) for `/health`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the pipeline runs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records the consumer lag of a partition.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .lock()
            .expect("metrics poisoned")
            .insert((topic.to_owned(), partition), lag);
    }

    /// Records one batch's latency.
    pub fn observe_batch(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut h = self.batch.lock().expect("metrics poisoned");
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.0[i] += 1;
            }
        }
        h.1 += 1;
        h.2 += secs;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let p = &self.pipeline;
        let mut out = String::new();
        for (name, help, counter) in [
            (
                "pipeline_records_consumed_total",
                "Records consumed.",
                &self.consumed,
            ),
            (
                "pipeline_records_sunk_total",
                "Records confirmed by the sink.",
                &self.sunk,
            ),
            (
                "pipeline_records_retried_total",
                "Records sent to a retry topic.",
                &self.retried,
            ),
            (
                "pipeline_records_dead_lettered_total",
                "Records sent to the dead-letter topic.",
                &self.dead_lettered,
            ),
            (
                "pipeline_sink_retries_total",
                "In-place sink retries.",
                &self.sink_retries,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name}{{pipeline=\"{p}\"}} {}", Self::get(counter));
        }
        let _ = writeln!(
            out,
            "# HELP pipeline_consumer_lag Records behind the partition end.\n# TYPE pipeline_consumer_lag gauge"
        );
        for ((topic, partition), lag) in self.lag.lock().expect("metrics poisoned").iter() {
            let _ = writeln!(
                out,
                "pipeline_consumer_lag{{pipeline=\"{p}\",topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
            );
        }
        let (buckets, count, sum) = *self.batch.lock().expect("metrics poisoned");
        let _ = writeln!(
            out,
            "# HELP pipeline_batch_seconds Time to settle one batch.\n# TYPE pipeline_batch_seconds histogram"
        );
        for (bound, n) in BUCKETS.iter().zip(buckets) {
            let _ = writeln!(
                out,
                "pipeline_batch_seconds_bucket{{pipeline=\"{p}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "pipeline_batch_seconds_bucket{{pipeline=\"{p}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "pipeline_batch_seconds_sum{{pipeline=\"{p}\"}} {sum}");
        let _ = writeln!(
            out,
            "pipeline_batch_seconds_count{{pipeline=\"{p}\"}} {count}"
        );
        out
    }
}

/// Serves `/metrics` and `/health` on `listen` until `shutdown`; returns the bound address.
pub async fn serve(
    metrics: Arc<Metrics>,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.render() }),
        )
        .route(
            "/health",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_ready() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_lag_and_the_histogram() {
        let m = Metrics::new("indexer");
        Metrics::add(&m.consumed, 3);
        m.set_lag("anime", 1, 42);
        m.observe_batch(Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("pipeline_records_consumed_total{pipeline=\"indexer\"} 3"),
            "{text}"
        );
        assert!(text.contains(
            "pipeline_consumer_lag{pipeline=\"indexer\",topic=\"anime\",partition=\"1\"} 42"
        ));
        assert!(
            text.contains("pipeline_batch_seconds_bucket{pipeline=\"indexer\",le=\"0.025\"} 0")
        );
        assert!(text.contains("pipeline_batch_seconds_bucket{pipeline=\"indexer\",le=\"0.05\"} 1"));
        assert!(text.contains("pipeline_batch_seconds_count{pipeline=\"indexer\"} 1"));
    }
}
