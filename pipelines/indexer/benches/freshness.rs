//! Freshness: how long from a mutation acknowledged by the API until its document is
//! searchable, with the index's 1 s refresh interval.
//!
//! The API (`index` search backend) and the search indexer run in this process, on a
//! database, topic prefix, consumer group and index prefix of their own (as
//! `tests/end_to_end.rs`). `BENCH_FRESHNESS_MUTATIONS` (default 200) `createAnime`
//! mutations are sent at `BENCH_FRESHNESS_RATE` per second (default 20), at most 4 in
//! flight. For each one, t0 = its response received; one poller runs a `_search` (an `ids`
//! query on the concrete index: searchable, not the realtime GET) for every pending id
//! every 10 ms, and t1 = the first poll that returned it. The mutations start once the
//! sign-up's user event reached the indexer (steady state, not the group join).
//!
//! - `freshness_p50_ms`, `freshness_p99_ms`: percentiles of t1 − t0 (goal p99 ≤ 1,500 ms).
//!   The 10 ms polling period is included (it adds 0-10 ms plus the search's own time).
//! - `freshness_written_p50_ms`, `freshness_written_p99_ms` (context): the same up to the
//!   document being *written* (a realtime `_mget` of the pending ids, polled every 10 ms by
//!   a second poller): relay + Kafka + indexer, without the wait for the next refresh.
//! - `freshness_bench_process_peak_rss_mb`: peak resident memory (VmHWM) of this process,
//!   which hosts the API, the indexer and the load generator: an upper bound for the two.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_streams::metrics::Metrics;
use anineplus_testkit::{TestDatabase, bench};
use common::Harness;
use common::api::Api;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let n = bench::size("BENCH_FRESHNESS_MUTATIONS", 200);
    let rate = bench::size("BENCH_FRESHNESS_RATE", 20).max(1) as u64;
    let t = Harness::new().await;

    let db = TestDatabase::create("freshness").await;
    let result = run(&t, &db.url, n, rate).await;

    // Clean up whatever happened.
    t.cleanup().await;
    db.remove().await;

    let ((p50, p99, max), (w50, w99, wmax)) = result?;
    println!(
        "freshness: {n} createAnime mutations at {rate}/s, mutation acknowledged -> searchable (_search ids, polled every 10 ms): p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms; -> written (realtime _mget): p50 {w50:.0} ms, p99 {w99:.0} ms, max {wmax:.0} ms"
    );
    bench::record(&[
        ("freshness_p50_ms", p50),
        ("freshness_p99_ms", p99),
        ("freshness_written_p50_ms", w50),
        ("freshness_written_p99_ms", w99),
        (
            "freshness_bench_process_peak_rss_mb",
            bench::peak_rss_mb("self"),
        ),
    ])?;
    Ok(())
}

/// p50, p99 and max of `latencies`.
fn percentiles(mut latencies: Vec<f64>) -> (f64, f64, f64) {
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    (pct(0.50), pct(0.99), latencies[latencies.len() - 1])
}

type Pending = Arc<Mutex<HashMap<String, Instant>>>;

/// Polls every 10 ms for the pending ids with `request` (ids → a request whose JSON answer
/// lists the ones there) until `n` were seen; returns their latencies, in ms.
async fn poll(
    pending: Pending,
    n: usize,
    deadline: Instant,
    request: impl Fn(Vec<String>) -> reqwest::RequestBuilder,
    seen: impl Fn(&Value) -> Vec<String>,
) -> anyhow::Result<Vec<(Instant, f64)>> {
    let mut latencies = Vec::with_capacity(n);
    while latencies.len() < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} documents were seen",
            latencies.len()
        );
        let ids: Vec<String> = pending.lock().await.keys().cloned().collect();
        if !ids.is_empty() {
            let response = request(ids).send().await?;
            let t1 = Instant::now();
            if response.status().is_success() {
                let body: Value = response.json().await?;
                let mut pending = pending.lock().await;
                for id in seen(&body) {
                    if let Some(t0) = pending.remove(&id) {
                        latencies.push((t0, t1.duration_since(t0).as_secs_f64() * 1000.0));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(latencies)
}

type Percentiles = (f64, f64, f64);

async fn run(
    t: &Harness,
    db_url: &str,
    n: usize,
    rate: u64,
) -> anyhow::Result<(Percentiles, Percentiles)> {
    let indexer = t.start_indexer().await;

    let api = Api::start_with(
        t,
        db_url,
        &[
            ("--database-max-connections", "8"),
            ("--rate-limit-requests", "1000000000"),
            ("--outbox-poll-ms", "5000"),
        ],
    )
    .await;
    let (http, url) = (api.http.clone(), api.url.clone());

    let data = bench::gql(
        &http,
        &url,
        None,
        "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
        json!({"i": {"email": anineplus_api::config::DEV_ADMIN_EMAIL, "name": "Admin", "password": "correct horse battery"}}),
    )
    .await;
    let token = Arc::new(data["signUp"]["token"].as_str().unwrap().to_owned());
    // Steady state: the sign-up's user event went API → relay → Kafka → indexer → engine, so
    // the relay leads and the indexer's group has its partitions (otherwise the first
    // mutations wait for the group join, a start-up cost, not freshness).
    let ready = Instant::now() + Duration::from_secs(60);
    while Metrics::get(&indexer.running.metrics.sunk) == 0 {
        anyhow::ensure!(
            Instant::now() < ready,
            "the sign-up never reached the indexer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // id -> t0, for the mutations acknowledged and not yet seen searchable / written.
    let pending: Pending = Arc::default();
    let unwritten: Pending = Arc::default();
    let in_flight = Arc::new(Semaphore::new(4));
    let started = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let senders: Vec<_> = (0..n)
        .map(|i| {
            let (http, url, token, pending, unwritten, in_flight) = (
                http.clone(),
                url.clone(),
                token.clone(),
                pending.clone(),
                unwritten.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep_until((started + period * i as u32).into()).await;
                let _permit = in_flight.acquire().await.expect("semaphore");
                let data = bench::gql(
                    &http,
                    &url,
                    Some(&token),
                    "mutation($i: CreateAnimeInput!) { createAnime(input: $i) { id } }",
                    json!({"i": {"title": format!("Freshness {i}"), "status": "AIRING"}}),
                )
                .await;
                let t0 = Instant::now();
                let id = data["createAnime"]["id"].as_str().unwrap().to_owned();
                unwritten.lock().await.insert(id.clone(), t0);
                pending.lock().await.insert(id, t0);
            })
        })
        .collect();

    // The pollers: one `_search` for every pending id, and one realtime `_mget` for every
    // id not yet written, each every 10 ms.
    let index = format!("{}-v1", t.alias("anime"));
    let base = t.stack.search_url.trim_end_matches('/').to_owned();
    let deadline = Instant::now() + Duration::from_secs(n as u64 / rate + 120);
    // `BENCH_FRESHNESS_WRITTEN=0` leaves the realtime poller out (to check that it does not
    // change what the search poller sees).
    let with_written = bench::size("BENCH_FRESHNESS_WRITTEN", 1) != 0;
    let written = {
        let (http, url) = (http.clone(), format!("{base}/{index}/_mget?_source=false"));
        tokio::spawn(poll(
            unwritten,
            if with_written { n } else { 0 },
            deadline,
            move |ids| http.post(&url).json(&json!({ "ids": ids })),
            |body| {
                body["docs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| d["found"] == json!(true))
                    .filter_map(|d| d["_id"].as_str().map(str::to_owned))
                    .collect()
            },
        ))
    };
    let searchable = {
        let (http, url) = (http.clone(), format!("{base}/{index}/_search"));
        poll(
            pending,
            n,
            deadline,
            move |ids| {
                http.post(&url).json(&json!({
                    "size": ids.len(),
                    "_source": false,
                    "query": {"ids": {"values": ids}},
                }))
            },
            |body| {
                body["hits"]["hits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h["_id"].as_str().map(str::to_owned))
                    .collect()
            },
        )
        .await?
    };
    let written = written.await??;
    // The slowest ones, with when they were acknowledged: a tail at the start is the
    // indexer still joining its group, one spread over the run is the path itself.
    for (name, latencies) in [("searchable", &searchable), ("written", &written)] {
        let mut slowest = latencies.clone();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        let slowest: Vec<String> = slowest
            .iter()
            .take(5)
            .map(|(t0, ms)| {
                format!(
                    "{ms:.0} ms at +{:.1} s",
                    t0.duration_since(started).as_secs_f64()
                )
            })
            .collect();
        eprintln!("freshness: slowest {name}: {}", slowest.join(", "));
    }
    let written: Vec<f64> = written.into_iter().map(|(_, ms)| ms).collect();
    let written = if written.is_empty() {
        vec![f64::NAN]
    } else {
        written
    };
    let searchable: Vec<f64> = searchable.into_iter().map(|(_, ms)| ms).collect();
    for sender in senders {
        sender.await?;
    }

    api.stop().await;
    indexer.stop().await;

    Ok((percentiles(searchable), percentiles(written)))
}
