//! The console at scale, on the real stack: `BENCH_DEAD_LETTERS` (100,000) dead letters of
//! 20 causes (messages with their own numbers) in a 3-partition dead-letter topic of the
//! benchmark's own; the console's consumer indexes them into PostgreSQL, then the group page
//! and a group's letters page are loaded 10 times each through HTTP with a session.
//!
//! Figures: `console_index_letters_per_s` (topic → index, from the first produce to the last
//! row), `console_group_page_ms_p50` / `_max` and `console_letters_page_ms_p50` (server time
//! as a client sees it, over loopback). Run by `make bench` (`cargo bench -p
//! anineplus-console --bench dead_letters` alone).

use std::time::{Duration, Instant};

use anineplus_api::auth::jwt::TokenAuthority;
use anineplus_api::domain::Role;
use anineplus_console::config::GroupSpec;
use anineplus_console::{ConsoleConfig, PipelineSpec};
use anineplus_streams::dead_letter::header as h;
use anineplus_testkit::{Stack, TestDatabase, bench, topics, unique};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

const SECRET: &str = "console-bench-secret-console-bench-secret";

async fn produce(brokers: &str, topic: &str, n: usize) {
    let producer = anineplus_connectors::kafka::Producer::create(
        anineplus_connectors::kafka::producer_config(brokers).set("linger.ms", "20"),
    )
    .unwrap();
    let mut pending = FuturesUnordered::new();
    for i in 0..n {
        let producer = producer.clone();
        let topic = topic.to_owned();
        pending.push(async move {
            let cause = i % 20;
            let message = format!(
                "sink: status 400: cause {cause} in document {i} at offset {}",
                i * 7
            );
            let at = (1_796_000_000_000 + i as i64).to_string();
            let key = format!("k-{i}");
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: h::ORIGINAL_TOPIC,
                    value: Some("anime"),
                })
                .insert(Header {
                    key: h::PIPELINE,
                    value: Some("bench"),
                })
                .insert(Header {
                    key: h::ERROR_CLASS,
                    value: Some(if cause % 2 == 0 {
                        "permanent"
                    } else {
                        "retryable"
                    }),
                })
                .insert(Header {
                    key: h::ERROR_MESSAGE,
                    value: Some(&message),
                })
                .insert(Header {
                    key: h::ATTEMPTS,
                    value: Some("1"),
                })
                .insert(Header {
                    key: h::LAST_FAILURE,
                    value: Some(&at),
                });
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&key)
                        .payload(b"value")
                        .headers(headers),
                    Duration::from_secs(60),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        });
        if pending.len() >= 5_000 {
            while let Some(sent) = pending.next().await {
                sent.expect("produce");
            }
        }
    }
    while let Some(sent) = pending.next().await {
        sent.expect("produce");
    }
}

async fn timed(http: &reqwest::Client, url: &str, cookie: &str, want: &str) -> f64 {
    let started = Instant::now();
    let page = http.get(url).header("cookie", cookie).send().await.unwrap();
    assert!(page.status().is_success(), "{url}: {}", page.status());
    let body = page.text().await.unwrap();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(body.contains(want), "{url} lacks {want:?}");
    ms
}

#[tokio::main]
async fn main() {
    let n = bench::size("BENCH_DEAD_LETTERS", 100_000);
    let stack = Stack::from_env();
    stack.kafka().await.unwrap_or_else(|e| panic!("{e}"));
    let db = TestDatabase::create("console_bench").await;
    let prefix = format!("{}.", unique("b"));
    let topic = format!("{prefix}bench.dlq");
    topics::create(&stack.kafka_brokers, &topic, 3)
        .await
        .unwrap();
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_brokers: stack.kafka_brokers.clone(),
        schema_registry_url: stack.registry_url.clone(),
        database_url: db.url.clone(),
        topic_prefix: prefix.clone(),
        pipelines: vec![PipelineSpec {
            name: "bench".into(),
            metrics_url: "http://127.0.0.1:9".into(),
            groups: vec![GroupSpec {
                group: unique("bench"),
                topics: vec!["bench.dlq".into()],
            }],
        }],
        api_url: "http://127.0.0.1:9".into(),
        jwt_secret: SECRET.into(),
        jwt_issuer: "anineplus".into(),
        jwt_audience: "anineplus-api".into(),
        session_ttl: Duration::from_secs(600),
        poll_interval: Duration::from_secs(5),
        secure_cookies: false,
        default_rate: 100,
        search_url: anineplus_connectors::search::DEFAULT_URL.to_owned(),
        index_prefix: anineplus_schemas::indices::DEFAULT_PREFIX.to_owned(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(anineplus_console::serve(config, listener, shutdown.clone()));
    let pool = anineplus_console::connect(&db.url).await.unwrap();

    let started = Instant::now();
    produce(&stack.kafka_brokers, &topic, n).await;
    let mut indexed = 0;
    while indexed < n as i64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "indexed {indexed} of {n} in 10 min"
        );
        if task.is_finished() {
            panic!("the console stopped: {:?}", task.await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        indexed = sqlx::query_scalar("SELECT count(*) FROM console_dead_letters")
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    let index_rate = n as f64 / started.elapsed().as_secs_f64();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = TokenAuthority::hs256(SECRET.as_bytes(), "anineplus", "anineplus-api", 600)
        .issue(uuid::Uuid::new_v4(), Role::Operator)
        .unwrap();
    let signed = http
        .post(format!("{url}/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let groups_url = format!("{url}/dead-letters?pipeline=bench");
    let mut group_ms = Vec::new();
    for _ in 0..10 {
        group_ms.push(
            timed(
                &http,
                &groups_url,
                &cookie,
                "sink: status &lt;n&gt;: cause &lt;n&gt;",
            )
            .await,
        );
    }
    let fingerprint = "permanent: sink: status <n>: cause <n> in document <n> at offset <n>";
    let letters_url = format!(
        "{url}/dead-letters/list?pipeline=bench&fingerprint={}",
        anineplus_console::html::query_escape(fingerprint)
    );
    let mut letters_ms = Vec::new();
    for _ in 0..10 {
        letters_ms.push(timed(&http, &letters_url, &cookie, "k-").await);
    }
    let max = group_ms.iter().copied().fold(0.0, f64::max);
    println!(
        "console: {n} dead letters indexed at {index_rate:.0}/s; group page p50 {:.1} ms",
        bench::median(group_ms.clone())
    );
    bench::record(&[
        ("console_index_letters_per_s", index_rate),
        ("console_group_page_ms_p50", bench::median(group_ms)),
        ("console_group_page_ms_max", max),
        ("console_letters_page_ms_p50", bench::median(letters_ms)),
    ])
    .unwrap();

    shutdown.cancel();
    let _ = task.await;
    pool.close().await;
    topics::delete_prefixed(&stack.kafka_brokers, &prefix)
        .await
        .unwrap();
    db.remove().await;
}
