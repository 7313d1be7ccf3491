//! Pipeline metrics in the Prometheus text format, and the HTTP endpoint serving them.
//!
//! Hand-written (a few atomics and one histogram) rather than a metrics crate: the set is
//! small and fixed. Names:
//! - `pipeline_records_consumed_total`, `pipeline_records_sunk_total`,
//!   `pipeline_records_retried_total` (sent to a retry topic),
//!   `pipeline_records_dead_lettered_total`, `pipeline_sink_retries_total` (in-place);
//! - `pipeline_consumer_lag{topic,partition}` from librdkafka's statistics;
//! - `pipeline_batch_seconds` histogram: one batch from sink write to settled;
//! - `pipeline_lane_failed{lane}`: 1 for a lane that stopped on a panic or on a failure it
//!   cannot get past (e.g. a record too large for its dead-letter topic);
//! - `pipeline_dead_letters{topic}` (records present in the dead-letter topic) and
//!   `pipeline_dead_letter_oldest_age_seconds{topic}` (age of the oldest one), sampled
//!   every 30 s;
//! - `pipeline_offset_gap_records{topic,partition}`: records that expired (retention) or
//!   were deleted between the group's committed offset and the partition's start, so they
//!   were never processed (see `verify`/`repair`).
//!
//! `GET /metrics` serves them. `GET /health` answers 200 once the pipeline runs (with a
//! `warning:` line per offset gap), 503 `starting` before, and 503 `failing: lane <lane>:
//! <reason>` once a lane has failed.

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
    /// Lanes that stopped for good, with why.
    failed: Mutex<BTreeMap<String, String>>,
    /// Offset gaps: (topic, partition) → (records never processed, advice).
    gaps: Mutex<BTreeMap<(String, i32), (i64, String)>>,
    /// Dead-letter topics: topic → (records present, age of the oldest in seconds).
    dead_letters: Mutex<BTreeMap<String, (i64, Option<f64>)>>,
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
            failed: Mutex::new(BTreeMap::new()),
            gaps: Mutex::new(BTreeMap::new()),
            dead_letters: Mutex::new(BTreeMap::new()),
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

    /// Marks `lane` (e.g. `main`, `retry.1`) as stopped for good: `/health` fails from now on.
    pub fn fail_lane(&self, lane: &str, reason: &str) {
        self.failed
            .lock()
            .expect("metrics poisoned")
            .insert(lane.to_owned(), reason.to_owned());
    }

    /// The failed lanes and why.
    pub fn failed_lanes(&self) -> Vec<(String, String)> {
        let failed = self.failed.lock().expect("metrics poisoned");
        failed.iter().map(|(l, r)| (l.clone(), r.clone())).collect()
    }

    /// Records an offset gap: `records` of `topic`/`partition` were never processed (the
    /// largest gap seen on the partition, so a gap reported again on a later assignment
    /// counts once).
    pub fn offset_gap(&self, topic: &str, partition: i32, records: i64, advice: &str) {
        let mut gaps = self.gaps.lock().expect("metrics poisoned");
        let entry = gaps
            .entry((topic.to_owned(), partition))
            .or_insert((0, String::new()));
        entry.0 = entry.0.max(records);
        entry.1 = advice.to_owned();
    }

    /// Records present in a dead-letter topic and the age of the oldest, in seconds.
    pub fn set_dead_letters(&self, topic: &str, records: i64, oldest_age: Option<f64>) {
        self.dead_letters
            .lock()
            .expect("metrics poisoned")
            .insert(topic.to_owned(), (records, oldest_age));
    }

    /// `/health`: the status and its body.
    pub fn health(&self) -> (StatusCode, String) {
        let failed = self.failed_lanes();
        if !failed.is_empty() {
            let lines: Vec<String> = failed
                .iter()
                .map(|(lane, reason)| format!("failing: lane {lane}: {reason}"))
                .collect();
            return (StatusCode::SERVICE_UNAVAILABLE, lines.join("\n"));
        }
        if !self.is_ready() {
            return (StatusCode::SERVICE_UNAVAILABLE, "starting".to_owned());
        }
        let mut body = "ok".to_owned();
        for ((topic, partition), (records, advice)) in
            self.gaps.lock().expect("metrics poisoned").iter()
        {
            let _ = write!(
                body,
                "\nwarning: offset gap on {topic}/{partition}: {records} record(s) never processed; {advice}"
            );
        }
        (StatusCode::OK, body)
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
        let _ = writeln!(
            out,
            "# HELP pipeline_lane_failed 1 for a lane stopped by a failure it cannot pass.\n# TYPE pipeline_lane_failed gauge"
        );
        for (lane, _) in self.failed_lanes() {
            let _ = writeln!(
                out,
                "pipeline_lane_failed{{pipeline=\"{p}\",lane=\"{lane}\"}} 1"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pipeline_offset_gap_records Records skipped unprocessed: committed offset below the partition start.\n# TYPE pipeline_offset_gap_records gauge"
        );
        for ((topic, partition), (records, _)) in self.gaps.lock().expect("metrics poisoned").iter()
        {
            let _ = writeln!(
                out,
                "pipeline_offset_gap_records{{pipeline=\"{p}\",topic=\"{topic}\",partition=\"{partition}\"}} {records}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pipeline_dead_letters Records present in the dead-letter topic.\n# TYPE pipeline_dead_letters gauge"
        );
        let dead_letters = self.dead_letters.lock().expect("metrics poisoned").clone();
        for (topic, (records, _)) in &dead_letters {
            let _ = writeln!(
                out,
                "pipeline_dead_letters{{pipeline=\"{p}\",topic=\"{topic}\"}} {records}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pipeline_dead_letter_oldest_age_seconds Age of the oldest dead letter present.\n# TYPE pipeline_dead_letter_oldest_age_seconds gauge"
        );
        for (topic, (_, age)) in &dead_letters {
            if let Some(age) = age {
                let _ = writeln!(
                    out,
                    "pipeline_dead_letter_oldest_age_seconds{{pipeline=\"{p}\",topic=\"{topic}\"}} {age:.3}"
                );
            }
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
            get(|State(m): State<Arc<Metrics>>| async move { m.health() }),
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

    #[test]
    fn health_fails_with_the_lane_named_and_warns_of_offset_gaps() {
        let m = Metrics::new("indexer");
        assert_eq!(m.health().0, StatusCode::SERVICE_UNAVAILABLE);
        m.set_ready(true);
        m.offset_gap("anime", 2, 7, "run verify");
        let (status, body) = m.health();
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("offset gap on anime/2: 7 record(s)"),
            "{body}"
        );
        m.set_dead_letters("indexer.dlq", 3, Some(12.5));
        let text = m.render();
        assert!(
            text.contains("pipeline_dead_letters{pipeline=\"indexer\",topic=\"indexer.dlq\"} 3")
        );
        assert!(text.contains("pipeline_dead_letter_oldest_age_seconds{pipeline=\"indexer\",topic=\"indexer.dlq\"} 12.500"));
        assert!(text.contains(
            "pipeline_offset_gap_records{pipeline=\"indexer\",topic=\"anime\",partition=\"2\"} 7"
        ));
        m.fail_lane("retry.1", "writer panicked: boom");
        let (status, body) = m.health();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "failing: lane retry.1: writer panicked: boom");
        assert!(text.len() < m.render().len());
    }
}
