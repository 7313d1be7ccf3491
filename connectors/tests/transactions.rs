//! `kafka::transactions` against the real broker: the coordinator's state of a
//! transactional id, the transactions a partition holds open, and a marker written by hand
//! that ends one for `read_committed` readers; `mend` leaves alone a transaction its
//! coordinator still drives.
//!
//! A hanging transaction itself (a coordinator that skipped a partition's marker) cannot
//! be made on purpose: the analytics broker-restart test meets it when Kafka makes it.

use std::time::Duration;

use anineplus_connectors::kafka::transactions::{self, Marker};
use anineplus_connectors::kafka::{self, Producer};
use anineplus_testkit::{Stack, topics, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureRecord, Producer as _};

/// How many records a `read_committed` consumer of `topic` gets within `wait`.
fn committed_records(brokers: &str, topic: &str, wait: Duration) -> usize {
    let consumer: BaseConsumer = kafka::consumer_config(brokers, &unique("txn-reader"))
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = std::time::Instant::now() + wait;
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn an_open_transaction_is_described_found_and_ended_by_a_marker() {
    let stack = Stack::from_env();
    stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    let brokers = stack.kafka_brokers.clone();
    let topic = unique("txn");
    topics::create(&brokers, &topic, 2).await.unwrap();
    let id = unique("txn-id");
    let mut config = kafka::producer_config(&brokers);
    config.set("transactional.id", &id);
    let producer = Producer::create(&config).unwrap();
    let p = producer.clone();
    tokio::task::spawn_blocking(move || {
        p.base().init_transactions(Duration::from_secs(30)).unwrap();
        p.base().begin_transaction().unwrap();
    })
    .await
    .unwrap();
    // Three records in partition 0, acknowledged but not committed.
    for n in 0..3 {
        let payload = format!("v{n}");
        let record = FutureRecord::to(&topic)
            .partition(0)
            .key("k")
            .payload(&payload);
        let delivery = producer.send_result(record).map_err(|(e, _)| e).unwrap();
        delivery.await.expect("delivered").expect("acknowledged");
    }
    tokio::task::spawn_blocking(move || checks(&brokers, &producer, &[topic], &id))
        .await
        .unwrap();
}

fn checks(brokers: &str, producer: &Producer, topics: &[String], id: &str) {
    let client = producer.base().client();
    let state = transactions::describe_transaction(client, id)
        .unwrap()
        .expect("the coordinator knows the id");
    println!("coordinator: {state:?}");
    assert_eq!(state.state, "Ongoing");
    assert!(state.in_progress());

    let open = transactions::open_transactions(client, topics, Some(state.producer_id)).unwrap();
    println!("open: {open:?}");
    assert_eq!(
        open.len(),
        1,
        "partition 0 alone holds the transaction: {open:?}"
    );
    let txn = &open[0];
    assert_eq!((txn.partition, txn.start_offset), (0, 0));
    assert_eq!(txn.producer_epoch, i32::from(state.producer_epoch));
    assert!(
        transactions::open_transactions(client, topics, Some(state.producer_id + 1))
            .unwrap()
            .is_empty(),
        "another producer id holds nothing open"
    );

    // Its coordinator still drives it: mend does nothing.
    let mended = transactions::mend(client, id, topics).unwrap();
    assert!(
        mended.completed.is_empty() && mended.refused.is_empty(),
        "{mended:?}"
    );
    assert_eq!(
        committed_records(brokers, &topics[0], Duration::from_secs(2)),
        0
    );

    // A commit marker written by hand ends it on the partition: the records are visible
    // to read_committed readers, and nothing is open there any more.
    assert_eq!(
        transactions::write_marker(client, txn, Marker::Commit).unwrap(),
        0
    );
    assert_eq!(
        committed_records(brokers, &topics[0], Duration::from_secs(5)),
        3
    );
    assert!(
        transactions::open_transactions(client, topics, None)
            .unwrap()
            .is_empty()
    );

    // The coordinator, which never knew, completes the transaction as usual.
    producer
        .base()
        .commit_transaction(Duration::from_secs(30))
        .unwrap();
    // commit_transaction returns once the coordinator decided (PrepareCommit); it writes
    // the markers after that.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let after = loop {
        let state = transactions::describe_transaction(client, id)
            .unwrap()
            .unwrap();
        if !state.in_progress() || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("coordinator after the commit: {after:?}");
    assert_eq!(after.state, "CompleteCommit");
    assert_eq!(after.producer_epoch, state.producer_epoch);
    assert_eq!(
        after.completion(i32::from(state.producer_epoch)),
        Some(Marker::Commit)
    );
    let mended = transactions::mend(client, id, topics).unwrap();
    assert!(mended.completed.is_empty(), "nothing hangs: {mended:?}");
    assert!(
        transactions::describe_transaction(client, &unique("unknown-id"))
            .unwrap()
            .is_none()
    );
}
