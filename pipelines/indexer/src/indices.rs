//! The indices of the search indexer and their mappings.
//!
//! Each is an alias `<INDEX_PREFIX>-<name>` over `<INDEX_PREFIX>-<name>-v<N>` (see
//! [`IndexSpec`]). Every document has `id` (keyword), `aggregateVersion` (long, equal to
//! its external `_version` for whole-document writes) and `deleted` (boolean, true on
//! soft-delete tombstones). No user email or secret is indexed.
//!
//! Text is analysed by [`analysis`]'s `folded`: the standard tokeniser, full-width forms
//! folded, lower case, ASCII folding ("Kimetsu no Yaiba" and "kimetsu" meet, "Pokémon" and
//! "pokemon" too), and CJK text (for which the standard tokeniser gives one token per
//! character) as overlapping bigrams plus single characters, so Japanese and Chinese
//! queries match without a dictionary (OpenSearch bundles no Japanese morphology without
//! a plugin). Names and titles also have a `prefix` sub-field (edge n-grams of each word,
//! 1 to 20 characters) for search as you type, and a `keyword` one for sorting and exact
//! match. Searches are built by the API (`api/src/search.rs`); `docs/search.md` has the
//! whole picture and how a mapping change is rolled out.

/// The version of the mappings below (`_meta.version`): raise it with any change a live
/// index cannot take in place (see [`IndexSpec::ensure`]).
pub const MAPPING_VERSION: i64 = 2;

use anineplus_connectors::search_sink::IndexSpec;
use anineplus_connectors::search_sink::templates::SetupError;
use elasticsearch::Elasticsearch;
use elasticsearch::indices::{IndicesDeleteIndexTemplateParts, IndicesDeleteParts};
use serde_json::{Value, json};

pub use anineplus_schemas::indices::{DEFAULT_PREFIX, Index};

/// The alias of `index` under `prefix`, and its mappings.
pub fn spec(index: Index, prefix: &str) -> IndexSpec {
    IndexSpec {
        alias: index.alias(prefix),
        mappings: mappings(index),
        analysis: Some(analysis()),
    }
}

/// The analysers every index's text fields use (see the module header).
pub fn analysis() -> Value {
    let folding = json!(["cjk_width", "lowercase", "asciifolding"]);
    let with = |extra: &str| {
        let mut filters = folding.clone();
        filters.as_array_mut().expect("an array").push(json!(extra));
        filters
    };
    json!({
        "filter": {
            "cjk_pairs": { "type": "cjk_bigram", "output_unigrams": true },
            "word_prefixes": { "type": "edge_ngram", "min_gram": 1, "max_gram": 20 },
        },
        "analyzer": {
            "folded": { "type": "custom", "tokenizer": "standard", "filter": with("cjk_pairs") },
            "folded_words": { "type": "custom", "tokenizer": "standard", "filter": folding },
            "folded_prefixes": {
                "type": "custom", "tokenizer": "standard", "filter": with("word_prefixes"),
            },
        },
        "normalizer": {
            "folded": { "type": "custom", "filter": ["lowercase", "asciifolding"] },
        },
    })
}

/// The `mappings` object of `index`.
pub fn mappings(index: Index) -> Value {
    // Titles and names: searched as words, as prefixes while typing, and sorted by.
    let text = json!({ "type": "text", "analyzer": "folded", "fields": {
        "keyword": { "type": "keyword", "ignore_above": 256 },
        "prefix": { "type": "text", "analyzer": "folded_prefixes", "search_analyzer": "folded_words" },
    } });
    // Longer prose: searched as words only.
    let prose = json!({ "type": "text", "analyzer": "folded" });
    let keyword = json!({ "type": "keyword" });
    let date = json!({ "type": "date", "format": "epoch_millis" });
    let mut properties = json!({
        "id": keyword,
        "aggregateVersion": { "type": "long" },
        "deleted": { "type": "boolean" },
        "updatedAt": date,
    });
    let specific = match index {
        Index::Anime => json!({
            "title": text,
            // Searched as titles are: always the title's own mapping.
            "alternativeTitles": text,
            "synopsis": prose,
            // Facets and filters use the values as they are; `genres.text` lets a genre
            // word in a query match ("mecha" finds "Mecha").
            "genres": { "type": "keyword", "fields": {
                "text": { "type": "text", "analyzer": "folded" },
            } },
            "status": keyword,
            // `short`: years fit; a value out of range is a mapping error (dead letter).
            "releaseYear": { "type": "short" },
            // Denormalised from episode events (see `denormalise`): the count of live
            // episodes, and the episode id → signed version map it is derived from.
            "episodeCount": { "type": "integer" },
            "episodes": { "type": "object", "enabled": false },
        }),
        Index::Episodes => json!({
            "animeId": keyword,
            "number": { "type": "integer" },
            "title": text,
            "durationSeconds": { "type": "integer" },
            "airDate": { "type": "date", "format": "epoch_millis" },
        }),
        Index::Comments => json!({
            "animeId": keyword,
            "episodeId": keyword,
            "authorId": keyword,
            "body": prose,
            "status": keyword,
            "createdAt": date,
            "moderatedBy": keyword,
            "moderationReason": prose,
            "moderatedAt": date,
            // Denormalised from the anime (see `denormalise`).
            "animeTitle": text,
            "animeTitleVersion": { "type": "long" },
        }),
        Index::Users => json!({
            "name": text,
            "role": keyword,
            "createdAt": date,
        }),
        Index::Organizations => json!({
            "name": text,
            "slug": keyword,
            "ownerId": keyword,
            "members": { "properties": { "userId": keyword, "role": keyword } },
        }),
    };
    let map = properties.as_object_mut().expect("an object");
    map.extend(specific.as_object().expect("an object").clone());
    json!({ "_meta": { "version": MAPPING_VERSION }, "dynamic": false, "properties": properties })
}

/// Puts the templates and creates the first index of every index under `prefix` where
/// missing (idempotent): what the indexer does at start.
pub async fn create_all(client: &Elasticsearch, prefix: &str) -> Result<(), SetupError> {
    for index in Index::ALL {
        spec(index, prefix).ensure(client).await?;
    }
    Ok(())
}

/// Deletes the first index and the template of every index under `prefix` (what
/// [`create_all`] made), ignoring failures: tests and benches clean up with it.
pub async fn drop_all(client: &Elasticsearch, prefix: &str) {
    for index in Index::ALL {
        let spec = spec(index, prefix);
        let _ = client
            .indices()
            .delete(IndicesDeleteParts::Index(&[&spec.first_index()]))
            .send()
            .await;
        let _ = client
            .indices()
            .delete_index_template(IndicesDeleteIndexTemplateParts::Name(&spec.alias))
            .send()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_have_no_email_and_every_index_has_the_common_fields() {
        for index in Index::ALL {
            let m = mappings(index);
            for field in ["id", "aggregateVersion", "deleted"] {
                assert!(m["properties"][field].is_object(), "{index:?} {field}");
            }
        }
        assert!(mappings(Index::Users)["properties"]["email"].is_null());
        assert_eq!(spec(Index::Anime, "p").version(), MAPPING_VERSION);
        assert_eq!(Index::Anime.alias("anineplus"), "anineplus-anime");
    }

    #[test]
    fn alternative_titles_are_mapped_as_the_title_is() {
        let m = mappings(Index::Anime);
        assert!(m["properties"]["title"].is_object());
        assert_eq!(
            m["properties"]["alternativeTitles"],
            m["properties"]["title"]
        );
    }
}
