//! Search served from the index the search indexer keeps (`<prefix>-anime`): the request
//! bodies ([`search_body`], [`suggest_body`]) and their answers ([`read_results`]).
//!
//! How a text query matches (the analysers are the indexer's, `pipelines/indexer/src/
//! indices.rs`), strongest first:
//! 1. the words as a phrase in the title or an alternative title;
//! 2. every word, exactly, in the title, an alternative title or a genre;
//! 3. every word with typos forgiven (`AUTO:5,9`: none below 5 letters, one from 5, two
//!    from 9; the first letter must match; all but one word of three or more), in the
//!    titles or the synopsis;
//! 4. every word as the start of a title word (`fri` finds "Frieren").
//!
//! A hit matches at least one of them; its score adds up those it matches, so an exact
//! title match ranks above a typo, and a title above a synopsis; then shorter titles are
//! preferred (the main entry of a franchise over its sequels). A query that is a UUID
//! matches that anime's id only. Soft-deleted documents never match.

use std::collections::HashMap;
use std::time::Duration;

use anineplus_connectors::search_sink::DELETED_FIELD;
use elasticsearch::{Elasticsearch, SearchParts};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    AnimeSearch, BoxFuture, EntityType, EverythingSearch, FacetCount, Facets, Found, FoundPage,
    Highlight, PostgresSearch, SearchBackend, SearchFilter, SearchResults, SearchSort, Suggestion,
    YEAR_RANGES, YearRangeCount,
};
use crate::domain::{Page, live_anime_in_order};
use crate::{Error, Result};

/// The API's one client of the search engine at `url` (each request bounded by `timeout`),
/// shared by `searchAnime`, the admin `logs` query and the analytics reads.
pub fn engine_client(url: &str, timeout: Duration) -> Result<Elasticsearch> {
    anineplus_connectors::search::client(url, timeout).map_err(|e| Error::Internal(e.to_string()))
}

/// Deepest reachable hit: the engine's default `index.max_result_window`.
pub const MAX_RESULT_WINDOW: i64 = 10_000;

/// How many genres the facet lists.
const GENRE_FACET_SIZE: usize = 50;

/// Search served from the index the search indexer keeps (`<prefix>-anime`).
///
/// The engine ranks, counts and highlights; the nodes are the PostgreSQL rows of the
/// hits' ids, in hit order, so clients always get the authoritative row (never a document
/// a few events behind), and an id whose row is gone or soft-deleted (the indexer has not
/// caught up yet) is dropped from the page. Cursors are the offsets every list of the API
/// uses.
#[derive(Debug, Clone)]
pub struct ElasticsearchSearch {
    client: Elasticsearch,
    url: String,
    alias: String,
    prefix: String,
    pool: PgPool,
    fallback: Option<PostgresSearch>,
}

impl ElasticsearchSearch {
    /// Searches the alias `<index_prefix>-anime` with `client` (the API's engine client,
    /// [`engine_client`], at `url`), loading rows from `pool`.
    pub fn new(client: Elasticsearch, url: &str, index_prefix: &str, pool: PgPool) -> Self {
        Self {
            client,
            url: url.to_owned(),
            alias: anineplus_schemas::indices::Index::Anime.alias(index_prefix),
            prefix: index_prefix.to_owned(),
            pool,
            fallback: None,
        }
    }

    /// Answers from PostgreSQL ([`PostgresSearch`]) when the engine is unreachable or
    /// failing, instead of an `INTERNAL` error.
    pub fn with_postgres_fallback(mut self) -> Self {
        self.fallback = Some(PostgresSearch::new(self.pool.clone()));
        self
    }

    /// The alias searched.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The engine's answer to `body` on the anime alias.
    async fn call(&self, body: Value) -> Result<Value> {
        let alias = self.alias.clone();
        self.call_on(&[&alias], false, body).await
    }

    /// The engine's answer to `body` on `aliases`; `global_stats`: scores from the term
    /// statistics of every index searched (`dfs_query_then_fetch`), so hits of different
    /// indices compare.
    async fn call_on(&self, aliases: &[&str], global_stats: bool, body: Value) -> Result<Value> {
        let unavailable = |reason: String| {
            Error::Search(format!(
                "searching {} at {} failed: {reason}",
                aliases.join(","),
                self.url
            ))
        };
        let response = anineplus_connectors::search::failover(|| {
            self.client
                .search(SearchParts::Index(aliases))
                .search_type(if global_stats {
                    elasticsearch::params::SearchType::DfsQueryThenFetch
                } else {
                    elasticsearch::params::SearchType::QueryThenFetch
                })
                .body(body.clone())
                .send()
        })
        .await
        .map_err(|e| unavailable(anineplus_connectors::search::error_chain(&e)))?;
        let status = response.status_code().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| unavailable(format!("status {status}, unreadable body: {e}")))?;
        if !(200..300).contains(&status) {
            let error = &body["error"];
            let kind = error["type"].as_str().unwrap_or("unknown");
            let reason = error["reason"].as_str().unwrap_or_default();
            let hint = if kind == "index_not_found_exception" {
                " (is the indexer running with the same INDEX_PREFIX?)"
            } else {
                ""
            };
            return Err(unavailable(format!(
                "status {status}: {kind}: {reason}{hint}"
            )));
        }
        Ok(body)
    }
}

/// The `highlight` section of a request over `fields`: matched words in `<em>…</em>`, the
/// rest HTML-escaped.
fn highlight(fields: Value) -> Value {
    json!({ "encoder": "html", "pre_tags": ["<em>"], "post_tags": ["</em>"], "fields": fields })
}

/// The page size a request may ask for at `offset`: results end at the engine's
/// `max_result_window`, and a cursor beyond it is `BAD_USER_INPUT`.
fn window_limit(offset: i64, limit: i64) -> Result<i64> {
    if offset >= MAX_RESULT_WINDOW {
        return Err(Error::bad_input(format!(
            "after: search results end at the {MAX_RESULT_WINDOW}th; refine the query"
        )));
    }
    Ok(limit.min(MAX_RESULT_WINDOW - offset))
}

/// The fields a text query searches, with their weights.
const PHRASE_FIELDS: [&str; 2] = ["title^2", "alternativeTitles"];
const EXACT_FIELDS: [&str; 3] = ["title^4", "alternativeTitles^3", "genres.text^2"];
const FUZZY_FIELDS: [&str; 3] = ["title^4", "alternativeTitles^3", "synopsis"];
const PREFIX_FIELDS: [&str; 2] = ["title.prefix^4", "alternativeTitles.prefix^3"];

/// What a text query matches (see the module header); every live anime when empty.
pub fn matching(query: &str) -> Value {
    let query = query.trim();
    if query.is_empty() {
        return json!({ "match_all": {} });
    }
    if let Ok(id) = Uuid::parse_str(query) {
        return json!({ "term": { "id": id.to_string() } });
    }
    let clauses = json!({ "bool": { "minimum_should_match": 1, "should": [
        { "multi_match": {
            "query": query, "type": "phrase", "fields": PHRASE_FIELDS, "boost": 6,
        } },
        { "multi_match": {
            "query": query, "fields": EXACT_FIELDS, "operator": "and", "boost": 3,
        } },
        { "multi_match": {
            "query": query, "fields": FUZZY_FIELDS, "minimum_should_match": FUZZY_WORDS,
            "fuzziness": "AUTO:5,9", "prefix_length": 1, "max_expansions": 20,
        } },
        { "multi_match": { "query": query, "fields": PREFIX_FIELDS, "operator": "and" } },
    ] } });
    json!({ "function_score": {
        "query": clauses,
        "functions": [{ "script_score": { "script": {
            "source": SHORTER_TITLE,
            "params": { "weight": SHORTER_TITLE_WEIGHT },
        } } }],
        "boost_mode": "multiply",
    } })
}

/// How many words of a query the typo-forgiving clause needs: all of one or two, all but
/// one of more ("bocchi the rokc": "rokc" is too short to be forgiven a typo, the other
/// words still find it; stronger clauses still need every word).
const FUZZY_WORDS: &str = "2<-1";

/// The main-entry prior: a hit's score times `1 / (1 + weight × title length)`. A
/// franchise's entries share its words (a sequel's title is the series' title and more),
/// and the entry meant is nearly always the one with the shortest title; the engine's own
/// length norm cannot tell, since the many translations of a main entry make its
/// `alternativeTitles` longer than a sequel's. 0.05 lifted NDCG@10 of the judged set from
/// 0.876 to 0.965 (0.1 and 0.2 gained a little more, on the judged set only: kept low so
/// that a long title typed in full still wins on its phrase and exact clauses).
const SHORTER_TITLE: &str = "doc['title.keyword'].size() == 0 ? 1.0 \
    : 1.0 / (1.0 + params.weight * doc['title.keyword'].value.length())";
const SHORTER_TITLE_WEIGHT: f64 = 0.05;

/// The filters of `filter` as engine clauses, by facet name (`genres`, `status`,
/// `releaseYear`).
fn filter_clauses(filter: &SearchFilter) -> Vec<(&'static str, Value)> {
    let mut clauses = Vec::new();
    if !filter.genres.is_empty() {
        clauses.push(("genres", json!({ "terms": { "genres": filter.genres } })));
    }
    if !filter.status.is_empty() {
        let status: Vec<&str> = filter.status.iter().map(|s| s.as_str()).collect();
        clauses.push(("status", json!({ "terms": { "status": status } })));
    }
    if filter.release_year_from.is_some() || filter.release_year_to.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(from) = filter.release_year_from {
            range.insert("gte".into(), json!(from));
        }
        if let Some(to) = filter.release_year_to {
            range.insert("lte".into(), json!(to));
        }
        clauses.push(("releaseYear", json!({ "range": { "releaseYear": range } })));
    }
    clauses
}

/// Every filter clause except the facet `except`'s, as one filter.
fn filters_but(clauses: &[(&'static str, Value)], except: &str) -> Value {
    let kept: Vec<&Value> = clauses
        .iter()
        .filter(|(name, _)| *name != except)
        .map(|(_, c)| c)
        .collect();
    json!({ "bool": { "filter": kept } })
}

/// The search request of a page: [`matching`] wrapped by `live` as the query (what the
/// facets count), the filters as a `post_filter` (what the hits and total obey), each
/// facet under the other facets' filters, highlights HTML-escaped, only ids returned.
pub fn search_body(s: &AnimeSearch<'_>) -> Value {
    let clauses = filter_clauses(s.filter);
    let sort = match s.sort {
        SearchSort::Relevance => json!(["_score", { "id": "asc" }]),
        SearchSort::Newest => json!([{ "id": "desc" }]),
        SearchSort::ReleaseYear => json!([
            { "releaseYear": { "order": "desc", "missing": "_last" } }, "_score", { "id": "asc" }
        ]),
    };
    let ranges: Vec<Value> = YEAR_RANGES
        .iter()
        .map(|(from, to)| {
            let mut r = serde_json::Map::new();
            if let Some(from) = from {
                r.insert("from".into(), json!(from));
            }
            if let Some(to) = to {
                r.insert("to".into(), json!(to + 1)); // the engine's `to` is exclusive
            }
            Value::Object(r)
        })
        .collect();
    let whole = json!({ "number_of_fragments": 0 });
    json!({
        "query": anineplus_connectors::search_sink::live(matching(s.query)),
        "post_filter": { "bool": { "filter": clauses.iter().map(|(_, c)| c).collect::<Vec<_>>() } },
        "from": s.offset,
        "size": s.limit,
        "track_total_hits": true,
        "sort": sort,
        "_source": false,
        "highlight": highlight(json!({
                "title": whole,
                "title.prefix": whole,
                "alternativeTitles": whole,
                "alternativeTitles.prefix": whole,
                "synopsis": { "fragment_size": 120, "number_of_fragments": 2 },
            })),
        "aggs": {
            "genres": {
                "filter": filters_but(&clauses, "genres"),
                "aggs": { "values": { "terms": { "field": "genres", "size": GENRE_FACET_SIZE } } },
            },
            "status": {
                "filter": filters_but(&clauses, "status"),
                "aggs": { "values": { "terms": { "field": "status", "size": 10 } } },
            },
            "releaseYear": {
                "filter": filters_but(&clauses, "releaseYear"),
                "aggs": { "values": { "range": { "field": "releaseYear", "ranges": ranges } } },
            },
        },
    })
}

/// The field a highlight is shown under: sub-fields under their parent.
fn shown_field(field: &str) -> &str {
    field.strip_suffix(".prefix").unwrap_or(field)
}

/// A hit's highlights: one per field (whole words over prefixes), in the order title,
/// alternative titles, synopsis.
fn hit_highlights(hit: &Value) -> Vec<Highlight> {
    hit_highlights_of(
        hit,
        &[
            "title",
            "title.prefix",
            "alternativeTitles",
            "alternativeTitles.prefix",
            "synopsis",
        ],
    )
}

/// A hit's highlights of `order`'s fields, in that order; a field with a whole-word
/// highlight skips its prefix one; prose fields give several fragments.
fn hit_highlights_of(hit: &Value, order: &[&str]) -> Vec<Highlight> {
    let Some(fields) = hit["highlight"].as_object() else {
        return Vec::new();
    };
    let mut out: Vec<Highlight> = Vec::new();
    for name in order {
        let Some(snippets) = fields.get(*name).and_then(Value::as_array) else {
            continue;
        };
        let field = shown_field(name);
        if !matches!(field, "synopsis" | "body") && out.iter().any(|h| h.field == field) {
            continue; // the whole-word highlight is already there
        }
        for snippet in snippets.iter().filter_map(Value::as_str) {
            out.push(Highlight {
                field: field.to_owned(),
                snippet: snippet.to_owned(),
            });
        }
    }
    out
}

fn facet_counts(agg: &Value) -> Vec<FacetCount> {
    agg["values"]["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|b| {
                    Some(FacetCount {
                        value: b["key"].as_str()?.to_owned(),
                        count: b["doc_count"].as_i64().unwrap_or(0),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The hit ids (those that are UUIDs) in order, `hits.total.value`, each hit's
/// highlights and the facets.
pub fn read_results(body: &Value) -> (Vec<Uuid>, i64, HashMap<Uuid, Vec<Highlight>>, Facets) {
    let total = &body["hits"]["total"];
    let total = total["value"].as_i64().or(total.as_i64()).unwrap_or(0);
    let mut ids = Vec::new();
    let mut highlights = HashMap::new();
    for hit in body["hits"]["hits"].as_array().into_iter().flatten() {
        let Some(id) = hit["_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()) else {
            continue;
        };
        ids.push(id);
        let h = hit_highlights(hit);
        if !h.is_empty() {
            highlights.insert(id, h);
        }
    }
    let aggs = &body["aggregations"];
    let release_years = aggs["releaseYear"]["values"]["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .zip(YEAR_RANGES)
                .map(|(b, (from, to))| YearRangeCount {
                    from,
                    to,
                    count: b["doc_count"].as_i64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let facets = Facets {
        genres: facet_counts(&aggs["genres"]),
        status: facet_counts(&aggs["status"]),
        release_years,
    };
    (ids, total, highlights, facets)
}

/// The autocomplete request: titles (and alternative titles) whose words start with the
/// typed words, in order first, shorter titles first among equals; the title and the
/// highlighted match returned from the index.
pub fn suggest_body(prefix: &str, limit: i64) -> Value {
    let prefix = prefix.trim();
    let whole = json!({ "number_of_fragments": 0 });
    json!({
        "query": anineplus_connectors::search_sink::live(json!({ "bool": {
            "minimum_should_match": 1,
            "should": [
                { "multi_match": { "query": prefix, "fields": PREFIX_FIELDS, "operator": "and" } },
                { "multi_match": {
                    "query": prefix, "type": "phrase_prefix", "fields": PHRASE_FIELDS, "boost": 2,
                } },
            ],
        } })),
        "size": limit,
        "sort": ["_score", { "title.keyword": "asc" }, { "id": "asc" }],
        "_source": ["title"],
        "highlight": highlight(json!({
                "title.prefix": whole, "title": whole,
                "alternativeTitles.prefix": whole,
            })),
    })
}

/// The fields [`everything_body`] searches: the text of every kind (a field an index
/// lacks matches nothing there). Users are searched by name only: their documents hold
/// no email.
const EVERYTHING_EXACT: [&str; 6] = [
    "title^4",
    "name^4",
    "alternativeTitles^3",
    "genres.text^2",
    "synopsis",
    "body",
];
const EVERYTHING_PREFIX: [&str; 3] = [
    "title.prefix^4",
    "name.prefix^4",
    "alternativeTitles.prefix^3",
];

/// The request of `search` over the aliases of several kinds: [`matching`]'s clauses on
/// every kind's fields, live documents only, hidden comments never (a comment's
/// `status` is `HIDDEN`; no other index has that value), per-kind counts from the
/// concrete index of each hit. Each clause scores a constant (BM25, on global term
/// statistics, only breaks ties), so kinds compare; `anime_alias`, when anime are
/// searched, gets a boost of 1.5: of equal matches, the anime comes first.
pub fn everything_body(query: &str, anime_alias: Option<&str>, offset: i64, limit: i64) -> Value {
    let query = query.trim();
    let whole = json!({ "number_of_fragments": 0 });
    let prose = json!({ "fragment_size": 120, "number_of_fragments": 2 });
    // Term statistics differ between indices (and between `title` and `name`), so BM25
    // scores do not compare across kinds: each clause scores a constant, and BM25 only
    // breaks ties (at a tenth of its score, below the smallest step of the constants).
    let fixed = |boost: f64, clause: Value| json!({ "constant_score": { "filter": clause, "boost": boost } });
    let matching = json!({ "bool": { "minimum_should_match": 1, "should": [
        fixed(6.0, json!({ "multi_match": { "query": query, "fields": ["title", "name"], "type": "phrase" } })),
        fixed(3.0, json!({ "multi_match": {
            "query": query, "fields": EVERYTHING_EXACT, "operator": "and",
        } })),
        fixed(1.0, json!({ "multi_match": {
            "query": query, "fields": EVERYTHING_EXACT, "operator": "and",
            "fuzziness": "AUTO:5,9", "prefix_length": 1, "max_expansions": 20,
        } })),
        fixed(1.0, json!({ "multi_match": { "query": query, "fields": EVERYTHING_PREFIX, "operator": "and" } })),
        { "multi_match": {
            "query": query, "fields": EVERYTHING_EXACT, "operator": "and", "boost": 0.1,
        } },
    ] } });
    json!({
        "query": { "bool": {
            "must": [matching],
            "must_not": [
                { "term": { DELETED_FIELD: true } },
                { "term": { "status": "HIDDEN" } },
            ],
        } },
        "from": offset,
        "size": limit,
        "track_total_hits": true,
        "sort": ["_score", { "id": "asc" }],
        "_source": false,
        "highlight": highlight(json!({
                "title": whole, "title.prefix": whole, "name": whole, "name.prefix": whole,
                "alternativeTitles": whole, "alternativeTitles.prefix": whole,
                "synopsis": prose, "body": prose,
            })),
        "aggs": { "kinds": { "terms": { "field": "_index", "size": 100 } } },
        "indices_boost": anime_alias.map(|a| vec![json!({ a: 1.5 })]).unwrap_or_default(),
    })
}

/// The kind of a concrete index `<prefix>-<name>-v<N>` (or the alias itself).
fn kind_of(prefix: &str, index: &str) -> Option<EntityType> {
    let name = index.strip_prefix(prefix)?.strip_prefix('-')?;
    let name = match name.rsplit_once("-v") {
        Some((base, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => base,
        _ => name,
    };
    EntityType::ALL
        .into_iter()
        .find(|k| k.index().name() == name)
}

/// The hits and counts of an answer to [`everything_body`], for the kinds `types`.
pub fn read_everything(prefix: &str, types: &[EntityType], body: &Value) -> FoundPage {
    let total = &body["hits"]["total"];
    let total = total["value"].as_i64().or(total.as_i64()).unwrap_or(0);
    let hits = body["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hit| {
            Some(Found {
                kind: kind_of(prefix, hit["_index"].as_str()?)?,
                id: Uuid::parse_str(hit["_id"].as_str()?).ok()?,
                highlights: hit_highlights_of(hit, EVERYTHING_HIGHLIGHTS),
            })
        })
        .collect();
    let mut counts: Vec<(EntityType, i64)> = types.iter().map(|k| (*k, 0)).collect();
    for bucket in body["aggregations"]["kinds"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let kind = bucket["key"].as_str().and_then(|i| kind_of(prefix, i));
        if let Some((_, n)) = counts.iter_mut().find(|(k, _)| Some(*k) == kind) {
            *n += bucket["doc_count"].as_i64().unwrap_or(0);
        }
    }
    FoundPage {
        hits,
        total,
        counts,
    }
}

/// The highlighted fields of [`everything_body`], in the order they are shown.
const EVERYTHING_HIGHLIGHTS: &[&str] = &[
    "title",
    "title.prefix",
    "name",
    "name.prefix",
    "alternativeTitles",
    "alternativeTitles.prefix",
    "synopsis",
    "body",
];

/// The suggestions of an answer to [`suggest_body`].
pub fn read_suggestions(body: &Value) -> Vec<Suggestion> {
    body["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hit| {
            let id = Uuid::parse_str(hit["_id"].as_str()?).ok()?;
            let title = hit["_source"]["title"].as_str()?.to_owned();
            let matched = hit_highlights(hit)
                .into_iter()
                .next()
                .unwrap_or_else(|| Highlight {
                    field: "title".to_owned(),
                    snippet: super::postgres::html_escape(&title),
                });
            Some(Suggestion { id, title, matched })
        })
        .collect()
}

impl ElasticsearchSearch {
    fn fall_back(&self, e: Error) -> Result<&PostgresSearch> {
        match &self.fallback {
            Some(fallback) => {
                tracing::warn!(error = %e, "search engine failed; answering from PostgreSQL");
                Ok(fallback)
            }
            None => {
                tracing::error!(error = %e, "search engine failed");
                Err(e)
            }
        }
    }
}

impl SearchBackend for ElasticsearchSearch {
    fn search_anime<'a>(&'a self, s: AnimeSearch<'a>) -> BoxFuture<'a, Result<SearchResults>> {
        Box::pin(async move {
            let s = AnimeSearch {
                limit: window_limit(s.offset, s.limit)?,
                ..s
            };
            let (ids, total, highlights, facets) = match self.call(search_body(&s)).await {
                Ok(body) => read_results(&body),
                Err(e) => return self.fall_back(e)?.search_anime(s).await,
            };
            let items = live_anime_in_order(&self.pool, &ids).await?;
            Ok(SearchResults {
                page: Page {
                    items,
                    offset: s.offset,
                    total,
                },
                highlights,
                facets,
            })
        })
    }

    fn search_everything<'a>(
        &'a self,
        s: EverythingSearch<'a>,
    ) -> BoxFuture<'a, Result<FoundPage>> {
        Box::pin(async move {
            let limit = window_limit(s.offset, s.limit)?;
            let aliases: Vec<String> = s
                .types
                .iter()
                .map(|k| k.index().alias(&self.prefix))
                .collect();
            let aliases: Vec<&str> = aliases.iter().map(String::as_str).collect();
            match self
                .call_on(
                    &aliases,
                    true,
                    everything_body(
                        s.query,
                        s.types
                            .contains(&EntityType::Anime)
                            .then_some(self.alias.as_str()),
                        s.offset,
                        limit,
                    ),
                )
                .await
            {
                Ok(body) => Ok(read_everything(&self.prefix, s.types, &body)),
                Err(e) => {
                    tracing::error!(error = %e, "search engine failed");
                    Err(e)
                }
            }
        })
    }

    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>>> {
        Box::pin(async move {
            if prefix.trim().is_empty() {
                return Ok(Vec::new());
            }
            match self.call(suggest_body(prefix, limit)).await {
                Ok(body) => Ok(read_suggestions(&body)),
                Err(e) => self.fall_back(e)?.suggest(prefix, limit).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AnimeStatus;

    fn search<'a>(query: &'a str, filter: &'a SearchFilter) -> AnimeSearch<'a> {
        AnimeSearch {
            query,
            filter,
            sort: SearchSort::Relevance,
            offset: 20,
            limit: 10,
        }
    }

    #[test]
    fn searches_exclude_tombstones_and_page_by_offset() {
        let none = SearchFilter::default();
        let body = search_body(&search(" frieren ", &none));
        let scored = &body["query"]["bool"]["must"][0]["function_score"];
        let should = &scored["query"]["bool"]["should"];
        assert_eq!(should[0]["multi_match"]["query"], json!("frieren"));
        assert_eq!(should[2]["multi_match"]["fuzziness"], json!("AUTO:5,9"));
        assert_eq!(
            should[2]["multi_match"]["minimum_should_match"],
            json!("2<-1")
        );
        assert_eq!(scored["boost_mode"], json!("multiply"));
        assert_eq!(
            body["query"]["bool"]["must_not"][0]["term"]["deleted"],
            json!(true)
        );
        assert_eq!(
            (body["from"].clone(), body["size"].clone()),
            (json!(20), json!(10))
        );
        assert!(
            search_body(&search("  ", &none))["query"]["bool"]["must"][0]["match_all"].is_object()
        );
        let id = Uuid::now_v7();
        assert_eq!(
            matching(&id.to_string())["term"]["id"],
            json!(id.to_string())
        );
    }

    #[test]
    fn each_facet_counts_under_the_other_filters_and_hits_under_all() {
        let filter = SearchFilter {
            genres: vec!["fantasy".into()],
            status: vec![AnimeStatus::Airing],
            release_year_from: Some(2020),
            release_year_to: None,
        };
        let body = search_body(&search("x", &filter));
        assert_eq!(
            body["post_filter"]["bool"]["filter"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let genres = &body["aggs"]["genres"]["filter"]["bool"]["filter"];
        assert_eq!(genres.as_array().unwrap().len(), 2);
        assert!(genres.to_string().contains("AIRING") && !genres.to_string().contains("fantasy"));
        let years = &body["aggs"]["releaseYear"]["aggs"]["values"]["range"]["ranges"];
        assert_eq!(years[1], json!({"from": 1980, "to": 1990}));
        assert_eq!(years[0], json!({"to": 1980}));
    }

    #[test]
    fn results_keep_their_order_skip_foreign_ids_and_carry_highlights_and_facets() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let body = json!({"hits": {"total": {"value": 3, "relation": "eq"}, "hits": [
            {"_id": b.to_string(), "highlight": {
                "title.prefix": ["<em>Frieren</em>"], "title": ["<em>Frieren</em>"],
                "synopsis": ["an <em>elf</em>"]}},
            {"_id": "not-a-uuid"}, {"_id": a.to_string()}
        ]}, "aggregations": {
            "genres": {"values": {"buckets": [{"key": "fantasy", "doc_count": 2}]}},
            "status": {"values": {"buckets": []}},
            "releaseYear": {"values": {"buckets": [{"doc_count": 0}, {"doc_count": 1}]}}
        }});
        let (ids, total, highlights, facets) = read_results(&body);
        assert_eq!((ids, total), (vec![b, a], 3));
        assert_eq!(
            highlights[&b],
            vec![
                Highlight {
                    field: "title".into(),
                    snippet: "<em>Frieren</em>".into()
                },
                Highlight {
                    field: "synopsis".into(),
                    snippet: "an <em>elf</em>".into()
                },
            ]
        );
        assert!(!highlights.contains_key(&a));
        assert_eq!(
            facets.genres,
            vec![FacetCount {
                value: "fantasy".into(),
                count: 2
            }]
        );
        assert_eq!(
            facets.release_years[1],
            YearRangeCount {
                from: Some(1980),
                to: Some(1989),
                count: 1
            }
        );
    }

    #[test]
    fn every_kind_is_read_from_its_concrete_index_and_counted() {
        assert_eq!(kind_of("p", "p-comments-v3"), Some(EntityType::Comment));
        assert_eq!(kind_of("p", "p-anime"), Some(EntityType::Anime));
        assert_eq!(kind_of("p", "p-anime-stats"), None);
        assert_eq!(kind_of("q", "p-users-v1"), None);
        let u = Uuid::now_v7();
        let body = json!({"hits": {"total": {"value": 4}, "hits": [
            {"_index": "p-users-v1", "_id": u.to_string(), "highlight": {"name.prefix": ["<em>Ann</em>"]}},
            {"_index": "elsewhere", "_id": u.to_string()},
        ]}, "aggregations": {"kinds": {"buckets": [
            {"key": "p-users-v1", "doc_count": 3}, {"key": "p-users-v2", "doc_count": 1}
        ]}}});
        let page = read_everything("p", &[EntityType::User, EntityType::Anime], &body);
        assert_eq!(page.hits.len(), 1);
        assert_eq!(page.hits[0].highlights[0].field, "name");
        assert_eq!(
            page.counts,
            vec![(EntityType::User, 4), (EntityType::Anime, 0)]
        );
        let q = everything_body("ann", Some("p-anime"), 0, 10);
        assert_eq!(q["indices_boost"], json!([{"p-anime": 1.5}]));
        assert_eq!(
            q["query"]["bool"]["must_not"][1]["term"]["status"],
            json!("HIDDEN")
        );
        assert!(!q.to_string().contains("email"));
        assert!(
            everything_body("ann", None, 0, 10)["indices_boost"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}
