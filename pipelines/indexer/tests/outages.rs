//! The stack's real services stopped under a running indexer: OpenSearch stopped for a while
//! mid-stream (nothing dead-lettered, nothing lost, indexing resumes by itself) and the Kafka
//! broker restarted mid-stream (nothing lost); and log shipping through a broker restart
//! (drops counted, shipping resumes). The services are stopped and started with the
//! stack's own scripts (`scripts/stack/<service>.sh stop|start`), so these tests stop what
//! every other test uses: the tests of this binary run one at a time (cargo runs test
//! binaries one after another), and a guard starts the service again even when a test fails.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anineplus_connectors::kafka;
use anineplus_schemas::Topic;
use anineplus_streams::metrics::Metrics;
use common::{Harness, anime};
use rdkafka::producer::FutureRecord;
use serde_json::json;

/// The tests of this file stop shared services: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const KEYS: usize = 1_000;

/// A stack service stopped by this test; started again when dropped.
struct Stopped {
    service: &'static str,
    started: bool,
}

fn script(service: &str, action: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/stack")
        .join(format!("{service}.sh"));
    let at = Instant::now();
    let status = Command::new("bash")
        .arg(&path)
        .arg(action)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(
        status.success(),
        "{} {action} failed: {status}",
        path.display()
    );
    eprintln!(
        "outages: {service} {action} took {:.1} s",
        at.elapsed().as_secs_f64()
    );
}

impl Stopped {
    fn stop(service: &'static str) -> Self {
        script(service, "stop");
        Stopped {
            service,
            started: false,
        }
    }

    fn start(mut self) {
        script(self.service, "start");
        self.started = true;
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.started {
            script(self.service, "start");
        }
    }
}

/// Sends every key at `version`, retrying each send until the broker takes it (a broker
/// restart fails sends for a while; the producer is idempotent, a retry is at worst a
/// duplicate, which versioned writes absorb).
async fn send_all(t: &Harness, producer: &kafka::Producer, version: i64) {
    let topic = t.topic(Topic::Anime);
    for k in 0..KEYS {
        let id = format!("k{k}");
        let event = anime(&id, version, &format!("{id} v{version}"));
        let bytes = t.codec.encode(&event).await.expect("encode");
        loop {
            let record = FutureRecord::to(&topic).key(&id).payload(&bytes);
            match producer.send(record, Duration::from_secs(60)).await {
                Ok(_) => break,
                Err((e, _)) => {
                    eprintln!("outages: send of {id} v{version} failed ({e}); again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// Waits until every key is indexed at `version`, checking with one search.
async fn wait_all_at(t: &Harness, version: i64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let count = t
            .count("anime", json!({"term": {"aggregateVersion": version}}))
            .await;
        if count == KEYS {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {KEYS} anime at version {version}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A test's world, its in-process indexer and a producer.
async fn start() -> (Harness, common::Indexer, kafka::Producer) {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;
    let producer = kafka::Producer::new(&t.stack.kafka_brokers).unwrap();
    (t, indexer, producer)
}

/// Records in the pipeline's retry and dead-letter topics.
fn parked(t: &Harness) -> i64 {
    let levels = t.config().retry.delays.len();
    let mut topics = vec![t.dlq()];
    topics.extend((1..=levels).map(|n| format!("{}indexer.retry.{n}", t.topic_prefix)));
    topics.iter().map(|topic| t.committed(topic).1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opensearch_stopped_mid_stream_nothing_is_dead_lettered_or_lost_and_indexing_resumes() {
    let _serial = SERIAL.lock().await;
    let (t, indexer, producer) = start().await;

    send_all(&t, &producer, 1).await;
    wait_all_at(&t, 1, Duration::from_secs(60)).await;

    let down = Stopped::stop("opensearch");
    let stopped_at = Instant::now();
    send_all(&t, &producer, 2).await;
    send_all(&t, &producer, 3).await;
    // Stay down a while: the indexer retries against a dead engine, pausing consumption.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped_at.elapsed())).await;
    let metrics = indexer.running.metrics.clone();
    let sunk_while_down = Metrics::get(&metrics.sunk);
    down.start();
    eprintln!(
        "outages: opensearch down for {:.1} s",
        stopped_at.elapsed().as_secs_f64()
    );

    wait_all_at(&t, 3, Duration::from_secs(120)).await;
    let total = t
        .wait_committed_within(&t.topic(Topic::Anime), Duration::from_secs(60))
        .await;
    assert_eq!(total, 3 * KEYS as i64);
    assert!(
        Metrics::get(&metrics.sunk) >= sunk_while_down + 2 * KEYS as u64,
        "indexing resumed"
    );
    assert_eq!(
        Metrics::get(&metrics.dead_lettered),
        0,
        "nothing dead-lettered"
    );
    assert_eq!(parked(&t), 0, "nothing in the retry or dead-letter topics");
    assert!(
        Metrics::get(&metrics.sink_retries) > 0,
        "the indexer did meet the outage"
    );
    indexer.stop().await;
    t.cleanup().await;
}

/// Also log shipping through the same outage: while Kafka is down logging goes on (never
/// blocking), the records Kafka cannot take within the delivery timeout are counted as
/// dropped, and once the broker is back the same shipper ships again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_broker_restarted_mid_stream_loses_nothing() {
    use anineplus_telemetry::ship::{self, ShipConfig};
    use tracing_subscriber::layer::SubscriberExt;

    let _serial = SERIAL.lock().await;
    let (t, indexer, producer) = start().await;
    let (layer, shipper, stats) = ship::layer(ShipConfig {
        delivery_timeout: Duration::from_secs(2),
        ..ShipConfig::new(
            "outage-test",
            &t.stack.kafka_brokers,
            &t.stack.registry_url,
            &t.topic_prefix,
        )
    });
    let stop_shipping = tokio_util::sync::CancellationToken::new();
    let drain = tokio::spawn(shipper.run(stop_shipping.clone()));
    let subscriber = std::sync::Arc::new(tracing_subscriber::registry().with(layer));
    let log = |n: usize, what: &str| {
        let started = Instant::now();
        tracing::subscriber::with_default(subscriber.clone(), || {
            for i in 0..n {
                tracing::info!(i, "{what}");
            }
        });
        started.elapsed()
    };
    log(100, "before");
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.shipped() < 100 {
        assert!(
            Instant::now() < deadline,
            "shipped {} of 100",
            stats.shipped()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    send_all(&t, &producer, 1).await;
    let restart = async {
        // Mid-stream: the broker goes while versions 2 and 3 are being produced and indexed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let down = Stopped::stop("kafka");
        let took = log(1000, "during");
        assert!(
            took < Duration::from_secs(1),
            "logging 1,000 records with Kafka down took {took:?}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        down.start();
    };
    let produce = async {
        send_all(&t, &producer, 2).await;
        send_all(&t, &producer, 3).await;
    };
    tokio::join!(restart, produce);

    wait_all_at(&t, 3, Duration::from_secs(180)).await;
    let total = t
        .wait_committed_within(&t.topic(Topic::Anime), Duration::from_secs(120))
        .await;
    assert!(
        total >= 3 * KEYS as i64,
        "every produced record committed: {total}"
    );
    let metrics = indexer.running.metrics.clone();
    assert_eq!(
        Metrics::get(&metrics.dead_lettered),
        0,
        "nothing dead-lettered"
    );
    // The records logged while it was down were dropped (the delivery timeout is 2 s);
    // records logged after it is back ship.
    assert!(stats.dropped() >= 1000, "dropped {}", stats.dropped());
    let deadline = Instant::now() + Duration::from_secs(90);
    while stats.shipped() < 200 {
        assert!(
            Instant::now() < deadline,
            "after the restart: shipped {}, dropped {}",
            stats.shipped(),
            stats.dropped()
        );
        log(10, "after");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "log shipping through the broker restart: {} shipped, {} dropped",
        stats.shipped(),
        stats.dropped()
    );
    stop_shipping.cancel();
    let _ = drain.await;
    indexer.stop().await;
    t.cleanup().await;
}
