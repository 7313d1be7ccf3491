//! Retention on the real stack. The dead-letter topic keeps its records until purged and
//! retry topics keep theirs 7 days, whatever the broker's `log.retention.hours` (24 on the
//! local stack): set when the pipeline creates them, and altered at start on a topic that
//! exists with another retention. The dead-letter topic's size and oldest age are metrics.
//! An indexer whose committed offsets fell out of a topic's retention (records deleted
//! with the admin API here) says so: an error log line, `pipeline_offset_gap_records`, a
//! `/health` warning pointing to `verify`/`repair`, and it indexes what is left.

mod common;

use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_schemas::Topic;
use common::{Harness, anime};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn admin(t: &Harness) -> AdminClient<DefaultClientContext> {
    kafka::producer_config(&t.stack.kafka_brokers)
        .create()
        .unwrap()
}

/// `retention.ms` of `topic` as the broker describes it.
async fn retention_ms(t: &Harness, topic: &str) -> String {
    let described = admin(t)
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    match described.into_iter().next().unwrap() {
        Ok(resource) => resource
            .get("retention.ms")
            .and_then(|e| e.value.clone())
            .unwrap_or_default(),
        Err(code) => format!("({code})"),
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The sum of a metric's samples whose line contains `filter`.
fn metric(text: &str, name: &str, filter: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_kept_until_purged_and_counted() {
    let t = Harness::new().await;
    // A dead-letter topic left by an older version, with the broker's one-day retention.
    let created = admin(&t)
        .create_topics(
            &[NewTopic::new(&t.dlq(), 3, TopicReplication::Fixed(1))
                .set("retention.ms", "86400000")
                .set("max.message.bytes", "2000000")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let indexer = t.start_indexer().await;
    let retry = format!("{}indexer.retry.1", t.topic_prefix);
    // The pipeline creates and alters its topics as it starts running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (dlq_ms, retry_ms) = loop {
        let now = (
            retention_ms(&t, &t.dlq()).await,
            retention_ms(&t, &retry).await,
        );
        if now.0 == "-1" || tokio::time::Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("retention.ms: {} = {dlq_ms}, {retry} = {retry_ms}", t.dlq());
    assert_eq!(dlq_ms, "-1", "dead letters kept until purged");
    assert_eq!(retry_ms, (7 * 24 * 3600 * 1000u64).to_string());
    // Its other settings survived the change.
    let described = admin(&t)
        .describe_configs(&[ResourceSpecifier::Topic(&t.dlq())], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    assert_eq!(
        resource
            .get("max.message.bytes")
            .and_then(|e| e.value.clone()),
        Some("2000000".to_owned())
    );

    t.send_raw(Topic::Anime, "junk", b"garbage").await;
    let url = format!("http://{}/metrics", indexer.running.metrics_addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let dlq_filter = format!("topic=\"{}\"", t.dlq());
    loop {
        let (_, text) = get(&url).await;
        let records = metric(&text, "pipeline_dead_letters", &dlq_filter);
        let age = metric(
            &text,
            "pipeline_dead_letter_oldest_age_seconds",
            &dlq_filter,
        );
        if records == Some(1.0) && age.is_some() {
            eprintln!("dead-letter gauges: {records:?} record(s), oldest {age:?} s");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead-letter gauges after 30 s: records {records:?}, age {age:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    indexer.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offset_that_fell_out_of_retention_is_reported_not_silently_reset() {
    let t = Harness::new().await;
    let topic = t.topic(Topic::Anime);
    let indexer = t.start_indexer().await;
    for a in 0..6 {
        t.send(&format!("a{a}"), &anime(&format!("a{a}"), 1, "v1"))
            .await;
    }
    t.wait_committed(&topic).await;
    indexer.stop().await;
    // While the indexer is down, 6 more records arrive and retention removes everything.
    for a in 0..6 {
        t.send(&format!("a{a}"), &anime(&format!("a{a}"), 2, "v2"))
            .await;
    }
    let consumer: BaseConsumer = kafka::consumer_config(&t.stack.kafka_brokers, "x")
        .create()
        .unwrap();
    let mut cut = TopicPartitionList::new();
    for p in 0..common::PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(&topic, p, Duration::from_secs(10))
            .unwrap();
        cut.add_partition_offset(&topic, p, Offset::Offset(high))
            .unwrap();
    }
    let deleted = admin(&t)
        .delete_records(&cut, &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted.elements().iter().all(|e| e.error().is_ok()));
    // Then the indexer starts again and more records come.
    let indexer = t.start_indexer().await;
    for a in 0..3 {
        t.send(&format!("a{a}"), &anime(&format!("a{a}"), 3, "v3"))
            .await;
    }
    for a in 0..3 {
        t.wait_doc("anime", &format!("a{a}"), |v, _| v == 3).await;
    }
    let base = format!("http://{}", indexer.running.metrics_addr);
    let (_, text) = get(&format!("{base}/metrics")).await;
    let gap = metric(
        &text,
        "pipeline_offset_gap_records",
        &format!("topic=\"{topic}\""),
    );
    let (status, health) = get(&format!("{base}/health")).await;
    eprintln!("after the gap: pipeline_offset_gap_records = {gap:?}; /health {status} {health:?}");
    assert_eq!(
        gap,
        Some(6.0),
        "the 6 records deleted unprocessed are counted"
    );
    assert_eq!(status, 200);
    assert!(health.contains("offset gap on"), "{health}");
    assert!(health.contains("anineplus-search verify"), "{health}");
    // Those 6 were never indexed: a3..a5 stay at version 1 (what verify would find).
    assert_eq!(t.doc("anime", "a4").await.map(|d| d.0), Some(1));
    indexer.stop().await;
    t.cleanup().await;
}
