//! Error tracking and alerting (pipeline `log-alerts`, its own consumer group): the rate of
//! `ERROR` records per fingerprint (service + kind of error) over a sliding window; above
//! a threshold, one alert event to the `alerts` topic (Avro, `schemas/avro/alerts.avsc`),
//! a log line and an optional webhook POST; while it stays above, at most one more per
//! dedupe window; a `RESOLVED` event when it falls back to the threshold or under.
//!
//! - [`Tracker`] is the pure state machine (records in, alert events out, time passed in),
//!   unit-tested without Kafka.
//! - [`AlertSink`] feeds it from the lane and asks it every second (so an alert resolves
//!   when errors stop, with no record arriving); [`Notifier`] delivers the events in
//!   order on a task of its own: topic, log line, webhook.
//!
//! Time is the wall clock, and a record counts at its own timestamp: records older than
//! the window when they are read (a replay, a restart, lag) never fire an alert.
//!
//! One alerter per service: the `logs` topic is keyed by service, so all of one service's
//! records are on one partition, read by one instance of the group. When a rebalance takes
//! a partition away, the instance drops the state of the fingerprints it saw there
//! ([`Sink::revoked`]) without a resolve; the new owner starts their windows empty. The
//! state lives in memory: a restart starts every window empty.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::Codec;
use anineplus_schemas::events::{Alert, AlertState, LogLevel, LogRecord};
use anineplus_streams::Located;
use anineplus_streams::offsets::Partition;
use anineplus_streams::sink::{Outcome, Sink};
use rdkafka::producer::FutureRecord;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The alert rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// Errors of one fingerprint in the window above which it fires.
    pub threshold: i64,
    /// The sliding window.
    pub window: Duration,
    /// While firing, at most one more alert per this long.
    pub dedupe: Duration,
}

/// Most fingerprints tracked at once (kinds come from targets or masked messages; a flood
/// of distinct messages must not grow memory without bound).
const MAX_FINGERPRINTS: usize = 10_000;
/// Longest kind kept from a message.
const MAX_KIND: usize = 120;

/// The kind of an error record: its `target` (the module that logged it), or, without one,
/// its message with every run of digits masked as `#` (so `timeout after 31 ms` and
/// `timeout after 7 ms` are one kind), at most 120 characters.
pub fn kind_of(record: &LogRecord) -> String {
    if let Some(target) = record.context.get("target").filter(|t| !t.is_empty()) {
        return target.clone();
    }
    let mut out = String::new();
    let mut in_digits = false;
    for c in record.message.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
        if out.len() >= MAX_KIND {
            break;
        }
    }
    out
}

struct Firing {
    since: i64,
    last_sent: i64,
    sent: u32,
}

struct Tracked {
    service: String,
    kind: String,
    partition: i32,
    /// Timestamps of the errors in the window, oldest first.
    errors: VecDeque<i64>,
    sample: String,
    correlation_id: Option<String>,
    firing: Option<Firing>,
}

/// Error windows per fingerprint, and which of them fire.
pub struct Tracker {
    rules: AlertRules,
    fingerprints: HashMap<String, Tracked>,
}

impl Tracker {
    /// A tracker applying `rules`.
    pub fn new(rules: AlertRules) -> Self {
        Tracker {
            rules,
            fingerprints: HashMap::new(),
        }
    }

    fn window_ms(&self) -> i64 {
        self.rules.window.as_millis() as i64
    }

    /// Counts `record` (consumed from `partition`) if it is an error inside the window
    /// ending `now` (ms).
    pub fn observe(&mut self, record: &LogRecord, partition: i32, now: i64) {
        if record.level != LogLevel::Error || record.timestamp < now - self.window_ms() {
            return;
        }
        let kind = kind_of(record);
        let fingerprint = format!("{}/{kind}", record.service);
        if !self.fingerprints.contains_key(&fingerprint)
            && self.fingerprints.len() >= MAX_FINGERPRINTS
        {
            return;
        }
        let tracked = self
            .fingerprints
            .entry(fingerprint)
            .or_insert_with(|| Tracked {
                service: record.service.clone(),
                kind,
                partition,
                errors: VecDeque::new(),
                sample: String::new(),
                correlation_id: None,
                firing: None,
            });
        // Mostly in order; a late one goes to its place so the window prunes from the front.
        let at = tracked.errors.partition_point(|t| *t <= record.timestamp);
        tracked.errors.insert(at, record.timestamp);
        tracked.partition = partition;
        tracked.sample.clone_from(&record.message);
        tracked.correlation_id.clone_from(&record.correlation_id);
    }

    /// Slides every window to `now` (ms): the alert events due, fingerprints in a stable
    /// order.
    pub fn evaluate(&mut self, now: i64) -> Vec<Alert> {
        let window = self.window_ms();
        let dedupe = self.rules.dedupe.as_millis() as i64;
        let threshold = self.rules.threshold;
        let mut due = Vec::new();
        for (fingerprint, t) in &mut self.fingerprints {
            while t.errors.front().is_some_and(|at| *at < now - window) {
                t.errors.pop_front();
            }
            let errors = t.errors.len() as i64;
            let state = match &mut t.firing {
                None if errors > threshold => {
                    t.firing = Some(Firing {
                        since: now,
                        last_sent: now,
                        sent: 1,
                    });
                    AlertState::Firing
                }
                Some(f) if errors > threshold && now - f.last_sent >= dedupe => {
                    f.last_sent = now;
                    f.sent += 1;
                    AlertState::Firing
                }
                Some(_) if errors <= threshold => AlertState::Resolved,
                _ => continue,
            };
            let firing = t.firing.as_ref().expect("firing or just resolved");
            let label = match state {
                AlertState::Firing => "FIRING",
                AlertState::Resolved => "RESOLVED",
            };
            due.push(Alert {
                alert_id: format!("{fingerprint}:{}:{label}:{}", firing.since, firing.sent),
                fingerprint: fingerprint.clone(),
                service: t.service.clone(),
                kind: t.kind.clone(),
                state,
                errors,
                threshold,
                window_seconds: self.rules.window.as_secs() as i32,
                firing_since: firing.since,
                at: now,
                sample: t.sample.clone(),
                correlation_id: t.correlation_id.clone(),
            });
            if state == AlertState::Resolved {
                t.firing = None;
            }
        }
        self.fingerprints
            .retain(|_, t| !t.errors.is_empty() || t.firing.is_some());
        due.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        due
    }

    /// Forgets the fingerprints last seen on `partitions` (they went to another instance).
    pub fn forget(&mut self, partitions: &[i32]) {
        self.fingerprints
            .retain(|_, t| !partitions.contains(&t.partition));
    }

    /// How many fingerprints fire now.
    pub fn firing(&self) -> usize {
        self.fingerprints
            .values()
            .filter(|t| t.firing.is_some())
            .count()
    }
}

/// Where alert events go: the `alerts` topic, a log line, and a webhook if configured.
pub struct Notifier {
    producer: kafka::Producer,
    topic: String,
    codec: Codec,
    webhook: Option<(reqwest::Client, String)>,
}

impl Notifier {
    /// A notifier producing to `topic` on `brokers` (encoded through `codec`'s registry),
    /// and POSTing each event as JSON to `webhook`, if any.
    pub fn new(
        brokers: &str,
        topic: impl Into<String>,
        codec: Codec,
        webhook: Option<String>,
    ) -> anineplus_streams::Result<Self> {
        let webhook = webhook.map(|url| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .expect("a TLS-less HTTP client builds");
            (client, url)
        });
        Ok(Notifier {
            producer: kafka::Producer::new(brokers)?,
            topic: topic.into(),
            codec,
            webhook,
        })
    }

    /// Delivers one event: to the topic (retried for up to a minute), then the log line,
    /// then the webhook (once; a failure is logged).
    pub async fn deliver(&self, alert: &Alert) {
        let state = match alert.state {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        };
        // WARN, never ERROR: the alerter's own line must not count as an error.
        tracing::warn!(
            alert_id = %alert.alert_id, fingerprint = %alert.fingerprint, state,
            errors = alert.errors, threshold = alert.threshold,
            window_seconds = alert.window_seconds, sample = %alert.sample,
            correlation_id = alert.correlation_id.as_deref(),
            "alert {state}"
        );
        let mut delay = Duration::from_millis(200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.produce(alert).await {
                Ok(()) => {
                    ALERTS.with_label_values(&[state]).inc();
                    break;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, alert_id = %alert.alert_id, "alert not produced yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    ALERTS_LOST.inc();
                    tracing::warn!(error = %e, alert_id = %alert.alert_id, "alert not produced; given up after a minute");
                    break;
                }
            }
        }
        if let Some((client, url)) = &self.webhook {
            let sent = client.post(url).json(alert).send().await;
            match sent.and_then(reqwest::Response::error_for_status) {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, url = %url, alert_id = %alert.alert_id, "alert webhook failed")
                }
            }
        }
    }

    async fn produce(&self, alert: &Alert) -> Result<(), String> {
        let bytes = self.codec.encode(alert).await.map_err(|e| e.to_string())?;
        let record = FutureRecord::to(&self.topic)
            .key(&alert.fingerprint)
            .payload(&bytes);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(drop)
            .map_err(|(e, _)| e.to_string())
    }
}

static ALERTS: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "alerts_total",
        "Alert events produced to the alerts topic, by state (firing, resolved).",
        &["state"]
    )
    .expect("alerts_total registers once")
});

static ALERTS_LOST: std::sync::LazyLock<prometheus::IntCounter> = std::sync::LazyLock::new(|| {
    prometheus::register_int_counter!(
        "alerts_lost_total",
        "Alert events that could not be produced for a minute (logged, not sent)."
    )
    .expect("alerts_lost_total registers once")
});

static FIRING: std::sync::LazyLock<prometheus::IntGauge> = std::sync::LazyLock::new(|| {
    prometheus::register_int_gauge!("alerts_firing", "Fingerprints firing now.")
        .expect("alerts_firing registers once")
});

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Feeds the [`Tracker`] from the lane and hands its events to the [`Notifier`] (in order,
/// through a queue of 1,000 events; a full queue drops and logs).
pub struct AlertSink {
    tracker: Arc<Mutex<Tracker>>,
    events: mpsc::Sender<Alert>,
    topic: String,
}

impl AlertSink {
    /// A sink applying `rules`, delivering through `notifier` until `stop`; evaluates
    /// every second besides after each batch.
    pub fn new(rules: AlertRules, notifier: Notifier, stop: CancellationToken) -> Self {
        LazyInit::touch();
        let tracker = Arc::new(Mutex::new(Tracker::new(rules)));
        let topic = notifier.topic.clone();
        let (events, mut queue) = mpsc::channel::<Alert>(1000);
        tokio::spawn(async move {
            while let Some(alert) = queue.recv().await {
                notifier.deliver(&alert).await;
            }
        });
        let sink = AlertSink {
            tracker,
            events,
            topic,
        };
        let (tracker, events) = (sink.tracker.clone(), sink.events.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => evaluate(&tracker, &events),
                }
            }
        });
        sink
    }
}

/// Registers the metrics at start, so they show (at 0) before the first alert.
struct LazyInit;

impl LazyInit {
    fn touch() {
        ALERTS.with_label_values(&["firing"]);
        ALERTS.with_label_values(&["resolved"]);
        std::sync::LazyLock::force(&ALERTS_LOST);
        std::sync::LazyLock::force(&FIRING);
    }
}

fn evaluate(tracker: &Mutex<Tracker>, events: &mpsc::Sender<Alert>) {
    let (due, firing) = {
        let mut t = tracker.lock().expect("tracker poisoned");
        (t.evaluate(now_ms()), t.firing())
    };
    FIRING.set(firing as i64);
    for alert in due {
        if events.try_send(alert).is_err() {
            tracing::warn!("alert queue full; an alert event was dropped");
        }
    }
}

impl Sink for AlertSink {
    type Item = Located<LogRecord>;

    async fn write(&self, items: &[Located<LogRecord>]) -> Vec<Outcome> {
        let now = now_ms();
        {
            let mut t = self.tracker.lock().expect("tracker poisoned");
            for item in items {
                t.observe(&item.value, item.partition, now);
            }
        }
        evaluate(&self.tracker, &self.events);
        vec![Outcome::Done; items.len()]
    }

    /// The `alerts` topic, created with the pipeline's own topics when missing.
    fn topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }

    fn revoked(&self, partitions: &[Partition]) {
        let numbers: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        self.tracker
            .lock()
            .expect("tracker poisoned")
            .forget(&numbers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AlertRules {
        AlertRules {
            threshold: 3,
            window: Duration::from_secs(60),
            dedupe: Duration::from_secs(300),
        }
    }

    fn error(service: &str, target: &str, at: i64) -> LogRecord {
        LogRecord {
            level: LogLevel::Error,
            timestamp: at,
            service: service.into(),
            trace_id: None,
            correlation_id: Some(format!("c-{at}")),
            message: format!("failed at {at}"),
            context: [("target".to_owned(), target.to_owned())].into(),
        }
    }

    const T0: i64 = 1_796_000_000_000;

    #[test]
    fn a_burst_fires_once_per_dedupe_window_and_resolves_once() {
        let mut t = Tracker::new(rules());
        // Three errors are not above the threshold.
        for i in 0..3 {
            t.observe(&error("api", "db", T0 + i), 0, T0 + i);
        }
        assert!(t.evaluate(T0 + 3).is_empty());
        // The fourth fires; a hundred more within the dedupe window do not.
        t.observe(&error("api", "db", T0 + 4), 0, T0 + 4);
        let fired = t.evaluate(T0 + 5);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].state, AlertState::Firing);
        assert_eq!(fired[0].fingerprint, "api/db");
        assert_eq!(fired[0].errors, 4);
        assert_eq!(fired[0].correlation_id.as_deref(), Some("c-1796000000004"));
        for i in 0..100 {
            let at = T0 + 1000 + i * 100;
            t.observe(&error("api", "db", at), 0, at);
            assert!(t.evaluate(at).is_empty(), "no storm");
        }
        // Still above after the dedupe window: one reminder.
        let at = T0 + 300_000;
        for i in 0..5 {
            t.observe(&error("api", "db", at + i), 0, at + i);
        }
        let reminder = t.evaluate(at + 10);
        assert_eq!(reminder.len(), 1);
        assert_eq!(reminder[0].firing_since, T0 + 5);
        assert!(
            reminder[0].alert_id.ends_with(":FIRING:2"),
            "{}",
            reminder[0].alert_id
        );
        // Errors stop: once the window passes, one resolve, then nothing.
        let resolved = t.evaluate(at + 61_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, AlertState::Resolved);
        assert_eq!(resolved[0].errors, 0);
        assert!(t.evaluate(at + 62_000).is_empty());
        assert_eq!(t.firing(), 0);
    }

    #[test]
    fn kinds_and_services_are_apart_and_old_or_non_error_records_do_not_count() {
        let mut t = Tracker::new(rules());
        for i in 0..4 {
            t.observe(&error("api", "db", T0 + i), 0, T0 + 10);
            t.observe(&error("api", "cache", T0 + i), 0, T0 + 10);
            t.observe(&error("indexer", "db", T0 - 61_000 + i), 1, T0 + 10);
            let mut warn = error("registry", "db", T0 + i);
            warn.level = LogLevel::Warn;
            t.observe(&warn, 2, T0 + 10);
        }
        let fired: Vec<String> = t
            .evaluate(T0 + 10)
            .into_iter()
            .map(|a| a.fingerprint)
            .collect();
        assert_eq!(fired, ["api/cache", "api/db"]);
    }

    #[test]
    fn a_revoked_partitions_fingerprints_are_dropped_without_a_resolve() {
        let mut t = Tracker::new(rules());
        for i in 0..4 {
            t.observe(&error("api", "db", T0 + i), 5, T0 + 4);
        }
        assert_eq!(t.evaluate(T0 + 4).len(), 1);
        t.forget(&[5]);
        assert!(t.evaluate(T0 + 120_000).is_empty());
        assert_eq!(t.firing(), 0);
    }

    #[test]
    fn a_kind_without_target_is_the_message_with_digits_masked() {
        let mut r = error("api", "", T0);
        r.context.clear();
        r.message = "timeout after 31 ms on shard 7".into();
        assert_eq!(kind_of(&r), "timeout after # ms on shard #");
        r.message = "x".repeat(500);
        assert_eq!(kind_of(&r).len(), MAX_KIND);
    }
}
