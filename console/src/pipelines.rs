//! The pipelines page's data: per pipeline, the lag of each consumer group (Kafka's
//! committed offsets against the partitions' high watermarks), its `/health`, and its
//! rates from two samples of its `/metrics`; sampled every poll interval by [`Watch::run`]
//! and kept in memory with a short history of the total lag for the chart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anineplus_connectors::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::{GroupSpec, PipelineSpec};
use crate::{Error, Result};

/// Samples of the lag history kept per pipeline.
pub const HISTORY: usize = 120;

/// The lag of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic (with the prefix).
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (`None`: nothing committed yet).
    pub committed: Option<i64>,
    /// The high watermark.
    pub high: i64,
    /// Records not yet committed: `high - committed` (or `high - low` when none is).
    pub lag: i64,
}

impl PartitionLag {
    /// Where the group reads next: its committed offset, or the partition's start when it
    /// committed none (or one below the start).
    pub fn position(&self) -> i64 {
        self.high - self.lag
    }
}

/// The lag of one consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group.
    pub group: String,
    /// Per partition of its topics.
    pub partitions: Vec<PartitionLag>,
    /// The sum.
    pub total: i64,
    /// Why the lag could not be read (a topic missing, Kafka down).
    pub error: Option<String>,
}

/// Records per second from a pipeline's `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// `pipeline_records_consumed_total`.
    pub consumed: f64,
    /// `pipeline_records_sunk_total`.
    pub sunk: f64,
    /// `pipeline_records_retried_total`.
    pub retried: f64,
    /// `pipeline_records_dead_lettered_total`.
    pub dead_lettered: f64,
}

/// One sample of one pipeline.
#[derive(Debug, Clone)]
pub struct PipelineStatus {
    /// The pipeline.
    pub name: String,
    /// `/health` answered 200.
    pub healthy: bool,
    /// `/health`'s body, or why it did not answer.
    pub health: String,
    /// Its groups' lag.
    pub groups: Vec<GroupLag>,
    /// Rates since the previous sample (`None` on the first, or without `/metrics`).
    pub rates: Option<Rates>,
    /// Total lag over time: `(ms since the epoch, total)`, oldest first.
    pub history: Vec<(i64, i64)>,
}

impl PipelineStatus {
    /// The total lag of every group.
    pub fn total_lag(&self) -> i64 {
        self.groups.iter().map(|g| g.total).sum()
    }
}

/// Reads the lag of `group` over `topics` (blocking: call from `spawn_blocking`).
pub fn group_lag(brokers: &str, group: &str, topics: &[String]) -> GroupLag {
    match read_group_lag(brokers, group, topics) {
        Ok(partitions) => GroupLag {
            group: group.to_owned(),
            total: partitions.iter().map(|p| p.lag).sum(),
            partitions,
            error: None,
        },
        Err(e) => GroupLag {
            group: group.to_owned(),
            partitions: Vec::new(),
            total: 0,
            error: Some(e.to_string()),
        },
    }
}

fn read_group_lag(brokers: &str, group: &str, topics: &[String]) -> Result<Vec<PartitionLag>> {
    // A consumer of the group that never subscribes: it reads the group's committed
    // offsets without joining it.
    let consumer: BaseConsumer = kafka::consumer_config(brokers, group).create()?;
    let mut list = TopicPartitionList::new();
    let mut marks = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::NotFound(format!("topic {topic} does not exist")));
        }
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            list.add_partition(topic, p);
            marks.push((topic.clone(), p, low, high));
        }
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(5))?;
    Ok(marks
        .into_iter()
        .map(|(topic, partition, low, high)| {
            let committed = match committed
                .find_partition(&topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            let lag = (high - committed.unwrap_or(low).max(low)).max(0);
            PartitionLag {
                topic,
                partition,
                committed,
                high,
                lag,
            }
        })
        .collect())
}

/// The sum of the samples of `metric` labelled `pipeline="<pipeline>"` in a `/metrics` text.
pub fn counter(metrics: &str, metric: &str, pipeline: &str) -> Option<f64> {
    let label = format!("pipeline=\"{pipeline}\"");
    let mut found = None;
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !rest.starts_with('{') || !rest.contains(&label) {
            continue;
        }
        if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

const COUNTERS: [&str; 4] = [
    "pipeline_records_consumed_total",
    "pipeline_records_sunk_total",
    "pipeline_records_retried_total",
    "pipeline_records_dead_lettered_total",
];

/// The pipelines' latest samples and lag history.
#[derive(Debug)]
pub struct Watch {
    brokers: String,
    topic_prefix: String,
    pipelines: Vec<PipelineSpec>,
    http: reqwest::Client,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    latest: Vec<PipelineStatus>,
    history: HashMap<String, VecDeque<(i64, i64)>>,
    counters: HashMap<String, (Instant, [f64; 4])>,
}

impl Watch {
    /// Watches `pipelines` (topics named without `topic_prefix`).
    pub fn new(brokers: &str, topic_prefix: &str, pipelines: Vec<PipelineSpec>) -> Self {
        Watch {
            brokers: brokers.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            pipelines,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .expect("an HTTP client"),
            state: Mutex::new(WatchState::default()),
        }
    }

    /// The latest sample of every pipeline (empty before the first).
    pub fn latest(&self) -> Vec<PipelineStatus> {
        self.state.lock().expect("watch lock").latest.clone()
    }

    /// Samples every `interval` until `stop`.
    pub async fn run(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        loop {
            self.sample().await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Takes one sample of every pipeline.
    pub async fn sample(&self) {
        let mut statuses = Vec::new();
        for spec in &self.pipelines {
            statuses.push(self.sample_one(spec).await);
        }
        let now = anineplus_streams::dead_letter::now_ms();
        let mut state = self.state.lock().expect("watch lock");
        for status in &mut statuses {
            let history = state.history.entry(status.name.clone()).or_default();
            history.push_back((now, status.total_lag()));
            while history.len() > HISTORY {
                history.pop_front();
            }
            status.history = history.iter().copied().collect();
        }
        state.latest = statuses;
    }

    async fn sample_one(&self, spec: &PipelineSpec) -> PipelineStatus {
        let mut groups = Vec::new();
        for GroupSpec { group, topics } in &spec.groups {
            let topics: Vec<String> = topics
                .iter()
                .map(|t| format!("{}{t}", self.topic_prefix))
                .collect();
            let (brokers, group) = (self.brokers.clone(), group.clone());
            let lag =
                tokio::task::spawn_blocking(move || group_lag(&brokers, &group, &topics)).await;
            groups.push(lag.unwrap_or_else(|e| GroupLag {
                group: String::new(),
                partitions: Vec::new(),
                total: 0,
                error: Some(e.to_string()),
            }));
        }
        let (healthy, health) = match self
            .http
            .get(format!("{}/health", spec.metrics_url))
            .send()
            .await
        {
            Ok(r) => (r.status().is_success(), r.text().await.unwrap_or_default()),
            Err(e) => (false, format!("no answer: {e}")),
        };
        let rates = match self
            .http
            .get(format!("{}/metrics", spec.metrics_url))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let text = r.text().await.unwrap_or_default();
                let values = COUNTERS.map(|m| counter(&text, m, &spec.name).unwrap_or(0.0));
                let now = Instant::now();
                let mut state = self.state.lock().expect("watch lock");
                let previous = state.counters.insert(spec.name.clone(), (now, values));
                previous.map(|(then, old)| {
                    let secs = now.duration_since(then).as_secs_f64().max(0.001);
                    let rate = |i: usize| ((values[i] - old[i]) / secs).max(0.0);
                    Rates {
                        consumed: rate(0),
                        sunk: rate(1),
                        retried: rate(2),
                        dead_lettered: rate(3),
                    }
                })
            }
            _ => None,
        };
        PipelineStatus {
            name: spec.name.clone(),
            healthy,
            health: health.trim().to_owned(),
            groups,
            rates,
            history: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_the_pipelines_series() {
        let text = "# TYPE pipeline_records_consumed_total counter\n\
pipeline_records_consumed_total{pipeline=\"indexer\"} 12\n\
pipeline_records_consumed_total{pipeline=\"analytics-comments\"} 5\n\
pipeline_records_consumed_total_other{pipeline=\"indexer\"} 99\n\
pipeline_records_dead_lettered_total{pipeline=\"indexer\",topic=\"a\"} 2\n\
pipeline_records_dead_lettered_total{pipeline=\"indexer\",topic=\"b\"} 3\n";
        assert_eq!(
            counter(text, "pipeline_records_consumed_total", "indexer"),
            Some(12.0)
        );
        assert_eq!(
            counter(text, "pipeline_records_dead_lettered_total", "indexer"),
            Some(5.0)
        );
        assert_eq!(
            counter(text, "pipeline_records_sunk_total", "indexer"),
            None
        );
    }
}

/// What [`skip_record`] did: the group's offset on one partition, before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// The committed offset before (the record skipped).
    pub from: i64,
    /// The committed offset now (`from + 1`).
    pub to: i64,
}

/// Moves `group`'s committed offset on `topic`/`partition` past the record at `offset`,
/// which must be the group's position now (its committed offset, or the partition's start
/// when it committed none or less: [`PartitionLag::position`]; the page the operator
/// confirmed showed it, anything else means the group moved meanwhile). Kafka accepts the commit
/// only while the group has no member: the pipeline must be stopped first. Blocking.
pub fn skip_record(
    brokers: &str,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Skipped> {
    let lag = read_group_lag(brokers, group, &[topic.to_owned()])?;
    let Some(p) = lag.iter().find(|p| p.partition == partition) else {
        return Err(Error::NotFound(format!(
            "{topic} has no partition {partition}"
        )));
    };
    if p.position() != offset {
        return Err(Error::BadRequest(format!(
            "group {group} is at offset {} of {topic}/{partition}, not {offset}: the page was stale, look again",
            p.position()
        )));
    }
    if offset >= p.high {
        return Err(Error::BadRequest(format!(
            "there is no record at {topic}/{partition}/{offset} to skip (the end is {})",
            p.high
        )));
    }
    let consumer: BaseConsumer = kafka::consumer_config(brokers, group).create()?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    consumer
        .commit(&list, rdkafka::consumer::CommitMode::Sync)
        .map_err(|e| {
            Error::BadRequest(format!(
                "Kafka refused to move group {group}'s offset ({e}): stop the pipeline first (a group with members only takes its members' commits)"
            ))
        })?;
    Ok(Skipped {
        from: offset,
        to: offset + 1,
    })
}
