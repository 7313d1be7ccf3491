//! The lane's writer: writes a transformed batch to the sink, retries what failed in
//! place, routes what still fails to its retry or dead-letter topic, and settles the
//! batch with the lane's [`Commit`].
//!
//! - A batch whose items all come back [`Outcome::Unavailable`] means the sink is down:
//!   the writer waits for it (0.5 s doubling to 30 s, nothing routed, nothing settled, the
//!   reader blocked behind it) until it answers or the lane stops.
//! - Retryable items are written again alone, after each delay of the in-place backoff
//!   (`retry`); what still fails goes to `retry.<hop + 1>` (with a `not-before`) or, after
//!   the last level or for a permanent failure, to the dead letters ([`dead_letter::route`]).
//! - A failed record is produced through a [`FailureProducer`] (Kafka's idempotent
//!   producer, shared by the process's lanes; an in-memory one in the test driver) until
//!   it is taken; one that can be parked nowhere (too large for the topic, not authorised)
//!   stops the lane with the record unsettled rather than lose it.
//! - Only then is the batch settled: its offsets may be committed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_connectors::{Outcome, kafka};
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use super::PipelineConfig;
use super::commit::Commit;
use super::source::Source;
use super::transform::Pending;
use crate::dead_letter::{self, DeadLetter};
use crate::failure::{Failure, Flattened};
use crate::metrics::Metrics;
use crate::record::RawRecord;
use crate::retry;
use crate::sink::Sink;
use crate::topology::Topology;

/// Where failed records are produced: their retry or dead-letter topic.
pub(crate) trait FailureProducer: Send + Sync + 'static {
    /// Produces `record` to `topic` with `headers`; a failure says whether trying again may
    /// pass ([`kafka::produce_outcome`]).
    fn produce(
        &self,
        topic: &str,
        record: &RawRecord,
        headers: OwnedHeaders,
    ) -> impl Future<Output = Result<(), Outcome>> + Send;
}

impl FailureProducer for kafka::Producer {
    async fn produce(
        &self,
        topic: &str,
        letter: &RawRecord,
        headers: OwnedHeaders,
    ) -> Result<(), Outcome> {
        let mut record = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        if let Some(payload) = &letter.payload {
            record = record.payload(payload);
        }
        match self.send(record, Duration::from_secs(30)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(kafka::produce_outcome(&e)),
        }
    }
}

impl<P: FailureProducer> FailureProducer for Arc<P> {
    fn produce(
        &self,
        topic: &str,
        record: &RawRecord,
        headers: OwnedHeaders,
    ) -> impl Future<Output = Result<(), Outcome>> + Send {
        (**self).produce(topic, record, headers)
    }
}

/// A record produced to a retry or dead-letter topic, as the test driver keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    /// The topic.
    pub topic: String,
    /// The record's key.
    pub key: Option<Vec<u8>>,
    /// The record's value.
    pub payload: Option<Vec<u8>>,
    /// Its headers, as text.
    pub headers: Vec<(String, String)>,
}

impl Produced {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Failed records kept in memory (the test driver's producer).
#[derive(Debug, Default)]
pub(crate) struct MemoryProducer {
    pub(crate) records: std::sync::Mutex<Vec<Produced>>,
}

impl FailureProducer for MemoryProducer {
    async fn produce(
        &self,
        topic: &str,
        record: &RawRecord,
        headers: OwnedHeaders,
    ) -> Result<(), Outcome> {
        let headers = headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                (h.key.to_owned(), value)
            })
            .collect();
        self.records
            .lock()
            .expect("records poisoned")
            .push(Produced {
                topic: topic.to_owned(),
                key: record.key.clone(),
                payload: record.payload.clone(),
                headers,
            });
        Ok(())
    }
}

/// Writes and settles the batches of one source.
pub(crate) struct Writer<S: Sink, P, C> {
    pub(crate) source: Source,
    pub(crate) config: Arc<PipelineConfig>,
    pub(crate) topology: Arc<Topology<S>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) producer: P,
    pub(crate) commit: Arc<C>,
}

impl<S: Sink, P: FailureProducer, C: Commit> Writer<S, P, C> {
    /// Writes a batch, retries what failed, routes what still fails, settles it. An error
    /// is a failure the lane cannot get past (nothing of the batch is settled).
    pub(crate) async fn settle(
        &self,
        batch: Vec<Pending<S::Item>>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let started = Instant::now();
        let mut attempts = vec![1u32; batch.len()];
        let (raws, records): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.raw, p.items)).unzip();
        let mut flat = Flattened::new(records);
        let written = self
            .write(&flat.items, &flat.owners, &mut attempts, shutdown)
            .await;
        let Some(outcomes) = written else {
            return Ok(()); // shut down during an outage: nothing settled, nothing stored
        };
        flat.items = Vec::new();
        flat.absorb(&outcomes);
        let failures = flat.failures;
        let mut sunk = 0;
        let trace = self.config.trace_records;
        for ((raw, failure), attempts) in raws.iter().zip(failures).zip(attempts) {
            match failure {
                None => {
                    sunk += 1;
                    if trace && let Some(id) = raw.header(dead_letter::header::CORRELATION_ID) {
                        tracing::info!(
                            target: "anineplus_streams::trace",
                            correlation_id = id, pipeline = %self.config.name,
                            topic = &*raw.topic, partition = raw.partition, offset = raw.offset,
                            "record written"
                        );
                    }
                }
                Some(failure) => {
                    Metrics::add(&self.metrics.sunk, std::mem::take(&mut sunk));
                    if !self
                        .dead_letter(raw.to_raw(), failure, attempts, shutdown)
                        .await?
                    {
                        // Shut down first: nothing of this batch is settled.
                        return Ok(());
                    }
                }
            }
        }
        Metrics::add(&self.metrics.sunk, sunk);
        self.commit.settle(&raws);
        self.metrics.observe_batch(started.elapsed());
        Ok(())
    }

    /// Writes `items`, retrying failed items in place. When every item is
    /// [`Outcome::Unavailable`] the sink is down: wait for it (bounded memory, nothing
    /// dead-lettered) until shutdown, which returns `None`.
    async fn write(
        &self,
        items: &[S::Item],
        owners: &[usize],
        attempts: &mut [u32],
        shutdown: &CancellationToken,
    ) -> Option<Vec<Outcome>> {
        if items.is_empty() {
            return Some(Vec::new());
        }
        let sink = &self.topology.sink;
        let mut outcomes = sink.write(items).await;
        let mut outage_delay = Duration::from_millis(500);
        while outcomes.iter().all(Outcome::is_unavailable) {
            tracing::warn!(
                reason = ?outcomes.first(),
                "sink unavailable for a whole batch; pausing consumption"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(outage_delay) => {}
            }
            outage_delay = (outage_delay * 2).min(Duration::from_secs(30));
            Metrics::add(&self.metrics.sink_retries, 1);
            outcomes = sink.write(items).await;
        }
        let retried = retry::rewrite_retryable(
            sink,
            items,
            owners,
            attempts,
            &mut outcomes,
            &self.config.retry,
            shutdown,
        )
        .await;
        Metrics::add(&self.metrics.sink_retries, retried);
        Some(outcomes)
    }

    /// Produces a failed record to its retry or dead-letter topic, until it is taken;
    /// false when shut down first (the record stays unsettled). A produce error that no
    /// retry can pass ([`kafka::produce_outcome`] says permanent: too large for the topic,
    /// not authorised, ...) is an error: the record cannot be parked anywhere, so the lane
    /// stops with the record unsettled rather than settle it and lose it.
    async fn dead_letter(
        &self,
        raw: RawRecord,
        failure: Failure,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> Result<bool, String> {
        let now = dead_letter::now_ms();
        let topics = self.config.topics();
        let route = dead_letter::route(
            &topics,
            &self.config.retry,
            &failure,
            self.source.hop(),
            now,
        );
        let attempts = raw.origin().attempts + attempts;
        tracing::warn!(
            topic = %raw.topic, partition = raw.partition, offset = raw.offset,
            to = %route.topic, class = failure.class.as_str(), reason = %failure.message,
            correlation_id = raw.header(dead_letter::header::CORRELATION_ID),
            "record failed"
        );
        let letter = DeadLetter {
            pipeline: self.config.name.clone(),
            failure,
            attempts,
            now_ms: now,
            record: raw,
        };
        let headers = letter.headers(route.not_before_ms);
        loop {
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                sent = self.producer.produce(&route.topic, &letter.record, headers.clone()) => sent,
            };
            match sent {
                Ok(()) => break,
                Err(Outcome::Permanent(reason)) => {
                    return Err(format!(
                        "cannot produce {}/{}/{} to {}: {reason}",
                        letter.record.topic,
                        letter.record.partition,
                        letter.record.offset,
                        route.topic
                    ));
                }
                Err(other) => {
                    tracing::error!(reason = ?other, topic = %route.topic, "could not produce a failed record; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(false),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        if route.not_before_ms.is_some() {
            Metrics::add(&self.metrics.retried, 1);
        } else {
            Metrics::add(&self.metrics.dead_lettered, 1);
        }
        Ok(true)
    }
}
