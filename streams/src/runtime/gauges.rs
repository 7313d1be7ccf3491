//! The dead-letter topic's gauges: how many records it holds and how old the oldest is,
//! sampled every 30 s, and within a second of a new dead letter.

use std::sync::Arc;
use std::time::Duration;

use anineplus_connectors::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::dead_letter::now_ms;
use crate::metrics::Metrics;

/// How often the gauges are sampled when nothing is dead-lettered.
const EVERY: Duration = Duration::from_secs(30);

/// Samples `topic` into `metrics` until `shutdown`.
pub(super) async fn sample_dead_letters(
    brokers: String,
    topic: String,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut seen = u64::MAX;
    let mut last = tokio::time::Instant::now() - EVERY;
    loop {
        let now = Metrics::get(&metrics.dead_lettered);
        if now != seen || last.elapsed() >= EVERY {
            seen = now;
            last = tokio::time::Instant::now();
            let (b, t) = (brokers.clone(), topic.clone());
            match tokio::task::spawn_blocking(move || census(&b, &t)).await {
                Ok(Ok((records, oldest))) => metrics.set_dead_letters(&topic, records, oldest),
                Ok(Err(e)) => tracing::debug!(error = %e, %topic, "sampling the dead-letter topic"),
                Err(e) => tracing::debug!(error = %e, "sampling task"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Records present in `topic` and the age in seconds of the oldest (the earliest
/// timestamp among the first record of each partition).
fn census(brokers: &str, topic: &str) -> crate::Result<(i64, Option<f64>)> {
    let ends = crate::dlq::end_offsets(brokers, topic)?;
    let records = ends.iter().map(|(_, low, high)| high - low).sum();
    let mut assignment = TopicPartitionList::new();
    for (p, low, high) in &ends {
        if high > low {
            assignment.add_partition_offset(topic, *p, Offset::Offset(*low))?;
        }
    }
    if assignment.count() == 0 {
        return Ok((0, None));
    }
    let mut config = kafka::consumer_config(brokers, "anineplus-dlq.gauges");
    config.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create()?;
    consumer.assign(&assignment)?;
    let mut seen = std::collections::HashSet::new();
    let mut oldest: Option<i64> = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < assignment.count() && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        if !seen.insert(message.partition()) {
            continue; // only each partition's first record counts
        }
        if let Some(at) = message.timestamp().to_millis() {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
    }
    Ok((
        records,
        oldest.map(|at| (now_ms() - at).max(0) as f64 / 1000.0),
    ))
}
