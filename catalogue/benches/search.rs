//! Search over the real catalogue: relevance and latency, on the real stack.
//!
//! The whole bangumi-data catalogue (about 8,500 anime) is loaded through an API and an
//! indexer served in this process, as `tests/relevance.rs` does. Then:
//! - `search_ndcg_at_10` and `search_mrr`: the judged query set
//!   (`catalogue/relevance/judgements.json`) evaluated by the engine's `_rank_eval` on the
//!   API's own query. Goal: NDCG@10 ≥ 0.9.
//! - `search_p50_ms`, `search_p99_ms`: `searchAnime` through the API over HTTP (first 10,
//!   with highlights and facets; the judged queries in turn), at a fixed rate of 50
//!   requests/s for `BENCH_SEARCH_SECS` (default 10) seconds, each timed from its
//!   scheduled start (an open loop: a slow answer does not delay the next request).
//! - `suggest_p50_ms`, `suggest_p99_ms`: `suggest` the same way, over prefixes of the
//!   judged queries as they are typed. Goal: p99 under 20 ms.

#[path = "../../pipelines/indexer/tests/common/mod.rs"]
mod common;
#[path = "../tests/judged/mod.rs"]
mod judged;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anineplus_testkit::{TestDatabase, bench};
use common::Harness;
use common::api::Api;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Requests per second of the latency runs.
const RATE: u64 = 50;

const SEARCH: &str = "query($q: String!) { searchAnime(query: $q, first: 10) {
  totalCount edges { node { id title } highlights { field snippet } }
  facets { genres { value count } status { value count } releaseYears { from to count } } } }";
const SUGGEST: &str = "query($p: String!) { suggest(prefix: $p) { id title matched { snippet } } }";

/// p50 and p99 (ms) of `query` with each of `variables` in turn, at [`RATE`] per second
/// for `secs`.
async fn latency(api: &Api, query: &'static str, variables: Vec<Value>, secs: u64) -> (f64, f64) {
    let timings = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let period = Duration::from_micros(1_000_000 / RATE);
    let started = Instant::now();
    for i in 0..(RATE * secs) as usize {
        let due = started + period * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let http = api.http.clone();
        let url = format!("{}/graphql", api.url);
        let body = json!({ "query": query, "variables": variables[i % variables.len()] });
        let timings = timings.clone();
        tasks.push(tokio::spawn(async move {
            let reply: Value = http
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("the API answers")
                .json()
                .await
                .expect("JSON");
            assert!(reply.get("errors").is_none(), "{reply}");
            timings
                .lock()
                .await
                .push(due.elapsed().as_secs_f64() * 1000.0);
        }));
    }
    for task in tasks {
        task.await.expect("a request");
    }
    let mut t = std::mem::take(&mut *timings.lock().await);
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)];
    (at(0.50), at(0.99))
}

#[tokio::main]
async fn main() {
    let secs = bench::size("BENCH_SEARCH_SECS", 10) as u64;
    let t = Harness::new().await;
    let db = TestDatabase::create("search_bench").await;
    let indexer = t.start_indexer().await;
    let api = Api::start_with(&t, &db.url, &[("--rate-limit-requests", "1000000000")]).await;
    let loaded = judged::load(&t, &api).await;
    println!(
        "search: {} anime loaded through the API and indexed in {:.1} s",
        loaded.anime,
        loaded.took.as_secs_f64()
    );
    let scores = judged::evaluate(&t.search, &t.alias("anime"), &loaded.ids).await;
    println!(
        "search: NDCG@10 per kind {:?}; below 1.0: {:?}",
        scores.per_kind, scores.weakest
    );
    let judged = judged::judgements();
    let queries: Vec<Value> = judged.iter().map(|j| json!({ "q": j.query })).collect();
    let prefixes: Vec<Value> = judged
        .iter()
        .filter(|j| j.kind == "english")
        .flat_map(|j| {
            let chars: Vec<char> = j.query.chars().collect();
            (3..=chars.len().min(12))
                .map(|n| json!({ "p": chars[..n].iter().collect::<String>() }))
                .collect::<Vec<_>>()
        })
        .collect();
    let (search_p50, search_p99) = latency(&api, SEARCH, queries, secs).await;
    let (suggest_p50, suggest_p99) = latency(&api, SUGGEST, prefixes, secs).await;
    bench::record(&[
        ("search_ndcg_at_10", scores.ndcg),
        ("search_mrr", scores.mrr),
        ("search_p50_ms", search_p50),
        ("search_p99_ms", search_p99),
        ("suggest_p50_ms", suggest_p50),
        ("suggest_p99_ms", suggest_p99),
    ])
    .expect("record the figures");
    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
    db.remove().await;
}
