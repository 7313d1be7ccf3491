//! A drill for hanging transactions on the local stack's broker (`docs/state.md`,
//! "Limits"): Kafka makes them, so they can only be caught, not built.
//!
//! ```text
//! cargo run -p anineplus-connectors --example hanging_transactions -- produce ID TOPIC
//!     transactions of 30 records over TOPIC's partitions, committed one after another
//!     with transactional id ID, until killed (stop the broker under it)
//! cargo run -p anineplus-connectors --example hanging_transactions -- check ID TOPIC
//!     the coordinator's state of ID and the transactions open on TOPIC; with `--mend`,
//!     completes those that hang (kafka::transactions::mend) and says what it wrote
//! cargo run -p anineplus-connectors --example hanging_transactions -- read TOPIC
//!     how far a read_committed reader of TOPIC gets in 5 s, per partition (the offset
//!     after the last record it read): a hanging transaction stops it at its start
//! ```
//!
//! A round of the drill: `produce` in the background for a few seconds, then
//! `scripts/stack/kafka.sh stop` (SIGTERM: a controlled shutdown while a commit is in
//! flight), `kill -9` the producer (so nothing writes to the partitions again), `kafka.sh
//! start`, then `check`. `hanging: N` above 0 is a caught one; `read` shows the reader
//! stopped at it, `check --mend` completes it, `read` again reads to the end. A fresh
//! topic and id per round keep the rounds apart (a producer killed mid-transaction leaves
//! an `Ongoing` one that the coordinator aborts after its timeout, 10 s). One round in
//! about 15 caught one here.
//!
//! Brokers: `KAFKA_BROKERS` (default the stack's).

use std::time::Duration;

use anineplus_connectors::kafka::{self, Producer, transactions};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureRecord, Producer as _};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| kafka::DEFAULT_BROKERS.into());
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["produce", id, topic] => produce(&brokers, id, topic),
        ["check", id, topic, ref rest @ ..] => check(&brokers, id, topic, rest == ["--mend"]),
        ["read", topic] => read(&brokers, topic),
        _ => {
            eprintln!(
                "usage: hanging_transactions produce ID TOPIC | check ID TOPIC [--mend] | read TOPIC"
            );
            std::process::exit(2);
        }
    }
}

fn produce(brokers: &str, id: &str, topic: &str) {
    let mut config = kafka::producer_config(brokers);
    config
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "10000")
        .set("message.timeout.ms", "10000");
    let producer = Producer::create(&config).expect("producer");
    producer
        .base()
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for n in 0u64.. {
        producer.base().begin_transaction().expect("begin");
        let sends: Vec<_> = (0..30)
            .filter_map(|i| {
                let key = format!("k{i}");
                let value = format!("{n}");
                producer
                    .send_result(FutureRecord::to(topic).key(&key).payload(&value))
                    .ok()
            })
            .collect();
        runtime.block_on(async {
            for s in sends {
                let _ = s.await;
            }
        });
        match producer.base().commit_transaction(Duration::from_secs(10)) {
            Ok(()) => {
                if n % 100 == 0 {
                    eprintln!("committed {n}");
                }
            }
            Err(e) => {
                eprintln!("commit {n}: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn check(brokers: &str, id: &str, topic: &str, mend: bool) {
    let producer = Producer::new(brokers).expect("client");
    let client = producer.base().client();
    let topics = vec![topic.to_owned()];
    let state = transactions::describe_transaction(client, id).expect("describe");
    println!("coordinator: {state:?}");
    let open = transactions::open_transactions(client, &topics, None).expect("producers");
    println!("open on {topic}: {open:?}");
    // Hanging: held open by this id's producer while its coordinator drives nothing.
    let hanging = state.as_ref().map_or(0, |s| {
        let mine = open
            .iter()
            .filter(|t| t.producer_id == s.producer_id)
            .count();
        if s.in_progress() { 0 } else { mine }
    });
    println!("hanging: {hanging}");
    if mend {
        println!("mended: {:?}", transactions::mend(client, id, &topics));
        println!(
            "open on {topic} after: {:?}",
            transactions::open_transactions(client, &topics, None)
        );
    }
}

fn read(brokers: &str, topic: &str) {
    let group = format!("hanging-read-{}", std::process::id());
    let consumer: BaseConsumer = kafka::consumer_config(brokers, &group)
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut reached = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            reached.insert(m.partition(), m.offset() + 1);
        }
    }
    for (partition, at) in reached {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .expect("watermarks");
        println!("{topic}-{partition}: read to {at} of {high}");
    }
}
