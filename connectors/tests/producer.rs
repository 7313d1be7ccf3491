//! The project's Kafka producer against the real broker: every record's future resolves
//! with where it landed, a record Kafka refuses fails with the record handed back, the
//! delivery thread does not burn CPU while idle, and it stops once the last handle is
//! dropped.

use std::time::Duration;

use anineplus_connectors::kafka::Producer;
use anineplus_testkit::{Stack, topics, unique};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

/// The ids of this process's threads named like the delivery thread, with their CPU
/// ticks (utime + stime).
fn delivery_threads() -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .flatten()
    {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.trim().starts_with("kafka-deliver") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = fields
            .get(11)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        found.push((task.file_name().to_string_lossy().into_owned(), ticks));
    }
    found
}

#[tokio::test]
async fn records_resolve_refusals_come_back_and_the_thread_idles_and_stops() {
    let stack = Stack::from_env();
    stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    let topic = unique("producer");
    topics::create(&stack.kafka_brokers, &topic, 2)
        .await
        .unwrap();
    let before: Vec<String> = delivery_threads().into_iter().map(|(id, _)| id).collect();

    let producer = Producer::new(&stack.kafka_brokers).unwrap();
    // A thread names itself once it runs: give it a moment to.
    let new_threads = || -> Vec<(String, u64)> {
        delivery_threads()
            .into_iter()
            .filter(|(id, _)| !before.contains(id))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while new_threads().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mine = new_threads();
    assert_eq!(mine.len(), 1, "one delivery thread per producer: {mine:?}");

    // Awaited one by one, and enqueued first then awaited: offsets 0, 1, 2 … per partition.
    for i in 0..3i64 {
        let payload = format!("v{i}");
        let delivered = producer
            .send(
                FutureRecord::to(&topic)
                    .partition(0)
                    .key("k")
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("record {i} not delivered: {e}"));
        assert_eq!((delivered.partition, delivered.offset), (0, i));
    }
    let pending: Vec<_> = (0..3)
        .map(|_| {
            producer
                .send_result(FutureRecord::to(&topic).partition(1).key("k").payload("x"))
                .unwrap_or_else(|(e, _)| panic!("not enqueued: {e}"))
        })
        .collect();
    for (i, delivering) in pending.into_iter().enumerate() {
        let delivered = delivering.await.expect("reported").expect("delivered");
        assert_eq!((delivered.partition, delivered.offset), (1, i as i64));
    }

    // A record larger than the producer takes fails with its reason and comes back whole.
    let huge = vec![b'x'; 2_000_000];
    let (error, record) = producer
        .send(
            FutureRecord::to(&topic).key("big").payload(&huge),
            Duration::from_secs(10),
        )
        .await
        .expect_err("larger than message.max.bytes");
    assert_eq!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
    );
    assert_eq!(record.topic(), topic);
    assert_eq!(record.payload().map(<[u8]>::len), Some(huge.len()));

    // Idle, the delivery thread sleeps in librdkafka's poll: over 5 s it runs for at most
    // one tick (10 ms). Polling every 100 ms with its last fraction of a millisecond spun
    // through (the polling thread this replaces) took about five.
    let ticks = |id: &str| {
        delivery_threads()
            .into_iter()
            .find(|(t, _)| t == id)
            .map(|(_, ticks)| ticks)
            .expect("the thread runs")
    };
    let id = mine[0].0.clone();
    let start = ticks(&id);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = ticks(&id) - start;
    assert!(
        idle <= 1,
        "the idle delivery thread used {idle} ticks in 5 s"
    );
    println!("idle delivery thread: {idle} CPU ticks in 5 s");

    let copy = producer.clone();
    drop(producer);
    assert!(
        delivery_threads().iter().any(|(t, _)| *t == id),
        "a clone keeps it"
    );
    drop(copy);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while delivery_threads().iter().any(|(t, _)| *t == id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery thread outlived its producer by 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    topics::delete_prefixed(&stack.kafka_brokers, &topic)
        .await
        .unwrap();
}
