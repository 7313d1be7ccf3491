//! [`TestDriver`]: a topology run in memory, without Kafka (Kafka Streams'
//! `TopologyTestDriver`).
//!
//! The driver assembles the same lane parts a pipeline runs (the transform, the writer
//! with its in-place retries and failure routing, the at-least-once commit over an
//! [`crate::offsets::OffsetTracker`]) around memory instead of Kafka: records are piped in
//! by hand, failed records land in an in-memory list per retry or dead-letter topic, and
//! stored offsets in a map. Only the reader (the consumer poll loop) is left out: the test
//! cuts batches itself with [`TestDriver::take`] and settles them, in any order, with
//! [`TestDriver::settle`]. The sink is whatever the topology ends in (a test's own sink
//! that records items and answers scripted outcomes, or a real one).
//!
//! Decoding goes through the [`Codec`] given: prepare the writer ids the test frames with
//! ([`Codec::prepare_local`]) to stay off the network. As in a lane, an id the codec has
//! no decoder for is asked of the registry, and an unreachable registry makes
//! [`TestDriver::take`] wait until [`TestDriver::stop`].
//!
//! ```no_run
//! # async fn example(topology: anineplus_streams::Topology<impl anineplus_streams::sink::Sink>, codec: anineplus_schemas::Codec) {
//! use anineplus_streams::{PipelineConfig, driver::TestDriver};
//! let mut driver = TestDriver::new(PipelineConfig::new("indexer", "unused", "g"), topology, codec);
//! driver.pipe("anime", 0, Some(b"key"), b"framed value");
//! driver.process().await.unwrap();
//! assert_eq!(driver.committed("anime", 0), Some(1));
//! assert!(driver.produced(&driver.topics().dlq()).is_empty());
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use anineplus_schemas::Codec;
use tokio_util::sync::CancellationToken;

use crate::PipelineConfig;
use crate::dead_letter::PipelineTopics;
use crate::metrics::Metrics;
use crate::record::{InFlight, TopicNames};
pub use crate::runtime::Produced;
use crate::runtime::{
    AtLeastOnce, Commit, Flow, Lane, MemoryOffsets, MemoryProducer, Pending, Revocations, Source,
};
use crate::sink::Sink;
use crate::topology::Topology;

type DriverLane<S> = Lane<S, Arc<MemoryProducer>, AtLeastOnce<MemoryOffsets>>;

/// A topology run in memory (see the module header).
pub struct TestDriver<S: Sink> {
    config: Arc<PipelineConfig>,
    topology: Arc<Topology<S>>,
    metrics: Arc<Metrics>,
    /// One per source: the main one, then retry level 1, 2, ...
    lanes: Vec<DriverLane<S>>,
    produced: Arc<MemoryProducer>,
    /// Records piped into the main source and not taken yet.
    queued: Vec<InFlight>,
    /// Per retry level: how many of its topic's records were taken already.
    taken: Vec<usize>,
    /// Next offset per piped partition.
    offsets: HashMap<(String, i32), i64>,
    names: TopicNames,
    stop: CancellationToken,
}

/// Records taken by the driver and transformed, not settled yet.
pub struct Batch<T> {
    lane: usize,
    pending: Vec<Pending<T>>,
}

impl<T> Batch<T> {
    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

impl<S: Sink> TestDriver<S> {
    /// A driver running `topology` with `config`'s batching, retry policy and topic names
    /// (its brokers are never contacted), decoding through `codec`.
    pub fn new(config: PipelineConfig, topology: Topology<S>, codec: Codec) -> Self {
        let config = Arc::new(config);
        let topology = Arc::new(topology);
        let metrics = Arc::new(Metrics::new(&config.name));
        let produced = Arc::new(MemoryProducer::default());
        let sources = Source::all(&config);
        let lanes = sources
            .iter()
            .map(|source| {
                let commit = Arc::new(AtLeastOnce::new(
                    Default::default(),
                    Arc::new(Revocations::default()),
                    MemoryOffsets::default(),
                ));
                Lane::assemble(
                    *source,
                    config.clone(),
                    topology.clone(),
                    codec.clone(),
                    metrics.clone(),
                    produced.clone(),
                    commit,
                    Arc::new(Flow::new(1)),
                    None,
                )
            })
            .collect();
        TestDriver {
            taken: vec![0; sources.len()],
            config,
            topology,
            metrics,
            lanes,
            produced,
            queued: Vec::new(),
            offsets: HashMap::new(),
            names: TopicNames::default(),
            stop: CancellationToken::new(),
        }
    }

    /// Pipes a record into source topic `topic`, partition `partition`; returns its offset
    /// (0, 1, 2, ... per partition).
    pub fn pipe(&mut self, topic: &str, partition: i32, key: Option<&[u8]>, value: &[u8]) -> i64 {
        self.pipe_with_headers(topic, partition, key, Some(value), &[])
    }

    /// Pipes a record with headers (`value` `None`: a tombstone); returns its offset.
    pub fn pipe_with_headers(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> i64 {
        let next = self
            .offsets
            .entry((topic.to_owned(), partition))
            .or_default();
        let offset = *next;
        *next += 1;
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        let record = InFlight::new(
            self.names.get(topic),
            partition,
            offset,
            key,
            value,
            headers,
        );
        self.queued.push(record);
        offset
    }

    /// Takes every piped record not taken yet as one batch of the main source: registers
    /// it with the commit and transforms it. `None` when [`TestDriver::stop`] came while a
    /// decoder waited for the registry.
    pub async fn take(&mut self) -> Option<Batch<S::Item>> {
        let records = std::mem::take(&mut self.queued);
        self.take_from(0, records).await
    }

    /// Takes the records produced to retry topic `level` (1-based) and not taken yet, as
    /// one batch of that retry source (their `not-before` is not waited for).
    pub async fn take_retry(&mut self, level: usize) -> Option<Batch<S::Item>> {
        assert!(
            (1..self.lanes.len()).contains(&level),
            "the retry policy has {} levels",
            self.lanes.len() - 1
        );
        let topic = self.config.topics().retry(level);
        let all = self.produced(&topic);
        let name = self.names.get(&topic);
        let records = all
            .iter()
            .enumerate()
            .skip(self.taken[level])
            .map(|(offset, p)| {
                let headers = p
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .collect();
                InFlight::new(
                    name.clone(),
                    0,
                    offset as i64,
                    p.key.as_deref(),
                    p.payload.as_deref(),
                    headers,
                )
            })
            .collect();
        self.taken[level] = all.len();
        self.take_from(level, records).await
    }

    async fn take_from(&mut self, lane: usize, records: Vec<InFlight>) -> Option<Batch<S::Item>> {
        self.metrics.count_consumed(records.len() as u64);
        let lane_parts = &mut self.lanes[lane];
        let _skips = lane_parts.commit().register(&records); // no partition start to compare with
        let pending = lane_parts.transform_mut().run(records, &self.stop).await?;
        Some(Batch { lane, pending })
    }

    /// Writes a taken batch to the sink, retries in place, routes what still fails, and
    /// settles it. `Err` is a failure the lane could not get past (it would stop).
    pub async fn settle(&self, batch: Batch<S::Item>) -> Result<(), String> {
        let lane = &self.lanes[batch.lane];
        lane.writer().settle(batch.pending, &self.stop).await
    }

    /// Takes and settles the piped records.
    pub async fn process(&mut self) -> Result<(), String> {
        let batch = self
            .take()
            .await
            .ok_or("stopped while the registry was unreachable")?;
        self.settle(batch).await
    }

    /// Takes and settles the records waiting in retry topic `level`.
    pub async fn process_retry(&mut self, level: usize) -> Result<(), String> {
        let batch = self
            .take_retry(level)
            .await
            .ok_or("stopped while the registry was unreachable")?;
        self.settle(batch).await
    }

    /// What was produced to `topic` (a retry or the dead-letter topic), in order.
    pub fn produced(&self, topic: &str) -> Vec<Produced> {
        self.produced
            .records
            .lock()
            .expect("records poisoned")
            .iter()
            .filter(|p| p.topic == topic)
            .cloned()
            .collect()
    }

    /// The pipeline's retry and dead-letter topic names.
    pub fn topics(&self) -> PipelineTopics {
        self.config.topics()
    }

    /// The next offset of source partition `topic`/`partition` the commit stored: every
    /// record before it is settled. `None` before the first one settled.
    pub fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lanes[0].commit().store().get(topic, partition)
    }

    /// Records taken and not settled yet, all sources.
    pub fn in_flight(&self) -> usize {
        self.lanes.iter().map(|l| l.commit().in_flight()).sum()
    }

    /// The pipeline's metrics, as a lane counts them.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The topology (its sink, to inspect what it received).
    pub fn topology(&self) -> &Topology<S> {
        &self.topology
    }

    /// Stops the waits of the lane parts (a sink or registry outage), as a shutdown does.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// A token cancelled by [`TestDriver::stop`] (to stop from another task).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
