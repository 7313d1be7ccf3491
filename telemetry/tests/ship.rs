//! Log shipping on the real stack: records of a request (its span's correlation id, its
//! fields, secrets redacted) reach the `logs` topic as Avro through the registry, and none
//! of librdkafka's; with Kafka unreachable logging goes on and the lost records are counted.

use std::time::{Duration, Instant};

use anineplus_schemas::Codec;
use anineplus_schemas::events::{LogLevel, LogRecord};
use anineplus_telemetry::ship::{self, REDACTED, ShipConfig};
use anineplus_testkit::{Stack, topics, unique};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_records_reach_the_logs_topic_with_their_context_and_no_secret() {
    let stack = Stack::from_env();
    stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    stack.registry().await.unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("{}.", unique("shiptest"));
    let topic = format!("{prefix}logs");
    topics::create(&stack.kafka_brokers, &topic, 1)
        .await
        .unwrap();
    let (layer, shipper, stats) = ship::layer(ShipConfig::new(
        "api",
        &stack.kafka_brokers,
        &stack.registry_url,
        &prefix,
    ));
    let stop = CancellationToken::new();
    let drain = tokio::spawn(shipper.run(stop.clone()));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", correlation_id = "corr-42", path = "/graphql");
        let _in = span.enter();
        tracing::info!(user_id = "u-1", password = "hunter2", "signed in");
        tracing::warn!(target: "librdkafka", "a line of the client's own");
        tracing::error!(contact = "frieren@example.org", "mail bounced");
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.shipped() < 2 {
        assert!(
            Instant::now() < deadline,
            "shipped {} of 2",
            stats.shipped()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    drain.await.unwrap();

    let consumer: StreamConsumer = consumer_from_start(&stack.kafka_brokers, &unique("shiptest"));
    consumer.subscribe(&[&topic]).unwrap();
    let codec = Codec::new(&stack.registry_url);
    let mut records = Vec::new();
    while records.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("records in the logs topic")
            .unwrap();
        assert_eq!(message.key(), Some(&b"api"[..]), "keyed by service");
        let record: LogRecord = codec.decode(message.payload().unwrap()).await.unwrap();
        records.push(record);
    }
    eprintln!("{records:#?}");
    let signed_in = &records[0];
    assert_eq!(signed_in.level, LogLevel::Info);
    assert_eq!(signed_in.service, "api");
    assert_eq!(signed_in.message, "signed in");
    assert_eq!(signed_in.correlation_id.as_deref(), Some("corr-42"));
    assert_eq!(signed_in.context["path"], "/graphql");
    assert_eq!(signed_in.context["user_id"], "u-1");
    assert_eq!(signed_in.context["password"], REDACTED);
    let bounced = &records[1];
    assert_eq!(bounced.level, LogLevel::Error);
    assert_eq!(bounced.context["contact"], REDACTED);
    for record in &records {
        let text = format!("{record:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("frieren@"),
            "{text}"
        );
        assert_ne!(
            record.context.get("target").map(String::as_str),
            Some("librdkafka")
        );
    }
    assert_eq!(stats.dropped(), 0);
    topics::delete_prefixed(&stack.kafka_brokers, &prefix)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_unreachable_logging_goes_on_and_lost_records_are_counted() {
    let stack = Stack::from_env();
    stack.registry().await.unwrap_or_else(|e| panic!("{e}"));
    let mut config = ShipConfig::new("api", "127.0.0.1:1", &stack.registry_url, "down.");
    config.queue = 100;
    config.delivery_timeout = Duration::from_secs(1);
    let (layer, shipper, stats) = ship::layer(config);
    let stop = CancellationToken::new();
    let drain = tokio::spawn(shipper.run(stop.clone()));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..1_000 {
            tracing::info!(i, "while kafka is away");
        }
    });
    // Every record is either dropped at the full queue at once, or by the producer after
    // its delivery timeout: none is shipped, all are counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.dropped() < 1_000 {
        assert!(
            Instant::now() < deadline,
            "dropped {} of 1000 (shipped {})",
            stats.dropped(),
            stats.shipped()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats.shipped(), 0);
    stop.cancel();
    drain.await.unwrap();
}

/// A plain consumer reading from the start.
fn consumer_from_start(brokers: &str, group: &str) -> StreamConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}
