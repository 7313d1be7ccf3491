//! The lane's transform: decodes a batch and applies the topology's step to every record,
//! in order.
//!
//! The decoders a batch needs are prepared first (the only async part: the registry; while
//! it is unreachable the lane waits, records in order, nothing routed); a large batch is
//! then split into contiguous chunks decoded on blocking threads in parallel and put back
//! together in order, so the batch, and each partition within it, keeps its consumption
//! order. Everything after the decoders is synchronous and does no I/O.

use std::sync::Arc;

use anineplus_schemas::{Codec, Topic, wire};
use tokio_util::sync::CancellationToken;

use super::PipelineConfig;
use super::source::{Source, StepTopic};
use crate::failure::Failure;
use crate::record::InFlight;
use crate::retry;
use crate::sink::Sink;
use crate::topology::{Binding, Coordinates, Input, Topology};

/// Smallest chunk of a batch worth a thread of its own.
const MIN_CHUNK: usize = 128;

/// A consumed record with what the topology made of it.
pub(crate) struct Pending<T> {
    pub(crate) raw: InFlight,
    pub(crate) items: Result<Vec<T>, Failure>,
}

/// Writer schemas whose decoder could not be prepared for this batch, with the failure
/// each of their records gets.
type Unprepared = Vec<((u32, Topic), Failure)>;

/// Decodes and transforms the batches of one source.
pub(crate) struct Transform<S: Sink> {
    pub(crate) source: Source,
    pub(crate) config: Arc<PipelineConfig>,
    pub(crate) topology: Arc<Topology<S>>,
    pub(crate) codec: Codec,
    /// Decoders known to be prepared: the codec is asked once per writer schema.
    prepared: Vec<(u32, Topic)>,
}

impl<S: Sink> Transform<S> {
    pub(crate) fn new(
        source: Source,
        config: Arc<PipelineConfig>,
        topology: Arc<Topology<S>>,
        codec: Codec,
    ) -> Self {
        Transform {
            source,
            config,
            topology,
            codec,
            prepared: Vec::new(),
        }
    }

    /// Decodes the batch and applies the topology's step to every record, in order;
    /// `None` when `shutdown` came while the registry was unreachable.
    pub(crate) async fn run(
        &mut self,
        batch: Vec<InFlight>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Pending<S::Item>>> {
        let unprepared = self.prepare(&batch, shutdown).await?;
        // Then the records: synchronous, on several threads when the batch is large.
        let chunks = (batch.len() / MIN_CHUNK).clamp(1, self.config.batch.workers.max(1));
        if chunks == 1 {
            return Some(transform_chunk(
                &self.topology,
                &self.codec,
                self.source,
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
            let source = self.source;
            handles.push(tokio::task::spawn_blocking(move || {
                transform_chunk(&topology, &codec, source, &unprepared, chunk)
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

    /// Prepares the decoders of the batch's writer schemas, once each. An unreachable
    /// registry is the source being unavailable: wait for it (records in order, nothing
    /// routed, nothing stored), like for a sink that is down; `None` when stopped meanwhile.
    async fn prepare(
        &mut self,
        batch: &[InFlight],
        shutdown: &CancellationToken,
    ) -> Option<Unprepared> {
        let mut unprepared: Unprepared = Vec::new();
        let mut last: Option<(StepTopic, Option<Topic>)> = None;
        for raw in batch {
            let schema = match cached(&last, raw) {
                Some(schema) => schema,
                None => {
                    let topic = self.source.step_topic(raw);
                    let schema = self.topology.source(topic.as_str()).map(|b| b.schema);
                    last = Some((topic, schema));
                    schema
                }
            };
            let (Some(schema), Ok((id, _))) = (schema, wire::split(raw.value())) else {
                continue; // failures of their own, found again below
            };
            let key = (id, schema);
            if self.prepared.contains(&key) || unprepared.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if self.codec.has_decoder(id, schema) {
                self.prepared.push(key);
                continue;
            }
            match retry::wait_for_decoder(&self.codec, id, schema, &self.config.retry, shutdown)
                .await?
            {
                Ok(()) => self.prepared.push(key),
                Err(failure) => unprepared.push((key, failure)),
            }
        }
        Some(unprepared)
    }
}

/// What was looked up for the previous record, when it holds for `raw` too (the same
/// shared topic name: a run of records of one source topic costs one lookup).
fn cached<B: Copy>(last: &Option<(StepTopic, B)>, raw: &InFlight) -> Option<B> {
    match last {
        Some((StepTopic::Shared(topic), found)) if Arc::ptr_eq(topic, &raw.topic) => Some(*found),
        _ => None,
    }
}

/// The step of the topic last seen (`None` inside: no source reads it).
type LastBinding<'t, T> = Option<(StepTopic, Option<&'t Binding<T>>)>;

/// Decodes and transforms `records` in order (no I/O: runs on any thread).
fn transform_chunk<S: Sink>(
    topology: &Topology<S>,
    codec: &Codec,
    source: Source,
    unprepared: &Unprepared,
    records: Vec<InFlight>,
) -> Vec<Pending<S::Item>> {
    let mut out = Vec::with_capacity(records.len());
    let mut last: LastBinding<'_, S::Item> = None;
    for raw in records {
        let items = step(topology, codec, source, unprepared, &raw, &mut last);
        out.push(Pending { raw, items });
    }
    out
}

/// One record through its topic's step.
fn step<'t, S: Sink>(
    topology: &'t Topology<S>,
    codec: &Codec,
    source: Source,
    unprepared: &Unprepared,
    raw: &InFlight,
    last: &mut LastBinding<'t, S::Item>,
) -> Result<Vec<S::Item>, Failure> {
    let binding = match cached(last, raw) {
        Some(binding) => binding,
        None => {
            let topic = source.step_topic(raw);
            let binding = topology.source(topic.as_str());
            *last = Some((topic, binding));
            binding
        }
    };
    let Some(binding) = binding else {
        let topic = source.step_topic(raw);
        return Err(Failure::permanent(format!(
            "no source of this pipeline reads topic {}",
            topic.as_str()
        )));
    };
    let bytes = raw.value();
    if !unprepared.is_empty()
        && let Ok((id, _)) = wire::split(bytes)
        && let Some((_, failure)) = unprepared.iter().find(|(k, _)| *k == (id, binding.schema))
    {
        return Err(failure.clone());
    }
    let origin;
    let at = match source {
        Source::Main => Coordinates {
            topic: &raw.topic,
            partition: raw.partition,
            offset: raw.offset,
        },
        Source::Retry { .. } => {
            origin = raw.to_raw().origin();
            Coordinates {
                topic: &origin.topic,
                partition: origin.partition,
                offset: origin.offset,
            }
        }
    };
    binding
        .decode(codec, &Input { bytes, at })
        .map_err(|e| Failure::decode(&e))
}
