//! "Skip one poison record" on the real Kafka: a group's offset moves past the record at
//! its position only while the group has no member (a running pipeline's group refuses,
//! with advice), only from the position the operator saw (a stale one is refused), and
//! never past the end.

use std::time::Duration;

use anineplus_connectors::kafka;
use anineplus_console::pipelines::{group_lag, skip_record};
use anineplus_testkit::{Stack, topics, unique};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_group_skips_one_record_a_running_one_refuses() {
    let stack = Stack::from_env();
    stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    let topic = unique("skip");
    let group = unique("skip-group");
    let brokers = stack.kafka_brokers.clone();
    topics::create(&brokers, &topic, 1).await.unwrap();
    topics::produce(
        &brokers,
        &topic,
        (0..3).map(|i| (format!("k{i}"), b"v".to_vec())),
    )
    .await
    .unwrap();

    // A member of the group, as a running pipeline: it reads without committing.
    let mut config = kafka::consumer_config(&brokers, &group);
    config
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let member: StreamConsumer = config.create().unwrap();
    member.subscribe(&[&topic]).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), member.recv())
        .await
        .expect("the member joined and read")
        .unwrap();
    assert_eq!(first.offset(), 0);
    let (b, g, t) = (brokers.clone(), group.clone(), topic.clone());
    let refused = blocking(move || skip_record(&b, &g, &t, 0, 0)).await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("stop the pipeline first"), "{message}");
    println!("a group with a member: {message}");
    drop(first);
    drop(member);

    // Stopped: the member left; the record at the position is skipped, once.
    let (b, g, t) = (brokers.clone(), group.clone(), topic.clone());
    let mut skipped = None;
    for _ in 0..50 {
        let (b, g, t) = (b.clone(), g.clone(), t.clone());
        match blocking(move || skip_record(&b, &g, &t, 0, 0)).await {
            Ok(s) => {
                skipped = Some(s);
                break;
            }
            // The group may take a moment to empty after the member leaves.
            Err(e) => eprintln!("not yet: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let skipped = skipped.expect("the stopped group's offset moved");
    assert_eq!((skipped.from, skipped.to), (0, 1));
    let (b2, g2, t2) = (brokers.clone(), group.clone(), topic.clone());
    let lag = blocking(move || group_lag(&b2, &g2, std::slice::from_ref(&t2))).await;
    assert_eq!((lag.partitions[0].committed, lag.total), (Some(1), 2));
    let stale = blocking(move || skip_record(&b, &g, &t, 0, 0)).await;
    assert!(
        stale.unwrap_err().to_string().contains("stale"),
        "the page showed 0, the group is at 1"
    );
    let (b, g, t) = (brokers.clone(), group.clone(), topic.clone());
    for at in 1..3 {
        let (b, g, t) = (b.clone(), g.clone(), t.clone());
        blocking(move || skip_record(&b, &g, &t, 0, at))
            .await
            .unwrap();
    }
    let end = blocking(move || skip_record(&b, &g, &t, 0, 3)).await;
    assert!(
        end.unwrap_err().to_string().contains("no record"),
        "nothing past the end"
    );
    println!("skipped 0, then 1 and 2; refused at the end (3)");
    topics::delete_prefixed(&brokers, &topic).await.unwrap();
}
