//! `anineplus-dlq job` and `status` on the real stack: a job redrives the selected dead
//! letters with its redrive id through the engine the console uses; the one whose cause is
//! gone gets indexed, the undecodable one comes back carrying the id, and `status` counts
//! it; the dry run sends nothing.

#[path = "../../indexer/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use anineplus_schemas::Topic;
use anineplus_streams::dead_letter::header as h;
use anineplus_streams::dlq::{self, DeadLetterRecord, Filter};
use common::Harness;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

async fn cli(t: &Harness, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_anineplus-dlq"))
        .args(args)
        .env("KAFKA_BROKERS", &t.stack.kafka_brokers)
        .env("SCHEMA_REGISTRY_URL", &t.stack.registry_url)
        .env("TOPIC_PREFIX", &t.topic_prefix)
        .output()
        .await
        .expect("run anineplus-dlq");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

async fn letters(t: &Harness, n: usize) -> Vec<DeadLetterRecord> {
    for _ in 0..100 {
        let (brokers, topic) = (t.stack.kafka_brokers.clone(), t.dlq());
        let found = tokio::task::spawn_blocking(move || {
            dlq::scan(&brokers, &topic, &Filter::default(), |_, _| {})
        })
        .await
        .unwrap()
        .unwrap_or_default();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("fewer than {n} dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_redrives_with_its_id_and_status_counts_the_returns() {
    let t = Harness::new().await;
    let indexer = t.start_indexer().await;
    t.send_raw(Topic::Anime, "junk", b"garbage").await;
    letters(&t, 1).await;
    // A letter whose cause (the search engine down) is gone.
    let producer = anineplus_connectors::kafka::Producer::new(&t.stack.kafka_brokers).unwrap();
    let good = t
        .codec
        .encode(&common::anime("later", 1, "Later"))
        .await
        .unwrap();
    let anime_topic = t.topic(Topic::Anime);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: h::ORIGINAL_TOPIC,
            value: Some(anime_topic.as_str()),
        })
        .insert(Header {
            key: h::ERROR_CLASS,
            value: Some("retryable"),
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
    letters(&t, 2).await;

    let (code, out) = cli(&t, &["job", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("would redrive 2 to {anime_topic}")),
        "{out}"
    );
    assert_eq!(letters(&t, 2).await.len(), 2, "a dry run sends nothing");

    let (code, out) = cli(&t, &["job", "--rate", "20"]).await;
    assert_eq!(code, 0, "{out}");
    let id = out
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    assert!(out.contains("sent 2 of 2"), "{out}");
    t.wait_doc("anime", "later", |v, _| v == 1).await;
    let all = letters(&t, 3).await;
    let back = all.last().unwrap();
    assert_eq!(back.key(), "junk");
    assert_eq!(back.redrive_id(), Some(id.as_str()));

    let (code, out) = cli(&t, &["status", "--job", &id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("returned 1 dead letter(s)"), "{out}");
    assert!(out.contains("key=junk"), "{out}");
    println!("job {id}: sent 2, returned 1 (junk), later indexed");
    indexer.stop().await;
    t.cleanup().await;
}
