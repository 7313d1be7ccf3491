//! The lane logic on the test driver: order, offsets, retry routing, outages.

use std::sync::Mutex;
use std::time::Duration;

use anineplus_connectors::Outcome;
use anineplus_schemas::events::{AnimeData, Envelope, samples};
use anineplus_schemas::{Codec, Topic};

use super::TestDriver;
use crate::dead_letter::header;
use crate::metrics::Metrics;
use crate::sink::Sink;
use crate::{PipelineConfig, Stream};

/// (aggregate id, version): what the test topology makes of an anime event.
type Item = (String, i64);

/// How the test sink answers an item of its `n`th write.
type Answer = Box<dyn Fn(&Item, usize) -> Outcome + Send + Sync>;

/// A sink that records every write and answers what `answer(item, write number)` says.
struct Recording {
    writes: Mutex<Vec<Vec<Item>>>,
    answer: Answer,
}

impl Recording {
    fn new(answer: impl Fn(&Item, usize) -> Outcome + Send + Sync + 'static) -> Self {
        Recording {
            writes: Mutex::new(Vec::new()),
            answer: Box::new(answer),
        }
    }

    fn writes(&self) -> Vec<Vec<Item>> {
        self.writes.lock().unwrap().clone()
    }
}

impl Sink for Recording {
    type Item = Item;

    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        let mut writes = self.writes.lock().unwrap();
        writes.push(items.to_vec());
        let n = writes.len();
        items.iter().map(|i| (self.answer)(i, n)).collect()
    }
}

fn config() -> PipelineConfig {
    let mut config = PipelineConfig::new("test", "unused:9092", "test-group");
    config.retry.in_place_attempts = 1;
    config.retry.in_place_min_delay = Duration::from_millis(1);
    config.retry.in_place_max_delay = Duration::from_millis(1);
    config.retry.delays = vec![Duration::from_secs(1), Duration::from_secs(2)];
    config
}

fn driver(config: PipelineConfig, sink: Recording) -> TestDriver<Recording> {
    let codec = Codec::new("http://127.0.0.1:1");
    codec.prepare_local(1, Topic::Anime);
    let topology = Stream::<Envelope<AnimeData>>::topic("anime")
        .map(|e| (e.aggregate_id, e.aggregate_version))
        .to(sink);
    TestDriver::new(config, topology, codec)
}

/// The wire bytes of an anime event of `id` at `version`.
fn event(id: &str, version: i64) -> Vec<u8> {
    let mut e = samples::anime_updated(1);
    e.aggregate_id = id.to_owned();
    e.aggregate_version = version;
    anineplus_schemas::codec::encode_with_id(1, &e).unwrap()
}

fn pipe(driver: &mut TestDriver<Recording>, partition: i32, id: &str, version: i64) -> i64 {
    driver.pipe("anime", partition, Some(id.as_bytes()), &event(id, version))
}

#[tokio::test]
async fn items_reach_the_sink_in_consumption_order_even_when_decoded_on_several_threads() {
    let mut config = config();
    config.batch.workers = 4;
    let mut driver = driver(config, Recording::new(|_, _| Outcome::Done));
    let mut piped = Vec::new();
    for i in 0..1_000 {
        let id = format!("anime-{}", i % 7);
        pipe(&mut driver, i % 3, &id, i64::from(i));
        piped.push((id, i64::from(i)));
    }
    driver.process().await.unwrap();
    let writes = driver.topology().sink().writes();
    assert_eq!(writes.len(), 1, "one batch, one write");
    assert_eq!(writes[0], piped, "the batch keeps consumption order");
    for partition in 0..3 {
        let records = (0..1_000).filter(|i| i % 3 == partition).count() as i64;
        assert_eq!(driver.committed("anime", partition), Some(records));
    }
    assert_eq!(Metrics::get(&driver.metrics().sunk), 1_000);
    assert_eq!(driver.in_flight(), 0);
}

#[tokio::test]
async fn an_offset_never_passes_a_record_still_unsettled() {
    let mut driver = driver(config(), Recording::new(|_, _| Outcome::Done));
    for v in 0..3 {
        pipe(&mut driver, 0, "a", v);
    }
    let first = driver.take().await.unwrap();
    for v in 3..6 {
        pipe(&mut driver, 0, "a", v);
    }
    let second = driver.take().await.unwrap();
    driver.settle(second).await.unwrap();
    assert_eq!(
        driver.committed("anime", 0),
        None,
        "the later batch settled first: nothing may be committed past the first"
    );
    assert_eq!(driver.in_flight(), 3);
    driver.settle(first).await.unwrap();
    assert_eq!(driver.committed("anime", 0), Some(6));
    assert_eq!(driver.in_flight(), 0);
}

#[tokio::test]
async fn a_retryable_failure_goes_through_every_retry_topic_then_to_the_dead_letters() {
    let mut driver = driver(
        config(),
        Recording::new(|(id, _), _| {
            if id == "bad" {
                Outcome::Retry("429 too many requests".into())
            } else {
                Outcome::Done
            }
        }),
    );
    pipe(&mut driver, 0, "good", 1);
    pipe(&mut driver, 0, "bad", 1);
    driver.process().await.unwrap();
    let topics = driver.topics();
    let first = driver.produced(&topics.retry(1));
    assert_eq!(first.len(), 1, "the failed record alone goes to retry.1");
    let letter = &first[0];
    assert_eq!(letter.key.as_deref(), Some(&b"bad"[..]));
    assert_eq!(letter.payload.as_deref(), Some(&event("bad", 1)[..]));
    assert_eq!(letter.header(header::ORIGINAL_TOPIC), Some("anime"));
    assert_eq!(letter.header(header::ORIGINAL_OFFSET), Some("1"));
    assert_eq!(letter.header(header::ERROR_CLASS), Some("retryable"));
    assert_eq!(
        letter.header(header::ATTEMPTS),
        Some("2"),
        "first write + 1 in place"
    );
    assert!(letter.header(header::NOT_BEFORE).is_some());
    assert_eq!(
        driver.committed("anime", 0),
        Some(2),
        "a record parked in a retry topic is settled"
    );

    // The retry source transforms it with its original topic's step, fails again.
    driver.process_retry(1).await.unwrap();
    let second = driver.produced(&topics.retry(2));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].header(header::ATTEMPTS), Some("4"));
    assert_eq!(second[0].header(header::ORIGINAL_TOPIC), Some("anime"));
    assert_eq!(second[0].header(header::ORIGINAL_OFFSET), Some("1"));

    driver.process_retry(2).await.unwrap();
    let dead = driver.produced(&topics.dlq());
    assert_eq!(
        dead.len(),
        1,
        "after the last retry level: the dead letters"
    );
    assert!(dead[0].header(header::NOT_BEFORE).is_none());
    assert_eq!(dead[0].header(header::ATTEMPTS), Some("6"));
    assert_eq!(Metrics::get(&driver.metrics().retried), 2);
    assert_eq!(Metrics::get(&driver.metrics().dead_lettered), 1);
    assert_eq!(driver.in_flight(), 0);
}

#[tokio::test]
async fn permanent_and_undecodable_records_go_to_the_dead_letters_at_once() {
    let mut driver = driver(
        config(),
        Recording::new(|(id, _), _| {
            if id == "refused" {
                Outcome::Permanent("mapper_parsing_exception".into())
            } else {
                Outcome::Done
            }
        }),
    );
    pipe(&mut driver, 0, "refused", 1);
    driver.pipe(
        "anime",
        0,
        Some(b"garbage"),
        b"\x00\x00\x00\x00\x01not avro",
    );
    driver.pipe("anime", 0, Some(b"unframed"), b"{}");
    pipe(&mut driver, 0, "fine", 1);
    driver.process().await.unwrap();
    let topics = driver.topics();
    assert!(
        driver.produced(&topics.retry(1)).is_empty(),
        "nothing retried"
    );
    let dead = driver.produced(&topics.dlq());
    let keys: Vec<_> = dead.iter().map(|d| d.key.clone().unwrap()).collect();
    assert_eq!(keys, [&b"refused"[..], b"garbage", b"unframed"]);
    for d in &dead {
        assert_eq!(d.header(header::ERROR_CLASS), Some("permanent"), "{d:?}");
    }
    assert!(
        dead[0]
            .header(header::ERROR_MESSAGE)
            .unwrap()
            .contains("mapper_parsing")
    );
    assert!(
        dead[1]
            .header(header::ERROR_MESSAGE)
            .unwrap()
            .starts_with("decode")
    );
    assert_eq!(driver.committed("anime", 0), Some(4));
    let written: Vec<_> = driver.topology().sink().writes().concat();
    assert_eq!(written, [("refused".to_owned(), 1), ("fine".to_owned(), 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_sink_down_for_a_whole_batch_pauses_the_lane_and_routes_nothing() {
    let mut driver = driver(
        config(),
        Recording::new(|_, write| {
            if write <= 3 {
                Outcome::Unavailable("connection refused".into())
            } else {
                Outcome::Done
            }
        }),
    );
    pipe(&mut driver, 0, "a", 1);
    pipe(&mut driver, 1, "b", 1);
    driver.process().await.unwrap();
    assert_eq!(
        driver.topology().sink().writes().len(),
        4,
        "written until it answered"
    );
    assert_eq!(Metrics::get(&driver.metrics().sink_retries), 3);
    assert!(driver.produced(&driver.topics().retry(1)).is_empty());
    assert!(driver.produced(&driver.topics().dlq()).is_empty());
    assert_eq!(driver.committed("anime", 0), Some(1));
    assert_eq!(driver.committed("anime", 1), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_a_sink_outage_settles_nothing() {
    let mut driver = driver(
        config(),
        Recording::new(|_, _| Outcome::Unavailable("503".into())),
    );
    pipe(&mut driver, 0, "a", 1);
    let batch = driver.take().await.unwrap();
    let stop = driver.stop_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.cancel();
    });
    driver.settle(batch).await.unwrap();
    assert!(
        driver.topology().sink().writes().len() > 3,
        "kept trying for a minute"
    );
    assert_eq!(driver.committed("anime", 0), None, "nothing settled");
    assert_eq!(
        driver.in_flight(),
        1,
        "the record stays unsettled, redelivered later"
    );
    assert!(driver.produced(&driver.topics().dlq()).is_empty());
}

#[tokio::test]
async fn a_retried_record_keeps_the_coordinates_it_was_first_consumed_at() {
    let codec = Codec::new("http://127.0.0.1:1");
    codec.prepare_local(1, Topic::Anime);
    // Fails on the source lane (first write and its in-place retry), passes on retry.1.
    let topology = Stream::<Envelope<AnimeData>>::topic_located("anime")
        .map(|l| {
            (
                format!("{}/{}/{}", l.topic, l.partition, l.offset),
                l.value.aggregate_version,
            )
        })
        .to(Recording::new(|_, write| {
            if write <= 2 {
                Outcome::Retry("503".into())
            } else {
                Outcome::Done
            }
        }));
    let mut driver = TestDriver::new(config(), topology, codec);
    driver.pipe("anime", 2, Some(b"a"), &event("a", 1));
    driver.pipe("anime", 2, Some(b"a"), &event("a", 2));
    driver.process().await.unwrap();
    driver.process_retry(1).await.unwrap();
    let writes = driver.topology().sink().writes();
    let last = writes.last().unwrap();
    assert_eq!(
        last,
        &vec![("anime/2/0".to_owned(), 1), ("anime/2/1".to_owned(), 2)],
        "the retry lane sees the source coordinates, not the retry topic's: {writes:?}"
    );
    assert!(driver.produced(&driver.topics().dlq()).is_empty());
}
