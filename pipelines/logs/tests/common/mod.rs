//! Shared harness of the log pipeline's integration tests: the Kafka world of
//! [`anineplus_testkit::world`] (its `logs` topic has 3 partitions), a unique index prefix
//! and archive folder per test, both pipelines in-process or as the `anineplus-logs`
//! binary, and helpers to read the index and the archive back.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anineplus_connectors::search;
use anineplus_logs::{self as logs, ArchiveConfig, Common, IndexConfig};
use anineplus_schemas::Topic;
use anineplus_schemas::events::{LogLevel, LogRecord};
use anineplus_streams::dead_letter::RetryPolicy;
use anineplus_testkit::unique;
use anineplus_testkit::world::KafkaWorld;
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// 2026-12-04T00:00:00Z: records just before it belong to the 3rd, from it to the 4th.
pub const MIDNIGHT: i64 = 1_796_342_400_000;

pub fn record(
    service: &str,
    timestamp: i64,
    correlation: Option<&str>,
    message: &str,
) -> LogRecord {
    LogRecord {
        level: LogLevel::Info,
        timestamp,
        service: service.to_owned(),
        trace_id: None,
        correlation_id: correlation.map(str::to_owned),
        message: message.to_owned(),
        context: BTreeMap::from([("target".to_owned(), format!("{service}::test"))]),
    }
}

pub struct World {
    pub kafka: KafkaWorld,
    pub search: Elasticsearch,
    pub prefix: String,
    pub archive_dir: PathBuf,
    pub archive_group: String,
}

impl Deref for World {
    type Target = KafkaWorld;

    fn deref(&self) -> &KafkaWorld {
        &self.kafka
    }
}

pub struct Running {
    pub shutdown: CancellationToken,
    task: JoinHandle<anineplus_streams::Result<()>>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the pipeline stops within 60 s")
            .expect("pipeline task")
            .expect("the pipeline ran without error");
    }
}

impl World {
    pub async fn new() -> Self {
        let kafka = KafkaWorld::new("logs").await;
        let (search, _) = kafka.stack.search().await.unwrap_or_else(|e| panic!("{e}"));
        let prefix = unique("lg");
        let archive_dir = std::env::temp_dir().join(unique("log-archive"));
        World {
            archive_group: format!("{}-archive", kafka.group),
            kafka,
            search,
            prefix,
            archive_dir,
        }
    }

    pub fn logs_topic(&self) -> String {
        self.topic(Topic::Logs)
    }

    pub fn common(&self, group: &str) -> Common {
        Common {
            kafka_brokers: self.stack.kafka_brokers.clone(),
            schema_registry_url: self.stack.registry_url.clone(),
            group: group.to_owned(),
            topic_prefix: self.topic_prefix.clone(),
            metrics_listen: "127.0.0.1:0".parse().unwrap(),
            topic_replication: -1,
            retry: RetryPolicy {
                in_place_attempts: 2,
                in_place_min_delay: Duration::from_millis(50),
                in_place_max_delay: Duration::from_millis(200),
                delays: vec![Duration::from_secs(1)],
            },
            retention_days: None,
        }
    }

    pub fn index_config(&self, group: &str) -> IndexConfig {
        IndexConfig {
            common: self.common(group),
            elasticsearch_url: self.stack.search_url.clone(),
            index_prefix: self.prefix.clone(),
            bulk_docs: 2000,
            bulk_bytes: 5 * 1024 * 1024,
        }
    }

    pub fn archive_config(
        &self,
        group: &str,
        interval: Duration,
        max_records: usize,
    ) -> ArchiveConfig {
        ArchiveConfig {
            common: self.common(group),
            dir: self.archive_dir.clone(),
            max_records,
            max_bytes: 16 * 1024 * 1024,
            interval,
        }
    }

    pub async fn start_index(&self, group: &str) -> Running {
        let shutdown = CancellationToken::new();
        let (pipeline, _) = logs::prepare_index(&self.index_config(group), &shutdown)
            .await
            .expect("log index set-up");
        Running {
            task: tokio::spawn(pipeline.run(shutdown.clone())),
            shutdown,
        }
    }

    pub async fn start_archive(
        &self,
        group: &str,
        interval: Duration,
        max_records: usize,
    ) -> Running {
        let shutdown = CancellationToken::new();
        let config = self.archive_config(group, interval, max_records);
        let (pipeline, _) = logs::prepare_archive(&config, &shutdown)
            .await
            .expect("log archive set-up");
        Running {
            task: tokio::spawn(pipeline.run(shutdown.clone())),
            shutdown,
        }
    }

    /// `anineplus-logs <subcommand>` on this test's topics, indices and folder.
    pub fn spawn(&self, subcommand: &str, group: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_anineplus-logs"))
            .arg(subcommand)
            .env("KAFKA_BROKERS", &self.stack.kafka_brokers)
            .env("ELASTICSEARCH_URL", &self.stack.search_url)
            .env("SCHEMA_REGISTRY_URL", &self.stack.registry_url)
            .env("TOPIC_PREFIX", &self.topic_prefix)
            .env("LOG_INDEX_GROUP", group)
            .env("LOG_ARCHIVE_GROUP", group)
            .env("LOG_INDEX_PREFIX", &self.prefix)
            .env("LOG_ARCHIVE_DIR", &self.archive_dir)
            .env("LOG_INDEX_METRICS_LISTEN", "127.0.0.1:0")
            .env("LOG_ARCHIVE_METRICS_LISTEN", "127.0.0.1:0")
            .env("LOG_ARCHIVE_FILE_INTERVAL", "1s")
            .env("LOG_ARCHIVE_FILE_RECORDS", "2000")
            .env("LOG_SHIPPING", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start anineplus-logs")
    }

    /// Runs an `anineplus-logs` command to its end: (success, stdout, stderr).
    pub fn command(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_anineplus-logs"))
            .args(args)
            .env("ELASTICSEARCH_URL", &self.stack.search_url)
            .env("LOG_INDEX_PREFIX", &self.prefix)
            .output()
            .expect("run anineplus-logs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        search::call_json(&self.search, method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The log indices of this test and their document counts (after a refresh).
    pub async fn indices(&self) -> BTreeMap<String, i64> {
        self.call(
            Method::Post,
            &format!("/{}-*/_refresh?allow_no_indices=true", self.prefix),
            None,
        )
        .await;
        let rows = self
            .call(
                Method::Get,
                &format!(
                    "/_cat/indices/{}-*?format=json&h=index,docs.count",
                    self.prefix
                ),
                None,
            )
            .await;
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["index"].as_str().unwrap().to_owned(),
                    r["docs.count"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// Every document of this test's indices (at most 10,000).
    pub async fn documents(&self) -> Vec<Value> {
        self.indices().await;
        let body = json!({"size": 10_000, "query": {"match_all": {}}});
        let found = self
            .call(
                Method::Post,
                &format!("/{}-*/_search", self.prefix),
                Some(&body),
            )
            .await;
        found["hits"]["hits"].as_array().unwrap().clone()
    }

    /// Documents under this test's prefix, counted (after a refresh).
    pub async fn count(&self) -> i64 {
        self.indices().await.values().sum()
    }

    /// Waits until the indices hold `n` documents (the count only grows: ids are fixed).
    pub async fn wait_count(&self, n: i64, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let count = self.count().await;
            if count >= n {
                assert_eq!(count, n, "more documents than records");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} of {n} documents"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every finished archive file: (path relative to the root, its lines).
    pub fn archived(&self) -> Vec<(String, Vec<Value>)> {
        let mut out = Vec::new();
        walk(&self.archive_dir, &self.archive_dir, &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub async fn delete_indices(&self) {
        let _ = search::call_json(
            &self.search,
            Method::Delete,
            &format!("/{}-*?allow_no_indices=true", self.prefix),
            None,
        )
        .await;
        let _ = search::call_json(
            &self.search,
            Method::Delete,
            &format!("/_index_template/{}", self.prefix),
            None,
        )
        .await;
    }

    pub async fn clean(&self) {
        self.delete_indices().await;
        let _ = std::fs::remove_dir_all(&self.archive_dir);
        self.delete_topics().await;
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<Value>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".ndjson.gz") {
            continue;
        }
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        out.push((
            path.strip_prefix(root).unwrap().display().to_string(),
            lines,
        ));
    }
}

/// (partition, offset) of every archived line, with how often each appears.
pub fn archived_offsets(files: &[(String, Vec<Value>)]) -> BTreeMap<(i64, i64), usize> {
    let mut seen = BTreeMap::new();
    for (_, lines) in files {
        for line in lines {
            let at = (
                line["kafka"]["partition"].as_i64().unwrap(),
                line["kafka"]["offset"].as_i64().unwrap(),
            );
            *seen.entry(at).or_insert(0) += 1;
        }
    }
    seen
}
