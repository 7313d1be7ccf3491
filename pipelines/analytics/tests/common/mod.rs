//! Shared harness of the analytics pipeline's tests on the real stack: one test's Kafka
//! world (topics under a unique prefix), its index prefix, groups and metrics port; the
//! `anineplus-analytics` binary started on them; the events of the tests; and reading the
//! results back (the stats index, the metrics, a topic's committed deltas).

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anineplus_connectors::{kafka, search};
use anineplus_schemas::events::{
    CommentData, CommentDeleted, CommentModerated, CommentPosted, CommentStatus, Envelope,
    SubscriptionCancelled, SubscriptionData, SubscriptionStarted, samples,
};
use anineplus_testkit::unique;
use anineplus_testkit::world::KafkaWorld;
use elasticsearch::http::Method;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

pub const ANIME: usize = 20;
pub const COMMENTS: usize = 4_000;
pub const SUBSCRIPTIONS: usize = 600;
pub const PLANS: [&str; 3] = ["basic", "premium", "family"];
pub const WAVES: usize = 8;
pub const KILLS: usize = 3;
/// Most records a step's commit holds when the binary runs at least once
/// (`ANALYTICS_COMMIT_RECORDS`): the at-least-once bound is counted in commits.
pub const AT_LEAST_ONCE_COMMIT_RECORDS: usize = 100;
/// 2026-12-04T10:00:00Z: every comment is created in the hour after it.
pub const HOUR: i64 = 1_796_378_400_000;

pub struct Harness {
    pub world: KafkaWorld,
    pub index_prefix: String,
    pub group_prefix: String,
    pub metrics: String,
    pub client: elasticsearch::Elasticsearch,
    pub http: reqwest::Client,
    /// Every instance started, killed when the harness drops (a failing test too), so no
    /// instance outlives its test.
    children: std::sync::Mutex<Vec<u32>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for pid in self.children.lock().map(|c| c.clone()).unwrap_or_default() {
            // Already gone for the ones the test stopped: `kill` then fails, harmlessly.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Harness {
    /// A new world, index prefix, group prefix and metrics port.
    pub async fn new() -> Self {
        let world = KafkaWorld::new("analytics").await;
        let (client, _) = world.stack.search().await.unwrap_or_else(|e| panic!("{e}"));
        Harness {
            index_prefix: unique("stats"),
            group_prefix: format!("{}-", unique("analytics")),
            metrics: format!("127.0.0.1:{}", free_port()),
            client,
            http: reqwest::Client::new(),
            children: std::sync::Mutex::new(Vec::new()),
            world,
        }
    }

    /// Where the instances' log lines go (appended, one file per test).
    pub fn log_file(&self) -> std::fs::File {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}log", self.world.topic_prefix));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The binary with `guarantee`, as instance `0`.
    pub fn spawn(&self, guarantee: &str) -> Child {
        self.spawn_as(guarantee, "0", &self.metrics)
    }

    /// The binary with `guarantee`, as instance `instance`, metrics on `metrics`.
    pub fn spawn_as(&self, guarantee: &str, instance: &str, metrics: &str) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anineplus-analytics"));
        if guarantee == "at_least_once" {
            command.env(
                "ANALYTICS_COMMIT_RECORDS",
                AT_LEAST_ONCE_COMMIT_RECORDS.to_string(),
            );
        }
        let child = command
            .env("KAFKA_BROKERS", &self.world.stack.kafka_brokers)
            .env("ELASTICSEARCH_URL", &self.world.stack.search_url)
            .env("SCHEMA_REGISTRY_URL", &self.world.stack.registry_url)
            .env("TOPIC_PREFIX", &self.world.topic_prefix)
            .env("INDEX_PREFIX", &self.index_prefix)
            .env("ANALYTICS_GROUP_PREFIX", &self.group_prefix)
            .env("ANALYTICS_GUARANTEE", guarantee)
            .env("ANALYTICS_METRICS_LISTEN", metrics)
            .env("ANALYTICS_INSTANCE", instance)
            .env("LOG_SHIPPING", "false")
            // ANALYTICS_TEST_LOG=info shows the instances' own lines (restores, aborts).
            .env(
                "RUST_LOG",
                std::env::var("ANALYTICS_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            // Each instance's log lines, for a failing test: <target tmp>/<topic prefix>log.
            .stdout(self.log_file())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start anineplus-analytics");
        self.children.lock().expect("children").push(child.id());
        child
    }
}

/// Comment `i`'s events: created (one in seven hidden), one in five hidden later (half of
/// those shown again), one in eleven deleted.
pub fn comment_events(i: usize) -> Comment {
    let id = format!("c{i:05}");
    let anime = format!("anime-{:02}", i % ANIME);
    let created_at = HOUR + (i as i64 * 797) % 3_000_000;
    let hidden_at_first = i.is_multiple_of(7);
    let posted = CommentPosted {
        comment_id: id.clone(),
        anime_id: anime.clone(),
        episode_id: None,
        author_id: "u1".into(),
        body: "nice".into(),
        status: if hidden_at_first {
            CommentStatus::Hidden
        } else {
            CommentStatus::Visible
        },
        created_at,
    };
    let moderated = |v: i64, status| {
        samples::envelope(
            "comment.moderated",
            &id,
            v,
            CommentData::CommentModerated(CommentModerated {
                comment_id: id.clone(),
                anime_id: anime.clone(),
                episode_id: None,
                status,
                reason: None,
                moderated_by: "m1".into(),
                moderated_at: created_at + 1_000,
            }),
        )
    };
    let mut events = vec![samples::envelope(
        "comment.created",
        &id,
        1,
        CommentData::CommentCreated(posted),
    )];
    let mut visible = !hidden_at_first;
    if i % 5 == 1 {
        events.push(moderated(2, CommentStatus::Hidden));
        visible = false;
        if i % 10 == 1 {
            events.push(moderated(3, CommentStatus::Visible));
            visible = true;
        }
    }
    if i % 11 == 3 {
        events.push(samples::envelope(
            "comment.deleted",
            &id,
            4,
            CommentData::CommentDeleted(CommentDeleted {
                comment_id: id.clone(),
                anime_id: anime,
                episode_id: None,
            }),
        ));
        visible = false;
    }
    (id, events, visible)
}

/// Subscription `i`'s events: started on one of the plans, one in four cancelled.
pub fn subscription_events(i: usize) -> Subscription {
    let id = format!("s{i:04}");
    let plan = PLANS[i % PLANS.len()];
    let mut events = vec![samples::envelope(
        "subscription.created",
        &id,
        1,
        SubscriptionData::SubscriptionCreated(SubscriptionStarted {
            subscription_id: id.clone(),
            user_id: format!("u{i}"),
            plan: plan.into(),
            started_at: HOUR + i as i64,
        }),
    )];
    let mut active = Some(plan);
    if i.is_multiple_of(4) {
        events.push(samples::envelope(
            "subscription.cancelled",
            &id,
            2,
            SubscriptionData::SubscriptionCancelled(SubscriptionCancelled {
                subscription_id: id.clone(),
                user_id: format!("u{i}"),
                plan: plan.into(),
                cancelled_at: HOUR + 10_000 + i as i64,
            }),
        ));
        active = None;
    }
    (id, events, active)
}

/// The counts in the stats index: `stat id → count`.
pub async fn indexed(h: &Harness) -> BTreeMap<String, i64> {
    let index = anineplus_schemas::indices::stats_index(&h.index_prefix);
    let path = format!("/{index}/_search");
    let body = json!({ "size": 1000, "query": { "match_all": {} } });
    let Ok(found) = search::call_json(&h.client, Method::Post, &path, Some(&body)).await else {
        return BTreeMap::new();
    };
    found["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|hit: &Value| {
            (
                hit["_id"].as_str().unwrap_or_default().to_owned(),
                hit["_source"]["count"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

pub async fn metric(h: &Harness, metrics: &str, name: &str, pipeline: &str) -> Option<f64> {
    let url = format!("http://{metrics}/metrics");
    let text = h.http.get(&url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("pipeline=\"{pipeline}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A comment's id, its events and whether it counts at the end.
pub type Comment = (String, Vec<Envelope<CommentData>>, bool);
/// A subscription's id, its events and its plan if it is active at the end.
pub type Subscription = (
    String,
    Vec<Envelope<SubscriptionData>>,
    Option<&'static str>,
);

/// The expected statistics of `comments` and `subscriptions`: `stat id → count`.
pub fn expected(comments: &[Comment], subscriptions: &[Subscription]) -> BTreeMap<String, i64> {
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (_, events, visible) in comments {
        let CommentData::CommentCreated(p) = &events[0].data else {
            unreachable!("a comment's first event is its creation")
        };
        let start = p.created_at.div_euclid(3_600_000) * 3_600_000;
        *expected
            .entry(format!("comments:{}:{start}", p.anime_id))
            .or_default() += i64::from(*visible);
    }
    for (_, events, active) in subscriptions {
        let SubscriptionData::SubscriptionCreated(s) = &events[0].data else {
            unreachable!("a subscription's first event is its start")
        };
        *expected.entry(format!("plan:{}", s.plan)).or_default() += i64::from(active.is_some());
    }
    expected
}

/// The tests' workload: every comment's and subscription's events, and the statistics
/// they must give.
pub struct Workload {
    pub comments: Vec<(String, Vec<Envelope<CommentData>>)>,
    pub subscriptions: Vec<(String, Vec<Envelope<SubscriptionData>>)>,
    pub expected: BTreeMap<String, i64>,
}

/// [`COMMENTS`] comments and [`SUBSCRIPTIONS`] subscriptions, with their expected counts.
pub fn workload() -> Workload {
    let comments: Vec<Comment> = (0..COMMENTS).map(comment_events).collect();
    let subscriptions: Vec<Subscription> = (0..SUBSCRIPTIONS).map(subscription_events).collect();
    let expected = expected(&comments, &subscriptions);
    Workload {
        comments: comments.into_iter().map(|(id, e, _)| (id, e)).collect(),
        subscriptions: subscriptions
            .into_iter()
            .map(|(id, e, _)| (id, e))
            .collect(),
        expected,
    }
}

/// Wave `wave` of [`WAVES`]: its share of the comments, then of the subscriptions.
pub async fn send_wave(h: &Harness, w: &Workload, wave: usize) {
    let (c, s) = (COMMENTS / WAVES, SUBSCRIPTIONS / WAVES);
    send_all(h, &w.comments[wave * c..(wave + 1) * c]).await;
    send_all(h, &w.subscriptions[wave * s..(wave + 1) * s]).await;
}

/// Produces the workload in [`WAVES`] waves 800 ms apart while the instance `child`
/// (with `guarantee`) is killed with SIGKILL [`KILLS`] times, each once it has committed
/// twice in both comment steps, and started again with the same instance id; returns the
/// instance running at the end.
pub async fn produce_while_killing(
    h: &Harness,
    w: &Workload,
    guarantee: &str,
    mut child: Child,
    started: Instant,
) -> Child {
    let send = async {
        for wave in 0..WAVES {
            send_wave(h, w, wave).await;
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        eprintln!(
            "{guarantee}: every event produced after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    };
    let kill = async {
        for n in 0..KILLS {
            wait_for_commits(h, &h.metrics, 2.0).await;
            tokio::time::sleep(Duration::from_millis(150 + 100 * n as u64)).await;
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
            eprintln!(
                "{guarantee}: SIGKILL {} at {:.1} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
            child = h.spawn(guarantee);
        }
        child
    };
    let ((), child) = tokio::join!(send, kill);
    child
}

/// Waits (at most `limit`) until the index holds exactly `expected`; returns what it holds.
pub async fn wait_for(
    h: &Harness,
    expected: &BTreeMap<String, i64>,
    limit: Duration,
) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + limit;
    let mut got = indexed(h).await;
    while got != *expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        got = indexed(h).await;
    }
    got
}

/// The differences between `expected` and `got`, one line each.
pub fn diff(expected: &BTreeMap<String, i64>, got: &BTreeMap<String, i64>) -> Vec<String> {
    let mut out: Vec<String> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: expected {v}, indexed {:?}", got.get(k)))
        .collect();
    out.extend(
        got.iter()
            .filter(|(k, _)| !expected.contains_key(*k))
            .map(|(k, v)| format!("{k}: not expected, indexed {v}")),
    );
    out
}

/// Sends every event of `entities` (each entity's in order), 64 entities at a time.
pub async fn send_all<T: anineplus_schemas::TopicValue + Sync>(
    h: &Harness,
    entities: &[(String, Vec<T>)],
) {
    use futures::StreamExt;
    futures::stream::iter(entities)
        .for_each_concurrent(64, |(id, events)| async move {
            for e in events {
                h.world.send(id, e).await;
            }
        })
        .await;
}

/// The sum of the JSON deltas per key of `topic` as a reader with `isolation` sees them
/// (`read_committed` or `read_uncommitted`), from the start to the end.
pub fn sum_of_deltas(h: &Harness, topic: &str, isolation: &str) -> BTreeMap<String, i64> {
    let mut config = kafka::consumer_config(&h.world.stack.kafka_brokers, &unique("deltas"));
    config
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation);
    let consumer: BaseConsumer = config.create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p as i32, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut open = partitions;
    let mut sums = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while open > 0 {
        assert!(Instant::now() < deadline, "reading {topic} took over 60 s");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let delta: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                *sums.entry(key).or_default() += delta["d"].as_i64().unwrap();
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    sums
}

/// Waits until the instance on `metrics` has committed `n` times in both comment steps.
pub async fn wait_for_commits(h: &Harness, metrics: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = metric(h, metrics, "pipeline_commits_total", "analytics-comments").await;
        let b = metric(
            h,
            metrics,
            "pipeline_commits_total",
            "analytics-comment-counts",
        )
        .await;
        if a.unwrap_or_default() >= n && b.unwrap_or_default() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the instance on {metrics} did not commit {n} times in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Commits aborted by the instance on `metrics`, over its four stateful steps.
pub async fn aborts(h: &Harness, metrics: &str) -> f64 {
    let mut total = 0.0;
    for p in [
        "analytics-comments",
        "analytics-comment-counts",
        "analytics-subscriptions",
        "analytics-plan-counts",
    ] {
        total += metric(h, metrics, "pipeline_aborts_total", p)
            .await
            .unwrap_or_default();
    }
    total
}
