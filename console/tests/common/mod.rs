//! Shared harness of the console's tests: the indexer's harness (a Kafka world of the
//! test's own, an in-process indexer), a database of the test's own, and the console
//! served in this process on port 0 watching that indexer.

#![allow(dead_code, unreachable_pub)]

#[path = "../../../pipelines/indexer/tests/common/mod.rs"]
pub mod indexer;

use std::time::Duration;

use anineplus_api::auth::jwt::TokenAuthority;
use anineplus_api::domain::Role;
use anineplus_console::config::GroupSpec;
use anineplus_console::{ConsoleConfig, PipelineSpec};
use anineplus_schemas::Topic;
use anineplus_streams::dead_letter::header as h;
use anineplus_testkit::TestDatabase;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use indexer::Harness;

/// The JWT secret of the console and of the API served in the tests (`--env dev`).
pub const SECRET: &[u8] = anineplus_api::config::DEV_JWT_SECRET.as_bytes();

/// A console served in this process.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its database.
    pub pool: PgPool,
    /// Its configuration.
    pub config: ConsoleConfig,
    shutdown: CancellationToken,
    task: JoinHandle<anineplus_console::Result<()>>,
}

impl Served {
    /// Stops it and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("console stops within 30 s")
            .expect("console task")
            .expect("console ran without error");
        self.pool.close().await;
    }
}

/// A token of the "API" for a new user with `role`.
pub fn token(role: Role) -> String {
    TokenAuthority::hs256(SECRET, "anineplus", "anineplus-api", 600)
        .issue(uuid::Uuid::new_v4(), role)
        .unwrap()
}

/// The console's configuration for the harness's indexer (metrics at `metrics`), signing
/// in through the API at `api_url`.
pub fn config(
    t: &Harness,
    db: &TestDatabase,
    metrics: std::net::SocketAddr,
    api_url: &str,
) -> ConsoleConfig {
    ConsoleConfig {
        api_url: api_url.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        kafka_brokers: t.stack.kafka_brokers.clone(),
        schema_registry_url: t.stack.registry_url.clone(),
        database_url: db.url.clone(),
        topic_prefix: t.topic_prefix.clone(),
        pipelines: vec![PipelineSpec {
            name: "indexer".into(),
            metrics_url: format!("http://{metrics}"),
            groups: vec![GroupSpec {
                group: t.group.clone(),
                topics: vec!["anime".into()],
            }],
        }],
        jwt_secret: String::from_utf8(SECRET.to_vec()).unwrap(),
        jwt_issuer: "anineplus".into(),
        jwt_audience: "anineplus-api".into(),
        session_ttl: Duration::from_secs(600),
        poll_interval: Duration::from_millis(500),
        secure_cookies: false,
        default_rate: 50,
        search_url: t.stack.search_url.clone(),
        index_prefix: t.index_prefix.clone(),
    }
}

/// Serves the console with `config`.
pub async fn serve(config: ConsoleConfig) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let pool = anineplus_console::connect(&config.database_url)
        .await
        .unwrap();
    let task = tokio::spawn(anineplus_console::serve(
        config.clone(),
        listener,
        shutdown.clone(),
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut last = String::new();
    for _ in 0..100 {
        if task.is_finished() {
            panic!("the console stopped during start-up: {:?}", task.await);
        }
        match http.get(format!("{url}/health")).send().await {
            Ok(r) if r.status().is_success() => {
                return Served {
                    url,
                    pool,
                    config,
                    shutdown,
                    task,
                };
            }
            Ok(r) => last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the console did not answer /health within 10 s: {last}");
}

/// Writes `n` dead letters by hand as the indexer writes one whose retries ran out while
/// the search engine was down: good events of anime `<prefix>-<i>` (so, the engine being
/// back, a redrive indexes them), each message with its own numbers.
pub async fn outage_letters(t: &Harness, prefix: &str, n: usize) -> Vec<String> {
    let producer = anineplus_connectors::kafka::Producer::new(&t.stack.kafka_brokers).unwrap();
    let anime_topic = t.topic(Topic::Anime);
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let bytes = t
            .codec
            .encode(&indexer::anime(&id, 1, &format!("Title {i}")))
            .await
            .unwrap();
        let message = format!(
            "sink: unavailable: connection refused to 127.0.0.1:9{i}00 after {} attempts",
            3 + i
        );
        let at = (anineplus_streams::dead_letter::now_ms()).to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: h::ORIGINAL_TOPIC,
                value: Some(anime_topic.as_str()),
            })
            .insert(Header {
                key: h::ORIGINAL_PARTITION,
                value: Some("0"),
            })
            .insert(Header {
                key: h::ORIGINAL_OFFSET,
                value: Some(&i.to_string()),
            })
            .insert(Header {
                key: h::PIPELINE,
                value: Some("indexer"),
            })
            .insert(Header {
                key: h::ERROR_CLASS,
                value: Some("retryable"),
            })
            .insert(Header {
                key: h::ERROR_MESSAGE,
                value: Some(&message),
            })
            .insert(Header {
                key: h::ATTEMPTS,
                value: Some("4"),
            })
            .insert(Header {
                key: h::FIRST_FAILURE,
                value: Some(&at),
            })
            .insert(Header {
                key: h::LAST_FAILURE,
                value: Some(&at),
            });
        producer
            .send(
                FutureRecord::to(&t.dlq())
                    .key(&id)
                    .payload(&bytes)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        ids.push(id);
    }
    ids
}

/// Waits until the console's index holds `n` dead letters of the test's topic.
pub async fn wait_indexed(pool: &PgPool, topic: &str, n: i64) {
    let mut seen = 0;
    for _ in 0..300 {
        seen = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM console_dead_letters WHERE topic = $1",
        )
        .bind(topic)
        .fetch_one(pool)
        .await
        .unwrap();
        if seen >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the index holds {seen} dead letters of {topic}, not {n}, after 60 s");
}
