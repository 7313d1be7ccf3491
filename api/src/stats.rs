//! The store of `trendingAnime` and `subscriptionCounts`: the analytics pipeline's index
//! `<INDEX_PREFIX>-anime-stats` ([`stats_index`], whose doc is the contract of the
//! documents), read with the API's engine client through the project's one call to the
//! engine ([`anineplus_connectors::search::call_json`]).
//!
//! The index does not exist until the pipeline has written to it: the engine's 404 then
//! reads as no statistics (empty answers), not as an error. Any other failure of the engine
//! is [`Error::Search`] (`INTERNAL` for clients, the cause logged).
//!
//! Comment counts are summed by the engine: a `terms` aggregation on `animeId` over the
//! `comments_per_hour` documents of a range of window starts, ordered by the sum of their
//! `count`, most first, ties by id. It is exact on one shard; on several, a terms
//! aggregation ordered by a sum may misrank the tail of a long list (the engine's
//! `shard_size` bounds each shard's candidates).

use anineplus_connectors::search::{self, CallError};
use anineplus_schemas::indices::stats_index;
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Error, Result};

/// `kind` of the per-anime, per-hour comment counts.
pub const COMMENTS_PER_HOUR: &str = "comments_per_hour";
/// `kind` of the per-plan active subscription counts.
pub const SUBSCRIPTIONS_PER_PLAN: &str = "subscriptions_per_plan";
/// The most `subscriptions_per_plan` documents read (there is one per plan).
pub const MAX_PLANS: usize = 100;

/// The analytics index of one engine and prefix.
#[derive(Debug, Clone)]
pub struct StatsStore {
    client: Elasticsearch,
    index: String,
}

/// An anime's comments in a range of windows, as the engine summed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentCount {
    /// The anime (`animeId`).
    pub anime_id: Uuid,
    /// The sum of the windows' `count`.
    pub comments: i64,
}

/// The active subscriptions of one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCount {
    /// The plan, as the documents spell it (`BASIC`, `STANDARD`, `PREMIUM`).
    pub plan: String,
    /// Its active subscriptions (`count`).
    pub active: i64,
}

impl StatsStore {
    /// The index `<index_prefix>-anime-stats` of the engine `client` talks to (the API's
    /// [`engine_client`](crate::search::engine_client)).
    pub fn new(client: Elasticsearch, index_prefix: &str) -> Self {
        StatsStore {
            client,
            index: stats_index(index_prefix),
        }
    }

    /// The index read.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// At most `size` anime with comments in the windows whose start is in
    /// `[from, to)` (epoch ms), most comments first, then by id; none without comments.
    pub async fn comment_counts(
        &self,
        from: i64,
        to: i64,
        size: usize,
    ) -> Result<Vec<CommentCount>> {
        match self.search(&comment_counts_body(from, to, size)).await? {
            Some(answer) => read_comment_counts(&answer).map_err(|e| self.unexpected(e)),
            None => Ok(Vec::new()),
        }
    }

    /// The active subscriptions of every plan counted, by plan.
    pub async fn plan_counts(&self) -> Result<Vec<PlanCount>> {
        match self.search(&plan_counts_body()).await? {
            Some(answer) => read_plan_counts(&answer).map_err(|e| self.unexpected(e)),
            None => Ok(Vec::new()),
        }
    }

    /// The answer to a `_search` of the index with `body`; `None` when the index does not
    /// exist (yet).
    async fn search(&self, body: &Value) -> Result<Option<Value>> {
        let path = format!("/{}/_search", self.index);
        match search::call_json(&self.client, Method::Post, &path, Some(body)).await {
            Ok(answer) => Ok(Some(answer)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.failed(&e)),
        }
    }

    fn failed(&self, e: &CallError) -> Error {
        Error::Search(format!("reading the analytics index {}: {e}", self.index))
    }

    fn unexpected(&self, what: String) -> Error {
        Error::Search(format!(
            "unexpected answer of the analytics index {}: {what}",
            self.index
        ))
    }
}

/// The `_search` body of [`StatsStore::comment_counts`]: the `comments_per_hour` documents
/// with a positive `count` and `windowStart` in `[from, to)`, summed per `animeId` in a
/// `terms` aggregation of `size` buckets ordered by the sum (descending), then by id; no
/// hits.
pub fn comment_counts_body(from: i64, to: i64, size: usize) -> Value {
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": { "bool": { "filter": [
            { "term": { "kind": COMMENTS_PER_HOUR } },
            { "range": { "windowStart": { "gte": from, "lt": to, "format": "epoch_millis" } } },
            { "range": { "count": { "gt": 0 } } },
        ] } },
        "aggs": { "anime": {
            "terms": {
                "field": "animeId",
                "size": size.max(1),
                "order": [{ "comments": "desc" }, { "_key": "asc" }],
            },
            "aggs": { "comments": { "sum": { "field": "count" } } },
        } },
    })
}

/// The buckets of a [`comment_counts_body`] answer, in order; keys that are not UUIDs and
/// sums that are not positive are left out.
pub fn read_comment_counts(answer: &Value) -> std::result::Result<Vec<CommentCount>, String> {
    let buckets = answer["aggregations"]["anime"]["buckets"]
        .as_array()
        .ok_or_else(|| format!("no aggregations.anime.buckets in {answer}"))?;
    Ok(buckets
        .iter()
        .filter_map(|bucket| {
            let anime_id = Uuid::parse_str(bucket["key"].as_str()?).ok()?;
            let sum = &bucket["comments"]["value"];
            let comments = sum
                .as_i64()
                .or_else(|| sum.as_f64().map(|f| f.round() as i64))?;
            (comments > 0).then_some(CommentCount { anime_id, comments })
        })
        .collect())
}

/// The `_search` body of [`StatsStore::plan_counts`]: the `subscriptions_per_plan`
/// documents (at most [`MAX_PLANS`]), sorted by plan, their plan and count only.
pub fn plan_counts_body() -> Value {
    json!({
        "size": MAX_PLANS,
        "track_total_hits": false,
        "query": { "bool": { "filter": [{ "term": { "kind": SUBSCRIPTIONS_PER_PLAN } }] } },
        "sort": [{ "plan": "asc" }],
        "_source": ["plan", "count"],
    })
}

/// The plans and counts of a [`plan_counts_body`] answer, in order; documents without a
/// plan are left out, a missing count is 0.
pub fn read_plan_counts(answer: &Value) -> std::result::Result<Vec<PlanCount>, String> {
    let hits = answer["hits"]["hits"]
        .as_array()
        .ok_or_else(|| format!("no hits.hits in {answer}"))?;
    Ok(hits
        .iter()
        .filter_map(|hit| {
            let source = &hit["_source"];
            Some(PlanCount {
                plan: source["plan"].as_str()?.to_owned(),
                active: source["count"].as_i64().unwrap_or(0),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_counts_filter_kind_and_window_starts_and_rank_by_sum_then_id() {
        let body = comment_counts_body(3_600_000, 7_200_000, 10);
        let filter = &body["query"]["bool"]["filter"];
        assert_eq!(filter[0], json!({"term": {"kind": "comments_per_hour"}}));
        assert_eq!(
            filter[1]["range"]["windowStart"],
            json!({"gte": 3_600_000, "lt": 7_200_000, "format": "epoch_millis"})
        );
        assert_eq!(filter[2], json!({"range": {"count": {"gt": 0}}}));
        let terms = &body["aggs"]["anime"]["terms"];
        assert_eq!(terms["field"], json!("animeId"));
        assert_eq!(terms["size"], json!(10));
        assert_eq!(
            terms["order"],
            json!([{"comments": "desc"}, {"_key": "asc"}])
        );
        assert_eq!(
            body["aggs"]["anime"]["aggs"]["comments"],
            json!({"sum": {"field": "count"}})
        );
        assert_eq!(body["size"], json!(0));
    }

    #[test]
    fn buckets_keep_their_order_without_foreign_keys_or_empty_sums() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let answer = json!({"aggregations": {"anime": {"buckets": [
            {"key": b.to_string(), "doc_count": 2, "comments": {"value": 7.0}},
            {"key": "not-a-uuid", "doc_count": 1, "comments": {"value": 5.0}},
            {"key": a.to_string(), "doc_count": 1, "comments": {"value": 3.0}},
            {"key": Uuid::now_v7().to_string(), "doc_count": 1, "comments": {"value": 0.0}},
        ]}}});
        assert_eq!(
            read_comment_counts(&answer).unwrap(),
            [
                CommentCount {
                    anime_id: b,
                    comments: 7
                },
                CommentCount {
                    anime_id: a,
                    comments: 3
                },
            ]
        );
        assert!(read_comment_counts(&json!({"hits": {}})).is_err());
    }

    #[test]
    fn plans_are_read_in_the_engines_order() {
        let body = plan_counts_body();
        assert_eq!(
            body["query"]["bool"]["filter"][0],
            json!({"term": {"kind": "subscriptions_per_plan"}})
        );
        assert_eq!(body["sort"], json!([{"plan": "asc"}]));
        let answer = json!({"hits": {"hits": [
            {"_source": {"plan": "BASIC", "count": 2}},
            {"_source": {"count": 9}},
            {"_source": {"plan": "PREMIUM", "count": 0}},
        ]}});
        assert_eq!(
            read_plan_counts(&answer).unwrap(),
            [
                PlanCount {
                    plan: "BASIC".into(),
                    active: 2
                },
                PlanCount {
                    plan: "PREMIUM".into(),
                    active: 0
                },
            ]
        );
    }
}
