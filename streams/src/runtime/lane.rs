//! One consumer of a pipeline: a [`Reader`], a [`Transform`] and a [`Writer`], each a task,
//! joined by channels of one batch each, so a slow sink slows consumption.
//!
//! - The lane reads one [`Source`] (the topology's topics, or one retry topic).
//! - The writer may write several batches at once when the sink allows it
//!   ([`Sink::concurrent_writes`]); they settle in any order, and the lane's [`Commit`]
//!   never lets an offset pass a record still unsettled.
//! - A panic in any of the three, or a failed record that can be produced nowhere, stops
//!   the lane and marks it failed (`/health` 503 with the lane named).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anineplus_connectors::kafka;
use anineplus_schemas::Codec;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::PipelineConfig;
use super::commit::{AtLeastOnce, Commit, ConsumerOffsets};
use super::context::{LaneContext, Revocations};
use super::reader::Reader;
use super::source::Source;
use super::transform::{Pending, Transform};
use super::writer::{FailureProducer, Writer};
use crate::Result;
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::record::InFlight;
use crate::sink::Sink;
use crate::topology::Topology;

/// Batches cut by the reader and not settled yet, against how many the writer may hold
/// plus [`AHEAD`] being decoded meanwhile.
#[derive(Debug)]
pub(crate) struct Flow {
    unsettled: AtomicUsize,
    /// Batches the writer may write at once.
    limit: usize,
    /// Notified when a batch settles and leaves room, so a lingering batch goes at once.
    room: Notify,
}

/// Batches the reader may cut beyond what the writer holds: the next one is decoded and
/// transformed while the writer writes, instead of after (the stages overlap, so the
/// transform is not idle while the sink works, nor the sink while the transform does).
const AHEAD: usize = 1;

impl Flow {
    pub(crate) fn new(limit: usize) -> Self {
        Flow {
            unsettled: AtomicUsize::new(0),
            limit: limit.max(1),
            room: Notify::new(),
        }
    }

    /// The reader cut a batch.
    pub(crate) fn cut(&self) {
        self.unsettled.fetch_add(1, Ordering::AcqRel);
    }

    /// The writer settled a batch.
    pub(crate) fn settled(&self) {
        if self.unsettled.fetch_sub(1, Ordering::AcqRel) <= self.limit + AHEAD {
            self.room.notify_one();
        }
    }

    /// Whether the reader may cut another batch now.
    pub(crate) fn has_room(&self) -> bool {
        self.unsettled.load(Ordering::Acquire) < self.limit + AHEAD
    }

    /// Waits for a batch to settle and leave room.
    pub(crate) async fn room(&self) {
        self.room.notified().await;
    }

    /// Batches the writer may hold.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

/// The parts of a lane, ready to run.
pub(crate) struct Lane<S: Sink, P, C> {
    source: Source,
    config: Arc<PipelineConfig>,
    metrics: Arc<Metrics>,
    reader: Option<Reader<C>>,
    transform: Transform<S>,
    writer: Writer<S, P, C>,
    commit: Arc<C>,
    flow: Arc<Flow>,
}

/// The at-least-once lane on Kafka that pipelines run.
pub(super) type KafkaLane<S> = Lane<S, kafka::Producer, AtLeastOnce<ConsumerOffsets>>;

impl<S: Sink> KafkaLane<S> {
    /// Creates the lane's consumer and subscribes it; failed records go through `producer`.
    pub(super) fn start(
        source: Source,
        config: Arc<PipelineConfig>,
        topology: Arc<Topology<S>>,
        codec: Codec,
        metrics: Arc<Metrics>,
        producer: kafka::Producer,
    ) -> Result<Self> {
        let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
        let revocations = Arc::new(Revocations::default());
        let topics = source.topics(&config, topology.topics());
        let mut client = kafka::consumer_config(&config.brokers, &source.group(&config));
        client.set("statistics.interval.ms", "5000");
        source.tune(&mut client);
        for (key, value) in &config.consumer_overrides {
            client.set(key, value);
        }
        let sink = topology.clone();
        let consumer: StreamConsumer<LaneContext> = client.create_with_context(LaneContext {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            revocations: revocations.clone(),
            on_revoke: Box::new(move |partitions| sink.sink.revoked(partitions)),
        })?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let consumer = Arc::new(consumer);
        let commit = Arc::new(AtLeastOnce::new(
            tracker,
            revocations,
            ConsumerOffsets(consumer.clone()),
        ));
        let flow = Arc::new(Flow::new(topology.sink.concurrent_writes()));
        let reader = Reader {
            source,
            limits: config.batch,
            consumer,
            commit: commit.clone(),
            metrics: metrics.clone(),
            flow: flow.clone(),
        };
        Ok(Lane::assemble(
            source,
            config,
            topology,
            codec,
            metrics,
            producer,
            commit,
            flow,
            Some(reader),
        ))
    }
}

impl<S: Sink, P: FailureProducer, C: Commit> Lane<S, P, C> {
    /// The transform and writer of `source` around `commit`, with `reader` feeding them
    /// (`None` for the test driver, which feeds batches itself).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        source: Source,
        config: Arc<PipelineConfig>,
        topology: Arc<Topology<S>>,
        codec: Codec,
        metrics: Arc<Metrics>,
        producer: P,
        commit: Arc<C>,
        flow: Arc<Flow>,
        reader: Option<Reader<C>>,
    ) -> Self {
        Lane {
            source,
            transform: Transform::new(source, config.clone(), topology.clone(), codec),
            writer: Writer {
                source,
                config: config.clone(),
                topology,
                metrics: metrics.clone(),
                producer,
                commit: commit.clone(),
            },
            config,
            metrics,
            reader,
            commit,
            flow,
        }
    }

    /// The transform (the test driver feeds it).
    pub(crate) fn transform_mut(&mut self) -> &mut Transform<S> {
        &mut self.transform
    }

    /// The writer.
    pub(crate) fn writer(&self) -> &Writer<S, P, C> {
        &self.writer
    }

    /// The commit strategy.
    pub(crate) fn commit(&self) -> &C {
        &self.commit
    }

    /// The source it reads.
    pub(super) fn source(&self) -> Source {
        self.source
    }

    /// Runs until `shutdown`, drains, commits. A panic in any of its tasks, or a failure
    /// the writer cannot get past, stops the lane (its records stay unsettled) and marks it
    /// failed in the metrics, so `/health` fails with the lane named. When its consumer
    /// failed for good, the lane drains what it read and returns why: the runtime starts
    /// it again with a new consumer (what was not committed is redelivered to it).
    pub(super) async fn run(mut self, shutdown: CancellationToken) -> Option<String> {
        let name = self.source.name();
        let reader = self
            .reader
            .take()
            .expect("a lane run by the runtime has a reader");
        let Lane {
            config,
            metrics,
            mut transform,
            writer,
            commit,
            flow,
            ..
        } = self;
        let failed = Failed {
            pipeline: config.name.clone(),
            lane: name.clone(),
            metrics,
        };
        // Stops this lane alone: on shutdown, or when one of its tasks failed.
        let stop = shutdown.child_token();
        let (raw_tx, mut raw_rx) = mpsc::channel::<Vec<InFlight>>(1);
        let (tx, mut rx) = mpsc::channel::<Vec<Pending<S::Item>>>(1);
        let writer = {
            let stop = stop.clone();
            let flow = flow.clone();
            async move {
                let writer = Arc::new(writer);
                let mut writing = FuturesUnordered::new();
                let mut open = true;
                while open || !writing.is_empty() {
                    tokio::select! {
                        batch = rx.recv(), if open && writing.len() < flow.limit() => match batch {
                            Some(batch) => {
                                let (writer, stop) = (writer.clone(), stop.clone());
                                writing.push(async move { writer.settle(batch, &stop).await });
                            }
                            None => open = false,
                        },
                        Some(done) = writing.next(), if !writing.is_empty() => {
                            done?;
                            flow.settled();
                        }
                    }
                }
                Ok(())
            }
        };
        let transformer = {
            let stop = stop.clone();
            async move {
                while let Some(batch) = raw_rx.recv().await {
                    let Some(batch) = transform.run(batch, &stop).await else {
                        return Ok(()); // stopped while the registry was unreachable
                    };
                    if tx.send(batch).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
        };
        let writer = tokio::spawn(failed.clone().guard("writer", writer, stop.clone()));
        let transformer = tokio::spawn(failed.clone().guard(
            "transformer",
            transformer,
            stop.clone(),
        ));
        let mut consumer_failed = None;
        let reading = async {
            consumer_failed = reader.run(raw_tx, &stop).await;
            Ok(())
        };
        failed.guard("reader", reading, stop.clone()).await;
        let _ = transformer.await;
        let _ = writer.await;
        commit.close();
        tracing::debug!(lane = %name, "lane stopped");
        consumer_failed
    }
}

/// Marks a lane failed when one of its tasks panics or gives up.
#[derive(Clone)]
struct Failed {
    pipeline: String,
    lane: String,
    metrics: Arc<Metrics>,
}

impl Failed {
    /// Runs one of the lane's tasks; a panic or an error fails the lane and stops it.
    async fn guard(
        self,
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
            pipeline = %self.pipeline, lane = %self.lane, reason = %failed,
            "lane failed and stopped; its unsettled records are redelivered after a restart"
        );
        self.metrics.fail_lane(&self.lane, &failed);
        stop.cancel();
    }
}
