//! Pipeline metrics on the `prometheus` crate (as the API's), and the HTTP endpoint
//! serving them.
//!
//! Each [`Metrics`] owns its registry, every series labelled `pipeline`; `/metrics` also
//! serves Prometheus' process-wide registry (log shipping's `logs_shipped_total` and
//! `logs_dropped_total`). Names:
//! - `pipeline_records_consumed_total`, `pipeline_records_sunk_total`,
//!   `pipeline_records_retried_total` (sent to a retry topic),
//!   `pipeline_records_dead_lettered_total`, `pipeline_sink_retries_total` (in-place);
//! - `pipeline_consumer_lag{topic,partition}` from librdkafka's statistics;
//! - `pipeline_batch_seconds` histogram: one batch from sink write to settled;
//! - `pipeline_started_timestamp_seconds` (when the pipeline's metrics were made, at its
//!   start) and `pipeline_first_record_timestamp_seconds` (when its first record was
//!   consumed; 0 before): their difference is the start-up to the first record, group
//!   join included, without polling for it;
//! - `pipeline_lane_failed{lane}`: 1 for a lane that stopped on a panic or on a failure it
//!   cannot get past (e.g. a record too large for its dead-letter topic);
//! - `pipeline_dead_letters{topic}` (records present in the dead-letter topic) and
//!   `pipeline_dead_letter_oldest_age_seconds{topic}` (age of the oldest one), sampled
//!   every 30 s;
//! - `pipeline_offset_gap_records{topic,partition}`: records that expired (retention) or
//!   were deleted between the group's committed offset and the partition's start, so they
//!   were never processed (see `verify`/`repair`);
//! - stateful pipelines also count `pipeline_commits_total`, `pipeline_aborts_total`
//!   (commits abandoned, state rewound), `pipeline_late_records_total` (after their
//!   window closed), `pipeline_state_restored_records_total` (changelog records read
//!   back into stores), `pipeline_state_restore_seconds` (the last restore's duration) and
//!   `pipeline_hanging_transactions_completed_total` (partitions where a transaction its
//!   coordinator had skipped was completed by hand, `state/kafka.rs`).
//!
//! A process running several pipelines serves them on one endpoint ([`serve_all`]): the
//! families of every registry merged by name, `/health` failing when any pipeline fails.
//!
//! The counters are plain atomics under the crate's types, so the per-record path pays one
//! relaxed add. `GET /metrics` serves them. `GET /health` answers 200 once the pipeline
//! runs (with a `warning:` line per offset gap), 503 `starting` before, and 503 `failing:
//! lane <lane>: <reason>` once a lane has failed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio_util::sync::CancellationToken;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics of one pipeline process.
#[derive(Debug)]
pub struct Metrics {
    name: String,
    registry: Registry,
    /// Records consumed (all lanes).
    pub consumed: IntCounter,
    /// Records settled by the sink (done or already applied).
    pub sunk: IntCounter,
    /// Records sent to a retry topic.
    pub retried: IntCounter,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: IntCounter,
    /// In-place sink retries.
    pub sink_retries: IntCounter,
    /// Records that came after their window closed (stateful pipelines).
    pub late: IntCounter,
    /// Commits of a stateful pipeline.
    pub commits: IntCounter,
    /// Commits abandoned (transactions aborted) by a stateful pipeline.
    pub aborts: IntCounter,
    /// Changelog records restored into state stores.
    pub restored: IntCounter,
    /// Consumers replaced after failing for good (a fatal error, a lost assignment).
    pub consumer_restarts: IntCounter,
    /// Partitions where a hanging transaction of the pipeline's was completed.
    pub hanging_completed: IntCounter,
    /// How long the last restore took (seconds; 0 before any).
    pub restore_seconds: Gauge,
    lag: IntGaugeVec,
    lane_failed: IntGaugeVec,
    gap_records: IntGaugeVec,
    dead_letters: IntGaugeVec,
    dead_letter_age: GaugeVec,
    batch: Histogram,
    first_record: Gauge,
    ready: AtomicBool,
    /// Lanes that stopped for good, with why.
    failed: Mutex<BTreeMap<String, String>>,
    /// Offset gaps: (topic, partition) → (records never processed, advice).
    gaps: Mutex<BTreeMap<(String, i32), (i64, String)>>,
}

impl Metrics {
    /// Empty metrics for `pipeline`.
    pub fn new(pipeline: &str) -> Self {
        let registry = Registry::new_custom(
            None,
            Some([("pipeline".to_owned(), pipeline.to_owned())].into()),
        )
        .expect("a valid registry");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("a valid counter");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        };
        let dead_letter_age = GaugeVec::new(
            Opts::new(
                "pipeline_dead_letter_oldest_age_seconds",
                "Age of the oldest dead letter present.",
            ),
            &["topic"],
        )
        .expect("a valid gauge");
        registry
            .register(Box::new(dead_letter_age.clone()))
            .expect("unique name");
        let batch = Histogram::with_opts(
            HistogramOpts::new("pipeline_batch_seconds", "Time to settle one batch.")
                .buckets(BUCKETS.to_vec()),
        )
        .expect("a valid histogram");
        registry
            .register(Box::new(batch.clone()))
            .expect("unique name");
        let gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("a valid gauge");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        };
        gauge(
            "pipeline_started_timestamp_seconds",
            "When the pipeline started (Unix time).",
        )
        .set(unix_now());
        let first_record = gauge(
            "pipeline_first_record_timestamp_seconds",
            "When the first record was consumed (Unix time; 0 before).",
        );
        let restore_seconds = gauge(
            "pipeline_state_restore_seconds",
            "How long the last restore of state stores from their changelog took.",
        );
        Metrics {
            restore_seconds,
            name: pipeline.to_owned(),
            first_record,
            consumed: counter("pipeline_records_consumed_total", "Records consumed."),
            sunk: counter(
                "pipeline_records_sunk_total",
                "Records confirmed by the sink.",
            ),
            retried: counter(
                "pipeline_records_retried_total",
                "Records sent to a retry topic.",
            ),
            dead_lettered: counter(
                "pipeline_records_dead_lettered_total",
                "Records sent to the dead-letter topic.",
            ),
            sink_retries: counter("pipeline_sink_retries_total", "In-place sink retries."),
            late: counter(
                "pipeline_late_records_total",
                "Records that came after their window closed.",
            ),
            commits: counter("pipeline_commits_total", "Commits of a stateful pipeline."),
            aborts: counter(
                "pipeline_aborts_total",
                "Commits abandoned (transactions aborted, state rewound).",
            ),
            restored: counter(
                "pipeline_state_restored_records_total",
                "Changelog records restored into state stores.",
            ),
            consumer_restarts: counter(
                "pipeline_consumer_restarts_total",
                "Consumers replaced after failing for good (fatal error, lost assignment).",
            ),
            hanging_completed: counter(
                "pipeline_hanging_transactions_completed_total",
                "Partitions where a hanging transaction of this pipeline was completed.",
            ),
            lag: gauges(
                "pipeline_consumer_lag",
                "Records behind the partition end.",
                &["topic", "partition"],
            ),
            lane_failed: gauges(
                "pipeline_lane_failed",
                "1 for a lane stopped by a failure it cannot pass.",
                &["lane"],
            ),
            gap_records: gauges(
                "pipeline_offset_gap_records",
                "Records skipped unprocessed: committed offset below the partition start.",
                &["topic", "partition"],
            ),
            dead_letters: gauges(
                "pipeline_dead_letters",
                "Records present in the dead-letter topic.",
                &["topic"],
            ),
            dead_letter_age,
            batch,
            registry,
            ready: AtomicBool::new(false),
            failed: Mutex::new(BTreeMap::new()),
            gaps: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts `n` records consumed; the first also sets
    /// `pipeline_first_record_timestamp_seconds`.
    pub fn count_consumed(&self, n: u64) {
        if n > 0 && self.consumed.get() == 0 {
            self.first_record.set(unix_now());
        }
        self.consumed.inc_by(n);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &IntCounter, n: u64) {
        counter.inc_by(n);
    }

    /// Reads `counter`.
    pub fn get(counter: &IntCounter) -> u64 {
        counter.get()
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
        self.lane_failed.with_label_values(&[lane]).set(1);
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
        self.gap_records
            .with_label_values(&[topic, &partition.to_string()])
            .set(entry.0);
    }

    /// Records present in a dead-letter topic and the age of the oldest, in seconds.
    pub fn set_dead_letters(&self, topic: &str, records: i64, oldest_age: Option<f64>) {
        self.dead_letters.with_label_values(&[topic]).set(records);
        match oldest_age {
            Some(age) => self.dead_letter_age.with_label_values(&[topic]).set(age),
            None => {
                let _ = self.dead_letter_age.remove_label_values(&[topic]);
            }
        }
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
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// Records one batch's latency.
    pub fn observe_batch(&self, elapsed: Duration) {
        self.batch.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        render_all(std::slice::from_ref(self))
    }
}

/// The Prometheus text exposition of several pipelines' metrics, then the process-wide
/// ones: families of the same name merged (their series differ by the `pipeline` label).
pub fn render_all<M: std::borrow::Borrow<Metrics>>(all: &[M]) -> String {
    let mut families: BTreeMap<String, prometheus::proto::MetricFamily> = BTreeMap::new();
    let gathered = all
        .iter()
        .flat_map(|m| m.borrow().registry.gather())
        .chain(prometheus::gather());
    for mut family in gathered {
        match families.entry(family.name().to_owned()) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(family);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let more = family.take_metric();
                e.get_mut().mut_metric().extend(more);
            }
        }
    }
    let families: Vec<_> = families.into_values().collect();
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut out)
        .expect("the text encoder writes to a Vec");
    String::from_utf8(out).expect("the text exposition is UTF-8")
}

/// `/health` of several pipelines: 503 when any is failing or starting (each one's line
/// prefixed with its name), 200 with their warnings otherwise.
pub fn health_all(all: &[Arc<Metrics>]) -> (StatusCode, String) {
    if let [one] = all {
        return one.health();
    }
    let mut status = StatusCode::OK;
    let mut lines = Vec::new();
    for m in all {
        let (s, body) = m.health();
        if s != StatusCode::OK {
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
        lines.push(format!("{}: {body}", m.name));
    }
    (status, lines.join("\n"))
}

/// Serves `/metrics` and `/health` on `listen` until `shutdown`; returns the bound address.
pub async fn serve(
    metrics: Arc<Metrics>,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    serve_all(vec![metrics], listen, shutdown).await
}

/// Serves the `/metrics` and `/health` of several pipelines of one process on `listen`
/// until `shutdown` (see the module header); returns the bound address.
pub async fn serve_all(
    metrics: Vec<Arc<Metrics>>,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let metrics = Arc::new(metrics);
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Vec<Arc<Metrics>>>>| async move {
                (
                    [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                    render_all(&m),
                )
            }),
        )
        .route(
            "/health",
            get(|State(m): State<Arc<Vec<Arc<Metrics>>>>| async move { health_all(&m) }),
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

/// Seconds since the Unix epoch, with fractions.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample line of `name` whose labels include every one of `labels`.
    fn sample(text: &str, name: &str, labels: &[&str]) -> Option<String> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .find(|l| labels.iter().all(|label| l.contains(label)))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    }

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
        assert!(text.contains("# TYPE pipeline_records_consumed_total counter"));
        let lag = sample(
            &text,
            "pipeline_consumer_lag",
            &["pipeline=\"indexer\"", "topic=\"anime\"", "partition=\"1\""],
        );
        assert_eq!(lag.as_deref(), Some("42"), "{text}");
        let bucket = |le: &str| {
            sample(
                &text,
                "pipeline_batch_seconds_bucket",
                &[&format!("le=\"{le}\"")],
            )
        };
        assert_eq!(bucket("0.025").as_deref(), Some("0"), "{text}");
        assert_eq!(bucket("0.05").as_deref(), Some("1"));
        assert!(text.contains("pipeline_batch_seconds_count{pipeline=\"indexer\"} 1"));
    }

    #[test]
    fn the_first_record_is_stamped_once_after_the_start() {
        let m = Metrics::new("indexer");
        let stamp = |m: &Metrics, name: &str| -> f64 {
            sample(&m.render(), name, &[])
                .and_then(|v| v.parse().ok())
                .expect("rendered")
        };
        let started = stamp(&m, "pipeline_started_timestamp_seconds");
        assert!(started > 1.7e9, "a Unix time: {started}");
        assert_eq!(stamp(&m, "pipeline_first_record_timestamp_seconds"), 0.0);
        m.count_consumed(0);
        assert_eq!(stamp(&m, "pipeline_first_record_timestamp_seconds"), 0.0);
        m.count_consumed(2);
        let first = stamp(&m, "pipeline_first_record_timestamp_seconds");
        assert!(first >= started, "{first} < {started}");
        std::thread::sleep(Duration::from_millis(20));
        m.count_consumed(1);
        assert_eq!(stamp(&m, "pipeline_first_record_timestamp_seconds"), first);
        assert_eq!(Metrics::get(&m.consumed), 3);
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
        let dead = sample(&text, "pipeline_dead_letters", &["topic=\"indexer.dlq\""]);
        assert_eq!(dead.as_deref(), Some("3"), "{text}");
        let age = sample(
            &text,
            "pipeline_dead_letter_oldest_age_seconds",
            &["topic=\"indexer.dlq\""],
        );
        assert_eq!(age.as_deref(), Some("12.5"));
        let gap = sample(
            &text,
            "pipeline_offset_gap_records",
            &["topic=\"anime\"", "partition=\"2\""],
        );
        assert_eq!(gap.as_deref(), Some("7"));
        m.fail_lane("retry.1", "writer panicked: boom");
        let (status, body) = m.health();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "failing: lane retry.1: writer panicked: boom");
        let failed = sample(&m.render(), "pipeline_lane_failed", &["lane=\"retry.1\""]);
        assert_eq!(failed.as_deref(), Some("1"));
    }
}
