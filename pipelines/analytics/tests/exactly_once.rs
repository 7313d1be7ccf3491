//! The analytics binary on the real stack: exact counts through `kill -9`s in
//! `exactly_once`, state restored from the changelog by each new instance.
//!
//! 4,000 comments on 20 anime (all created within one hour, so no window closes and every
//! count is exact by construction) and 600 subscriptions on three plans are produced in
//! eight waves, each comment's events in order (created visible or hidden, then perhaps
//! hidden, shown again, deleted), while the binary is killed with SIGKILL three times and
//! started again with the same instance id. At the end the stats index must hold exactly
//! the expected count per anime and per plan: a record counted twice (or lost) by any of
//! the four stateful steps would show.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anineplus_connectors::search;
use anineplus_schemas::events::{
    CommentData, CommentDeleted, CommentModerated, CommentPosted, CommentStatus, Envelope,
    SubscriptionCancelled, SubscriptionData, SubscriptionStarted, samples,
};
use anineplus_testkit::unique;
use anineplus_testkit::world::KafkaWorld;
use elasticsearch::http::Method;
use futures::StreamExt;
use serde_json::{Value, json};

const ANIME: usize = 20;
const COMMENTS: usize = 4_000;
const SUBSCRIPTIONS: usize = 600;
const PLANS: [&str; 3] = ["basic", "premium", "family"];
const WAVES: usize = 8;
const KILLS: usize = 3;
/// 2026-12-04T10:00:00Z: every comment is created in the hour after it.
const HOUR: i64 = 1_796_378_400_000;

struct Harness {
    world: KafkaWorld,
    index_prefix: String,
    group_prefix: String,
    metrics: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Harness {
    fn spawn(&self, guarantee: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_anineplus-analytics"))
            .env("KAFKA_BROKERS", &self.world.stack.kafka_brokers)
            .env("ELASTICSEARCH_URL", &self.world.stack.search_url)
            .env("SCHEMA_REGISTRY_URL", &self.world.stack.registry_url)
            .env("TOPIC_PREFIX", &self.world.topic_prefix)
            .env("INDEX_PREFIX", &self.index_prefix)
            .env("ANALYTICS_GROUP_PREFIX", &self.group_prefix)
            .env("ANALYTICS_GUARANTEE", guarantee)
            .env("ANALYTICS_METRICS_LISTEN", &self.metrics)
            .env("LOG_SHIPPING", "false")
            // ANALYTICS_TEST_LOG=info shows the instances' own lines (restores, aborts).
            .env(
                "RUST_LOG",
                std::env::var("ANALYTICS_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start anineplus-analytics")
    }
}

fn comment_events(i: usize) -> (String, Vec<Envelope<CommentData>>, bool) {
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

fn subscription_events(
    i: usize,
) -> (
    String,
    Vec<Envelope<SubscriptionData>>,
    Option<&'static str>,
) {
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
async fn indexed(h: &Harness, client: &elasticsearch::Elasticsearch) -> BTreeMap<String, i64> {
    let index = anineplus_schemas::indices::stats_index(&h.index_prefix);
    let path = format!("/{index}/_search");
    let body = json!({ "size": 1000, "query": { "match_all": {} } });
    let Ok(found) = search::call_json(client, Method::Post, &path, Some(&body)).await else {
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

async fn metric(http: &reqwest::Client, url: &str, name: &str, pipeline: &str) -> Option<f64> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("pipeline=\"{pipeline}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_with_sigkill_mid_stream_exactly_once_counts_every_comment_and_subscription_once() {
    let world = KafkaWorld::new("analytics").await;
    let (client, _) = world.stack.search().await.unwrap_or_else(|e| panic!("{e}"));
    let h = Harness {
        index_prefix: unique("stats"),
        group_prefix: format!("{}-", unique("analytics")),
        metrics: format!("127.0.0.1:{}", free_port()),
        world,
    };
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let comments: Vec<_> = (0..COMMENTS).map(comment_events).collect();
    for (_, events, visible) in &comments {
        let CommentData::CommentCreated(p) = &events[0].data else {
            unreachable!()
        };
        *expected
            .entry(format!("comments:{}:{HOUR}", p.anime_id))
            .or_default() += i64::from(*visible);
    }
    let subscriptions: Vec<_> = (0..SUBSCRIPTIONS).map(subscription_events).collect();
    for plan in PLANS {
        expected.insert(format!("plan:{plan}"), 0);
    }
    for (_, _, active) in &subscriptions {
        if let Some(plan) = active {
            *expected.get_mut(&format!("plan:{plan}")).unwrap() += 1;
        }
    }
    let started = Instant::now();
    let mut child = h.spawn("exactly_once");
    let h_ref = &h;
    let send = async {
        let per_wave = COMMENTS / WAVES;
        for wave in 0..WAVES {
            futures::stream::iter(&comments[wave * per_wave..(wave + 1) * per_wave])
                .for_each_concurrent(64, |(id, events, _)| async move {
                    for e in events {
                        h_ref.world.send(id, e).await;
                    }
                })
                .await;
            let subs = SUBSCRIPTIONS / WAVES;
            futures::stream::iter(&subscriptions[wave * subs..(wave + 1) * subs])
                .for_each_concurrent(64, |(id, events, _)| async move {
                    for e in events {
                        h_ref.world.send(id, e).await;
                    }
                })
                .await;
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        eprintln!(
            "analytics: every event produced after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    };
    let http = reqwest::Client::new();
    let url = format!("http://{}/metrics", h.metrics);
    let kill = async {
        for n in 0..KILLS {
            // Kill an instance that is working: it has committed twice in both comment steps.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let a = metric(&http, &url, "pipeline_commits_total", "analytics-comments").await;
                let b = metric(
                    &http,
                    &url,
                    "pipeline_commits_total",
                    "analytics-comment-counts",
                )
                .await;
                if a.unwrap_or_default() >= 2.0 && b.unwrap_or_default() >= 2.0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "instance {} never committed",
                    n + 1
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(150 + 100 * n as u64)).await;
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
            eprintln!(
                "analytics: SIGKILL {} at {:.1} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
            child = h_ref.spawn("exactly_once");
        }
    };
    tokio::join!(send, kill);

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = indexed(&h, &client).await;
    while got != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        got = indexed(&h, &client).await;
    }
    let restored = metric(
        &http,
        &url,
        "pipeline_state_restored_records_total",
        "analytics-comments",
    )
    .await;
    let aborts: f64 = futures::future::join_all(
        [
            "analytics-comments",
            "analytics-comment-counts",
            "analytics-subscriptions",
            "analytics-plan-counts",
        ]
        .map(|p| metric(&http, &url, "pipeline_aborts_total", p)),
    )
    .await
    .into_iter()
    .flatten()
    .sum();
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let diff: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: expected {v}, indexed {:?}", got.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "counts differ after {KILLS} SIGKILLs:\n{}",
        diff.join("\n")
    );
    assert_eq!(got.len(), expected.len(), "no other statistic: {got:?}");
    eprintln!(
        "analytics: {} statistics exact after {KILLS} SIGKILLs, {:.1} s; the last instance restored {:?} changelog records of analytics-comments; {aborts} commits aborted",
        expected.len(),
        started.elapsed().as_secs_f64(),
        restored
    );
    assert!(
        restored.unwrap_or_default() > 0.0,
        "the last instance restored the comments' state from the changelog"
    );
    h.world.delete_topics().await;
}
