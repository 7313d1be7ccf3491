//! Relevance with a floor, on the real stack: the whole bangumi-data catalogue (about
//! 8,500 anime) loaded through an API and an indexer served in this process, then the
//! judged query set (`catalogue/relevance/judgements.json`: Japanese, English, typos,
//! prefixes, Chinese) evaluated with `_rank_eval` on the API's own query. NDCG@10 must
//! stay at or above [`NDCG_FLOOR`], and every kind of query must find something. `make
//! bench` reports the figure (`search_ndcg_at_10`).

#[path = "../../pipelines/indexer/tests/common/mod.rs"]
mod common;
mod judged;

use anineplus_testkit::TestDatabase;
use common::Harness;
use common::api::Api;

/// The lowest NDCG@10 accepted (measured: see `docs/search.md`, "Relevance").
const NDCG_FLOOR: f64 = 0.9;
/// The lowest NDCG@10 accepted for each kind of query.
const KIND_FLOOR: f64 = 0.8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judged_queries_find_what_they_mean_in_the_real_catalogue() {
    let t = Harness::new().await;
    let db = TestDatabase::create("relevance").await;
    let indexer = t.start_indexer().await;
    let api = Api::start_with(&t, &db.url, &[("--rate-limit-requests", "1000000000")]).await;
    let loaded = judged::load(&t, &api).await;
    eprintln!(
        "relevance: {} anime loaded and indexed in {:.1} s",
        loaded.anime,
        loaded.took.as_secs_f64()
    );
    let scores = judged::evaluate(&t.search, &t.alias("anime"), &loaded.ids).await;
    eprintln!(
        "relevance: {} judged queries, NDCG@10 {:.3}, MRR {:.3}, per kind {:?}; weakest {:?}",
        judged::judgements().len(),
        scores.ndcg,
        scores.mrr,
        scores.per_kind,
        &scores.weakest[..scores.weakest.len().min(8)]
    );
    assert!(
        scores.ndcg >= NDCG_FLOOR,
        "NDCG@10 {:.3} < {NDCG_FLOOR}: {scores:?}",
        scores.ndcg
    );
    for (kind, (ndcg, _)) in &scores.per_kind {
        assert!(
            *ndcg >= KIND_FLOOR,
            "{kind}: NDCG@10 {ndcg:.3} < {KIND_FLOOR}: {scores:?}"
        );
    }
    api.stop().await;
    indexer.stop().await;
    t.cleanup().await;
    db.remove().await;
}
