//! Smoke tests of the real local stack, with the crates the project uses.
//!
//! Each test talks to a real service started by `make up` and fails (never skips) with a
//! message naming the service when it is down. They prove the pieces everything else
//! stands on: an idempotent producer and a consumer group committing offsets (rdkafka),
//! external versioning with a 409 inside a bulk response (elasticsearch crate against
//! OpenSearch), a sqlx round trip and a Redis round trip.

use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_testkit::{Stack, unique};
use elasticsearch::params::{Refresh, VersionType};
use elasticsearch::{BulkParts, IndexParts, SearchParts};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

#[tokio::test]
async fn kafka_idempotent_producer_and_consumer_group_commit() {
    let stack = Stack::from_env();
    let brokers = stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("kafka: {brokers} broker(s) at {}", stack.kafka_brokers);

    let topic = unique("smoke");
    let admin: AdminClient<DefaultClientContext> = kafka::producer_config(&stack.kafka_brokers)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics request");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");

    let producer = kafka::Producer::new(&stack.kafka_brokers).unwrap();
    const N: usize = 30;
    for i in 0..N {
        let key = format!("entity-{}", i % 3);
        let payload = format!("event-{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "event-type",
            value: Some("smoke.tested"),
        });
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("delivery of {payload} failed: {e}"));
    }

    let group = unique("smoke-group");
    let consumer: StreamConsumer = kafka::consumer_config(&stack.kafka_brokers, &group)
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut per_key: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for _ in 0..N {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a record within 30 s")
            .expect("a record, not an error");
        assert_eq!(
            message
                .headers()
                .and_then(|h| h.iter().next())
                .map(|h| h.key),
            Some("event-type")
        );
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let payload = std::str::from_utf8(message.payload().unwrap()).unwrap();
        let seq: usize = payload.trim_start_matches("event-").parse().unwrap();
        per_key.entry(key).or_default().push(seq);
        // At-least-once: the offset is stored only once the record is "sunk".
        consumer.store_offset_from_message(&message).unwrap();
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    // Order holds per key (one key, one partition).
    for (key, seqs) in &per_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {seqs:?}"
        );
    }
    assert_eq!(per_key.values().map(Vec::len).sum::<usize>(), N);

    // The committed offsets, read back from the broker, cover every record.
    let mut partitions = TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition(&topic, p);
    }
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(total, N as i64, "committed offsets: {committed:?}");

    admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn search_external_versions_and_bulk_conflict() {
    let stack = Stack::from_env();
    let (client, version) = stack.search().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("search: {version} at {}", stack.search_url);
    let index = unique("smoke");

    // Version 5 is written; an older version 3 then conflicts.
    let response = client
        .index(IndexParts::IndexId(&index, "a1"))
        .version(5)
        .version_type(VersionType::ExternalGte)
        .body(json!({"title": "Frieren: Beyond Journey's End", "version": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status_code().as_u16(), 201);

    let bulk: Vec<elasticsearch::http::request::JsonBody<_>> = vec![
        json!({"index": {"_id": "a1", "version": 3, "version_type": "external_gte"}}).into(),
        json!({"title": "stale title", "version": 3}).into(),
        json!({"index": {"_id": "a2", "version": 1, "version_type": "external_gte"}}).into(),
        json!({"title": "Cowboy Bebop", "version": 1}).into(),
    ];
    let response = client
        .bulk(BulkParts::Index(&index))
        .refresh(Refresh::True)
        .body(bulk)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status_code().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"], json!(true), "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["index"]["status"], json!(409), "{body}");
    assert_eq!(
        items[0]["index"]["error"]["type"],
        json!("version_conflict_engine_exception")
    );
    assert_eq!(items[1]["index"]["status"], json!(201), "{body}");

    // The stale write did not land, and the analysed text is searchable.
    let response = client
        .search(SearchParts::Index(&[&index]))
        .body(json!({"query": {"match": {"title": "frieren"}}}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["hits"]["total"]["value"], json!(1), "{body}");
    assert_eq!(body["hits"]["hits"][0]["_source"]["version"], json!(5));

    client
        .indices()
        .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[&index]))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_round_trip_with_sqlx() {
    let stack = Stack::from_env();
    let pool = stack.postgres().await.unwrap_or_else(|e| panic!("{e}"));
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    eprintln!("postgres: {version}");

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("CREATE TEMP TABLE smoke (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let hostile = "'); DROP TABLE smoke; --";
    let id: i64 = sqlx::query_scalar("INSERT INTO smoke (body) VALUES ($1) RETURNING id")
        .bind(hostile)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM smoke WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(body, hostile);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn redis_round_trip() {
    let stack = Stack::from_env();
    let mut conn = stack.redis().await.unwrap_or_else(|e| panic!("{e}"));
    let key = unique("smoke");
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("1")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();
    let value: i64 = redis::cmd("INCR")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, 2);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}
