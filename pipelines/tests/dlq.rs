//! The dead-letter tools on the real stack: scan with filters, inspect (decoded or not),
//! replay to the original topic (a record that fails again returns to the dead-letter
//! topic; one whose cause is gone gets indexed), purge.

mod common;

use std::time::Duration;

use anineplus_pipelines::dead_letter::header as h;
use anineplus_pipelines::dlq::{self, DeadLetterRecord, Filter, REPLAYED_FROM};
use anineplus_schemas::Topic;
use anineplus_schemas::events::{AnimeData, Envelope, samples};
use common::Harness;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn anime(id: &str, version: i64, year: i32) -> Envelope<AnimeData> {
    let mut e = samples::anime_updated(0);
    e.aggregate_id = id.into();
    e.aggregate_version = version;
    if let AnimeData::AnimeUpdated(s) = &mut e.data {
        s.anime_id = id.into();
        s.release_year = Some(year);
    }
    e
}

async fn scan(t: &Harness, filter: Filter) -> Vec<DeadLetterRecord> {
    let (brokers, topic) = (t.stack.kafka_brokers.clone(), t.dlq());
    tokio::task::spawn_blocking(move || dlq::scan(&brokers, &topic, &filter, |_, _| {}))
        .await
        .unwrap()
        .unwrap()
}

async fn wait_count(t: &Harness, n: usize) -> Vec<DeadLetterRecord> {
    for _ in 0..100 {
        let letters = scan(t, Filter::default()).await;
        if letters.len() >= n {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("fewer than {n} dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_filtered_inspected_replayed_and_purged() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;
    t.send_raw(Topic::Anime, "junk", b"garbage").await;
    t.send("far", &anime("far", 1, 70_000)).await;
    t.send("ok", &anime("ok", 1, 2001)).await;
    t.wait_doc("anime", "ok", |v, _| v == 1).await;

    // A record that exhausted its retries while the engine was down (written here directly).
    let producer: FutureProducer =
        anineplus_connectors::kafka::producer_config(&t.stack.kafka_brokers)
            .create()
            .unwrap();
    let good = t.codec.encode(&anime("later", 2, 1999)).await.unwrap();
    let anime_topic = t.topic(Topic::Anime);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: h::ORIGINAL_TOPIC,
            value: Some(anime_topic.as_str()),
        })
        .insert(Header {
            key: h::ERROR_CLASS,
            value: Some("retryable"),
        })
        .insert(Header {
            key: h::LAST_FAILURE,
            value: Some("1"),
        });
    producer
        .send(
            FutureRecord::to(&t.dlq())
                .key("later")
                .payload(&good)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    let all = wait_count(&t, 3).await;
    assert_eq!(all.len(), 3);
    let permanent = scan(
        &t,
        Filter {
            class: Some("permanent".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(permanent.len(), 2);
    let far = scan(
        &t,
        Filter {
            key: Some("far".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(far.len(), 1);
    let since = scan(
        &t,
        Filter {
            since_ms: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(since.len(), 2, "the hand-written one failed at t=1");

    let text = far[0].inspect(&t.codec, &t.topic_prefix).await;
    assert!(text.contains("value (decoded)"), "{text}");
    assert!(text.contains("70000"), "{text}");
    assert!(text.contains("error-message: sink: status 400"), "{text}");
    let junk = scan(
        &t,
        Filter {
            key: Some("junk".into()),
            ..Default::default()
        },
    )
    .await;
    let text = junk[0].inspect(&t.codec, &t.topic_prefix).await;
    assert!(text.contains("does not decode"), "{text}");

    // Replay: the hand-written one is indexed now; the garbage fails again and returns.
    let selected: Vec<_> = all.iter().filter(|l| l.key() != "far").cloned().collect();
    assert_eq!(
        dlq::replay(&t.stack.kafka_brokers, &selected, |_, _| {})
            .await
            .unwrap(),
        2
    );
    t.wait_doc("anime", "later", |v, _| v == 2).await;
    let after = wait_count(&t, 4).await;
    let returned = after.last().unwrap();
    assert_eq!(returned.key(), "junk");
    assert!(returned.raw.header(REPLAYED_FROM).is_some(), "{returned:?}");
    assert_eq!(returned.raw.header(h::ATTEMPTS), Some("1"));

    // Purge deletes everything present.
    assert_eq!(
        dlq::purge(&t.stack.kafka_brokers, &t.dlq()).await.unwrap(),
        4
    );
    assert!(scan(&t, Filter::default()).await.is_empty());
    indexer.stop().await;
    t.cleanup().await;
}
