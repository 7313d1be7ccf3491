//! Log shipping: a `tracing` layer that sends every event, as a [`LogRecord`], to the `logs`
//! topic (Avro through the registry), beside the JSON lines on stdout.
//!
//! - **Never on the request path.** [`ShipLayer::on_event`] builds the record and hands it
//!   to a bounded queue with `try_send`; a full queue drops the record and counts it
//!   ([`ShipStats::dropped`], `logs_dropped_total`). One task drains the queue, encodes and
//!   enqueues records in librdkafka's producer (batched by its linger, delivery reports
//!   served by the same task: no producer thread); nothing awaits Kafka where the event was
//!   logged. With Kafka down the service goes on serving, stdout keeps every line, and
//!   records Kafka does not take within the delivery timeout are dropped and counted.
//! - **Never feeds on itself.** Events of the shipper's own task and of librdkafka's
//!   threads are never shipped: a thread-local guard is set while the drain task runs and
//!   around every call into the producer (a recursion guard, whatever the targets), and the
//!   `rdkafka`/`librdkafka` targets are skipped too.
//! - **No secrets.** Field names on the redaction list ([`REDACTED_FIELDS`], matched as
//!   lowercase substrings: `password`, `token`, `secret`, `authorization`, `email`, ...) are
//!   shipped as `[redacted]`, in the event and in its spans; values that look like an email
//!   address or a bearer token are redacted whatever their field.
//! - **Context.** The record carries the level, the event's time, the service, the
//!   correlation id (field `correlation_id` or `correlationId` of the event or any span it is
//!   in), a trace id (`trace_id`), the message, and every other field of the event and its
//!   spans as text (the innermost wins on a clash), plus `target`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anineplus_schemas::Codec;
use anineplus_schemas::events::{LogLevel, LogRecord};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Field names never shipped as they are (lowercase substrings of the field's name).
pub const REDACTED_FIELDS: [&str; 10] = [
    "password",
    "passwd",
    "token",
    "secret",
    "authorization",
    "cookie",
    "email",
    "api_key",
    "apikey",
    "credential",
];

/// What a redacted value is shipped as.
pub const REDACTED: &str = "[redacted]";

thread_local! {
    /// Set while this thread works for the shipper: nothing it logs is shipped.
    static SHIPPING: Cell<bool> = const { Cell::new(false) };
}

/// Targets never shipped (librdkafka's own log lines, and the client's).
const SKIPPED_TARGETS: [&str; 2] = ["rdkafka", "librdkafka"];

/// How log records are shipped.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// The service the records are from (their `service` field and Kafka key).
    pub service: String,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The registry (with credentials in the URL, if any).
    pub registry_url: String,
    /// The topic: `<prefix>logs`.
    pub topic: String,
    /// Records the queue holds before new ones are dropped.
    pub queue: usize,
    /// How long Kafka may take to acknowledge a record before it counts as dropped.
    pub delivery_timeout: Duration,
}

impl ShipConfig {
    /// Shipping of `service`'s records to `<topic_prefix>logs`, queue of 10,000 records.
    pub fn new(service: &str, brokers: &str, registry_url: &str, topic_prefix: &str) -> Self {
        ShipConfig {
            service: service.to_owned(),
            brokers: brokers.to_owned(),
            registry_url: registry_url.to_owned(),
            topic: format!("{topic_prefix}logs"),
            queue: 10_000,
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of the shipper, to expose as metrics.
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Records Kafka acknowledged.
    pub shipped: AtomicU64,
    /// Records dropped: the queue was full, the producer's buffer was full, Kafka did not
    /// take them within the delivery timeout, or they could not be encoded
    /// (`logs_dropped_total`).
    pub dropped: AtomicU64,
}

impl ShipStats {
    /// Records shipped so far.
    pub fn shipped(&self) -> u64 {
        self.shipped.load(Ordering::Relaxed)
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exposes the counters in `registry` as `logs_shipped_total` and `logs_dropped_total`
    /// (read at each scrape).
    pub fn register(self: &Arc<Self>, registry: &prometheus::Registry) -> prometheus::Result<()> {
        let counter = |name: &str, help: &str| prometheus::IntCounter::new(name, help);
        registry.register(Box::new(StatsCollector {
            stats: self.clone(),
            shipped: counter(
                "logs_shipped_total",
                "Log records Kafka acknowledged on the logs topic.",
            )?,
            dropped: counter(
                "logs_dropped_total",
                "Log records dropped: queue or producer buffer full, Kafka or the registry away, unencodable.",
            )?,
        }))
    }
}

/// [`ShipStats`] as Prometheus counters.
struct StatsCollector {
    stats: Arc<ShipStats>,
    shipped: prometheus::IntCounter,
    dropped: prometheus::IntCounter,
}

impl prometheus::core::Collector for StatsCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut out = self.shipped.desc();
        out.extend(self.dropped.desc());
        out
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        for (counter, now) in [
            (&self.shipped, self.stats.shipped()),
            (&self.dropped, self.stats.dropped()),
        ] {
            counter.inc_by(now.saturating_sub(counter.get()));
        }
        let mut out = self.shipped.collect();
        out.extend(self.dropped.collect());
        out
    }
}

/// The layer: builds records and queues them (see the module header).
pub struct ShipLayer {
    service: Arc<str>,
    queue: mpsc::Sender<LogRecord>,
    stats: Arc<ShipStats>,
}

/// The drain side: run it on the Tokio runtime ([`Shipper::run`]).
pub struct Shipper {
    config: ShipConfig,
    queue: mpsc::Receiver<LogRecord>,
    stats: Arc<ShipStats>,
}

/// How often the drain empties the queue: a record waits at most this long before it is
/// handed to the producer (whose linger, 100 ms, batches the sends).
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// A layer and its drain, sharing one queue and one set of counters.
pub fn layer(config: ShipConfig) -> (ShipLayer, Shipper, Arc<ShipStats>) {
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let stats = Arc::new(ShipStats::default());
    (
        ShipLayer {
            service: Arc::from(config.service.as_str()),
            queue: tx,
            stats: stats.clone(),
        },
        Shipper {
            config,
            queue: rx,
            stats: stats.clone(),
        },
        stats,
    )
}

/// Runs a future with the shipping guard set on whichever thread polls it.
struct Guarded(Pin<Box<dyn Future<Output = ()> + Send>>);

impl Future for Guarded {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let was = SHIPPING.with(|s| s.replace(true));
        let out = self.0.as_mut().poll(cx);
        SHIPPING.with(|s| s.set(was));
        out
    }
}

impl Shipper {
    /// Drains the queue until every [`ShipLayer`] is gone (or `stop` is cancelled), then
    /// flushes the producer for up to 5 s. Errors setting up the producer are logged (not
    /// shipped) and the records dropped: logging never stops a service.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        Guarded(Box::pin(self.drain(stop))).await;
    }

    async fn drain(mut self, stop: tokio_util::sync::CancellationToken) {
        let context = ShipContext {
            stats: self.stats.clone(),
        };
        let producer: BaseProducer<ShipContext> = match ClientConfig::new()
            .set("bootstrap.servers", &self.config.brokers)
            .set("linger.ms", "100")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "100000")
            .set(
                "message.timeout.ms",
                self.config.delivery_timeout.as_millis().to_string(),
            )
            .create_with_context(context)
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "log shipping disabled: no producer");
                return;
            }
        };
        let codec = Codec::new(&self.config.registry_url);
        let mut id = None;
        // When the registry last failed to give the schema id: records are dropped
        // (counted) until it is asked again, 5 s later.
        let mut asked_at: Option<tokio::time::Instant> = None;
        // The queue is emptied on a tick rather than by awaiting each record: a task
        // parked on `recv` makes every `try_send` wake it, a syscall on the logging
        // thread per record (`telemetry/benches/ship.rs`). The tick also serves the
        // delivery reports (no producer thread of its own).
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stopping = false;
        'drain: loop {
            if !stopping {
                tokio::select! {
                    // Stopping: what is queued still goes (the last lines of a service
                    // are often the ones that matter), then the flush below.
                    _ = stop.cancelled() => stopping = true,
                    _ = tick.tick() => {}
                }
            }
            producer.poll(Duration::ZERO);
            loop {
                let record = match self.queue.try_recv() {
                    Ok(record) => record,
                    Err(mpsc::error::TryRecvError::Empty) if !stopping => break,
                    Err(_) => break 'drain,
                };
                let id = match id {
                    Some(id) => id,
                    None if asked_at.is_some_and(|at| at.elapsed() < Duration::from_secs(5)) => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    None => match codec.register(anineplus_schemas::Topic::Logs).await {
                        Ok(found) => *id.insert(found),
                        Err(e) => {
                            tracing::warn!(error = %e, "log shipping: no schema id for the logs topic; dropping records, asking again in 5 s");
                            asked_at = Some(tokio::time::Instant::now());
                            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    },
                };
                let Ok(bytes) = anineplus_schemas::codec::encode_with_id(id, &record) else {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let sent = producer.send(
                    BaseRecord::to(&self.config.topic)
                        .key(record.service.as_str())
                        .payload(&bytes)
                        .timestamp(record.timestamp),
                );
                if sent.is_err() {
                    // The producer's buffer is full (Kafka away for long): drop, count.
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let _ = producer.flush(Duration::from_secs(5));
    }
}

/// Counts what Kafka acknowledged and what it finally failed to take.
struct ShipContext {
    stats: Arc<ShipStats>,
}

impl ClientContext for ShipContext {
    // librdkafka's own log lines are not turned into events here: they would be the
    // shipper's own records (see the module header).
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
}

impl ProducerContext for ShipContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.stats.shipped
        } else {
            &self.stats.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Field values of one span, kept in its extensions.
#[derive(Debug, Default, Clone)]
struct SpanFields(Vec<(&'static str, String)>);

/// Collects an event's or a span's fields as text.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, text);
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.values
                .push((field.name(), redact(field.name(), value)));
        }
    }
}

/// `value` as shipped for a field called `name` (see the module header).
pub fn redact(name: &str, value: String) -> String {
    let lower = name.to_ascii_lowercase();
    if REDACTED_FIELDS.iter().any(|f| lower.contains(f)) || looks_secret(&value) {
        REDACTED.to_owned()
    } else {
        value
    }
}

/// An email address or a bearer token, whatever the field.
fn looks_secret(value: &str) -> bool {
    if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
        return true;
    }
    value.split_whitespace().any(|word| {
        let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        match word.split_once('@') {
            Some((user, domain)) => {
                !user.is_empty() && domain.contains('.') && !domain.starts_with('.')
            }
            None => false,
        }
    })
}

fn level(level: &Level) -> LogLevel {
    match *level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warn,
        Level::ERROR => LogLevel::Error,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<S> Layer<S> for ShipLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if SHIPPING.with(Cell::get) {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.values));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        if SHIPPING.with(Cell::get) {
            return;
        }
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            match extensions.get_mut::<SpanFields>() {
                Some(known) => known.0.extend(fields.values),
                None => extensions.insert(SpanFields(fields.values)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if SHIPPING.with(Cell::get) {
            return;
        }
        let metadata = event.metadata();
        let target = metadata.target();
        if SKIPPED_TARGETS
            .iter()
            .any(|t| target == *t || target.starts_with(&format!("{t}::")))
        {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut context = BTreeMap::new();
        // Outermost span first, so inner spans and the event itself win on a clash.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(known) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &known.0 {
                        context.insert((*k).to_owned(), v.clone());
                    }
                }
            }
        }
        for (k, v) in fields.values {
            context.insert(k.to_owned(), v);
        }
        let correlation_id = context
            .remove("correlation_id")
            .or_else(|| context.remove("correlationId"));
        let trace_id = context.remove("trace_id");
        context.insert("target".to_owned(), target.to_owned());
        let record = LogRecord {
            level: level(metadata.level()),
            timestamp: now_ms(),
            service: self.service.to_string(),
            trace_id,
            correlation_id,
            message: fields.message.unwrap_or_default(),
            context,
        };
        if self.queue.try_send(record).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn secrets_are_redacted_by_field_name_and_by_look() {
        assert_eq!(redact("password", "hunter2".into()), REDACTED);
        assert_eq!(redact("refresh_token", "abc".into()), REDACTED);
        assert_eq!(redact("userEmail", "x".into()), REDACTED);
        assert_eq!(redact("Authorization", "Basic Zm9v".into()), REDACTED);
        assert_eq!(
            redact("note", "mail me at a.b@example.org".into()),
            REDACTED
        );
        assert_eq!(redact("header", "Bearer eyJhbGciOi".into()), REDACTED);
        assert_eq!(redact("path", "/graphql".into()), "/graphql");
        assert_eq!(redact("handle", "@frieren".into()), "@frieren");
    }

    #[test]
    fn events_become_records_with_span_context_and_never_block() {
        let (layer, mut shipper, stats) = layer(ShipConfig {
            queue: 2,
            ..ShipConfig::new("api", "unused:9092", "http://unused", "")
        });
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", correlation_id = "c-1", path = "/graphql");
            let _entered = span.enter();
            tracing::info!(password = "hunter2", user = "u-1", "signed in");
            tracing::warn!(target: "librdkafka", "never shipped");
            tracing::error!("second");
            tracing::error!("third: the queue of 2 is full, dropped");
        });
        let first = shipper.queue.try_recv().unwrap();
        assert_eq!(first.service, "api");
        assert_eq!(first.level, LogLevel::Info);
        assert_eq!(first.message, "signed in");
        assert_eq!(first.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(first.context["path"], "/graphql");
        assert_eq!(first.context["user"], "u-1");
        assert_eq!(first.context["password"], REDACTED);
        let second = shipper.queue.try_recv().unwrap();
        assert_eq!(second.message, "second");
        assert!(
            shipper.queue.try_recv().is_err(),
            "librdkafka's line was not shipped"
        );
        assert_eq!(stats.dropped(), 1);
    }

    #[test]
    fn nothing_logged_while_shipping_is_shipped() {
        let (layer, mut shipper, _) = layer(ShipConfig::new("api", "b", "http://r", ""));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            SHIPPING.with(|s| s.set(true));
            tracing::error!("from the shipper's own work");
            SHIPPING.with(|s| s.set(false));
            tracing::error!("from the service");
        });
        assert_eq!(
            shipper.queue.try_recv().unwrap().message,
            "from the service"
        );
        assert!(shipper.queue.try_recv().is_err());
    }
}
