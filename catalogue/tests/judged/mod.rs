//! The judged query set (`catalogue/relevance/judgements.json`) over the whole real
//! catalogue, shared by the relevance test and the search benchmark: the catalogue loaded
//! through the API's mutations and the indexer (the real path), then the API's own query
//! ([`anineplus_api::search::engine::matching`], live documents only) evaluated by the
//! metrics of `_rank_eval`: NDCG@10 (graded: 2 the entry meant, 1 also right) and MRR@10.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anineplus_catalogue::bangumi;
use anineplus_catalogue::seed::{self, Settings};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::Harness;
use super::common::api::Api;

/// The judged queries, in the repository.
const JUDGEMENTS: &str = include_str!("../../relevance/judgements.json");

/// One judged query.
#[derive(Debug, Clone, Deserialize)]
pub struct Judged {
    /// `japanese`, `english`, `typo`, `prefix` or `chinese`.
    pub kind: String,
    /// What the user types.
    pub query: String,
    /// The entries it should find, by title, with their grade.
    pub relevant: BTreeMap<String, u32>,
}

/// Every judged query.
pub fn judgements() -> Vec<Judged> {
    #[derive(Deserialize)]
    struct File {
        queries: Vec<Judged>,
    }
    serde_json::from_str::<File>(JUDGEMENTS)
        .expect("relevance/judgements.json")
        .queries
}

/// The catalogue file `scripts/catalogue.sh` fetched (or `$CATALOGUE_DATA`).
pub fn catalogue_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CATALOGUE_DATA") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/catalogue.sh"))
        .output()
        .expect("run scripts/catalogue.sh");
    assert!(
        out.status.success(),
        "scripts/catalogue.sh could not fetch the catalogue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The whole catalogue loaded through `api` and indexed: each title's anime id.
pub struct Loaded {
    /// Title → anime id (titles of the judged set are unique in the catalogue).
    pub ids: HashMap<String, String>,
    /// Anime created.
    pub anime: usize,
    /// How long loading and indexing took.
    pub took: Duration,
}

/// Loads the whole catalogue through `api` (signed in as the dev admin) and waits until
/// the indexer has indexed every anime.
pub async fn load(t: &Harness, api: &Api) -> Loaded {
    let started = Instant::now();
    let bytes = std::fs::read(catalogue_path()).expect("read the catalogue");
    let catalogue = bangumi::parse(&bytes).expect("parse the catalogue");
    let settings = Settings {
        concurrency: 8,
        progress_every: 2000,
        ..Settings::new(
            &api.url,
            anineplus_api::config::DEV_ADMIN_EMAIL,
            "correct horse battery",
        )
    };
    let report = seed::run(&settings, &catalogue, chrono::Utc::now(), &mut |l| {
        eprintln!("{l}")
    })
    .await
    .expect("seed the catalogue");
    assert!(report.refused.is_empty(), "{report:?}");
    let alias = t.alias("anime");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let indexed = count(&t.search, &alias).await;
        if indexed >= report.created {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{indexed} of {} anime indexed after 300 s",
            report.created
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ids = HashMap::new();
    for judged in judgements() {
        for title in judged.relevant.keys() {
            if ids.contains_key(title) {
                continue;
            }
            let body = call(
                &t.search,
                Method::Post,
                &format!("/{alias}/_search"),
                json!({ "query": { "term": { "title.keyword": title } }, "_source": false }),
            )
            .await;
            let hits = body["hits"]["hits"].as_array().cloned().unwrap_or_default();
            assert_eq!(hits.len(), 1, "one anime titled {title:?}: {body}");
            ids.insert(title.clone(), hits[0]["_id"].as_str().unwrap().to_owned());
        }
    }
    Loaded {
        ids,
        anime: report.created,
        took: started.elapsed(),
    }
}

async fn call(client: &Elasticsearch, method: Method, path: &str, body: Value) -> Value {
    anineplus_connectors::search::call_json(client, method, path, Some(&body))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn count(client: &Elasticsearch, alias: &str) -> usize {
    let _ = anineplus_connectors::search::call_json(
        client,
        Method::Post,
        &format!("/{alias}/_refresh"),
        None,
    )
    .await;
    let body = call(
        client,
        Method::Post,
        &format!("/{alias}/_count"),
        json!({ "query": anineplus_connectors::search_sink::live(json!({ "match_all": {} })) }),
    )
    .await;
    body["count"].as_u64().unwrap_or(0) as usize
}

/// The scores of the judged set.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Mean NDCG@10.
    pub ndcg: f64,
    /// Mean reciprocal rank of the first relevant entry in the top 10.
    pub mrr: f64,
    /// Mean NDCG@10 and query count per kind.
    pub per_kind: BTreeMap<String, (f64, usize)>,
    /// The queries below 1.0, with their NDCG@10, worst first.
    pub weakest: Vec<(String, f64)>,
}

/// NDCG@10 of a ranking: graded gain `2^grade - 1`, discount `log2(rank + 1)`, divided by
/// the ideal ordering's (the `dcg` metric of `_rank_eval` with `normalize: true`).
pub fn ndcg_at_10(ranked: &[String], relevant: &BTreeMap<String, u32>) -> f64 {
    let gain = |g: u32| f64::from(2u32.pow(g) - 1);
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, id)| gain(relevant.get(id).copied().unwrap_or(0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, g)| gain(*g) / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Reciprocal rank of the first relevant entry in the top 10 (0 when none).
pub fn reciprocal_rank(ranked: &[String], relevant: &BTreeMap<String, u32>) -> f64 {
    ranked
        .iter()
        .take(10)
        .position(|id| relevant.contains_key(id))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Evaluates the API's query for every judged query on `alias`: the engine ranks (the
/// API's query, top 10), the metrics are `_rank_eval`'s, computed here because the stack's
/// OpenSearch (its jars from Maven Central, without modules) has no `_rank_eval` endpoint.
pub async fn evaluate(
    client: &Elasticsearch,
    alias: &str,
    ids: &HashMap<String, String>,
) -> Scores {
    let judged = judgements();
    let mut ndcgs = Vec::new();
    let mut rrs = Vec::new();
    for j in &judged {
        let body = call(
            client,
            Method::Post,
            &format!("/{alias}/_search"),
            json!({
                "query": anineplus_connectors::search_sink::live(
                    anineplus_api::search::engine::matching(&j.query)),
                "size": 10,
                "sort": ["_score", { "id": "asc" }],
                "_source": false,
            }),
        )
        .await;
        let ranked: Vec<String> = body["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["_id"].as_str().map(String::from))
            .collect();
        let relevant: BTreeMap<String, u32> = j
            .relevant
            .iter()
            .map(|(title, grade)| (ids[title].clone(), *grade))
            .collect();
        ndcgs.push(ndcg_at_10(&ranked, &relevant));
        rrs.push(reciprocal_rank(&ranked, &relevant));
    }
    let mut per_kind: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut weakest = Vec::new();
    for (i, j) in judged.iter().enumerate() {
        let score = ndcgs[i];
        let e = per_kind.entry(j.kind.clone()).or_default();
        e.0 += score;
        e.1 += 1;
        if score < 1.0 {
            weakest.push((j.query.clone(), score));
        }
    }
    for (sum, n) in per_kind.values_mut() {
        *sum /= *n as f64;
    }
    weakest.sort_by(|a, b| a.1.total_cmp(&b.1));
    Scores {
        ndcg: ndcgs.iter().sum::<f64>() / ndcgs.len() as f64,
        mrr: rrs.iter().sum::<f64>() / rrs.len() as f64,
        per_kind,
        weakest,
    }
}
