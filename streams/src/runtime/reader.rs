//! The lane's reader: polls the consumer through one long-lived message stream, copies
//! each record ([`InFlight`]: the topic name shared, key and value in one allocation) and
//! cuts batches.
//!
//! The main source drains whatever librdkafka already holds without going back to the
//! scheduler, and cuts a batch at its count, bytes or linger, or as soon as the consumer
//! has nothing more and the writer has room for another batch, or when a batch settles
//! and makes room (so a lone record does not wait for the linger, only for the batches
//! ahead of it; under load batches fill up). Retry sources keep the plain linger, wait
//! for each record's `not-before` (at most their delay) and hand on the records before it
//! first. A batch is registered with the lane's [`Commit`] when it is cut; a revoke served
//! by a poll is applied after the records consumed before it. A fatal consumer error (for
//! example a static member fenced by its own rejoin after its session timed out while the
//! brokers were away) ends the reader with its reason: the consumer never reads again, so
//! the runtime starts the lane afresh with a new one.

use std::sync::Arc;
use std::time::Duration;

use anineplus_connectors::kafka;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::BatchConfig;
use super::commit::Commit;
use super::context::LaneContext;
use super::lane::Flow;
use super::source::Source;
use crate::metrics::Metrics;
use crate::record::{InFlight, TopicNames};

/// What the reader's wait ended with.
enum Polled<M> {
    /// The batch's linger elapsed.
    Linger,
    /// A batch settled: the writer has room.
    Room,
    /// The consumer gave a message (or an error).
    Message(M),
}

/// Reads one source into batches.
pub(crate) struct Reader<C> {
    pub(crate) source: Source,
    pub(crate) limits: BatchConfig,
    pub(crate) consumer: Arc<StreamConsumer<LaneContext>>,
    pub(crate) commit: Arc<C>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) flow: Arc<Flow>,
}

/// The batch being filled.
struct Filling {
    records: Vec<InFlight>,
    /// How many of `records` are registered with the commit.
    registered: usize,
    bytes: usize,
    capacity: usize,
}

impl Filling {
    fn new(capacity: usize) -> Self {
        Filling {
            records: Vec::with_capacity(capacity),
            registered: 0,
            bytes: 0,
            capacity,
        }
    }
}

impl<C: Commit> Reader<C> {
    /// Reads until `shutdown`, until the transform is gone, or until the consumer fails for
    /// good (then: why).
    pub(crate) async fn run(
        &self,
        tx: mpsc::Sender<Vec<InFlight>>,
        shutdown: &CancellationToken,
    ) -> Option<String> {
        let limits = self.limits;
        let eager = self.source.eager();
        let cut_when_idle = eager && limits.cut_when_idle;
        let mut names = TopicNames::default();
        let mut batch = Filling::new(limits.max_records.clamp(1, 1024));
        // One stream, timer and cancellation future for the whole loop: creating them per
        // record costs more than the record (each `recv()` registers and drops a waker slot).
        let mut stream = self.consumer.stream();
        let mut lingering = false;
        let linger = tokio::time::sleep(limits.linger);
        tokio::pin!(linger);
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let mut failed = None;
        // While the brokers are away every poll reports the same error: one line per 10 s.
        let mut errors = kafka::ErrorLog::default();
        loop {
            let polled = tokio::select! {
                biased;
                _ = &mut cancelled => break,
                _ = &mut linger, if lingering => Polled::Linger,
                _ = self.flow.room(), if lingering && cut_when_idle => Polled::Room,
                message = stream.next() => {
                    Polled::Message(message.expect("kafka streams never terminate"))
                }
            };
            let mut cut = match polled {
                Polled::Linger => true,
                Polled::Room => self.flow.has_room(),
                Polled::Message(_) => false,
            };
            if let Polled::Message(message) = polled {
                let record = match message {
                    Ok(message) => {
                        self.registered_before_revoke(&mut batch);
                        InFlight::from_message(
                            &message,
                            names.get(rdkafka::Message::topic(&message)),
                        )
                    }
                    Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                        failed = Some(e.to_string());
                        break;
                    }
                    Err(e) => {
                        self.consumer_error(&mut errors, &e);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let wait = self.source.due_in(&record);
                if !wait.is_zero() {
                    // The records already taken are due: hand them on before waiting.
                    if !batch.records.is_empty() {
                        if !self.hand_on(&mut batch, &tx).await {
                            return None;
                        }
                        lingering = false;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                self.accept(record, &mut batch);
                if !lingering {
                    lingering = true;
                    linger
                        .as_mut()
                        .reset(tokio::time::Instant::now() + limits.linger);
                }
                let mut drained = false;
                // Take what librdkafka already holds without going back to the scheduler.
                while eager
                    && batch.records.len() < limits.max_records
                    && batch.bytes < limits.max_bytes
                {
                    match stream.next().now_or_never() {
                        Some(Some(Ok(message))) => {
                            self.registered_before_revoke(&mut batch);
                            let topic = names.get(rdkafka::Message::topic(&message));
                            self.accept(InFlight::from_message(&message, topic), &mut batch);
                        }
                        Some(Some(Err(e @ KafkaError::MessageConsumptionFatal(_)))) => {
                            failed = Some(e.to_string());
                            break;
                        }
                        Some(Some(Err(e))) => {
                            self.consumer_error(&mut errors, &e);
                            break;
                        }
                        _ => {
                            drained = true;
                            break;
                        }
                    }
                }
                if failed.is_some() {
                    break;
                }
                cut = batch.records.len() >= limits.max_records
                    || batch.bytes >= limits.max_bytes
                    || (drained && cut_when_idle && self.flow.has_room());
            }
            if !cut {
                continue;
            }
            if !batch.records.is_empty() && !self.hand_on(&mut batch, &tx).await {
                return None;
            }
            lingering = false;
        }
        if !batch.records.is_empty() {
            self.register(&batch.records[batch.registered..]);
            self.flow.cut();
            let _ = tx.send(batch.records).await;
        }
        failed
    }

    /// Registers records with the commit; skipped offsets are checked against the
    /// partition's start off the reader's thread (records that expired unread are an
    /// offset gap, reported loudly: see `context`).
    fn register(&self, records: &[InFlight]) {
        let skips = self.commit.register(records);
        if !skips.is_empty() {
            let consumer = self.consumer.clone();
            tokio::task::spawn_blocking(move || {
                consumer.context().check_skips(&*consumer, &skips);
            });
        }
    }

    /// Logs a consumer error unless the same one was logged less than 10 s ago.
    fn consumer_error(&self, errors: &mut kafka::ErrorLog, e: &KafkaError) {
        let error = e.to_string();
        if let Some(repeats) = errors.admit(&error, std::time::Instant::now()) {
            tracing::warn!(%error, repeats, lane = %self.source.name(), "consumer error (repeats of one error are logged every 10 s)");
        }
    }

    /// A revoke was served by the last poll: register the records consumed before it now,
    /// so the strategy forgets the revoked partitions after them.
    fn registered_before_revoke(&self, batch: &mut Filling) {
        if self.commit.revoked() {
            self.register(&batch.records[batch.registered..]);
            batch.registered = batch.records.len();
        }
    }

    fn accept(&self, record: InFlight, batch: &mut Filling) {
        self.metrics.count_consumed(1);
        batch.bytes += record.value().len();
        batch.records.push(record);
    }

    /// Registers the batch's records not registered yet and hands the batch on; false when
    /// the transform is gone.
    async fn hand_on(&self, batch: &mut Filling, tx: &mpsc::Sender<Vec<InFlight>>) -> bool {
        self.register(&batch.records[batch.registered..]);
        self.flow.cut();
        let full = std::mem::replace(batch, Filling::new(batch.capacity));
        tx.send(full.records).await.is_ok()
    }
}
