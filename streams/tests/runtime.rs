//! The runtime with a scripted sink on the real broker: retryable failures go through a
//! retry topic (honouring its delay) and land; failures that never pass reach the
//! dead-letter topic as retryable with their attempts; a sink that is down pauses the
//! pipeline without dead-lettering anything; order per key holds. A lane that panics, or
//! that cannot park a failed record (too large for the dead-letter topic), fails `/health`
//! with its name; a retry record with a far-future `not-before` waits no longer than its
//! lane's delay and does not hold back the records read before it. Records deleted unread
//! under a paused lane are reported as an offset gap while it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anineplus_schemas::Topic;
use anineplus_schemas::events::{AnimeData, Envelope, samples};
use anineplus_streams::dead_letter::{RetryPolicy, header as h};
use anineplus_streams::sink::{Outcome, Sink};
use anineplus_streams::{Pipeline, PipelineConfig, Stream};
use anineplus_testkit::world::{KafkaWorld as Harness, header};
use tokio_util::sync::CancellationToken;

/// Fails each key as scripted, records what it wrote and when.
#[derive(Clone, Default)]
struct ScriptedSink {
    /// key → how many more writes fail retryably (u32::MAX: always).
    fail: Arc<Mutex<HashMap<String, u32>>>,
    /// The sink is down until this instant.
    down_until: Arc<Mutex<Option<Instant>>>,
    written: Arc<Mutex<Vec<(String, i64, Instant)>>>,
    calls: Arc<Mutex<HashMap<String, u32>>>,
    /// Writing this key panics.
    panic_on: Option<String>,
}

impl Sink for ScriptedSink {
    type Item = (String, i64);

    async fn write(&self, items: &[(String, i64)]) -> Vec<Outcome> {
        if self
            .down_until
            .lock()
            .unwrap()
            .is_some_and(|t| Instant::now() < t)
        {
            return vec![Outcome::Unavailable("connection refused".into()); items.len()];
        }
        if let Some(key) = &self.panic_on {
            assert!(
                items.iter().all(|(k, _)| k != key),
                "scripted panic on key {key}"
            );
        }
        items
            .iter()
            .map(|(key, version)| {
                *self.calls.lock().unwrap().entry(key.clone()).or_default() += 1;
                let mut fail = self.fail.lock().unwrap();
                match fail.get_mut(key) {
                    Some(n) if *n > 0 => {
                        *n = n.saturating_sub(if *n == u32::MAX { 0 } else { 1 });
                        Outcome::Retry("429 too many requests".into())
                    }
                    _ => {
                        self.written
                            .lock()
                            .unwrap()
                            .push((key.clone(), *version, Instant::now()));
                        Outcome::Done
                    }
                }
            })
            .collect()
    }
}

fn anime(id: &str, version: i64) -> Envelope<AnimeData> {
    let mut e = samples::anime_updated(0);
    e.aggregate_id = id.into();
    e.aggregate_version = version;
    e
}

fn start(t: &Harness, sink: ScriptedSink) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let (shutdown, task, _) = start_pipeline(t, sink);
    (shutdown, task)
}

/// Starts the scripted pipeline; also returns its metrics, to serve or read.
fn start_pipeline(
    t: &Harness,
    sink: ScriptedSink,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<()>,
    Arc<anineplus_streams::metrics::Metrics>,
) {
    let mut config = PipelineConfig::new("scripted", &t.stack.kafka_brokers, &t.group);
    config.topic_prefix = t.topic_prefix.clone();
    config.retry = RetryPolicy {
        in_place_attempts: 2,
        in_place_min_delay: Duration::from_millis(20),
        in_place_max_delay: Duration::from_millis(50),
        delays: vec![Duration::from_secs(2)],
    };
    let topology = Stream::<Envelope<AnimeData>>::topic(t.topic(Topic::Anime))
        .map(|e| (e.aggregate_id, e.aggregate_version))
        .to(sink);
    let pipeline = Pipeline::new(config, topology, t.codec.clone());
    let metrics = pipeline.metrics();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { pipeline.run(shutdown).await.unwrap() }
    });
    (shutdown, task, metrics)
}

/// Serves `metrics` on a free port; returns `GET /health` as a closure's future.
async fn health_of(
    metrics: Arc<anineplus_streams::metrics::Metrics>,
    shutdown: &CancellationToken,
) -> impl Fn() -> futures::future::BoxFuture<'static, (u16, String)> {
    let addr = anineplus_streams::metrics::serve(
        metrics,
        "127.0.0.1:0".parse().unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    move || {
        Box::pin(async move {
            let r = reqwest::get(format!("http://{addr}/health")).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }
}

/// Polls `/health` until it answers `status`, for up to `limit`; returns the body.
async fn wait_health(
    health: &impl Fn() -> futures::future::BoxFuture<'static, (u16, String)>,
    status: u16,
    limit: Duration,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (now, body) = health().await;
        if now == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/health still {now} {body:?} after {limit:?}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retryable_failures_take_the_retry_topic_then_the_dlq_and_order_per_key_holds() {
    let t = Harness::new("runtime").await;
    let sink = ScriptedSink::default();
    sink.fail.lock().unwrap().insert("flaky".into(), 3);
    sink.fail.lock().unwrap().insert("never".into(), u32::MAX);
    let (shutdown, task) = start(&t, sink.clone());

    let sent = Instant::now();
    t.send("flaky", &anime("flaky", 1)).await;
    t.send("never", &anime("never", 1)).await;
    for v in 1..=20 {
        t.send("ordered", &anime("ordered", v)).await;
    }

    let letters = t.read(&format!("{}scripted.dlq", t.topic_prefix), 1).await;
    let (key, _, hs) = &letters[0];
    assert_eq!(key.as_deref(), Some(&b"never"[..]));
    assert_eq!(header(hs, h::ERROR_CLASS), Some("retryable"));
    assert_eq!(
        header(hs, h::ATTEMPTS),
        Some("6"),
        "3 in place on the source, 3 on retry.1: {hs:?}"
    );
    assert_eq!(
        header(hs, h::ORIGINAL_TOPIC),
        Some(t.topic(Topic::Anime).as_str())
    );
    assert!(header(hs, h::ERROR_MESSAGE).unwrap().contains("429"));
    let first: i64 = header(hs, h::FIRST_FAILURE).unwrap().parse().unwrap();
    let last: i64 = header(hs, h::LAST_FAILURE).unwrap().parse().unwrap();
    assert!(
        last - first >= 2000,
        "the retry topic's delay was honoured: {first}..{last}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let flaky_at = loop {
        let found = sink
            .written
            .lock()
            .unwrap()
            .iter()
            .find(|w| w.0 == "flaky")
            .map(|w| w.2);
        if let Some(at) = found {
            break at;
        }
        assert!(Instant::now() < deadline, "flaky never landed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        flaky_at - sent >= Duration::from_secs(2),
        "waited for not-before"
    );
    assert_eq!(
        sink.calls.lock().unwrap()["flaky"],
        4,
        "3 failures, then done on retry.1"
    );

    let ordered: Vec<i64> = sink
        .written
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.0 == "ordered")
        .map(|w| w.1)
        .collect();
    assert_eq!(ordered, (1..=20).collect::<Vec<_>>());

    t.wait_committed(&t.topic(Topic::Anime)).await;
    shutdown.cancel();
    task.await.unwrap();
    t.delete_topics().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_that_is_down_pauses_the_pipeline_and_nothing_is_dead_lettered() {
    let t = Harness::new("runtime").await;
    let sink = ScriptedSink::default();
    *sink.down_until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(4));
    let (shutdown, task) = start(&t, sink.clone());
    for i in 0..30 {
        t.send(&format!("k{i}"), &anime(&format!("k{i}"), 1)).await;
    }
    // While it is down nothing is committed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        t.committed(&t.topic(Topic::Anime)).0,
        0,
        "nothing stored while the sink is down"
    );
    assert_eq!(t.wait_committed(&t.topic(Topic::Anime)).await, 30);
    assert_eq!(sink.written.lock().unwrap().len(), 30);
    shutdown.cancel();
    task.await.unwrap();
    // The DLQ stayed empty.
    let (committed, end) = t.committed(&format!("{}scripted.dlq", t.topic_prefix));
    assert_eq!((committed, end), (0, 0));
    t.delete_topics().await;
}

/// The keyed step: episode events keyed by episode id, repartitioned by their anime's id
/// through a topic: every anime's records land on one partition of the new topic, each
/// episode's versions in order, decodable with the source's schema; every source record
/// is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_step_puts_every_key_on_one_partition_in_order() {
    use anineplus_schemas::events::{EpisodeData, EpisodeState};
    use anineplus_streams::sink::TopicSink;
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};

    const ANIME: usize = 6;
    const EPISODES: usize = 5;
    const VERSIONS: i64 = 4;
    let t = Harness::new("runtime").await;
    let out = format!("{}episode.by-anime", t.topic_prefix);
    let mut config = PipelineConfig::new("rekey", &t.stack.kafka_brokers, &t.group);
    config.topic_prefix = t.topic_prefix.clone();
    let sink = TopicSink::<Envelope<EpisodeData>>::new(
        &t.stack.kafka_brokers,
        out.clone(),
        t.codec.clone(),
    )
    .unwrap();
    let topology = Stream::<Envelope<EpisodeData>>::topic(t.topic(Topic::Episode))
        .key_by(|e| match &e.data {
            EpisodeData::EpisodeCreated(s) | EpisodeData::EpisodeUpdated(s) => s.anime_id.clone(),
            EpisodeData::EpisodeDeleted(d) => d.anime_id.clone(),
        })
        .to(sink);
    let pipeline = Pipeline::new(config, topology, t.codec.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { pipeline.run(shutdown).await.unwrap() }
    });

    for v in 1..=VERSIONS {
        for a in 0..ANIME {
            for e in 0..EPISODES {
                let id = format!("ep-{a}-{e}");
                let state = EpisodeState {
                    episode_id: id.clone(),
                    anime_id: format!("anime-{a}"),
                    number: e as i32 + 1,
                    title: Some(format!("{id} v{v}")),
                    duration_seconds: None,
                    air_date: None,
                };
                let event = samples::envelope(
                    "episode.updated",
                    &id,
                    v,
                    EpisodeData::EpisodeUpdated(state),
                );
                t.send(&id, &event).await;
            }
        }
    }
    let total = ANIME * EPISODES * VERSIONS as usize;
    t.wait_committed(&t.topic(Topic::Episode)).await;

    let consumer: StreamConsumer = anineplus_connectors::kafka::consumer_config(
        &t.stack.kafka_brokers,
        &anineplus_testkit::unique("r"),
    )
    .create()
    .unwrap();
    consumer.subscribe(&[&out]).unwrap();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut last_version: HashMap<String, i64> = HashMap::new();
    for _ in 0..total {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("every repartitioned record arrives")
            .unwrap();
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let event: Envelope<EpisodeData> = t.codec.decode(m.payload().unwrap()).await.unwrap();
        let anime = match &event.data {
            EpisodeData::EpisodeUpdated(s) => s.anime_id.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(key, anime, "keyed by the anime");
        let p = *partition_of.entry(key.clone()).or_insert(m.partition());
        assert_eq!(p, m.partition(), "{key}: one partition");
        let before = last_version
            .insert(event.aggregate_id.clone(), event.aggregate_version)
            .unwrap_or(0);
        assert_eq!(
            event.aggregate_version,
            before + 1,
            "{}: versions in order",
            event.aggregate_id
        );
    }
    assert_eq!(partition_of.len(), ANIME);
    assert!(last_version.values().all(|v| *v == VERSIONS));
    eprintln!(
        "keyed step: {total} records repartitioned by anime onto partitions {:?}",
        partition_of
            .values()
            .collect::<std::collections::BTreeSet<_>>()
    );
    shutdown.cancel();
    task.await.unwrap();
    t.delete_topics().await;
}

/// A sink that panics on one key: the lane stops and `/health` turns 503 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_lane_fails_health_with_the_lane_named() {
    let t = Harness::new("runtime").await;
    let sink = ScriptedSink {
        panic_on: Some("boom".into()),
        ..ScriptedSink::default()
    };
    let (shutdown, task, metrics) = start_pipeline(&t, sink.clone());
    let health = health_of(metrics, &shutdown).await;
    wait_health(&health, 200, Duration::from_secs(30)).await;
    t.send("fine", &anime("fine", 1)).await;
    t.wait_committed(&t.topic(Topic::Anime)).await;
    t.send("boom", &anime("boom", 1)).await;
    let body = wait_health(&health, 503, Duration::from_secs(20)).await;
    eprintln!("/health after the panic: 503 {body:?}");
    assert!(body.contains("lane main"), "{body}");
    assert!(body.contains("panicked"), "{body}");
    let (committed, end) = t.committed(&t.topic(Topic::Anime));
    assert_eq!(committed + 1, end, "the panicking record stays unsettled");
    shutdown.cancel();
    task.await.unwrap();
    t.delete_topics().await;
}

/// Produces `value` to `topic` with `headers`, waiting for a topic the pipeline is still
/// creating.
async fn produce(t: &Harness, topic: &str, key: &str, value: &[u8], headers: &[(&str, String)]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    let producer: anineplus_connectors::kafka::Producer =
        anineplus_connectors::kafka::Producer::create(
            anineplus_connectors::kafka::producer_config(&t.stack.kafka_brokers)
                .set("message.max.bytes", "4000000"),
        )
        .unwrap();
    for _ in 0..50 {
        let mut hs = OwnedHeaders::new();
        for (k, v) in headers {
            hs = hs.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let record = FutureRecord::to(topic).key(key).payload(value).headers(hs);
        match producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => return,
            Err((e, _)) => {
                eprintln!("producing to {topic}: {e}; again");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    panic!("could not produce to {topic}");
}

/// Three records of one key on retry topic 1 (delay 2 s): one due, one whose `not-before`
/// is an hour away, one due. The first is written at once (not held in a batch while the
/// lane waits), the second after at most the lane's delay, the third right after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_far_future_not_before_waits_at_most_the_lane_delay_and_holds_nothing_back() {
    let t = Harness::new("runtime").await;
    let sink = ScriptedSink::default();
    let (shutdown, task) = start(&t, sink.clone());
    let retry = format!("{}scripted.retry.1", t.topic_prefix);
    let now = anineplus_streams::dead_letter::now_ms();
    let anime_topic = t.topic(Topic::Anime);
    let sent = Instant::now();
    for (version, not_before) in [(1, now - 1000), (2, now + 3_600_000), (3, now)] {
        let value = t.codec.encode(&anime("k", version)).await.unwrap();
        let headers = [
            (h::ORIGINAL_TOPIC, anime_topic.clone()),
            (h::ORIGINAL_PARTITION, "0".to_owned()),
            (h::ORIGINAL_OFFSET, version.to_string()),
            (h::ATTEMPTS, "1".to_owned()),
            (h::FIRST_FAILURE, now.to_string()),
            (h::NOT_BEFORE, not_before.to_string()),
        ];
        produce(&t, &retry, "k", &value, &headers).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let written: Vec<(i64, Duration)> = sink
            .written
            .lock()
            .unwrap()
            .iter()
            .map(|w| (w.1, w.2 - sent))
            .collect();
        if written.len() == 3 {
            eprintln!("written (version, after): {written:?}");
            assert_eq!(
                written.iter().map(|w| w.0).collect::<Vec<_>>(),
                vec![1, 2, 3]
            );
            assert!(
                written[1].1 - written[0].1 >= Duration::from_secs(1),
                "the due record went first, not held in the batch during the wait"
            );
            assert!(
                written[1].1 - written[0].1 < Duration::from_secs(4),
                "the far-future record waited about the lane's delay (2 s), not an hour"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 20 s only {written:?} written (versions, time after sending)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
    t.delete_topics().await;
}

/// A record larger than the producer may send (the source topic allows 3 MB, the lane's
/// producer 1 MB) fails permanently (it does not decode): it can go to no dead-letter topic.
/// The lane stops with the record unsettled and `/health` says why, instead of retrying the
/// produce forever behind a healthy `/health`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_record_too_large_for_the_dlq_fails_the_lane_instead_of_looping() {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let t = Harness::new("runtime").await;
    let anime_topic = t.topic(Topic::Anime);
    let admin: AdminClient<DefaultClientContext> =
        anineplus_connectors::kafka::producer_config(&t.stack.kafka_brokers)
            .create()
            .unwrap();
    let altered = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&anime_topic))
                .set("max.message.bytes", "3000000")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    let sink = ScriptedSink::default();
    let (shutdown, task, metrics) = start_pipeline(&t, sink.clone());
    let health = health_of(metrics, &shutdown).await;
    wait_health(&health, 200, Duration::from_secs(30)).await;
    produce(&t, &anime_topic, "huge", &vec![b'x'; 1_500_000], &[]).await;
    let body = wait_health(&health, 503, Duration::from_secs(30)).await;
    eprintln!("/health with a record too large for the DLQ: 503 {body:?}");
    assert!(body.contains("lane main"), "{body}");
    assert!(body.contains("scripted.dlq"), "{body}");
    assert!(body.to_lowercase().contains("too large"), "{body}");
    assert_eq!(
        t.committed(&anime_topic).0,
        0,
        "the record's offset is not stored"
    );
    shutdown.cancel();
    task.await.unwrap();
    t.delete_topics().await;
}

/// Records deleted (or expired) while a running lane was paused behind a down sink, before
/// it had fetched them: librdkafka resets to the partition's start without a word. The
/// lane reports the gap (`pipeline_offset_gap_records`, a `/health` warning) and goes on
/// with the records that are left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_that_expire_unread_while_running_are_reported_as_an_offset_gap() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    const RECORDS: i64 = 300;
    const KEPT: i64 = 50;
    let t = Harness::new("runtime").await;
    let sink = ScriptedSink::default();
    let topic = t.topic(Topic::Anime);
    // One key: every record on one partition, each in a record batch of its own.
    for v in 1..=RECORDS {
        t.send("g", &anime("g", v)).await;
    }
    let mut config = PipelineConfig::new("scripted", &t.stack.kafka_brokers, &t.group);
    config.topic_prefix = t.topic_prefix.clone();
    config.batch.max_records = 5;
    // Fetch a few records at a time, so most are still on the broker while the lane waits.
    config.consumer_overrides = vec![
        ("max.partition.fetch.bytes".into(), "1".into()),
        ("queued.min.messages".into(), "1".into()),
        ("queued.max.messages.kbytes".into(), "1".into()),
        ("fetch.queue.backoff.ms".into(), "10".into()),
    ];
    let topology = Stream::<Envelope<AnimeData>>::topic(topic.clone())
        .map(|e| (e.aggregate_id, e.aggregate_version))
        .to(sink.clone());
    let pipeline = Pipeline::new(config, topology, t.codec.clone());
    let metrics = pipeline.metrics();
    let shutdown = CancellationToken::new();
    // Down for the first seconds: the lane holds its first batches meanwhile (its outage
    // backoff retries at 0.5, 1.5, 3.5 s: it resumes 3.5 s in).
    *sink.down_until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(3));
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { pipeline.run(shutdown).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let consumed = anineplus_streams::metrics::Metrics::get(&metrics.consumed);
    assert!(
        consumed > 0 && consumed < RECORDS as u64 - KEPT as u64,
        "the paused lane should hold a few records, not {consumed}"
    );

    // Delete all but the last KEPT records of the partition the key went to.
    let probe: BaseConsumer = anineplus_connectors::kafka::consumer_config(
        &t.stack.kafka_brokers,
        &format!("{}-probe", t.group),
    )
    .create()
    .unwrap();
    let mut partition = None;
    for p in 0..3 {
        let (_, high) = probe
            .fetch_watermarks(&topic, p, Duration::from_secs(5))
            .unwrap();
        if high == RECORDS {
            partition = Some(p);
        }
    }
    let partition = partition.expect("every record on one partition");
    let mut upto = TopicPartitionList::new();
    upto.add_partition_offset(&topic, partition, Offset::Offset(RECORDS - KEPT))
        .unwrap();
    let admin: AdminClient<DefaultClientContext> =
        anineplus_connectors::kafka::producer_config(&t.stack.kafka_brokers)
            .create()
            .unwrap();
    admin
        .delete_records(&upto, &AdminOptions::new())
        .await
        .unwrap();

    // The sink comes back: the held records, then a jump to the partition's new start.
    let deadline = Instant::now() + Duration::from_secs(60);
    let gap_line = loop {
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("pipeline_offset_gap_records{") && l.contains(&topic))
            .map(str::to_owned);
        let last_written = sink
            .written
            .lock()
            .unwrap()
            .iter()
            .any(|(_, v, _)| *v == RECORDS);
        if let Some(line) = line
            && last_written
        {
            break line;
        }
        assert!(Instant::now() < deadline, "no gap reported: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("{gap_line}");
    let lost: i64 = gap_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        lost > 0 && lost <= RECORDS - KEPT - consumed as i64 + 5,
        "lost {lost} (consumed {consumed} before the deletion)"
    );
    let (_, body) = metrics.health();
    assert!(body.contains("warning"), "{body}");
    let written: Vec<i64> = sink
        .written
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v, _)| *v)
        .collect();
    for v in RECORDS - KEPT + 1..=RECORDS {
        assert!(written.contains(&v), "record {v} kept and written");
    }
    shutdown.cancel();
    task.await.unwrap();
    t.delete_topics().await;
}
