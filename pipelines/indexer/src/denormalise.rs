//! Denormalised fields: what one entity's document carries of another's, kept idempotent.
//!
//! - Anime documents carry `episodeCount`, derived from `episodes`, a map episode id →
//!   signed version (negative once deleted) that is stored but not indexed. Each episode
//!   event writes its entry with a script
//!   ([`Action::Script`](anineplus_connectors::search_sink::Action::Script)) that only
//!   moves an entry forward, so redelivered, reordered or replayed episode events count
//!   once. An episode seen before its
//!   anime creates a placeholder anime (`deleted: true`, `aggregateVersion` 0) that the
//!   anime's own events then fill in.
//! - Comment documents carry `animeTitle` and `animeTitleVersion` (the anime version the
//!   title is from; a title only replaces an older one). [`IndexerSink`] keeps them
//!   right from both sides, once the entity's own write is applied (each of its items, an
//!   [`Indexed`], carries the [`FollowUp`] its event asks for, decided when the document
//!   is made):
//!   - after anime documents are written, it refreshes the comments index, searches the
//!     comments of the batch's anime and writes the new title onto those with an older one;
//!   - after comment documents are written, it reads their anime (a realtime `_mget`) and
//!     writes the title onto them.
//!
//!   A comment written while its anime is renamed is covered either way: if its anime read
//!   came before the rename's anime write, its own write came before the rename's refresh,
//!   so the rename's search sees it.
//!
//! A follow-up that fails turns the outcome of the document that triggered it into
//! [`Outcome::Retry`]: the runtime writes it again (a no-op, already applied) and repeats the
//! follow-up. Because these writes are not external versions, anime and comment documents
//! are written with [`Document::replace`] instead (see [`super::documents`]).

use std::collections::{BTreeMap, HashMap};

use std::borrow::Borrow;
use std::sync::LazyLock;

use anineplus_connectors::search_sink::{Document, Json, Script, SearchSink};
use anineplus_connectors::{Outcome, search};
use anineplus_schemas::events::{AnimeData, CommentData, Envelope};
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::indices::Index;
use anineplus_streams::sink::Sink;

/// The denormalised fields of `index`, kept when the entity's own document is replaced.
pub fn kept(index: Index) -> &'static [&'static str] {
    match index {
        Index::Anime => &["episodes", "episodeCount"],
        Index::Comments => &["animeTitle", "animeTitleVersion"],
        Index::Episodes | Index::Users | Index::Organizations => &[],
    }
}

/// Moves episode `episode_id`'s entry in anime `anime_id`'s `episodes` to `version` (live or
/// deleted) unless it is already there or later, and recounts `episodeCount`.
const EPISODE_ON_ANIME: &str = "\
    if (ctx._source.episodes == null) { ctx._source.episodes = [:] } \
    def seen = ctx._source.episodes[params.episodeId]; \
    if (seen != null && Math.abs(seen) >= params.episodeVersion) { ctx.op = 'none' } else { \
      ctx._source.episodes[params.episodeId] = params.live ? params.episodeVersion : -params.episodeVersion; \
      int n = 0; for (def v : ctx._source.episodes.values()) { if (v > 0) { n++ } } \
      ctx._source.episodeCount = n; \
      if (ctx._source.aggregateVersion == null) { \
        ctx._source.id = params.documentId; ctx._source.aggregateVersion = 0; ctx._source.deleted = true \
      } \
    }";

/// Sets a comment's `animeTitle` unless it already has one from a later anime version, or
/// this very title from this version (a different title at the same version can only be
/// drift, which a repair overwrites).
const TITLE_ON_COMMENT: &str = "\
    def had = ctx._source.animeTitleVersion; \
    if (had != null && (had > params.version || (had == params.version \
        && params.title.equals(ctx._source.animeTitle)))) \
    { ctx.op = 'none' } else { ctx._source.animeTitle = params.title; \
    ctx._source.animeTitleVersion = params.version }";

static EPISODE_ON_ANIME_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(EPISODE_ON_ANIME));
static TITLE_ON_COMMENT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TITLE_ON_COMMENT));

/// The params of [`EPISODE_ON_ANIME`], keys in sorted order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpisodeOnAnime<'a> {
    document_id: &'a str,
    episode_id: &'a str,
    episode_version: i64,
    live: bool,
}

/// The params of [`TITLE_ON_COMMENT`], keys in sorted order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitleOnComment<'a> {
    document_id: &'a str,
    title: &'a str,
    version: i64,
}

/// The write of an episode's entry on its anime's document (`anime_alias`).
pub fn episode_on_anime(
    anime_alias: String,
    anime_id: &str,
    episode_id: &str,
    version: i64,
    live: bool,
) -> Document {
    let params = Json::of(&EpisodeOnAnime {
        document_id: anime_id,
        episode_id,
        episode_version: version,
        live,
    });
    Document::script(
        anime_alias,
        anime_id,
        version,
        &EPISODE_ON_ANIME_SCRIPT,
        params,
    )
}

/// The write of `title` (from anime version `version`) onto comment `comment_id`.
pub fn title_on_comment(
    comments_alias: String,
    comment_id: &str,
    title: &str,
    version: i64,
) -> Document {
    let params = Json::of(&TitleOnComment {
        document_id: comment_id,
        title,
        version,
    });
    Document::script(
        comments_alias,
        comment_id,
        version,
        &TITLE_ON_COMMENT_SCRIPT,
        params,
    )
}

/// What an applied document asks for next.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// A live anime document: its title goes to its comments.
    TitleToComments {
        /// The anime's title.
        title: String,
    },
    /// A live comment document: it needs its anime's title.
    TitleFromAnime {
        /// The comment's anime.
        anime_id: String,
    },
}

impl FollowUp {
    /// What the document of an anime event asks for: a live anime's title goes to its
    /// comments; a deleted anime asks for nothing.
    pub fn of_anime(e: &Envelope<AnimeData>) -> Option<FollowUp> {
        match &e.data {
            AnimeData::AnimeCreated(s) | AnimeData::AnimeUpdated(s) => {
                Some(FollowUp::TitleToComments {
                    title: s.title.clone(),
                })
            }
            AnimeData::AnimeDeleted(_) => None,
        }
    }

    /// What the document of a comment event asks for: a posted or moderated comment needs
    /// its anime's title; a deleted one nothing.
    pub fn of_comment(e: &Envelope<CommentData>) -> Option<FollowUp> {
        let anime_id = match &e.data {
            CommentData::CommentCreated(c) => &c.anime_id,
            CommentData::CommentModerated(m) => &m.anime_id,
            CommentData::CommentDeleted(_) => return None,
        };
        Some(FollowUp::TitleFromAnime {
            anime_id: anime_id.clone(),
        })
    }
}

/// The indexer sink's item: a document with the follow-up its write asks for, decided
/// from the event when the document is made (not read back from the document).
#[derive(Debug, Clone)]
pub struct Indexed {
    /// What is written.
    pub doc: Document,
    /// What the sink does once it is applied.
    pub follow_up: Option<FollowUp>,
}

impl Indexed {
    /// `docs` each with `follow_up` (the events that ask for one make one document).
    pub fn all(docs: Vec<Document>, follow_up: Option<FollowUp>) -> Vec<Indexed> {
        docs.into_iter()
            .map(|doc| Indexed {
                doc,
                follow_up: follow_up.clone(),
            })
            .collect()
    }
}

impl Borrow<Document> for Indexed {
    fn borrow(&self) -> &Document {
        &self.doc
    }
}

/// The sink of the indexer: the search sink, then the denormalisation follow-ups.
#[derive(Debug, Clone)]
pub struct IndexerSink {
    search: SearchSink,
    client: Elasticsearch,
    anime: String,
    comments: String,
    concurrent_writes: usize,
}

/// Bulk requests the indexer keeps in flight by default (see [`IndexerSink::concurrent_writes`]).
pub const BULKS_IN_FLIGHT: usize = 3;

impl IndexerSink {
    /// Writes through `search` into the indices `<prefix>-*`.
    pub fn new(search: SearchSink, prefix: &str) -> Self {
        let client = search.service().client().clone();
        IndexerSink {
            search,
            client,
            anime: Index::Anime.alias(prefix),
            comments: Index::Comments.alias(prefix),
            concurrent_writes: BULKS_IN_FLIGHT,
        }
    }

    /// Lets the runtime write `n` batches at once (at least 1).
    pub fn with_concurrent_writes(mut self, n: usize) -> Self {
        self.concurrent_writes = n.max(1);
        self
    }

    /// The search sink underneath.
    pub fn search(&self) -> &SearchSink {
        &self.search
    }

    /// One request; a failure is the outcome [`search::call_json`] classifies it as (an
    /// engine that does not answer, or answers 429/5xx, is [`Outcome::Unavailable`], so the
    /// runtime pauses as it does for the bulk itself).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Outcome> {
        search::call_json(&self.client, method, path, body.as_ref())
            .await
            .map_err(|e| e.outcome())
    }

    /// Sets the titles (anime id → (title, version)) on every comment of those anime that
    /// has an older one: a refresh (comments written since the last one are invisible to
    /// search otherwise), then a search for the comments of those anime, then guarded
    /// title writes for those that need one. Usually the search finds none to change, and
    /// costs a fraction of an update-by-query.
    async fn titles_to_comments(
        &self,
        titles: &BTreeMap<String, (String, i64)>,
    ) -> Result<(), Outcome> {
        self.call(Method::Post, &format!("/{}/_refresh", self.comments), None)
            .await?;
        let ids: Vec<&String> = titles.keys().collect();
        let mut writes = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": 1000,
                "_source": ["animeId", "animeTitleVersion"],
                "sort": [{ "id": "asc" }],
                "query": { "bool": { "filter": [{ "terms": { "animeId": ids } }] } },
            });
            if let Some(after) = after.take() {
                body["search_after"] = after;
            }
            let page = self
                .call(
                    Method::Post,
                    &format!("/{}/_search", self.comments),
                    Some(body),
                )
                .await?;
            let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
            for hit in &hits {
                let source = &hit["_source"];
                let (Some(id), Some((title, version))) = (
                    hit["_id"].as_str(),
                    source["animeId"].as_str().and_then(|a| titles.get(a)),
                ) else {
                    continue;
                };
                if source["animeTitleVersion"]
                    .as_i64()
                    .is_none_or(|had| had < *version)
                {
                    writes.push(title_on_comment(self.comments.clone(), id, title, *version));
                }
            }
            match hits.last() {
                Some(last) if hits.len() == 1000 => after = Some(last["sort"].clone()),
                _ => break,
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        match self
            .search
            .write(&writes)
            .await
            .into_iter()
            .find(|o| !applied(o))
        {
            None => Ok(()),
            Some(failed) => Err(failed),
        }
    }

    /// The comment writes of the titles of their anime, as the anime index has them now.
    async fn titles_from_anime(
        &self,
        comments: &[(String, String)],
    ) -> Result<Vec<Document>, Outcome> {
        let mut ids: Vec<&String> = comments.iter().map(|(_, anime)| anime).collect();
        ids.sort();
        ids.dedup();
        let path = format!(
            "/{}/_mget?_source_includes=title,aggregateVersion,deleted&realtime=true",
            self.anime
        );
        let answer = self
            .call(Method::Post, &path, Some(json!({ "ids": ids })))
            .await?;
        let mut titles = HashMap::new();
        for doc in answer["docs"].as_array().into_iter().flatten() {
            let source = &doc["_source"];
            if let (Some(id), Some(title), Some(version)) = (
                doc["_id"].as_str(),
                source["title"].as_str(),
                source["aggregateVersion"].as_i64(),
            ) && source["deleted"] != Value::Bool(true)
            {
                titles.insert(id.to_owned(), (title.to_owned(), version));
            }
        }
        Ok(comments
            .iter()
            .filter_map(|(comment, anime)| {
                let (title, version) = titles.get(anime)?;
                Some(title_on_comment(
                    self.comments.clone(),
                    comment,
                    title,
                    *version,
                ))
            })
            .collect())
    }
}

/// `failure` with `context` before its reason; a permanent failure of a follow-up is
/// retried (the document itself was applied; the follow-up is what must happen again).
fn explained(failure: Outcome, context: &str) -> Outcome {
    match failure {
        Outcome::Unavailable(r) => Outcome::Unavailable(format!("{context}: {r}")),
        Outcome::Retry(r) | Outcome::Permanent(r) => Outcome::Retry(format!("{context}: {r}")),
        Outcome::Done | Outcome::AlreadyApplied => Outcome::Retry(context.to_owned()),
    }
}

fn applied(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Done | Outcome::AlreadyApplied)
}

impl Sink for IndexerSink {
    type Item = Indexed;

    /// Several bulks at once: every write is versioned (external versions, or scripts that
    /// only move a field forward), so two batches holding the same document land in either
    /// order with the same result, and the follow-ups hold whichever batch runs first (see
    /// the module header).
    fn concurrent_writes(&self) -> usize {
        self.concurrent_writes
    }

    async fn write(&self, items: &[Indexed]) -> Vec<Outcome> {
        let mut outcomes = self.search.write(items).await;
        let mut titles: BTreeMap<String, (String, i64)> = BTreeMap::new();
        let mut propagating = Vec::new();
        let mut comments = Vec::new();
        let mut looking_up = Vec::new();
        for (i, Indexed { doc, follow_up }) in items.iter().enumerate() {
            if !applied(&outcomes[i]) {
                continue;
            }
            match follow_up {
                Some(FollowUp::TitleToComments { title }) => {
                    let newer = titles.get(&doc.id).is_none_or(|(_, v)| *v < doc.version);
                    if newer {
                        titles.insert(doc.id.clone(), (title.clone(), doc.version));
                    }
                    propagating.push(i);
                }
                Some(FollowUp::TitleFromAnime { anime_id }) => {
                    comments.push((doc.id.clone(), anime_id.clone()));
                    looking_up.push(i);
                }
                None => {}
            }
        }
        if !titles.is_empty()
            && let Err(e) = self.titles_to_comments(&titles).await
        {
            let failed = explained(e, "anime title not yet on its comments");
            for i in propagating {
                outcomes[i] = failed.clone();
            }
        }
        if !comments.is_empty() {
            let failed = match self.titles_from_anime(&comments).await {
                Ok(writes) if writes.is_empty() => None,
                Ok(writes) => self
                    .search
                    .write(&writes)
                    .await
                    .into_iter()
                    .find(|o| !applied(o)),
                Err(e) => Some(e),
            };
            if let Some(e) = failed {
                let failed = explained(e, "comment not yet given its anime title");
                for i in looking_up {
                    outcomes[i] = failed.clone();
                }
            }
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_schemas::events::samples;

    #[test]
    fn live_anime_and_comment_events_ask_for_their_follow_ups() {
        let mut anime = samples::anime_updated(1);
        let title = match &anime.data {
            AnimeData::AnimeCreated(s) | AnimeData::AnimeUpdated(s) => s.title.clone(),
            AnimeData::AnimeDeleted(_) => unreachable!("an update"),
        };
        assert_eq!(
            FollowUp::of_anime(&anime),
            Some(FollowUp::TitleToComments { title })
        );
        anime.data = AnimeData::AnimeDeleted(anineplus_schemas::events::AnimeDeleted {
            anime_id: anime.aggregate_id.clone(),
        });
        assert_eq!(FollowUp::of_anime(&anime), None, "a deleted anime");
        let comments = samples::one_of_each().comments;
        assert_eq!(comments.len(), 3, "posted, moderated, deleted");
        for e in &comments {
            let asks = FollowUp::of_comment(e);
            match &e.data {
                CommentData::CommentCreated(c) => assert_eq!(
                    asks,
                    Some(FollowUp::TitleFromAnime {
                        anime_id: c.anime_id.clone()
                    })
                ),
                CommentData::CommentModerated(m) => assert_eq!(
                    asks,
                    Some(FollowUp::TitleFromAnime {
                        anime_id: m.anime_id.clone()
                    })
                ),
                CommentData::CommentDeleted(_) => assert_eq!(asks, None),
            }
        }
    }
}
