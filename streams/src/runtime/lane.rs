//! One consumer of a pipeline: three tasks joined by channels of one batch each, so a slow
//! sink slows consumption.
//!
//! - The reader polls the consumer through one long-lived message stream, copies each
//!   record ([`InFlight`]: the topic name shared, key and value in one allocation), drains
//!   whatever librdkafka already holds without going back to the scheduler, and cuts a
//!   batch at its count, bytes or linger, or as soon as the consumer has nothing more and
//!   no earlier batch is still unsettled, or when the last unsettled batch settles (so a
//!   lone record does not wait for the linger, only for the batch ahead of it; under load
//!   batches fill up). Retry lanes keep the plain linger, wait for each record's
//!   `not-before` (at most their delay) and hand on the records before it first. A
//!   batch's offsets are registered in the tracker with one lock when it is cut
//!   (revocations are handled first, see [`Revocations`]).
//! - The transformer decodes and applies the topology's step. The decoders a batch needs
//!   are prepared first (the only async part: the registry; while it is unreachable the
//!   lane waits, records in order, nothing routed); a large batch is then split into
//!   contiguous chunks decoded on blocking threads in parallel, and put back together in
//!   order, so the batch, and each partition within it, keeps its consumption order.
//! - The writer writes the batch to the sink, retries, routes failures, settles the
//!   batch's offsets with one lock and stores the new watermarks.
//! - A panic in any of the three, or a failed record that can be produced nowhere, stops
//!   the lane and marks it failed (`/health` 503 with the lane named).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anineplus_connectors::{Outcome, kafka};
use anineplus_schemas::{Codec, Topic, wire};
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::PipelineConfig;
use super::context::{LaneContext, Revocations};
use crate::Result;
use crate::dead_letter::{self, DeadLetter, header};
use crate::failure::{Failure, Flattened};
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::record::{InFlight, RawRecord, TopicNames};
use crate::retry;
use crate::sink::Sink;
use crate::topology::{Binding, Topology};

/// Smallest chunk of a batch worth a thread of its own.
const MIN_CHUNK: usize = 128;

/// What the reader's wait ended with.
enum Polled<M> {
    /// The batch's linger elapsed.
    Linger,
    /// The last unsettled batch was settled: the sink waits for work.
    Idle,
    /// The consumer gave a message (or an error).
    Message(M),
}

/// A consumed record with what the topology made of it.
struct Pending<T> {
    raw: InFlight,
    items: std::result::Result<Vec<T>, Failure>,
}

/// Writer schemas whose decoder could not be prepared for this batch, with the failure
/// each of their records gets.
type Unprepared = Vec<((u32, Topic), Failure)>;

pub(super) struct Lane<S: Sink> {
    level: usize,
    /// `main` or `retry.<level>`: how health and metrics name the lane.
    name: String,
    config: Arc<PipelineConfig>,
    topology: Arc<Topology<S>>,
    codec: Codec,
    metrics: Arc<Metrics>,
    consumer: Arc<StreamConsumer<LaneContext>>,
    tracker: Arc<Mutex<OffsetTracker>>,
    revocations: Arc<Revocations>,
    producer: FutureProducer,
    /// Batches cut by the reader and not yet settled by the writer.
    unsettled: AtomicUsize,
    /// Notified when `unsettled` drops to 0, so a lingering batch goes at once.
    idle: Notify,
}

impl<S: Sink> Lane<S> {
    /// Creates the lane's consumer and subscribes it.
    pub(super) fn start(
        level: usize,
        config: Arc<PipelineConfig>,
        topology: Arc<Topology<S>>,
        codec: Codec,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
        let revocations = Arc::new(Revocations::default());
        let (group, topics) = if level == 0 {
            (config.group.clone(), topology.topics())
        } else {
            (
                format!("{}.retry.{level}", config.group),
                vec![config.topics().retry(level)],
            )
        };
        let mut client = kafka::consumer_config(&config.brokers, &group);
        client.set("statistics.interval.ms", "5000");
        if level > 0 {
            // A retry lane waits up to its delay before a record; stay in the group meanwhile.
            let wait = config.retry.delays[level - 1] + Duration::from_secs(300);
            client.set("max.poll.interval.ms", wait.as_millis().to_string());
        }
        let consumer: StreamConsumer<LaneContext> = client.create_with_context(LaneContext {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            revocations: revocations.clone(),
        })?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let producer: FutureProducer = kafka::producer_config(&config.brokers).create()?;
        Ok(Lane {
            level,
            name: lane_name(level),
            config,
            topology,
            codec,
            metrics,
            consumer: Arc::new(consumer),
            tracker,
            revocations,
            producer,
            unsettled: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    /// Runs until `shutdown`, drains, commits. A panic in any of its tasks, or a failure
    /// the writer cannot get past, stops the lane (its records stay unsettled) and marks it
    /// failed in the metrics, so `/health` fails with the lane named.
    pub(super) async fn run(self, shutdown: CancellationToken) {
        let lane = Arc::new(self);
        // Stops this lane alone: on shutdown, or when one of its tasks failed.
        let stop = shutdown.child_token();
        let (raw_tx, mut raw_rx) = mpsc::channel::<Vec<InFlight>>(1);
        let (tx, mut rx) = mpsc::channel::<Vec<Pending<S::Item>>>(1);
        let writer = {
            let lane = lane.clone();
            let stop = stop.clone();
            async move {
                while let Some(batch) = rx.recv().await {
                    lane.settle(batch, &stop).await?;
                    if lane.unsettled.fetch_sub(1, Ordering::AcqRel) == 1 {
                        lane.idle.notify_one();
                    }
                }
                Ok(())
            }
        };
        let transformer = {
            let lane = lane.clone();
            let stop = stop.clone();
            async move {
                // Decoders known to be prepared: the codec is asked once per writer schema.
                let mut prepared = Vec::new();
                while let Some(batch) = raw_rx.recv().await {
                    let Some(batch) = lane.transform(batch, &mut prepared, &stop).await else {
                        return Ok(()); // stopped while the registry was unreachable
                    };
                    if tx.send(batch).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
        };
        let writer = tokio::spawn(lane.clone().guard("writer", writer, stop.clone()));
        let transformer =
            tokio::spawn(lane.clone().guard("transformer", transformer, stop.clone()));
        let reader = {
            let lane = lane.clone();
            let stop = stop.clone();
            async move {
                lane.read(raw_tx, &stop).await;
                Ok(())
            }
        };
        lane.clone().guard("reader", reader, stop.clone()).await;
        let _ = transformer.await;
        let _ = writer.await;
        if let Err(e) = lane.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, lane = %lane.name, "final commit (nothing stored?)");
        }
        tracing::debug!(lane = %lane.name, "lane stopped");
    }

    /// Runs one of the lane's tasks; a panic or an error fails the lane and stops it.
    async fn guard(
        self: Arc<Self>,
        task: &'static str,
        work: impl Future<Output = std::result::Result<(), String>>,
        stop: CancellationToken,
    ) {
        let failed = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(reason)) => reason,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_owned());
                format!("{task} panicked: {message}")
            }
        };
        tracing::error!(
            pipeline = %self.config.name, lane = %self.name, reason = %failed,
            "lane failed and stopped; its unsettled records are redelivered after a restart"
        );
        self.metrics.fail_lane(&self.name, &failed);
        stop.cancel();
    }

    async fn read(&self, tx: mpsc::Sender<Vec<InFlight>>, shutdown: &CancellationToken) {
        let limits = self.config.batch;
        let capacity = limits.max_records.clamp(1, 1024);
        let mut names = TopicNames::default();
        let mut batch: Vec<InFlight> = Vec::with_capacity(capacity);
        // How many records of `batch` are registered in the tracker.
        let mut registered = 0usize;
        let mut bytes = 0usize;
        // One stream, timer and cancellation future for the whole loop: creating them per
        // record costs more than the record (each `recv()` registers and drops a waker slot).
        let mut stream = self.consumer.stream();
        let mut lingering = false;
        let linger = tokio::time::sleep(limits.linger);
        tokio::pin!(linger);
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            let polled = tokio::select! {
                biased;
                _ = &mut cancelled => break,
                _ = &mut linger, if lingering => Polled::Linger,
                _ = self.idle.notified(), if lingering && self.level == 0 => Polled::Idle,
                message = stream.next() => {
                    Polled::Message(message.expect("kafka streams never terminate"))
                }
            };
            let mut cut = match polled {
                Polled::Linger => true,
                Polled::Idle => self.unsettled.load(Ordering::Acquire) == 0,
                Polled::Message(_) => false,
            };
            if let Polled::Message(message) = polled {
                let record = match message {
                    Ok(message) => self.copy(&message, &mut names, &batch, &mut registered),
                    Err(e) => {
                        tracing::warn!(error = %e, level = self.level, "consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if self.level > 0 {
                    let wait = self.due_in(&record);
                    if !wait.is_zero() {
                        // The records already taken are due: hand them on before waiting.
                        if !batch.is_empty() {
                            self.register(&batch, &mut registered);
                            self.unsettled.fetch_add(1, Ordering::AcqRel);
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(capacity));
                            if tx.send(full).await.is_err() {
                                return;
                            }
                            registered = 0;
                            bytes = 0;
                            lingering = false;
                        }
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                self.accept(record, &mut batch, &mut bytes);
                if !lingering {
                    lingering = true;
                    linger
                        .as_mut()
                        .reset(tokio::time::Instant::now() + limits.linger);
                }
                let mut drained = false;
                // Take what librdkafka already holds without going back to the scheduler.
                while self.level == 0
                    && batch.len() < limits.max_records
                    && bytes < limits.max_bytes
                {
                    match stream.next().now_or_never() {
                        Some(Some(Ok(message))) => {
                            let record = self.copy(&message, &mut names, &batch, &mut registered);
                            self.accept(record, &mut batch, &mut bytes);
                        }
                        Some(Some(Err(e))) => {
                            tracing::warn!(error = %e, level = self.level, "consumer error");
                            break;
                        }
                        _ => {
                            drained = true;
                            break;
                        }
                    }
                }
                cut = batch.len() >= limits.max_records
                    || bytes >= limits.max_bytes
                    || (drained && self.level == 0 && self.unsettled.load(Ordering::Acquire) == 0);
            }
            if !cut {
                continue;
            }
            if !batch.is_empty() {
                self.register(&batch, &mut registered);
                self.unsettled.fetch_add(1, Ordering::AcqRel);
                let full = std::mem::replace(&mut batch, Vec::with_capacity(capacity));
                if tx.send(full).await.is_err() {
                    return;
                }
                registered = 0;
                bytes = 0;
            }
            lingering = false;
        }
        if !batch.is_empty() {
            self.register(&batch, &mut registered);
            self.unsettled.fetch_add(1, Ordering::AcqRel);
            let _ = tx.send(batch).await;
        }
    }

    /// Copies a polled message. A revoke served by that poll is applied first, to the
    /// records consumed before it.
    fn copy(
        &self,
        message: &BorrowedMessage<'_>,
        names: &mut TopicNames,
        batch: &[InFlight],
        registered: &mut usize,
    ) -> InFlight {
        if let Some(revoked) = self.revocations.take() {
            let mut tracker = self.tracker.lock().expect("tracker poisoned");
            tracker.register_all(
                batch[*registered..]
                    .iter()
                    .map(|r| (&*r.topic, r.partition, r.offset)),
            );
            *registered = batch.len();
            tracker.forget(revoked);
        }
        InFlight::from_message(message, names.get(message.topic()))
    }

    fn accept(&self, record: InFlight, batch: &mut Vec<InFlight>, bytes: &mut usize) {
        Metrics::add(&self.metrics.consumed, 1);
        *bytes += record.value().len();
        batch.push(record);
    }

    /// Registers the batch's records not registered yet, with one lock; revocations served
    /// since the last poll are applied after them (so they cover those records too).
    fn register(&self, batch: &[InFlight], registered: &mut usize) {
        let revoked = self.revocations.take();
        let mut tracker = self.tracker.lock().expect("tracker poisoned");
        tracker.register_all(
            batch[*registered..]
                .iter()
                .map(|r| (&*r.topic, r.partition, r.offset)),
        );
        *registered = batch.len();
        if let Some(revoked) = revoked {
            tracker.forget(revoked);
        }
    }

    /// How long a retry record must still wait for its `not-before`, at most the lane's own
    /// delay (a `not-before` further away comes from a skewed clock or a hand-made record and
    /// must not stall the lane).
    fn due_in(&self, raw: &InFlight) -> Duration {
        let delay = self.config.retry.delays[self.level - 1];
        let due = raw
            .header(header::NOT_BEFORE)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_default();
        due_in(due, dead_letter::now_ms(), delay)
    }

    /// Decodes the batch and applies the topology's step to every record, in order.
    async fn transform(
        &self,
        batch: Vec<InFlight>,
        prepared: &mut Vec<(u32, Topic)>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Pending<S::Item>>> {
        // First the decoders, once per writer schema. An unreachable registry is the source
        // being unavailable: wait for it (records in order, nothing routed, nothing stored),
        // like for a sink that is down; `None` when stopped meanwhile.
        let mut unprepared: Unprepared = Vec::new();
        let mut last: Option<(Arc<str>, Option<Topic>)> = None;
        for raw in &batch {
            let schema = if self.level == 0 {
                match &last {
                    Some((topic, schema)) if Arc::ptr_eq(topic, &raw.topic) => *schema,
                    _ => {
                        let schema = self.topology.bindings.get(&*raw.topic).map(|b| b.schema);
                        last = Some((raw.topic.clone(), schema));
                        schema
                    }
                }
            } else {
                let origin = raw.to_raw().origin().topic;
                self.topology.bindings.get(&origin).map(|b| b.schema)
            };
            let (Some(schema), Ok((id, _))) = (schema, wire::split(raw.value())) else {
                continue; // failures of their own, found again below
            };
            let key = (id, schema);
            if prepared.contains(&key) || unprepared.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if self.codec.has_decoder(id, schema) {
                prepared.push(key);
                continue;
            }
            match retry::wait_for_decoder(&self.codec, id, schema, &self.config.retry, shutdown)
                .await?
            {
                Ok(()) => prepared.push(key),
                Err(failure) => unprepared.push((key, failure)),
            }
        }
        // Then the records: synchronous, on several threads when the batch is large.
        let chunks = (batch.len() / MIN_CHUNK).clamp(1, self.config.batch.workers.max(1));
        if chunks == 1 {
            return Some(transform_chunk(
                &self.topology,
                &self.codec,
                self.level,
                &unprepared,
                batch,
            ));
        }
        let size = batch.len().div_ceil(chunks);
        let unprepared = Arc::new(unprepared);
        let mut handles = Vec::with_capacity(chunks);
        let mut rest = batch;
        while !rest.is_empty() {
            let tail = rest.split_off(size.min(rest.len()));
            let chunk = std::mem::replace(&mut rest, tail);
            let (topology, codec, unprepared) = (
                self.topology.clone(),
                self.codec.clone(),
                unprepared.clone(),
            );
            let level = self.level;
            handles.push(tokio::task::spawn_blocking(move || {
                transform_chunk(&topology, &codec, level, &unprepared, chunk)
            }));
        }
        let mut out = Vec::with_capacity(size * chunks);
        for handle in handles {
            match handle.await {
                Ok(part) => out.extend(part),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        Some(out)
    }

    /// Writes a batch, retries what failed, routes what still fails, stores offsets. An
    /// error is a failure the lane cannot get past (nothing of the batch is stored).
    async fn settle(
        &self,
        batch: Vec<Pending<S::Item>>,
        shutdown: &CancellationToken,
    ) -> std::result::Result<(), String> {
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
        for ((raw, failure), attempts) in raws.iter().zip(failures).zip(attempts) {
            match failure {
                None => sunk += 1,
                Some(failure) => {
                    Metrics::add(&self.metrics.sunk, std::mem::take(&mut sunk));
                    if !self
                        .dead_letter(raw.to_raw(), failure, attempts, shutdown)
                        .await?
                    {
                        // Shut down first: nothing of this batch is stored.
                        return Ok(());
                    }
                }
            }
        }
        Metrics::add(&self.metrics.sunk, sunk);
        // One lock for the batch; one entry per partition: its furthest watermark.
        let stores = self
            .tracker
            .lock()
            .expect("tracker poisoned")
            .complete_all(raws.iter().map(|r| (&*r.topic, r.partition, r.offset)));
        if !stores.is_empty() {
            let mut list = TopicPartitionList::with_capacity(stores.len());
            for (topic, partition, next) in stores {
                let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
            }
            if let Err(e) = self.consumer.store_offsets(&list) {
                // A partition revoked meanwhile: its records are redelivered elsewhere.
                tracing::debug!(error = %e, "storing offsets failed");
            }
        }
        self.metrics.observe_batch(started.elapsed());
        Ok(())
    }

    /// Writes `items`, retrying failed items in place. When every item is
    /// [`Outcome::Unavailable`] the sink is down: wait for it (bounded memory, nothing dead-lettered) until shutdown,
    /// which returns `None`.
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

    /// Produces a failed record to its retry or dead-letter topic, until Kafka takes it;
    /// false when shut down first (the record stays unsettled). A produce error that no
    /// retry can pass ([`kafka::produce_outcome`] says permanent: too large for the topic,
    /// not authorised, ...) is an error: the record cannot be parked anywhere, so the lane
    /// stops with the record unsettled rather than store its offset and lose it.
    async fn dead_letter(
        &self,
        raw: RawRecord,
        failure: Failure,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> std::result::Result<bool, String> {
        let now = dead_letter::now_ms();
        let topics = self.config.topics();
        let route = dead_letter::route(&topics, &self.config.retry, &failure, self.level, now);
        let attempts = raw.origin().attempts + attempts;
        tracing::warn!(
            topic = %raw.topic, partition = raw.partition, offset = raw.offset,
            to = %route.topic, class = failure.class.as_str(), reason = %failure.message,
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
            let mut record = FutureRecord::to(&route.topic).headers(headers.clone());
            if let Some(key) = &letter.record.key {
                record = record.key(key);
            }
            if let Some(payload) = &letter.record.payload {
                record = record.payload(payload);
            }
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                sent = self.producer.send(record, Duration::from_secs(30)) => sent,
            };
            match sent {
                Ok(_) => break,
                Err((e, _)) => match kafka::produce_outcome(&e) {
                    Outcome::Permanent(reason) => {
                        return Err(format!(
                            "cannot produce {}/{}/{} to {}: {reason}",
                            letter.record.topic,
                            letter.record.partition,
                            letter.record.offset,
                            route.topic
                        ));
                    }
                    _ => {
                        tracing::error!(error = %e, topic = %route.topic, "could not produce a failed record; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(false),
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                },
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

/// `main` for the source lane, `retry.<n>` for retry lane `n`.
pub(super) fn lane_name(level: usize) -> String {
    if level == 0 {
        "main".to_owned()
    } else {
        format!("retry.{level}")
    }
}

/// How long to wait at `now_ms` for a record due at `due_ms`, capped at `delay`.
fn due_in(due_ms: i64, now_ms: i64, delay: Duration) -> Duration {
    let wait = Duration::from_millis(u64::try_from(due_ms - now_ms).unwrap_or(0));
    wait.min(delay)
}

/// The binding of the topic last seen (`None` inside: no source reads it).
type LastBinding<'t, T> = Option<(Arc<str>, Option<&'t Binding<T>>)>;

/// Decodes and transforms `records` in order (no I/O: runs on any thread).
fn transform_chunk<S: Sink>(
    topology: &Topology<S>,
    codec: &Codec,
    level: usize,
    unprepared: &Unprepared,
    records: Vec<InFlight>,
) -> Vec<Pending<S::Item>> {
    let mut out = Vec::with_capacity(records.len());
    let mut last: LastBinding<'_, S::Item> = None;
    for raw in records {
        let items = step(topology, codec, level, unprepared, &raw, &mut last);
        out.push(Pending { raw, items });
    }
    out
}

/// One record through its topic's step.
fn step<'t, S: Sink>(
    topology: &'t Topology<S>,
    codec: &Codec,
    level: usize,
    unprepared: &Unprepared,
    raw: &InFlight,
    last: &mut LastBinding<'t, S::Item>,
) -> std::result::Result<Vec<S::Item>, Failure> {
    let origin;
    let (topic, binding) = if level == 0 {
        let binding = match last {
            Some((topic, binding)) if Arc::ptr_eq(topic, &raw.topic) => *binding,
            _ => {
                let binding = topology.bindings.get(&*raw.topic);
                *last = Some((raw.topic.clone(), binding));
                binding
            }
        };
        (&*raw.topic, binding)
    } else {
        origin = raw.to_raw().origin().topic;
        (origin.as_str(), topology.bindings.get(&origin))
    };
    let Some(binding) = binding else {
        return Err(Failure::permanent(format!(
            "no source of this pipeline reads topic {topic}"
        )));
    };
    let bytes = raw.value();
    if !unprepared.is_empty()
        && let Ok((id, _)) = wire::split(bytes)
        && let Some((_, failure)) = unprepared.iter().find(|(k, _)| *k == (id, binding.schema))
    {
        return Err(failure.clone());
    }
    (binding.step)(codec, bytes).map_err(|e| Failure::decode(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_far_future_not_before_waits_no_longer_than_the_lane_delay() {
        let delay = Duration::from_secs(5);
        assert_eq!(due_in(1_000, 2_000, delay), Duration::ZERO, "overdue");
        assert_eq!(due_in(3_000, 2_000, delay), Duration::from_secs(1));
        assert_eq!(due_in(i64::MAX, 2_000, delay), delay, "far future: capped");
        assert_eq!(lane_name(0), "main");
        assert_eq!(lane_name(2), "retry.2");
    }
}
