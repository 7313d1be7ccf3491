//! The outbox relay under a large backlog (catch-up after an outage, heavy load), on real
//! PostgreSQL and Kafka, with relays run in this process (each on a pool of its own, named
//! by `application_name`, so the test can find and kill its lock session).
//!
//! - A relay whose lock session is terminated (`pg_terminate_backend`) while it works
//!   through full batches stops publishing (at most the batch already handed to Kafka
//!   completes) until it takes the lock again.
//! - With two relays, after the leader's session is lost only one of them publishes.
//! - Published rows are pruned during the catch-up, not only once it is over.
//! - Notifications of writes made during the catch-up do not pile up into one empty pass
//!   each afterwards.

mod common;

use std::str::FromStr;
use std::time::Duration;

use anineplus_api::metrics::Metrics;
use anineplus_api::outbox::OutboxRelay;
use anineplus_api::outbox::relay::{LEADER_LOCK, RelaySettings};
use anineplus_schemas::{Codec, Topic};
use anineplus_testkit::{Stack, TestDatabase, unique};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 20;
const BACKLOG: i64 = 20_000;

/// A database with the API's schema and `rows` unpublished anime events.
async fn outbox_with_backlog(rows: i64) -> (TestDatabase, PgPool) {
    let db = TestDatabase::create("api_relay").await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    anineplus_api::MIGRATOR.run(&pool).await.unwrap();
    insert_rows(&pool, rows).await;
    (db, pool)
}

async fn insert_rows(pool: &PgPool, rows: i64) {
    let payload =
        serde_json::to_value(anineplus_schemas::events::samples::anime_updated(1)).unwrap();
    sqlx::query(
        "INSERT INTO outbox (topic, aggregate_id, aggregate_version, event_type, payload) \
         SELECT 'anime', gen_random_uuid()::text, 1, 'anime.updated', $1 \
         FROM generate_series(1, $2)",
    )
    .bind(payload)
    .bind(rows)
    .execute(pool)
    .await
    .unwrap();
}

/// One relay, publishing under `topic_prefix`.
struct Relay {
    metrics: Metrics,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(
        db: &TestDatabase,
        name: &str,
        topic_prefix: &str,
        tune: impl FnOnce(&mut RelaySettings),
    ) -> Self {
        let stack = Stack::from_env();
        let options = PgConnectOptions::from_str(&db.url)
            .unwrap()
            .application_name(name);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        let codec = Codec::new(&stack.registry_url);
        codec.register(Topic::Anime).await.unwrap();
        let producer = anineplus_connectors::kafka::Producer::new(&stack.kafka_brokers).unwrap();
        let mut settings = RelaySettings {
            topic_prefix: topic_prefix.to_owned(),
            batch: BATCH,
            poll: Duration::from_millis(200),
            retention_secs: 3600,
            prune_every: Duration::from_secs(60),
            drain: Duration::from_secs(1),
        };
        tune(&mut settings);
        let metrics = Metrics::new();
        let stop = CancellationToken::new();
        let relay = OutboxRelay::new(pool, producer, codec, settings, metrics.clone());
        let task = tokio::spawn(relay.run(stop.clone()));
        Self {
            metrics,
            stop,
            task,
        }
    }

    fn published(&self) -> u64 {
        self.metrics.relay_published.get()
    }

    async fn wait_published(&self, at_least: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.published() < at_least {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} published after 60 s",
                self.published()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// The backend pid holding the leader lock for the relay called `name`.
async fn lock_session_of(pool: &PgPool, name: &str) -> i32 {
    sqlx::query_scalar(
        "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1 \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((l.classid::bigint << 32) | l.objid::bigint) = $2",
    )
    .bind(name)
    .bind(LEADER_LOCK)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("{name} holds no leader lock: {e}"))
}

async fn terminate(pool: &PgPool, pid: i32) {
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(done, "pg_terminate_backend({pid})");
}

/// `(unpublished, all)` outbox rows.
async fn counts(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_empty(pool: &PgPool, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (pending, _) = counts(pool).await;
        if pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} rows unpublished after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cleanup(db: TestDatabase, pool: PgPool, topic_prefix: &str) {
    pool.close().await;
    common::delete_topics(&Stack::from_env(), topic_prefix).await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_lock_session_is_lost_stops_publishing_until_it_reacquires() {
    let (db, pool) = outbox_with_backlog(BACKLOG).await;
    let prefix = format!("{}.", unique("relaytest"));
    let relay = Relay::start(&db, "relay-a", &prefix, |_| {}).await;
    relay.wait_published(1_000).await;

    // Its lock session dies; the test takes the lock at once (as another instance would)
    // and holds it for 3 s.
    let pid = lock_session_of(&pool, "relay-a").await;
    let mut other = pool.acquire().await.unwrap();
    terminate(&pool, pid).await;
    let at_loss = relay.published();
    tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .execute(&mut *other),
    )
    .await
    .expect("the lost session's lock is free")
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let while_other_leads = relay.published() - at_loss;
    let (pending, _) = counts(&pool).await;
    eprintln!("published after the lock session was lost: {while_other_leads} rows");
    // The batch in flight completes; so may, rarely, one whose lock check the server
    // answered just before it acted on the termination signal. Nothing after that.
    assert!(
        while_other_leads <= 2 * BATCH as u64,
        "after its lock session was terminated the relay published {while_other_leads} more \
         rows ({pending} still pending) while another session held the leader lock; at most \
         the batch in flight ({BATCH} rows) may complete"
    );

    // The lock is free again: the relay takes it back and finishes.
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LEADER_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    drop(other);
    wait_empty(&pool, Duration::from_secs(120)).await;
    assert!(relay.published() >= BACKLOG as u64);
    relay.stop().await;
    cleanup(db, pool, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_never_publish_at_once() {
    let (db, pool) = outbox_with_backlog(BACKLOG).await;
    let prefix = format!("{}.", unique("relaytest"));
    let a = Relay::start(&db, "relay-a", &prefix, |_| {}).await;
    a.wait_published(1_000).await;
    let b = Relay::start(&db, "relay-b", &prefix, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(b.published(), 0, "B publishes while A holds the lock");

    // A's lock session dies mid catch-up: from then on, one of them leads.
    let pid = lock_session_of(&pool, "relay-a").await;
    terminate(&pool, pid).await;
    let (a0, b0) = (a.published(), b.published());
    wait_empty(&pool, Duration::from_secs(120)).await;
    let (da, db_) = (a.published() - a0, b.published() - b0);
    eprintln!("after the loss: A published {da} rows, B {db_} rows");
    assert!(
        da.min(db_) <= 2 * BATCH as u64,
        "after the leader's lock session was lost both relays published: A {da} rows, B {db_} \
         rows (at most the batch in flight, {BATCH}, may complete on the old leader)"
    );
    a.stop().await;
    b.stop().await;
    cleanup(db, pool, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_rows_are_pruned_during_catch_up() {
    let (db, pool) = outbox_with_backlog(BACKLOG).await;
    let prefix = format!("{}.", unique("relaytest"));
    let relay = Relay::start(&db, "relay-a", &prefix, |s| {
        s.retention_secs = 0;
        s.prune_every = Duration::from_secs(1);
    })
    .await;
    let mut pruned_during_backlog = None;
    loop {
        let (pending, all) = counts(&pool).await;
        if pending == 0 {
            break;
        }
        if all < BACKLOG {
            pruned_during_backlog = Some((BACKLOG - all, pending));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = relay.published();
    let (pruned, pending) = pruned_during_backlog.unwrap_or_else(|| {
        panic!(
            "no row was pruned during the catch-up of {BACKLOG} rows (pruning every 1 s, \
             retention 0 s): {published} published before the backlog was empty"
        )
    });
    eprintln!("{pruned} rows pruned while {pending} were still pending");
    assert!(pruned > 0 && pending > 0);
    wait_empty(&pool, Duration::from_secs(120)).await;
    relay.stop().await;
    cleanup(db, pool, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_do_not_pile_up_during_catch_up() {
    const WRITES: usize = 1_000;
    let (db, pool) = outbox_with_backlog(BACKLOG).await;
    let prefix = format!("{}.", unique("relaytest"));
    let relay = Relay::start(&db, "relay-a", &prefix, |s| s.poll = Duration::from_secs(1)).await;
    relay.wait_published(100).await;
    // Writes during the catch-up, one transaction (and one NOTIFY) each.
    let payload =
        serde_json::to_value(anineplus_schemas::events::samples::anime_updated(1)).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (pool, payload) = (pool.clone(), payload.clone());
            tokio::spawn(async move {
                for _ in 0..WRITES / 4 {
                    sqlx::query(
                        "WITH appended AS (INSERT INTO outbox (topic, aggregate_id, \
                         aggregate_version, event_type, payload) VALUES ('anime', \
                         gen_random_uuid()::text, 1, 'anime.updated', $1) RETURNING id) \
                         SELECT pg_notify($2, '') FROM appended",
                    )
                    .bind(&payload)
                    .bind(anineplus_api::outbox::CHANNEL)
                    .execute(&pool)
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let (pending, _) = counts(&pool).await;
    assert!(
        pending > 1_000,
        "the writes ended during the catch-up ({pending} pending)"
    );
    wait_empty(&pool, Duration::from_secs(120)).await;
    let reads_at_empty = relay.metrics.relay_reads.get();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_reads = relay.metrics.relay_reads.get() - reads_at_empty;
    eprintln!("{idle_reads} outbox reads in the 3 s after the catch-up");
    assert!(
        idle_reads <= 6,
        "{idle_reads} outbox reads in the 3 s after the catch-up (poll every 1 s): the \
         notifications of {WRITES} writes piled up into one pass each"
    );
    relay.stop().await;
    cleanup(db, pool, &prefix).await;
}

/// An outbox row that can never be published (its payload does not fit its topic's schema,
/// it names no topic the API writes, or Kafka refuses the record for its size) is parked with its reason, and every row after it
/// is still published: one bad row never blocks the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublishable_row_is_parked_and_the_rows_after_it_are_published() {
    let (db, pool) = outbox_with_backlog(0).await;
    let mut huge = anineplus_schemas::events::samples::anime_updated(2);
    if let anineplus_schemas::events::AnimeData::AnimeUpdated(state) = &mut huge.data {
        state.synopsis = Some("x".repeat(2 << 20)); // above Kafka's 1 MiB record limit
    }
    for (topic, payload) in [
        ("anime", serde_json::json!({"broken": true})),
        ("no-such-topic", serde_json::json!({})),
        ("anime", serde_json::to_value(huge).unwrap()),
    ] {
        sqlx::query(
            "INSERT INTO outbox (topic, aggregate_id, aggregate_version, event_type, payload) \
             VALUES ($1, 'bad', 1, 'anime.updated', $2)",
        )
        .bind(topic)
        .bind(payload)
        .execute(&pool)
        .await
        .unwrap();
    }
    insert_rows(&pool, 5).await;
    let prefix = format!("{}.", unique("relaytest"));
    let relay = Relay::start(&db, "relay-a", &prefix, |_| {}).await;
    relay.wait_published(5).await;
    let parked: Vec<(String, String)> = sqlx::query_as(
        "SELECT topic, failure FROM outbox WHERE failed_at IS NOT NULL \
         AND published_at IS NULL ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let reasons: Vec<&str> = parked.iter().map(|(_, r)| r.as_str()).collect();
    eprintln!("parked: {reasons:?}");
    assert_eq!(parked.len(), 3, "every bad row parked: {reasons:?}");
    assert!(
        reasons[0].contains("does not fit the anime schema"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("no-such-topic"), "{}", reasons[1]);
    assert!(reasons[2].contains("kafka refused"), "{}", reasons[2]);
    assert_eq!(relay.metrics.relay_parked.get(), 3);
    // Parked rows are not pending: the backlog gauge and a later pass leave them alone.
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(pending, 0);
    relay.stop().await;
    cleanup(db, pool, &prefix).await;
}
