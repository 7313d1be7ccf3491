//! Prometheus metrics of the process, served at `/metrics`.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// The API's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// GraphQL operations by root field.
    pub requests: IntCounterVec,
    /// Latency of GraphQL operations by root field.
    pub latency: HistogramVec,
    /// GraphQL errors by code.
    pub errors: IntCounterVec,
    /// Unpublished outbox rows (refreshed at scrape).
    pub outbox_backlog: IntGauge,
    /// Age of the oldest unpublished outbox row, seconds (refreshed at scrape).
    pub outbox_oldest_age: Gauge,
    /// Records the relay published.
    pub relay_published: IntCounter,
    /// Reads of the outbox by the relay (one per batch, empty ones included).
    pub relay_reads: IntCounter,
    /// Outbox rows the relay parked because they can never be published.
    pub relay_parked: IntCounter,
    /// Parked outbox rows present (refreshed at scrape).
    pub outbox_parked: IntGauge,
    /// 1 when a dependency answered its last probe, by `dependency`.
    pub dependency_up: IntGaugeVec,
    /// 1 when the API serves with a dependency down (readiness `degraded`).
    pub degraded: IntGauge,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "api_graphql_requests_total",
                "GraphQL operations by root field",
            ),
            &["operation"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "api_graphql_request_duration_seconds",
                "GraphQL operation latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["operation"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "api_graphql_errors_total",
                "GraphQL errors by extensions.code",
            ),
            &["code"],
        )
        .expect("valid metric");
        let outbox_backlog =
            IntGauge::new("api_outbox_backlog", "Unpublished outbox rows").expect("valid metric");
        let outbox_oldest_age = Gauge::new(
            "api_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row",
        )
        .expect("valid metric");
        let relay_published = IntCounter::new(
            "api_outbox_relay_published_total",
            "Outbox records published to Kafka",
        )
        .expect("valid metric");
        let relay_reads = IntCounter::new(
            "api_outbox_relay_reads_total",
            "Outbox reads by the relay, one per batch (empty ones included)",
        )
        .expect("valid metric");
        let relay_parked = IntCounter::new(
            "api_outbox_relay_parked_total",
            "Outbox rows parked by the relay: they can never be published (see failure)",
        )
        .expect("valid metric");
        let outbox_parked = IntGauge::new(
            "api_outbox_parked",
            "Parked outbox rows present, waiting for an operator",
        )
        .expect("valid metric");
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "api_dependency_up",
                "1 when the dependency answered its last probe (readiness or scrape)",
            ),
            &["dependency"],
        )
        .expect("valid metric");
        let degraded = IntGauge::new(
            "api_degraded",
            "1 when the API serves with a dependency down (readiness status degraded)",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(errors.clone()),
            Box::new(outbox_backlog.clone()),
            Box::new(outbox_oldest_age.clone()),
            Box::new(relay_published.clone()),
            Box::new(relay_reads.clone()),
            Box::new(relay_parked.clone()),
            Box::new(outbox_parked.clone()),
            Box::new(dependency_up.clone()),
            Box::new(degraded.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        for code in crate::error::ErrorCode::ALL {
            errors.with_label_values(&[code.as_str()]);
        }
        Self {
            registry,
            requests,
            latency,
            errors,
            outbox_backlog,
            outbox_oldest_age,
            relay_published,
            relay_reads,
            relay_parked,
            outbox_parked,
            dependency_up,
            degraded,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // The API's own, then the process-wide ones (log shipping's counters).
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
